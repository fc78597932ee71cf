package store

import (
	"testing"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/parse/aggregate"
)

// BenchmarkRecordColumnsAdd buffers records of one DKIM and one SPF result
// the way a large report's staging senders do (reset after each full
// buffer): the allocations it reports are a large report's per record.
func BenchmarkRecordColumnsAdd(b *testing.B) {
	r := &enrich.Record{Record: &aggregate.Record{SourceIP: "192.0.2.1", Count: 3, HeaderFrom: "example.com",
		DKIM: []aggregate.DKIMResult{{Domain: "example.com", Selector: "s1", Result: "pass"}},
		SPF:  []aggregate.SPFResult{{Domain: "example.com", Result: "pass"}}}}
	rep := &reportFields{key: "k"}
	c := newRecordColumns(5000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if c.len() == 5000 {
			c.reset()
		}
		c.add(rep, uint32(i), r)
	}
}

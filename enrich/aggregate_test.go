package enrich_test

import (
	"bytes"
	"io"
	"sync"
	"testing"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/parse/aggregate"
)

func TestAggregateRecordIsAlignedUnderThePublishedModes(t *testing.T) {
	rec := &aggregate.Record{HeaderFrom: "example.com",
		DKIM: []aggregate.DKIMResult{{Domain: "mail.example.com", Result: "pass"}},
		SPF:  []aggregate.SPFResult{{Domain: "example.com", Result: "pass", Scope: "helo"}}}
	for _, c := range []struct {
		name  string
		adkim string
		want  enrich.Record
	}{
		{"relaxed", "r", enrich.Record{HeaderFromOrg: "example.com", DKIMAlignedRelaxed: true, DMARCPass: true}},
		{"strict", "s", enrich.Record{HeaderFromOrg: "example.com", DKIMAlignedRelaxed: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &aggregate.Header{ADKIM: aggregate.Opt{Value: c.adkim, Set: true}}
			got := enrich.Aggregate(h).Record(rec)
			c.want.Record = rec
			if *got != c.want {
				t.Errorf("got %+v, want %+v", *got, c.want)
			}
		})
	}
}

func TestAggregatorReusesNothingARecordKeeps(t *testing.T) {
	a := enrich.Aggregate(&aggregate.Header{})
	pass := &aggregate.Record{HeaderFrom: "example.com", DKIM: []aggregate.DKIMResult{{Domain: "example.com", Result: "pass"}}}
	fail := &aggregate.Record{HeaderFrom: "example.com", DKIM: []aggregate.DKIMResult{{Domain: "example.com", Result: "fail"}}}
	first := a.Record(pass)
	second := a.Record(fail)
	if !first.DKIMAlignedStrict || second.DKIMAlignedRelaxed || first.Record != pass || second.Record != fail {
		t.Errorf("first %+v, second %+v", *first, *second)
	}
}

var benchReport = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	if err := gen.WriteLargeReport(&buf, 100_000, 1); err != nil {
		panic(err)
	}
	return buf.Bytes()
})

var sink *enrich.Record

// BenchmarkAggregate decodes and enriches a generated 100,000-record report:
// two allocations a record, as many as the decoder's record and the
// enriched record take.
func BenchmarkAggregate(b *testing.B) {
	data := benchReport()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		dec := aggregate.NewDecoder(bytes.NewReader(data), aggregate.Limits{})
		h, err := dec.Header()
		if err != nil {
			b.Fatal(err)
		}
		a := enrich.Aggregate(h)
		for {
			rec, err := dec.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			sink = a.Record(rec)
		}
	}
}

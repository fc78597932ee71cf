package aggregate

import (
	"bytes"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/gen"
)

const benchRecords = 100_000

var benchReport = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	if err := gen.WriteLargeReport(&buf, benchRecords, 1); err != nil {
		panic(err)
	}
	return buf.Bytes()
})

func benchDecode(b *testing.B, reference bool) {
	data := benchReport()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		d := newDecoder(bytes.NewReader(data), Limits{}, reference)
		if _, err := d.Header(); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != benchRecords {
			b.Fatalf("%d records", n)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	// The build machine is shared: records per CPU second (this process,
	// GC included) is the figure that does not depend on the load.
	b.ReportMetric(float64(benchRecords)*float64(b.N)/cpu.Seconds(), "records/cpu-s")
	b.ReportMetric(float64(len(data))*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
}

// cpuTime is the user and system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecodeFast decodes a generated 100,000-record report (~74 MB)
// from memory with the fast scanner.
func BenchmarkDecodeFast(b *testing.B) { benchDecode(b, false) }

// BenchmarkDecodeReference does the same with the encoding/xml reference.
func BenchmarkDecodeReference(b *testing.B) { benchDecode(b, true) }

// TestDecodersAgreeOnLargeReport pins that both decoders produce the same
// values on the generated benchmark input (smaller, to stay fast).
func TestDecodersAgreeOnLargeReport(t *testing.T) {
	var buf bytes.Buffer
	if err := gen.WriteLargeReport(&buf, 2000, 7); err != nil {
		t.Fatal(err)
	}
	fast := decodeAll(newDecoder(bytes.NewReader(buf.Bytes()), Limits{}, false))
	ref := decodeAll(newDecoder(bytes.NewReader(buf.Bytes()), Limits{}, true))
	if fast.err != nil || ref.err != nil {
		t.Fatalf("errors: fast %v, reference %v", fast.err, ref.err)
	}
	if len(fast.recs) != 2000 || len(ref.recs) != 2000 {
		t.Fatalf("records: fast %d, reference %d", len(fast.recs), len(ref.recs))
	}
	for i := range fast.recs {
		if fast.recs[i].Invalid != "" {
			t.Fatalf("record %d invalid: %s", i, fast.recs[i].Invalid)
		}
	}
	if !equalTranscripts(fast, ref) {
		t.Fatal("fast and reference decoders differ")
	}
}

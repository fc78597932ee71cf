package aggregate

import (
	"bytes"
	"testing"
)

// BenchmarkFloor only locates every '<' and '>': the floor of any parser.
func BenchmarkFloor(b *testing.B) {
	data := benchReport()
	b.SetBytes(int64(len(data)))
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		for i := 0; ; {
			k := bytes.IndexByte(data[i:], '<')
			if k < 0 {
				break
			}
			i += k + 1
			k = bytes.IndexByte(data[i:], '>')
			if k < 0 {
				break
			}
			i += k + 1
			n++
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(benchRecords)*float64(b.N)/cpu.Seconds(), "records/cpu-s")
}

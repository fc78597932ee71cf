package wire

import (
	"os"
	"path/filepath"
	"testing"
)

// TestEveryReadingLimitOfTheConfigReachesItsParser pins the limits section
// to the parsers' limits: a key that is parsed but never passed on would
// leave its parser at the default whatever the operator wrote.
func TestEveryReadingLimitOfTheConfigReachesItsParser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dmarcd.yaml")
	yaml := `limits:
  max_xml_token_bytes: 1KiB
  max_xml_value_bytes: 2KiB
  max_xml_header_bytes: 3KiB
  max_results_per_record: 4
  max_decompression_ratio: 5
  max_containers: 6
  max_mime_parts: 7
  max_header_fields: 8
  max_header_bytes: 9KiB
  max_tlsrpt_bytes: 10KiB
  max_tlsrpt_failure_rows: 11
  hash_ahead_bytes: 12KiB
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	l := LimitsFrom(c)
	got := []int64{int64(l.Aggregate.MaxTokenBytes), int64(l.Aggregate.MaxValueBytes), int64(l.Aggregate.MaxHeaderBytes),
		int64(l.Aggregate.MaxResults), l.Extract.MaxRatio, int64(l.Extract.MaxContainers), int64(l.Extract.MaxParts),
		int64(l.Extract.MaxHeaderFields), l.Extract.MaxHeaderBytes, l.TLSRPT.MaxBytes, int64(l.TLSRPT.MaxFailureRows), l.HashAhead}
	want := []int64{1 << 10, 2 << 10, 3 << 10, 4, 5, 6, 7, 8, 9 << 10, 10 << 10, 11, 12 << 10}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("limit %d: got %d, want %d (all: %v)", i, got[i], want[i], got)
		}
	}
	if d := LimitsFrom(DefaultConfig()); d.Aggregate.MaxTokenBytes != 0 || d.TLSRPT.MaxBytes != 0 {
		t.Errorf("defaults must leave the parsers' own defaults (0), got %+v", d)
	}
}

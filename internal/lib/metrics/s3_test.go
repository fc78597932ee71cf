package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestS3CollectorRegisteredOncePerRegistrySharedAcrossReloads: a second
// S3() (a reload rebuilding its sources) gets the same collector, and a
// rebuilt source of the same label adds to the same series.
func TestS3CollectorRegisteredOncePerRegistrySharedAcrossReloads(t *testing.T) {
	m := New("test", nil)
	a, err := m.S3()
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.S3()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("second S3() made a new collector")
	}
	first := a.Observer("s3:ses")
	first.Listed(7)
	first.Fetched()
	first.Backlog(6)
	first.Error()
	again := b.Observer("s3:ses") // the source after a reload
	again.Listed(3)
	again.Backlog(0)
	b.Observer("s3:other")

	for _, c := range []struct {
		got, want float64
		what      string
	}{
		{testutil.ToFloat64(a.listed.WithLabelValues("s3:ses")), 10, "listed"},
		{testutil.ToFloat64(a.fetched.WithLabelValues("s3:ses")), 1, "fetched"},
		{testutil.ToFloat64(a.backlog.WithLabelValues("s3:ses")), 0, "backlog"},
		{testutil.ToFloat64(a.errors.WithLabelValues("s3:ses")), 1, "errors"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	want := `
# HELP dmarcd_s3_errors_total Passes of an S3 source that failed on an S3 error (endpoint unreachable, credentials rejected, bucket missing); the source retries with backoff.
# TYPE dmarcd_s3_errors_total counter
dmarcd_s3_errors_total{source="s3:other"} 0
dmarcd_s3_errors_total{source="s3:ses"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "dmarcd_s3_errors_total"); err != nil {
		t.Error(err)
	}
	// A new source shows zeros at once, so rate() and alerts have a series.
	if n, err := testutil.GatherAndCount(m.Registry, "dmarcd_s3_objects_listed_total", "dmarcd_s3_objects_fetched_total"); err != nil || n != 4 {
		t.Errorf("%d listed and fetched series (%v), want 2 sources x 2", n, err)
	}
}

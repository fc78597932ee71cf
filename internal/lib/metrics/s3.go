package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// S3 is the collector of the S3 sources' own metrics, one series per source
// label ("s3:NAME", the source label of dmarcd_inputs_total, which counts
// what became of each object: stored, duplicate, invalid by reason_code,
// error):
//
//	dmarcd_s3_objects_listed_total{source}   objects returned by listings
//	dmarcd_s3_objects_fetched_total{source}  objects downloaded
//	dmarcd_s3_backlog_objects{source}        objects pending at the last count
//	dmarcd_s3_errors_total{source}           passes that failed on an S3 error
//
// Sources come and go with reloads while the collector stays: get it with
// Metrics.S3, which registers it once per registry.
type S3 struct {
	listed  *prometheus.CounterVec
	fetched *prometheus.CounterVec
	backlog *prometheus.GaugeVec
	errors  *prometheus.CounterVec
}

func newS3() *S3 {
	return &S3{
		listed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dmarcd_s3_objects_listed_total",
			Help: "Objects returned by the listings of an S3 source (every poll lists the whole prefix, so an object pending across polls counts once per poll).",
		}, []string{"source"}),
		fetched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dmarcd_s3_objects_fetched_total",
			Help: "Objects downloaded by an S3 source (objects over the size limit are set aside without a download).",
		}, []string{"source"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dmarcd_s3_backlog_objects",
			Help: "Objects pending in an S3 source's bucket at its last count (a pass counts at most 10,000).",
		}, []string{"source"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dmarcd_s3_errors_total",
			Help: "Passes of an S3 source that failed on an S3 error (endpoint unreachable, credentials rejected, bucket missing); the source retries with backoff.",
		}, []string{"source"}),
	}
}

// Describe implements prometheus.Collector.
func (s *S3) Describe(ch chan<- *prometheus.Desc) {
	s.listed.Describe(ch)
	s.fetched.Describe(ch)
	s.backlog.Describe(ch)
	s.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (s *S3) Collect(ch chan<- prometheus.Metric) {
	s.listed.Collect(ch)
	s.fetched.Collect(ch)
	s.backlog.Collect(ch)
	s.errors.Collect(ch)
}

// S3 returns the S3 collector of m's registry, registering it on first use;
// later calls (a reload rebuilding its sources) get the same one.
func (m *Metrics) S3() (*S3, error) {
	s := newS3()
	err := m.Registry.Register(s)
	var are prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
		return s, nil
	case errors.As(err, &are):
		if old, ok := are.ExistingCollector.(*S3); ok {
			return old, nil
		}
	}
	return nil, fmt.Errorf("registering the S3 metrics: %w", err)
}

// Observer returns the counters of the source labelled source (they
// implement ingest.S3ErrorObserver), its series set to zero if new. Several
// observers of one label (a source rebuilt by a reload) share their series;
// series are never deleted, as a deleted child would orphan the counters a
// restarted source of the same label still holds.
func (s *S3) Observer(source string) *S3Source {
	o := &S3Source{listed: s.listed.WithLabelValues(source), fetched: s.fetched.WithLabelValues(source),
		backlog: s.backlog.WithLabelValues(source), errors: s.errors.WithLabelValues(source)}
	o.listed.Add(0)
	o.fetched.Add(0)
	o.errors.Add(0)
	return o
}

// S3Source is one S3 source's series.
type S3Source struct {
	listed, fetched, errors prometheus.Counter
	backlog                 prometheus.Gauge
}

// Listed counts n objects returned by a listing.
func (o *S3Source) Listed(n int) { o.listed.Add(float64(n)) }

// Fetched counts one object downloaded.
func (o *S3Source) Fetched() { o.fetched.Inc() }

// Backlog sets the objects pending at the last count.
func (o *S3Source) Backlog(n int) { o.backlog.Set(float64(n)) }

// Error counts a pass that failed on an S3 error.
func (o *S3Source) Error() { o.errors.Inc() }

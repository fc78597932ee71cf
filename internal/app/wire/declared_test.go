package wire

import (
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/lib/metrics"
)

// series returns the label sets (name{k="v",...}, labels in order) of
// every series in the registry, with their values.
func series(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var l []string
			for _, lp := range mt.GetLabel() {
				l = append(l, lp.GetName()+"="+lp.GetValue())
			}
			out[mf.GetName()+"{"+strings.Join(l, ",")+"}"] = value(mt)
		}
	}
	return out
}

func value(mt *dto.Metric) float64 {
	switch {
	case mt.Counter != nil:
		return mt.Counter.GetValue()
	case mt.Gauge != nil:
		return mt.Gauge.GetValue()
	case mt.Histogram != nil:
		return float64(mt.Histogram.GetSampleCount())
	}
	return -1
}

// TestCountersExistBeforeTheFirstInput builds a pipeline, as the daemon and
// `dmarcd ingest` do, and scrapes before any input: the input, report and
// record counters of its source and the failure and TLS counters of the
// owned domains are there at zero, so that a rate() alert is not blind
// after a restart. The last success gauge is not (0 would be a success in
// 1970), and nothing is declared for a domain that is not owned.
func TestCountersExistBeforeTheFirstInput(t *testing.T) {
	m := metrics.New("test", []string{"example.com"})
	ingest.New(nil, ingest.Options{Source: "s3:main", Observer: Observer(m)})
	got := series(t, m)
	for _, want := range []string{
		"dmarcd_inputs_total{kind=aggregate,reason_code=,source=s3:main,status=stored}",
		"dmarcd_inputs_total{kind=aggregate,reason_code=invalid_value,source=s3:main,status=stored}",
		"dmarcd_inputs_total{kind=failure,reason_code=,source=s3:main,status=duplicate}",
		"dmarcd_inputs_total{kind=none,reason_code=not_a_report,source=s3:main,status=invalid}",
		"dmarcd_inputs_total{kind=none,reason_code=other,source=s3:main,status=invalid}",
		"dmarcd_inputs_total{kind=tlsrpt,reason_code=store_unavailable,source=s3:main,status=error}",
		"dmarcd_inputs_total{kind=aggregate,reason_code=retries_exhausted,source=s3:main,status=invalid}",
		"dmarcd_input_duration_seconds{kind=aggregate,source=s3:main}",
		"dmarcd_reports_total{kind=aggregate,source=s3:main,status=stored}",
		"dmarcd_records_stored_total{kind=tlsrpt,source=s3:main}",
		"dmarcd_messages_stored_total{kind=aggregate,source=s3:main}",
		"dmarcd_stage_duration_seconds{kind=failure,stage=store}",
		"dmarc_failure_reports_total{auth_failure=dmarc,policy_domain=example.com}",
		"dmarc_failure_reports_total{auth_failure=other,policy_domain=other}",
		"dmarc_tlsrpt_failed_sessions_total{policy_domain=example.com,result_type=sts-policy-fetch-error}",
		"dmarc_tlsrpt_successful_sessions_total{policy_domain=example.com}",
	} {
		v, ok := got[want]
		if !ok {
			t.Errorf("no series %s before the first input", want)
		} else if v != 0 {
			t.Errorf("%s = %v before the first input, want 0", want, v)
		}
	}
	n := 0
	for k := range got {
		if strings.HasPrefix(k, "dmarcd_inputs_total{") {
			n++
		}
		if strings.HasPrefix(k, "dmarcd_last_success_timestamp_seconds") {
			t.Errorf("%s declared: it would read as a success in 1970", k)
		}
	}
	if n < 80 || n > 120 {
		t.Errorf("%d dmarcd_inputs_total series for one source, want about 90", n)
	}
	t.Logf("%d dmarcd_inputs_total series declared for one source, %d series in all", n, len(got))

	// Declaring again (a reload rebuilding the pipeline) adds nothing.
	ingest.New(nil, ingest.Options{Source: "s3:main", Observer: Observer(m)})
	if again := series(t, m); len(again) != len(got) {
		t.Errorf("%d series after a second pipeline of the same source, want %d", len(again), len(got))
	}
}

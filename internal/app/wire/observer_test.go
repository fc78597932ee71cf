package wire

import (
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/lib/metrics"
	"github.com/dmarcd/dmarcd/parse/failure"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
)

// TestObserverCountsOutcomesAndReportsAsTheMetricsName: the status words of
// ingest are the status label values of metrics; a failure report counts
// under the domain of its From, else its first Reported-Domain; a TLS
// report's sessions reach the counters with their result types.
func TestObserverCountsOutcomesAndReportsAsTheMetricsName(t *testing.T) {
	for _, st := range []struct {
		in   ingest.Status
		want string
	}{{ingest.Stored, metrics.Stored}, {ingest.Duplicate, metrics.Duplicate}, {ingest.Invalid, metrics.Invalid}, {ingest.Error, metrics.Error}} {
		if string(st.in) != st.want {
			t.Errorf("ingest status %q is counted as %q", st.in, st.want)
		}
	}
	m := metrics.New("test", []string{"example.com"})
	o := Observer(m)
	o.Input("imap", ingest.Outcome{Kind: "aggregate", Status: ingest.Stored, Reports: 1, Records: 20, Messages: 3047}, 10*time.Millisecond)
	o.FailureStored(&failure.Report{AuthFailure: []string{"dmarc"}, Original: failure.Original{FromDomain: "news.example.com"}})
	o.FailureStored(&failure.Report{AuthFailure: []string{"spf"}, ReportedDomain: []string{"example.com"}})
	o.TLSRPTStored(&tlsrpt.Report{Policies: []tlsrpt.Policy{{Domain: "example.com", Successful: 10, Failed: 7,
		Failures: []tlsrpt.Failure{{ResultType: "certificate-expired", FailedSessions: 4}}}}})
	got := series(t, m)
	for k, want := range map[string]float64{
		"dmarcd_inputs_total{kind=aggregate,reason_code=,source=imap,status=stored}":                    1,
		"dmarcd_messages_stored_total{kind=aggregate,source=imap}":                                      3047,
		"dmarc_failure_reports_total{auth_failure=dmarc,policy_domain=example.com}":                     1,
		"dmarc_failure_reports_total{auth_failure=spf,policy_domain=example.com}":                       1,
		"dmarc_tlsrpt_successful_sessions_total{policy_domain=example.com}":                             10,
		"dmarc_tlsrpt_failed_sessions_total{policy_domain=example.com,result_type=certificate-expired}": 4,
		"dmarc_tlsrpt_failed_sessions_total{policy_domain=example.com,result_type=unspecified}":         3,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
}

package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInputCountsByStatusAndBoundedReasonCode(t *testing.T) {
	m := New("test", nil)
	m.Input("imap", Input{Kind: "aggregate", Status: Stored, Reports: 1, Records: 20, Messages: 3047}, 10*time.Millisecond)
	m.Input("imap", Input{Kind: "none", Status: Invalid, ReasonCode: "not_a_report"}, time.Millisecond)
	m.Input("imap", Input{Kind: "none", Status: Invalid, ReasonCode: "made_up_code"}, time.Millisecond)
	if v := testutil.ToFloat64(m.inputs.WithLabelValues("imap", "aggregate", "stored", "")); v != 1 {
		t.Errorf("stored inputs %v", v)
	}
	if v := testutil.ToFloat64(m.inputs.WithLabelValues("imap", "none", "invalid", "other")); v != 1 {
		t.Errorf("an unknown reason code must count as other, got %v", v)
	}
	if v := testutil.ToFloat64(m.messages.WithLabelValues("imap", "aggregate")); v != 3047 {
		t.Errorf("messages %v", v)
	}
	if n := testutil.CollectAndCount(m.lastSuccess); n != 1 {
		t.Errorf("%d last-success series", n)
	}
}

func TestFailureAndTLSCountersHaveBoundedLabels(t *testing.T) {
	m := New("test", []string{"example.com"})
	m.FailureStored("news.example.com", []string{"dmarc"})
	m.FailureStored("spoofed.example.net", []string{"weird"})
	if v := testutil.ToFloat64(m.failures.WithLabelValues("example.com", "dmarc")); v != 1 {
		t.Errorf("subdomain failure counted under its owned domain: %v", v)
	}
	if v := testutil.ToFloat64(m.failures.WithLabelValues("other", "other")); v != 1 {
		t.Errorf("foreign domain and unknown auth failure must be other/other: %v", v)
	}
	m.TLSRPTStored([]TLSPolicy{{Domain: "example.com", Successful: 10, Failed: 7,
		Failures: []TLSFailure{{ResultType: "certificate-expired", FailedSessions: 4}, {ResultType: "bad https response code: 404", FailedSessions: 2}}}})
	for _, c := range []struct {
		rt   string
		want float64
	}{{"certificate-expired", 4}, {"other", 2}, {"unspecified", 1}} {
		if v := testutil.ToFloat64(m.tlsFailed.WithLabelValues("example.com", c.rt)); v != c.want {
			t.Errorf("tls failed %s = %v, want %v", c.rt, v, c.want)
		}
	}
}

func TestUnownedDomainsAreCapped(t *testing.T) {
	m := New("test", nil)
	for i := 0; i < MaxDomains+10; i++ {
		m.FailureStored(strings.Repeat("a", i+1)+".example", []string{"spf"})
	}
	if n := testutil.CollectAndCount(m.failures); n != MaxDomains+1 {
		t.Errorf("%d series, want %d domains plus other", n, MaxDomains+1)
	}
}

func TestRegistryGathersWithBuildInfo(t *testing.T) {
	m := New("v1.2.3", nil)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"dmarcd_build_info", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(all, want) {
			t.Errorf("%s missing from %s", want, all)
		}
	}
}

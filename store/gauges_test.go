package store

import (
	"context"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/product/gauges/gaugedb"
	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
)

// TestGaugeDomainsCountsOneWindowPerDomain pins every gauge of GaugeDomains
// on known records: one record of each readiness class in the window, one
// report outside it, and the corpus TLS and failure reports.
func TestGaugeDomainsCountsOneWindowPerDomain(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	r := align.Relaxed
	const sel = "abcdefgh"
	write(t, s, header("google.com", "r1", "example.com", jan2024), rowsOf(
		// aligned, strict DKIM too
		authRow("54.240.0.1", 100, "example.com", []string{"example.com/" + sel + "/pass"}, []string{"mail.example.com/pass"}, nil, r, r),
		// aligned relaxed only
		authRow("54.240.0.2", 40, "news.example.com", []string{"example.com/" + sel + "/pass"}, []string{"mail.example.com/pass"}, nil, r, r),
		// misaligned
		authRow("198.2.128.1", 30, "example.com", []string{"esp-mailer.net/em1/pass"}, []string{"bounces.esp-mailer.net/pass"}, nil, r, r),
		// forwarded
		authRow("128.32.0.1", 5, "example.com", []string{"example.com/" + sel + "/fail"}, []string{"mail.example.com/fail"}, []string{"forwarded"}, r, r),
		// unauthenticated
		authRow("203.0.113.9", 3, "example.com", []string{"example.com/default/fail"}, []string{"example.com/softfail"}, nil, r, r),
		authRow("203.0.113.10", 2, "example.com", nil, []string{"spoof.example/none"}, nil, r, r),
	))
	write(t, s, header("yahoo.com", "r2", "example.org", jan2024.Add(time.Hour)), rowsOf(
		authRow("192.0.2.7", 7, "example.org", nil, nil, nil, r, r)))
	// Outside the window: must not count.
	write(t, s, header("google.com", "r0", "example.com", jan2024.AddDate(0, 0, -1)), rowsOf(
		authRow("192.0.2.1", 1000, "example.com", nil, nil, nil, r, r)))

	got, err := gaugedb.ReadDomains(ctx, s, jan2024, jan2024.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	want := []gaugedb.DomainGauges{
		{Domain: "example.com", Messages: 180, DMARCPass: 140, Failing: 40, StrictPass: 100, Unauthenticated: 5},
		{Domain: "example.org", Messages: 7, Failing: 7, Unauthenticated: 7},
	}
	if len(got) != len(want) {
		t.Fatalf("GaugeDomains: got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("GaugeDomains[%d]:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}

	// Reporter organisations and domains: latest report end, by volume.
	orgs, err := gaugedb.ReadLastReportsByOrg(ctx, s, jan2024.AddDate(0, 0, -7))
	if err != nil {
		t.Fatal(err)
	}
	wantEnd := jan2024.Add(24*time.Hour - time.Second)
	if len(orgs) != 2 || orgs[0].Name != "google.com" || orgs[0].Messages != 1180 || !orgs[0].End.Equal(wantEnd) ||
		orgs[1].Name != "yahoo.com" || !orgs[1].End.Equal(wantEnd.Add(time.Hour)) {
		t.Errorf("LastReportsByOrg: got %+v", orgs)
	}
	doms, err := gaugedb.ReadLastReportsByDomain(ctx, s, jan2024.AddDate(0, 0, -7))
	if err != nil {
		t.Fatal(err)
	}
	if len(doms) != 2 || doms[0].Name != "example.com" || doms[0].Messages != 1180 || !doms[0].End.Equal(wantEnd) {
		t.Errorf("LastReportsByDomain: got %+v", doms)
	}
}

// TestGaugeDomainsCountsTLSAndFailureReports stores every corpus TLS and
// failure report and finds their failed sessions and report counts per
// policy domain.
func TestGaugeDomainsCountsTLSAndFailureReports(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	wantFailed := map[string]uint64{}
	seen := map[string]bool{}
	for _, c := range corpusTLSReports(t) {
		if seen[tlsrpt.Key(c.r)] {
			continue
		}
		seen[tlsrpt.Key(c.r)] = true
		writeTLS(t, s, c)
		for _, p := range c.r.Policies {
			wantFailed[p.Domain] += p.Failed
		}
	}
	keys := map[string]bool{}
	for _, c := range corpusFailures(t) {
		writeFailure(t, s, c)
		keys[c.key] = true
	}
	got, err := gaugedb.ReadDomains(ctx, s, time.Unix(0, 0), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var reports uint64
	for _, g := range got {
		if g.TLSFailedSessions != wantFailed[g.Domain] {
			t.Errorf("%s: TLS failed sessions %d, want %d", g.Domain, g.TLSFailedSessions, wantFailed[g.Domain])
		}
		reports += g.FailureReports
	}
	if wantFailed["company-y.example"] != 303 {
		t.Errorf("corpus: company-y.example failed sessions %d, want 303 (MANIFEST)", wantFailed["company-y.example"])
	}
	if reports != uint64(len(keys)) {
		t.Errorf("failure reports: %d, want %d distinct", reports, len(keys))
	}
}

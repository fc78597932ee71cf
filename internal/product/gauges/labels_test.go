package gauges

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/dmarcd/dmarcd/internal/lib/metrics"
)

// fakeStore answers the gauge queries with fixed rows.
type fakeStore struct {
	domains []DomainGauges
	orgs    []LastReport
}

func (f fakeStore) GaugeDomains(context.Context, time.Time, time.Time) ([]DomainGauges, error) {
	return f.domains, nil
}
func (f fakeStore) LastReportsByOrg(context.Context, time.Time) ([]LastReport, error) {
	return f.orgs, nil
}
func (f fakeStore) LastReportsByDomain(context.Context, time.Time) ([]LastReport, error) {
	var l []LastReport
	for _, d := range f.domains {
		l = append(l, LastReport{Name: d.Domain, Messages: d.Messages, End: time.Unix(1, 0)})
	}
	return l, nil
}

// TestForgedDomainsCannotBlindAnOwnedDomainsGauges is the attack: 60
// forged policy domains with huge counts stored (before owned_domains was
// set, or accepted by "*") pushed the real domain into "other" and its
// alerts went blind. With the daemon's labeler the owned domain keeps its
// series and its figures; the forged ones are summed into "other".
func TestForgedDomainsCannotBlindAnOwnedDomainsGauges(t *testing.T) {
	var rows []DomainGauges
	for i := range 60 {
		rows = append(rows, DomainGauges{Domain: fmt.Sprintf("forged%02d.example.net", i), Messages: 1 << 40, DMARCPass: 1 << 40})
	}
	rows = append(rows, DomainGauges{Domain: "example.com", Messages: 100, DMARCPass: 40}, DomainGauges{Domain: "news.example.com", Messages: 20, DMARCPass: 20})
	g := New(fakeStore{domains: rows}, 0, 0, nil)
	g.SetDomains(metrics.NewDomains([]string{"example.com"}))
	if err := g.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := values(t, g)
	if v := got["dmarc_messages{domain=example.com}{window=30d}"]; v != 120 {
		t.Errorf("example.com messages %v, want 120 (its subdomain included)", v)
	}
	if v := got["dmarc_pass_ratio{domain=example.com}{window=30d}"]; v != 0.5 {
		t.Errorf("example.com pass ratio %v, want 0.5", v)
	}
	n := 0
	for k := range got {
		if strings.HasPrefix(k, "dmarc_messages{") && strings.HasSuffix(k, "{window=30d}") {
			n++
		}
	}
	if n != 2 || got["dmarc_messages{domain=other}{window=30d}"] != 60<<40 {
		t.Errorf("%d dmarc_messages series in 30d, want 2 (example.com, other with the forged sum): %v", n, got)
	}
}

// TestAnEightMiBOrgNameKeepsTheScrapeSmall: hostile org names (8 MiB, two
// sharing their first bytes, invalid UTF-8 that Prometheus refuses) make
// short, distinct, valid series, and the scrape stays small.
func TestAnEightMiBOrgNameKeepsTheScrapeSmall(t *testing.T) {
	long := strings.Repeat("x", 8<<20)
	g := New(fakeStore{orgs: []LastReport{
		{Name: long + "1", Messages: 9, End: time.Unix(100, 0)},
		{Name: long + "2", Messages: 8, End: time.Unix(200, 0)},
		{Name: "bad\xff\xfe", Messages: 7, End: time.Unix(50, 0)},
		{Name: "google.com", Messages: 1, End: time.Unix(10, 0)},
	}}, 0, 0, nil)
	g.SetDomains(metrics.NewDomains([]string{"example.com"}))
	if err := g.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() > 16<<10 {
		t.Errorf("scrape is %d bytes, want under 16 KiB", b.Len())
	}
	got := values(t, g)
	short := metrics.LabelValue(long)
	if v := got["dmarc_last_report_timestamp_seconds{org="+short+"}"]; v != 200 {
		t.Errorf("the two long org names are one series with the latest end: %v", v)
	}
	if _, ok := got[`dmarc_last_report_timestamp_seconds{org=bad\xff\xfe}`]; !ok {
		t.Errorf("the invalid UTF-8 org name is not escaped: %v", got)
	}
	if got["dmarc_last_report_timestamp_seconds{org=google.com}"] != 10 {
		t.Errorf("google.com lost: %v", got)
	}
}

package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/product/attrib"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck/checkdb"
	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

const (
	dmarcNone       = `_dmarc.example.com. 300 IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.com"`
	dmarcQuarantine = `_dmarc.example.com. 300 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"`
	spfRecord       = `example.com. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`
)

func periodicConfig(t *testing.T, srv *dnstest.Server) config.Config {
	t.Helper()
	cfg := wire.DefaultConfig()
	cfg.OwnedDomains = []string{"*"}
	cfg.ClickHouse.DSN = testenv.ClickHouse(t)
	cfg.HTTP.Listen = ""
	cfg.Check.Domains = []string{"example.com"}
	cfg.DNS.Resolver = srv.Addr
	cfg.DNS.Timeout = config.Duration(500 * time.Millisecond)
	return cfg
}

func openStore(t *testing.T, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func dnsRows(t *testing.T, st *store.Store, kind string) []checkdb.DNSRecord {
	t.Helper()
	all, err := checkdb.DNSRecords(context.Background(), st, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	var l []checkdb.DNSRecord
	for _, r := range all {
		if r.Kind == kind {
			l = append(l, r)
		}
	}
	return l
}

// TestPeriodicCheckStoresARecordOnlyWhenItChanges runs the check job by
// hand against a loopback DNS server: the first run stores every record,
// unchanged runs add nothing, a changed _dmarc record adds one row saying
// what changed, and a record that cannot be read (SERVFAIL) is not stored.
func TestPeriodicCheckStoresARecordOnlyWhenItChanges(t *testing.T) {
	srv := dnstest.Start(t, dmarcNone, spfRecord)
	cfg := periodicConfig(t, srv)
	ls := newLazyStore(cfg, slog.New(slog.DiscardHandler))
	t.Cleanup(ls.close)
	p := newPeriodic(cfg, ls, newPeriodicMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	st := openStore(t, cfg.ClickHouse.DSN)
	run := func(want string) {
		t.Helper()
		if got := p.runOnce(ctx, jobCheck, p.checkOnce); got != want {
			t.Fatalf("check run: status %q, want %q", got, want)
		}
	}

	run(runOK)
	run(runOK)
	dm := dnsRows(t, st, "dmarc")
	if len(dm) != 1 || !dm[0].Initial || dm[0].Value != "v=DMARC1; p=none; rua=mailto:dmarc@example.com" {
		t.Fatalf("after two runs on one record, dmarc rows = %+v, want one initial row", dm)
	}
	if sp := dnsRows(t, st, "spf"); len(sp) != 1 || sp[0].Value != "v=spf1 ip4:192.0.2.0/24 -all" {
		t.Fatalf("spf rows = %+v", sp)
	}

	srv.Replace(t, dmarcQuarantine)
	run(runOK)
	run(runOK)
	dm = dnsRows(t, st, "dmarc")
	if len(dm) != 2 {
		t.Fatalf("after the change and one more run, dmarc rows = %+v, want 2", dm)
	}
	if c := dm[1]; c.Initial || c.Change != "p=none → p=quarantine" || c.Previous != dm[0].Value || c.Name != "_dmarc.example.com" {
		t.Errorf("change row = %+v, want change %q", c, "p=none → p=quarantine")
	}

	srv.ServFail("_dmarc.example.com")
	run(runDNSError)
	if dm := dnsRows(t, st, "dmarc"); len(dm) != 2 {
		t.Errorf("an unreadable record must not be stored; dmarc rows = %+v", dm)
	}
	if n := testutil.ToFloat64(p.m.changes.WithLabelValues("dmarc")); n != 1 {
		t.Errorf("dmarcd_dns_record_changes_total{check=dmarc} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(p.m.runs.WithLabelValues(jobCheck, runOK)); n != 4 {
		t.Errorf("ok runs = %v, want 4", n)
	}
}

// TestPeriodicCheckFailsWithoutClickHouse: ClickHouse down is a failed run
// (status error) of either job, not a crash.
func TestPeriodicCheckFailsWithoutClickHouse(t *testing.T) {
	srv := dnstest.Start(t, dmarcNone)
	cfg := periodicConfig(t, srv)
	cfg.ClickHouse.DSN = "clickhouse://127.0.0.1:1/nothing?dial_timeout=200ms"
	ls := newLazyStore(cfg, slog.New(slog.DiscardHandler))
	t.Cleanup(ls.close)
	p := newPeriodic(cfg, ls, newPeriodicMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	if got := p.runOnce(context.Background(), jobCheck, p.checkOnce); got != runError {
		t.Errorf("status %q, want %q", got, runError)
	}
	if got := p.runOnce(context.Background(), jobAttribution, p.attributeOnce); got != runError {
		t.Errorf("attribution status %q, want %q", got, runError)
	}
}

func TestDescribeChange(t *testing.T) {
	prev := func(v string) checkdb.DNSRecord { return checkdb.DNSRecord{Name: "n", Value: v} }
	obs := func(v string) dnscheck.Observation { return dnscheck.Observation{Name: "n", Value: v} }
	for _, c := range []struct {
		kind, old, cur string
		stored         bool
		want           string
	}{
		{"dmarc", "", "v=DMARC1; p=none", false, "first seen: v=DMARC1; p=none"},
		{"dmarc", "", "", false, "none published"},
		{"dmarc", "v=DMARC1; p=none; pct=50", "v=DMARC1; p=reject; sp=quarantine", true, "p=none → p=reject, added sp=quarantine, removed pct=50"},
		{"dmarc", "v=DMARC1; p=none", "", true, "removed (was: v=DMARC1; p=none)"},
		{"dmarc", "", "v=DMARC1; p=none", true, "published: v=DMARC1; p=none"},
		{"dmarc", "v=DMARC1; p=none", "v=DMARC1;p=none", true, "rewritten: v=DMARC1;p=none"},
		{"spf", "v=spf1 include:a.example ~all", "v=spf1 include:b.example -all", true, "~all → -all, added include:b.example, removed include:a.example"},
		{"spf", "v=spf1 redirect=a.example", "v=spf1 redirect=b.example", true, "redirect=a.example → redirect=b.example"},
		{"dkim:sel1", "v=DKIM1; k=rsa; p=AAA", "v=DKIM1; k=rsa; p=BBB", true, "new key"},
		{"dkim:sel1", "v=DKIM1; k=rsa; p=AAA", "v=DKIM1; k=rsa; p=", true, "key revoked (empty p=)"},
		{"report_auth:r.example", "v=DMARC1", "", true, "removed (was: v=DMARC1)"},
	} {
		if got := describeChange(c.kind, prev(c.old), obs(c.cur), c.stored); got != c.want {
			t.Errorf("%s %q → %q: got %q, want %q", c.kind, c.old, c.cur, got, c.want)
		}
	}
}

// annotationSQL returns the DNS-change annotation query of the overview
// dashboard, macros expanded as grafana-clickhouse-datasource v4 does.
func annotationSQL(t *testing.T, domain string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "dashboards", "grafana", "overview.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Annotations struct {
			List []struct {
				Name   string
				Target struct {
					RawSQL string `json:"rawSql"`
				}
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for _, a := range d.Annotations.List {
		if a.Name == "DNS record changes" {
			f, to := "toDateTime(946684800)", "toDateTime(1893456000)"
			sql := regexp.MustCompile(`\$__timeFilter\(\s*([^)]+?)\s*\)`).ReplaceAllString(a.Target.RawSQL, "$1 >= "+f+" AND $1 <= "+to)
			return strings.NewReplacer("${domain:percentencode}", url.PathEscape(domain), "${domain}", domain).Replace(sql)
		}
	}
	t.Fatal("overview.json has no annotation \"DNS record changes\"")
	return ""
}

// TestDaemonChecksPeriodicallyAndAnnotatesTheChange runs the daemon with
// check.interval set: the _dmarc record changes between two runs, and
// dns_records ends with exactly two rows for it however many runs follow;
// the dashboard's annotation query returns the change. A reload that
// changes check.domains restarts the job; stopping the daemon stops it
// although a DNS query is pending.
func TestDaemonChecksPeriodicallyAndAnnotatesTheChange(t *testing.T) {
	t.Setenv("DMARCD_PRIVACY_KEY", "00112233445566778899aabbccddeeff")
	srv := dnstest.Start(t, dmarcNone, spfRecord)
	cfg := periodicConfig(t, srv)
	cfg.Check.Interval = config.Duration(config.MinPeriodicInterval)
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, cfg.ClickHouse.DSN) // migrated before the daemon opens it
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	okRuns := func() float64 { return testutil.ToFloat64(d.periodicM.runs.WithLabelValues(jobCheck, runOK)) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; dmarc rows %+v", what, dnsRows(t, st, "dmarc"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the first check", func() bool { return okRuns() >= 1 })
	if dm := dnsRows(t, st, "dmarc"); len(dm) != 1 {
		t.Fatalf("after the first run, dmarc rows = %+v", dm)
	}
	srv.Replace(t, dmarcQuarantine)
	waitFor("the change to be stored", func() bool { return len(dnsRows(t, st, "dmarc")) >= 2 })
	n := okRuns()
	waitFor("two more runs", func() bool { return okRuns() >= n+2 })
	dm := dnsRows(t, st, "dmarc")
	if len(dm) != 2 || dm[1].Change != "p=none → p=quarantine" {
		t.Fatalf("dmarc rows = %+v, want exactly 2, the second p=none → p=quarantine", dm)
	}

	opt, err := clickhouse.ParseDSN(cfg.ClickHouse.DSN)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(context.Background(), annotationSQL(t, "example.com"))
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for rows.Next() {
		var at time.Time
		var text, tags string
		if err := rows.Scan(&at, &text, &tags); err != nil {
			t.Fatal(err)
		}
		if !at.Equal(dm[1].CheckedAt) {
			t.Errorf("annotation at %v, want the change's %v", at, dm[1].CheckedAt)
		}
		texts = append(texts, text+" ["+tags+"]")
	}
	rows.Close()
	if want := "DMARC record of example.com changed: p=none → p=quarantine [dns,dmarc]"; len(texts) != 1 || texts[0] != want {
		t.Errorf("annotations %q, want [%q]", texts, want)
	}

	// A reload changing check.domains restarts the job with the new list.
	srv.Add(t, `_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"`)
	next := cfg
	next.Check.Domains = []string{"example.com", "example.org"}
	old := d.periodic
	if err := d.Reload(next); err != nil {
		t.Fatal(err)
	}
	if d.periodic == old {
		t.Error("reload with new check.domains kept the old jobs")
	}
	waitFor("example.org to be checked", func() bool {
		l, err := checkdb.LatestDNSRecords(context.Background(), st, "example.org")
		return err == nil && l["dmarc"].Value == "v=DMARC1; p=reject"
	})

	// Shutdown while a query hangs (the server does not answer) is prompt:
	// the run follows the daemon's context.
	srv.Timeout("example.com")
	next.DNS.Timeout = config.Duration(time.Hour)
	if err := d.Reload(next); err != nil {
		t.Fatal(err)
	}
	q := srv.Queries()
	waitFor("a pending query", func() bool { return srv.Queries() > q })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel with a DNS query pending (dns.timeout 1h)")
	}
	if dm := dnsRows(t, st, "dmarc"); len(dm) != 2 {
		t.Errorf("after shutdown, dmarc rows = %+v, want still 2", dm)
	}
}

// TestPeriodicAttributionAttributesNewIPs: a run attributes the source IPs
// of the stored records (PTR confirmed by the loopback DNS server) and the
// next run finds nothing new.
func TestPeriodicAttributionAttributesNewIPs(t *testing.T) {
	srv := dnstest.Start(t,
		`1.2.0.192.in-addr.arpa. 300 IN PTR mail.example.com.`,
		`mail.example.com. 300 IN A 192.0.2.1`,
		spfRecord)
	cfg := periodicConfig(t, srv)
	st := openStore(t, cfg.ClickHouse.DSN)
	begin := time.Now().UTC().AddDate(0, 0, -2).Truncate(24 * time.Hour)
	h := &aggregate.Header{Schema: aggregate.SchemaRFC7489, Version: "1.0", OrgName: "google.com", Email: "noreply@google.com",
		ReportID: "r1", Begin: begin, End: begin.Add(24*time.Hour - time.Second), Domain: "example.com"}
	rows := []*enrich.Record{{Record: &aggregate.Record{SourceIP: "192.0.2.1", Count: 3, Disposition: "none", EvalDKIM: "fail", EvalSPF: "pass", HeaderFrom: "example.com"}, HeaderFromOrg: "example.com"}}
	_, err := st.WriteAggregate(context.Background(), h, store.InputMeta{Source: "file", InputName: "t.xml"}, func() (*enrich.Record, error) {
		if len(rows) == 0 {
			return nil, io.EOF
		}
		r := rows[0]
		rows = rows[1:]
		return r, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ls := newLazyStore(cfg, slog.New(slog.DiscardHandler))
	t.Cleanup(ls.close)
	p := newPeriodic(cfg, ls, newPeriodicMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	if got := p.runOnce(context.Background(), jobAttribution, p.attributeOnce); got != runOK {
		t.Fatalf("status %q, want ok", got)
	}
	l, err := attrib.SourceAttributions(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 1 || l[0].PTR != "mail.example.com" || !l[0].PTRConfirmed || l[0].SPFMechanism != "ip4:192.0.2.0/24" {
		t.Errorf("attributions = %+v", l)
	}
	p.runOnce(context.Background(), jobAttribution, p.attributeOnce)
	if n := testutil.ToFloat64(p.m.attributed); n != 1 {
		t.Errorf("dmarcd_attributed_ips_total = %v, want 1 (the second run finds nothing new)", n)
	}
}

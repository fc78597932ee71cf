package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

// TestTheDaemonRefusesToStartWithoutOwnedDomains: an empty owned_domains
// (the default) is refused with the key and the reason; ["*"] is accepted.
func TestTheDaemonRefusesToStartWithoutOwnedDomains(t *testing.T) {
	cfg := wire.DefaultConfig()
	_, err := New(cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "config owned_domains:") || !strings.Contains(err.Error(), "anyone can send reports") {
		t.Fatalf("New without owned_domains: %v, want a refusal naming owned_domains and why", err)
	}
	cfg.OwnedDomains = []string{"*"}
	if _, err := New(cfg, Options{}); err != nil {
		t.Errorf(`New with ["*"]: %v`, err)
	}
}

// writeSelectors stores a report for example.com whose records list the
// given selectors (one record each, count messages), its mail's
// authentication being auth.
func writeSelectors(t *testing.T, st *store.Store, id, auth string, sels []string, count uint64) {
	t.Helper()
	begin := time.Now().UTC().AddDate(0, 0, -2).Truncate(24 * time.Hour)
	h := &aggregate.Header{Schema: aggregate.SchemaRFC7489, Version: "1.0", OrgName: "reporter.example", Email: "noreply@reporter.example",
		ReportID: id, Begin: begin, End: begin.Add(24*time.Hour - time.Second), Domain: "example.com"}
	i := 0
	_, err := st.WriteAggregate(context.Background(), h, store.InputMeta{Source: "file", InputName: id, AuthResult: auth}, func() (*enrich.Record, error) {
		if i == len(sels) {
			return nil, io.EOF
		}
		rec := &aggregate.Record{SourceIP: "192.0.2.1", Count: count + uint64(i), Disposition: "none", HeaderFrom: "example.com",
			DKIM: []aggregate.DKIMResult{{Domain: "example.com", Selector: sels[i], Result: "pass"}}}
		i++
		return &enrich.Record{Record: rec, HeaderFromOrg: "example.com"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPeriodicCheckOfAForgedReportWithFiveThousandSelectorsIsBounded is
// the attack: one forged report listing 5,000 DKIM selectors made each
// check send 5,001 queries. Now the selectors of a report whose mail did
// not authenticate are not looked up, and of an authenticated one at most
// dnscheck.DefaultMaxSelectors: counted on the DNS server.
func TestPeriodicCheckOfAForgedReportWithFiveThousandSelectorsIsBounded(t *testing.T) {
	srv := dnstest.Start(t, dmarcNone, spfRecord)
	cfg := periodicConfig(t, srv)
	st := openStore(t, cfg.ClickHouse.DSN)
	ls := newLazyStore(cfg, slog.New(slog.DiscardHandler))
	t.Cleanup(ls.close)
	p := newPeriodic(cfg, ls, newPeriodicMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	r, err := p.resolver()
	if err != nil {
		t.Fatal(err)
	}
	queries := func() (int64, *dnscheck.Report) {
		t.Helper()
		opts := dnscheck.Options{Resolver: r}
		if err := CheckInputs(context.Background(), st, "example.com", &opts); err != nil {
			t.Fatal(err)
		}
		before := srv.Queries()
		rep := dnscheck.Check(context.Background(), "example.com", opts)
		return srv.Queries() - before, rep
	}
	base, _ := queries() // no reports: the DMARC, SPF and rua lookups only

	forged := make([]string, 5000)
	for i := range forged {
		forged[i] = fmt.Sprintf("f%04d", i)
	}
	writeSelectors(t, st, "forged-unverified", "unverified", forged, 1000)
	writeSelectors(t, st, "forged-failed", "fail", forged, 1000)
	if n, _ := queries(); n != base {
		t.Fatalf("forged reports (unverified, failed) with 5,000 selectors: %d queries, want %d (none of their selectors)", n, base)
	}

	genuine := make([]string, 30)
	for i := range genuine {
		genuine[i] = fmt.Sprintf("s%02d", i)
	}
	writeSelectors(t, st, "genuine", "pass", genuine, 10)
	n, rep := queries()
	if n != base+dnscheck.DefaultMaxSelectors {
		t.Fatalf("an authenticated report with 30 selectors: %d queries, want %d", n, base+dnscheck.DefaultMaxSelectors)
	}
	for _, o := range rep.Records {
		if strings.HasPrefix(o.Kind, "dkim:f") {
			t.Errorf("a forged selector was looked up: %+v", o)
		}
	}
}

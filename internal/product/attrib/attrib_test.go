package attrib

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func zones(t *testing.T) *dnstest.Server {
	return dnstest.Start(t,
		`example.com. TXT "v=spf1 ip4:192.0.2.0/24 include:amazonses.com -all"`,
		`amazonses.com. TXT "v=spf1 ip4:54.240.0.0/18 -all"`,
		// confirmed
		`1.0.240.54.in-addr.arpa. PTR a1.smtp-out.amazonses.com.`,
		`a1.smtp-out.amazonses.com. A 54.240.0.1`,
		// a PTR the sender controls, pointing at a name that is not its own
		`9.113.0.203.in-addr.arpa. PTR mail.example.com.`,
		`mail.example.com. A 192.0.2.10`,
	)
}

func resolver(t *testing.T, srv *dnstest.Server) *dnscheck.Resolver {
	r, err := dnscheck.NewResolver(srv.Addr, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAttributeConfirmsPTRAndNamesSPFMechanism(t *testing.T) {
	srv := zones(t)
	a := New(resolver(t, srv), time.Millisecond)
	ctx := context.Background()
	for _, c := range []struct {
		ip, ptr   string
		confirmed bool
		mech      string
	}{
		{"54.240.0.1", "a1.smtp-out.amazonses.com", true, "include:amazonses.com"},
		{"203.0.113.9", "mail.example.com", false, ""},
		{"192.0.2.77", "", false, "ip4:192.0.2.0/24"},
	} {
		got, err := a.Attribute(ctx, netip.MustParseAddr(c.ip), []string{"nospf.example", "example.com"})
		if err != nil {
			t.Fatalf("%s: %v", c.ip, err)
		}
		if got.PTR != c.ptr || got.PTRConfirmed != c.confirmed || got.SPFMechanism != c.mech || c.mech != "" && got.SPFDomain != "example.com" {
			t.Errorf("%s: got %+v, want ptr %q confirmed %v mechanism %q", c.ip, got, c.ptr, c.confirmed, c.mech)
		}
	}
	// The SPF walk of example.com is cached: a fourth IP asks only its PTR.
	before := srv.Queries()
	if _, err := a.Attribute(ctx, netip.MustParseAddr("192.0.2.78"), []string{"example.com"}); err != nil {
		t.Fatal(err)
	}
	if n := srv.Queries() - before; n != 1 {
		t.Errorf("%d queries for a cached domain, want 1 (the PTR)", n)
	}
}

func TestAttributeTemporaryFailureIsAnError(t *testing.T) {
	srv := zones(t)
	srv.ServFail("2.0.240.54.in-addr.arpa")
	a := New(resolver(t, srv), time.Millisecond)
	if _, err := a.Attribute(context.Background(), netip.MustParseAddr("54.240.0.2"), []string{"example.com"}); err == nil {
		t.Fatal("want an error for a SERVFAIL, so the IP is tried again later")
	}
}

func TestRunAttributesStoredIPsOnce(t *testing.T) {
	srv := zones(t)
	dsn := testenv.ClickHouse(t)
	st, err := store.Open(context.Background(), dsn, store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	begin := time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)
	h := &aggregate.Header{Schema: aggregate.SchemaRFC7489, Version: "1.0", OrgName: "google.com", Email: "x@google.com",
		ReportID: "r1", Begin: begin, End: begin.Add(24*time.Hour - time.Second), Domain: "example.com"}
	recs := []*enrich.Record{
		{Record: &aggregate.Record{SourceIP: "54.240.0.1", Count: 10, Disposition: "none", HeaderFrom: "example.com"}},
		{Record: &aggregate.Record{SourceIP: "203.0.113.9", Count: 2, Disposition: "none", HeaderFrom: "example.com"}},
	}
	i := 0
	next := func() (*enrich.Record, error) {
		if i == len(recs) {
			return nil, io.EOF
		}
		i++
		return recs[i-1], nil
	}
	if _, err := st.WriteAggregate(context.Background(), h, store.InputMeta{}, next); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := Run(ctx, st, resolver(t, srv), 100)
	if err != nil || n != 2 {
		t.Fatalf("Run = %d, %v; want 2", n, err)
	}
	if n, err := Run(ctx, st, resolver(t, srv), 100); err != nil || n != 0 {
		t.Errorf("second Run = %d, %v; want 0", n, err)
	}
	got, err := SourceAttributions(ctx, st)
	if err != nil || len(got) != 2 || got[1].IP != "54.240.0.1" || got[1].SPFMechanism != "include:amazonses.com" || !got[1].PTRConfirmed {
		t.Errorf("stored %+v, %v", got, err)
	}
}

package checkdb

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/storetest"
)

// hostileDomains are policy domains a forged report (or another writer)
// may have stored, or a caller may ask about: each tries to end an SQL
// string literal, with quotes, a backslash or a NUL.
var hostileDomains = []string{
	"x' OR 1=1 --", `x\' OR 1=1 --`, `trailing.example\`, "!a.example",
	"nul\x00.example", "new\nline.example", "it's.example",
}

// TestReadersKeepHostileDomainsStrings asks every reader that takes a
// domain about hostile domains: each finds the rows of that very domain
// (DNS records stored under it) or none (no records), never those of
// example.com. RecentPolicyDomains, whose names the daemon looks up in DNS,
// leaves out stored policy domains outside DNS syntax.
func TestReadersKeepHostileDomainsStrings(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	recent := time.Now().UTC().AddDate(0, 0, -3).Truncate(24 * time.Hour)
	storetest.Write(t, s, storetest.Header("google.com", "r1", "example.com", recent), storetest.GenRows(3, "example.com"))
	var recs []DNSRecord
	for _, d := range append([]string{"example.com"}, hostileDomains...) {
		recs = append(recs, DNSRecord{Domain: d, Kind: "dmarc", Name: "_dmarc." + d, Value: "v=DMARC1; p=none", Initial: true, CheckedAt: recent})
		// A report row under d, as a writer without the syntax check left it.
		b, err := s.PrepareBatch(ctx, "INSERT INTO aggregate_reports (report_key, policy_domain, date_begin)")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Append("k-"+d, d, recent); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteDNSRecords(ctx, s, recs); err != nil {
		t.Fatal(err)
	}
	for _, d := range hostileDomains {
		latest, err := LatestDNSRecords(ctx, s, d)
		if err != nil || len(latest) != 1 || latest["dmarc"].Name != "_dmarc."+d {
			t.Errorf("LatestDNSRecords(%q) = %+v, %v; want its one record", d, latest, err)
		}
		rows, err := DNSRecords(ctx, s, d)
		if err != nil || len(rows) != 1 || rows[0].Domain != d {
			t.Errorf("DNSRecords(%q) = %+v, %v; want its one row", d, rows, err)
		}
		sels, err := DKIMSelectorsOf(ctx, s, d)
		if err != nil || len(sels) != 0 {
			t.Errorf("DKIMSelectorsOf(%q) = %+v, %v; want none", d, sels, err)
		}
		if m, a, err := DomainTraffic(ctx, s, d); err != nil || m != 0 || a != 0 {
			t.Errorf("DomainTraffic(%q) = %d, %d, %v; want 0, 0", d, m, a, err)
		}
	}
	if m, _, err := DomainTraffic(ctx, s, "example.com"); err != nil || m == 0 {
		t.Fatalf("DomainTraffic(example.com) = %d, %v: the seeded records are missing", m, err)
	}
	got, err := RecentPolicyDomains(ctx, s, recent.AddDate(0, 0, -1))
	if err != nil || !slices.Equal(got, []string{"example.com"}) {
		t.Errorf("RecentPolicyDomains = %q, %v; want example.com alone", got, err)
	}
}

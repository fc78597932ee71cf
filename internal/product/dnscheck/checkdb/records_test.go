package checkdb

import (
	"context"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/storetest"
)

// TestDNSRecordsLatestOrdersRowsOfOneSecond: two rows of one record written
// in the same second: the later write (checked_ns) is the latest, and the
// rows come back in the order they were written.
func TestDNSRecordsLatestOrdersRowsOfOneSecond(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 100, time.UTC)
	rows := []DNSRecord{
		{Domain: "example.com", Kind: "dmarc", Name: "_dmarc.example.com", Value: "v=DMARC1; p=none", Initial: true, Change: "first seen: v=DMARC1; p=none", CheckedAt: t0},
		{Domain: "example.com", Kind: "spf", Name: "example.com", Value: "v=spf1 -all", Initial: true, CheckedAt: t0},
		{Domain: "example.org", Kind: "dmarc", Name: "_dmarc.example.org", Value: "v=DMARC1; p=reject", Initial: true, CheckedAt: t0},
	}
	if err := WriteDNSRecords(ctx, s, rows); err != nil {
		t.Fatal(err)
	}
	next := DNSRecord{Domain: "example.com", Kind: "dmarc", Name: "_dmarc.example.com", Value: "v=DMARC1; p=quarantine",
		Previous: "v=DMARC1; p=none", Change: "p=none → p=quarantine", Findings: "warning: x", Warnings: 1, CheckedAt: t0.Add(time.Millisecond)}
	if err := WriteDNSRecords(ctx, s, []DNSRecord{next}); err != nil {
		t.Fatal(err)
	}
	latest, err := LatestDNSRecords(ctx, s, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 2 || latest["dmarc"].Value != next.Value || latest["spf"].Value != "v=spf1 -all" {
		t.Errorf("latest = %+v, want p=quarantine and the SPF record", latest)
	}
	got, err := DNSRecords(ctx, s, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Change != next.Change || got[2].Initial || !got[0].Initial || got[2].Warnings != 1 ||
		got[2].Previous != "v=DMARC1; p=none" || !got[2].CheckedAt.Equal(t0.Truncate(time.Second)) {
		t.Errorf("rows of example.com = %+v", got)
	}
	if all, _ := DNSRecords(ctx, s, ""); len(all) != 4 {
		t.Errorf("all rows: %d, want 4", len(all))
	}
}

func TestRecentPolicyDomains(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	old := time.Now().UTC().AddDate(0, 0, -60).Truncate(24 * time.Hour)
	recent := time.Now().UTC().AddDate(0, 0, -3).Truncate(24 * time.Hour)
	storetest.Write(t, s, storetest.Header("google.com", "r1", "example.com", recent), storetest.GenRows(1, "example.com"))
	storetest.Write(t, s, storetest.Header("google.com", "r2", "old.example", old), storetest.GenRows(1, "old.example"))
	storetest.Write(t, s, storetest.Header("yahoo.com", "r3", "a.example", recent), storetest.GenRows(1, "a.example"))
	got, err := RecentPolicyDomains(ctx, s, time.Now().AddDate(0, 0, -30))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "a.example" || got[1] != "example.com" {
		t.Errorf("recent domains = %v, want [a.example example.com]", got)
	}
}

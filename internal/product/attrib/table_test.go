package attrib

import (
	"context"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/product/dnscheck/checkdb"
	"github.com/dmarcd/dmarcd/internal/testkit/storetest"
	"github.com/dmarcd/dmarcd/parse/align"
)

func TestSourceAttributionRoundTripAndUnattributed(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	r := align.Relaxed
	storetest.Write(t, s, storetest.Header("google.com", "a1", "example.com", storetest.Jan2024), storetest.Rows(
		storetest.AuthRow("54.240.0.1", 100, "example.com", []string{"example.com/sel1/pass", "amazonses.com/x/pass"}, []string{"mail.example.com/pass"}, nil, r, r),
		storetest.AuthRow("54.240.0.2", 5, "example.com", []string{"example.com/sel2/fail"}, nil, nil, r, r),
		storetest.AuthRow("203.0.113.9", 7, "news.example.com", nil, nil, nil, r, r),
	))
	u, err := UnattributedIPs(ctx, s, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 3 || u[0].IP != "54.240.0.1" || u[1].IP != "203.0.113.9" || len(u[1].Domains) != 2 {
		t.Fatalf("unattributed = %+v", u)
	}
	now := time.Now().UTC().Truncate(time.Second)
	err = WriteAttributions(ctx, s, []SourceAttribution{
		{IP: "54.240.0.1", PTR: "a1-1.smtp-out.amazonses.com", PTRConfirmed: true, SPFDomain: "example.com", SPFMechanism: "include:amazonses.com", CheckedAt: now.Add(-time.Hour)},
		{IP: "54.240.0.1", PTR: "a1-1.smtp-out.amazonses.com", PTRConfirmed: true, SPFDomain: "example.com", SPFMechanism: "include:amazonses.com", CheckedAt: now},
		{IP: "203.0.113.9", CheckedAt: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := SourceAttributions(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].IP != "54.240.0.1" || !got[1].PTRConfirmed || got[1].SPFMechanism != "include:amazonses.com" || !got[1].CheckedAt.Equal(now) {
		t.Errorf("attributions = %+v", got)
	}
	if u, _ := UnattributedIPs(ctx, s, 10); len(u) != 1 || u[0].IP != "54.240.0.2" {
		t.Errorf("after writing, unattributed = %+v", u)
	}
	sels, err := checkdb.DKIMSelectorsOf(ctx, s, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(sels) != 2 || sels[0].Selector != "sel1" || sels[0].Passed != 100 || sels[1].Passed != 0 || sels[1].Messages != 5 {
		t.Errorf("selectors = %+v", sels)
	}
	m, a, err := checkdb.DomainTraffic(ctx, s, "news.example.com")
	if err != nil || m != 7 || a != 0 {
		t.Errorf("traffic = %d, %d, %v", m, a, err)
	}
}

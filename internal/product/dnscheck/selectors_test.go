package dnscheck

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
)

// TestFiveThousandSelectorsCostAtMostTheBoundInQueries is the attack: one
// forged report listing 5,000 DKIM selectors (and some that are not DNS
// names, or point outside the domain) made the check send 5,001 queries.
// Counted on the DNS server: the check of a domain without selectors, plus
// at most DefaultMaxSelectors key lookups, and those are the busiest.
func TestFiveThousandSelectorsCostAtMostTheBoundInQueries(t *testing.T) {
	srv := dnstest.Start(t,
		`_dmarc.example.com. 300 IN TXT "v=DMARC1; p=none"`,
		`example.com. 300 IN TXT "v=spf1 -all"`,
	)
	base := srv.Queries()
	Check(context.Background(), "example.com", Options{Resolver: resolver(t, srv), Traffic: &Traffic{}})
	perDomain := srv.Queries() - base

	var sels []Selector
	for i := range 5000 {
		sels = append(sels, Selector{Domain: "example.com", Selector: fmt.Sprintf("f%04d", i), Messages: uint64(i)})
	}
	sels = append(sels,
		Selector{Domain: "example.com", Selector: "x\x00y", Messages: 1 << 40},
		Selector{Domain: "example.com", Selector: strings.Repeat("a", 300), Messages: 1 << 40},
		Selector{Domain: "attacker.example.net", Selector: "s1", Messages: 1 << 40})
	before := srv.Queries()
	rep := Check(context.Background(), "example.com", Options{Resolver: resolver(t, srv), Selectors: sels, Traffic: &Traffic{}})
	sent := srv.Queries() - before
	if sent > perDomain+DefaultMaxSelectors {
		t.Fatalf("%d queries, want at most %d (%d for the domain, %d keys)", sent, perDomain+DefaultMaxSelectors, perDomain, DefaultMaxSelectors)
	}
	var looked []string
	for _, o := range rep.Records {
		if strings.HasPrefix(o.Kind, "dkim:") {
			looked = append(looked, o.Name)
		}
	}
	if len(looked) != DefaultMaxSelectors || looked[0] != "f4980._domainkey.example.com" || looked[DefaultMaxSelectors-1] != "f4999._domainkey.example.com" {
		t.Errorf("keys looked up %q, want the %d busiest f4980..f4999", looked, DefaultMaxSelectors)
	}
	var notes []string
	for _, f := range findings(rep, "dkim", SevInfo) {
		if f.Subject == "example.com" {
			notes = append(notes, f.Message)
		}
	}
	all := strings.Join(notes, "\n")
	if !strings.Contains(all, "3 selector(s) seen in the reports not looked up") || !strings.Contains(all, "5000 selectors seen; the 20 on the most messages were looked up") {
		t.Errorf("the findings do not say what was left out:\n%s", all)
	}
}

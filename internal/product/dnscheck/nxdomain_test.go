package dnscheck

import (
	"context"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
)

// A resolver that answers NXDOMAIN for every name (a captive portal, a
// broken or filtering resolver) is named as the problem: not "no DMARC
// record", not "no SPF record", which would send the user to fix records
// that may be fine.
func TestAResolverDenyingEveryNameIsBlamedNotTheRecords(t *testing.T) {
	srv := dnstest.Start(t) // holds nothing: NXDOMAIN for everything
	rep := Check(context.Background(), "example.com", Options{Resolver: resolver(t, srv), StoreNote: "x"})
	dnsF := findings(rep, "dns", SevError)
	if len(dnsF) != 1 || !strings.Contains(dnsF[0].Message, "DNS on this machine is the problem") || !strings.Contains(dnsF[0].Fix, "--resolver") {
		t.Fatalf("want one dns error blaming the resolver, with --resolver as the fix:\n%s", dump(rep))
	}
	if len(rep.Findings) != 1 {
		t.Errorf("want only the dns finding (the other checks cannot say anything):\n%s", dump(rep))
	}
}

// A domain that does not exist (a typo) is said to not exist, when DNS
// itself works (its top-level domain answers).
func TestADomainThatDoesNotExistIsSaidToNotExist(t *testing.T) {
	srv := dnstest.Start(t, "com. 300 IN NS a.gtld-servers.net.", txt("example.com.", "v=spf1 -all"))
	rep := Check(context.Background(), "exmaple.com", Options{Resolver: resolver(t, srv), StoreNote: "x"})
	dnsF := findings(rep, "dns", SevError)
	if len(dnsF) != 1 || !strings.Contains(dnsF[0].Message, "exmaple.com does not exist in DNS") || !strings.Contains(dnsF[0].Fix, "spelling") {
		t.Fatalf("want one dns error saying the domain does not exist:\n%s", dump(rep))
	}
	if len(findings(rep, "dmarc", "")) != 0 || len(findings(rep, "spf", "")) != 0 {
		t.Errorf("no dmarc or spf finding for a name that does not exist:\n%s", dump(rep))
	}
	// An existing domain without a record still gets the usual finding.
	rep = Check(context.Background(), "example.com", Options{Resolver: resolver(t, srv), StoreNote: "x"})
	if l := findings(rep, "dmarc", SevError); len(l) != 1 || !strings.Contains(l[0].Message, "no DMARC record") || len(findings(rep, "dns", "")) != 0 {
		t.Errorf("existing domain without DMARC:\n%s", dump(rep))
	}
}

// Advice about Amazon SES (three Easy DKIM selectors, their CNAMEs) appears
// for SES selectors only, not for a self-hosted signer's.
func TestSESAdviceOnlyForSESSelectors(t *testing.T) {
	srv := dnstest.Start(t, txt("_dmarc.example.com.", "v=DMARC1; p=none; rua=mailto:d@example.com"), txt("example.com.", "v=spf1 -all"))
	own := []Selector{{Domain: "example.com", Selector: "mail2024", Messages: 10}}
	rep := Check(context.Background(), "example.com", Options{Resolver: resolver(t, srv), Selectors: own, Traffic: &Traffic{Messages: 10, Authenticated: 10}})
	for _, f := range findings(rep, "dkim", "") {
		if strings.Contains(f.Message+f.Fix, "SES") {
			t.Errorf("SES advice for selector mail2024: %s / %s", f.Message, f.Fix)
		}
	}
	ses := []Selector{{Domain: "example.com", Selector: "a66wkfbz3zwxdt2n5p6d7lj2ja7sdwuc", Messages: 10}}
	rep = Check(context.Background(), "example.com", Options{Resolver: resolver(t, srv), Selectors: ses, Traffic: &Traffic{Messages: 10, Authenticated: 10}})
	var said bool
	for _, f := range findings(rep, "dkim", "") {
		said = said || strings.Contains(f.Message+f.Fix, "Amazon SES")
	}
	if !said {
		t.Errorf("no SES advice for an Easy DKIM token selector:\n%s", dump(rep))
	}
}

package dnscheck

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
)

func resolver(t *testing.T, srv *dnstest.Server) *Resolver {
	t.Helper()
	r, err := NewResolver(srv.Addr, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rsaKeyRecord(t *testing.T, bits int) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}

// txt renders a TXT record, split in 255-byte strings as DNS requires.
func txt(name, value string) string {
	var parts []string
	for len(value) > 200 {
		parts = append(parts, fmt.Sprintf("%q", value[:200]))
		value = value[200:]
	}
	parts = append(parts, fmt.Sprintf("%q", value))
	return name + " 300 IN TXT " + strings.Join(parts, " ")
}

func findings(rep *Report, check string, sev Severity) []Finding {
	var l []Finding
	for _, f := range rep.Findings {
		if f.Check == check && (sev == "" || f.Severity == sev) {
			l = append(l, f)
		}
	}
	return l
}

func dump(rep *Report) string {
	var b strings.Builder
	for _, f := range rep.Findings {
		fmt.Fprintf(&b, "  %s %s %s: %s\n", f.Severity, f.Check, f.Subject, f.Message)
	}
	return b.String()
}

// TestGoodRecordSetHasNoErrors: an SES domain with a custom MAIL FROM, its
// DKIM selectors CNAME'd to amazonses.com (one active), an authorised
// external rua, and a strict SPF record within the limits.
func TestGoodRecordSetHasNoErrors(t *testing.T) {
	key := rsaKeyRecord(t, 2048)
	srv := dnstest.Start(t,
		txt("_dmarc.example.com.", "v=DMARC1; p=reject; rua=mailto:dmarc@example.com,mailto:r@reports.example.net; adkim=r"),
		txt("example.com._report._dmarc.reports.example.net.", "v=DMARC1"),
		txt("example.com.", "v=spf1 ip4:192.0.2.0/24 mx include:amazonses.com -all"),
		"example.com. 300 IN MX 10 mx.example.com.",
		"mx.example.com. 300 IN A 192.0.2.25",
		txt("amazonses.com.", "v=spf1 ip4:54.240.0.0/18 ip4:23.249.208.0/20 -all"),
		"sel1._domainkey.example.com. 300 IN CNAME sel1.dkim.amazonses.com.",
		"sel2._domainkey.example.com. 300 IN CNAME sel2.dkim.amazonses.com.",
		txt("sel1.dkim.amazonses.com.", key),
	)
	rep := Check(context.Background(), "Example.COM.", Options{Resolver: resolver(t, srv),
		Selectors: []Selector{{Domain: "example.com", Selector: "sel1", Messages: 10, Passed: 10}, {Domain: "example.com", Selector: "sel2", Messages: 3}},
		Traffic:   &Traffic{Messages: 13, Authenticated: 13}})
	if rep.Errors() != 0 || len(findings(rep, "", SevWarning)) != 0 {
		t.Fatalf("want no errors or warnings, got:\n%s", dump(rep))
	}
	if rep.SPFLookups != 2 {
		t.Errorf("SPF lookups = %d, want 2 (mx, include)", rep.SPFLookups)
	}
	if l := findings(rep, "rua", SevInfo); len(l) != 1 || !strings.Contains(l[0].Message, "is authorised") {
		t.Errorf("rua findings = %+v", l)
	}
	dk := findings(rep, "dkim", SevInfo)
	if len(dk) != 2 || !strings.Contains(dk[0].Message, "key ok: RSA 2048 bits (via CNAME to sel1.dkim.amazonses.com)") || !strings.Contains(dk[1].Message, "no key published") {
		t.Errorf("dkim findings:\n%s", dump(rep))
	}
}

// TestMissingDMARCFallsBackToOrganizationalDomain: a subdomain without its
// own record gets the parent's sp=, found by the tree walk.
func TestMissingDMARCFallsBackToOrganizationalDomain(t *testing.T) {
	srv := dnstest.Start(t,
		txt("_dmarc.example.com.", "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.com"),
		txt("news.mail.example.com.", "v=spf1 -all"),
	)
	rep := Check(context.Background(), "news.mail.example.com", Options{Resolver: resolver(t, srv), StoreNote: "no store"})
	if rep.Errors() != 0 {
		t.Fatalf("errors:\n%s", dump(rep))
	}
	if rep.DMARCName != "_dmarc.example.com" || rep.OrgDomain != "example.com" || rep.OrgDomainPSL != "example.com" {
		t.Errorf("found %s, org %s / %s", rep.DMARCName, rep.OrgDomain, rep.OrgDomainPSL)
	}
	if l := findings(rep, "dmarc", SevInfo); len(l) == 0 || !strings.Contains(l[0].Message, "sp=quarantine") {
		t.Errorf("want a note on the inherited sp=quarantine:\n%s", dump(rep))
	}
	if l := findings(rep, "store", SevInfo); len(l) != 1 {
		t.Errorf("want the skipped-store note:\n%s", dump(rep))
	}
}

func TestNoDMARCAnywhereIsAnError(t *testing.T) {
	srv := dnstest.Start(t, txt("example.org.", "v=spf1 -all"))
	rep := Check(context.Background(), "example.org", Options{Resolver: resolver(t, srv), StoreNote: "x"})
	if l := findings(rep, "dmarc", SevError); len(l) != 1 || !strings.Contains(l[0].Message, "no DMARC record") {
		t.Fatalf("got:\n%s", dump(rep))
	}
}

func TestTreeWalkStopsAtPSDAndShortensLongNames(t *testing.T) {
	srv := dnstest.Start(t,
		txt("_dmarc.bank.example.", "v=DMARC1; p=reject; psd=y"),
		txt("_dmarc.example.", "v=DMARC1; p=none"),
	)
	r := resolver(t, srv)
	names, recs, err := r.TreeWalk(context.Background(), "a.b.c.d.e.f.g.h.i.j.mail.bank.example")
	if err != nil {
		t.Fatal(err)
	}
	want := "a.b.c.d.e.f.g.h.i.j.mail.bank.example g.h.i.j.mail.bank.example h.i.j.mail.bank.example i.j.mail.bank.example j.mail.bank.example mail.bank.example bank.example"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("walk\n got %s\nwant %s", got, want)
	}
	if org := OrgDomainTreeWalk(names[0], names, recs); org != "mail.bank.example" {
		t.Errorf("org domain = %s, want mail.bank.example (one below the psd=y record)", org)
	}
}

func TestExternalRUANotAuthorisedIsAnError(t *testing.T) {
	srv := dnstest.Start(t,
		txt("_dmarc.example.com.", "v=DMARC1; p=none; rua=mailto:a@authorised.example.net,mailto:b@other.example.org; ruf=mailto:c@wild.example.io"),
		txt("example.com._report._dmarc.authorised.example.net.", "v=DMARC1;"),
		txt("*._report._dmarc.wild.example.io.", "v=DMARC1"),
		txt("example.com.", "v=spf1 -all"),
	)
	rep := Check(context.Background(), "example.com", Options{Resolver: resolver(t, srv), StoreNote: "x"})
	errs := findings(rep, "rua", SevError)
	if len(errs) != 1 || errs[0].Subject != "example.com._report._dmarc.other.example.org" {
		t.Fatalf("rua errors:\n%s", dump(rep))
	}
	if len(findings(rep, "rua", SevInfo)) != 1 || len(findings(rep, "ruf", SevInfo)) != 1 {
		t.Errorf("want authorised rua and wildcard-authorised ruf:\n%s", dump(rep))
	}
}

func TestSPFIncludeLoopIsFound(t *testing.T) {
	srv := dnstest.Start(t,
		txt("example.com.", "v=spf1 include:a.example.net -all"),
		txt("a.example.net.", "v=spf1 include:b.example.net -all"),
		txt("b.example.net.", "v=spf1 include:a.example.net -all"),
	)
	w, err := resolver(t, srv).WalkSPF(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Problems) != 1 || !strings.Contains(w.Problems[0].Message, "SPF loop") || !strings.Contains(w.Problems[0].Message, "example.com → a.example.net → b.example.net → a.example.net") {
		t.Fatalf("problems: %+v", w.Problems)
	}
}

func TestSPFOverTenLookupsIsAnError(t *testing.T) {
	recs := []string{txt("example.com.", "v=spf1 include:s1.example.net include:s2.example.net a -all"),
		"example.com. A 192.0.2.1"}
	// s1 includes 4 more, s2 includes 4 more, each with an mx: 2+1+8+... lookups
	for i := 1; i <= 2; i++ {
		var inc []string
		for j := 1; j <= 4; j++ {
			n := fmt.Sprintf("s%d-%d.example.net", i, j)
			inc = append(inc, "include:"+n)
			recs = append(recs, txt(n+".", "v=spf1 ip4:198.51.100.0/24 ~all"))
		}
		recs = append(recs, txt(fmt.Sprintf("s%d.example.net.", i), "v=spf1 "+strings.Join(inc, " ")+" ~all"))
	}
	srv := dnstest.Start(t, recs...)
	rep := Check(context.Background(), "example.com", Options{Resolver: resolver(t, srv), StoreNote: "x"})
	if rep.SPFLookups != 11 {
		t.Errorf("lookups = %d, want 11", rep.SPFLookups)
	}
	if l := findings(rep, "spf", SevError); len(l) != 1 || !strings.Contains(l[0].Message, "11 DNS lookups, more than the limit of 10") {
		t.Fatalf("spf errors:\n%s", dump(rep))
	}
}

func TestSPFVoidLookupsAndSoftAll(t *testing.T) {
	srv := dnstest.Start(t,
		txt("example.com.", "v=spf1 a:gone1.example.com a:gone2.example.com mx:gone3.example.com ptr ~all"),
	)
	w, err := resolver(t, srv).WalkSPF(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, p := range w.Problems {
		msgs = append(msgs, string(p.Severity)+": "+p.Message)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"error: SPF has 3 void lookups", "warning: SPF of example.com uses ptr", "info: SPF of example.com ends with ~all"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in\n%s", want, all)
		}
	}
}

func TestServFailAndTimeoutAreTemporary(t *testing.T) {
	srv := dnstest.Start(t)
	srv.ServFail("_dmarc.broken.example")
	srv.Timeout("slow.example")
	r := resolver(t, srv)
	ctx := context.Background()
	if _, err := r.TXT(ctx, "_dmarc.broken.example"); !errors.Is(err, ErrTemporary) || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Errorf("SERVFAIL: err = %v", err)
	}
	start := time.Now()
	if _, err := r.TXT(ctx, "slow.example"); !errors.Is(err, ErrTemporary) {
		t.Errorf("timeout: err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v with a 300ms timeout", d)
	}
	if _, err := r.TXT(ctx, "nothing.example"); !errors.Is(err, ErrNXDomain) {
		t.Errorf("NXDOMAIN: err = %v", err)
	}
	rep := Check(ctx, "broken.example", Options{Resolver: r, StoreNote: "x"})
	if l := findings(rep, "dmarc", SevError); len(l) != 1 || !strings.Contains(l[0].Message, "cannot read") {
		t.Errorf("a SERVFAIL of _dmarc must be a 'cannot read' error:\n%s", dump(rep))
	}
}

// TestCNAMEChainLikeSESDKIM: a CNAME chain of three hops is followed; a
// dangling one is a missing key, not an error.
func TestCNAMEChainLikeSESDKIM(t *testing.T) {
	key := rsaKeyRecord(t, 1024)
	srv := dnstest.Start(t,
		"s1._domainkey.example.com. CNAME s1.dkim.example.net.",
		"s1.dkim.example.net. CNAME s1.keys.example.org.",
		txt("s1.keys.example.org.", key),
		"s2._domainkey.example.com. CNAME s2.dkim.amazonses.com.",
	)
	r := resolver(t, srv)
	a, err := r.Lookup(context.Background(), "s1._domainkey.example.com", 16)
	if err != nil || len(a.Records) != 1 || strings.Join(a.CNAMEs, " ") != "s1._domainkey.example.com. s1.dkim.example.net." {
		t.Fatalf("chain: %+v, %v", a, err)
	}
	rep := &Report{Domain: "example.com"}
	checkDKIM(context.Background(), r, rep, []Selector{{Domain: "example.com", Selector: "s1"}, {Domain: "example.com", Selector: "s2"}})
	if len(findings(rep, "dkim", SevWarning)) != 1 || !strings.Contains(findings(rep, "dkim", SevWarning)[0].Message, "RSA key of 1024 bits") || rep.Errors() != 0 {
		t.Errorf("got:\n%s", dump(rep))
	}
}

func TestParkedDomainGetsLockDownAdvice(t *testing.T) {
	srv := dnstest.Start(t, txt("_dmarc.parked.example.", "v=DMARC1; p=none; rua=mailto:d@parked.example"))
	rep := Check(context.Background(), "parked.example", Options{Resolver: resolver(t, srv), Traffic: &Traffic{Messages: 40}})
	l := findings(rep, "parked", SevWarning)
	if len(l) != 1 || !strings.Contains(l[0].Fix, `"v=spf1 -all"`) || !strings.Contains(l[0].Fix, "p=reject") {
		t.Fatalf("got:\n%s", dump(rep))
	}
}

func TestCoveringNamesTheTopLevelMechanism(t *testing.T) {
	srv := dnstest.Start(t,
		txt("example.com.", "v=spf1 ip4:192.0.2.0/24 a:web.example.com include:amazonses.com -include:bad.example ip6:2001:db8::/32 -all"),
		"web.example.com. A 198.51.100.7",
		txt("amazonses.com.", "v=spf1 include:deep.amazonses.com -all"),
		txt("deep.amazonses.com.", "v=spf1 ip4:54.240.0.0/18 -all"),
		txt("bad.example.", "v=spf1 ip4:203.0.113.0/24 -all"),
	)
	w, err := resolver(t, srv).WalkSPF(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]string{
		"192.0.2.9": "ip4:192.0.2.0/24", "198.51.100.7": "a:web.example.com", "54.240.1.1": "include:amazonses.com",
		"203.0.113.5": "", "2001:db8::1": "ip6:2001:db8::/32", "10.0.0.1": "", "::ffff:54.240.1.1": "include:amazonses.com",
	} {
		if got := w.Covering(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Covering(%s) = %q, want %q", ip, got, want)
		}
	}
}

func TestParseDMARCFlagsBadValues(t *testing.T) {
	_, fs := ParseDMARC("_dmarc.x", "v=DMARC1; p=block; pct=150; adkim=x; fo=2; rua=http://x")
	var got []string
	for _, f := range fs {
		if f.Severity == SevError {
			got = append(got, f.Message)
		}
	}
	if len(got) != 5 {
		t.Fatalf("want 5 errors (p, adkim, pct, fo, rua), got %d:\n%s", len(got), strings.Join(got, "\n"))
	}
}

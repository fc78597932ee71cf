// Package dnscheck checks the DNS posture of a mail domain for DMARC: its
// DMARC record (found at the domain, by the RFC 9989 tree walk, or at the
// organizational domain of the public suffix list), its SPF record (syntax,
// the 10-lookup and 2-void-lookup limits of RFC 7208 §4.6.4 counted through
// every include and redirect, loops, the "all" term), the DKIM keys of the
// selectors seen in stored reports, the authorisation of external report
// destinations (RFC 9990 §4) and parked domains. Each problem is a Finding
// with a severity and the fix.
//
// DNS goes through Resolver (github.com/miekg/dns) to one recursive server,
// so tests run it against a loopback server (package dnstest).
package dnscheck

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Severity of a finding.
type Severity string

const (
	SevError   Severity = "error"   // mail is or will be lost or unprotected: fix it
	SevWarning Severity = "warning" // likely wrong, or in the way of enforcement
	SevInfo    Severity = "info"    // worth knowing, nothing to fix
)

// Finding is one result of a check.
type Finding struct {
	Check    string   `json:"check"` // dns, dmarc, rua, spf, dkim, parked, store
	Severity Severity `json:"severity"`
	Subject  string   `json:"subject"` // the DNS name or domain concerned
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
}

// Selector is a DKIM d=/s= pair seen in stored reports for the domain.
type Selector struct {
	Domain   string `json:"domain"`
	Selector string `json:"selector"`
	Messages uint64 `json:"messages"`
	Passed   uint64 `json:"passed"` // messages with a DKIM pass for it
}

// Traffic is what the stored reports say about the domain's mail.
type Traffic struct {
	Messages      uint64 `json:"messages"`
	Authenticated uint64 `json:"authenticated"` // with any SPF or DKIM pass
}

// Options are the inputs of Check besides DNS.
type Options struct {
	Resolver *Resolver
	// Selectors and Traffic come from the store; StoreNote, when not
	// empty, says why they are missing and the checks that need them are
	// skipped.
	Selectors []Selector
	Traffic   *Traffic
	StoreNote string
	// MaxSelectors bounds the DKIM keys looked up (DefaultMaxSelectors
	// when 0): those of the selectors on the most messages.
	MaxSelectors int
}

// DefaultMaxSelectors is the default of Options.MaxSelectors: a domain
// rarely signs with more than a handful of selectors, and each costs a
// DNS query (a forged report can list thousands).
const DefaultMaxSelectors = 20

// Report is the outcome of Check for one domain.
type Report struct {
	Domain       string    `json:"domain"`
	DMARCName    string    `json:"dmarc_name,omitempty"` // where the applicable record was found
	DMARCRecord  string    `json:"dmarc_record,omitempty"`
	OrgDomain    string    `json:"org_domain"` // RFC 9989 tree walk
	OrgDomainPSL string    `json:"org_domain_psl"`
	SPFRecord    string    `json:"spf_record,omitempty"`
	SPFLookups   int       `json:"spf_lookups"`
	Findings     []Finding `json:"findings"`
	// Records are the record values Check read, for change tracking
	// (the daemon stores each change in dns_records).
	Records []Observation `json:"records,omitempty"`

	// missing: the domain does not exist, or the resolver denies every
	// name (a "dns" finding says which); the other checks are skipped.
	missing bool
}

// Observation is one DNS record as Check read it.
type Observation struct {
	// Kind is dmarc, spf, dkim:SELECTOR (dkim:SELECTOR:D for a key of a
	// subdomain d=), or report_auth:HOST (the authorisation of an
	// external rua/ruf destination).
	Kind  string `json:"kind"`
	Name  string `json:"name"`  // the DNS name the record was found at
	Value string `json:"value"` // the record; "" when none is published
	// Err, when not empty, says why the record could not be read (a
	// temporary DNS failure): Value is unknown.
	Err string `json:"error,omitempty"`
}

func (r *Report) observe(kind, name, value string, err error) {
	o := Observation{Kind: kind, Name: name, Value: value}
	if err != nil {
		o.Value, o.Err = "", err.Error()
	}
	r.Records = append(r.Records, o)
}

// Errors returns the number of error findings.
func (r *Report) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == SevError {
			n++
		}
	}
	return n
}

func (r *Report) add(check string, sev Severity, subject, msg, fix string) {
	r.Findings = append(r.Findings, Finding{Check: check, Severity: sev, Subject: subject, Message: msg, Fix: fix})
}

// Check runs every check on domain. DNS failures become findings; Check
// itself does not fail.
func Check(ctx context.Context, domain string, o Options) *Report {
	domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	rep := &Report{Domain: domain, Findings: []Finding{}}
	rec := checkDMARC(ctx, o.Resolver, rep)
	if rep.missing {
		return rep
	}
	if rec != nil {
		checkReportURIs(ctx, o.Resolver, rep, rec)
	}
	spfAll := checkSPF(ctx, o.Resolver, rep)
	if o.StoreNote != "" {
		rep.add("store", SevInfo, domain, "DKIM selectors and parked-domain checks skipped: "+o.StoreNote, "run with a reachable ClickHouse (DMARCD_CLICKHOUSE_DSN or --config)")
	} else {
		checkDKIM(ctx, o.Resolver, rep, boundSelectors(rep, o.Selectors, o.MaxSelectors))
		checkParked(rep, rec, spfAll, o.Traffic)
	}
	return rep
}

func orgPSL(domain string) string {
	if o, err := publicsuffix.EffectiveTLDPlusOne(domain); err == nil {
		return o
	}
	return domain
}

// checkDMARC finds the record that applies to the domain's mail (RFC 9989
// §4.10.1) and checks it.
func checkDMARC(ctx context.Context, r *Resolver, rep *Report) *DMARCRecord {
	d := rep.Domain
	rep.OrgDomainPSL = orgPSL(d)
	names, records, err := r.TreeWalk(ctx, d)
	if err != nil {
		rep.OrgDomain = d
		rep.observe("dmarc", "_dmarc."+d, "", err)
		rep.add("dmarc", SevError, "_dmarc."+d, "cannot read the DMARC record: "+err.Error(), "check the domain's name servers; receivers that cannot read the record do not apply DMARC")
		return nil
	}
	rep.OrgDomain = OrgDomainTreeWalk(d, names, records)
	if rep.OrgDomain != rep.OrgDomainPSL {
		rep.add("dmarc", SevWarning, d, fmt.Sprintf("the organizational domain is %s by the RFC 9989 tree walk but %s by the public suffix list (RFC 7489): receivers may disagree on relaxed alignment", rep.OrgDomain, rep.OrgDomainPSL),
			"publish a DMARC record with psd=n at the intended organizational domain, or use strict alignment")
	}
	at := d
	text, ok := records[d]
	if !ok {
		for _, n := range names[1:] {
			if t, found := records[n]; found {
				at, text, ok = n, t, true
				break
			}
		}
	}
	if !ok {
		// RFC 7489 receivers look at the PSL organizational domain only.
		t, _, err := r.dmarcAt(ctx, rep.OrgDomainPSL)
		if err == nil && t != "" {
			at, text, ok = rep.OrgDomainPSL, t, true
		}
		if !ok {
			rep.observe("dmarc", "_dmarc."+d, "", err)
		}
	}
	if !ok && checkExists(ctx, r, rep) {
		rep.add("dmarc", SevError, "_dmarc."+d, "no DMARC record at the domain or any parent: receivers apply no DMARC policy and send no reports",
			fmt.Sprintf("publish TXT _dmarc.%s \"v=DMARC1; p=none; rua=mailto:dmarc@%s\", then follow `dmarcd readiness`", rep.OrgDomainPSL, rep.OrgDomainPSL))
		return nil
	}
	if !ok {
		return nil
	}
	rec, fs := ParseDMARC("_dmarc."+at, text)
	rep.DMARCName, rep.DMARCRecord = rec.Name, text
	rep.observe("dmarc", rec.Name, text, nil)
	rep.Findings = append(rep.Findings, fs...)
	if at != d {
		tag := "sp"
		if _, has := rec.Tags["sp"]; !has {
			tag = "p"
		}
		rep.add("dmarc", SevInfo, "_dmarc."+d, fmt.Sprintf("no record at _dmarc.%s: the policy comes from _dmarc.%s (%s=%s; np= for names that do not exist)", d, at, tag, rec.Tag(tag, "none")),
			"nothing, unless this domain needs its own policy or its own rua")
	}
	applied := rec.Tag("p", "none")
	if at != d {
		applied = rec.Tag("sp", applied)
	}
	if strings.EqualFold(applied, "none") {
		rep.add("dmarc", SevInfo, rec.Name, "policy none for "+d+": monitoring only, spoofed mail is delivered", "`dmarcd readiness "+d+"` tells when p=quarantine, then p=reject, is safe")
	}
	if rec.Tag("t", "n") == "y" {
		rep.add("dmarc", SevInfo, rec.Name, "t=y: receivers apply the policy one level below (testing mode)", "remove t=y once readiness shows no legitimate mail would be affected")
	}
	return rec
}

// checkExists tells a domain without a DMARC record from one that does not
// exist, and both from a resolver that answers NXDOMAIN for every name
// (a captive portal, a broken or filtering resolver): it returns false
// after adding a "dns" error finding that names the problem, and marks the
// report missing so that no other finding blames the records. Asked only
// when no DMARC record was found: a domain name that answers NXDOMAIN while
// its top-level domain answers too is the domain's problem; when even the
// top-level domain is NXDOMAIN, it is DNS's.
func checkExists(ctx context.Context, r *Resolver, rep *Report) bool {
	d := rep.Domain
	if _, err := r.Lookup(ctx, d, 6 /* SOA */); !errors.Is(err, ErrNXDomain) {
		return true // it exists, or DNS could not tell: the usual findings
	}
	rep.missing = true
	tld := d[strings.LastIndexByte(d, '.')+1:]
	if _, err := r.Lookup(ctx, tld, 2 /* NS */); errors.Is(err, ErrNXDomain) {
		rep.add("dns", SevError, d, fmt.Sprintf("the resolver %s answers NXDOMAIN (no such name) even for the top-level domain %s: DNS on this machine is the problem, not the records of %s", r.Server, tld, d),
			"fix the resolver in /etc/resolv.conf, or name a working recursive resolver with --resolver HOST:PORT (dns.resolver for the daemon), and check again")
		return false
	}
	rep.add("dns", SevError, d, fmt.Sprintf("%s does not exist in DNS (NXDOMAIN from %s): nothing can be published under it, so no DMARC, SPF or DKIM check applies", d, r.Server),
		"check the spelling of the domain; if it is registered, its delegation (the NS records at the registrar) is broken")
	return false
}

// checkReportURIs checks that external rua/ruf destinations authorised the
// domain (RFC 9990 §4, RFC 7489 §7.1): TXT <domain>._report._dmarc.<host>.
func checkReportURIs(ctx context.Context, r *Resolver, rep *Report, rec *DMARCRecord) {
	policyDomain := strings.TrimPrefix(rec.Name, "_dmarc.")
	seen := map[string]bool{}
	for _, tag := range []string{"rua", "ruf"} {
		addrs := rec.RUA
		if tag == "ruf" {
			addrs = rec.RUF
		}
		for _, a := range addrs {
			host := strings.ToLower(a[strings.LastIndexByte(a, '@')+1:])
			if orgPSL(host) == orgPSL(policyDomain) || seen[host] {
				continue
			}
			seen[host] = true
			name := policyDomain + "._report._dmarc." + host
			txts, err := r.TXT(ctx, name)
			if err != nil && !errors.Is(err, ErrNXDomain) {
				rep.observe("report_auth:"+host, name, "", err)
				rep.add(tag, SevWarning, name, fmt.Sprintf("cannot check that %s accepts reports for %s: %v", host, policyDomain, err), "retry later")
				continue
			}
			ok := false
			value := ""
			for _, t := range txts {
				if strings.HasPrefix(strings.TrimSpace(t), "v=DMARC1") {
					ok, value = true, t
				}
			}
			rep.observe("report_auth:"+host, name, value, nil)
			if ok {
				rep.add(tag, SevInfo, name, fmt.Sprintf("external %s destination %s is authorised for %s", tag, a, policyDomain), "")
			} else {
				rep.add(tag, SevError, name, fmt.Sprintf("external %s destination %s has not authorised %s: receivers must ignore it (RFC 9990 §4)", tag, a, policyDomain),
					fmt.Sprintf("have the operator of %s publish TXT %s \"v=DMARC1\"", host, name))
			}
		}
	}
}

// checkSPF walks the domain's SPF record; it returns the qualifier of its
// all term (0 when none, or when there is no record).
func checkSPF(ctx context.Context, r *Resolver, rep *Report) byte {
	d := rep.Domain
	w, err := r.WalkSPF(ctx, d)
	switch {
	case errors.Is(err, ErrNoSPF) || errors.Is(err, ErrNXDomain):
		rep.observe("spf", d, "", nil)
		rep.add("spf", SevWarning, d, "no SPF record: SPF gives none, so only DKIM can make mail from "+d+" pass DMARC", "publish TXT "+d+" \"v=spf1 <your senders> -all\" (\"v=spf1 -all\" if no mail is sent with this domain in MAIL FROM)")
		return 0
	case err != nil:
		if errors.Is(err, ErrTemporary) {
			rep.observe("spf", d, "", err)
		}
		rep.add("spf", SevError, d, "cannot read the SPF record: "+err.Error(), "check the domain's name servers, or remove the extra v=spf1 records")
		return 0
	}
	rep.SPFRecord, rep.SPFLookups = w.Root.Text, w.Lookups
	rep.observe("spf", d, w.Root.Text, nil)
	for _, p := range w.Problems {
		rep.add("spf", p.Severity, d, p.Message, p.Fix)
	}
	if w.Lookups <= SPFMaxLookups {
		rep.add("spf", SevInfo, d, fmt.Sprintf("SPF needs %d of %d DNS lookups", w.Lookups, SPFMaxLookups), "")
	}
	for _, t := range w.Root.Terms {
		if t.Name == "all" {
			return t.Qualifier
		}
	}
	return 0
}

// checkDKIM looks up the key of every selector seen for the domain.
// A missing key is not an error by itself: Amazon SES publishes three
// selectors as CNAMEs and signs with one, and rotated selectors stay in the
// reports of the window. A d= domain none of whose selectors has a usable
// key is.
func checkDKIM(ctx context.Context, r *Resolver, rep *Report, sels []Selector) {
	if len(sels) == 0 {
		rep.add("dkim", SevInfo, rep.Domain, "no DKIM selectors seen for "+rep.Domain+" in the stored reports", "")
		return
	}
	usable := map[string]bool{}
	ses := map[string]bool{} // d= domains with an SES selector
	var order []string
	for _, s := range sels {
		if _, ok := usable[s.Domain]; !ok {
			usable[s.Domain] = false
			order = append(order, s.Domain)
		}
		name := s.Selector + "._domainkey." + s.Domain
		kind := "dkim:" + s.Selector
		if s.Domain != rep.Domain {
			kind += ":" + s.Domain
		}
		a, err := r.Lookup(ctx, name, 16 /* TXT */)
		via := ""
		if len(a.CNAMEs) > 0 {
			via = fmt.Sprintf(" (via CNAME to %s)", strings.TrimSuffix(lastTarget(a), "."))
		}
		if sesSelector(s.Selector, a) {
			ses[s.Domain] = true
		}
		if err != nil && !errors.Is(err, ErrNXDomain) {
			rep.observe(kind, name, "", err)
			rep.add("dkim", SevWarning, name, "cannot read the DKIM key: "+err.Error(), "check the name servers of "+s.Domain)
			usable[s.Domain] = true // unknown: do not claim it is missing
			continue
		}
		var txt string
		for _, rr := range a.Records {
			txt = strings.Join(txtStrings(rr), "")
		}
		rep.observe(kind, name, txt, nil)
		if txt == "" {
			why := "rotated out or inactive"
			if sesSelector(s.Selector, a) {
				why += "; normal for Amazon SES, which publishes three Easy DKIM selectors and signs with one"
			}
			rep.add("dkim", SevInfo, name, fmt.Sprintf("no key published%s: selector %s (seen on %d messages, %d passed) is %s", via, s.Selector, s.Messages, s.Passed, why), "")
			continue
		}
		sev, msg, fix := checkDKIMKey(txt)
		if sev == "" {
			usable[s.Domain] = true
			rep.add("dkim", SevInfo, name, "key ok: "+msg+via, "")
			continue
		}
		rep.add("dkim", sev, name, msg+via, fix)
		if sev != SevError {
			usable[s.Domain] = true
		}
	}
	for _, d := range order {
		if !usable[d] {
			fix := "publish the keys your senders sign with"
			if ses[d] {
				fix += " (for Amazon SES, the three Easy DKIM CNAMEs the SES console lists)"
			}
			rep.add("dkim", SevWarning, d, "none of the selectors seen for d="+d+" has a usable key: its mail cannot pass DKIM now", fix)
		}
	}
}

// sesSelector reports whether a selector is Amazon SES's: its CNAME points
// into dkim.amazonses.com, or it has the form of an Easy DKIM token (32
// characters of the base32 alphabet, lower-case), which SES publishes as
// TOKEN._domainkey.DOMAIN.
func sesSelector(sel string, a Answer) bool {
	for _, c := range append(append([]string{}, a.CNAMEs...), lastTargetOrEmpty(a)) {
		if strings.HasSuffix(strings.TrimSuffix(strings.ToLower(c), "."), "dkim.amazonses.com") {
			return true
		}
	}
	if len(sel) != 32 {
		return false
	}
	for _, c := range sel {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

func lastTargetOrEmpty(a Answer) string {
	if len(a.Records) == 0 && len(a.CNAMEs) == 0 {
		return ""
	}
	return lastTarget(a)
}

func lastTarget(a Answer) string {
	if len(a.Records) > 0 {
		return a.Records[0].Header().Name
	}
	return a.CNAMEs[len(a.CNAMEs)-1]
}

// checkDKIMKey checks a key record (RFC 6376 §3.6.1); sev "" means good, msg
// then describes the key.
func checkDKIMKey(txt string) (sev Severity, msg, fix string) {
	tags := map[string]string{}
	for _, part := range strings.Split(txt, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		tags[strings.ToLower(strings.TrimSpace(k))] = strings.Join(strings.Fields(v), "")
	}
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return SevError, "key record has v=" + v + ", not DKIM1", "publish the record the signer gives you"
	}
	p, ok := tags["p"]
	if !ok {
		return SevError, "key record has no p= tag", "publish the record the signer gives you"
	}
	if p == "" {
		return SevInfo, "key revoked (empty p=)", ""
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return SevError, "p= is not valid base64", "publish the key exactly as the signer gives it (watch for split strings)"
	}
	k := strings.ToLower(tags["k"])
	if k == "ed25519" {
		if len(der) != ed25519.PublicKeySize {
			return SevError, "ed25519 key is not 32 bytes", "publish the key exactly as the signer gives it"
		}
		return "", "ed25519", ""
	}
	if k != "" && k != "rsa" {
		return SevError, "unknown key type k=" + k, "use k=rsa or k=ed25519"
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		if rk, err2 := x509.ParsePKCS1PublicKey(der); err2 == nil {
			pub = rk
		} else {
			return SevError, "p= is not an RSA public key: " + err.Error(), "publish the key exactly as the signer gives it"
		}
	}
	rk, isRSA := pub.(*rsa.PublicKey)
	if !isRSA {
		return SevError, "p= is not an RSA public key", "publish the key exactly as the signer gives it"
	}
	bits := rk.N.BitLen()
	switch {
	case bits < 1024:
		return SevError, fmt.Sprintf("RSA key of %d bits: receivers ignore keys under 1024 bits (RFC 8301)", bits), "sign with a 2048-bit key"
	case bits < 2048:
		return SevWarning, fmt.Sprintf("RSA key of %d bits", bits), "move to a 2048-bit key"
	}
	return "", fmt.Sprintf("RSA %d bits", bits), ""
}

// checkParked flags a domain whose stored mail is all unauthenticated.
func checkParked(rep *Report, rec *DMARCRecord, spfAll byte, t *Traffic) {
	if t == nil || t.Messages == 0 || t.Authenticated > 0 {
		return
	}
	strictSPF := spfAll == '-' && rep.SPFLookups == 0 && len(strings.Fields(rep.SPFRecord)) == 2
	reject := rec != nil && strings.EqualFold(rec.Tag("p", ""), "reject")
	if strictSPF && reject {
		rep.add("parked", SevInfo, rep.Domain, fmt.Sprintf("all %d messages in the stored reports are unauthenticated, and the domain is locked down (v=spf1 -all, p=reject)", t.Messages), "")
		return
	}
	rep.add("parked", SevWarning, rep.Domain, fmt.Sprintf("all %d messages in the stored reports are unauthenticated: a parked domain, or one used only by spoofers", t.Messages),
		fmt.Sprintf("if %s sends no mail: publish TXT %s \"v=spf1 -all\" and _dmarc.%s \"v=DMARC1; p=reject\" (and a null MX, RFC 7505)", rep.Domain, rep.Domain, rep.Domain))
}

// Package readiness turns the classified records of a window (store's
// ReadinessSourcesQuery) into a verdict per policy domain: what p=quarantine
// and p=reject would do to the mail actually sent, each message under the
// tag that governs it (p, sp, np: RFC 9989 §4.7, §4.10.1; pct: RFC 7489
// §6.6.4; t=y: RFC 9989), a verdict and next step per tag and per
// subdomain (scope.go), what adkim=s and aspf=s would change (RFC 7489
// §3.1), which sources must be fixed first and how, and why the reports
// behind it are unverified. The rules are documented in docs/readiness.md.
package readiness

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dmarcd/dmarcd/parse/align"
)

// Levels of a verdict and of a policy.
const (
	LevelNone       = "none"
	LevelQuarantine = "quarantine"
	LevelReject     = "reject"
)

// QuarantineThreshold is the largest share of legitimate mail that p=reject
// may block for a domain to be called ready for p=quarantine (which then
// only files that mail as spam while its sources are fixed).
const QuarantineThreshold = 0.01

// Policy is a published policy with defaults applied (RFC 7489 §6.3).
type Policy struct {
	P       string `json:"p"`
	SP      string `json:"sp,omitempty"` // "" when absent: subdomains follow p
	NP      string `json:"np,omitempty"`
	Pct     int    `json:"pct"`
	Testing bool   `json:"testing"` // t=y (RFC 9989)
	ADKIM   string `json:"adkim"`
	ASPF    string `json:"aspf"`
	Known   bool   `json:"known"` // a report of the window stated it
}

// String is the policy as a DMARC record's tags.
func (p Policy) String() string {
	if !p.Known {
		return "unknown"
	}
	s := "p=" + p.P
	if p.SP != "" {
		s += "; sp=" + p.SP
	}
	if p.NP != "" {
		s += "; np=" + p.NP
	}
	if p.Pct != 100 {
		s += "; pct=" + strconv.Itoa(p.Pct)
	}
	if p.Testing {
		s += "; t=y"
	}
	return s + "; adkim=" + p.ADKIM + "; aspf=" + p.ASPF
}

// policyOf applies the defaults to a stored policy.
func policyOf(sp *PublishedPolicy) Policy {
	p := Policy{P: LevelNone, Pct: 100, ADKIM: "r", ASPF: "r"}
	if sp == nil {
		return p
	}
	p.Known = true
	val := func(v *string) string {
		if v == nil {
			return ""
		}
		return strings.ToLower(strings.TrimSpace(*v))
	}
	if v := level(val(sp.P)); v != "" {
		p.P = v
	}
	p.SP = level(val(sp.SP))
	p.NP = level(val(sp.NP))
	if n, err := strconv.Atoi(val(sp.Pct)); err == nil && n >= 0 && n <= 100 {
		p.Pct = n
	}
	p.Testing = val(sp.Testing) == "y"
	if val(sp.ADKIM) == "s" {
		p.ADKIM = "s"
	}
	if val(sp.ASPF) == "s" {
		p.ASPF = "s"
	}
	return p
}

func level(v string) string {
	switch v {
	case LevelNone, LevelQuarantine, LevelReject:
		return v
	}
	return ""
}

// Source is one sender of a domain's mail, as its authentication shows it.
type Source struct {
	HeaderFrom string   `json:"header_from"`
	Class      string   `json:"class"` // Class*
	Sender     string   `json:"sender,omitempty"`
	DKIMPass   []string `json:"dkim_pass"`
	SPFPass    []string `json:"spf_pass"`
	Messages   uint64   `json:"messages"`
	SourceIPs  uint64   `json:"source_ips"`
	Days       uint64   `json:"days"`
	TopIPs     []string `json:"top_ips"`
	Selectors  []string `json:"selectors,omitempty"`
	Reporters  []string `json:"reporters"`
	// Unverified counts the messages of reports whose mail could not be
	// authenticated (docs/readiness.md, "Trusting the reports").
	Unverified uint64 `json:"unverified"`
	// Legitimate is set for misaligned sources judged to be the owner's
	// mail (a known sender, the owner's own domain, or seen on ≥ 2 days):
	// enforcement would hurt them. Unset misaligned sources are one-off
	// identities, likely spammers authenticating their own domain.
	Legitimate bool     `json:"legitimate"`
	Why        string   `json:"why,omitempty"`
	Fixes      []string `json:"fixes,omitempty"`
	Notes      []string `json:"notes,omitempty"`
	// KnownSource is the known source its IPs matched when attributed
	// (by CIDR, confirmed PTR or SPF include: internal/product/attrib), which then
	// names the sender; Authorised is the known sources' word on the
	// sender (nil: not said). An authorised sender's unauthenticated mail
	// counts as legitimate: enforcement would block it.
	KnownSource string `json:"known_source,omitempty"`
	Authorised  *bool  `json:"authorised,omitempty"`
	// SignedBy is the known sender whose DKIM signature passed when nothing
	// ties the source's IPs to it (no SPF pass, no known source by IP):
	// it signed the mail, other hosts relayed it, so Sender stays empty.
	SignedBy string `json:"signed_by,omitempty"`
}

// Name is how the source is shown: the sender's name, whether it is
// authorised, else its identities: "Amazon SES (authorised; amazonses.com)";
// mail a known sender only signed: "relayed Amazon SES mail (amazonses.com,
// example.com)".
func (s Source) Name() string {
	ids := strings.Join(uniq(append(slices.Clone(s.DKIMPass), s.SPFPass...)), ", ")
	if s.Authorised != nil {
		status := "authorised"
		if !*s.Authorised {
			status = "not authorised"
		}
		ids = strings.TrimSuffix(status+"; "+ids, "; ")
	}
	switch {
	case s.SignedBy != "":
		return "relayed " + s.SignedBy + " mail (" + ids + ")"
	case s.Sender != "" && ids != "":
		return s.Sender + " (" + ids + ")"
	case s.Sender != "":
		return s.Sender
	case ids != "":
		return ids
	}
	return "unauthenticated sources"
}

// Impact is what one policy would do to the window's mail: expected
// message counts after pct (messages not selected get the next lower
// policy, RFC 7489 §6.6.4) and t=y (one level lower).
type Impact struct {
	Policy          string  `json:"policy"` // as it would be published, e.g. "p=reject"
	Rejected        float64 `json:"rejected"`
	Quarantined     float64 `json:"quarantined"`
	Legitimate      float64 `json:"legitimate"`      // legitimate mail rejected or quarantined
	Forwarded       float64 `json:"forwarded"`       // forwarded mail rejected or quarantined
	Unauthenticated float64 `json:"unauthenticated"` // spoofing stopped
}

// Strict is what a stricter alignment mode would change.
type Strict struct {
	Change  string   `json:"change"` // "adkim=s", "aspf=s", "adkim=s; aspf=s"
	Lost    uint64   `json:"lost"`   // messages passing today that would fail
	Sources []string `json:"sources,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// Subdomain is the mail of one header_from under a policy domain.
type Subdomain struct {
	HeaderFrom string `json:"header_from"`
	// Policy is the policy its mail is under: "p=none" for the domain
	// itself, "sp=none", "p=none (no sp)", or "sp=none or np=reject" when np
	// is published and the name is not shown to exist.
	Policy string `json:"policy"`
	// Tags are the tags of the record whose level applies to it (Scope).
	Tags            []string `json:"tags"`
	Exists          bool     `json:"exists"` // a DKIM or SPF pass names it or a name under it
	Messages        uint64   `json:"messages"`
	Aligned         uint64   `json:"aligned"`
	Forwarded       uint64   `json:"forwarded"`
	Misaligned      uint64   `json:"misaligned"` // legitimate misaligned
	Unauthenticated uint64   `json:"unauthenticated"`
	// Ready is the strongest level its own mail supports (as Scope.Ready);
	// Next says what to do for it.
	Ready string `json:"ready"`
	Next  string `json:"next"`
}

// Domain is the verdict for one policy domain.
type Domain struct {
	Domain          string      `json:"domain"`
	Policy          Policy      `json:"policy"`
	Messages        uint64      `json:"messages"`
	Aligned         uint64      `json:"aligned"`
	Forwarded       uint64      `json:"forwarded"`
	Misaligned      uint64      `json:"misaligned"` // legitimate misaligned: what enforcement would hurt
	Unauthenticated uint64      `json:"unauthenticated"`
	Subdomains      []Subdomain `json:"subdomains"`
	// Scopes is the verdict per published tag (p, and sp and np when
	// published): the mail each governs, what it supports, its next step.
	Scopes  []Scope  `json:"scopes"`
	Sources []Source `json:"sources"`
	WhatIf  []Impact `json:"what_if"`
	Strict  []Strict `json:"strict"`
	// Ready is the strongest policy the evidence supports: none,
	// quarantine or reject.
	Ready    string   `json:"ready"`
	Verdict  string   `json:"verdict"`
	Evidence []string `json:"evidence"`
	Next     string   `json:"next"`
	// Unverified counts the messages (of Messages) from reports whose mail
	// could not be authenticated; UnverifiedShare is their share.
	Unverified      uint64  `json:"unverified"`
	UnverifiedShare float64 `json:"unverified_share"`
	// UnverifiedWhy says why those reports are unverified, most messages
	// first, and what to do.
	UnverifiedWhy []UnverifiedReason `json:"unverified_why"`
	// FailedAuth is the evidence of reports whose mail failed
	// authentication: left out of the verdict unless Included.
	FailedAuth FailedAuth `json:"failed_auth"`
}

// FailedAuth is what reports whose mail failed authentication (likely
// forged) claim about a domain.
type FailedAuth struct {
	Reports   uint64   `json:"reports"`
	Messages  uint64   `json:"messages"`
	Reporters []string `json:"reporters"` // the org names they claim
	Included  bool     `json:"included"`  // counted in the verdict (--include-failed-auth)
}

// Trust is what the readiness query knows of the authentication of the
// reports behind the evidence.
type Trust struct {
	// FailedAuth lists, per policy domain, the records of reports whose
	// mail failed authentication (ReadFailedAuth).
	FailedAuth []FailedAuthRow
	// Included is set when those records are in the sources too.
	Included bool
	// Unverified says, per policy domain, why the records of unverified
	// reports are (ReadUnverified).
	Unverified []UnverifiedRow
}

// UnverifiedReason is why some of a domain's evidence is unverified, and
// what to do about it.
type UnverifiedReason struct {
	Reason   string `json:"reason"` // Unverified*
	Reports  uint64 `json:"reports"`
	Messages uint64 `json:"messages"`
	Why      string `json:"why"`
	Do       string `json:"do"`
}

// unverifiedTexts explain each Unverified* reason.
var unverifiedTexts = map[string][2]string{
	UnverifiedUnsigned: {"their mails carry no DKIM signature and their From domain publishes no enforcing DMARC policy: nothing shows who sent them",
		"genuine reporters (Google, Microsoft, Yahoo) sign their reports; unsigned ones are usually generated or hand-made test mails (make demo's are): trust them only if you made them"},
	UnverifiedNoMail: {"they were read as bare report files (or from inside an archive): there was no mail to authenticate",
		"ingest the report mails (IMAP, a spool of .eml files) rather than their attachments to have them verified"},
	UnverifiedNotChecked: {"a DKIM signature could not be checked on arrival (DNS failure or timeout, or a key no longer published)",
		"check report_auth.resolver and DNS from the dmarcd host; mails ingested long after they were sent may carry rotated keys"},
	UnverifiedUnaligned: {"they are signed, but by no domain of the report mail's From domain, which publishes no enforcing DMARC policy",
		"nothing to do on your side unless a reporter you rely on is affected: its reports can be forged"},
	UnverifiedDisabled: {"report_auth was disabled when they arrived: their mails were not checked",
		"set report_auth.enabled: true (docs/configuration.md) for the reports to come"},
	UnverifiedOther: {"their mails could not be authenticated",
		"see aggregate_reports.auth_detail for each report"},
}

// Evaluate builds the verdict of every policy domain in sources. policies
// are the latest published policies (ReadPolicies); senders may
// be nil for the built-in ones.
func Evaluate(sources []SourceRow, policies []PublishedPolicy, senders *Senders) []Domain {
	return EvaluateTrust(sources, policies, senders, Trust{})
}

// EvaluateTrust is Evaluate that also says how much of the evidence is
// unverified and what reports failing authentication claim: a domain known
// only from such reports gets a verdict without messages.
func EvaluateTrust(sources []SourceRow, policies []PublishedPolicy, senders *Senders, trust Trust) []Domain {
	if senders == nil {
		senders = BuiltinSenders()
	}
	pol := map[string]*PublishedPolicy{}
	for i := range policies {
		pol[policies[i].Domain] = &policies[i]
	}
	byDomain := map[string][]SourceRow{}
	var names []string
	for _, s := range sources {
		if _, ok := byDomain[s.PolicyDomain]; !ok {
			names = append(names, s.PolicyDomain)
		}
		byDomain[s.PolicyDomain] = append(byDomain[s.PolicyDomain], s)
	}
	failed := map[string]FailedAuth{}
	for _, f := range trust.FailedAuth {
		if _, ok := byDomain[f.PolicyDomain]; !ok {
			names = append(names, f.PolicyDomain)
			byDomain[f.PolicyDomain] = nil
		}
		failed[f.PolicyDomain] = FailedAuth{Reports: f.Reports, Messages: f.Messages, Reporters: f.Reporters, Included: trust.Included}
	}
	why := map[string][]UnverifiedReason{}
	for _, u := range trust.Unverified {
		t := unverifiedTexts[u.Reason]
		why[u.PolicyDomain] = append(why[u.PolicyDomain], UnverifiedReason{Reason: u.Reason, Reports: u.Reports, Messages: u.Messages, Why: t[0], Do: t[1]})
	}
	sort.Strings(names)
	var out []Domain
	for _, name := range names {
		d := evaluate(name, byDomain[name], policyOf(pol[name]), senders, failed[name], why[name])
		out = append(out, d)
	}
	return out
}

func evaluate(name string, rows []SourceRow, p Policy, senders *Senders, failed FailedAuth, why []UnverifiedReason) Domain {
	d := Domain{Domain: name, Policy: p, FailedAuth: failed, UnverifiedWhy: why}
	if d.UnverifiedWhy == nil {
		d.UnverifiedWhy = []UnverifiedReason{}
	}
	if d.FailedAuth.Reporters == nil {
		d.FailedAuth.Reporters = []string{}
	}
	subs := map[string]*Subdomain{}
	exists := existing(rows)
	for _, r := range rows {
		src := source(r, senders)
		d.Sources = append(d.Sources, src)
		sd := subs[r.HeaderFrom]
		if sd == nil {
			sd = &Subdomain{HeaderFrom: r.HeaderFrom, Exists: exists[r.HeaderFrom],
				Tags: governing(p, name, r.HeaderFrom, exists[r.HeaderFrom])}
			sd.Policy = policyName(p, sd.Tags)
			if r.HeaderFrom != name && sd.Tags[0] == TagP {
				sd.Policy += " (no sp)"
			}
			subs[r.HeaderFrom] = sd
		}
		d.Messages += r.Messages
		d.Unverified += r.Unverified
		sd.Messages += r.Messages
		switch bucket(src) {
		case ClassAligned:
			d.Aligned += r.Messages
			sd.Aligned += r.Messages
		case ClassForwarded:
			d.Forwarded += r.Messages
			sd.Forwarded += r.Messages
		case ClassMisaligned:
			d.Misaligned += r.Messages
			sd.Misaligned += r.Messages
		default:
			d.Unauthenticated += r.Messages
			sd.Unauthenticated += r.Messages
		}
	}
	for _, sd := range subs {
		d.Subdomains = append(d.Subdomains, *sd)
	}
	sort.Slice(d.Subdomains, func(i, j int) bool { return d.Subdomains[i].HeaderFrom < d.Subdomains[j].HeaderFrom })
	sort.SliceStable(d.Sources, func(i, j int) bool {
		a, b := d.Sources[i], d.Sources[j]
		if ra, rb := classRank(a), classRank(b); ra != rb {
			return ra < rb
		}
		return a.Messages > b.Messages
	})
	for _, lvl := range []string{LevelQuarantine, LevelReject} {
		d.WhatIf = append(d.WhatIf, impact(name, d.Sources, p, lvl, exists))
	}
	d.Strict = strict(rows, d.Sources, p, senders)
	d.Scopes = scopes(&d, exists)
	for i := range d.Subdomains {
		subdomainVerdict(&d, &d.Subdomains[i])
	}
	verdict(&d)
	return d
}

// policyName shows the tags that govern a header_from with their levels.
func policyName(p Policy, tags []string) string {
	var l []string
	for _, t := range tags {
		l = append(l, t+"="+tagLevel(p, t))
	}
	return strings.Join(l, " or ")
}

// bucket is the class a source counts in: misaligned mail that is not
// legitimate counts as unauthenticated.
func bucket(s Source) string {
	if s.Class == ClassMisaligned && !s.Legitimate {
		return ClassUnauthenticated
	}
	if s.Class == ClassUnauthenticated && s.Legitimate {
		return ClassMisaligned // an authorised source: enforcement would hurt it
	}
	return s.Class
}

// classRank orders sources: what blocks readiness first.
func classRank(s Source) int {
	switch bucket(s) {
	case ClassMisaligned:
		return 0
	case ClassForwarded:
		return 2
	case ClassAligned:
		return 1
	}
	return 3
}

// source judges one row: its sender, its legitimacy, its fixes.
func source(r SourceRow, senders *Senders) Source {
	s := Source{HeaderFrom: r.HeaderFrom, Class: r.Class, DKIMPass: r.DKIMPass, SPFPass: r.SPFPass,
		Messages: r.Messages, SourceIPs: r.SourceIPs, Days: r.Days, TopIPs: r.TopIPs,
		Selectors: r.Selectors, Reporters: r.Reporters, Unverified: r.Unverified}
	snd := senders.Match(r.DKIMPass, r.SPFPass)
	if r.KnownSource != "" { // matched by IP: more specific than identities
		s.KnownSource = r.KnownSource
		if snd = senders.ByName(r.KnownSource); snd == nil { // no longer listed: as stored
			snd = &Sender{Name: r.KnownSource}
			if r.KnownAuthorised {
				snd.Authorised = &r.KnownAuthorised
			}
		}
	}
	if snd != nil && r.KnownSource == "" && len(r.SPFPass) == 0 && coversAny(snd.DKIMDomains, r.DKIMPass) {
		// Only the service's DKIM signature passed and no SPF record
		// authorised the IPs: the service signed the message, other hosts
		// (a forwarder, a list) delivered it. Not the service's IPs.
		s.SignedBy = snd.Name
	} else if snd != nil {
		s.Sender = snd.Name
		s.Notes = append(s.Notes, snd.Notes...)
		s.Authorised = snd.Authorised
		if snd.NotMine && s.Authorised == nil {
			s.Authorised = new(bool)
		}
	}
	switch r.Class {
	case ClassAligned:
		own := 0 // selectors of the domain's own signatures
		for _, ds := range r.Selectors {
			if d, _, _ := strings.Cut(ds, "/"); sameOrg([]string{d}, align.OrgDomain(r.HeaderFrom)) {
				own++
			}
		}
		if own > 1 && snd != nil && snd.ID == "amazon-ses" {
			s.Notes = append(s.Notes, fmt.Sprintf("%d DKIM selectors seen for %s: SES rotates its Easy DKIM selectors, this is normal", own, align.OrgDomain(r.HeaderFrom)))
		}
	case ClassForwarded:
		if len(r.Overrides) > 0 {
			s.Why = "receiver override: " + strings.Join(r.Overrides, ", ")
		} else {
			s.Why = "a DKIM signature of " + align.OrgDomain(r.HeaderFrom) + " with a selector seen passing elsewhere failed: broken in transit"
		}
	case ClassMisaligned:
		org := align.OrgDomain(r.HeaderFrom)
		own := sameOrg(r.DKIMPass, org) || sameOrg(r.SPFPass, org)
		switch {
		case snd != nil && snd.NotMine:
			s.Why = "marked not_mine (or authorised: false) in the senders file"
		case snd != nil && snd.Authorised != nil:
			s.Legitimate, s.Why = true, "authorised known source"
		case snd != nil:
			s.Legitimate, s.Why = true, "known sender"
		case own:
			s.Legitimate, s.Why = true, "authenticates as "+org+" but not aligned under the published mode"
		case r.Days >= 2:
			s.Legitimate, s.Why = true, fmt.Sprintf("unknown sender seen on %d days: if it is not yours, add it to a senders file with not_mine: true", r.Days)
		default:
			s.Why = "one-off identity: likely spam authenticating its own domain"
		}
		if s.Legitimate {
			s.Fixes = fixes(r, snd)
		}
	case ClassUnauthenticated:
		if snd != nil && snd.Authorised != nil && *snd.Authorised {
			s.Legitimate = true
			s.Why = snd.Name + " is authorised but its mail passes neither SPF nor DKIM: enforcement would block it"
			s.Fixes = fixes(r, snd)
			if snd.FixDKIM != "" {
				s.Fixes = []string{expand(snd.FixDKIM, r.HeaderFrom)}
			}
			s.Fixes = append(s.Fixes, "authorise its IPs in the SPF record of its MAIL FROM domain (a subdomain of "+align.OrgDomain(r.HeaderFrom)+")")
		}
	}
	return s
}

func sameOrg(domains []string, org string) bool {
	for _, d := range domains {
		if align.Aligned(d, org, align.Relaxed) {
			return true
		}
	}
	return false
}

// fixes names what makes a misaligned source align: DKIM first (it
// survives forwarding), then SPF.
func fixes(r SourceRow, snd *Sender) []string {
	from := r.HeaderFrom
	org := align.OrgDomain(from)
	var out []string
	if len(r.DKIMPass) > 0 {
		switch {
		case sameOrg(r.DKIMPass, org):
			out = append(out, "sign with d="+from+" exactly (adkim=s), or publish adkim=r")
		case snd != nil && snd.FixDKIM != "":
			out = append(out, expand(snd.FixDKIM, from))
		default:
			out = append(out, "sign with d="+from+" (or another domain of "+org+") instead of d="+strings.Join(r.DKIMPass, ", d="))
		}
	}
	if len(r.SPFPass) > 0 {
		switch {
		case sameOrg(r.SPFPass, org):
			out = append(out, "use a MAIL FROM of exactly "+from+" (aspf=s), or publish aspf=r")
		case snd != nil && snd.FixSPF != "":
			out = append(out, expand(snd.FixSPF, from))
		default:
			out = append(out, "set a custom MAIL FROM on a subdomain of "+org+" (e.g. mail."+org+") instead of "+strings.Join(r.SPFPass, ", "))
		}
	}
	if len(out) == 0 {
		out = append(out, "sign with d="+from)
	}
	return out
}

// impact computes what publishing p=lvl (keeping sp, np, pct and t as
// published) would do to the failing mail of the window: each source gets
// the level of the tag that governs its header_from (the strictest when it
// may be sp or np, Scope).
func impact(domain string, srcs []Source, p Policy, lvl string, exists map[string]bool) Impact {
	hyp := p
	hyp.P = lvl
	im := Impact{Policy: "p=" + lvl}
	for _, t := range []struct{ tag, v string }{{"sp", p.SP}, {"np", p.NP}} {
		if t.v != "" {
			im.Policy += "; " + t.tag + "=" + t.v
		}
	}
	if p.Pct != 100 {
		im.Policy += "; pct=" + strconv.Itoa(p.Pct)
	}
	if p.Testing {
		im.Policy += "; t=y"
	}
	for _, s := range srcs {
		if s.Class == ClassAligned {
			continue
		}
		addImpact(&im, s, applied(hyp, domain, s.HeaderFrom, exists[s.HeaderFrom]), hyp)
	}
	return im
}

// apply spreads n failing messages over reject and quarantine under a
// requested policy: t=y lowers it one level (RFC 9989); with pct < 100
// only pct% get it and the rest the next lower one (RFC 7489 §6.6.4).
func apply(req string, pct int, testing bool, n float64) (rejected, quarantined float64) {
	if testing {
		switch req {
		case LevelReject:
			req = LevelQuarantine
		case LevelQuarantine:
			req = LevelNone
		}
	}
	sel := n * float64(pct) / 100
	switch req {
	case LevelReject:
		return sel, n - sel
	case LevelQuarantine:
		return 0, sel
	}
	return 0, 0
}

// strict computes what adkim=s, aspf=s and both would lose: messages that
// pass under the published modes and fail under the stricter ones.
func strict(rows []SourceRow, srcs []Source, p Policy, senders *Senders) []Strict {
	pass := func(r SourceRow, dk, sp string) uint64 {
		switch dk + sp {
		case "ss":
			return r.PassSS
		case "sr":
			return r.PassSR
		case "rs":
			return r.PassRS
		}
		return r.PassRR
	}
	var out []Strict
	for _, c := range []struct{ change, dk, sp string }{
		{"adkim=s", "s", p.ASPF}, {"aspf=s", p.ADKIM, "s"}, {"adkim=s; aspf=s", "s", "s"},
	} {
		if c.dk == p.ADKIM && c.sp == p.ASPF {
			continue // already published
		}
		st := Strict{Change: c.change}
		for i, r := range rows {
			now, then := pass(r, p.ADKIM, p.ASPF), pass(r, c.dk, c.sp)
			if now <= then {
				continue
			}
			st.Lost += now - then
			st.Sources = append(st.Sources, fmt.Sprintf("%s from %s: %d", srcs[indexOf(srcs, r, i)].Name(), r.HeaderFrom, now-then))
			if snd := senders.Match(r.DKIMPass, r.SPFPass); snd != nil {
				if c.dk == "s" && snd.StrictDKIM != "" && r.HeaderFrom != align.OrgDomain(r.HeaderFrom) {
					st.Notes = appendOnce(st.Notes, snd.Name+": "+snd.StrictDKIM)
				}
				if c.sp == "s" && snd.StrictSPF != "" {
					st.Notes = appendOnce(st.Notes, snd.Name+": "+snd.StrictSPF)
				}
			}
		}
		out = append(out, st)
	}
	return out
}

// indexOf finds the Source made from row r (sources are sorted, rows not).
func indexOf(srcs []Source, r SourceRow, hint int) int {
	for i, s := range srcs {
		if s.HeaderFrom == r.HeaderFrom && s.Class == r.Class && slices.Equal(s.DKIMPass, r.DKIMPass) && slices.Equal(s.SPFPass, r.SPFPass) && s.KnownSource == r.KnownSource {
			return i
		}
	}
	return hint
}

func appendOnce(l []string, s string) []string {
	if slices.Contains(l, s) {
		return l
	}
	return append(l, s)
}

func uniq(l []string) []string {
	var out []string
	for _, s := range l {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func share(n, d uint64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

func percent(f float64) string {
	s := strconv.FormatFloat(100*f, 'f', 1, 64)
	if s == "0.0" && f > 0 {
		s = "<0.1"
	}
	return s + "%"
}

// verdict sets Ready, Verdict, Evidence and Next from the scopes: Ready
// and the verdict's first clause are p's (the mail p governs: the domain's
// own, and its subdomains' when sp is absent); each other published tag
// with mail gets its own clause, each subdomain its line.
func verdict(d *Domain) {
	var blocking []string
	for _, s := range d.Sources {
		if bucket(s) == ClassMisaligned {
			blocking = append(blocking, fmt.Sprintf("%s from %s (%d messages): %s", s.Name(), s.HeaderFrom, s.Messages, strings.Join(s.Fixes, "; or ")))
		}
	}
	failing := d.Messages - d.Aligned
	d.Evidence = append(d.Evidence,
		fmt.Sprintf("%d messages, %s aligned; %d failing DMARC: %d unauthenticated (likely spoofing), %d forwarded or mailing list, %d legitimate but misaligned",
			d.Messages, percent(share(d.Aligned, d.Messages)), failing, d.Unauthenticated, d.Forwarded, d.Misaligned))
	ps := d.Scopes[0]
	d.Ready = ps.Ready
	switch {
	case d.Messages == 0 && d.FailedAuth.Reports > 0 && !d.FailedAuth.Included:
		d.Ready, d.Verdict = LevelNone, "no trustworthy reports in the window: every report of this domain came in a mail that failed authentication"
	case d.Messages == 0:
		d.Ready, d.Verdict = LevelNone, "no reports in the window"
	default:
		d.Verdict = scopeVerdict(d, ps)
		for _, sc := range d.Scopes[1:] {
			if sc.Messages > 0 {
				d.Verdict += "; " + sc.Tag + " (" + whose(d, sc) + "): " + scopeVerdict(d, sc)
			}
		}
	}
	if len(blocking) > 0 {
		d.Evidence = append(d.Evidence, "fix first: "+strings.Join(blocking, " | "))
	}
	if d.Forwarded > 0 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("%d forwarded messages would fail too; receivers usually accept them through local overrides or ARC, and fixing them is not yours to do (keep DKIM aligned: it survives plain forwarding)", d.Forwarded))
	}
	for _, sd := range d.Subdomains {
		if sd.HeaderFrom != d.Domain {
			d.Evidence = append(d.Evidence, fmt.Sprintf("%s (%d messages) is under %s: %s", sd.HeaderFrom, sd.Messages, sd.Policy, sd.Next))
		}
	}
	d.Evidence = append(d.Evidence, trustEvidence(d)...)
	if d.Policy.NP != "" {
		d.Evidence = append(d.Evidence, "np="+d.Policy.NP+" applies to subdomains that do not exist in DNS; reports do not say which: a subdomain that no DKIM or SPF pass shows to exist counts under both sp and np")
	}
	if d.Policy.Pct != 100 {
		d.Evidence = append(d.Evidence, fmt.Sprintf("pct=%d in force: the policy applies to %d%% of failing mail, the rest gets the next lower policy", d.Policy.Pct, d.Policy.Pct))
	}
	if d.Policy.Testing {
		d.Evidence = append(d.Evidence, "t=y in force: receivers apply one level less than p (reject as quarantine, quarantine as none)")
	}
	d.Next = next(d)
}

// scopeVerdict is the verdict clause of one scope; p's names the mail
// it governs (the others are introduced by it).
func scopeVerdict(d *Domain, sc Scope) string {
	under := sc.Tag
	if sc.Tag == TagP {
		under += " (" + whose(d, sc) + ")"
	}
	n := len(sc.Blocking)
	switch {
	case sc.Messages == 0:
		return fmt.Sprintf("no mail under %s in the window", under)
	case sc.Ready == LevelReject:
		return fmt.Sprintf("ready for %s=reject: no legitimate mail under %s fails DMARC", sc.Tag, under)
	case sc.Ready == LevelQuarantine:
		return fmt.Sprintf("ready for %s=quarantine; %s=reject would block %s of the legitimate mail under %s, all from %d source(s): %s",
			sc.Tag, sc.Tag, percent(sc.AtRisk), under, n, strings.Join(sc.Blocking, ", "))
	}
	return fmt.Sprintf("not ready: enforcing %s would hit %s of the legitimate mail under %s, from %d source(s): %s",
		sc.Tag, percent(sc.AtRisk), under, n, strings.Join(sc.Blocking, ", "))
}

// whose names the mail of a scope: "example.com itself", "example.com and
// its subdomains", "news.example.com".
func whose(d *Domain, sc Scope) string {
	own := containsStr(sc.HeaderFroms, d.Domain)
	subs := len(sc.HeaderFroms)
	if own {
		subs--
	}
	switch {
	case own && subs == 0:
		return d.Domain + " itself"
	case own:
		return d.Domain + " and its subdomains"
	case subs <= 2:
		return strings.Join(sc.HeaderFroms, ", ")
	}
	return fmt.Sprintf("%d subdomains", subs)
}

// subdomainVerdict sets a header_from's Ready and Next from its own mail.
func subdomainVerdict(d *Domain, sd *Subdomain) {
	var block []string
	for _, s := range d.Sources {
		if s.HeaderFrom == sd.HeaderFrom && bucket(s) == ClassMisaligned {
			block = appendOnce(block, s.Name())
		}
	}
	sd.Ready, _ = readyFor(sd.Misaligned, sd.Aligned+sd.Forwarded+sd.Misaligned)
	tags := strings.Join(sd.Tags, " and ")
	switch {
	case sd.Ready == LevelReject:
		sd.Next = "ready for " + strings.Join(sd.Tags, "=reject and ") + "=reject: none of its legitimate mail fails DMARC"
	case sd.Tags[0] == TagP && sd.HeaderFrom != d.Domain:
		sd.Next = fmt.Sprintf("fix %s before p goes beyond %s, or publish sp=%s to hold it back", strings.Join(block, ", "), sd.Ready, d.Policy.P)
	default:
		verb := "goes"
		if len(sd.Tags) > 1 {
			verb = "go"
		}
		sd.Next = fmt.Sprintf("fix %s before %s %s beyond %s", strings.Join(block, ", "), tags, verb, sd.Ready)
	}
}

// trustEvidence says how far the reports behind the verdict are
// authenticated (docs/readiness.md, "Trusting the reports").
func trustEvidence(d *Domain) []string {
	var out []string
	d.UnverifiedShare = share(d.Unverified, d.Messages)
	if d.Unverified > 0 {
		out = append(out, fmt.Sprintf("%s of the messages (%d) come from reports whose mail could not be authenticated: anyone could have sent those",
			percent(d.UnverifiedShare), d.Unverified))
		for _, u := range d.UnverifiedWhy {
			out = append(out, fmt.Sprintf("unverified, %d messages in %d report(s): %s; %s", u.Messages, u.Reports, u.Why, u.Do))
		}
		if len(d.UnverifiedWhy) == 0 {
			out = append(out, "unverified: no aligned DKIM signature, a bare file, or DNS trouble on arrival (the reason is in aggregate_reports.auth_detail)")
		}
	}
	f := d.FailedAuth
	if f.Reports == 0 {
		return out
	}
	claim := ""
	if len(f.Reporters) > 0 {
		claim = " (claiming to be from " + strings.Join(f.Reporters, ", ") + ")"
	}
	if f.Included {
		out = append(out, fmt.Sprintf("included on request (--include-failed-auth): %d messages from %d report(s)%s whose mail failed authentication", f.Messages, f.Reports, claim))
		return out
	}
	out = append(out, fmt.Sprintf("left out: %d messages from %d report(s)%s whose mail failed authentication, likely forged (--include-failed-auth counts them)", f.Messages, f.Reports, claim))
	if f.Messages > d.Messages {
		out = append(out, "more evidence failed authentication than was kept: if those reports are genuine, check report_auth.resolver (a resolver that cannot see DKIM keys fails every signed report)")
	}
	return out
}

func names(srcs []Source) string {
	var l []string
	for _, s := range srcs {
		if bucket(s) == ClassMisaligned {
			l = append(l, s.Name())
		}
	}
	return strings.Join(uniq(l), ", ")
}

// next is the next safe step from the published policy towards what the
// evidence supports: p's step, then each other tag's. When sp is absent
// and subdomains hold p back while the domain's own mail is ready, the step
// is to publish sp at today's level so that p can move on.
func next(d *Domain) string {
	p := d.Policy
	if !p.Known {
		return "no policy seen in the window's reports"
	}
	if d.Messages == 0 {
		return "keep p=" + p.P + " until trustworthy reports arrive"
	}
	ps := d.Scopes[0]
	step := ps.Next
	if p.SP == "" && len(ps.HeaderFroms) > 1 {
		own := Scope{Tag: TagP, Level: p.P}
		tally(&own, d.Sources, p, func(h string) bool { return h == d.Domain })
		if rank(own.Ready) > rank(ps.Ready) && rank(own.Ready) > rank(p.P) {
			own.Next = scopeNext(d, &own)
			var held []string
			for _, sd := range d.Subdomains {
				if sd.HeaderFrom != d.Domain && rank(sd.Ready) < rank(own.Ready) {
					held = append(held, sd.HeaderFrom)
				}
			}
			step = fmt.Sprintf("publish sp=%s to hold back %s (not ready), then %s", p.P, strings.Join(held, ", "), own.Next)
		}
	}
	for _, sc := range d.Scopes[1:] {
		if sc.Messages > 0 {
			step += "; " + sc.Tag + ": " + sc.Next
		}
	}
	return step
}

package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// SPF limits of RFC 7208 §4.6.4.
const (
	// SPFMaxLookups is the limit on terms that cause DNS lookups
	// (include, a, mx, ptr, exists, redirect), counted over the whole
	// evaluation, includes and redirects resolved recursively.
	SPFMaxLookups = 10
	// SPFMaxVoidLookups is the limit on lookups that return no records
	// (NXDOMAIN or NODATA).
	SPFMaxVoidLookups = 2
	// spfMaxMX is the limit on MX names an mx mechanism may look up.
	spfMaxMX = 10
	// spfHardLimit stops a walk that is far over the limit.
	spfHardLimit = 40
)

// SPFTerm is one mechanism or modifier of a record (RFC 7208 §4.6.1).
type SPFTerm struct {
	Text      string // as written, e.g. "~all", "include:amazonses.com"
	Qualifier byte   // '+', '-', '~' or '?'; 0 for modifiers
	Name      string // lower case: all, include, a, mx, ptr, ip4, ip6, exists, redirect, exp, or another modifier
	Domain    string // the target domain of include, a, mx, exists, redirect (the record's own domain when left out)
	Prefixes  []netip.Prefix
	Child     *SPFRecord // include and redirect, when resolved
}

// SPFRecord is the SPF record of one domain, as the walk resolved it.
type SPFRecord struct {
	Domain string
	Text   string // "" when the domain has no record
	Terms  []*SPFTerm
}

// SPFProblem is something wrong with a record set, with its severity.
type SPFProblem struct {
	Severity Severity
	Message  string
	Fix      string
}

// SPFWalk is the result of resolving a domain's SPF record and everything it
// references, the way a receiver evaluating it would count lookups.
type SPFWalk struct {
	Root        *SPFRecord
	Lookups     int // DNS-querying terms in the whole tree
	VoidLookups int
	Problems    []SPFProblem

	r *Resolver
}

// ErrNoSPF: the domain publishes no SPF record.
var ErrNoSPF = errors.New("no SPF record")

// SPFRecordOf returns the SPF record of domain: the one TXT record that
// starts with "v=spf1" (RFC 7208 §4.5). Several records are an error.
func (r *Resolver) SPFRecordOf(ctx context.Context, domain string) (string, error) {
	txts, err := r.TXT(ctx, domain)
	if err != nil {
		return "", err
	}
	var found []string
	for _, t := range txts {
		lt := strings.ToLower(t)
		if lt == "v=spf1" || strings.HasPrefix(lt, "v=spf1 ") {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s: %w", domain, ErrNoSPF)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s: %d SPF records (RFC 7208 §4.5: permerror)", domain, len(found))
}

// WalkSPF resolves the SPF record of domain recursively, counting lookups
// against the limits of RFC 7208 §4.6.4 and noting problems: syntax, loops,
// too many lookups, void lookups, a missing or permissive "all". Its error
// is for a failure to read the domain's own record (ErrNoSPF, ErrNXDomain,
// ErrTemporary); failures further down are problems of the walk.
func (r *Resolver) WalkSPF(ctx context.Context, domain string) (*SPFWalk, error) {
	w := &SPFWalk{r: r}
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	text, err := r.SPFRecordOf(ctx, domain)
	if err != nil {
		return nil, err
	}
	w.Root = w.record(ctx, domain, text, []string{domain})
	if w.Lookups > SPFMaxLookups {
		w.problem(SevError, fmt.Sprintf("SPF needs %d DNS lookups, more than the limit of %d (RFC 7208 §4.6.4): receivers return permerror and SPF fails for all mail", w.Lookups, SPFMaxLookups),
			"remove includes of services that no longer send for the domain, replace a/mx by ip4:/ip6:, or move senders to subdomains with their own SPF records")
	}
	if w.VoidLookups > SPFMaxVoidLookups {
		w.problem(SevError, fmt.Sprintf("SPF has %d void lookups (no records), more than the limit of %d (RFC 7208 §4.6.4)", w.VoidLookups, SPFMaxVoidLookups),
			"remove the mechanisms that name domains without records")
	}
	w.checkAll()
	return w, nil
}

func (w *SPFWalk) problem(sev Severity, msg, fix string) {
	w.Problems = append(w.Problems, SPFProblem{Severity: sev, Message: msg, Fix: fix})
}

// record parses text, the record of domain, and resolves its terms; chain
// holds the domains being resolved above it, for loop detection.
func (w *SPFWalk) record(ctx context.Context, domain, text string, chain []string) *SPFRecord {
	rec := &SPFRecord{Domain: domain, Text: text}
	fields := strings.Fields(text)
	seenRedirect := false
	for _, f := range fields[1:] {
		t, err := parseSPFTerm(f, domain)
		if err != nil {
			w.problem(SevError, fmt.Sprintf("SPF record of %s: %v (permerror)", domain, err), "correct the term "+strconv.Quote(f))
			continue
		}
		if t.Name == "redirect" {
			if seenRedirect {
				w.problem(SevError, fmt.Sprintf("SPF record of %s has two redirect= modifiers (RFC 7208 §6: permerror)", domain), "keep one")
			}
			seenRedirect = true
		}
		rec.Terms = append(rec.Terms, t)
	}
	hasAll := false
	for _, t := range rec.Terms {
		if t.Name == "all" {
			hasAll = true
		}
	}
	for _, t := range rec.Terms {
		if w.Lookups > spfHardLimit {
			break
		}
		switch t.Name {
		case "include", "redirect":
			if t.Name == "redirect" && hasAll {
				continue // RFC 7208 §6.1: ignored when the record has "all"
			}
			w.Lookups++
			if strings.Contains(t.Domain, "%") {
				continue // macros: depends on the message
			}
			if slices.Contains(chain, t.Domain) {
				w.problem(SevError, fmt.Sprintf("SPF loop: %s references %s, which is already being evaluated (%s)", domain, t.Domain, strings.Join(append(chain, t.Domain), " → ")),
					"remove the "+t.Name+" that points back")
				continue
			}
			sub, err := w.r.SPFRecordOf(ctx, t.Domain)
			if err != nil {
				if !errors.Is(err, ErrTemporary) {
					w.VoidLookups++
				}
				w.problem(SevError, fmt.Sprintf("SPF of %s: %s: %v (an %s of a domain without a usable record is a permerror)", domain, t.Text, err, t.Name),
					"remove "+t.Text+" or publish an SPF record at "+t.Domain)
				continue
			}
			t.Child = w.record(ctx, t.Domain, sub, append(chain, t.Domain))
		case "a":
			w.Lookups++
			w.addressesOf(ctx, t, t.Domain)
		case "mx":
			w.Lookups++
			if strings.Contains(t.Domain, "%") {
				continue
			}
			mxs, err := w.r.MX(ctx, t.Domain)
			if err != nil || len(mxs) == 0 {
				w.VoidLookups++
				continue
			}
			if len(mxs) > spfMaxMX {
				w.problem(SevError, fmt.Sprintf("SPF of %s: %s names %d MX hosts, more than %d (RFC 7208 §4.6.4)", domain, t.Text, len(mxs), spfMaxMX), "use ip4:/ip6: instead of mx")
				mxs = mxs[:spfMaxMX]
			}
			for _, mx := range mxs {
				w.addressesOf(ctx, t, mx)
			}
		case "ptr":
			w.Lookups++
			w.problem(SevWarning, fmt.Sprintf("SPF of %s uses ptr, which RFC 7208 §5.5 says not to use (slow, unreliable; some receivers ignore it)", domain), "replace ptr by ip4:/ip6: or include:")
		case "exists":
			w.Lookups++
		}
	}
	return rec
}

// addressesOf resolves host for an a or mx term, applying its CIDR lengths.
func (w *SPFWalk) addressesOf(ctx context.Context, t *SPFTerm, host string) {
	if strings.Contains(host, "%") {
		return
	}
	ips, err := w.r.IPs(ctx, host)
	if err != nil && !errors.Is(err, ErrTemporary) || err == nil && len(ips) == 0 {
		w.VoidLookups++
	}
	c4, c6 := cidrLengths(t)
	for _, ip := range ips {
		bits := c6
		if ip.Is4() {
			bits = c4
		}
		if p, err := ip.Prefix(bits); err == nil {
			t.Prefixes = append(t.Prefixes, p)
		}
	}
}

func cidrLengths(t *SPFTerm) (int, int) {
	c4, c6 := 32, 128
	if i := strings.Index(t.Text, "/"); i >= 0 {
		spec := t.Text[i:]
		if v6, ok := strings.CutPrefix(spec, "//"); ok {
			c6, _ = strconv.Atoi(v6)
		} else {
			p4, p6, has6 := strings.Cut(spec[1:], "//")
			c4, _ = strconv.Atoi(p4)
			if has6 {
				c6, _ = strconv.Atoi(p6)
			}
		}
	}
	return c4, c6
}

// parseSPFTerm parses one term of domain's record (RFC 7208 §4.6.1, §12).
func parseSPFTerm(f, domain string) (*SPFTerm, error) {
	t := &SPFTerm{Text: f}
	if name, val, ok := strings.Cut(f, "="); ok && !strings.ContainsAny(name, ":/") {
		t.Name = strings.ToLower(name)
		t.Domain = strings.TrimSuffix(strings.ToLower(val), ".")
		if (t.Name == "redirect" || t.Name == "exp") && t.Domain == "" {
			return nil, fmt.Errorf("%s has no domain", f)
		}
		return t, nil
	}
	t.Qualifier = '+'
	body := f
	if strings.ContainsRune("+-~?", rune(f[0])) {
		t.Qualifier, body = f[0], f[1:]
	}
	name, arg, hasArg := strings.Cut(body, ":")
	cidr := ""
	if i := strings.Index(name, "/"); i >= 0 && !hasArg {
		name, cidr = name[:i], name[i:]
	} else if hasArg {
		if i := strings.Index(arg, "/"); i >= 0 && !strings.HasPrefix(strings.ToLower(name), "ip") {
			arg, cidr = arg[:i], arg[i:]
		}
	}
	t.Name = strings.ToLower(name)
	switch t.Name {
	case "all":
		if hasArg || cidr != "" {
			return nil, fmt.Errorf("%s: all takes no argument", f)
		}
	case "include", "exists":
		if !hasArg || arg == "" {
			return nil, fmt.Errorf("%s: %s needs a domain", f, t.Name)
		}
		t.Domain = arg
	case "a", "mx", "ptr":
		t.Domain = domain
		if hasArg {
			t.Domain = arg
		}
		if cidr != "" {
			t4, t6 := cidrLengths(&SPFTerm{Text: cidr})
			if t4 < 0 || t4 > 32 || t6 < 0 || t6 > 128 {
				return nil, fmt.Errorf("%s: bad CIDR length", f)
			}
		}
	case "ip4", "ip6":
		if !hasArg {
			return nil, fmt.Errorf("%s: %s needs an address", f, t.Name)
		}
		p, err := parsePrefix(arg)
		if err != nil || (t.Name == "ip4") != p.Addr().Is4() {
			return nil, fmt.Errorf("%s: not an %s network", f, map[string]string{"ip4": "IPv4", "ip6": "IPv6"}[t.Name])
		}
		t.Prefixes = []netip.Prefix{p}
	default:
		return nil, fmt.Errorf("unknown mechanism %q", f)
	}
	t.Domain = strings.TrimSuffix(strings.ToLower(t.Domain), ".")
	return t, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// checkAll notes how the record ends: -all, ~all, ?all/+all or nothing.
func (w *SPFWalk) checkAll() {
	var all *SPFTerm
	redirect := false
	for _, t := range w.Root.Terms {
		switch t.Name {
		case "all":
			all = t
		case "redirect":
			redirect = true
		}
	}
	switch {
	case all == nil && redirect:
		// the redirected record decides
	case all == nil:
		w.problem(SevWarning, fmt.Sprintf("SPF of %s has no \"all\": mail from any other host gets a neutral result", w.Root.Domain), "end the record with -all (or ~all while checking reports)")
	case all.Qualifier == '~':
		w.problem(SevInfo, fmt.Sprintf("SPF of %s ends with ~all (softfail): unlisted hosts are not rejected by SPF alone; DMARC p=reject still applies", w.Root.Domain), "move to -all once the reports show every legitimate source is listed")
	case all.Qualifier == '?':
		w.problem(SevWarning, fmt.Sprintf("SPF of %s ends with ?all (neutral): it says nothing about unlisted hosts", w.Root.Domain), "end the record with -all or ~all")
	case all.Qualifier == '+':
		w.problem(SevError, fmt.Sprintf("SPF of %s ends with +all: every host on the Internet passes SPF for it", w.Root.Domain), "replace +all by -all")
	}
}

// Covering returns the top-level term of the domain's own record under
// which ip passes SPF, as written (e.g. "include:amazonses.com", "ip4:192.0.2.0/24",
// "mx"), or "" when no term with a pass qualifier matches. ptr and exists
// are not evaluated (they depend on the message).
func (w *SPFWalk) Covering(ip netip.Addr) string {
	if w == nil || w.Root == nil {
		return ""
	}
	if t := matchSPF(w.Root, ip.Unmap(), 0, nil); t != nil && t.passes() {
		return strings.TrimPrefix(t.Text, "+")
	}
	return ""
}

// CoveringPath returns the include and redirect domains (as written) on the
// path through which the domain's record authorises ip, outermost first:
// the path Covering follows. nil when nothing authorises it.
func (w *SPFWalk) CoveringPath(ip netip.Addr) []string {
	if w == nil || w.Root == nil {
		return nil
	}
	var path []string
	if t := matchSPF(w.Root, ip.Unmap(), 0, &path); t == nil || !t.passes() {
		return nil
	}
	return path
}

// passes tells whether a matching term gives a pass: a "+" qualifier, or a
// redirect (which matched through a passing record).
func (t *SPFTerm) passes() bool { return t.Qualifier == '+' || t.Name == "redirect" }

// matchSPF returns the first term of rec that matches ip: a pass-giving
// include counts as a match (RFC 7208 §5.2), redirect applies when nothing
// else matched. With path not nil it collects the include and redirect
// domains on the way to the match.
func matchSPF(rec *SPFRecord, ip netip.Addr, depth int, path *[]string) *SPFTerm {
	if rec == nil || depth > 12 {
		return nil
	}
	// through follows a child record: a match when it passes there.
	through := func(t *SPFTerm, domain string) bool {
		n := 0
		if path != nil {
			n = len(*path)
			*path = append(*path, domain)
		}
		if m := matchSPF(t.Child, ip, depth+1, path); m != nil && m.passes() {
			return true
		}
		if path != nil {
			*path = (*path)[:n]
		}
		return false
	}
	var redirect *SPFTerm
	for _, t := range rec.Terms {
		switch t.Name {
		case "all":
			return t
		case "ip4", "ip6", "a", "mx":
			for _, p := range t.Prefixes {
				if p.Contains(ip) {
					return t
				}
			}
		case "include":
			if through(t, t.Domain) {
				return t
			}
		case "redirect":
			redirect = t
		}
	}
	if redirect != nil && through(redirect, redirect.Domain) {
		return redirect
	}
	return nil
}

// Package align recomputes DMARC identifier alignment (RFC 7489 §3.1, RFC 9989
// §4.4) from the authentication results a report carries, under relaxed and
// strict rules, so dmarcd never copies the reporter's verdict.
//
// Organizational Domains follow RFC 7489 §3.2 with the Public Suffix List
// compiled into golang.org/x/net/publicsuffix, ICANN section only
// (docs/standards.md §4.2): a private suffix such as blogspot.com does not make
// x.blogspot.com its own organizational domain.
package align

import (
	"strings"
	"sync"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Normalize returns a domain lower-cased, trimmed, without one trailing dot,
// and in A-label form (RFC 7489 §6.6.1: U-labels are converted to A-labels).
func Normalize(d string) string {
	if isNormal(d) {
		return d
	}
	d = strings.TrimSpace(d)
	d = strings.TrimSuffix(d, ".")
	d = strings.ToLower(d)
	if d == "" {
		return ""
	}
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			if a, err := idna.Lookup.ToASCII(d); err == nil {
				return strings.ToLower(a)
			}
			break
		}
	}
	return d
}

// orgCache remembers organizational domains: a report names a handful of
// domains thousands of times, and the suffix list lookup is the costliest
// step of a record. Bounded: cleared when full.
var orgCache = struct {
	sync.Mutex
	m map[string]orgEntry
}{m: map[string]orgEntry{}}

type orgEntry struct {
	org      string
	isSuffix bool // the name itself is an ICANN public suffix
}

const orgCacheMax = 1 << 16

// OrgDomain returns the Organizational Domain of a normalised domain name
// (RFC 7489 §3.2): the ICANN public suffix plus one label. A name that is
// itself a public suffix, or has no dot, is its own organizational domain.
func OrgDomain(d string) string { return org(d).org }

func org(d string) orgEntry {
	if d == "" {
		return orgEntry{}
	}
	orgCache.Lock()
	e, ok := orgCache.m[d]
	orgCache.Unlock()
	if ok {
		return e
	}
	e = orgEntry{org: orgDomain(d), isSuffix: icannSuffix(d) == d}
	orgCache.Lock()
	if len(orgCache.m) >= orgCacheMax {
		clear(orgCache.m)
	}
	orgCache.m[d] = e
	orgCache.Unlock()
	return e
}

func orgDomain(d string) string {
	suffix := icannSuffix(d)
	if suffix == d {
		return d
	}
	rest := strings.TrimSuffix(d, "."+suffix)
	if i := strings.LastIndexByte(rest, '.'); i >= 0 {
		rest = rest[i+1:]
	}
	return rest + "." + suffix
}

// icannSuffix returns the longest ICANN public suffix of d. publicsuffix
// answers private suffixes too; when it does, walk up until the answer is an
// ICANN one (or the implicit "*" rule, a single label).
func icannSuffix(d string) string {
	name := d
	for {
		s, icann := publicsuffix.PublicSuffix(name)
		if icann || !strings.Contains(s, ".") {
			return s
		}
		// s is a private suffix such as "blogspot.com": look at its parent.
		i := strings.IndexByte(s, '.')
		name = s[i+1:]
	}
}

// Mode is an alignment mode: relaxed or strict (adkim/aspf "r" or "s").
type Mode byte

const (
	Relaxed Mode = 'r'
	Strict  Mode = 's'
)

// ParseMode returns Strict for "s" and Relaxed otherwise: the default of
// adkim and aspf is "r" (RFC 7489 §6.3), and an unknown value is treated as
// the default.
func ParseMode(v string) Mode {
	if strings.EqualFold(strings.TrimSpace(v), "s") {
		return Strict
	}
	return Relaxed
}

// Aligned reports whether the authenticated identifier id is aligned with the
// RFC5322.From domain from under mode (RFC 7489 §3.1.1, §3.1.2). Both are
// normalised here. An empty identifier is never aligned, and neither is one
// that is a bare public suffix: "a DKIM signature bearing a value of d=com
// would never allow an 'in alignment' result" (RFC 7489 §3.1.1).
func Aligned(id, from string, mode Mode) bool {
	id, from = Normalize(id), Normalize(from)
	if id == "" || from == "" {
		return false
	}
	if mode == Strict {
		return id == from
	}
	e := org(id)
	if e.isSuffix {
		return false
	}
	return id == from || e.org == org(from).org
}

// Auth is one authentication result: the DKIM d= or the SPF domain, the result
// word, and for SPF the scope ("", "mfrom" or "helo").
type Auth struct {
	Domain string
	Result string
	Scope  string
}

// Flags are the recomputed alignment facts of one record.
type Flags struct {
	HeaderFromOrg      string
	DKIMAlignedRelaxed bool // some DKIM pass whose d= is relaxed-aligned with header_from
	DKIMAlignedStrict  bool
	SPFAlignedRelaxed  bool // some SPF pass (scope mfrom or absent) relaxed-aligned
	SPFAlignedStrict   bool
	DMARCPass          bool // aligned DKIM or aligned SPF under the published adkim/aspf
}

// Evaluate computes Flags for one record (RFC 7489 §3.1, docs/standards.md
// §4.5): only a
// "pass" counts; SPF results with scope "helo" are excluded (RFC 7489 §4.1,
// only the MAIL FROM identity counts); dmarc_pass uses the published modes.
func Evaluate(headerFrom string, dkim, spf []Auth, adkim, aspf Mode) Flags {
	from := Normalize(headerFrom)
	f := Flags{HeaderFromOrg: OrgDomain(from)}
	for _, a := range dkim {
		if !isPass(a.Result) {
			continue
		}
		if Aligned(a.Domain, from, Relaxed) {
			f.DKIMAlignedRelaxed = true
			if Aligned(a.Domain, from, Strict) {
				f.DKIMAlignedStrict = true
			}
		}
	}
	for _, a := range spf {
		if !isPass(a.Result) {
			continue
		}
		if s := strings.ToLower(strings.TrimSpace(a.Scope)); s != "" && s != "mfrom" {
			continue
		}
		if Aligned(a.Domain, from, Relaxed) {
			f.SPFAlignedRelaxed = true
			if Aligned(a.Domain, from, Strict) {
				f.SPFAlignedStrict = true
			}
		}
	}
	dkimOK := f.DKIMAlignedRelaxed
	if adkim == Strict {
		dkimOK = f.DKIMAlignedStrict
	}
	spfOK := f.SPFAlignedRelaxed
	if aspf == Strict {
		spfOK = f.SPFAlignedStrict
	}
	f.DMARCPass = dkimOK || spfOK
	return f
}

func isPass(r string) bool { return strings.EqualFold(strings.TrimSpace(r), "pass") }

// isNormal reports whether d is already lower-case ASCII without surrounding
// space or a trailing dot: the common case, which Normalize returns as is.
func isNormal(d string) bool {
	if d == "" || d[len(d)-1] == '.' {
		return d == ""
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c >= 0x80 || ('A' <= c && c <= 'Z') || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			return false
		}
	}
	return true
}

package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// DMARCRecord is a parsed DMARC policy record (RFC 9989 §4.7, RFC 7489 §6.3).
type DMARCRecord struct {
	Name string            // where it was found, e.g. "_dmarc.example.com"
	Text string            // as published
	Tags map[string]string // lower-case tag names
	RUA  []string          // the mailto: URIs of rua
	RUF  []string
}

// Tag returns the value of a tag, or def when it is absent.
func (d *DMARCRecord) Tag(name, def string) string {
	if v, ok := d.Tags[name]; ok {
		return v
	}
	return def
}

// ErrNoDMARC: no DMARC record was found.
var ErrNoDMARC = errors.New("no DMARC record")

// ParseDMARC parses a record and returns the problems of its syntax and
// values, each with the fix.
func ParseDMARC(name, text string) (*DMARCRecord, []Finding) {
	rec := &DMARCRecord{Name: name, Text: text, Tags: map[string]string{}}
	var fs []Finding
	bad := func(sev Severity, msg, fix string) {
		fs = append(fs, Finding{Check: "dmarc", Severity: sev, Subject: name, Message: msg, Fix: fix})
	}
	for i, part := range strings.Split(text, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok {
			bad(SevError, fmt.Sprintf("%q is not a tag=value pair", part), "separate tags with \";\" and write them as tag=value")
			continue
		}
		if i == 0 && (k != "v" || v != "DMARC1") {
			bad(SevError, "the record does not start with v=DMARC1 (RFC 9989 §4.7; the value is case-sensitive)", "start the record with v=DMARC1;")
		}
		if _, dup := rec.Tags[k]; dup {
			bad(SevWarning, fmt.Sprintf("tag %s appears twice", k), "keep one "+k+"=")
		}
		rec.Tags[k] = v
	}
	oneOf := func(tag string, allowed ...string) {
		v, ok := rec.Tags[tag]
		if ok && !containsFold(allowed, v) {
			bad(SevError, fmt.Sprintf("%s=%s is not one of %s", tag, v, strings.Join(allowed, ", ")), fmt.Sprintf("set %s to one of %s", tag, strings.Join(allowed, ", ")))
		}
	}
	if _, ok := rec.Tags["p"]; !ok {
		if _, rua := rec.Tags["rua"]; rua {
			bad(SevWarning, "no p= tag: receivers treat the record as p=none because it has rua (RFC 9989 §4.7)", "add p=none (or the policy you mean)")
		} else {
			bad(SevError, "no p= tag and no rua: receivers ignore the record (RFC 9989 §4.10.1)", "add p=none; rua=mailto:...")
		}
	}
	oneOf("p", "none", "quarantine", "reject")
	oneOf("sp", "none", "quarantine", "reject")
	oneOf("np", "none", "quarantine", "reject")
	oneOf("adkim", "r", "s")
	oneOf("aspf", "r", "s")
	oneOf("t", "y", "n")
	oneOf("psd", "y", "n", "u")
	if v, ok := rec.Tags["pct"]; ok {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 0 || n > 100:
			bad(SevError, fmt.Sprintf("pct=%s is not a number from 0 to 100", v), "set pct to 0..100, or remove it")
		case n < 100:
			bad(SevInfo, fmt.Sprintf("pct=%d: RFC 9989 removed pct; receivers following it apply the policy to all mail, older ones to %d%%", n, n), "use t=y for a testing phase instead of pct")
		}
	}
	if v, ok := rec.Tags["fo"]; ok {
		for _, o := range strings.Split(v, ":") {
			if !containsFold([]string{"0", "1", "d", "s"}, strings.TrimSpace(o)) {
				bad(SevError, fmt.Sprintf("fo=%s: %q is not one of 0, 1, d, s", v, o), "use fo=0, 1, d or s, separated by \":\"")
			}
		}
		if _, ruf := rec.Tags["ruf"]; !ruf {
			bad(SevInfo, "fo= has no effect without ruf=", "remove fo= or add ruf=")
		}
	}
	if v, ok := rec.Tags["ri"]; ok {
		bad(SevInfo, fmt.Sprintf("ri=%s is historic (RFC 9989 §9.3); receivers send daily reports whatever it says", v), "remove ri=")
	}
	for _, tag := range []string{"rua", "ruf"} {
		v, ok := rec.Tags[tag]
		if !ok {
			continue
		}
		for _, u := range strings.Split(v, ",") {
			u = strings.TrimSpace(u)
			// RFC 7489 §6.2 allowed a "!size" suffix.
			if i := strings.LastIndexByte(u, '!'); i > 0 {
				u = u[:i]
			}
			pu, err := url.Parse(u)
			if err != nil || !strings.EqualFold(pu.Scheme, "mailto") || !strings.Contains(pu.Opaque, "@") {
				bad(SevError, fmt.Sprintf("%s: %q is not a mailto: URI with an address", tag, u), tag+"=mailto:dmarc@example.com")
				continue
			}
			addr := pu.Opaque
			if tag == "rua" {
				rec.RUA = append(rec.RUA, addr)
			} else {
				rec.RUF = append(rec.RUF, addr)
			}
		}
	}
	if _, ok := rec.Tags["rua"]; !ok {
		bad(SevWarning, "no rua=: nobody receives aggregate reports, so nothing tells you what enforcement would break", "add rua=mailto:<the address dmarcd reads>")
	}
	return rec, fs
}

// dmarcAt reads the DMARC record at _dmarc.name: (nil, nil) when there is
// none or when several are published (both mean "no record", RFC 9989 §4.10).
func (r *Resolver) dmarcAt(ctx context.Context, name string) (string, int, error) {
	txts, err := r.TXT(ctx, "_dmarc."+name)
	if err != nil && !errors.Is(err, ErrNXDomain) {
		return "", 0, err
	}
	var l []string
	for _, t := range txts {
		if strings.HasPrefix(strings.TrimSpace(t), "v=DMARC1") {
			l = append(l, t)
		}
	}
	if len(l) != 1 {
		return "", len(l), nil
	}
	return l[0], 1, nil
}

// TreeWalk performs the DNS tree walk of RFC 9989 §4.10 from domain: the
// names queried in order and the records found there ("" for none).
// It stops at a record with psd=y or psd=n, and asks at most 8 names.
func (r *Resolver) TreeWalk(ctx context.Context, domain string) (names []string, records map[string]string, err error) {
	records = map[string]string{}
	labels := strings.Split(strings.TrimSuffix(strings.ToLower(domain), "."), ".")
	for len(labels) > 0 {
		name := strings.Join(labels, ".")
		names = append(names, name)
		text, _, err := r.dmarcAt(ctx, name)
		if err != nil {
			return names, records, err
		}
		if text != "" {
			records[name] = text
			rec, _ := ParseDMARC("_dmarc."+name, text)
			if p := rec.Tag("psd", "u"); p == "y" || p == "n" {
				break
			}
		}
		if len(labels) > 8 {
			labels = labels[len(labels)-7:]
		} else {
			labels = labels[1:]
		}
	}
	return names, records, nil
}

// OrgDomainTreeWalk selects the Organizational Domain from a tree walk
// (RFC 9989 §4.10.2): a record with psd=n names it; one with psd=y below the
// start names the domain one label below it; otherwise the shortest name with
// a record; nothing found: the start domain.
func OrgDomainTreeWalk(start string, names []string, records map[string]string) string {
	for _, n := range names { // longest first
		text, ok := records[n]
		if !ok {
			continue
		}
		rec, _ := ParseDMARC("_dmarc."+n, text)
		switch rec.Tag("psd", "u") {
		case "n":
			return n
		case "y":
			if n != start {
				for _, m := range names {
					if strings.HasSuffix(m, "."+n) && strings.Count(m, ".") == strings.Count(n, ".")+1 {
						return m
					}
				}
				// the start name was shortened: one label of start above n
				sl := strings.Split(start, ".")
				nl := strings.Count(n, ".") + 1
				if len(sl) > nl {
					return strings.Join(sl[len(sl)-nl-1:], ".")
				}
			}
		}
	}
	for i := len(names) - 1; i >= 0; i-- {
		if _, ok := records[names[i]]; ok {
			return names[i]
		}
	}
	return start
}

func containsFold(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

package dnscheck

import (
	"fmt"
	"sort"
	"strings"

	"github.com/dmarcd/dmarcd/parse/valid"
)

// boundSelectors returns the selectors whose key checkDKIM may look up:
// those whose key name (SELECTOR._domainkey.D, RFC 6376 §3.6.2.1) is a DNS
// name (valid.Domain) and whose d= is the checked domain or a subdomain of
// it, at most max of them (DefaultMaxSelectors when 0), those on the most
// messages, in their original order. What is left out is said in an info
// finding, so that a forged list of thousands of selectors costs at most
// max queries.
func boundSelectors(rep *Report, sels []Selector, max int) []Selector {
	if max <= 0 {
		max = DefaultMaxSelectors
	}
	type indexed struct {
		Selector
		at int
	}
	var ok []indexed
	bad := 0
	var firstBad string
	for i, s := range sels {
		d := strings.ToLower(s.Domain)
		if err := valid.Domain(strings.ToLower(s.Selector) + "._domainkey." + d); err != nil || !(d == rep.Domain || strings.HasSuffix(d, "."+rep.Domain)) {
			if bad == 0 {
				firstBad = valid.Quote(s.Selector, 40) + " d=" + valid.Quote(s.Domain, 40)
			}
			bad++
			continue
		}
		ok = append(ok, indexed{s, i})
	}
	if bad > 0 {
		rep.add("dkim", SevInfo, rep.Domain, fmt.Sprintf("%d selector(s) seen in the reports not looked up: not a DNS name or not under %s (the first: %s)", bad, rep.Domain, firstBad), "")
	}
	if len(ok) > max {
		sort.SliceStable(ok, func(i, j int) bool { return ok[i].Messages > ok[j].Messages })
		rep.add("dkim", SevInfo, rep.Domain, fmt.Sprintf("%d selectors seen; the %d on the most messages were looked up", len(ok), max), "")
		ok = ok[:max]
		sort.Slice(ok, func(i, j int) bool { return ok[i].at < ok[j].at })
	}
	out := make([]Selector, len(ok))
	for i, s := range ok {
		out[i] = s.Selector
	}
	return out
}

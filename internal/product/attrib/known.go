package attrib

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/parse/align"
)

// Known matches source IPs against known sources: the built-in senders of
// internal/product/readiness (senders.yaml) and the operator's file
// (attribution.known_sources, the same format with cidrs, ptr_suffixes and
// authorised), whose entries come first and replace built-in ones of the
// same id. See docs/readiness.md, "Known sources".
type Known struct {
	senders *readiness.Senders
	cidrs   [][]netip.Prefix // per sender, parsed
}

// LoadKnown returns the built-in known sources extended by the file at path
// ("" for none). Its error names the file and the entry at fault.
func LoadKnown(path string) (*Known, error) {
	s, err := readiness.LoadSenders(path)
	if err != nil {
		return nil, err
	}
	return NewKnown(s), nil
}

// NewKnown matches against senders (nil: the built-in ones).
func NewKnown(s *readiness.Senders) *Known {
	if s == nil {
		s = readiness.BuiltinSenders()
	}
	k := &Known{senders: s}
	for _, x := range s.List() {
		var l []netip.Prefix
		for _, c := range x.CIDRs {
			if p, err := readiness.ParseCIDR(c); err == nil { // validated when loaded
				l = append(l, p)
			}
		}
		k.cidrs = append(k.cidrs, l)
	}
	return k
}

// Senders returns the list matched against (for readiness).
func (k *Known) Senders() *readiness.Senders { return k.senders }

// Match returns the first known source, in list order, with a CIDR that
// contains ip, a PTR suffix that covers ptr when the PTR name is
// forward-confirmed (an unconfirmed PTR is the IP owner's claim only), or
// an SPF include among spfIncludes (the include domains through which the
// sending domain's SPF authorises ip); nil if none.
func (k *Known) Match(ip netip.Addr, ptr string, ptrConfirmed bool, spfIncludes []string) *readiness.Sender {
	if k == nil {
		return nil
	}
	ip = ip.Unmap()
	ptr = align.Normalize(ptr)
	list := k.senders.List()
	for i := range list {
		x := &list[i]
		for _, p := range k.cidrs[i] {
			if ip.IsValid() && p.Contains(ip) {
				return x
			}
		}
		if ptrConfirmed && ptr != "" {
			for _, suf := range x.PTRSuffixes {
				if ptr == suf || strings.HasSuffix(ptr, "."+suf) {
					return x
				}
			}
		}
		for _, inc := range x.SPFIncludes {
			if slices.Contains(spfIncludes, inc) {
				return x
			}
		}
	}
	return nil
}

// Apply sets a's known source from its stored facts (IP, PTR, SPF
// includes).
func (k *Known) Apply(a *SourceAttribution) {
	a.KnownSource, a.KnownAuthorised = "", false
	ip, err := netip.ParseAddr(a.IP)
	if err != nil {
		return
	}
	if x := k.Match(ip, a.PTR, a.PTRConfirmed, a.SPFIncludes); x != nil {
		a.KnownSource = x.Name
		a.KnownAuthorised = x.Authorised != nil && *x.Authorised
	}
}

// spfIncludes returns the include and redirect domains on the path through
// which w's record authorises ip (dnscheck.SPFWalk.CoveringPath), normalized,
// outermost first; nil when nothing authorises it.
func spfIncludes(w *dnscheck.SPFWalk, ip netip.Addr) []string {
	path := w.CoveringPath(ip)
	for i, d := range path {
		path[i] = align.Normalize(d)
	}
	return path
}

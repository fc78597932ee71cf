package readiness

import (
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/dmarcd/dmarcd/parse/align"
)

//go:embed senders.yaml
var builtinSenders []byte

// Sender is a known mail service, as senders.yaml describes it.
type Sender struct {
	ID   string `yaml:"id" json:"id"`
	Name string `yaml:"name" json:"name"`
	// DKIMDomains are the d= domains the service signs with by default;
	// MailFromDomains the MAIL FROM domains of its default return path. A
	// domain matches itself and its subdomains; a leading "*." is ignored.
	DKIMDomains     []string `yaml:"dkim_domains" json:"dkim_domains,omitempty"`
	MailFromDomains []string `yaml:"mail_from_domains" json:"mail_from_domains,omitempty"`
	// SPFIncludes are the include: mechanisms its customers publish.
	SPFIncludes []string `yaml:"spf_includes" json:"spf_includes,omitempty"`
	// FixDKIM and FixSPF say how to make its mail align ({domain}: the From
	// domain, {org}: its organizational domain).
	FixDKIM string `yaml:"fix_dkim" json:"fix_dkim,omitempty"`
	FixSPF  string `yaml:"fix_spf" json:"fix_spf,omitempty"`
	// StrictDKIM and StrictSPF explain what adkim=s / aspf=s do to its mail.
	StrictDKIM string   `yaml:"strict_dkim" json:"strict_dkim,omitempty"`
	StrictSPF  string   `yaml:"strict_spf" json:"strict_spf,omitempty"`
	Notes      []string `yaml:"notes" json:"notes,omitempty"`
	// NotMine marks identities that are not the domain owner's: their
	// mail counts as unauthenticated.
	NotMine bool `yaml:"not_mine" json:"not_mine,omitempty"`
	// CIDRs and PTRSuffixes (a forward-confirmed PTR name equal to or
	// under one) match a source IP, as SPFIncludes do when the domain's SPF
	// authorises the IP through one of them: internal/product/attrib stores the
	// name per IP (source_attribution.known_source).
	CIDRs       []string `yaml:"cidrs" json:"cidrs,omitempty"`
	PTRSuffixes []string `yaml:"ptr_suffixes" json:"ptr_suffixes,omitempty"`
	// Authorised is the operator's word: true, the source sends for the
	// domain with its owner's consent; false, it does not (as not_mine);
	// nil, not said.
	Authorised *bool `yaml:"authorised" json:"authorised,omitempty"`
}

// Label is the sender's name with the operator's word on it, e.g.
// "Amazon SES (authorised)".
func (x *Sender) Label() string {
	switch {
	case x.Authorised != nil && *x.Authorised:
		return x.Name + " (authorised)"
	case x.Authorised != nil || x.NotMine:
		return x.Name + " (not authorised)"
	}
	return x.Name
}

// Senders is an ordered list of known senders; the first match wins.
type Senders struct {
	list []Sender
}

// ErrSenders is returned (wrapped) for a senders file that cannot be used.
var ErrSenders = errors.New("readiness: bad senders file")

// BuiltinSenders returns the senders embedded in dmarcd (senders.yaml).
func BuiltinSenders() *Senders {
	l, err := parseSenders(builtinSenders, "senders.yaml (built in)")
	if err != nil {
		// The embedded file is tested; this cannot happen in a release.
		return &Senders{}
	}
	return &Senders{list: l}
}

// LoadSenders returns the built-in senders extended by the file at path
// ("" for none): the file's senders come first, and one with the id of a
// built-in sender replaces it.
func LoadSenders(path string) (*Senders, error) {
	s := BuiltinSenders()
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSenders, err)
	}
	l, err := parseSenders(b, path)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, x := range l {
		ids[x.ID] = true
	}
	for _, x := range s.list {
		if !ids[x.ID] {
			l = append(l, x)
		}
	}
	return &Senders{list: l}, nil
}

func parseSenders(b []byte, name string) ([]Sender, error) {
	var doc struct {
		Senders []Sender `yaml:"senders"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSenders, name, err)
	}
	seen := map[string]bool{}
	for i := range doc.Senders {
		x := &doc.Senders[i]
		if x.ID == "" || x.Name == "" {
			return nil, fmt.Errorf("%w: %s: senders[%d]: id and name are required", ErrSenders, name, i)
		}
		if seen[x.ID] {
			return nil, fmt.Errorf("%w: %s: senders[%d]: id %q appears twice", ErrSenders, name, i, x.ID)
		}
		seen[x.ID] = true
		if len(x.DKIMDomains)+len(x.MailFromDomains)+len(x.SPFIncludes)+len(x.CIDRs)+len(x.PTRSuffixes) == 0 {
			return nil, fmt.Errorf("%w: %s: sender %q: needs dkim_domains, mail_from_domains, spf_includes, cidrs or ptr_suffixes to be recognised", ErrSenders, name, x.ID)
		}
		for _, l := range [][]string{x.DKIMDomains, x.MailFromDomains, x.SPFIncludes, x.PTRSuffixes} {
			for j, d := range l {
				l[j] = align.Normalize(strings.TrimPrefix(strings.TrimSpace(d), "*."))
			}
		}
		for j, c := range x.CIDRs {
			p, err := ParseCIDR(c)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: sender %q: cidrs[%d]: %v", ErrSenders, name, x.ID, j, err)
			}
			x.CIDRs[j] = p.String()
		}
		if x.Authorised != nil {
			if *x.Authorised && x.NotMine {
				return nil, fmt.Errorf("%w: %s: sender %q: authorised: true and not_mine: true contradict each other", ErrSenders, name, x.ID)
			}
			x.NotMine = x.NotMine || !*x.Authorised
		}
	}
	return doc.Senders, nil
}

// List returns the senders in match order.
func (s *Senders) List() []Sender { return s.list }

// Match returns the first sender one of whose DKIM domains covers a d=
// domain in dkim, or one of whose MAIL FROM domains covers a domain in spf;
// nil if none does.
func (s *Senders) Match(dkim, spf []string) *Sender {
	for i := range s.list {
		x := &s.list[i]
		if coversAny(x.DKIMDomains, dkim) || coversAny(x.MailFromDomains, spf) {
			return x
		}
	}
	return nil
}

// ByName returns the first sender with the name, or nil.
func (s *Senders) ByName(name string) *Sender {
	for i := range s.list {
		if s.list[i].Name == name {
			return &s.list[i]
		}
	}
	return nil
}

// ParseCIDR parses a cidrs entry: a prefix ("54.240.0.0/18") or a bare
// address (a /32 or /128), masked.
func ParseCIDR(c string) (netip.Prefix, error) {
	c = strings.TrimSpace(c)
	if !strings.Contains(c, "/") {
		a, err := netip.ParseAddr(c)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix (e.g. 54.240.0.0/18) or an address", c)
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(c)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix (e.g. 54.240.0.0/18)", c)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix shorter than /96", c)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Get returns the sender with the id, or nil.
func (s *Senders) Get(id string) *Sender {
	for i := range s.list {
		if s.list[i].ID == id {
			return &s.list[i]
		}
	}
	return nil
}

func coversAny(patterns, domains []string) bool {
	for _, d := range domains {
		d = align.Normalize(d)
		for _, p := range patterns {
			if d == p || strings.HasSuffix(d, "."+p) {
				return true
			}
		}
	}
	return false
}

// expand fills {domain} and {org} in a fix text.
func expand(text, domain string) string {
	return strings.NewReplacer("{domain}", domain, "{org}", align.OrgDomain(domain)).Replace(text)
}

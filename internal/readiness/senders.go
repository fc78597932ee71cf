package readiness

import (
	_ "embed"
	"errors"
	"fmt"
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
		if len(x.DKIMDomains)+len(x.MailFromDomains) == 0 {
			return nil, fmt.Errorf("%w: %s: sender %q: needs dkim_domains or mail_from_domains to be recognised", ErrSenders, name, x.ID)
		}
		for _, l := range [][]string{x.DKIMDomains, x.MailFromDomains} {
			for j, d := range l {
				l[j] = align.Normalize(strings.TrimPrefix(strings.TrimSpace(d), "*."))
			}
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

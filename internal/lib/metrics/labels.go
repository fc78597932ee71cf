package metrics

import (
	"strings"
	"sync"

	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// MaxLabelBytes caps a label value taken from a report (an org name, a
// reporter): longer values are cut, so that a hostile 8 MiB org_name costs
// a scrape 64 bytes, not 8 MiB.
const MaxLabelBytes = 64

// Label values shared by every domain label.
const (
	Other   = "other"   // a domain (or value) without a series of its own
	Unknown = "unknown" // no domain at all
)

// LabelValue makes s, a value from a report, fit for a label: escaped with
// valid.Printable (no control characters, bidi overrides or invalid UTF-8,
// which Prometheus refuses) and cut to MaxLabelBytes on a rune boundary.
// Two long values that share their first bytes get the same label value:
// callers that build constant metrics merge them (see internal/product/gauges).
func LabelValue(s string) string {
	if len(s) > 4*MaxLabelBytes {
		s = s[:4*MaxLabelBytes] // Printable at most quadruples a byte; no need to escape megabytes
	}
	return valid.Truncate(valid.Printable(s), MaxLabelBytes)
}

// Domains maps policy domains to the values of a domain label, so that the
// number of series stays bounded whatever domains reports name.
//
// With owned domains (config owned_domains), a domain's label is the owned
// domain it is or is a subdomain of, every other domain is Other: forged
// domains can neither add series nor push an owned domain out. With none
// (owned_domains ["*"], or a one-shot `dmarcd ingest` without the key),
// the first MaxDomains valid domain names seen by the process, of at most
// MaxLabelBytes, keep their own label for its life; every later one, and
// any name that is not a DNS name, is Other. That set is first come, first
// served: a flood of forged domains at start can take it, which is why the
// daemon wants owned_domains.
//
// A Domains is safe for concurrent use; one is shared by the ingest-time
// counters and the report-time gauges of a process.
type Domains struct {
	owned []string // normalised; nil: every domain, bounded

	mu   sync.Mutex
	seen map[string]bool
}

// NewDomains returns the labeler of owned (normalised here); an empty list
// or ["*"] labels every domain, bounded as described on Domains.
func NewDomains(owned []string) *Domains {
	d := &Domains{seen: map[string]bool{}}
	for _, o := range owned {
		if o == "*" {
			continue
		}
		if o = align.Normalize(o); o != "" {
			d.owned = append(d.owned, o)
		}
	}
	return d
}

// HasOwned reports whether owned domains were given.
func (d *Domains) HasOwned() bool { return len(d.owned) > 0 }

// Label returns the label value of the policy domain name.
func (d *Domains) Label(name string) string {
	name = align.Normalize(name)
	if name == "" {
		return Unknown
	}
	if d.owned != nil {
		for _, o := range d.owned {
			if name == o || strings.HasSuffix(name, "."+o) {
				return o
			}
		}
		return Other
	}
	if len(name) > MaxLabelBytes || valid.Domain(name) != nil || name == Other || name == Unknown {
		return Other
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[name] {
		return name
	}
	if len(d.seen) >= MaxDomains {
		return Other
	}
	d.seen[name] = true
	return name
}

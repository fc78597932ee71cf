package attrib

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Options name the operator's attribution data (config attribution.*):
// MaxMind-format databases for country and AS (either may be "", both may
// name one file holding both), and a known-sources file ("" for the
// built-in senders only).
type Options struct {
	GeoCountryDB string
	GeoASNDB     string
	KnownSources string
}

// Enrichment is Options opened: what Attribute adds to the DNS facts.
type Enrichment struct {
	Geo   *Geo   // nil: no GeoIP database
	Known *Known // never nil from Open
}

// Open opens the databases and loads the known sources. Its error names the
// file and the problem.
func Open(o Options) (*Enrichment, error) {
	k, err := LoadKnown(o.KnownSources)
	if err != nil {
		return nil, err
	}
	g, err := OpenGeo(o.GeoCountryDB, o.GeoASNDB)
	if err != nil {
		return nil, err
	}
	return &Enrichment{Geo: g, Known: k}, nil
}

// Close closes the GeoIP databases.
func (e *Enrichment) Close() error {
	if e == nil {
		return nil
	}
	return e.Geo.Close()
}

// Apply sets the known source of a from its stored facts (nil e: the
// built-in senders) and, when e has GeoIP databases, its country and AS.
// A GeoIP lookup failure leaves those fields as they were.
func (e *Enrichment) Apply(a *SourceAttribution) {
	k := (*Known)(nil)
	if e != nil {
		k = e.Known
	}
	if k == nil {
		k = builtinKnown()
	}
	k.Apply(a)
	if e == nil || e.Geo == nil {
		return
	}
	ip, err := netip.ParseAddr(a.IP)
	if err != nil {
		return
	}
	if g, err := e.Geo.Lookup(ip); err == nil {
		a.Country, a.ASN, a.ASOrg = g.Country, g.ASN, g.ASOrg
	}
}

// builtinKnown is the built-in senders, parsed once.
var builtinKnown = sync.OnceValue(func() *Known { return NewKnown(nil) })

// Refresh re-applies e to every stored attribution, without DNS, and
// rewrites the rows whose country, AS or known source changed (after the
// known-sources file or a GeoIP database changed: call it at start and
// after a configuration reload). A rewritten row's checked_at is the time
// of the rewrite. It returns how many rows it rewrote.
func Refresh(ctx context.Context, db DB, e *Enrichment) (int, error) {
	all, err := SourceAttributions(ctx, db)
	if err != nil {
		return 0, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	var changed []SourceAttribution
	for _, a := range all {
		b := a
		b.SPFIncludes = slices.Clone(a.SPFIncludes)
		e.Apply(&b)
		if b.Country == a.Country && b.ASN == a.ASN && b.ASOrg == a.ASOrg &&
			b.KnownSource == a.KnownSource && b.KnownAuthorised == a.KnownAuthorised {
			continue
		}
		// The latest checked_at wins (ReplacingMergeTree, argMax): the
		// rewrite must be strictly later than the row it replaces.
		b.CheckedAt = now
		if !b.CheckedAt.After(a.CheckedAt) {
			b.CheckedAt = a.CheckedAt.Add(time.Second)
		}
		changed = append(changed, b)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	written := 0
	for l := changed; len(l) > 0; {
		n := min(len(l), 10000)
		if err := WriteAttributions(ctx, db, l[:n]); err != nil {
			return written, err
		}
		written += n
		l = l[n:]
	}
	return written, nil
}

// Package attrib finds out who a report's source IP is, off the ingest path:
// its reverse DNS name confirmed by a forward lookup (the PTR name's A/AAAA
// records must contain the IP, since the IP's owner controls its PTR), and
// the term of the sending domain's own SPF record that authorises it, e.g.
// "include:amazonses.com", resolved within SPF's 10-lookup rule (RFC 7208
// §4.6.4). Results are stored per IP in source_attribution.
//
// With an Enrichment (Options: GeoIP databases and a known-sources file),
// each IP also gets its country and AS and the known source it matches
// (known.go, geo.go); Refresh re-applies them to stored rows, without DNS,
// when those files change.
//
// Lookups are cached per Attributor (SPF walks per domain, for its lifetime)
// and rate-limited to one query group at a time at most every Interval.
package attrib

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
)

// DefaultInterval is the minimum time between two IP or SPF lookups.
const DefaultInterval = 20 * time.Millisecond

// Attributor attributes IPs with one resolver, caching SPF walks.
type Attributor struct {
	r        *dnscheck.Resolver
	interval time.Duration

	mu   sync.Mutex
	last time.Time
	spf  map[string]*dnscheck.SPFWalk // nil entry: no usable record

	enrich *Enrichment // nil: DNS facts and built-in known sources only
}

// With makes a attribute with e (nil: built-in known sources, no GeoIP)
// and returns a.
func (a *Attributor) With(e *Enrichment) *Attributor {
	a.enrich = e
	return a
}

// New returns an Attributor; interval <= 0 is DefaultInterval.
func New(r *dnscheck.Resolver, interval time.Duration) *Attributor {
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &Attributor{r: r, interval: interval, spf: map[string]*dnscheck.SPFWalk{}}
}

// wait blocks until the rate limit allows another lookup.
func (a *Attributor) wait(ctx context.Context) error {
	a.mu.Lock()
	next := a.last.Add(a.interval)
	now := time.Now()
	if next.Before(now) {
		next = now
	}
	a.last = next
	a.mu.Unlock()
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// PTR returns the first PTR name of ip and whether its A/AAAA records
// contain ip (forward-confirmed reverse DNS). No PTR is "", false, nil;
// temporary DNS failures are errors.
func (a *Attributor) PTR(ctx context.Context, ip netip.Addr) (string, bool, error) {
	if err := a.wait(ctx); err != nil {
		return "", false, err
	}
	names, err := a.r.PTR(ctx, ip)
	if errors.Is(err, dnscheck.ErrNXDomain) || err == nil && len(names) == 0 {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	for _, n := range names {
		ips, err := a.r.IPs(ctx, n)
		if err != nil && !errors.Is(err, dnscheck.ErrNXDomain) {
			return names[0], false, err
		}
		for _, x := range ips {
			if x == ip.Unmap() {
				return n, true, nil
			}
		}
	}
	return names[0], false, nil
}

// SPFCovering returns the term of domain's SPF record that authorises ip,
// or "" (also when the domain has no usable record).
func (a *Attributor) SPFCovering(ctx context.Context, domain string, ip netip.Addr) (string, error) {
	w, err := a.walk(ctx, domain)
	if err != nil {
		return "", err
	}
	return w.Covering(ip), nil
}

// walk returns the cached SPF walk of domain; nil when it has no usable
// record.
func (a *Attributor) walk(ctx context.Context, domain string) (*dnscheck.SPFWalk, error) {
	a.mu.Lock()
	w, ok := a.spf[domain]
	a.mu.Unlock()
	if !ok {
		if err := a.wait(ctx); err != nil {
			return nil, err
		}
		var err error
		w, err = a.r.WalkSPF(ctx, domain)
		if err != nil && errors.Is(err, dnscheck.ErrTemporary) {
			return nil, err
		}
		if err != nil || w.Lookups > dnscheck.SPFMaxLookups {
			w = nil // receivers return permerror: nothing is authorised
		}
		a.mu.Lock()
		a.spf[domain] = w
		a.mu.Unlock()
	}
	return w, nil
}

// Attribute attributes ip, sending for domains (tried in order; the first
// whose SPF authorises ip is named).
func (a *Attributor) Attribute(ctx context.Context, ip netip.Addr, domains []string) (SourceAttribution, error) {
	res := SourceAttribution{IP: ip.String()}
	ptr, ok, err := a.PTR(ctx, ip)
	if err != nil {
		return res, fmt.Errorf("reverse DNS of %s: %w", ip, err)
	}
	res.PTR, res.PTRConfirmed = ptr, ok
	for _, d := range domains {
		w, err := a.walk(ctx, d)
		if err != nil {
			return res, fmt.Errorf("SPF of %s: %w", d, err)
		}
		if m := w.Covering(ip); m != "" {
			res.SPFDomain, res.SPFMechanism, res.SPFIncludes = d, m, spfIncludes(w, ip)
			break
		}
	}
	a.enrich.Apply(&res)
	res.CheckedAt = time.Now().UTC()
	return res, nil
}

// Run attributes up to limit source IPs of the stored records that have no
// attribution yet and stores the results. An IP whose lookups fail
// temporarily is left for the next run. It returns how many IPs it stored.
func Run(ctx context.Context, db DB, r *dnscheck.Resolver, limit int) (int, error) {
	return RunWith(ctx, db, r, limit, nil)
}

// RunWith is Run with an Enrichment (nil: built-in known sources, no
// GeoIP).
func RunWith(ctx context.Context, db DB, r *dnscheck.Resolver, limit int, e *Enrichment) (int, error) {
	ips, err := UnattributedIPs(ctx, db, limit)
	if err != nil {
		return 0, err
	}
	a := New(r, 0).With(e)
	var out []SourceAttribution
	for _, u := range ips {
		ip, err := netip.ParseAddr(u.IP)
		if err != nil {
			// Not an IP: store it as checked so it is not asked again.
			out = append(out, SourceAttribution{IP: u.IP, CheckedAt: time.Now().UTC()})
			continue
		}
		res, err := a.Attribute(ctx, ip, u.Domains)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			continue
		}
		out = append(out, res)
	}
	if err := WriteAttributions(ctx, db, out); err != nil {
		return 0, err
	}
	return len(out), ctx.Err()
}

package config

import (
	"net"
	"strings"
	"time"
)

// MinPeriodicInterval is the shortest check.interval and
// attribution.interval accepted (besides 0, off): both query DNS for every
// domain or new IP.
const MinPeriodicInterval = time.Second

// validatePeriodic checks the keys of check, attribution and dns.
func (c Config) validatePeriodic(ps *Problems) {
	for _, kv := range []struct {
		key string
		d   Duration
	}{{"check.interval", c.Check.Interval}, {"attribution.interval", c.Attribution.Interval}} {
		if kv.d < 0 || (kv.d > 0 && time.Duration(kv.d) < MinPeriodicInterval) {
			ps.add(kv.key, "%v: want 0 (off) or at least %v (e.g. 6h)", time.Duration(kv.d), MinPeriodicInterval)
		}
	}
	for i, d := range c.Check.Domains {
		if !validDomain(d) {
			ps.add("check.domains", "entry %d, %q, is not a domain name", i, d)
		}
	}
	if c.Attribution.MaxIPsPerRun < 1 {
		ps.add("attribution.max_ips_per_run", "must be positive, got %d", c.Attribution.MaxIPsPerRun)
	}
	if r := c.DNS.Resolver; r != "" {
		host := r
		if h, port, err := net.SplitHostPort(r); err == nil {
			if port == "" {
				ps.add("dns.resolver", "%q has no port (host:port, or a bare host for port 53)", r)
			}
			host = h
		}
		if host == "" || strings.ContainsAny(host, " /") {
			ps.add("dns.resolver", "%q is not host:port (e.g. 127.0.0.1:53)", r)
		}
	}
	if c.DNS.Timeout <= 0 {
		ps.add("dns.timeout", "must be positive")
	}
}

// validDomain accepts a DNS name: dot-separated labels of letters, digits,
// "-" and "_", at most 253 characters; a trailing dot is allowed.
func validDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

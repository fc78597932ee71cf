package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Outcomes of a lookup that callers branch on. A name that exists without
// records of the type asked (NODATA) is not an error: the lookup returns no
// records and a nil error.
var (
	// ErrNXDomain: the name does not exist (RCODE 3).
	ErrNXDomain = errors.New("no such domain (NXDOMAIN)")
	// ErrTemporary: SERVFAIL, a timeout or another failure that may go
	// away; the answer is unknown.
	ErrTemporary = errors.New("temporary DNS failure")
)

// DefaultTimeout is the time one query may take, retries included.
const DefaultTimeout = 3 * time.Second

// maxCNAME is the longest CNAME chain followed.
const maxCNAME = 8

// Resolver sends queries to one recursive server with miekg/dns.
type Resolver struct {
	// Server is host:port of the recursive resolver.
	Server string
	// Timeout bounds each query (UDP, then TCP if truncated).
	Timeout time.Duration
}

// NewResolver returns a resolver for server (host:port, or a bare host for
// port 53); "" uses the first nameserver of /etc/resolv.conf. A zero timeout
// is DefaultTimeout.
func NewResolver(server string, timeout time.Duration) (*Resolver, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if server == "" {
		cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("reading /etc/resolv.conf: %w (use --resolver HOST:PORT)", err)
		}
		if len(cfg.Servers) == 0 {
			return nil, errors.New("/etc/resolv.conf names no nameserver (use --resolver HOST:PORT)")
		}
		server = net.JoinHostPort(cfg.Servers[0], cfg.Port)
	} else if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	return &Resolver{Server: server, Timeout: timeout}, nil
}

// Answer is the outcome of one lookup: the records of the type asked, and
// the CNAME chain that led to them (owner names, first the name asked).
type Answer struct {
	Records []dns.RR
	CNAMEs  []string
}

// Lookup queries name for qtype and follows CNAMEs (those in the answer, and
// by further queries when a server returns a bare CNAME). NXDOMAIN is
// ErrNXDomain, SERVFAIL and timeouts wrap ErrTemporary.
func (r *Resolver) Lookup(ctx context.Context, name string, qtype uint16) (Answer, error) {
	var a Answer
	cur := dns.Fqdn(strings.ToLower(name))
	for hop := 0; hop <= maxCNAME; hop++ {
		asked := cur
		m, err := r.exchange(ctx, cur, qtype)
		if err != nil {
			return a, err
		}
		// Walk the answer section from cur through its CNAMEs.
		for range maxCNAME + 1 {
			var next string
			for _, rr := range m.Answer {
				h := rr.Header()
				if !strings.EqualFold(h.Name, cur) {
					continue
				}
				if h.Rrtype == qtype {
					a.Records = append(a.Records, rr)
				} else if c, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME {
					next = strings.ToLower(c.Target)
				}
			}
			if len(a.Records) > 0 || next == "" {
				break
			}
			a.CNAMEs = append(a.CNAMEs, cur)
			cur = next
		}
		if len(a.Records) > 0 {
			return a, nil
		}
		switch m.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return a, fmt.Errorf("%s: %w", strings.TrimSuffix(cur, "."), ErrNXDomain)
		default:
			return a, fmt.Errorf("%s %s: %s: %w", strings.TrimSuffix(cur, "."), dns.TypeToString[qtype], dns.RcodeToString[m.Rcode], ErrTemporary)
		}
		// NODATA for cur; if the chain moved on, ask the new name.
		if cur == asked {
			return a, nil
		}
		if hop == maxCNAME {
			return a, fmt.Errorf("%s: CNAME chain longer than %d: %w", name, maxCNAME, ErrTemporary)
		}
	}
	return a, nil
}

func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	q.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp", Timeout: r.Timeout}
	m, _, err := c.ExchangeContext(ctx, q, r.Server)
	if err == nil && m.Truncated {
		c.Net = "tcp"
		m, _, err = c.ExchangeContext(ctx, q, r.Server)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %w", strings.TrimSuffix(name, "."), dns.TypeToString[qtype], err, ErrTemporary)
	}
	return m, nil
}

// TXT returns the TXT strings of name, the character-strings of each record
// concatenated (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
func (r *Resolver) TXT(ctx context.Context, name string) ([]string, error) {
	a, err := r.Lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var l []string
	for _, rr := range a.Records {
		l = append(l, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return l, nil
}

// IPs returns the A and AAAA addresses of name. NXDOMAIN gives ErrNXDomain.
func (r *Resolver) IPs(ctx context.Context, name string) ([]netip.Addr, error) {
	var ips []netip.Addr
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		a, err := r.Lookup(ctx, name, t)
		if err != nil {
			return ips, err
		}
		for _, rr := range a.Records {
			switch v := rr.(type) {
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(v.A.To4()); ok {
					ips = append(ips, ip)
				}
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(v.AAAA); ok {
					ips = append(ips, ip)
				}
			}
		}
	}
	return ips, nil
}

// MX returns the exchanges of name, without the trailing dot.
func (r *Resolver) MX(ctx context.Context, name string) ([]string, error) {
	a, err := r.Lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var l []string
	for _, rr := range a.Records {
		l = append(l, strings.TrimSuffix(strings.ToLower(rr.(*dns.MX).Mx), "."))
	}
	return l, nil
}

// PTR returns the names ip points back to, without the trailing dot.
func (r *Resolver) PTR(ctx context.Context, ip netip.Addr) ([]string, error) {
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return nil, err
	}
	a, err := r.Lookup(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	var l []string
	for _, rr := range a.Records {
		l = append(l, strings.TrimSuffix(strings.ToLower(rr.(*dns.PTR).Ptr), "."))
	}
	return l, nil
}

func txtStrings(rr dns.RR) []string {
	if t, ok := rr.(*dns.TXT); ok {
		return t.Txt
	}
	return nil
}

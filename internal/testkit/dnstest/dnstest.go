// Package dnstest serves test zones from a real DNS server on loopback
// (github.com/miekg/dns), for the tests of packages that resolve names:
// dnscheck, attrib, reportauth and the dmarcd check command.
//
// The server answers like a recursive resolver would for the zones it holds:
// it follows CNAME chains within its records and puts the whole chain in the
// answer, answers NXDOMAIN for names it has nothing for, NODATA for names
// that exist with other types, and expands "*." wildcards one level deep.
// Names can be made to fail with SERVFAIL or to time out (no reply at all).
package dnstest

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Server is a DNS server on 127.0.0.1 (UDP and TCP on one port).
type Server struct {
	// Addr is host:port of the server.
	Addr string

	mu       sync.Mutex
	records  map[string][]dns.RR // lower-case FQDN -> records
	servfail map[string]bool
	timeout  map[string]bool
	queries  atomic.Int64
}

// Start starts a server with the records, in zone-file syntax
// (`example.com. 300 IN TXT "v=spf1 -all"`; the TTL and class may be
// left out), and stops it when the test ends. A record that does not parse
// fails the test.
func Start(t testing.TB, records ...string) *Server {
	t.Helper()
	s := &Server{records: map[string][]dns.RR{}, servfail: map[string]bool{}, timeout: map[string]bool{}}
	s.Add(t, records...)
	pc, ln, err := listen()
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	s.Addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: ln, Handler: s}
	var started sync.WaitGroup
	started.Add(2)
	udp.NotifyStartedFunc = started.Done
	tcp.NotifyStartedFunc = started.Done
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	started.Wait()
	t.Cleanup(func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	})
	return s
}

// listen binds UDP and TCP on one free loopback port.
func listen() (net.PacketConn, net.Listener, error) {
	var err error
	for range 20 {
		var pc net.PacketConn
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		var ln net.Listener
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
	}
	return nil, nil, err
}

// Add adds records while the server runs.
func (s *Server) Add(t testing.TB, records ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, text := range records {
		rr, err := dns.NewRR(text)
		if err != nil || rr == nil {
			t.Fatalf("dnstest: record %q: %v", text, err)
		}
		name := strings.ToLower(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
}

// Replace replaces, while the server runs, every record of the names and
// types of records (zone-file syntax, as Start) with records: a TXT record
// given for a name drops the name's other TXT records and keeps its records
// of other types.
func (s *Server) Replace(t testing.TB, records ...string) {
	t.Helper()
	type key struct {
		name  string
		rtype uint16
	}
	drop := map[key]bool{}
	for _, text := range records {
		rr, err := dns.NewRR(text)
		if err != nil || rr == nil {
			t.Fatalf("dnstest: record %q: %v", text, err)
		}
		drop[key{strings.ToLower(rr.Header().Name), rr.Header().Rrtype}] = true
	}
	s.mu.Lock()
	for k := range drop {
		var keep []dns.RR
		for _, rr := range s.records[k.name] {
			if rr.Header().Rrtype != k.rtype {
				keep = append(keep, rr)
			}
		}
		s.records[k.name] = keep
	}
	s.mu.Unlock()
	s.Add(t, records...)
}

// ServFail makes queries for name (any type) answer SERVFAIL.
func (s *Server) ServFail(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[dns.Fqdn(strings.ToLower(name))] = true
}

// Timeout makes queries for name (any type) go unanswered.
func (s *Server) Timeout(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeout[dns.Fqdn(strings.ToLower(name))] = true
}

// Queries returns how many queries the server has received.
func (s *Server) Queries() int64 { return s.queries.Load() }

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timeout[name] {
		return
	}
	if s.servfail[name] {
		m.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	}
	m.Rcode = s.answer(m, name, q.Qtype, 0)
	_ = w.WriteMsg(m)
}

// answer appends the records of name and type to m, following CNAMEs.
func (s *Server) answer(m *dns.Msg, name string, qtype uint16, depth int) int {
	rrs, ok := s.records[name]
	owner := name
	for rest := name; !ok && strings.Contains(rest, "."); {
		_, rest, _ = strings.Cut(rest, ".")
		rrs, ok = s.records["*."+rest]
	}
	if !ok {
		return dns.RcodeNameError // also for a dangling CNAME
	}
	var found bool
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			c := dns.Copy(rr)
			c.Header().Name = dns.Fqdn(owner)
			m.Answer = append(m.Answer, c)
			found = true
		}
	}
	if found || qtype == dns.TypeCNAME {
		return dns.RcodeSuccess
	}
	for _, rr := range rrs {
		if c, isCNAME := rr.(*dns.CNAME); isCNAME && depth < 8 {
			cp := dns.Copy(c)
			cp.Header().Name = dns.Fqdn(owner)
			m.Answer = append(m.Answer, cp)
			return s.answer(m, strings.ToLower(c.Target), qtype, depth+1)
		}
	}
	return dns.RcodeSuccess // NODATA
}

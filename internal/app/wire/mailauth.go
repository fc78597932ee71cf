package wire

import (
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
)

// dnsVerifier returns the authenticator of report mails asking the
// recursive resolver server (host:port, or a host for port 53; "" for the
// first nameserver of /etc/resolv.conf), each lookup bounded by timeout
// (enrich.DefaultAuthTimeout when 0).
func dnsVerifier(server string, timeout time.Duration) (*enrich.Verifier, error) {
	if timeout <= 0 {
		timeout = enrich.DefaultAuthTimeout
	}
	r, err := dnscheck.NewResolver(server, timeout)
	if err != nil {
		return nil, err
	}
	return enrich.NewVerifier(r.LookupTXT, timeout), nil
}

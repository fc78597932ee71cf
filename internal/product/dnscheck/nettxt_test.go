package dnscheck

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
)

func TestLookupTXTGivesNXDomainAsANetNotFoundError(t *testing.T) {
	srv := dnstest.Start(t, txt("example.org.", "v=spf1 -all"))
	srv.ServFail("servfail.example.org.")
	r := resolver(t, srv)
	ctx := context.Background()
	if got, err := r.LookupTXT(ctx, "example.org"); err != nil || !slices.Equal(got, []string{"v=spf1 -all"}) {
		t.Errorf("example.org: %q, %v", got, err)
	}
	var de *net.DNSError
	if _, err := r.LookupTXT(ctx, "nothing.example.org"); !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("a name that does not exist: %v, want a *net.DNSError with IsNotFound", err)
	}
	if _, err := r.LookupTXT(ctx, "servfail.example.org"); !errors.Is(err, ErrTemporary) {
		t.Errorf("SERVFAIL: %v, want TXT's own ErrTemporary", err)
	}
}

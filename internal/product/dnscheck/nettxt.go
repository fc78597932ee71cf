package dnscheck

import (
	"context"
	"errors"
	"net"
)

// LookupTXT is TXT with its outcomes in the form of package net, which
// go-msgauth and enrich.LookupTXT expect: a name that does not exist is a
// *net.DNSError with IsNotFound (wrapping nothing: its text is TXT's); any
// other error is TXT's own.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := r.TXT(ctx, name)
	if errors.Is(err, ErrNXDomain) {
		return txts, &net.DNSError{Err: err.Error(), Name: name, IsNotFound: true}
	}
	return txts, err
}

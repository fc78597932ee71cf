package enrich_test

import (
	"testing"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/parse/failure"
)

func TestFailureAlignmentRecomputedFromAuthenticationResults(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    failure.Report
		want enrich.FailureAlignment
	}{
		{"dkim pass for the DKIM-Domain, relaxed only", failure.Report{
			DKIMDomain:            "mail.example.com",
			AuthenticationResults: []string{"mx.example.net; dkim=pass (2048-bit key) header.d=mail.example.com header.s=s1"},
			Original:              failure.Original{FromDomain: "example.com"},
		}, enrich.FailureAlignment{DKIMRelaxed: true}},
		{"dkim fail", failure.Report{
			DKIMDomain:            "example.com",
			AuthenticationResults: []string{"mx.example.net; dkim=fail header.d=example.com"},
			Original:              failure.Original{FromDomain: "example.com"},
		}, enrich.FailureAlignment{}},
		{"dkim pass for another domain than DKIM-Domain", failure.Report{
			DKIMDomain:            "example.com",
			AuthenticationResults: []string{"mx.example.net; dkim=fail header.d=example.com; dkim=pass header.d=esp.example"},
			Original:              failure.Original{FromDomain: "example.com"},
		}, enrich.FailureAlignment{}},
		{"dkim pass without DKIM-Domain, header.i only", failure.Report{
			AuthenticationResults: []string{"dkim=pass header.i=@Example.COM"},
			Original:              failure.Original{FromDomain: "example.com"},
		}, enrich.FailureAlignment{DKIMRelaxed: true, DKIMStrict: true}},
		{"no Authentication-Results: nothing established", failure.Report{
			DKIMDomain:       "example.com",
			OriginalMailFrom: "TOKEN@example.com",
			Original:         failure.Original{FromDomain: "example.com"},
		}, enrich.FailureAlignment{}},
		{"spf pass for the mail-from domain, strict", failure.Report{
			OriginalMailFrom:      "TOKEN@example.com",
			AuthenticationResults: []string{"mx.example.net; spf=pass (sender is permitted) smtp.mailfrom=TOKEN@example.com; dmarc=fail header.from=example.com"},
			Original:              failure.Original{FromDomain: "example.com"},
		}, enrich.FailureAlignment{SPFRelaxed: true, SPFStrict: true}},
		{"spf pass in a comment does not count", failure.Report{
			OriginalMailFrom:      "TOKEN@bounce.example.com",
			AuthenticationResults: []string{"mx.example.net; spf=softfail (spf=pass smtp.mailfrom=x@bounce.example.com) smtp.mailfrom=TOKEN@bounce.example.com"},
			Original:              failure.Original{FromDomain: "example.com"},
		}, enrich.FailureAlignment{}},
		{"spf pass for the mail-from, relaxed", failure.Report{
			OriginalMailFrom:      "TOKEN@bounce.example.com",
			AuthenticationResults: []string{"spf=pass smtp.mailfrom=bounce.example.com"},
			Original:              failure.Original{FromDomain: "example.com"},
		}, enrich.FailureAlignment{SPFRelaxed: true}},
		{"spf pass unaligned (Netease sample)", failure.Report{
			OriginalMailFrom:      "bounces+1=163.com@email.entrata.com",
			DKIMDomain:            "entrata.com",
			AuthenticationResults: []string{"163.com; dkim=pass header.d=entrata.com; spf=pass smtp.mailfrom=bounces+1=163.com@email.entrata.com"},
			Original:              failure.Original{FromDomain: "cardinal.com"},
		}, enrich.FailureAlignment{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := enrich.Failure(&tc.r).Alignment; got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

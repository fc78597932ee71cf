package enrich_test

import (
	"slices"
	"testing"

	"github.com/dmarcd/dmarcd/enrich"
)

func TestAuthenticationResultsAreReadLeniently(t *testing.T) {
	for _, c := range []struct {
		name, value string
		want        []enrich.AuthResult
	}{
		{"authserv-id, comments, versions", `mx.example.net; dkim/1=PASS (2048-bit key; "x") header.d=Mail.Example.com header.s=s1; spf=pass smtp.mailfrom=<b@Bounce.example.com>`,
			[]enrich.AuthResult{{Method: "dkim", Result: "pass", Domain: "mail.example.com"}, {Method: "spf", Result: "pass", Domain: "bounce.example.com"}}},
		{"no authserv-id, white space only", `dkim=fail header.i=@example.org spf=none smtp.mailfrom=example.org`,
			[]enrich.AuthResult{{Method: "dkim", Result: "fail", Domain: "example.org"}, {Method: "spf", Result: "none", Domain: "example.org"}}},
		{"header.d wins over header.i", `dkim=pass header.d=a.example header.i=x@b.example`,
			[]enrich.AuthResult{{Method: "dkim", Result: "pass", Domain: "a.example"}}},
		{"a result inside a comment is dropped", `spf=softfail (spf=pass smtp.mailfrom=x@a.example) smtp.mailfrom=y@b.example; reason="x=y"`,
			[]enrich.AuthResult{{Method: "spf", Result: "softfail", Domain: "b.example"}}},
		{"nothing", `mx.example.net; none`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := enrich.ParseAuthResults(c.value); !slices.Equal(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

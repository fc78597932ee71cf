package align

import "testing"

func TestOrgDomain(t *testing.T) {
	cases := map[string]string{
		"example.com":           "example.com",
		"a.b.c.d.example.com":   "example.com", // RFC 7489 §3.2 example
		"mail.example.co.uk":    "example.co.uk",
		"co.uk":                 "co.uk",
		"com":                   "com",
		"x.blogspot.com":        "blogspot.com", // ICANN section only
		"bounces.amazonses.com": "amazonses.com",
		"localhost":             "localhost",
	}
	for in, want := range cases {
		if got := OrgDomain(in); got != want {
			t.Errorf("OrgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAlignedFollowsRFC7489Examples(t *testing.T) {
	cases := []struct {
		id, from string
		mode     Mode
		want     bool
	}{
		{"cbg.bounces.example.com", "example.com", Relaxed, true}, // RFC 7489 §3.1.2
		{"cbg.bounces.example.com", "example.com", Strict, false},
		{"example.com", "news.example.com", Relaxed, true}, // §3.1.1
		{"example.com", "news.example.com", Strict, false},
		{"Example.COM.", "example.com", Strict, true},
		{"com", "example.com", Relaxed, false}, // d=com never aligns
		{"co.uk", "co.uk", Relaxed, false},
		{"", "example.com", Relaxed, false},
		{"esp-mailer.net", "example.com", Relaxed, false},
		{"bücher.example", "xn--bcher-kva.example", Strict, true},
	}
	for _, c := range cases {
		if got := Aligned(c.id, c.from, c.mode); got != c.want {
			t.Errorf("Aligned(%q, %q, %c) = %v, want %v", c.id, c.from, c.mode, got, c.want)
		}
	}
}

func TestEvaluateSESWithMailFromSubdomain(t *testing.T) {
	// Amazon SES with a mail. MAIL FROM subdomain and DKIM d=example.com.
	f := Evaluate("example.com",
		[]Auth{{Domain: "example.com", Result: "pass"}, {Domain: "amazonses.com", Result: "pass"}},
		[]Auth{{Domain: "mail.example.com", Result: "pass"}}, Relaxed, Relaxed)
	want := Flags{HeaderFromOrg: "example.com", DKIMAlignedRelaxed: true, DKIMAlignedStrict: true,
		SPFAlignedRelaxed: true, SPFAlignedStrict: false, DMARCPass: true}
	if f != want {
		t.Fatalf("got %+v, want %+v", f, want)
	}
	// Under aspf=s with a failing DKIM, the same mail fails DMARC.
	f = Evaluate("example.com", []Auth{{Domain: "example.com", Result: "fail"}},
		[]Auth{{Domain: "mail.example.com", Result: "pass"}}, Relaxed, Strict)
	if f.DMARCPass {
		t.Fatalf("aspf=s with SPF on mail.example.com must not pass: %+v", f)
	}
}

func TestEvaluateIgnoresHeloScopeAndNonPass(t *testing.T) {
	f := Evaluate("example.com", []Auth{{Domain: "example.com", Result: "neutral"}},
		[]Auth{{Domain: "example.com", Result: "pass", Scope: "helo"}, {Domain: "example.com", Result: "softfail", Scope: "mfrom"}},
		Relaxed, Relaxed)
	if f.DKIMAlignedRelaxed || f.SPFAlignedRelaxed || f.DMARCPass {
		t.Fatalf("helo scope and non-pass results must not align: %+v", f)
	}
	f = Evaluate("example.com", nil, []Auth{{Domain: "Example.com", Result: "Pass"}}, Strict, Strict)
	if !f.SPFAlignedStrict || !f.DMARCPass {
		t.Fatalf("case-insensitive SPF pass with empty scope must align: %+v", f)
	}
}

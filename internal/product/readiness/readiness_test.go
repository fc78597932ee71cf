package readiness

import (
	"testing"
)

func TestBuiltinSendersParseAndMatchByIdentity(t *testing.T) {
	s, err := LoadSenders("")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.List()) < 9 {
		t.Fatalf("%d built-in senders, want SES, Workspace, M365 and the big ESPs", len(s.List()))
	}
	for _, c := range []struct {
		dkim, spf []string
		want      string
	}{
		{[]string{"amazonses.com"}, nil, "amazon-ses"},
		{nil, []string{"eu-west-1.amazonses.com"}, "amazon-ses"},
		{[]string{"example-com.20230601.gappssmtp.com"}, nil, "google-workspace"},
		{[]string{"contoso.onmicrosoft.com"}, nil, "microsoft-365"},
		{nil, []string{"em1234.sendgrid.net"}, "sendgrid"},
		{[]string{"mcsv.net"}, nil, "mailchimp"},
		{[]string{"mandrillapp.com"}, nil, "mandrill"},
		{[]string{"mailgun.org"}, nil, "mailgun"},
		{nil, []string{"pm.mtasv.net"}, "postmark"},
		{[]string{"sparkpostmail.com"}, nil, "sparkpost"},
		{[]string{"example.com"}, []string{"mail.example.com"}, ""},
		{[]string{"notamazonses.com"}, nil, ""},
	} {
		got := ""
		if m := s.Match(c.dkim, c.spf); m != nil {
			got = m.ID
		}
		if got != c.want {
			t.Errorf("Match(%v, %v) = %q, want %q", c.dkim, c.spf, got, c.want)
		}
	}
}

func TestApplyHonoursPctAndTesting(t *testing.T) {
	for _, c := range []struct {
		req       string
		pct       int
		testing   bool
		rej, quar float64
	}{
		{LevelReject, 100, false, 100, 0},
		{LevelReject, 25, false, 25, 75},
		{LevelQuarantine, 25, false, 0, 25},
		{LevelReject, 100, true, 0, 100},
		{LevelQuarantine, 100, true, 0, 0},
		{LevelNone, 100, false, 0, 0},
	} {
		r, q := apply(c.req, c.pct, c.testing, 100)
		if r != c.rej || q != c.quar {
			t.Errorf("apply(%s, pct=%d, t=%v) = %v rejected, %v quarantined; want %v, %v", c.req, c.pct, c.testing, r, q, c.rej, c.quar)
		}
	}
}

func TestPolicyDefaultsApplyToAbsentTags(t *testing.T) {
	q, bad := "quarantine", "bogus"
	p := policyOf(&PublishedPolicy{P: &q, Pct: &bad})
	if p.P != LevelQuarantine || p.SP != "" || p.Pct != 100 || p.ADKIM != "r" || p.ASPF != "r" || p.Testing {
		t.Errorf("policyOf = %+v", p)
	}
	if s := p.String(); s != "p=quarantine; adkim=r; aspf=r" {
		t.Errorf("String() = %q", s)
	}
}

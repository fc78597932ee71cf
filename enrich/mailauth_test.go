package enrich_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
	"github.com/dmarcd/dmarcd/internal/testkit/signedmail"
)

func TestVerifyReportMail(t *testing.T) {
	srv := dnstest.Start(t,
		signedmail.KeyRecord(t, "sel1._domainkey.reporter.example."),
		signedmail.TXTRecord("_dmarc.reporter.example.", "v=DMARC1; p=reject"),
		signedmail.TXTRecord("sel2._domainkey.reporter.example.", "v=DKIM1; k=rsa; p="), // revoked
		signedmail.KeyRecord(t, "esp._domainkey.esp.example."),
		signedmail.TXTRecord("_dmarc.nopolicy.example.", "v=DMARC1; p=none"),
		signedmail.TXTRecord("_dmarc.quarantined.example.", "v=DMARC1; p=none; sp=quarantine"),
	)
	xml := signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "r1", 5)
	signed := signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", xml), "reporter.example", "sel1")
	altered := bytes.Replace(signed, []byte("<count>5</count>"), []byte("<count>9</count>"), 1)
	for _, c := range []struct {
		name   string
		msg    []byte
		result string
		detail string
	}{
		{"signed and aligned", signed, enrich.AuthPass, "dkim=pass d=reporter.example s=sel1"},
		{"signed by the parent of a subdomain From", signedmail.Sign(t, signedmail.ReportMail("noreply@mail.reporter.example", xml), "reporter.example", "sel1"),
			enrich.AuthPass, "dkim=pass d=reporter.example s=sel1"},
		{"altered body", altered, enrich.AuthFail, "dkim=fail d=reporter.example s=sel1 (body hash did not verify)"},
		{"revoked key", signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", xml), "reporter.example", "sel2"), enrich.AuthFail, "key revoked"},
		{"no such selector", signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", xml), "reporter.example", "gone"), enrich.AuthFail, "no key for signature"},
		{"unsigned, From domain has p=reject", signedmail.ReportMail("dmarc@reporter.example", xml), enrich.AuthFail, "no DKIM signature; from=reporter.example dmarc p=reject"},
		{"unsigned subdomain, parent's sp=quarantine", signedmail.ReportMail("r@sub.quarantined.example", xml), enrich.AuthFail, "dmarc p=quarantine (of quarantined.example)"},
		{"unsigned, p=none", signedmail.ReportMail("dmarc@nopolicy.example", xml), enrich.AuthUnverified, "from=nopolicy.example dmarc p=none"},
		{"unsigned, no DMARC record", signedmail.ReportMail("dmarc@unknown.example", xml), enrich.AuthUnverified, "from=unknown.example has no DMARC policy"},
		{"ESP signature, not aligned", signedmail.Sign(t, signedmail.ReportMail("dmarc@nopolicy.example", xml), "esp.example", "esp"), enrich.AuthUnverified, "dkim=pass d=esp.example s=esp; from=nopolicy.example"},
		{"ESP signature, From with p=reject", signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", xml), "esp.example", "esp"), enrich.AuthFail, "dkim=pass d=esp.example s=esp; from=reporter.example dmarc p=reject"},
		{"not a mail", []byte(xml), enrich.AuthUnverified, "not verified"},
		{"ESP passes, own signature revoked, p=none", signedmail.Sign(t, signedmail.Sign(t, signedmail.ReportMail("dmarc@nopolicy.example", xml), "esp.example", "esp"), "nopolicy.example", "gone"),
			enrich.AuthUnverified, "dkim=permerror d=nopolicy.example s=gone"},
		{"own signature altered, ESP's intact", bytes.Replace(signedmail.Sign(t, signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", xml), "esp.example", "esp"), "reporter.example", "sel1"),
			[]byte("Subject: Report"), []byte("Subject: Rep0rt"), 1), enrich.AuthFail, "dkim=fail d=reporter.example s=sel1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := signedmail.Verifier(t, srv).Verify(context.Background(), bytes.NewReader(c.msg))
			if a.Result != c.result || !strings.Contains(a.Detail, c.detail) {
				t.Errorf("got %s %q, want %s with %q", a.Result, a.Detail, c.result, c.detail)
			}
		})
	}
}

// TestVerifyDNSFailureIsUnverified: SERVFAIL or no answer for the key or
// the policy never makes a report fail.
func TestVerifyDNSFailureIsUnverified(t *testing.T) {
	srv := dnstest.Start(t, signedmail.TXTRecord("_dmarc.reporter.example.", "v=DMARC1; p=reject"))
	xml := signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "r1", 5)
	srv.ServFail("sf._domainkey.reporter.example.")
	srv.Timeout("to._domainkey.reporter.example.")
	srv.ServFail("_dmarc.servfail.example.")
	srv.Timeout("_dmarc.timeout.example.")
	for _, c := range []struct {
		name   string
		msg    []byte
		detail string
	}{
		{"key SERVFAIL", signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", xml), "reporter.example", "sf"), "dkim=temperror d=reporter.example s=sf"},
		{"key timeout", signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", xml), "reporter.example", "to"), "dkim=temperror d=reporter.example s=to"},
		{"policy SERVFAIL", signedmail.ReportMail("dmarc@servfail.example", xml), "dmarc=temperror"},
		{"policy timeout", signedmail.ReportMail("dmarc@timeout.example", xml), "dmarc=temperror"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := signedmail.Verifier(t, srv).Verify(context.Background(), bytes.NewReader(c.msg))
			if a.Result != enrich.AuthUnverified || !strings.Contains(a.Detail, c.detail) {
				t.Errorf("got %s %q, want unverified with %q", a.Result, a.Detail, c.detail)
			}
		})
	}
}

// TestVerifyLateSignatureIsUnverified: a signature that expired, or that
// was made days ago and whose key is gone (a backlog ingested late, the
// selector rotated since), says nothing, even under p=reject; a body that
// does not match its hash still fails.
func TestVerifyLateSignatureIsUnverified(t *testing.T) {
	srv := dnstest.Start(t,
		signedmail.KeyRecord(t, "sel1._domainkey.reporter.example."),
		signedmail.TXTRecord("_dmarc.reporter.example.", "v=DMARC1; p=reject"))
	xml := signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "r1", 5)
	msg := signedmail.ReportMail("dmarc@reporter.example", xml)
	var expired bytes.Buffer
	if err := dkim.Sign(&expired, bytes.NewReader(msg), &dkim.SignOptions{Domain: "reporter.example", Selector: "sel1",
		Signer: signedmail.Key(), Expiration: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tenDaysAgo := []byte(fmt.Sprintf("t=%d;", time.Now().Add(-240*time.Hour).Unix()))
	backdate := func(m []byte) []byte { return tRe.ReplaceAll(m, tenDaysAgo) }
	for _, c := range []struct {
		name   string
		msg    []byte
		result string
		detail string
	}{
		{"expired", expired.Bytes(), enrich.AuthUnverified, "dkim=neutral d=reporter.example s=sel1 (signature has expired)"},
		{"old, key gone", backdate(signedmail.Sign(t, msg, "reporter.example", "rotated")), enrich.AuthUnverified, "its key may have been rotated since"},
		{"fresh, key gone", signedmail.Sign(t, msg, "reporter.example", "rotated"), enrich.AuthFail, "no key for signature"},
		{"old, body altered", bytes.Replace(backdate(signedmail.Sign(t, msg, "reporter.example", "sel1")), []byte("<count>5</count>"), []byte("<count>6</count>"), 1),
			enrich.AuthFail, "body hash did not verify"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := signedmail.Verifier(t, srv).Verify(context.Background(), bytes.NewReader(c.msg))
			if a.Result != c.result || !strings.Contains(a.Detail, c.detail) {
				t.Errorf("got %s %q, want %s with %q", a.Result, a.Detail, c.result, c.detail)
			}
		})
	}
}

// tRe finds the signing time of a DKIM-Signature.
var tRe = regexp.MustCompile(`t=[0-9]+;`)

// TestVerifierCachesAnswers: a second mail of the same reporter asks the
// DNS nothing.
func TestVerifierCachesAnswers(t *testing.T) {
	srv := dnstest.Start(t, signedmail.KeyRecord(t, "sel1._domainkey.reporter.example."))
	v := signedmail.Verifier(t, srv)
	xml := signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "r1", 5)
	for i := range 3 {
		msg := signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", xml), "reporter.example", "sel1")
		if a := v.Verify(context.Background(), bytes.NewReader(msg)); a.Result != enrich.AuthPass {
			t.Fatalf("mail %d: %+v", i, a)
		}
		if q := srv.Queries(); q != 1 {
			t.Fatalf("after mail %d: %d queries, want 1 (the key, then cached)", i, q)
		}
	}
}

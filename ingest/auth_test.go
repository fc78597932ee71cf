package ingest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// signingKey is one RSA key for all tests (generating one takes a while).
func signingKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// txtRecord renders a TXT record in zone syntax, the value split in
// 255-byte strings as DNS requires.
func txtRecord(name, value string) string {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, `"`+value[:255]+`"`)
		value = value[255:]
	}
	parts = append(parts, `"`+value+`"`)
	return name + " 300 IN TXT " + strings.Join(parts, " ")
}

// keyRecord is the DKIM key record of the test key (RFC 6376 §3.6.1).
func keyRecord(t *testing.T, name string) string {
	der, err := x509.MarshalPKIXPublicKey(&signingKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return txtRecord(name, "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(der))
}

// reportXML is a one-record aggregate report of example.com by org.
func reportXML(org, email, id string, count int) string {
	begin := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>%s</org_name><email>%s</email><report_id>%s</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct></policy_published>
  <record>
    <row><source_ip>192.0.2.1</source_ip><count>%d</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>
      <spf><domain>example.com</domain><result>pass</result></spf></auth_results>
  </record>
</feedback>
`, org, email, id, begin.Unix(), begin.Unix()+86399, count)
}

// reportMail is a report mail from the address, the XML attached.
func reportMail(from, xml string) []byte {
	return []byte("From: " + from + "\r\n" +
		"To: dmarc@example.com\r\n" +
		"Subject: Report Domain: example.com\r\n" +
		"Date: Mon, 06 Jan 2025 10:00:00 +0000\r\n" +
		"Message-ID: <" + fmt.Sprint(time.Now().UnixNano()) + "@test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
		"\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate report.\r\n" +
		"--b1\r\nContent-Type: text/xml\r\nContent-Disposition: attachment; filename=\"report.xml\"\r\n\r\n" +
		strings.ReplaceAll(xml, "\n", "\r\n") +
		"--b1--\r\n")
}

// sign signs msg as domain with the selector and the test key.
func sign(t *testing.T, msg []byte, domain, selector string) []byte {
	t.Helper()
	var b bytes.Buffer
	err := dkim.Sign(&b, bytes.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: selector, Signer: signingKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// verifier asks the test server, with a short timeout.
func verifier(t *testing.T, srv *dnstest.Server) *ingest.Verifier {
	t.Helper()
	v, err := ingest.NewDNSVerifier(srv.Addr, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyReportMail(t *testing.T) {
	srv := dnstest.Start(t,
		keyRecord(t, "sel1._domainkey.reporter.example."),
		txtRecord("_dmarc.reporter.example.", "v=DMARC1; p=reject"),
		txtRecord("sel2._domainkey.reporter.example.", "v=DKIM1; k=rsa; p="), // revoked
		keyRecord(t, "esp._domainkey.esp.example."),
		txtRecord("_dmarc.nopolicy.example.", "v=DMARC1; p=none"),
		txtRecord("_dmarc.quarantined.example.", "v=DMARC1; p=none; sp=quarantine"),
	)
	xml := reportXML("reporter.example", "dmarc@reporter.example", "r1", 5)
	signed := sign(t, reportMail("dmarc@reporter.example", xml), "reporter.example", "sel1")
	altered := bytes.Replace(signed, []byte("<count>5</count>"), []byte("<count>9</count>"), 1)
	for _, c := range []struct {
		name   string
		msg    []byte
		result string
		detail string
	}{
		{"signed and aligned", signed, ingest.AuthPass, "dkim=pass d=reporter.example s=sel1"},
		{"signed by the parent of a subdomain From", sign(t, reportMail("noreply@mail.reporter.example", xml), "reporter.example", "sel1"),
			ingest.AuthPass, "dkim=pass d=reporter.example s=sel1"},
		{"altered body", altered, ingest.AuthFail, "dkim=fail d=reporter.example s=sel1 (body hash did not verify)"},
		{"revoked key", sign(t, reportMail("dmarc@reporter.example", xml), "reporter.example", "sel2"), ingest.AuthFail, "key revoked"},
		{"no such selector", sign(t, reportMail("dmarc@reporter.example", xml), "reporter.example", "gone"), ingest.AuthFail, "no key for signature"},
		{"unsigned, From domain has p=reject", reportMail("dmarc@reporter.example", xml), ingest.AuthFail, "no DKIM signature; from=reporter.example dmarc p=reject"},
		{"unsigned subdomain, parent's sp=quarantine", reportMail("r@sub.quarantined.example", xml), ingest.AuthFail, "dmarc p=quarantine (of quarantined.example)"},
		{"unsigned, p=none", reportMail("dmarc@nopolicy.example", xml), ingest.AuthUnverified, "from=nopolicy.example dmarc p=none"},
		{"unsigned, no DMARC record", reportMail("dmarc@unknown.example", xml), ingest.AuthUnverified, "from=unknown.example has no DMARC policy"},
		{"ESP signature, not aligned", sign(t, reportMail("dmarc@nopolicy.example", xml), "esp.example", "esp"), ingest.AuthUnverified, "dkim=pass d=esp.example s=esp; from=nopolicy.example"},
		{"ESP signature, From with p=reject", sign(t, reportMail("dmarc@reporter.example", xml), "esp.example", "esp"), ingest.AuthFail, "dkim=pass d=esp.example s=esp; from=reporter.example dmarc p=reject"},
		{"not a mail", []byte(xml), ingest.AuthUnverified, "not verified"},
		{"ESP passes, own signature revoked, p=none", sign(t, sign(t, reportMail("dmarc@nopolicy.example", xml), "esp.example", "esp"), "nopolicy.example", "gone"),
			ingest.AuthUnverified, "dkim=permerror d=nopolicy.example s=gone"},
		{"own signature altered, ESP's intact", bytes.Replace(sign(t, sign(t, reportMail("dmarc@reporter.example", xml), "esp.example", "esp"), "reporter.example", "sel1"),
			[]byte("Subject: Report"), []byte("Subject: Rep0rt"), 1), ingest.AuthFail, "dkim=fail d=reporter.example s=sel1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := verifier(t, srv).Verify(context.Background(), bytes.NewReader(c.msg))
			if a.Result != c.result || !strings.Contains(a.Detail, c.detail) {
				t.Errorf("got %s %q, want %s with %q", a.Result, a.Detail, c.result, c.detail)
			}
		})
	}
}

// TestVerifyDNSFailureIsUnverified: SERVFAIL or no answer for the key or
// the policy never makes a report fail.
func TestVerifyDNSFailureIsUnverified(t *testing.T) {
	srv := dnstest.Start(t, txtRecord("_dmarc.reporter.example.", "v=DMARC1; p=reject"))
	xml := reportXML("reporter.example", "dmarc@reporter.example", "r1", 5)
	srv.ServFail("sf._domainkey.reporter.example.")
	srv.Timeout("to._domainkey.reporter.example.")
	srv.ServFail("_dmarc.servfail.example.")
	srv.Timeout("_dmarc.timeout.example.")
	for _, c := range []struct {
		name   string
		msg    []byte
		detail string
	}{
		{"key SERVFAIL", sign(t, reportMail("dmarc@reporter.example", xml), "reporter.example", "sf"), "dkim=temperror d=reporter.example s=sf"},
		{"key timeout", sign(t, reportMail("dmarc@reporter.example", xml), "reporter.example", "to"), "dkim=temperror d=reporter.example s=to"},
		{"policy SERVFAIL", reportMail("dmarc@servfail.example", xml), "dmarc=temperror"},
		{"policy timeout", reportMail("dmarc@timeout.example", xml), "dmarc=temperror"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := verifier(t, srv).Verify(context.Background(), bytes.NewReader(c.msg))
			if a.Result != ingest.AuthUnverified || !strings.Contains(a.Detail, c.detail) {
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
		keyRecord(t, "sel1._domainkey.reporter.example."),
		txtRecord("_dmarc.reporter.example.", "v=DMARC1; p=reject"))
	xml := reportXML("reporter.example", "dmarc@reporter.example", "r1", 5)
	msg := reportMail("dmarc@reporter.example", xml)
	var expired bytes.Buffer
	if err := dkim.Sign(&expired, bytes.NewReader(msg), &dkim.SignOptions{Domain: "reporter.example", Selector: "sel1",
		Signer: signingKey(t), Expiration: time.Now().Add(-time.Hour)}); err != nil {
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
		{"expired", expired.Bytes(), ingest.AuthUnverified, "dkim=neutral d=reporter.example s=sel1 (signature has expired)"},
		{"old, key gone", backdate(sign(t, msg, "reporter.example", "rotated")), ingest.AuthUnverified, "its key may have been rotated since"},
		{"fresh, key gone", sign(t, msg, "reporter.example", "rotated"), ingest.AuthFail, "no key for signature"},
		{"old, body altered", bytes.Replace(backdate(sign(t, msg, "reporter.example", "sel1")), []byte("<count>5</count>"), []byte("<count>6</count>"), 1),
			ingest.AuthFail, "body hash did not verify"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := verifier(t, srv).Verify(context.Background(), bytes.NewReader(c.msg))
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
	srv := dnstest.Start(t, keyRecord(t, "sel1._domainkey.reporter.example."))
	v := verifier(t, srv)
	xml := reportXML("reporter.example", "dmarc@reporter.example", "r1", 5)
	for i := range 3 {
		msg := sign(t, reportMail("dmarc@reporter.example", xml), "reporter.example", "sel1")
		if a := v.Verify(context.Background(), bytes.NewReader(msg)); a.Result != ingest.AuthPass {
			t.Fatalf("mail %d: %+v", i, a)
		}
		if q := srv.Queries(); q != 1 {
			t.Fatalf("after mail %d: %d queries, want 1 (the key, then cached)", i, q)
		}
	}
}

// TestPipelineStoresAuthResult ingests report mails and a bare file through
// the pipeline into ClickHouse: each report row carries its mail's result.
func TestPipelineStoresAuthResult(t *testing.T) {
	srv := dnstest.Start(t,
		keyRecord(t, "sel1._domainkey.reporter.example."),
		txtRecord("_dmarc.reporter.example.", "v=DMARC1; p=reject"),
		keyRecord(t, "sel1._domainkey.other.example."))
	st, conn := openStore(t)
	p := ingest.New(st, ingest.Options{Source: "file", Verifier: verifier(t, srv)})
	ctx := context.Background()
	good := sign(t, reportMail("dmarc@reporter.example", reportXML("reporter.example", "dmarc@reporter.example", "good", 5)), "reporter.example", "sel1")
	forged := bytes.Replace(sign(t, reportMail("dmarc@reporter.example", reportXML("reporter.example", "dmarc@reporter.example", "forged", 7)), "reporter.example", "sel1"),
		[]byte("<count>7</count>"), []byte("<count>8</count>"), 1)
	// Signed and aligned, but the report names another reporter.
	other := sign(t, reportMail("dmarc@other.example", reportXML("bigmailer.example", "dmarc@bigmailer.example", "other", 3)), "other.example", "sel1")
	for _, c := range []struct {
		name, data, id, result, detail string
	}{
		{"good.eml", string(good), "good", ingest.AuthPass, "dkim=pass d=reporter.example s=sel1"},
		{"forged.eml", string(forged), "forged", ingest.AuthFail, "body hash did not verify"},
		{"other.eml", string(other), "other", ingest.AuthUnverified, "report email domain bigmailer.example is not of the From domain other.example"},
		{"bare.xml", reportXML("reporter.example", "dmarc@reporter.example", "bare", 2), "bare", ingest.AuthUnverified, "bare file"},
		{"mbox.eml", "From MAILER-DAEMON Mon Jan  6 10:00:00 2025\n" + string(sign(t, reportMail("dmarc@reporter.example",
			reportXML("reporter.example", "dmarc@reporter.example", "mbox", 2)), "reporter.example", "sel1")), "mbox", ingest.AuthPass, "dkim=pass"},
	} {
		o := p.Process(ctx, c.name, strings.NewReader(c.data))
		if o.Status != ingest.Stored || o.Auth != c.result || !strings.Contains(o.AuthDetail, c.detail) {
			t.Errorf("%s: status %s auth %s %q, want stored, %s with %q (%s)", c.name, o.Status, o.Auth, o.AuthDetail, c.result, c.detail, o.Reason)
		}
		var got, detail string
		row := conn.QueryRow(ctx, "SELECT auth_result, auth_detail FROM aggregate_reports WHERE report_id = ?", c.id)
		if err := row.Scan(&got, &detail); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.result || detail != o.AuthDetail {
			t.Errorf("%s: stored %s %q, want %s %q", c.name, got, detail, c.result, o.AuthDetail)
		}
	}
	// A mail without a report: nothing stored, no auth, nothing left running.
	if o := p.Process(ctx, "hello.eml", bytes.NewReader(sign(t, []byte("From: dmarc@reporter.example\r\nSubject: hi\r\n\r\nhello\r\n"), "reporter.example", "sel1"))); o.Status != ingest.Invalid || o.Auth != "" {
		t.Errorf("mail without a report: %+v", o)
	}
	// Without a verifier everything is unverified.
	o := ingest.New(st, ingest.Options{Source: "file"}).Process(ctx, "good2.eml",
		bytes.NewReader(sign(t, reportMail("dmarc@reporter.example", reportXML("reporter.example", "dmarc@reporter.example", "good2", 1)), "reporter.example", "sel1")))
	if o.Status != ingest.Stored || o.Auth != ingest.AuthUnverified {
		t.Errorf("no verifier: %+v", o)
	}
}

// TestForgedReportIsLeftOutOfReadiness: a forged report among genuine ones
// (a big spoofed "aligned" source, to make the domain look ready) is left
// out of the verdict, and the verdict says so; asked for, it is counted.
func TestForgedReportIsLeftOutOfReadiness(t *testing.T) {
	srv := dnstest.Start(t,
		keyRecord(t, "sel1._domainkey.reporter.example."),
		txtRecord("_dmarc.reporter.example.", "v=DMARC1; p=reject"))
	st, _ := openStore(t)
	p := ingest.New(st, ingest.Options{Source: "file", Verifier: verifier(t, srv)})
	ctx := context.Background()
	for i := range 3 {
		xml := reportXML("reporter.example", "dmarc@reporter.example", fmt.Sprintf("genuine-%d", i), 10)
		msg := sign(t, reportMail("dmarc@reporter.example", xml), "reporter.example", "sel1")
		if o := p.Process(ctx, "genuine.eml", bytes.NewReader(msg)); o.Auth != ingest.AuthPass {
			t.Fatalf("genuine report: %+v", o)
		}
	}
	// The forger claims the same reporter, unsigned: the reporter's p=reject
	// makes it fail.
	forged := strings.Replace(reportXML("reporter.example", "dmarc@reporter.example", "forged", 1000), "192.0.2.1", "203.0.113.66", 1)
	if o := p.Process(ctx, "forged.eml", bytes.NewReader(reportMail("dmarc@reporter.example", forged))); o.Status != ingest.Stored || o.Auth != ingest.AuthFail {
		t.Fatalf("forged report: %+v", o)
	}
	// And one from a bare file: unverified.
	if o := p.Process(ctx, "bare.xml", strings.NewReader(reportXML("reporter.example", "dmarc@reporter.example", "bare", 30))); o.Auth != ingest.AuthUnverified {
		t.Fatalf("bare report: %+v", o)
	}

	since, until := time.Now().AddDate(0, 0, -10), time.Now().Add(time.Hour)
	verdict := func(include bool) readiness.Domain {
		t.Helper()
		o := readiness.Options{IncludeFailedAuth: include}
		rows, err := readiness.ReadSources(ctx, st, since, until, o)
		if err != nil {
			t.Fatal(err)
		}
		failed, err := readiness.ReadFailedAuth(ctx, st, since, until)
		if err != nil {
			t.Fatal(err)
		}
		pols, err := readiness.ReadPolicies(ctx, st, since, until)
		if err != nil {
			t.Fatal(err)
		}
		ds := readiness.EvaluateTrust(rows, pols, nil, readiness.Trust{FailedAuth: failed, Included: include})
		if len(ds) != 1 {
			t.Fatalf("%d domains: %+v", len(ds), ds)
		}
		return ds[0]
	}
	d := verdict(false)
	if d.Messages != 60 || d.Unverified != 30 || d.UnverifiedShare != 0.5 {
		t.Errorf("messages %d, unverified %d (%v): want 60 (3×10 genuine + 30 bare), 30, 0.5", d.Messages, d.Unverified, d.UnverifiedShare)
	}
	if f := d.FailedAuth; f.Reports != 1 || f.Messages != 1000 || f.Included || len(f.Reporters) != 1 || f.Reporters[0] != "reporter.example" {
		t.Errorf("failed_auth %+v: want the forged report's 1000 messages, left out", f)
	}
	for _, s := range d.Sources {
		if strings.Contains(strings.Join(s.TopIPs, ","), "203.0.113.66") {
			t.Errorf("the forged source is in the verdict: %+v", s)
		}
	}
	ev := strings.Join(d.Evidence, "\n")
	for _, want := range []string{"left out: 1000 messages from 1 report(s) (claiming to be from reporter.example) whose mail failed authentication",
		"50.0% of the messages (30) come from reports whose mail could not be authenticated"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	d = verdict(true)
	if d.Messages != 1060 || !d.FailedAuth.Included || !strings.Contains(strings.Join(d.Evidence, "\n"), "included on request") {
		t.Errorf("--include-failed-auth: %d messages, failed_auth %+v, evidence %q", d.Messages, d.FailedAuth, d.Evidence)
	}
}

// Package signedmail makes DKIM-signed report mails (RFC 6376) and the DNS
// records that verify them, for the tests of report-mail authentication
// (enrich/mailauth.go) and of the pipeline that stores its verdict.
package signedmail

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
)

// Key is one RSA key for all tests (generating one takes a while).
var Key = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// TXTRecord renders a TXT record in zone syntax, the value split in
// 255-byte strings as DNS requires.
func TXTRecord(name, value string) string {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, `"`+value[:255]+`"`)
		value = value[255:]
	}
	parts = append(parts, `"`+value+`"`)
	return name + " 300 IN TXT " + strings.Join(parts, " ")
}

// KeyRecord is the DKIM key record of Key (RFC 6376 §3.6.1) at name.
func KeyRecord(t testing.TB, name string) string {
	der, err := x509.MarshalPKIXPublicKey(&Key().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return TXTRecord(name, "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(der))
}

// ReportXML is a one-record aggregate report of example.com by org.
func ReportXML(org, email, id string, count int) string {
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

// ReportMail is a report mail from the address, the XML attached.
func ReportMail(from, xml string) []byte {
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

// Sign signs msg as domain with the selector and Key.
func Sign(t testing.TB, msg []byte, domain, selector string) []byte {
	t.Helper()
	var b bytes.Buffer
	err := dkim.Sign(&b, bytes.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: selector, Signer: Key()})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Verifier asks the test server, with a short timeout.
func Verifier(t testing.TB, srv *dnstest.Server) *enrich.Verifier {
	t.Helper()
	const timeout = 300 * time.Millisecond
	r, err := dnscheck.NewResolver(srv.Addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return enrich.NewVerifier(r.LookupTXT, timeout)
}

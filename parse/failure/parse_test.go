package failure

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"

	"github.com/dmarcd/dmarcd/parse"
)

// corpusDir returns <module root>/../shared/corpus.
func corpusDir(t testing.TB) string { return corpus.Dir(t) }

type manifestRow struct{ path, domain, records string }

// forensicManifest returns the MANIFEST.tsv rows of type forensic.
func forensicManifest(t testing.TB) []manifestRow {
	var out []manifestRow
	for _, e := range corpus.Manifest(t, "forensic") {
		out = append(out, manifestRow{e.Path, e.Domain, strconv.Itoa(e.Records)})
	}
	return out
}

func parseFile(t testing.TB, rel string, opt Options) *Report {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Parse(bytes.NewReader(data), opt)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return rep
}

type pinned struct {
	feedbackType, sourceIP string
	reportedDomain         []string
	fromDomain             string
	authFailure            []string
	deliveryResult         string
	arf, incomplete        bool
	hasBody                bool
	mailFrom               string
	reporterDomain         string
}

var corpusPins = map[string]pinned{
	"domainaware__parsedmarc/forensic/DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml": {
		"auth-failure", "10.10.10.10", []string{"domain.de"}, "domain.de", []string{"dmarc"}, "smg-policy-action",
		true, false, true, "sharepoint@domain.de", "domain.de"},
	"domainaware__parsedmarc/forensic/[Netease DMARC Failure Report] Rent Reminder.eml": {
		"auth-failure", "167.89.69.24", []string{"cardinal.com"}, "cardinal.com", nil, "delivered",
		true, true, false, "bounces+1137616-c1ad-xsj399=163.com@email.entrata.com", "163.com"},
	"domainaware__parsedmarc/forensic/dmarc_ruf_report_linkedin.crlf.eml": {
		"auth-failure", "10.10.10.10", []string{"example.com"}, "example.com", []string{"dmarc"}, "delivered",
		true, false, true, "", "linkedin.com"},
	"domainaware__parsedmarc/forensic/dmarc_ruf_report_linkedin.eml": {
		"auth-failure", "10.10.10.10", []string{"example.com"}, "example.com", []string{"dmarc"}, "delivered",
		true, false, true, "", "linkedin.com"},
	"domainaware__parsedmarc/forensic/exim_plain_text_only_no_arf_part.eml": {
		"", "203.0.113.68", []string{"example.com"}, "example.com", nil, "",
		false, true, false, "", "node01.mailgate.example.net"},
	"sisimai__set-of-emails/forensic/arf-19.eml": {
		"auth-failure", "203.0.113.2", []string{"example.net"}, "example.net", nil, "delivered",
		true, true, true, "sironeko@neko.example.com", "126.example.com"},
	"stalwartlabs__mail-auth/forensic/004.eml": {
		"auth-failure", "148.163.85.135", []string{"interpublication.org"}, "interpublication.org", []string{"dmarc"}, "",
		true, false, false, "info@interpublication.org", "box.mydomain.name"},
}

func TestCorpusFailureReportsPinnedFields(t *testing.T) {
	for _, row := range forensicManifest(t) {
		t.Run(row.path, func(t *testing.T) {
			want, ok := corpusPins[row.path]
			if !ok {
				t.Fatal("corpus file has no pinned fields: add it to corpusPins")
			}
			rep := parseFile(t, row.path, Options{})
			got := pinned{rep.FeedbackType, rep.SourceIP, rep.ReportedDomain, rep.Original.FromDomain,
				rep.AuthFailure, rep.DeliveryResult, rep.ARF, rep.Incomplete, rep.Original.HasBody,
				rep.OriginalMailFrom, rep.ReporterDomain}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			// MANIFEST: records 1 for an ARF report, 0 for a notice without a feedback part.
			if wantARF := row.records == "1"; rep.ARF != wantARF {
				t.Errorf("ARF %v, manifest records %s", rep.ARF, row.records)
			}
			if row.domain != "-" && (len(rep.ReportedDomain) == 0 || rep.ReportedDomain[0] != row.domain) {
				t.Errorf("reported domain %v, manifest %s", rep.ReportedDomain, row.domain)
			}
			if len(rep.Original.Headers) == 0 || rep.Original.HeaderHash == "" {
				t.Errorf("no original headers")
			}
			if len(Key(rep)) != 64 {
				t.Errorf("key %q", Key(rep))
			}
		})
	}
}

func TestNeteaseBase64FeedbackPartFields(t *testing.T) {
	rep := parseFile(t, "domainaware__parsedmarc/forensic/[Netease DMARC Failure Report] Rent Reminder.eml", Options{})
	if rep.UserAgent != "NtesDmarcReporter/1.0" || rep.Version != "1" || rep.DKIMDomain != "entrata.com" {
		t.Errorf("fields: %q %q %q", rep.UserAgent, rep.Version, rep.DKIMDomain)
	}
	if !reflect.DeepEqual(rep.IdentityAlignment, []string{"spf", "dkim"}) {
		t.Errorf("identity alignment %v", rep.IdentityAlignment)
	}
	if want := time.Date(2018, 9, 28, 8, 48, 42, 0, time.UTC); !rep.ArrivalDate.Equal(want) {
		t.Errorf("arrival %v, want %v", rep.ArrivalDate, want)
	}
	if len(rep.AuthenticationResults) != 1 || !strings.Contains(rep.AuthenticationResults[0], "spf=pass smtp.mailfrom=bounces+") {
		t.Errorf("authentication-results %q", rep.AuthenticationResults)
	}
	if rep.Original.Subject != "Rent Reminder" || rep.Original.From != "info@cardinal.com" {
		t.Errorf("original %q %q", rep.Original.Subject, rep.Original.From)
	}
}

func TestEximNoticeCarriesOriginalHeaders(t *testing.T) {
	rep := parseFile(t, "domainaware__parsedmarc/forensic/exim_plain_text_only_no_arf_part.eml", Options{})
	o := rep.Original
	if o.Subject != "Payment from your account." || o.MessageID != "<134117F8-2145-AECE-9CCA-25FC98731341@example.com>" {
		t.Errorf("original subject %q, message-id %q", o.Subject, o.MessageID)
	}
	if len(o.Headers) != 17 || o.Headers[0].Name != "Received" || o.Headers[16].Name != "Authentication-Results" {
		t.Errorf("headers: %d, %+v", len(o.Headers), o.Headers)
	}
	if rep.ArrivalDate.IsZero() {
		t.Errorf("arrival date from 'Received date:' not read")
	}
}

func TestLinkedInCRLFAndLFGiveTheSameReport(t *testing.T) {
	a := parseFile(t, "domainaware__parsedmarc/forensic/dmarc_ruf_report_linkedin.eml", Options{})
	b := parseFile(t, "domainaware__parsedmarc/forensic/dmarc_ruf_report_linkedin.crlf.eml", Options{})
	if !reflect.DeepEqual(a, b) {
		t.Errorf("LF and CRLF copies differ:\n%+v\n%+v", a, b)
	}
	if Key(a) != Key(b) {
		t.Error("keys differ")
	}
	if a.Original.ReturnPath != "" || a.Version != "1.0" || a.OriginalRcptTo[0] != "recipient@linkedin.com" {
		t.Errorf("return-path %q, version %q, rcpt %v", a.Original.ReturnPath, a.Version, a.OriginalRcptTo)
	}
}

func TestKeepBody(t *testing.T) {
	const rel = "domainaware__parsedmarc/forensic/dmarc_ruf_report_linkedin.eml"
	if rep := parseFile(t, rel, Options{}); rep.Original.Body != nil {
		t.Error("body kept without KeepBody")
	}
	rep := parseFile(t, rel, Options{KeepBody: true})
	if !bytes.Contains(rep.Original.Body, []byte("HTML Text")) {
		t.Errorf("body: %q", rep.Original.Body)
	}
}

// arf builds a report email around a feedback part and a third part.
func arf(outerType, feedbackHeaders, feedback, thirdType, third string) string {
	return "From: Reporter <reports@reporter.example>\r\n" +
		"Subject: FW: hello\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: " + outerType + "; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nA report.\r\n" +
		"--b1\r\nContent-Type: message/feedback-report\r\n" + feedbackHeaders + "\r\n" + feedback + "\r\n" +
		"--b1\r\nContent-Type: " + thirdType + "\r\n\r\n" + third + "\r\n" +
		"--b1--\r\n"
}

const sampleOriginal = "From: Author <author@example.org>\r\nTo: users@example.net\r\nSubject: hello\r\nMessage-ID: <m1@example.org>\r\n"

func TestFeedbackFieldVariants(t *testing.T) {
	fb := "Feedback-Type: auth-failure\r\nUser-Agent: x/1\r\nVersion: 1\r\n" +
		"Received-Date: Tue, 30 Apr 2019 02:09:00 +0000\r\n" +
		"Reporting-MTA: dns; MX.Reporter.example\r\n" +
		"Source-IP: 2001:DB8::0001 (host.example)\r\nSource-Port: 2525\r\nIncidents: 7\r\n" +
		"Authentication-Results: r.example; dkim=fail\r\n header.d=example.org\r\n" +
		"Authentication-Results: r.example; spf=fail smtp.mailfrom=example.org\r\n" +
		"Original-Rcpt-To: <a@example.net>\r\nOriginal-Rcpt-To: b@example.net\r\n" +
		"Reported-Domain: Example.ORG.\r\nReported-URI: http://example.org/x\r\n" +
		"Auth-Failure: DMARC, signature (key did not verify)\r\n" +
		"Delivery-Result: Reject (by policy)\r\n" +
		"DKIM-Domain: example.org\r\nDKIM-Identity: @example.org\r\nDKIM-Selector: s1\r\n" +
		"SPF-DNS: txt : example.org : \"v=spf1 -all\"\r\nSPF-DNS: txt : b.example.org : \"v=spf1 -all\"\r\n" +
		"Identity-Alignment: DKIM, spf\r\nX-Unknown: ignored\r\n"
	for _, third := range []string{"text/rfc822-headers", "message/rfc822", "text/rfc822", "message/rfc822-headers", "text-rfc-822", "message/rfc-822-headers"} {
		t.Run(third, func(t *testing.T) {
			rep, err := Parse(strings.NewReader(arf("multipart/report; report-type=feedback-report", "", fb, third, sampleOriginal)), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.ARF || rep.Incomplete {
				t.Errorf("ARF %v, incomplete %v", rep.ARF, rep.Incomplete)
			}
			if rep.ArrivalDate.Unix() != 1556590140 {
				t.Errorf("Received-Date not taken as Arrival-Date: %v", rep.ArrivalDate)
			}
			if rep.ReportingMTA != "mx.reporter.example" || rep.SourceIP != "2001:db8::1" || rep.SourcePort != "2525" || rep.Incidents != 7 {
				t.Errorf("mta %q ip %q port %q incidents %d", rep.ReportingMTA, rep.SourceIP, rep.SourcePort, rep.Incidents)
			}
			if len(rep.AuthenticationResults) != 2 || rep.AuthenticationResults[0] != "r.example; dkim=fail header.d=example.org" {
				t.Errorf("authentication-results %q", rep.AuthenticationResults)
			}
			if !reflect.DeepEqual(rep.OriginalRcptTo, []string{"a@example.net", "b@example.net"}) || !reflect.DeepEqual(rep.ReportedDomain, []string{"example.org"}) {
				t.Errorf("rcpt %v domain %v", rep.OriginalRcptTo, rep.ReportedDomain)
			}
			if !reflect.DeepEqual(rep.AuthFailure, []string{"dmarc", "signature"}) || rep.DeliveryResult != "reject" {
				t.Errorf("auth-failure %v delivery %q", rep.AuthFailure, rep.DeliveryResult)
			}
			if len(rep.SPFDNS) != 2 || !reflect.DeepEqual(rep.IdentityAlignment, []string{"dkim", "spf"}) || rep.DKIMSelector != "s1" {
				t.Errorf("spf-dns %v alignment %v selector %q", rep.SPFDNS, rep.IdentityAlignment, rep.DKIMSelector)
			}
			o := rep.Original
			if o.FromDomain != "example.org" || o.From != "author@example.org" || o.MessageID != "<m1@example.org>" || o.HasBody {
				t.Errorf("original %+v", o)
			}
			if rep.ReporterDomain != "reporter.example" || rep.ReportSubject != "FW: hello" {
				t.Errorf("reporter %q subject %q", rep.ReporterDomain, rep.ReportSubject)
			}
		})
	}
}

func TestMultipartMixedAndBase64FeedbackAccepted(t *testing.T) {
	fb := "RmVlZGJhY2stVHlwZTogYXV0aC1mYWlsdXJlDQpVc2VyLUFnZW50OiB4LzENClZlcnNpb246IDENCkF1dGgtRmFpbHVyZTogc3BmDQpTb3VyY2UtSVA6IDE5Mi4wLjIuMQ=="
	rep, err := Parse(strings.NewReader(arf("multipart/mixed", "Content-Transfer-Encoding: base64\r\n", fb, "message/rfc822", sampleOriginal+"\r\nbody\r\n")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.FeedbackType != "auth-failure" || rep.SourceIP != "192.0.2.1" || !reflect.DeepEqual(rep.AuthFailure, []string{"spf"}) || rep.Incidents != 1 {
		t.Errorf("%+v", rep)
	}
	if !rep.Original.HasBody {
		t.Error("message/rfc822 body not noticed")
	}
}

func TestMissingRequiredFieldsMarkIncomplete(t *testing.T) {
	rep, err := Parse(strings.NewReader(arf("multipart/report", "", "Feedback-Type: auth-failure\r\nSource-IP: not-an-ip\r\nIncidents: x\r\n", "text/rfc822-headers", sampleOriginal)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Incomplete || rep.SourceIP != "not-an-ip" || rep.Incidents != 1 {
		t.Errorf("incomplete %v, ip %q, incidents %d", rep.Incomplete, rep.SourceIP, rep.Incidents)
	}
}

func TestRejections(t *testing.T) {
	big := arf("multipart/report", "", "Feedback-Type: auth-failure\r\n", "text/rfc822-headers", sampleOriginal)
	cases := []struct {
		name, in string
		opt      Options
		code     parse.Code
	}{
		{"newsletter", "From: a@example.com\r\nSubject: News\r\nContent-Type: text/plain\r\n\r\nHello, our DMARC article.\r\n", Options{}, parse.NotAReport},
		{"aggregate report mail", "From: a@example.com\r\nSubject: Report Domain: example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nDMARC aggregate report, failures inside\r\n--x\r\nContent-Type: application/zip\r\n\r\nPK\r\n--x--\r\n", Options{}, parse.NotAReport},
		{"empty", "", Options{}, parse.NotAReport},
		{"broken header", "Subject: x\r\nno colon here\r\n\r\nbody", Options{}, parse.MIMESyntax},
		{"too large", big, Options{MaxBytes: 100}, parse.TooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.in), c.opt)
			if got := parse.CodeOf(err); got != c.code {
				t.Errorf("code %q (%v), want %q", got, err, c.code)
			}
		})
	}
}

func TestKeyUsesHeaderHashWithoutMessageID(t *testing.T) {
	rep := parseFile(t, "stalwartlabs__mail-auth/forensic/004.eml", Options{})
	if rep.Original.MessageID != "" {
		t.Fatalf("004.eml has a Message-ID %q", rep.Original.MessageID)
	}
	k := Key(rep)
	other := *rep
	other.Original.HeaderHash = "x"
	if Key(&other) == k {
		t.Error("key does not depend on the original header block")
	}
	Redact(rep, []byte("k"), true, false)
	if Key(rep) != k {
		t.Error("Redact changed the key")
	}
}

package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"

	"github.com/emersion/go-message"

	"github.com/dmarcd/dmarcd/parse"
)

// corpusDir returns <module root>/../shared/corpus.
func corpusDir(t testing.TB) string { return corpus.Dir(t) }

type manifestEntry struct {
	path             string
	container        string
	org, domain      string
	records, sessSum uint64
}

// smtpTLSManifest returns the MANIFEST.tsv rows of type smtp_tls.
func smtpTLSManifest(t testing.TB) []manifestEntry {
	var out []manifestEntry
	for _, e := range corpus.Manifest(t, "smtp_tls") {
		if !e.Known {
			t.Fatalf("manifest row %q: bad counts", e.Path)
		}
		out = append(out, manifestEntry{e.Path, e.Container, e.Org, e.Domain, uint64(e.Records), e.CountSum})
	}
	return out
}

// reportJSON returns the JSON of a corpus file: the file itself, or for an
// email the application/tlsrpt+gzip or +json part (RFC 8460 §5.3),
// gunzipped. Production code uses package extract; this is the least a test needs.
func reportJSON(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, ".eml") {
		return data
	}
	e, err := message.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatalf("%s: not multipart", path)
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("%s: no tlsrpt part: %v", path, err)
		}
		mt, _, _ := p.Header.ContentType()
		if !strings.HasPrefix(mt, "application/tlsrpt+") {
			continue
		}
		b, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		return b
	}
}

func TestCorpusReportsMatchManifest(t *testing.T) {
	dir := corpusDir(t)
	for _, m := range smtpTLSManifest(t) {
		t.Run(m.path, func(t *testing.T) {
			rep, err := Parse(bytes.NewReader(reportJSON(t, filepath.Join(dir, m.path))), 0)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := uint64(len(rep.Policies)); got != m.records {
				t.Errorf("policies: got %d, manifest %d", got, m.records)
			}
			var sum uint64
			for _, p := range rep.Policies {
				sum += p.Successful + p.Failed
				if p.Domain != m.domain {
					t.Errorf("policy domain: got %q, manifest %q", p.Domain, m.domain)
				}
			}
			if sum != m.sessSum {
				t.Errorf("successful+failed sessions: got %d, manifest %d", sum, m.sessSum)
			}
			if rep.OrganizationName != m.org {
				t.Errorf("organization: got %q, manifest %q", rep.OrganizationName, m.org)
			}
			if rep.ReportID == "" || rep.Begin.IsZero() || !rep.End.After(rep.Begin) {
				t.Errorf("identity: id %q, begin %v, end %v", rep.ReportID, rep.Begin, rep.End)
			}
			if len(Key(rep)) != 64 {
				t.Errorf("Key: %q", Key(rep))
			}
		})
	}
}

func TestRFC8460ExampleFields(t *testing.T) {
	rep, err := Parse(bytes.NewReader(reportJSON(t, filepath.Join(corpusDir(t), "domainaware__parsedmarc/smtp_tls/rfc8460.json"))), 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ContactInfo != "sts-reporting@company-x.example" || rep.ReportID != "5065427c-23d3-47ca-b6e0-946ea0e8c4be" {
		t.Errorf("contact %q, id %q", rep.ContactInfo, rep.ReportID)
	}
	if want := time.Date(2016, 4, 1, 0, 0, 0, 0, time.UTC); !rep.Begin.Equal(want) {
		t.Errorf("begin %v, want %v", rep.Begin, want)
	}
	p := rep.Policies[0]
	if p.Type != "sts" || len(p.Strings) != 4 || len(p.MXHosts) != 1 || p.MXHosts[0] != "*.mail.company-y.example" {
		t.Errorf("policy: %+v", p)
	}
	if len(p.Failures) != 3 {
		t.Fatalf("failures: %d", len(p.Failures))
	}
	f0, f1, f2 := p.Failures[0], p.Failures[1], p.Failures[2]
	if f0.ResultType != "certificate-expired" || f0.SendingMTAIP != "2001:db8:abcd:12::1" || f0.FailedSessions != 100 {
		t.Errorf("failure 0: %+v", f0)
	}
	if f1.ReceivingIP != "203.0.113.56" || !strings.HasPrefix(f1.AdditionalInformation, "https://reports.company-x.example/") {
		t.Errorf("failure 1: %+v", f1)
	}
	if f2.FailureReasonCode != "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED" || f2.ReceivingMXHostname != "mx-backup.mail.company-y.example" {
		t.Errorf("failure 2: %+v", f2)
	}
}

func TestMissingContactInfoAndSparseFailureDetailsAccepted(t *testing.T) {
	dir := corpusDir(t)
	rep, err := Parse(bytes.NewReader(reportJSON(t, filepath.Join(dir, "cry-inc__dmarc-report-viewer/smtp_tls/no-contact.json"))), 0)
	if err != nil || rep.ContactInfo != "" {
		t.Fatalf("no-contact.json: %v, contact %q", err, rep.ContactInfo)
	}
	rep, err = Parse(bytes.NewReader(reportJSON(t, filepath.Join(dir, "cry-inc__dmarc-report-viewer/smtp_tls/no_ip_and_mx.json"))), 0)
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Policies[0].Failures[0]
	if f.ResultType != "sts-policy-fetch-error" || f.FailedSessions != 3 || f.SendingMTAIP != "" {
		t.Errorf("failure: %+v", f)
	}
}

// deviant holds every known deviation at once (docs/standards.md §5.4, §6.8).
const deviant = `{
 "organization-name": " Example Org ",
 "date-range": {"start-datetime": "2024-01-02T00:00:00", "end-datetime": "2024-01-02T23:59:59.999"},
 "report-id": " r1 ",
 "policies": [{
  "policy": {"policy-type": "STS", "policy-string": "version: STSv1", "policy-domain": "Example.COM.",
             "mx-host-pattern": "*.MX.example.com"},
  "summary": {"total-successful-session-count": "12", "total-failure-session-count": 3.0},
  "failure-details": [{"result-type": "Certificate-Expired", "failed-session-count": "3",
                       "additional-info-uri": "https://x.example/why", "receiving-mx-helo": "MX1.example.com"}]
 }]
}`

func TestKnownDeviationsAccepted(t *testing.T) {
	rep, err := Parse(strings.NewReader(deviant), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC); !rep.Begin.Equal(want) {
		t.Errorf("begin %v, want %v (no offset means UTC)", rep.Begin, want)
	}
	if rep.End.Nanosecond() != 999000000 || rep.End.Location() != time.UTC {
		t.Errorf("end %v: fractional seconds lost", rep.End)
	}
	if rep.OrganizationName != "Example Org" || rep.ReportID != "r1" {
		t.Errorf("org %q, id %q", rep.OrganizationName, rep.ReportID)
	}
	p := rep.Policies[0]
	if p.Type != "sts" || p.Domain != "example.com" || len(p.Strings) != 1 || len(p.MXHosts) != 1 || p.MXHosts[0] != "*.mx.example.com" {
		t.Errorf("policy: %+v", p)
	}
	if p.Successful != 12 || p.Failed != 3 {
		t.Errorf("counts %d/%d", p.Successful, p.Failed)
	}
	f := p.Failures[0]
	if f.ResultType != "certificate-expired" || f.FailedSessions != 3 || f.AdditionalInformation != "https://x.example/why" || f.ReceivingMXHelo != "mx1.example.com" {
		t.Errorf("failure: %+v", f)
	}
}

func TestEmptyPoliciesIsAReportWithNoData(t *testing.T) {
	rep, err := Parse(strings.NewReader(`{"organization-name":"o","report-id":"i","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},"policies":[]}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Policies) != 0 {
		t.Errorf("policies: %d", len(rep.Policies))
	}
}

func TestRejections(t *testing.T) {
	const dr = `"organization-name":"o","report-id":"i","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"}`
	cases := []struct {
		name, in string
		code     parse.Code
	}{
		{"policies not an array", `{` + dr + `,"policies":{"policy":{}}}`, parse.MissingField},
		{"no policies", `{` + dr + `}`, parse.MissingField},
		{"policy element not an object", `{` + dr + `,"policies":[1]}`, parse.MissingField},
		{"negative count", `{` + dr + `,"policies":[{"policy":{},"summary":{"total-successful-session-count":-1}}]}`, parse.MissingField},
		{"no date-range", `{"organization-name":"o","report-id":"i","policies":[]}`, parse.MissingField},
		{"bad date", `{"organization-name":"o","report-id":"i","date-range":{"start-datetime":"yesterday","end-datetime":"2024-01-01T23:59:59Z"},"policies":[]}`, parse.MissingField},
		{"array", `[1,2]`, parse.NotAReport},
		{"other object", `{"feedback":{}}`, parse.NotAReport},
		{"empty", ``, parse.JSONSyntax},
		{"truncated", `{"organization-name":"o",`, parse.JSONSyntax},
		{"trailing garbage", `{} x`, parse.JSONSyntax},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.in), 0)
			if got := parse.CodeOf(err); got != c.code {
				t.Errorf("code %q (%v), want %q", got, err, c.code)
			}
		})
	}
}

func TestMalformedJSONNamesPosition(t *testing.T) {
	in := "{\n  \"organization-name\": \"o\",\n  \"report-id\" \"i\"\n}"
	_, err := Parse(strings.NewReader(in), 0)
	if parse.CodeOf(err) != parse.JSONSyntax {
		t.Fatalf("code %q: %v", parse.CodeOf(err), err)
	}
	if !strings.Contains(err.Error(), "line 3, column 15") {
		t.Errorf("error %q does not name line 3, column 15", err)
	}
}

func TestTooLarge(t *testing.T) {
	_, err := Parse(strings.NewReader(deviant), 100)
	if parse.CodeOf(err) != parse.TooLarge {
		t.Errorf("code %q: %v", parse.CodeOf(err), err)
	}
	if _, err := Parse(strings.NewReader(deviant), int64(len(deviant))); err != nil {
		t.Errorf("exactly maxBytes: %v", err)
	}
}

func TestKeyIgnoresCaseAndSpaceOfOrganization(t *testing.T) {
	a, err := Parse(strings.NewReader(deviant), 0)
	if err != nil {
		t.Fatal(err)
	}
	b := *a
	b.OrganizationName = "example org"
	b.Policies = nil
	if Key(a) != Key(&b) {
		t.Error("key differs for the same organization, report-id and range")
	}
	b.ReportID = "r2"
	if Key(a) == Key(&b) {
		t.Error("key equal for different report-ids")
	}
}

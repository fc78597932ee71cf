package gen

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"golang.org/x/net/publicsuffix"
)

// feedback is the least of RFC 7489 Appendix C a test needs.
type feedback struct {
	XMLName  xml.Name `xml:"feedback"`
	Version  string   `xml:"version"`
	Metadata struct {
		OrgName  string `xml:"org_name"`
		ReportID string `xml:"report_id"`
		Begin    int64  `xml:"date_range>begin"`
		End      int64  `xml:"date_range>end"`
	} `xml:"report_metadata"`
	Policy struct {
		Domain string `xml:"domain"`
		P      string `xml:"p"`
		SP     string `xml:"sp"`
	} `xml:"policy_published"`
	Records []struct {
		SourceIP    string   `xml:"row>source_ip"`
		Count       uint64   `xml:"row>count"`
		Disposition string   `xml:"row>policy_evaluated>disposition"`
		EvalDKIM    string   `xml:"row>policy_evaluated>dkim"`
		EvalSPF     string   `xml:"row>policy_evaluated>spf"`
		Reasons     []string `xml:"row>policy_evaluated>reason>type"`
		EnvelopeTo  *string  `xml:"identifiers>envelope_to"`
		EnvFrom     *string  `xml:"identifiers>envelope_from"`
		HeaderFrom  string   `xml:"identifiers>header_from"`
		DKIM        []struct {
			Domain   string  `xml:"domain"`
			Selector *string `xml:"selector"`
			Result   string  `xml:"result"`
		} `xml:"auth_results>dkim"`
		SPF []struct {
			Domain string  `xml:"domain"`
			Scope  *string `xml:"scope"`
			Result string  `xml:"result"`
		} `xml:"auth_results>spf"`
	} `xml:"record"`
}

// payload is one report attachment found in a file.
type payload struct {
	mediaType, filename string
	container           []byte // the zip or gzip bytes
	xml                 []byte
}

// extract finds the report in a generated file: walks a mail's MIME tree with
// go-message, or takes a bare file as it is.
func extract(t *testing.T, f File) (*message.Entity, []payload) {
	t.Helper()
	if !strings.HasSuffix(f.Name, ".eml") {
		return nil, []payload{{filename: f.Name, container: f.Data, xml: unpack(t, f.Name, f.Data)}}
	}
	e, err := message.Read(bytes.NewReader(f.Data))
	if err != nil {
		t.Fatalf("%s: go-message: %v", f.Name, err)
	}
	var out []payload
	err = e.Walk(func(path []int, part *message.Entity, err error) error {
		if err != nil {
			return err
		}
		mt, params, _ := part.Header.ContentType()
		if strings.HasPrefix(mt, "multipart/") {
			return nil
		}
		body, err := io.ReadAll(part.Body)
		if err != nil {
			return fmt.Errorf("part %v: %w", path, err)
		}
		if !bytes.HasPrefix(body, []byte("PK\x03\x04")) && !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
			return nil
		}
		_, dp, _ := part.Header.ContentDisposition()
		if dp["filename"] != params["name"] && params["name"] != "" {
			t.Errorf("%s: part %v: filename %q, name %q", f.Name, path, dp["filename"], params["name"])
		}
		out = append(out, payload{mediaType: mt, filename: dp["filename"], container: body, xml: unpack(t, f.Name, body)})
		return nil
	})
	if err != nil {
		t.Fatalf("%s: walk: %v", f.Name, err)
	}
	// Re-read for the caller: Walk consumed the bodies.
	e, _ = message.Read(bytes.NewReader(f.Data))
	return e, out
}

func unpack(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	if bytes.HasPrefix(data, []byte("PK\x03\x04")) {
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil || len(zr.File) != 1 {
			t.Fatalf("%s: zip: %v (%d members)", name, err, len(zr.File))
		}
		rc, err := zr.File[0].Open()
		if err != nil {
			t.Fatalf("%s: zip member: %v", name, err)
		}
		defer rc.Close()
		x, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("%s: zip member: %v", name, err)
		}
		return x
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: gzip: %v", name, err)
	}
	x, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: gzip: %v", name, err)
	}
	return x
}

func orgDomain(d string) string {
	o, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return o
}

// recompute derives alignment from a report's raw auth_results (RFC 7489
// §3.1, docs/standards.md §4.5), independently of the generator's intent.
func recompute(fb *feedback) map[string]DomainTruth {
	out := map[string]DomainTruth{}
	for _, r := range fb.Records {
		var dkimR, dkimS, spfR, spfS bool
		for _, d := range r.DKIM {
			if d.Result == "pass" {
				dkimR = dkimR || orgDomain(d.Domain) == orgDomain(r.HeaderFrom)
				dkimS = dkimS || d.Domain == r.HeaderFrom
			}
		}
		for _, s := range r.SPF {
			if s.Result == "pass" && (s.Scope == nil || *s.Scope == "mfrom") {
				spfR = spfR || orgDomain(s.Domain) == orgDomain(r.HeaderFrom)
				spfS = spfS || s.Domain == r.HeaderFrom
			}
		}
		dt := out[r.HeaderFrom]
		n := func(b bool) uint64 {
			if b {
				return r.Count
			}
			return 0
		}
		dt.Messages += r.Count
		dt.DMARCPassRelaxed += n(dkimR || spfR)
		dt.DKIMAlignedRelaxed += n(dkimR)
		dt.DKIMAlignedStrict += n(dkimS)
		dt.SPFAlignedRelaxed += n(spfR)
		dt.SPFAlignedStrict += n(spfS)
		out[r.HeaderFrom] = dt
	}
	return out
}

func verdict(b bool) string {
	if b {
		return "pass"
	}
	return "fail"
}

// TestEveryReportParsesAndMatchesItsTruth: every generated report parses with
// encoding/xml, has the records, messages and identity its File says, and its
// raw auth_results give exactly the alignment the generator intended.
func TestEveryReportParsesAndMatchesItsTruth(t *testing.T) {
	for _, opt := range []Options{{Seed: 1}, {Seed: 99, Days: 9, Scale: 2, Domain: "shop.example.co.uk"}} {
		files := mustGenerate(t, opt)
		for _, f := range files {
			_, pls := extract(t, f)
			if len(pls) != len(f.Reports) || len(pls) != 1 {
				t.Fatalf("%s: %d report payloads, %d truths", f.Name, len(pls), len(f.Reports))
			}
			want := f.Reports[0]
			var fb feedback
			if err := xml.Unmarshal(pls[0].xml, &fb); err != nil {
				t.Fatalf("%s: encoding/xml: %v", f.Name, err)
			}
			var msgs uint64
			for _, r := range fb.Records {
				msgs += r.Count
				if r.Disposition != "none" {
					t.Errorf("%s: disposition %q under p=none", f.Name, r.Disposition)
				}
			}
			if len(fb.Records) != want.Records || msgs != want.Messages || fb.Metadata.OrgName != want.Reporter ||
				fb.Metadata.ReportID != want.ReportID || fb.Policy.Domain != want.PolicyDomain ||
				fb.Metadata.Begin != want.Begin.Unix() || fb.Metadata.End != want.End.Unix() || fb.Policy.P != "none" {
				t.Errorf("%s: report says %d records %d messages org %q id %q domain %q %d-%d, truth %+v",
					f.Name, len(fb.Records), msgs, fb.Metadata.OrgName, fb.Metadata.ReportID, fb.Policy.Domain,
					fb.Metadata.Begin, fb.Metadata.End, want)
			}
			got := recompute(&fb)
			if len(got) != len(want.PerDomain) {
				t.Errorf("%s: header_from domains %v, truth %v", f.Name, got, want.PerDomain)
			}
			for d, w := range want.PerDomain {
				if got[d] != w {
					t.Errorf("%s: %s: recomputed %+v, intended %+v", f.Name, d, got[d], w)
				}
			}
			// policy_evaluated carries the relaxed aligned verdicts (adkim=aspf=r).
			for i, r := range fb.Records {
				one := fb
				one.Records = fb.Records[i : i+1]
				dt := recompute(&one)[r.HeaderFrom]
				if r.EvalDKIM != verdict(dt.DKIMAlignedRelaxed > 0) || r.EvalSPF != verdict(dt.SPFAlignedRelaxed > 0) {
					t.Errorf("%s: record %d: policy_evaluated dkim=%s spf=%s, auth_results say %+v", f.Name, i, r.EvalDKIM, r.EvalSPF, dt)
				}
			}
		}
	}
}

// TestMailsLookLikeTheReceivers pins the structure copied from real mails
// (mox testdata/dmarc-reports, corpus): containers, headers and XML quirks.
func TestMailsLookLikeTheReceivers(t *testing.T) {
	files := mustGenerate(t, Options{Seed: 1})
	checked := map[string]bool{}
	for _, f := range files {
		if !strings.HasSuffix(f.Name, ".eml") {
			continue
		}
		rt := f.Reports[0]
		e, pls := extract(t, f)
		if !bytes.Contains(f.Data, []byte("\r\n\r\n")) || bytes.Contains(bytes.ReplaceAll(f.Data, []byte("\r\n"), nil), []byte("\n")) {
			t.Errorf("%s: lines not all CRLF-terminated", f.Name)
		}
		h := mail.Header{Header: e.Header}
		subject, err := h.Subject()
		if err != nil || !strings.Contains(subject, rt.ReportID) || !strings.Contains(subject, "example.com") {
			t.Errorf("%s: subject %q (%v) lacks report id %s or domain", f.Name, subject, err, rt.ReportID)
		}
		if _, err := h.Date(); err != nil {
			t.Errorf("%s: Date: %v", f.Name, err)
		}
		base := fmt.Sprintf("!example.com!%d!%d", rt.Begin.Unix(), rt.End.Unix())
		if !strings.Contains(pls[0].filename, base) {
			t.Errorf("%s: attachment filename %q lacks %s", f.Name, pls[0].filename, base)
		}
		x := string(pls[0].xml)
		mt, _, _ := e.Header.ContentType()
		span := rt.End.Sub(rt.Begin)
		fail := func(what string) { t.Errorf("%s (%s): %s", f.Name, rt.Reporter, what) }
		switch rt.Reporter {
		case "google.com":
			if rt.Duplicate {
				if mt != "application/gzip" {
					fail("re-sent report is not a top-level application/gzip mail: " + mt)
				}
				break
			}
			if mt != "application/zip" || !strings.HasSuffix(pls[0].filename, ".zip") {
				fail("not a top-level application/zip mail: " + mt)
			}
			if span != 86399*time.Second || strings.Contains(x, "<envelope_from>") || strings.Contains(x, "<scope>") || strings.Contains(x, "<version>") {
				fail("want end=begin+86399, no envelope_from, no scope, no version")
			}
			if from, _ := h.AddressList("From"); len(from) != 1 || from[0].Address != "noreply-dmarc-support@google.com" {
				fail(fmt.Sprintf("From %v", from))
			}
		case "Outlook.com", "Enterprise Outlook":
			if mt != "multipart/mixed" || pls[0].mediaType != "application/gzip" || !bytes.Contains(f.Data, []byte("Content-Type: text/html")) {
				fail("want multipart/mixed with an HTML part and an application/gzip attachment")
			}
			if rt.Reporter == "Outlook.com" && !strings.HasPrefix(subject, "[Preview] ") {
				fail("subject lacks [Preview]: " + subject)
			}
			if span != 86400*time.Second || !strings.Contains(x, "<version>1.0</version>") || !strings.Contains(x, `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`) ||
				!strings.Contains(x, "<envelope_to>") || !strings.Contains(x, "<envelope_from>") || !strings.Contains(x, "<scope>mfrom</scope>") {
				fail("want end=begin+86400, version 1.0, xsd/xsi declarations, envelope_to, envelope_from, scope")
			}
		case "Yahoo":
			if pls[0].mediaType != "application/gzip" || strings.Contains(x, "<selector>") || strings.Contains(x, "<sp>") {
				fail("want a gzip attachment, no selector, no sp")
			}
			if !strings.Contains(x, fmt.Sprintf("<end>%d </end>\t\n", rt.End.Unix())) || !strings.HasSuffix(x, "</feedback>\t\n") || span != 86399*time.Second {
				fail("want trailing TABs and a space inside <end>")
			}
		case "Mail.Ru":
			if pls[0].mediaType != "application/gzip" || strings.Contains(x, "\n") || span != 86400*time.Second {
				fail("want gzip, single-line XML, end=begin+86400")
			}
			zr, err := gzip.NewReader(bytes.NewReader(pls[0].container))
			if err != nil || zr.Name != strings.TrimSuffix(pls[0].filename, ".gz") {
				fail(fmt.Sprintf("gzip header names %q, attachment %q (%v)", zr.Name, pls[0].filename, err))
			}
		case "AMAZON-SES":
			if pls[0].mediaType != "application/octet-stream" || !strings.Contains(x, "<version>0.1</version>") {
				fail("want application/octet-stream and version 0.1")
			}
			if _, p, err := mime.ParseMediaType("attachment; filename=" + pls[0].filename); err != nil || p["filename"] == "" {
				fail("unquoted filename does not parse")
			}
		default:
			fail("unknown reporter")
		}
		checked[rt.Reporter] = true
	}
	if len(checked) != 6 {
		t.Errorf("checked mails of %d reporters: %v", len(checked), checked)
	}
}

func TestDuplicateCarriesTheSameReport(t *testing.T) {
	files := mustGenerate(t, Options{Seed: 1, Days: 21})
	first := map[string][]byte{}
	n := 0
	for _, f := range files {
		_, pls := extract(t, f)
		k := f.Reports[0].Reporter + "\x00" + f.Reports[0].ReportID
		if f.Reports[0].Duplicate {
			n++
			if !bytes.Equal(first[k], pls[0].xml) {
				t.Errorf("%s: duplicate delivery differs from the first", f.Name)
			}
			continue
		}
		first[k] = pls[0].xml
	}
	if n < 2 {
		t.Errorf("%d duplicate deliveries in 21 days, want both containers", n)
	}
}

func TestPacificTimeFollowsDaylightSaving(t *testing.T) {
	for _, c := range []struct {
		utc  time.Time
		want string
	}{
		{time.Date(2025, 3, 9, 9, 59, 59, 0, time.UTC), "-0800"},
		{time.Date(2025, 3, 9, 10, 0, 0, 0, time.UTC), "-0700"},
		{time.Date(2024, 10, 13, 23, 59, 59, 0, time.UTC), "-0700"},
		{time.Date(2025, 11, 2, 9, 0, 0, 0, time.UTC), "-0800"},
	} {
		if got := pacific(c.utc).Format("-0700"); got != c.want {
			t.Errorf("pacific(%v) = %s, want %s", c.utc, got, c.want)
		}
	}
}

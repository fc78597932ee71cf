package hostile

import (
	"fmt"
	"io"
	"strings"
)

// The report window every generated report uses: 2025-11-01 UTC, a day
// inside valid.Window for years to come.
const (
	dayBegin = "1761955200"
	dayEnd   = "1762041599"
	// GoodDomain is the policy domain of the good reports (and of the
	// attacks, so that owned_domains does not stop them first).
	GoodDomain = "example.com"
)

// agg describes an aggregate report (RFC 7489 appendix C) with hook points
// where an attack puts its payload. Zero fields take the good values.
type agg struct {
	prolog    []seg // before <feedback>
	attr      []seg // inside the <feedback> start tag
	org       []seg // report_metadata/org_name
	reportID  string
	begin     string
	end       string
	metaExtra []seg // inside report_metadata, after date_range
	domain    []seg // policy_published/domain
	between   []seg // between policy_published and the first record
	records   []seg // the records; default one good record
}

// record is one good <record> with the count and the auth_results extra
// content given.
func record(count string, authExtra ...any) []seg {
	return segs(`<record><row><source_ip>192.0.2.1</source_ip><count>`+count+`</count>`+
		`<policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>`+
		`<identifiers><header_from>example.com</header_from></identifiers><auth_results>`,
		segs(authExtra...),
		`<dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>`+
			`<spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>`+"\n")
}

func (a agg) doc() []seg {
	or := func(s []seg, d string) []seg {
		if s == nil {
			return segs(d)
		}
		return s
	}
	ors := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	recs := a.records
	if recs == nil {
		recs = record("1")
	}
	return segs(`<?xml version="1.0" encoding="UTF-8"?>`+"\n", a.prolog, `<feedback`, a.attr, ">\n",
		`<report_metadata><org_name>`, or(a.org, "hostile.test"), `</org_name>`,
		`<email>noreply-dmarc@hostile.test</email><report_id>`+ors(a.reportID, "hostile")+`</report_id>`,
		`<date_range><begin>`+ors(a.begin, dayBegin)+`</begin><end>`+ors(a.end, dayEnd)+`</end></date_range>`,
		a.metaExtra, "</report_metadata>\n<policy_published><domain>", or(a.domain, GoodDomain),
		"</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>\n",
		a.between, recs, "</feedback>\n")
}

// GoodReport returns a small valid aggregate report for GoodDomain with
// the report id given and one record of one message: what must still be
// stored after an attack.
func GoodReport(reportID string) []byte {
	var b strings.Builder
	writeRaw(&b, agg{org: segs("good.test"), reportID: reportID}.doc())
	return []byte(b.String())
}

// tls describes an SMTP TLS report (RFC 8460 §4) with hook points.
type tls struct {
	org      []seg
	reportID string
	failures []seg // inside failure-details, default one
	pad      []seg // whitespace inside the policies array
}

const tlsFailure = `{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1",` +
	`"receiving-mx-hostname":"mx.example.com","failed-session-count":1}`

func (t tls) doc() []seg {
	org := t.org
	if org == nil {
		org = segs("hostile.test")
	}
	id := t.reportID
	if id == "" {
		id = "hostile-tls"
	}
	fails := t.failures
	if fails == nil {
		fails = segs(tlsFailure)
	}
	return segs(`{"organization-name":"`, org, `","date-range":{"start-datetime":"2025-11-01T00:00:00Z",`+
		`"end-datetime":"2025-11-01T23:59:59Z"},"contact-info":"tlsrpt@hostile.test","report-id":"`+id+`",`+
		`"policies":[`, t.pad, `{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce"],`+
		`"policy-domain":"example.com","mx-host":["mx.example.com"]},"summary":{"total-successful-session-count":1,`+
		`"total-failure-session-count":1},"failure-details":[`, fails, "]}]}\n")
}

// mailHeader is the head of a report mail from the attacker, ending in
// the blank line; extra header lines (CRLF-terminated) go before it.
func mailHeader(subject, contentType string, extra ...any) []seg {
	return segs("From: noreply-dmarc@hostile.test\r\nTo: dmarc@example.com\r\n"+
		"Subject: "+subject+"\r\nDate: Mon, 03 Nov 2025 00:00:00 +0000\r\n"+
		"Message-ID: <"+strings.ReplaceAll(subject, " ", ".")+"@hostile.test>\r\nMIME-Version: 1.0\r\n",
		segs(extra...), "Content-Type: "+contentType+"\r\n\r\n")
}

// writeMailWith writes a mail with one base64 attachment whose bytes body
// writes (the usual shape of aggregate report mails).
func writeMailWith(w io.Writer, subject, ctype, filename string, body func(io.Writer) error) error {
	head := mailHeader(subject, `multipart/mixed; boundary="=-hostile"`)
	if err := writeRaw(w, head); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "--=-hostile\r\nContent-Type: text/plain\r\n\r\nreport attached\r\n"+
		"--=-hostile\r\nContent-Type: %s; name=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n"+
		"Content-Disposition: attachment; filename=\"%s\"\r\n\r\n", ctype, filename, filename); err != nil {
		return err
	}
	if err := writeBase64(w, body); err != nil {
		return err
	}
	_, err := io.WriteString(w, "--=-hostile--\r\n")
	return err
}

// arf returns a failure report mail (RFC 6591: multipart/report with a
// message/feedback-report part) whose Reported-Domain and
// Authentication-Results carry the segments given.
func arf(id string, reportedDomain, authResults []seg) []seg {
	if reportedDomain == nil {
		reportedDomain = segs(GoodDomain)
	}
	if authResults == nil {
		authResults = segs("mx.hostile.test; dmarc=fail header.from=example.com")
	}
	return segs(mailHeader("FW: failure report "+id, `multipart/report; report-type=feedback-report; boundary="=-arf"`),
		"--=-arf\r\nContent-Type: text/plain\r\n\r\nThis is an authentication failure report.\r\n"+
			"--=-arf\r\nContent-Type: message/feedback-report\r\n\r\n"+
			"Feedback-Type: auth-failure\r\nUser-Agent: hostile/1.0\r\nVersion: 1\r\n"+
			"Original-Mail-From: <a@example.com>\r\nArrival-Date: Mon, 03 Nov 2025 00:00:00 +0000\r\n"+
			"Source-IP: 192.0.2.1\r\nReported-Domain: ", reportedDomain, "\r\nAuth-Failure: dmarc\r\n"+
			"Authentication-Results: ", authResults, "\r\n\r\n"+
			"--=-arf\r\nContent-Type: text/rfc822-headers\r\n\r\n"+
			"From: a@example.com\r\nTo: b@hostile.test\r\nSubject: hi\r\nMessage-ID: <"+id+"@example.com>\r\n\r\n"+
			"--=-arf--\r\n")
}

// GoodMail returns a report mail carrying GoodReport(reportID) as an XML
// attachment, for sources that take mail.
func GoodMail(reportID string) []byte {
	var b strings.Builder
	writeMailWith(&b, "Report Domain: example.com Submitter: good.test Report-ID: "+reportID, "text/xml",
		reportID+".xml", func(w io.Writer) error { _, err := w.Write(GoodReport(reportID)); return err })
	return []byte(strings.Replace(b.String(), "noreply-dmarc@hostile.test", "noreply-dmarc@good.test", 1))
}

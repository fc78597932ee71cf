package gen

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"time"
)

// This file writes reports the way each receiver does: the XML quirks of
// docs/standards.md §1.6, the containers and MIME structures of §2.1 and §2.2
// (RFC 7489 §7.2.1.1), copied from real mails (mox testdata/dmarc-reports, the
// corpus).

// xmlWriter writes indented XML with a receiver's indentation and line ends.
type xmlWriter struct {
	b      bytes.Buffer
	indent string
	nl     string
	depth  int
}

func (w *xmlWriter) pad() {
	for range w.depth {
		w.b.WriteString(w.indent)
	}
}

func (w *xmlWriter) open(name string) {
	w.pad()
	w.b.WriteString("<" + name + ">" + w.nl)
	w.depth++
}

func (w *xmlWriter) close(name string) {
	w.depth--
	w.pad()
	w.b.WriteString("</" + name + ">" + w.nl)
}

func (w *xmlWriter) leaf(name, value string) {
	w.pad()
	w.b.WriteString("<" + name + ">")
	xml.EscapeText(&w.b, []byte(value))
	w.b.WriteString("</" + name + ">" + w.nl)
}

// xmlStyle is what differs between receivers' aggregate XML.
type xmlStyle struct {
	decl, root   string
	indent, nl   string
	version      string // "" to omit
	email, extra string
	endSuffix    string // Yahoo writes "<end>1559606399 </end>"
	sp, fo, np   bool   // optional policy_published elements written
	envFrom      bool
	selector     bool
	scope        bool
	resultFirst  bool // Google: dkim domain, result, selector
}

func (rp *reporter) style() xmlStyle {
	switch rp.kind {
	case kindGoogle:
		return xmlStyle{decl: `<?xml version="1.0" encoding="UTF-8" ?>`, root: "<feedback>", indent: "  ", nl: "\r\n",
			email: "noreply-dmarc-support@google.com", extra: "https://support.google.com/a/answer/2466580",
			sp: true, np: true, selector: true, resultFirst: true}
	case kindOutlook, kindEnterprise:
		s := xmlStyle{decl: `<?xml version="1.0"?>`,
			root:   `<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`,
			indent: "  ", nl: "\n", version: "1.0", email: "dmarcreport@microsoft.com",
			sp: true, fo: true, envFrom: true, selector: true, scope: true}
		if rp.kind == kindEnterprise {
			s.indent, s.nl = "    ", "\r\n"
		}
		return s
	case kindYahoo:
		return xmlStyle{decl: `<?xml version="1.0"?>`, root: "<feedback>", indent: "  ", nl: "\t\n",
			email: "dmarchelp@yahooinc.com", endSuffix: " "}
	case kindMailRu:
		return xmlStyle{decl: `<?xml version='1.0' encoding='utf-8'?>`, root: "<feedback>",
			email: "dmarc_support@corp.mail.ru", extra: "http://help.mail.ru/mail-help",
			sp: true, selector: true, scope: true}
	default: // kindSES
		return xmlStyle{decl: `<?xml version="1.0"?>`, root: "<feedback>", indent: "\t", nl: "\n", version: "0.1",
			email: "postmaster@amazonses.com", sp: true, fo: true, envFrom: true, selector: true}
	}
}

// reportXML writes the aggregate report (RFC 7489 Appendix C) of rep.
func reportXML(rep *report) []byte {
	s := rep.rep.style()
	w := &xmlWriter{indent: s.indent, nl: s.nl}
	w.b.WriteString(s.decl + s.nl + s.root + s.nl)
	w.depth = 1
	if s.version != "" {
		w.leaf("version", s.version)
	}
	w.open("report_metadata")
	w.leaf("org_name", rep.rep.org)
	w.leaf("email", s.email)
	if s.extra != "" {
		w.leaf("extra_contact_info", s.extra)
	}
	w.leaf("report_id", rep.id)
	w.open("date_range")
	w.leaf("begin", fmt.Sprint(rep.begin.Unix()))
	w.leaf("end", fmt.Sprint(rep.end.Unix())+s.endSuffix)
	w.close("date_range")
	w.close("report_metadata")

	// The published record is "v=DMARC1; p=none": the other tags take their
	// defaults, which receivers write out (RFC 7489 §6.3).
	w.open("policy_published")
	w.leaf("domain", rep.rep.g.domain)
	w.leaf("adkim", "r")
	w.leaf("aspf", "r")
	w.leaf("p", "none")
	if s.sp {
		w.leaf("sp", "none")
	}
	w.leaf("pct", "100")
	if s.fo {
		w.leaf("fo", "0")
	}
	if s.np {
		w.leaf("np", "none")
	}
	w.close("policy_published")

	for _, rec := range rep.records {
		writeRecord(w, s, rec)
	}
	w.depth = 0
	w.b.WriteString("</feedback>" + s.nl)
	return w.b.Bytes()
}

func writeRecord(w *xmlWriter, s xmlStyle, rec record) {
	verdict := func(ok bool) string {
		if ok {
			return "pass"
		}
		return "fail"
	}
	w.open("record")
	w.open("row")
	w.leaf("source_ip", rec.ip.String())
	w.leaf("count", fmt.Sprint(rec.count))
	w.open("policy_evaluated")
	w.leaf("disposition", "none") // p=none (and no sp): nothing is quarantined
	w.leaf("dkim", verdict(rec.intent.dkimR))
	w.leaf("spf", verdict(rec.intent.spfR))
	for _, rs := range rec.reasons {
		w.open("reason")
		w.leaf("type", rs.typ)
		if rs.comment != "" {
			w.leaf("comment", rs.comment)
		}
		w.close("reason")
	}
	w.close("policy_evaluated")
	w.close("row")
	w.open("identifiers")
	if rec.envelopeTo != "" {
		w.leaf("envelope_to", rec.envelopeTo)
	}
	if s.envFrom {
		w.leaf("envelope_from", rec.mailFrom)
	}
	w.leaf("header_from", rec.headerFrom)
	w.close("identifiers")
	w.open("auth_results")
	for _, d := range rec.dkim {
		w.open("dkim")
		w.leaf("domain", d.domain)
		if s.resultFirst {
			w.leaf("result", d.result)
		}
		if s.selector {
			w.leaf("selector", d.selector)
		}
		if !s.resultFirst {
			w.leaf("result", d.result)
		}
		w.close("dkim")
	}
	for _, sp := range rec.spf {
		w.open("spf")
		w.leaf("domain", sp.domain)
		if s.scope {
			w.leaf("scope", "mfrom")
		}
		w.leaf("result", sp.result)
		w.close("spf")
	}
	w.close("auth_results")
	w.close("record")
}

// submitter is the receiver's domain in filenames (RFC 7489 §7.2.1.1).
func (rp *reporter) submitter() string {
	switch rp.kind {
	case kindGoogle:
		return "google.com"
	case kindOutlook:
		return "protection.outlook.com"
	case kindEnterprise:
		return "enterprise.protection.outlook.com"
	case kindYahoo:
		return "yahoo.com"
	case kindMailRu:
		return "mail.ru"
	default:
		return "amazonses.com"
	}
}

// baseName is receiver!policy-domain!begin!end without extension.
func (rep *report) baseName() string {
	return fmt.Sprintf("%s!%s!%d!%d", rep.rep.submitter(), rep.rep.g.domain, rep.begin.Unix(), rep.end.Unix())
}

func gzipXML(x []byte, name string, mtime time.Time, level int, os byte) ([]byte, error) {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		return nil, err
	}
	zw.Name = name
	zw.ModTime = mtime
	zw.OS = os
	if _, err := zw.Write(x); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// zipXML writes a zip with one deflated member whose sizes and CRC are in the
// local header (no data descriptor), as Google's zips have.
func zipXML(x []byte, name string, mtime time.Time) ([]byte, error) {
	var c bytes.Buffer
	fw, err := flate.NewWriter(&c, flate.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := fw.Write(x); err != nil {
		return nil, err
	}
	if err := fw.Close(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	// CreateRaw writes the MS-DOS date fields as given (APPNOTE 4.4.6).
	t := mtime.UTC()
	f, err := zw.CreateRaw(&zip.FileHeader{
		Name: name, Method: zip.Deflate, Modified: mtime, CreatorVersion: 31, ReaderVersion: 20,
		ModifiedDate: uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9),
		ModifiedTime: uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11),
		CRC32:        crc32.ChecksumIEEE(x), CompressedSize64: uint64(c.Len()), UncompressedSize64: uint64(len(x)),
	})
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(c.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// render writes one delivery of rep: a mail, or a bare file.
func (g *generator) render(rep *report, seq int) (File, error) {
	x := reportXML(rep)
	base := rep.baseName()
	rp := rep.rep
	r := g.r
	var (
		gz  []byte
		zp  []byte
		err error
	)
	switch {
	case rp.kind == kindGoogle && rep.dupContainer == "gzip-mail":
		gz, err = gzipXML(x, "", rep.sent, gzip.DefaultCompression, 3)
	case rp.kind == kindGoogle:
		zp, err = zipXML(x, base+".xml", rep.sent)
	case rp.kind == kindOutlook || rp.kind == kindEnterprise:
		gz, err = gzipXML(x, "", time.Time{}, gzip.BestSpeed, 0)
	case rp.kind == kindYahoo:
		gz, err = gzipXML(x, "", rep.sent.Add(-time.Second), gzip.DefaultCompression, 3)
	case rp.kind == kindMailRu:
		gz, err = gzipXML(x, base+".xml", rep.sent.Add(-2*time.Second), gzip.BestCompression, 255)
	default:
		gz, err = gzipXML(x, "", time.Time{}, gzip.DefaultCompression, 0)
	}
	if err != nil {
		return File{}, fmt.Errorf("gen: report %s: %w", base, err)
	}
	prefix := fmt.Sprintf("%04d-", seq)
	if rep.bare || rep.dupContainer == "bare-zip" {
		if zp != nil {
			return File{Name: prefix + base + ".zip", Data: zp}, nil
		}
		return File{Name: prefix + base + ".xml.gz", Data: gz}, nil
	}
	m := &mailWriter{}
	to := "dmarc-reports@" + g.domain
	mx := "mx1." + g.domain
	switch rp.kind {
	case kindGoogle:
		googleMail(m, r, rep, to, mx, base, gz, zp)
	case kindOutlook, kindEnterprise:
		outlookMail(m, r, rep, to, mx, base, gz)
	case kindYahoo:
		yahooMail(m, r, rep, to, mx, base, gz)
	case kindMailRu:
		mailruMail(m, r, rep, to, mx, base, gz)
	default:
		sesMail(m, r, rep, to, mx, base, gz)
	}
	return File{Name: prefix + base + ".eml", Data: m.b.Bytes()}, nil
}

// mailWriter builds a message with CRLF line ends (RFC 5322 §2.1).
type mailWriter struct{ b bytes.Buffer }

// h writes a header field; "\n" in value starts a folded continuation line.
func (m *mailWriter) h(name, value string) {
	m.b.WriteString(name + ": " + strings.ReplaceAll(value, "\n", "\r\n") + "\r\n")
}

// line writes text lines; "\n" becomes CRLF.
func (m *mailWriter) line(s string) {
	m.b.WriteString(strings.ReplaceAll(s, "\n", "\r\n") + "\r\n")
}

// base64 writes data base64-encoded in lines of width characters
// (RFC 2045 §6.8 allows at most 76; Outlook writes 78, Google 72).
func (m *mailWriter) base64(data []byte, width int) {
	s := base64.StdEncoding.EncodeToString(data)
	for len(s) > width {
		m.b.WriteString(s[:width] + "\r\n")
		s = s[width:]
	}
	m.b.WriteString(s + "\r\n")
}

const rfc5322Date = "Mon, 2 Jan 2006 15:04:05 -0700"

// pacific is t in US Pacific time (Google and Yahoo date their mails so),
// with the US daylight saving rules since 2007.
func pacific(t time.Time) time.Time {
	t = t.UTC()
	y := t.Year()
	// second Sunday of March, 10:00 UTC; first Sunday of November, 09:00 UTC
	mar := time.Date(y, 3, 1, 10, 0, 0, 0, time.UTC)
	mar = mar.AddDate(0, 0, (7-int(mar.Weekday()))%7+7)
	nov := time.Date(y, 11, 1, 9, 0, 0, 0, time.UTC)
	nov = nov.AddDate(0, 0, (7-int(nov.Weekday()))%7)
	if !t.Before(mar) && t.Before(nov) {
		return t.In(time.FixedZone("PDT", -7*3600))
	}
	return t.In(time.FixedZone("PST", -8*3600))
}

func hexID(r *rand.Rand, n int) string { return randString(r, "0123456789ABCDEF", n) }

// received is the trace field our MX adds.
func received(r *rand.Rand, helo, ip, mx, to string, at time.Time) string {
	return fmt.Sprintf("from %s (%s [%s])\n\tby %s (Postfix) with ESMTPS id %s\n\tfor <%s>; %s (UTC)",
		helo, helo, ip, mx, hexID(r, 10), to, at.UTC().Format(rfc5322Date))
}

func authResults(mx, dkimDomain, mailFrom, fromDomain string) string {
	return fmt.Sprintf("%s;\n\tdkim=pass (2048-bit key) header.d=%s header.i=@%s;\n\tspf=pass smtp.mailfrom=%s;\n\tdmarc=pass (p=REJECT) header.from=%s",
		mx, dkimDomain, dkimDomain, mailFrom, fromDomain)
}

// googleMail: the whole message is the application/zip attachment
// (mox google.eml, corpus report-with-zip.eml); a re-sent copy is the same
// message with application/gzip (corpus report-with-gz.eml).
func googleMail(m *mailWriter, r *rand.Rand, rep *report, to, mx, base string, gz, zp []byte) {
	ip := fmt.Sprintf("209.85.%d.%d", 208+r.IntN(16), 1+r.IntN(254))
	host := fmt.Sprintf("mail-%s%d-f%d.google.com", []string{"qv", "qt", "yb", "pl", "oi"}[r.IntN(5)], 1+r.IntN(2), 1+r.IntN(200))
	from := "noreply-dmarc-support@google.com"
	m.h("Return-Path", "<"+from+">")
	m.h("Received", received(r, host, ip, mx, to, rep.sent))
	m.h("Authentication-Results", authResults(mx, "google.com", from, "google.com"))
	m.h("MIME-Version", "1.0")
	m.h("Date", pacific(rep.end).Format(rfc5322Date))
	m.h("Message-ID", "<"+rep.id+"@google.com>")
	m.h("Subject", fmt.Sprintf("Report domain: %s Submitter: google.com Report-ID: %s", rep.rep.g.domain, rep.id))
	m.h("From", from)
	m.h("To", to)
	ct, name, data := "application/zip", base+".zip", zp
	if zp == nil {
		ct, name, data = "application/gzip", base+".xml.gz", gz
	}
	m.h("Content-Type", ct+"; \n\tname=\""+name+"\"")
	m.h("Content-Disposition", "attachment; \n\tfilename=\""+name+"\"")
	m.h("Content-Transfer-Encoding", "base64")
	m.line("")
	m.base64(data, 72)
}

// outlookMail: multipart/mixed holding multipart/related > multipart/alternative
// with an empty part and the HTML "preview", then the gzip attachment
// (mox outlook.eml, corpus mail-auth 103.eml).
func outlookMail(m *mailWriter, r *rand.Rand, rep *report, to, mx, base string, gz []byte) {
	const tag = "a4bcd9a515b44b9d8eceb05d7333675fpiotk5m200exchangecorpm_"
	submitter := rep.rep.submitter()
	n := 2000 + r.IntN(100)
	host := fmt.Sprintf("mail-bn7nam10on%d.outbound.protection.outlook.com", n)
	ip := fmt.Sprintf("40.107.%d.%d", 64+r.IntN(192), 1+r.IntN(254))
	from := "dmarcreport@microsoft.com"
	m.h("Return-Path", "<"+from+">")
	m.h("Received", received(r, host, ip, mx, to, rep.sent))
	m.h("Authentication-Results", authResults(mx, "notification.microsoft.com", from, "microsoft.com"))
	m.h("Message-ID", "<"+rep.id+"@microsoft.com>")
	m.h("MIME-Version", "1.0")
	m.h("From", `"DMARC Aggregate Report" <`+from+">")
	m.h("To", "<"+to+">")
	subject := fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: %s", rep.rep.g.domain, submitter, rep.id)
	if rep.rep.kind == kindOutlook {
		subject = "[Preview] " + subject
	}
	// One encoded-word longer than RFC 2047 §2 allows, as Microsoft sends it.
	m.h("Subject", "=?utf-8?B?"+base64.StdEncoding.EncodeToString([]byte(subject))+"?=")
	m.h("Content-Type", "multipart/mixed;\n\tboundary=\"_mpm_"+tag+"\"")
	m.h("Date", rep.sent.UTC().Format(rfc5322Date))
	m.h("X-MS-PublicTrafficType", "Email")
	m.h("X-MS-Exchange-SenderADCheck", "2")
	m.h("X-OriginatorOrg", "dmarcrep.onmicrosoft.com")
	m.line("")
	m.line("This is a multi-part message in MIME format.")
	m.line("")
	m.line("--_mpm_" + tag)
	m.h("Content-Type", "multipart/related;\n\tboundary=\"_rv_"+tag+"\"")
	m.line("")
	m.line("--_rv_" + tag)
	m.h("Content-Type", "multipart/alternative;\n\tboundary=\"_av_"+tag+"\"")
	m.line("")
	m.line("--_av_" + tag)
	m.line("")
	m.line("")
	m.line("--_av_" + tag)
	m.h("Content-Type", "text/html; charset=us-ascii")
	m.h("Content-Transfer-Encoding", "base64")
	m.line("")
	html := fmt.Sprintf(`<div style ="font-family:Segoe UI; font-size:14px;">This is a DMARC aggregate report from Microsoft Corporation. For Emails received between %s UTC to %s UTC.</ div><br /><br />You're receiving this email because you have included your email address in the 'rua' tag of your DMARC record in DNS for %s. Please remove your email address from the 'rua' tag if you don't want to receive this email.<br /><br /><div style ="font-family:Segoe UI; font-size:12px; color:#666666;">Please do not respond to this e-mail. This mailbox is not monitored and you will not receive a response. For any feedback/suggestions, kindly mail to dmarcreportfeedback@microsoft.com.<br /><br />Microsoft respects your privacy. Review our Online Services <a href ="https://privacy.microsoft.com/en-us/privacystatement">Privacy Statement</a>.<br />One Microsoft Way, Redmond, WA, USA 98052.</ div >`,
		rep.begin.Format(time.DateTime), rep.end.Format(time.DateTime), rep.rep.g.domain)
	m.base64([]byte(html), 78)
	m.line("")
	m.line("--_av_" + tag + "--")
	m.line("")
	m.line("--_rv_" + tag + "--")
	m.line("")
	m.line("--_mpm_" + tag)
	name := base + ".xml.gz"
	m.h("Content-Type", "application/gzip")
	m.h("Content-Transfer-Encoding", "base64")
	m.h("Content-ID", "<"+uuid(r)+">")
	m.h("Content-Description", name)
	m.h("Content-Disposition", `attachment; filename="`+name+`";`)
	m.line("")
	m.base64(gz, 78)
	m.line("")
	m.line("--_mpm_" + tag + "--")
}

// yahooMail: MIME::Lite multipart/mixed with a text part and the gzip
// attachment, base64 in 60-column lines, a TAB after the To address
// (mox yahoo.eml).
func yahooMail(m *mailWriter, r *rand.Rand, rep *report, to, mx, base string, gz []byte) {
	n := 300 + r.IntN(40)
	host := fmt.Sprintf("sonic%d-%d.consmr.mail.ne1.yahoo.com", n, 1+r.IntN(30))
	ip := fmt.Sprintf("66.163.%d.%d", 184+r.IntN(8), 1+r.IntN(254))
	from := "noreply@dmarc.yahoo.com"
	boundary := fmt.Sprintf("_----------=_%d%06d", rep.sent.Unix(), r.IntN(1000000))
	m.h("Return-Path", "<"+from+">")
	m.h("Received", received(r, host, ip, mx, to, rep.sent))
	m.h("Authentication-Results", authResults(mx, "yahoo.com", from, "yahoo.com"))
	m.h("Received", fmt.Sprintf("from sonic.gate.mail.ne1.yahoo.com by sonic%d.consmr.mail.ne1.yahoo.com with HTTP; %s", n, rep.sent.UTC().Format(rfc5322Date)))
	m.h("MIME-Version", "1.0")
	m.h("Content-Transfer-Encoding", "binary")
	m.h("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	m.h("X-Mailer", "MIME::Lite 3.028 (F2.82; A2.11; B3.13; Q3.13)")
	m.h("Date", pacific(rep.sent).Format(rfc5322Date))
	m.h("From", from)
	m.h("To", to+"\t")
	m.h("Subject", fmt.Sprintf("Report Domain: %s Submitter: yahoo.com Report-ID: <%s>", rep.rep.g.domain, rep.id))
	m.h("Message-Id", fmt.Sprintf("<%d.%d@dmarc.yahoo.com>", rep.sent.Unix(), r.IntN(100000)))
	m.line("")
	m.line("This is a multi-part message in MIME format.")
	m.line("")
	text := "This is an aggregate report from Yahoo Inc."
	m.line("--" + boundary)
	m.h("Content-Disposition", "inline")
	m.h("Content-Length", fmt.Sprint(len(text)))
	m.h("Content-Transfer-Encoding", "binary")
	m.h("Content-Type", "text/plain")
	m.line("")
	m.line(text)
	name := base + ".xml.gz"
	m.line("--" + boundary)
	m.h("Content-Disposition", `attachment; filename="`+name+`"`)
	m.h("Content-Transfer-Encoding", "base64")
	m.h("Content-Type", `application/gzip; name="`+name+`"`)
	m.line("")
	m.base64(gz, 60)
	m.line("")
	m.line("--" + boundary + "--")
	m.line("")
}

// mailruMail: Python email package multipart/mixed, base64 text part, gzip
// attachment whose gzip header names the XML file (corpus mailru.eml).
func mailruMail(m *mailWriter, r *rand.Rand, rep *report, to, mx, base string, gz []byte) {
	boundary := fmt.Sprintf("===============%019d==", r.Uint64()%1e19)
	from := "dmarc_support@corp.mail.ru"
	host := fmt.Sprintf("f%d.i.mail.ru", 100+r.IntN(400))
	ip := fmt.Sprintf("94.100.%d.%d", 176+r.IntN(8), 1+r.IntN(254))
	m.h("Return-Path", "<"+from+">")
	m.h("Received", received(r, host, ip, mx, to, rep.sent))
	m.h("Authentication-Results", authResults(mx, "corp.mail.ru", from, "corp.mail.ru"))
	m.h("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	m.h("MIME-Version", "1.0")
	m.h("Subject", fmt.Sprintf("Report Domain: %s; Submitter: Mail.Ru; Report-ID: %s", rep.rep.g.domain, rep.id))
	m.h("From", from)
	m.h("To", to)
	m.h("Message-ID", fmt.Sprintf("<dmarc-%d@corp.mail.ru>", rep.sent.Unix()))
	m.h("Date", rep.sent.In(time.FixedZone("MSK", 3*3600)).Format(rfc5322Date))
	m.h("Auto-Submitted", "auto-generated")
	m.line("")
	m.line("--" + boundary)
	m.h("MIME-Version", "1.0")
	m.h("Content-Type", `text/plain; charset="utf-8"`)
	m.h("Content-Transfer-Encoding", "base64")
	m.line("")
	m.base64([]byte("This is an aggregate report from Mail.Ru."), 76)
	m.line("")
	m.line("--" + boundary)
	m.h("Content-Type", "application/gzip")
	m.h("MIME-Version", "1.0")
	m.h("Content-Transfer-Encoding", "base64")
	m.h("Content-Disposition", `attachment; filename="`+base+`.xml.gz"`)
	m.line("")
	m.base64(gz, 76)
	m.line("")
	m.line("--" + boundary + "--")
}

// sesMail: JavaMail multipart/mixed with an application/octet-stream
// attachment and unquoted name/filename parameters (mail-auth 104.eml).
func sesMail(m *mailWriter, r *rand.Rand, rep *report, to, mx, base string, gz []byte) {
	ip := fmt.Sprintf("54.240.%d.%d", r.IntN(16), 1+r.IntN(254))
	host := "a" + strings.ReplaceAll(strings.TrimPrefix(ip, "54.240."), ".", "-") + ".smtp-out.amazonses.com"
	boundary := fmt.Sprintf("----=_Part_%d_%d.%d", r.IntN(100000), r.IntN(1000000000), rep.sent.UnixMilli())
	from := "postmaster@amazonses.com"
	m.h("Received", received(r, host, ip, mx, to, rep.sent))
	m.h("Authentication-Results", authResults(mx, "amazonses.com", from, "amazonses.com"))
	m.h("From", from)
	m.h("To", to)
	m.h("Message-ID", fmt.Sprintf("<%016x-%s-000000@email.amazonses.com>", uint64(rep.sent.UnixMilli())<<8|uint64(r.IntN(256)), uuid(r)))
	m.h("Subject", fmt.Sprintf("Dmarc Aggregate Report Domain: {%s}  Submitter: {Amazon SES}\n  Date: {%s}  Report-ID: {%s}",
		rep.rep.g.domain, rep.begin.Format(time.DateOnly), rep.id))
	m.h("MIME-Version", "1.0")
	m.h("Content-Type", "multipart/mixed; \n\tboundary=\""+boundary+"\"")
	m.h("Date", rep.sent.UTC().Format(rfc5322Date))
	m.h("X-SES-Outgoing", rep.sent.UTC().Format("2006.01.02")+"-"+ip)
	m.line("")
	m.line("--" + boundary)
	m.h("Content-Type", "text/plain; charset=us-ascii")
	m.h("Content-Transfer-Encoding", "7bit")
	m.line("")
	m.line("This MIME email was sent through Amazon SES.")
	m.line("--" + boundary)
	name := base + ".xml.gz"
	m.h("Content-Type", "application/octet-stream; \n\tname="+name)
	m.h("Content-Transfer-Encoding", "base64")
	m.h("Content-Disposition", "attachment; \n\tfilename="+name)
	m.line("")
	m.base64(gz, 76)
	m.line("--" + boundary + "--")
}

package failure

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/extract"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// maxDepth bounds multipart nesting; deeper parts are not looked at.
const maxDepth = 8

// originalTypes are the media types of the part carrying the original
// message: RFC 5965 §2 d and RFC 6591 §3.1 name message/rfc822 and
// text/rfc822-headers, RFC 6532 §3.7 and §3.5 their internationalised forms;
// the others are misspellings seen in the wild (docs/standards.md §3.8).
var originalTypes = map[string]bool{
	"message/rfc822":          true,
	"text/rfc822-headers":     true,
	"message/global":          true,
	"message/global-headers":  true,
	"text/rfc822":             true,
	"text-rfc-822":            true,
	"text/rfc-822":            true,
	"text/rfc-822-headers":    true,
	"message/rfc-822":         true,
	"message/rfc822-headers":  true,
	"message/rfc-822-headers": true,
	"text/rfc822-header":      true,
	"message/rfc822-header":   true,
	"text/global-headers":     true,
}

// Parse reads one failure report email from r.
//
// The report is the first message/feedback-report part found under any
// multipart type (multipart/report per RFC 5965 §2, multipart/mixed from
// Netease), transfer-decoded (base64 occurs though RFC 5965 §7.1 requires
// 7bit). The original is the first part of a type in the list above. A
// message without a feedback part is read as a plain-text DMARC failure
// notice (ARF false) when its subject or text speaks of a DMARC failure or
// forensic report and it has no parts but text and message ones.
//
// Errors are *parse.Error with code parse.TooLarge (more than
// Options.MaxBytes), parse.MIMESyntax (the message or a part cannot be
// read) or parse.NotAReport (neither of the above forms).
func Parse(r io.Reader, opt Options) (*Report, error) {
	max := opt.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, parse.Wrap(parse.InputUnreadable, err, "failure report: reading")
	}
	if int64(len(data)) > max {
		return nil, parse.Errorf(parse.TooLarge, "failure report: message over %d bytes", max)
	}
	data = skipMboxLine(data)

	lim := extract.DefaultLimits()
	e, err := message.Read(extract.MessageGuard(bytes.NewReader(data), lim, "failure report"))
	if parse.CodeOf(err) != "" {
		return nil, err
	}
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, parse.Wrap(parse.MIMESyntax, err, "failure report: message header")
	}
	w := &walker{max: max, lim: lim}
	if err := w.walk(e, 0); err != nil {
		return nil, err
	}

	top := newFieldMap(headerFields(e.Header))
	rep := &Report{Incidents: 1}
	rep.ReportSubject = decodeText(top.get("subject"))
	rep.ReportDate = parseDate(top.get("date"))
	if from := addrSpecs(top.get("from")); len(from) > 0 {
		rep.ReporterDomain = domainOf(from[0])
	}

	if w.feedback != nil {
		rep.ARF = true
		fields, _ := readFields(w.feedback, false)
		m := newFieldMap(fields)
		if err := checkReportedDomains(m["reported-domain"]); err != nil {
			return nil, err
		}
		rep.setFields(m)
	} else {
		if !w.isNotice(rep.ReportSubject) {
			return nil, parse.Errorf(parse.NotAReport, "failure report: no message/feedback-report part and no DMARC failure notice text")
		}
		rep.Incomplete = true
		rep.setNoticeFields(w.text)
		if w.original == nil {
			w.original = noticeHeaders(w.text)
		}
	}
	if w.original != nil {
		rep.Original = readOriginal(w.original, opt.KeepBody)
	}
	return rep, nil
}

// skipMboxLine drops a leading mbox "From " separator line, which some
// saved reports (LinkedIn's sample) begin with.
func skipMboxLine(data []byte) []byte {
	if !bytes.HasPrefix(data, []byte("From ")) {
		return data
	}
	line, rest := cutLine(data)
	if bytes.Contains(line, []byte(":")) && !bytes.Contains(line[:bytes.IndexByte(line, ':')], []byte(" ")) {
		return data
	}
	return rest
}

// headerFields returns the fields of a go-message header in order.
func headerFields(h message.Header) []Header {
	var out []Header
	fs := h.Fields()
	for fs.Next() {
		out = append(out, Header{Name: fs.Key(), Value: strings.TrimSpace(fs.Value())})
	}
	return out
}

// walker collects the parts Parse needs from a MIME tree.
type walker struct {
	max      int64
	lim      extract.Limits // header limits of parts, MaxParts
	parts    int            // parts read
	feedback []byte         // body of the first message/feedback-report part
	original []byte         // body of the first original-message part
	text     []byte         // text/plain parts, concatenated, for a non-ARF notice
	other    int            // parts of other types (attachments)
}

func (w *walker) walk(e *message.Entity, depth int) error {
	mt := mediaType(e.Header)
	if strings.HasPrefix(mt, "multipart/") {
		if depth >= maxDepth {
			return nil
		}
		_, params, _ := e.Header.ContentType()
		boundary := params["boundary"]
		if boundary == "" {
			return nil
		}
		// go-message's multipart reader bounds no part header: the guard does.
		mr := textproto.NewMultipartReader(extract.HeaderGuard(e.Body, boundary, w.lim, "failure report"), boundary)
		for i := 1; ; i++ {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if parse.CodeOf(err) != "" {
				return err
			}
			if err != nil {
				return parse.Wrap(parse.MIMESyntax, err, "failure report: part %d of %s at depth %d", i, mt, depth)
			}
			if w.parts++; w.parts > w.lim.MaxParts {
				return parse.Errorf(parse.TooLarge, "failure report: more than %d MIME parts", w.lim.MaxParts)
			}
			pe, err := message.New(message.Header{Header: p.Header}, p)
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return parse.Wrap(parse.MIMESyntax, err, "failure report: part %d of %s at depth %d", i, mt, depth)
			}
			if err := w.walk(pe, depth+1); err != nil {
				return err
			}
		}
	}
	switch {
	case mt == "message/feedback-report" && w.feedback == nil:
		return w.readMax(e, &w.feedback, mt, min(w.max, MaxFeedbackBytes))
	case originalTypes[mt] && w.original == nil:
		return w.read(e, &w.original, mt)
	case mt == "text/plain" || mt == "":
		var b []byte
		if err := w.read(e, &b, mt); err != nil {
			return err
		}
		if int64(len(w.text)+len(b)) <= w.max {
			w.text = append(append(w.text, b...), '\n')
		}
	case strings.HasPrefix(mt, "text/") || strings.HasPrefix(mt, "message/"):
		// a second feedback or original part, text/html: not used
	default:
		w.other++
	}
	return nil
}

// read reads the decoded body of e into *dst.
func (w *walker) read(e *message.Entity, dst *[]byte, mt string) error {
	return w.readMax(e, dst, mt, w.max)
}

// MaxFeedbackBytes bounds the message/feedback-report part: a few dozen
// short fields (RFC 5965 §3), well under 64 KiB in every real report. A
// larger one is too_large, and reading it stops there.
const MaxFeedbackBytes = 1 << 20

// readMax reads the decoded body of e, at most max bytes, into *dst.
func (w *walker) readMax(e *message.Entity, dst *[]byte, mt string, max int64) error {
	b, err := io.ReadAll(io.LimitReader(e.Body, max+1))
	if err != nil {
		return parse.Wrap(parse.MIMESyntax, err, "failure report: reading %s part", mt)
	}
	if int64(len(b)) > max {
		return parse.Errorf(parse.TooLarge, "failure report: %s part over %d bytes decoded", mt, max)
	}
	if b == nil {
		b = []byte{}
	}
	*dst = b
	return nil
}

// mediaType returns the lower-cased media type of a part. When the
// Content-Type does not parse (misspellings such as text-rfc-822), it is the
// value up to the first semicolon; text/plain when absent (RFC 2045 §5.2).
func mediaType(h message.Header) string {
	if mt, _, err := h.ContentType(); err == nil && mt != "" {
		return strings.ToLower(mt)
	}
	v := h.Get("Content-Type")
	if strings.TrimSpace(v) == "" {
		return "text/plain"
	}
	v, _, _ = strings.Cut(v, ";")
	return strings.ToLower(strings.TrimSpace(v))
}

// isNotice reports whether a message without a feedback part is plainly a
// DMARC failure notice: it speaks of DMARC and of a failure or forensic
// report, not of an aggregate report, and carries no attachments.
func (w *walker) isNotice(subject string) bool {
	if w.other > 0 {
		return false
	}
	hay := strings.ToLower(subject + "\n" + string(w.text))
	return strings.Contains(hay, "dmarc") &&
		(strings.Contains(hay, "fail") || strings.Contains(hay, "forensic")) &&
		!strings.Contains(hay, "aggregate report")
}

// setFields fills rep from the fields of a message/feedback-report part
// (RFC 5965 §3, RFC 6591 §3.2, RFC 7489 §7.3.1, RFC 9991 §4).
func (rep *Report) setFields(m fieldMap) {
	rep.FeedbackType = strings.ToLower(stripComments(m.get("feedback-type")))
	rep.UserAgent = m.get("user-agent")
	rep.Version = m.get("version")
	rep.Incomplete = rep.FeedbackType == "" || rep.UserAgent == "" || rep.Version == "" || len(m["auth-failure"]) == 0

	rep.OriginalMailFrom = path(m.get("original-mail-from"))
	for _, v := range m["original-rcpt-to"] {
		if a := path(v); a != "" {
			rep.OriginalRcptTo = append(rep.OriginalRcptTo, a)
		}
	}
	rep.OriginalEnvelopeID = m.get("original-envelope-id")

	// RFC 5965 §3.2: Received-Date is the historic name of Arrival-Date. Both
	// present makes the report malformed; Arrival-Date is used then.
	rep.ArrivalDateRaw = m.get("arrival-date")
	if rep.ArrivalDateRaw == "" {
		rep.ArrivalDateRaw = m.get("received-date")
	}
	rep.ArrivalDate = parseDate(rep.ArrivalDateRaw)

	if mta := m.get("reporting-mta"); mta != "" {
		// mta-name-type ";" mta-name (RFC 5965 §3.2, RFC 3464 §2.2.2)
		if _, name, ok := strings.Cut(mta, ";"); ok {
			mta = name
		}
		rep.ReportingMTA = normDomain(stripComments(mta))
	}
	rep.SourceIP = sourceIP(m.get("source-ip"))
	rep.SourcePort = m.get("source-port")
	if n, err := strconv.ParseUint(stripComments(m.get("incidents")), 10, 32); err == nil && n > 0 {
		rep.Incidents = n
	}

	rep.AuthenticationResults = m["authentication-results"]
	for _, d := range m["reported-domain"] {
		if d = normDomain(d); d != "" {
			rep.ReportedDomain = append(rep.ReportedDomain, d)
		}
	}
	rep.ReportedURI = m["reported-uri"]
	rep.AuthFailure = tokens(m["auth-failure"])
	rep.DeliveryResult = strings.ToLower(stripComments(m.get("delivery-result")))
	rep.DKIMDomain = normDomainList(stripComments(m.get("dkim-domain")))
	rep.DKIMIdentity = m.get("dkim-identity")
	rep.DKIMSelector = m.get("dkim-selector")
	rep.SPFDNS = m["spf-dns"]
	rep.IdentityAlignment = tokens(m["identity-alignment"])
}

// sourceIP returns the first token of a Source-IP value, canonical when it is
// an IP address: OpenDMARC appends a comment with the host name
// (docs/standards.md §3.8).
func sourceIP(v string) string {
	f := strings.Fields(v)
	if len(f) == 0 {
		return ""
	}
	tok := strings.TrimSuffix(strings.TrimPrefix(f[0], "["), "]")
	tok = strings.TrimPrefix(strings.TrimPrefix(tok, "IPv6:"), "ipv6:")
	if a, err := netip.ParseAddr(tok); err == nil {
		return a.String()
	}
	return f[0]
}

// setNoticeFields takes what a plain-text notice states in "Label: value"
// lines, as Exim's "Sender IP Address:", "Sender Domain:" and
// "Received date:".
func (rep *Report) setNoticeFields(text []byte) {
	for len(text) > 0 {
		var line []byte
		line, text = cutLine(text)
		label, value, ok := strings.Cut(strings.TrimSpace(string(line)), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(label)) {
		case "sender ip address", "source ip", "source-ip", "ip address":
			if rep.SourceIP == "" {
				rep.SourceIP = sourceIP(value)
			}
		case "sender domain", "reported domain", "reported-domain":
			if d := normDomain(value); d != "" && len(rep.ReportedDomain) == 0 {
				rep.ReportedDomain = []string{d}
			}
		case "received date", "arrival date", "arrival-date":
			if rep.ArrivalDateRaw == "" {
				rep.ArrivalDateRaw = value
				rep.ArrivalDate = parseDate(value)
			}
		}
	}
}

// noticeHeaders finds the copy of the original header block in the text of
// a notice: the first paragraph that parses as at least two header fields,
// one of them From or Received. It returns nil when there is none.
func noticeHeaders(text []byte) []byte {
	atStart := true
	for b := text; len(b) > 0; {
		line, next := cutLine(b)
		blank := len(bytes.TrimSpace(line)) == 0
		if atStart && !blank {
			if fields, _ := readFields(b, true); len(fields) >= 2 {
				m := newFieldMap(fields)
				if _, ok := m["from"]; ok {
					return b
				}
				if _, ok := m["received"]; ok {
					return b
				}
			}
		}
		atStart = blank
		b = next
	}
	return nil
}

// readOriginal reads the header block of the original message, and notes
// whether a body follows it.
func readOriginal(b []byte, keepBody bool) Original {
	fields, rest := readFields(bytes.TrimLeft(b, "\r\n"), true)
	o := Original{Headers: fields, HeaderHash: headerHash(fields)}
	m := newFieldMap(fields)
	if from := m.get("from"); from != "" {
		o.From = decodeText(from)
		if l := addrSpecs(from); len(l) > 0 {
			o.From = l[0]
			o.FromDomain = domainOf(l[0])
		}
	}
	for _, v := range m["to"] {
		o.To = append(o.To, addrSpecs(v)...)
	}
	o.Subject = decodeText(m.get("subject"))
	o.MessageID = m.get("message-id")
	o.Date = m.get("date")
	if rp, ok := m["return-path"]; ok {
		o.ReturnPath = path(rp[0])
	}
	o.HasBody = len(bytes.TrimSpace(rest)) > 0
	if keepBody && o.HasBody {
		o.Body = rest
	}
	return o
}

// checkReportedDomains returns an InvalidValue error when a Reported-Domain
// (RFC 6591 §3.2: the domain the report is about, used for ownership and
// counted per domain) is not a DNS name (valid.Domain). The other domains of
// a report are informational: a bad one is dropped instead (normDomain).
func checkReportedDomains(values []string) error {
	for _, v := range values {
		if strings.TrimSpace(v) == "" {
			continue
		}
		d := align.Normalize(v)
		if err := valid.Domain(d); err != nil {
			return parse.Wrap(parse.InvalidValue, err, "failure report: Reported-Domain")
		}
	}
	return nil
}

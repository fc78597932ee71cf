package extract

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/dmarcd/dmarcd/parse"
)

// email walks the message in m. A failure report (RFC 6591 §2: a
// message/feedback-report part; or an Exim-style plain-text DMARC failure
// notice) is one Failure payload, the whole message; otherwise every MIME
// part is walked and its leaves sniffed (RFC 7489 §7.2.1.1: "No specific MIME
// message structure is required").
func (w *walker) email(m []byte, n node) error {
	if !w.enter(n, "email") {
		return nil
	}
	if !n.top && !w.open(n, "embedded message") {
		return nil
	}
	n.depth++
	hdr, body, notes, err := splitMessage(m, w.lim)
	if err != nil {
		w.fail(parse.Wrap(parse.TooLarge, err, "%s", n.at("email header")))
		return nil
	}
	w.repaired(prefixed(n, notes))
	n.mail = mailInfo(hdr)
	if w.isFailure(hdr, body, w.lim.MaxDepth-n.depth) {
		return w.deliver(Failure, bytes.NewReader(m), n)
	}

	prior := w.notReport
	w.notReport = nil
	before := w.found
	var parts []string
	err = w.entity(hdr, bytes.NewReader(body), n, "", &parts)
	inner := w.notReport
	w.notReport = prior
	if err != nil || w.found > before {
		return err
	}
	list := "none"
	if len(parts) > 0 {
		list = strings.Join(uniq(parts), ", ")
	}
	msg := fmt.Sprintf("email has no report attachment (parts: %s)", list)
	if inner != nil {
		msg += ": " + inner.Error()
	}
	w.skip(parse.Errorf(parse.NotAReport, "%s", n.at(msg)))
	return nil
}

// entity walks one MIME entity: a multipart is walked part by part (RFC 2046
// §5.1), an embedded message/rfc822 is walked as an email (forwards,
// docs/standards.md §6.1 item 3), other leaves are transfer-decoded and
// sniffed, whatever their declared type (§6.1 item 5), except HTML and
// report metadata parts, which never carry a report (§6.1 item 4).
func (w *walker) entity(hdr textproto.Header, body io.Reader, n node, num string, parts *[]string) error {
	mt, params := mediaType(hdr)
	cte := hdr.Get("Content-Transfer-Encoding")
	seg := "body"
	if num != "" {
		seg = "part " + num
	}
	filename := partFilename(hdr, params)
	if filename != "" {
		seg += " " + strconv.Quote(filename)
	}

	switch {
	case strings.HasPrefix(mt, "multipart/"):
		return w.multipart(body, params["boundary"], n, num, parts)
	case mt == "message/rfc822" || mt == "message/global":
		*parts = append(*parts, mt)
		c := n.child(seg)
		c.filename = filename
		data, err := readAll(newMessageGuard(w.counted(&mimeReader{transferDecode(body, cte)}, c), w.lim, c.at("message")), w.lim.MaxMessageBytes, c, "message")
		if err != nil {
			w.fail(err)
			return nil
		}
		return w.email(data, c)
	case mt == "text/html", mt == "text/rfc822-headers", mt == "message/delivery-status",
		mt == "message/disposition-notification", mt == "message/feedback-report":
		*parts = append(*parts, mt)
		return nil
	}
	*parts = append(*parts, mt)
	c := n.child(seg)
	c.filename = filename
	c.declared = mt
	c.textual = strings.HasPrefix(mt, "text/")
	return w.sniff(bufio.NewReaderSize(&mimeReader{transferDecode(body, cte)}, sniffLen), c)
}

// multipart walks the parts of a multipart body. A missing closing boundary
// is tolerated; a body without any boundary line is MIMESyntax.
func (w *walker) multipart(body io.Reader, boundary string, n node, num string, parts *[]string) error {
	if !w.enter(n, "multipart") {
		return nil
	}
	n.depth++
	if boundary == "" {
		w.fail(parse.Errorf(parse.MIMESyntax, "%s", n.at("multipart without boundary parameter")))
		return nil
	}
	mr, guard, fix := w.multipartReader(body, boundary, n)
	for i := 1; ; i++ {
		p, err := w.nextPart(mr, guard, n)
		if err == io.EOF || w.over != nil {
			return nil
		}
		if err != nil {
			w.multipartError(err, guard, n, i)
			return nil
		}
		pn := strconv.Itoa(i)
		if num != "" {
			pn = num + "." + pn
		}
		for _, note := range fix.take(i) {
			// The repairer numbers parts within this multipart.
			w.repaired([]string{n.at("part " + pn + strings.TrimPrefix(note, "part "+strconv.Itoa(i)))})
		}
		if err := w.entity(p.Header, p, n, pn, parts); err != nil {
			return err
		}
	}
}

// multipartError records why the walk of a multipart stopped before part i:
// a header limit, or MIME syntax go-message refuses (the parts before it
// were walked). A missing close delimiter is tolerated.
func (w *walker) multipartError(err error, guard *headerGuard, n node, i int) {
	switch {
	case guard.err != nil:
		w.fail(guard.err)
	case i == 1:
		w.fail(parse.Wrap(parse.MIMESyntax, err, "%s", n.at("multipart")))
	case strings.HasSuffix(err.Error(), io.EOF.Error()):
	default:
		w.fail(parse.Wrap(parse.MIMESyntax, err, "%s", n.at(fmt.Sprintf("multipart after part %d", i-1))))
	}
}

// multipartReader returns a MIME reader of body whose part headers are
// bounded by the header limits (HeaderGuard) and then repaired (partRepair).
func (w *walker) multipartReader(body io.Reader, boundary string, n node) (*textproto.MultipartReader, *headerGuard, *partRepair) {
	where := n.where
	if where == "" {
		where = "multipart"
	}
	g := newHeaderGuard(body, boundary, w.lim, where)
	fix := newPartRepair(g, boundary)
	return textproto.NewMultipartReader(fix, boundary), g, fix
}

// nextPart reads the next part of mr, counted against MaxParts.
func (w *walker) nextPart(mr *textproto.MultipartReader, g *headerGuard, n node) (*textproto.Part, error) {
	p, err := mr.NextPart()
	if err != nil {
		return nil, err
	}
	w.parts++
	if w.parts > w.lim.MaxParts {
		w.stop(parse.Errorf(parse.TooLarge, "%s", n.at(fmt.Sprintf("more than %d MIME parts in one input", w.lim.MaxParts))))
		return nil, w.over
	}
	return p, nil
}

// splitMessage splits m into its header and body (RFC 5322 §2.1). It is
// lenient: an mbox "From " line is skipped, header lines are repaired by the
// rules of headerFixer (repair.go) and notes returns what was repaired, and
// a message without a blank line is all header.
//
// It stops with an error at the header limits of lim (MaxHeaderFields,
// MaxHeaderBytes, MaxHeaderLineBytes), before any field is parsed.
func splitMessage(m []byte, lim Limits) (h textproto.Header, body []byte, notes []string, err error) {
	if bytes.HasPrefix(m, []byte("From ")) {
		if i := bytes.IndexByte(m, '\n'); i >= 0 {
			m = m[i+1:]
		} else {
			m = nil
		}
	}
	var hb bytes.Buffer
	var fix headerFixer
	fields, read := 0, int64(0)
	for len(m) > 0 {
		line, rest, _ := bytes.Cut(m, []byte("\n"))
		m = rest
		read += int64(len(line)) + 1
		switch {
		case int64(len(line)) > lim.MaxHeaderLineBytes:
			return textproto.Header{}, nil, nil, fmt.Errorf("a line over %s", size(lim.MaxHeaderLineBytes))
		case read > lim.MaxHeaderBytes:
			return textproto.Header{}, nil, nil, fmt.Errorf("more than %s", size(lim.MaxHeaderBytes))
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			body = rest
			break
		}
		if line[0] != ' ' && line[0] != '\t' {
			if fields++; fields > lim.MaxHeaderFields {
				return textproto.Header{}, nil, nil, fmt.Errorf("more than %d fields", lim.MaxHeaderFields)
			}
		}
		if out := fix.line(line, "email "); out != nil {
			hb.Write(out)
			hb.WriteString("\r\n")
		}
	}
	hb.WriteString("\r\n")
	h, _ = textproto.ReadHeader(bufio.NewReader(&hb))
	return h, body, fix.done(), nil
}

// prefixed returns notes, each prefixed with n's place.
func prefixed(n node, notes []string) []string {
	for i := range notes {
		notes[i] = n.at(notes[i])
	}
	return notes
}

func validFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// mediaType returns the lower-cased media type of an entity and its
// parameters; a missing Content-Type is text/plain (RFC 2045 §5.2). Broken
// parameter lists (Outlook's trailing ";" and the like) are parsed leniently.
func mediaType(h textproto.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if strings.TrimSpace(v) == "" {
		return "text/plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || params == nil {
		mt, params = parseParams(v)
	}
	mt = strings.ToLower(mt)
	if typ, sub, ok := strings.Cut(mt, "/"); !ok || typ == "" || sub == "" {
		// An invalid type is text/plain (RFC 2045 §5.2), the boundary and
		// names are still worth having.
		mt = "text/plain"
	}
	return mt, params
}

// parseParams is the fallback parser for `type/sub; k=v; k="v"`.
func parseParams(v string) (string, map[string]string) {
	fields := strings.Split(v, ";")
	params := map[string]string{}
	for _, f := range fields[1:] {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' {
			if j := strings.IndexByte(val[1:], '"'); j >= 0 {
				val = val[1 : 1+j]
			}
		}
		if _, dup := params[k]; !dup && k != "" {
			params[k] = val
		}
	}
	return strings.TrimSpace(fields[0]), params
}

// partFilename returns the file name of a part: the Content-Disposition
// filename (RFC 2183 §2.3, RFC 2231), else the Content-Type name parameter,
// RFC 2047 decoded, without any directory.
func partFilename(h textproto.Header, ctParams map[string]string) string {
	name := ""
	if v := h.Get("Content-Disposition"); v != "" {
		_, params, err := mime.ParseMediaType(v)
		if err != nil || params == nil {
			_, params = parseParams(v)
		}
		name = params["filename"]
	}
	if name == "" {
		name = ctParams["name"]
	}
	if name == "" {
		return ""
	}
	name = decodeWords(name)
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	if name == "." || name == "/" {
		return ""
	}
	return name
}

// decodeWords decodes RFC 2047 encoded-words in s, any charset go-message
// knows.
func decodeWords(s string) string {
	d := mime.WordDecoder{CharsetReader: charset.Reader}
	if out, err := d.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

// mailInfo extracts the headers a payload's consumer wants.
func mailInfo(h textproto.Header) *MailInfo {
	mh := mail.Header{Header: message.Header{Header: h}}
	info := &MailInfo{}
	if s, err := mh.Subject(); err == nil {
		info.Subject = s
	} else {
		info.Subject = decodeWords(h.Get("Subject"))
	}
	if addrs, err := mh.AddressList("From"); err == nil && len(addrs) > 0 {
		info.From = addrs[0].Address
	} else {
		info.From = strings.TrimSpace(decodeWords(h.Get("From")))
	}
	if id, err := mh.MessageID(); err == nil && id != "" {
		info.MessageID = id
	} else {
		info.MessageID = strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>")
	}
	if t, err := mh.Date(); err == nil {
		info.Date = t
	}
	return info
}

// failureText matches the human-readable part of a DMARC failure notice that
// comes without a message/feedback-report part (Exim: "A message claiming to
// be from you has failed the published DMARC policy for your domain.").
var failureText = regexp.MustCompile(`(?i)\bfail(ed|s|ure)?\b[^\n]{0,60}\bDMARC\b|\bDMARC\b[^\n]{0,30}\b(fail(ed|s|ure)?|forensic)\b`)

// isFailure reports whether the message is a failure report: a
// multipart/report with report-type=feedback-report (RFC 6591 §2, RFC 6522),
// any message/feedback-report part (NetEase sends multipart/mixed), or a
// multipart/report that is not a DSN, MDN or TLS report and whose first text
// part (or Subject) says DMARC failure. Embedded messages are not looked into:
// a forwarded failure report is found when the walk reaches it.
func (w *walker) isFailure(h textproto.Header, body []byte, depthLeft int) bool {
	mt, params := mediaType(h)
	rt := strings.ToLower(params["report-type"])
	switch {
	case mt == "message/feedback-report":
		return true
	case mt == "multipart/report" && rt == "feedback-report":
		return true
	case !strings.HasPrefix(mt, "multipart/"):
		return false
	}
	notice := mt == "multipart/report" && rt != "delivery-status" && rt != "disposition-notification" && rt != "tlsrpt"
	subject := false
	if notice {
		s, err := (&mail.Header{Header: message.Header{Header: h}}).Subject()
		subject = err == nil && failureText.MatchString(s)
	}
	return w.scanFailure(bytes.NewReader(body), params["boundary"], notice, subject, depthLeft)
}

// scanFailure looks for a message/feedback-report part in a multipart body.
// With notice set it also reports whether the first text/plain part (or,
// when subject is set, the Subject) reads as a DMARC failure notice, provided no part is an attachment of another kind
// (a report archive beside such text makes it an aggregate report mail).
//
// Its parts count against MaxParts and their headers are bounded as the
// walk's; at a limit it answers with what it has seen (the walk that follows
// meets the same limit and reports it).
func (w *walker) scanFailure(body io.Reader, boundary string, notice, subject bool, depthLeft int) bool {
	if boundary == "" || depthLeft <= 0 || w.over != nil {
		return false
	}
	mr, g, _ := w.multipartReader(body, boundary, node{where: "failure report check"})
	noticeText, checked := false, false
	for {
		p, err := w.nextPart(mr, g, node{})
		if err != nil {
			return notice && (noticeText || subject)
		}
		mt, params := mediaType(p.Header)
		switch {
		case mt == "message/feedback-report":
			return true
		case strings.HasPrefix(mt, "multipart/"):
			if w.scanFailure(p, params["boundary"], false, false, depthLeft-1) {
				return true
			}
		case mt == "text/plain" && !checked:
			checked = true
			if notice {
				text, _ := io.ReadAll(io.LimitReader(&mimeReader{transferDecode(p, p.Header.Get("Content-Transfer-Encoding"))}, sniffLen))
				noticeText = failureText.Match(text)
			}
		case strings.HasPrefix(mt, "text/"), strings.HasPrefix(mt, "message/"):
		default:
			notice = false
		}
	}
}

// uniq returns ss without repeats, in first-seen order.
func uniq(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

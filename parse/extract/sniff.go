package extract

import (
	"bytes"
	"regexp"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// sniffed is what the first bytes of a stream say it is.
type sniffed int

const (
	kindUnknown   sniffed = iota
	kindGzip              // 1f 8b (RFC 1952 §2.3.1)
	kindZip               // PK\x03\x04, or PK\x05\x06 for an empty archive (APPNOTE 4.3.7, 4.3.16)
	kindAggregate         // XML with a <feedback> element
	kindXML               // XML without one
	kindTLSRPT            // JSON object (RFC 8460 §4)
	kindEmail             // RFC 5322 header lines, then a blank line
)

// feedbackTag matches the root element of aggregate report XML, with or
// without a namespace prefix (RFC 9990 uses a default namespace, some
// reporters a prefix).
var feedbackTag = regexp.MustCompile(`(?i)<([A-Za-z_][-.\w]*:)?feedback[\s>/]`)

// tlsrptKey matches a member every TLS report has (RFC 8460 §4.3), to tell
// a report from other JSON in a text part.
var tlsrptKey = regexp.MustCompile(`"(policies|organization-name|report-id|date-range)"\s*:`)

// sniffBytes classifies head, the first bytes of a stream. textual is set for
// text/* MIME parts: there JSON must look like a TLS report and email-like
// text is not taken for an email.
func sniffBytes(head []byte, textual bool) sniffed {
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		return kindGzip
	}
	if bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")) {
		return kindZip
	}
	text := textStart(head)
	if len(text) > 0 {
		switch text[0] {
		case '<':
			if feedbackTag.Match(text) {
				return kindAggregate
			}
			return kindXML
		case '{':
			if textual && !tlsrptKey.Match(text) {
				return kindUnknown
			}
			return kindTLSRPT
		}
	}
	if !textual && looksLikeEmail(head) {
		return kindEmail
	}
	return kindUnknown
}

// textStart returns head as UTF-8 text without a byte order mark and leading
// white space. UTF-16 (with a BOM, or XML's "<" encoded as 3c 00 / 00 3c) is
// converted, so that UTF-16 XML is recognised too (XML 1.0 App. F).
func textStart(head []byte) []byte {
	switch {
	case bytes.HasPrefix(head, []byte{0xef, 0xbb, 0xbf}):
		head = head[3:]
	case bytes.HasPrefix(head, []byte{0xff, 0xfe}):
		head = fromUTF16(head[2:], false)
	case bytes.HasPrefix(head, []byte{0xfe, 0xff}):
		head = fromUTF16(head[2:], true)
	case bytes.HasPrefix(head, []byte{'<', 0}):
		head = fromUTF16(head, false)
	case bytes.HasPrefix(head, []byte{0, '<'}):
		head = fromUTF16(head, true)
	}
	return bytes.TrimLeft(head, " \t\r\n")
}

func fromUTF16(b []byte, bigEndian bool) []byte {
	u := make([]uint16, len(b)/2)
	for i := range u {
		if bigEndian {
			u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			u[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	out := make([]byte, 0, len(u))
	for _, r := range utf16.Decode(u) {
		out = utf8.AppendRune(out, r)
	}
	return out
}

// knownHeaders are field names that, on the first lines of a stream, make it
// an email even when the header block is longer than the sniffed bytes.
var knownHeaders = map[string]bool{
	"return-path": true, "received": true, "from": true, "to": true, "cc": true,
	"subject": true, "date": true, "message-id": true, "mime-version": true,
	"content-type": true, "delivered-to": true, "dkim-signature": true,
	"authentication-results": true, "arc-seal": true, "arc-message-signature": true,
	"arc-authentication-results": true, "reply-to": true, "sender": true,
	"x-original-to": true, "envelope-to": true, "received-spf": true,
}

// looksLikeEmail reports whether head starts with an RFC 5322 §2.2 header:
// `Name: value` lines (folded lines allowed), optionally after an mbox "From "
// line, ended by a blank line. One line suffices if its name is a well-known
// header field; otherwise two are needed. Past those, a line that is no field
// is a stray line the header repair deals with (repair.go), not a reason to
// doubt the rest.
func looksLikeEmail(head []byte) bool {
	b := head
	if bytes.HasPrefix(b, []byte("From ")) {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false
		}
		b = b[i+1:]
	}
	lines, known := 0, false
	for len(b) > 0 {
		line, rest, more := bytes.Cut(b, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return lines >= 2 || known
		}
		if !more && len(b) == len(head) {
			// One unterminated line: too little to say.
			return false
		}
		b = rest
		if line[0] == ' ' || line[0] == '\t' {
			if lines == 0 {
				return false
			}
			continue
		}
		if headerLine(line) != lineField {
			if lines >= 2 || known {
				continue
			}
			return false
		}
		name := bytes.TrimRight(line[:bytes.IndexByte(line, ':')], " \t")
		if knownHeaders[strings.ToLower(string(name))] {
			known = true
		}
		lines++
	}
	// The sniffed bytes ended inside the header.
	return known
}

// isDeclaredArchive reports whether a MIME part's media type or file name
// promises a gzip or zip archive.
func isDeclaredArchive(mediaType, filename string) bool {
	switch mediaType {
	case "application/zip", "application/x-zip", "application/x-zip-compressed",
		"application/gzip", "application/x-gzip", "application/tlsrpt+gzip":
		return true
	}
	f := strings.ToLower(filename)
	return strings.HasSuffix(f, ".zip") || strings.HasSuffix(f, ".gz") || strings.HasSuffix(f, ".gzip")
}

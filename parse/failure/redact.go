package failure

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"sort"
	"strings"
)

// Redacted replaces a subject when Redact is asked to redact subjects.
const Redacted = "[redacted]"

// addressHeaders are the header fields whose values name mailboxes. Besides
// the addresses in them, Redact replaces there every other occurrence of a
// redacted local part, as in a display name that repeats it.
var addressHeaders = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "reply-to": true, "sender": true,
	"return-path": true, "delivered-to": true, "x-original-to": true, "envelope-to": true,
	"x-envelope-to": true, "x-envelope-from": true, "resent-from": true, "resent-to": true,
	"resent-cc": true, "resent-bcc": true, "resent-sender": true, "disposition-notification-to": true,
	"errors-to": true, "x-sender": true, "x-receiver": true, "original-recipient": true,
	"final-recipient": true, "mail-followup-to": true, "mail-reply-to": true,
}

// Redact replaces the local part of every address in r with a token, the
// transformation RFC 6590 suggests and RFC 9991 App. A illustrates: the first
// 16 characters of the base32 (RFC 4648) HMAC-SHA256 under key of the
// lower-cased local part, so that one address always gives one token and a
// report can still be matched to others from the same mailbox.
//
// It redacts OriginalMailFrom, OriginalRcptTo, OriginalEnvelopeID,
// DKIMIdentity, AuthenticationResults, ReportedURI, ReportSubject, the From,
// To, Subject and ReturnPath of Original, and the value of every original
// header field but Message-ID, which with Original.MessageID is kept as the
// original's identity (see Key). An address is any addr-spec found in these
// values, including those after smtp.mailfrom=, header.from= or
// envelope-from=. In the address header fields (From, To, Cc, Reply-To,
// Return-Path, Sender and the like) every other occurrence of a redacted
// local part, such as a display name repeating it, is replaced as well.
// Encoded words (RFC 2047) in those fields are decoded first.
//
// With redactSubject, the subjects (ReportSubject, Original.Subject and the
// original's Subject field) become Redacted. Unless keepBody, Original.Body
// is dropped; when kept, the addresses in it are redacted as well.
//
// Redact is not idempotent: redacting twice hashes the tokens again. Call
// Key before or after Redact: its inputs are not changed.
func Redact(r *Report, key []byte, redactSubject, keepBody bool) {
	rd := &redactor{key: key, locals: map[string]string{}}
	r.OriginalMailFrom = rd.addrs(r.OriginalMailFrom)
	rd.all(r.OriginalRcptTo)
	r.OriginalEnvelopeID = rd.addrs(r.OriginalEnvelopeID)
	r.DKIMIdentity = rd.addrs(r.DKIMIdentity)
	rd.all(r.AuthenticationResults)
	rd.all(r.ReportedURI)
	r.ReportSubject = rd.addrs(r.ReportSubject)

	o := &r.Original
	o.From = rd.addrs(o.From)
	rd.all(o.To)
	o.Subject = rd.addrs(o.Subject)
	o.ReturnPath = rd.addrs(o.ReturnPath)
	for i := range o.Headers {
		h := &o.Headers[i]
		name := strings.ToLower(h.Name)
		switch {
		case name == "message-id":
		case addressHeaders[name]:
			h.Value = rd.addrs(decodeText(h.Value))
		default:
			h.Value = rd.addrs(h.Value)
		}
	}
	if keepBody {
		if o.Body != nil {
			o.Body = []byte(rd.addrs(string(o.Body)))
		}
	} else {
		o.Body = nil
	}

	// Second pass, now that every local part is known.
	o.From = rd.throughout(o.From)
	for i := range o.Headers {
		if h := &o.Headers[i]; addressHeaders[strings.ToLower(h.Name)] {
			h.Value = rd.throughout(h.Value)
		}
	}

	if redactSubject {
		r.ReportSubject = Redacted
		o.Subject = Redacted
		for i := range o.Headers {
			if strings.EqualFold(o.Headers[i].Name, "subject") {
				o.Headers[i].Value = Redacted
			}
		}
	}
}

type redactor struct {
	key        []byte
	locals     map[string]string // lower-cased local part -> token
	quoted     []string          // see quotedLocals
	quotedDone bool
}

// quotedLocals returns at most maxComplexLocals of the local parts that
// have characters outside atext, computed once for the second pass.
func (rd *redactor) quotedLocals() []string {
	if rd.quotedDone {
		return rd.quoted
	}
	rd.quotedDone = true
	for l := range rd.locals {
		if len(l) >= minThroughout && strings.ContainsFunc(l, func(r rune) bool { return r < 0x80 && !atext(byte(r)) }) {
			rd.quoted = append(rd.quoted, l)
		}
	}
	sort.Strings(rd.quoted) // deterministic choice when over the bound
	if len(rd.quoted) > maxComplexLocals {
		rd.quoted = rd.quoted[:maxComplexLocals]
	}
	return rd.quoted
}

// token returns the token for a local part.
func (rd *redactor) token(local string) string {
	l := asciiLower(local)
	if t, ok := rd.locals[l]; ok {
		return t
	}
	mac := hmac.New(sha256.New, rd.key)
	mac.Write([]byte(l))
	t := base32.StdEncoding.EncodeToString(mac.Sum(nil))[:16]
	rd.locals[l] = t
	return t
}

func (rd *redactor) all(l []string) {
	for i := range l {
		l[i] = rd.addrs(l[i])
	}
}

// addrs replaces the local part of each address in s.
func (rd *redactor) addrs(s string) string {
	spans := findAddrs(s)
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		b.WriteString(s[last:sp.local])
		b.WriteString(rd.token(s[sp.local:sp.at]))
		last = sp.at
	}
	b.WriteString(s[last:])
	return b.String()
}

// minThroughout is the shortest local part replaced outside addresses:
// shorter ones would match too much text and identify no one.
const minThroughout = 3

// maxComplexLocals bounds the quoted local parts with characters outside
// atext that throughout looks for by substring search, so that a report with
// very many of them costs linear time.
const maxComplexLocals = 64

// throughout replaces each occurrence in s of a redacted local part that
// stands alone, ignoring ASCII case: a whole run of local-part characters
// (atext, '.', '@'), as in the display name "u+x" <u+x@example.org>, found
// in one pass over s. A quoted local part with other characters (a space)
// is searched for as a substring with no word character (see inWord) on
// either side.
func (rd *redactor) throughout(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !atext(s[i]) && s[i] != '@' {
			i++
			continue
		}
		j := i
		for j < len(s) && (atext(s[j]) || s[j] == '@') {
			j++
		}
		if tok, ok := rd.locals[asciiLower(s[i:j])]; ok && j-i >= minThroughout {
			b.WriteString(s[last:i])
			b.WriteString(tok)
			last = j
		}
		i = j
	}
	if last > 0 {
		b.WriteString(s[last:])
		s = b.String()
	}

	for _, l := range rd.quotedLocals() {
		s = replaceStandalone(s, l, rd.locals[l])
	}
	return s
}

// replaceStandalone replaces the occurrences of l (lower-case) in s that
// stand alone, ignoring ASCII case.
func replaceStandalone(s, l, tok string) string {
	low := asciiLower(s)
	var b strings.Builder
	last := 0
	for i := 0; ; {
		j := strings.Index(low[i:], l)
		if j < 0 {
			break
		}
		j += i
		end := j + len(l)
		if (j == 0 || !inWord(s[j-1])) && (end == len(s) || !inWord(s[end])) {
			b.WriteString(s[last:j])
			b.WriteString(tok)
			last = end
		}
		i = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// span locates one address in a string: s[local:at] is its local part, s[at]
// the '@', s[at+1:end] its domain.
type span struct{ local, at, end int }

// findAddrs returns the addresses in s, in order. An address is a non-empty
// local part of RFC 5322 atext and dots, or a quoted string, then '@' and a
// domain (letters, digits, hyphens, dots) or an address literal. A local
// part that starts with a key such as "smtp.mailfrom=" (RFC 8601 §2.7) or
// "envelope-from=" starts after it.
func findAddrs(s string) []span {
	var out []span
	prevEnd := 0
	for at := strings.IndexByte(s, '@'); at >= 0; {
		end := domainEnd(s, at+1)
		if end > at+1 {
			if local := localStart(s, at, prevEnd); local < at {
				out = append(out, span{local, at, end})
				prevEnd = end
			}
		}
		next := strings.IndexByte(s[at+1:], '@')
		if next < 0 {
			break
		}
		at += 1 + next
	}
	return out
}

// domainEnd returns the end of the domain starting at i, or i if there is none.
func domainEnd(s string, i int) int {
	if i < len(s) && s[i] == '[' {
		if j := strings.IndexByte(s[i:], ']'); j > 0 {
			return i + j + 1
		}
		return i
	}
	if i >= len(s) || !alnum(s[i]) {
		return i
	}
	j := i
	for j < len(s) && (alnum(s[j]) || s[j] == '-' || s[j] == '.' || s[j] == '_') {
		j++
	}
	return j
}

// localStart returns where the local part ending before s[at] starts, not
// before min; at when there is none.
func localStart(s string, at, min int) int {
	if at > 0 && s[at-1] == '"' {
		for j := at - 2; j >= min; j-- {
			if s[j] == '"' && (j == 0 || s[j-1] != '\\') {
				if j+1 < at-1 {
					return j
				}
				return at
			}
		}
		return at
	}
	j := at
	for j > min && atext(s[j-1]) {
		j--
	}
	for j < at && s[j] == '.' {
		j++
	}
	if eq := strings.IndexByte(s[j:at], '='); eq > 0 && isKey(s[j:j+eq]) {
		j += eq + 1
	}
	return j
}

// isKey reports whether k is the key of a key=value pair that puts an
// address after it: a method property of Authentication-Results (RFC 8601
// §2.7: smtp.mailfrom, header.from, header.i), or one of the names
// Received-SPF (RFC 7208 §9.1) and report subjects use. Other words are
// taken as part of the local part, so that nothing of it is left behind.
func isKey(k string) bool {
	k = asciiLower(k)
	for _, p := range []string{"smtp.", "header.", "policy.", "body.", "dkim.", "spf."} {
		if strings.HasPrefix(k, p) && len(k) > len(p) {
			return true
		}
	}
	switch k {
	case "envelope-from", "envelope-to", "x-sender", "x-receiver", "sender", "receiver",
		"mailfrom", "mail-from", "rcptto", "rcpt-to", "from", "to", "identity":
		return true
	}
	return false
}

// inWord reports whether c continues a word, a domain or an address next to
// a match, which then is not a stand-alone occurrence.
func inWord(c byte) bool {
	return alnum(c) || strings.IndexByte("@.-_", c) >= 0 || c >= 0x80
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// atext reports whether c may appear in an unquoted local part (RFC 5322
// §3.2.3 atext, and '.').
func atext(c byte) bool {
	return alnum(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0 || c >= 0x80
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// RedactAddresses replaces the local part of every address in s with its
// token under key, as Redact does: for text stored beside a failure report,
// such as the name of the file or mail it came in.
func RedactAddresses(s string, key []byte) string {
	rd := &redactor{key: key, locals: map[string]string{}}
	return rd.addrs(s)
}

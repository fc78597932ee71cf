package failure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"mime"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/charset"

	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// maxFields bounds the fields kept from one header block (a
// message/feedback-report body, the original's header); later ones are
// dropped. A real original header has 20 to 60 fields.
const maxFields = 1000

// MaxFieldBytes bounds the value of one field, unfolded: longer values are
// cut (on a rune boundary) and their further continuation lines skipped.
// Authentication-Results, DKIM-Signature and References run to a few KiB.
const MaxFieldBytes = 16 << 10

// readFields reads a block of header-like fields (RFC 5322 §2.2 syntax, as
// RFC 5965 §3 uses for message/feedback-report) from b. CRLF, LF and CR line
// ends are accepted and continuation lines unfolded. At most maxFields
// fields of at most MaxFieldBytes each are kept.
//
// With header set, b is a message: the block ends at the first empty line or
// at the first line that is neither a field nor a continuation, and rest is
// what follows (the body). A first line in mbox "From " form is skipped.
// Without header set, b is a feedback-report body: empty and malformed lines
// are skipped and rest is nil.
func readFields(b []byte, header bool) (fields []Header, rest []byte) {
	first := true
	var cur []byte // the value of the last field kept, being unfolded
	open := false  // cur belongs to fields[len(fields)-1]
	flush := func() {
		if open {
			fields[len(fields)-1].Value = valid.Truncate(strings.TrimSpace(string(cur)), MaxFieldBytes)
			open = false
		}
	}
	defer flush()
	for len(b) > 0 {
		line, next := cutLine(b)
		switch {
		case len(bytes.TrimSpace(line)) == 0:
			if header {
				flush()
				return fields, next
			}
		case line[0] == ' ' || line[0] == '\t':
			if open {
				if len(cur) <= MaxFieldBytes {
					cur = append(append(cur, ' '), bytes.TrimSpace(line)...)
				}
			} else if header && !first && len(fields) == 0 {
				return fields, b
			}
		default:
			name, value, ok := bytes.Cut(line, []byte(":"))
			if !ok || !validName(name) {
				if header && first && bytes.HasPrefix(line, []byte("From ")) {
					break // mbox separator line
				}
				if header {
					flush()
					return fields, b
				}
				break
			}
			flush()
			if len(fields) < maxFields && len(name) <= 256 {
				fields = append(fields, Header{Name: string(name)})
				cur = append(cur[:0], bytes.TrimSpace(value)...)
				open = true
			}
		}
		first = false
		b = next
	}
	return fields, nil
}

// cutLine returns the first line of b without its line end, and the rest.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexAny(b, "\r\n")
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if b[i] == '\r' && len(rest) > 0 && rest[0] == '\n' {
		rest = rest[1:]
	}
	return line, rest
}

// validName reports whether b is a field name: printable US-ASCII but colon
// (RFC 5322 §2.2).
func validName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// fieldMap is a multimap of fields by lower-cased name, in order.
type fieldMap map[string][]string

func newFieldMap(fields []Header) fieldMap {
	m := fieldMap{}
	for _, f := range fields {
		k := strings.ToLower(f.Name)
		m[k] = append(m[k], f.Value)
	}
	return m
}

// get returns the first value of field k, or "".
func (m fieldMap) get(k string) string {
	if v := m[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// headerHash is the hex SHA-256 of fields, each as "name:value\n".
func headerHash(fields []Header) string {
	if len(fields) == 0 {
		return ""
	}
	h := sha256.New()
	for _, f := range fields {
		h.Write([]byte(f.Name))
		h.Write([]byte{':'})
		h.Write([]byte(f.Value))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeText decodes RFC 2047 encoded words, or returns s when it cannot.
func decodeText(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

var addrParser = &mail.AddressParser{WordDecoder: wordDecoder}

// addrSpecs returns the addr-specs of an address-list header value. When
// the value does not parse, it falls back to the address-like tokens in it.
func addrSpecs(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	if l, err := addrParser.ParseList(v); err == nil {
		out := make([]string, 0, len(l))
		for _, a := range l {
			out = append(out, a.Address)
		}
		return out
	}
	var out []string
	for _, sp := range findAddrs(v) {
		out = append(out, v[sp.local:sp.end])
	}
	return out
}

// path returns the address of a reverse- or forward-path (RFC 5321 §4.1.2),
// "<a@b>" or "a@b", without brackets; "" for the null path "<>".
func path(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j >= 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
	}
	return v
}

// domainOf returns the lower-cased domain of an address, without a trailing dot.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return normDomain(addr[i+1:])
}

// normDomain normalises a domain (align.Normalize: lower case, A-labels, no
// trailing dot) and returns "" when it is not a DNS name (valid.Domain): a
// failure report's domains come from anyone, and a field with a bad one is
// dropped rather than the report (Reported-Domain, DKIM-Domain,
// Reporting-MTA, the From domains of the report and of the original).
func normDomain(s string) string {
	d := align.Normalize(s)
	if d == "" || valid.Domain(d) != nil {
		return ""
	}
	return d
}

// normDomainList is normDomain for a field that real reporters fill with
// several domains ("ietf.org; example.net": one per failed signature): each
// valid one is kept, in order, joined by "; "; the others are dropped.
func normDomainList(s string) string {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' || r == '\t' })
	out := parts[:0]
	for _, p := range parts {
		if d := normDomain(p); d != "" {
			out = append(out, d)
		}
	}
	return strings.Join(out, "; ")
}

// stripComments removes RFC 5322 comments "( ... )", nesting included.
func stripComments(s string) string {
	if !strings.Contains(s, "(") {
		return strings.TrimSpace(s)
	}
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}

// tokens splits comma-separated values, lower-cased, without comments and
// empty elements.
func tokens(values []string) []string {
	var out []string
	for _, v := range values {
		for _, t := range strings.Split(stripComments(v), ",") {
			if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// dateLayouts are tried after net/mail.ParseDate, for generators that do
// not write RFC 5322 dates.
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 MST",
	"2006-01-02 15:04:05",
	time.UnixDate,
	time.ANSIC,
	"Mon, 2 Jan 2006 15:04:05",
	"2 Jan 2006 15:04:05",
}

// parseDate parses an Arrival-Date; the zero time (absent) when it cannot or
// when the date is outside valid.Time's window (before 2000, or in the future).
func parseDate(s string) time.Time {
	t := parseDateAny(s)
	if t.IsZero() || valid.Time("arrival-date", t, time.Now()) != nil {
		return time.Time{}
	}
	return t
}

// parseDateAny parses a date in any of the forms seen; the zero time when it
// cannot.
func parseDateAny(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if t, err := mail.ParseDate(s); err == nil {
		return t.UTC()
	}
	s = strings.Join(strings.Fields(stripComments(s)), " ")
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

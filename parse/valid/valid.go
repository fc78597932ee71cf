// Package valid checks the values a report carries before anything is done
// with them, and makes text safe to print. Every report value is attacker
// controlled: anyone can mail a rua/ruf address or drop an object in a
// bucket. Parsers call these checks while building a value, so a record or
// report with a value outside its syntax is set aside with a reason instead
// of being stored, printed or used as a metric label.
package valid

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxDomainLen is the longest domain name in presentation form without the
// trailing dot (RFC 1035 §2.3.4: 255 octets on the wire).
const MaxDomainLen = 253

// maxLabelLen is the longest label (RFC 1035 §2.3.4).
const maxLabelLen = 63

// Domain reports whether d, a domain already normalised (lower case, A-labels,
// no trailing dot: align.Normalize), is a syntactically valid DNS name:
// at most 253 octets, labels of 1 to 63 octets made of letters, digits, '-'
// and '_' (underscores appear in real names such as _dmarc and DKIM
// selectors; RFC 2181 §11 allows any octet, but a report's domain with a
// space, quote, control character or a non-ASCII octet left after IDNA
// conversion is never a real mail domain). It returns nil or an error that
// says what is wrong, with the value quoted and cut short.
func Domain(d string) error {
	if d == "" {
		return fmt.Errorf("empty domain")
	}
	if len(d) > MaxDomainLen {
		return fmt.Errorf("domain %s is %d bytes long, more than %d", Quote(d, 40), len(d), MaxDomainLen)
	}
	label := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if label == 0 {
				return fmt.Errorf("domain %s has an empty label", Quote(d, 64))
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c >= 'A' && c <= 'Z':
			// Normalised names are lower case; accept upper case from callers
			// that check before normalising.
		default:
			return fmt.Errorf("domain %s has a character outside DNS syntax (%q at byte %d)", Quote(d, 64), c, i)
		}
		label++
		if label > maxLabelLen {
			return fmt.Errorf("domain %s has a label longer than %d bytes", Quote(d, 64), maxLabelLen)
		}
	}
	if label == 0 {
		return fmt.Errorf("domain %s has an empty label", Quote(d, 64))
	}
	return nil
}

// Earliest is the earliest report time accepted: DMARC (2012) and TLS-RPT
// (2018) reports cannot be older than this. ClickHouse's DateTime begins in
// 1970, so an older value would be stored as a wrong one.
var Earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxFuture is how far past the present a report time may lie (reporters'
// clocks drift and a day's report may end at tomorrow's midnight in their
// time zone). Anything later is a forgery or a broken reporter; it would also
// reach ClickHouse DateTime's end in 2106 and wrap modulo 2^32.
const MaxFuture = 7 * 24 * time.Hour

// Window checks a report's time range: both ends inside [Earliest,
// now+MaxFuture] and end not before begin. what names the value in the error
// ("date_range").
func Window(what string, begin, end, now time.Time) error {
	latest := now.Add(MaxFuture)
	for _, v := range []struct {
		name string
		t    time.Time
	}{{"begin", begin}, {"end", end}} {
		if v.t.Before(Earliest) {
			return fmt.Errorf("%s/%s %s is before %s", what, v.name, v.t.UTC().Format(time.RFC3339), Earliest.Format("2006-01-02"))
		}
		if v.t.After(latest) {
			return fmt.Errorf("%s/%s %s is more than %s in the future", what, v.name, v.t.UTC().Format(time.RFC3339), MaxFuture)
		}
	}
	if end.Before(begin) {
		return fmt.Errorf("%s/end %s is before %s/begin %s", what, end.UTC().Format(time.RFC3339), what, begin.UTC().Format(time.RFC3339))
	}
	return nil
}

// Time checks one timestamp against the same window as Window.
func Time(what string, t, now time.Time) error {
	if t.Before(Earliest) {
		return fmt.Errorf("%s %s is before %s", what, t.UTC().Format(time.RFC3339), Earliest.Format("2006-01-02"))
	}
	if t.After(now.Add(MaxFuture)) {
		return fmt.Errorf("%s %s is more than %s in the future", what, t.UTC().Format(time.RFC3339), MaxFuture)
	}
	return nil
}

// AddCount adds n to sum and reports false when the sum would overflow a
// uint64 (message counts are summed per report and per input).
func AddCount(sum, n uint64) (uint64, bool) {
	s := sum + n
	return s, s >= sum
}

// Printable returns s with every control character (C0, DEL, C1), every
// invalid UTF-8 byte and the Unicode bidirectional overrides escaped as Go
// escapes (\x1b, \u202e), so that text from a report can go to a terminal, a
// log line or a metric label without steering what displays it. Text that
// needs no escaping is returned as is, without allocating.
func Printable(s string) string {
	if isPrintable(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r):
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '\\' || c >= 0x80 {
			if c >= 0x80 {
				return checkRunes(s[i:])
			}
			return false
		}
	}
	return true
}

func checkRunes(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unsafeRune(r) || r == '\\' {
			return false
		}
		i += size
	}
	return true
}

func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true // bidirectional controls: reorder what a terminal shows
	}
	return false
}

// Quote returns s made Printable, cut to at most max bytes (with "…" and the
// full length when cut), in double quotes: for error messages that name a
// hostile value without repeating all of it.
func Quote(s string, max int) string {
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return `"` + Printable(s[:cut]) + fmt.Sprintf(`…" (%d bytes)`, len(s))
	}
	return `"` + Printable(s) + `"`
}

// Truncate cuts s to at most max bytes on a rune boundary.
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// CSVCell makes a value safe for a spreadsheet: a cell beginning with '=',
// '+', '-', '@', tab or carriage return is a formula to Excel, LibreOffice
// and Google Sheets (OWASP "CSV injection"), so it gets a leading apostrophe;
// control characters are escaped as for Printable.
func CSVCell(s string) string {
	s = Printable(s)
	if s != "" {
		switch s[0] {
		case '=', '+', '-', '@', '\t', '\r':
			return "'" + s
		}
	}
	return s
}

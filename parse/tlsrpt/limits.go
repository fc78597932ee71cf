package tlsrpt

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// Limits bound what one TLS report may cost. They are enforced while the
// JSON is read, token by token: a report past a limit is not read further.
// A zero field takes its default.
type Limits struct {
	// MaxBytes is the JSON size: 20 MiB by default (DefaultMaxBytes). The
	// largest real reports (a big provider, one domain, a day) are well under
	// 1 MiB.
	MaxBytes int64
	// MaxStringBytes is the length of one JSON string, member names
	// included: 16 KiB by default. A policy line, a host name or a URI is
	// far shorter.
	MaxStringBytes int
	// MaxPolicies is the number of elements of "policies": 1,000 by default
	// (one per MX host and policy type of the domain in practice).
	MaxPolicies int
	// MaxFailureRows is the number of "failure-details" elements in all
	// policies of the report: 10,000 by default. Each is a stored row.
	MaxFailureRows int
	// MaxDepth is the nesting of JSON objects and arrays: 16 by default
	// (a report needs 4).
	MaxDepth int
}

// Defaults of Limits.
const (
	DefaultMaxStringBytes = 16 << 10
	DefaultMaxPolicies    = 1000
	DefaultMaxFailureRows = 10000
	DefaultMaxDepth       = 16
	// MaxReportIDBytes bounds "report-id" (RFC 8460 §4.4 gives no length;
	// real ones are under 100 bytes). A longer one is invalid_value.
	MaxReportIDBytes = 1024
)

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{MaxBytes: DefaultMaxBytes, MaxStringBytes: DefaultMaxStringBytes,
		MaxPolicies: DefaultMaxPolicies, MaxFailureRows: DefaultMaxFailureRows, MaxDepth: DefaultMaxDepth}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxStringBytes <= 0 {
		l.MaxStringBytes = d.MaxStringBytes
	}
	if l.MaxPolicies <= 0 {
		l.MaxPolicies = d.MaxPolicies
	}
	if l.MaxFailureRows <= 0 {
		l.MaxFailureRows = d.MaxFailureRows
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	return l
}

// readBounded reads the JSON document from r into memory, checking lim
// token by token as it goes (a json.Decoder over the bytes read). It stops at
// the first limit passed and returns a TooLarge error; a syntax error is left
// for the decoding that follows to report, with its position. A UTF-8 byte
// order mark (files saved by Windows tools) is dropped.
func readBounded(r io.Reader, lim Limits) ([]byte, error) {
	br := bufio.NewReader(&sizeReader{r: r, left: lim.MaxBytes})
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	var buf bytes.Buffer
	dec := json.NewDecoder(&squeezeReader{r: io.TeeReader(br, &buf), maxString: lim.MaxStringBytes})
	dec.UseNumber()
	err := checkShape(dec, lim)
	if parse.CodeOf(err) != "" {
		return nil, err // a limit, or the reader's own (decompression limit, corrupt gzip)
	}
	// The rest: trailing white space, or what the decoder did not read
	// after a syntax error, so that the error names its position.
	if _, err := io.Copy(&buf, br); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// shapeFrame is one open JSON object or array during checkShape.
type shapeFrame struct {
	array   bool
	name    string // member name the container is the value of
	wantKey bool   // an object expecting a member name next
	key     string // last member name read
	n       int    // elements so far (arrays)
}

// checkShape walks the tokens of one JSON value and returns a TooLarge error
// at the first token past lim: a string too long, nesting too deep, too many
// policies or failure-details rows. Syntax errors are returned as they are.
func checkShape(dec *json.Decoder, lim Limits) error {
	var stack []shapeFrame
	rows := 0
	value := func() error {
		if len(stack) == 0 {
			return nil
		}
		top := &stack[len(stack)-1]
		if !top.array {
			top.wantKey = true
			return nil
		}
		top.n++
		switch {
		case len(stack) == 2 && top.name == "policies" && top.n > lim.MaxPolicies:
			return parse.Errorf(parse.TooLarge, "tls report: more than %d policies", lim.MaxPolicies)
		case len(stack) == 4 && top.name == "failure-details":
			if rows++; rows > lim.MaxFailureRows {
				return parse.Errorf(parse.TooLarge, "tls report: more than %d failure-details rows", lim.MaxFailureRows)
			}
		}
		return nil
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '}' || t == ']' {
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return nil
				}
				continue
			}
			if err := value(); err != nil {
				return err
			}
			if len(stack) >= lim.MaxDepth {
				return parse.Errorf(parse.TooLarge, "tls report: JSON nested more than %d levels deep", lim.MaxDepth)
			}
			f := shapeFrame{array: t == '[', wantKey: t == '{'}
			if len(stack) > 0 && !stack[len(stack)-1].array {
				f.name = stack[len(stack)-1].key
			}
			stack = append(stack, f)
			continue
		case string:
			if len(t) > lim.MaxStringBytes {
				return parse.Errorf(parse.TooLarge, "tls report: a JSON string of %d bytes, more than %d", len(t), lim.MaxStringBytes)
			}
			if n := len(stack); n > 0 && !stack[n-1].array && stack[n-1].wantKey {
				stack[n-1].key, stack[n-1].wantKey = t, false
				continue
			}
		}
		if err := value(); err != nil {
			return err
		}
		if len(stack) == 0 {
			return nil // a scalar at the top level
		}
	}
}

// sizeReader returns a TooLarge error, and stops reading, once more than
// left bytes would be read.
type sizeReader struct {
	r    io.Reader
	left int64
	max  int64
	err  error
}

func (s *sizeReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.max == 0 {
		s.max = s.left
	}
	if s.left <= 0 {
		var one [1]byte
		if k, _ := io.ReadFull(s.r, one[:]); k > 0 {
			s.err = parse.Errorf(parse.TooLarge, "tls report: more than %s of JSON", sizeText(s.max))
			return 0, s.err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	k, err := s.r.Read(p)
	s.left -= int64(k)
	if err != nil && err != io.EOF && parse.CodeOf(err) == "" {
		err = parse.Wrap(parse.InputUnreadable, err, "tls report: reading")
	}
	return k, err
}

// sizeText formats a byte count: "20 MiB", "1000 bytes".
func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// validate checks the values of a decoded report that are used as keys,
// labels or stored columns (parse/valid): the report-id is printable and at
// most MaxReportIDBytes, the date-range inside valid.Window, every
// policy-domain a DNS name, and the session counts sum without overflow. An
// mx-host that is not a DNS name (nor a "*." pattern, RFC 8461 §3.2) is
// dropped: it is informational, and a real report was seen with
// "mx: mx.server.com" in it.
func validate(rep *Report, now time.Time) error {
	if len(rep.ReportID) > MaxReportIDBytes || valid.Printable(rep.ReportID) != rep.ReportID {
		return parse.Errorf(parse.InvalidValue, "tls report: report-id %s is not printable text of at most %d bytes", valid.Quote(rep.ReportID, 64), MaxReportIDBytes)
	}
	where := "tls report " + valid.Quote(rep.ReportID, 64)
	if err := valid.Window("date-range", rep.Begin, rep.End, now); err != nil {
		return parse.Wrap(parse.InvalidValue, err, "%s", where)
	}
	var sum uint64
	for i, p := range rep.Policies {
		if p.Domain != "" {
			if err := valid.Domain(p.Domain); err != nil {
				return parse.Wrap(parse.InvalidValue, err, "%s: policies[%d] policy-domain", where, i)
			}
		}
		rep.Policies[i].MXHosts = dnsNames(p.MXHosts)
		counts := []uint64{p.Successful, p.Failed}
		for _, f := range p.Failures {
			counts = append(counts, f.FailedSessions)
		}
		for _, n := range counts {
			var ok bool
			if sum, ok = valid.AddCount(sum, n); !ok {
				return parse.Errorf(parse.InvalidValue, "%s: policies[%d]: session counts overflow a 64-bit sum", where, i)
			}
		}
	}
	return nil
}

// dnsNames returns the names in l that are DNS names or "*." patterns.
func dnsNames(l []string) []string {
	out := l[:0]
	for _, mx := range l {
		if valid.Domain(strings.TrimPrefix(mx, "*.")) == nil {
			out = append(out, mx)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// squeezeReader collapses each run of white space outside JSON strings to
// one space. encoding/json's Decoder.Token keeps the white space before a
// token in its buffer and scans it again on every refill, so 20 MiB of
// spaces would cost minutes; squeezed they cost one pass. What the decoder
// sees is only checked for limits: the document itself is decoded from the
// bytes as read.
//
// It also ends a string past maxString raw bytes (escapes counted as
// written) with a TooLarge error, before the decoder buffers all of it.
type squeezeReader struct {
	r         io.Reader
	maxString int
	inString  bool
	escaped   bool
	strLen    int
	space     bool // the last byte passed on was white space outside a string
	err       error
}

func (s *squeezeReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	for {
		k, err := s.r.Read(p)
		out := p[:0]
		for _, c := range p[:k] {
			switch {
			case s.inString:
				if s.strLen++; s.maxString > 0 && s.strLen > s.maxString+2 {
					s.err = parse.Errorf(parse.TooLarge, "tls report: a JSON string longer than %d bytes", s.maxString)
					return 0, s.err
				}
				switch {
				case s.escaped:
					s.escaped = false
				case c == '\\':
					s.escaped = true
				case c == '"':
					s.inString = false
				}
			case c == ' ' || c == '\t' || c == '\n' || c == '\r':
				if s.space {
					continue
				}
				s.space = true
				out = append(out, ' ')
				continue
			case c == '"':
				s.inString, s.strLen = true, 0
			}
			s.space = false
			out = append(out, c)
		}
		if len(out) > 0 || err != nil {
			return len(out), err
		}
	}
}

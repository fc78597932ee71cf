package tlsrpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// Parse reads one TLS report (RFC 8460 §4.4) from r with the default Limits
// but MaxBytes, at most maxBytes bytes of JSON (DefaultMaxBytes when
// maxBytes <= 0). See ParseLimits.
func Parse(r io.Reader, maxBytes int64) (*Report, error) {
	return ParseLimits(r, Limits{MaxBytes: maxBytes})
}

// ParseLimits reads one TLS report (RFC 8460 §4.4) from r within lim, which
// are checked while reading: a report past a limit is not read further.
//
// Errors are *parse.Error with code:
//   - parse.TooLarge: more than lim.MaxBytes, or a string, the nesting, the
//     policies or the failure-details rows over their limit;
//   - parse.JSONSyntax: not well-formed JSON; the message names line and column;
//   - parse.NotAReport: well-formed JSON that is not a TLS report (not an
//     object, or an object with none of the report's top-level members);
//   - parse.MissingField: a TLS report without "policies", with "policies"
//     not an array (RFC 8460 §4: it MUST be an array) or an element that is
//     not an object, or without a usable "date-range" or "report-id", or with
//     neither "organization-name" nor "contact-info", or with a value of the
//     wrong kind (a count that is not a non-negative integer);
//   - parse.InvalidValue: a value outside its syntax or range (a report-id
//     with control characters or over MaxReportIDBytes, a policy-domain or
//     mx-host that is not a DNS name, a date-range outside valid.Window,
//     session counts whose sum overflows);
//   - the reader's own coded errors (a decompression limit) as they are.
func ParseLimits(r io.Reader, lim Limits) (*Report, error) {
	lim = lim.withDefaults()
	data, err := readBounded(r, lim)
	if err != nil {
		return nil, err
	}

	var doc json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(data, err)
	}
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 || doc[0] != '{' {
		return nil, parse.Errorf(parse.NotAReport, "tls report: top-level JSON value is not an object")
	}
	top, err := members(doc)
	if err != nil {
		return nil, parse.Wrap(parse.NotAReport, err, "tls report: top-level object")
	}
	known := 0
	for _, k := range []string{"organization-name", "date-range", "contact-info", "report-id", "policies"} {
		if _, ok := top[k]; ok {
			known++
		}
	}
	if known == 0 {
		return nil, parse.Errorf(parse.NotAReport, "tls report: JSON object has none of organization-name, date-range, contact-info, report-id, policies")
	}
	rep, err := decodeReport(top)
	if err != nil {
		return nil, err
	}
	if err := validate(rep, time.Now()); err != nil {
		return nil, err
	}
	return rep, nil
}

func decodeReport(top map[string]json.RawMessage) (*Report, error) {
	rep := &Report{}
	var err error
	if rep.OrganizationName, err = str(top["organization-name"]); err != nil {
		return nil, missing("organization-name", err)
	}
	if rep.ContactInfo, err = str(top["contact-info"]); err != nil {
		return nil, missing("contact-info", err)
	}
	if rep.OrganizationName == "" && rep.ContactInfo == "" {
		return nil, parse.Errorf(parse.MissingField, "tls report: neither organization-name nor contact-info")
	}
	if rep.ReportID, err = str(top["report-id"]); err != nil {
		return nil, missing("report-id", err)
	}
	if rep.ReportID == "" {
		return nil, parse.Errorf(parse.MissingField, "tls report: no report-id")
	}
	if rep.Begin, rep.End, err = dateRange(top["date-range"]); err != nil {
		return nil, missing("date-range", err)
	}
	where := "tls report " + valid.Quote(rep.ReportID, 64)

	raw, ok := top["policies"]
	if !ok || isNull(raw) {
		return nil, parse.Errorf(parse.MissingField, "%s: no policies", where)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, parse.Errorf(parse.MissingField, "%s: policies is not an array (RFC 8460 §4)", where)
	}
	rep.Policies = make([]Policy, 0, len(elems))
	for i, e := range elems {
		p, err := decodePolicy(e)
		if err != nil {
			return nil, parse.Wrap(parse.MissingField, err, "%s: policies[%d]", where, i)
		}
		rep.Policies = append(rep.Policies, p)
	}
	return rep, nil
}

func decodePolicy(raw json.RawMessage) (Policy, error) {
	var p Policy
	m, err := members(raw)
	if err != nil {
		return p, err
	}
	pol, err := members(m["policy"])
	if err != nil {
		return p, fmt.Errorf("policy: %w", err)
	}
	if p.Type, err = str(pol["policy-type"]); err != nil {
		return p, fmt.Errorf("policy-type: %w", err)
	}
	p.Type = strings.ToLower(p.Type)
	if p.Strings, err = strs(pol["policy-string"], false); err != nil {
		return p, fmt.Errorf("policy-string: %w", err)
	}
	if p.Domain, err = str(pol["policy-domain"]); err != nil {
		return p, fmt.Errorf("policy-domain: %w", err)
	}
	p.Domain = domain(p.Domain)
	mx := pol["mx-host"]
	if mx == nil {
		mx = pol["mx-host-pattern"] // the name parsedmarc reads (docs/standards.md §5.4)
	}
	if p.MXHosts, err = strs(mx, true); err != nil {
		return p, fmt.Errorf("mx-host: %w", err)
	}

	sum, err := members(m["summary"])
	if err != nil {
		return p, fmt.Errorf("summary: %w", err)
	}
	if p.Successful, err = count(sum["total-successful-session-count"]); err != nil {
		return p, fmt.Errorf("total-successful-session-count: %w", err)
	}
	if p.Failed, err = count(sum["total-failure-session-count"]); err != nil {
		return p, fmt.Errorf("total-failure-session-count: %w", err)
	}

	if fd := m["failure-details"]; fd != nil && !isNull(fd) {
		var elems []json.RawMessage
		if err := json.Unmarshal(fd, &elems); err != nil {
			return p, errors.New("failure-details is not an array")
		}
		for i, e := range elems {
			f, err := decodeFailure(e)
			if err != nil {
				return p, fmt.Errorf("failure-details[%d]: %w", i, err)
			}
			p.Failures = append(p.Failures, f)
		}
	}
	return p, nil
}

func decodeFailure(raw json.RawMessage) (Failure, error) {
	var f Failure
	m, err := members(raw)
	if err != nil {
		return f, err
	}
	fields := []struct {
		name string
		dst  *string
	}{
		{"result-type", &f.ResultType},
		{"sending-mta-ip", &f.SendingMTAIP},
		{"receiving-mx-hostname", &f.ReceivingMXHostname},
		{"receiving-mx-helo", &f.ReceivingMXHelo},
		{"receiving-ip", &f.ReceivingIP},
		{"additional-information", &f.AdditionalInformation},
		{"failure-reason-code", &f.FailureReasonCode},
	}
	for _, fl := range fields {
		if *fl.dst, err = str(m[fl.name]); err != nil {
			return f, fmt.Errorf("%s: %w", fl.name, err)
		}
	}
	if f.AdditionalInformation == "" {
		// RFC 8460 §4.4 describes the field as "additional-info-uri"; parsedmarc reads that name.
		if f.AdditionalInformation, err = str(m["additional-info-uri"]); err != nil {
			return f, fmt.Errorf("additional-info-uri: %w", err)
		}
	}
	f.ResultType = strings.ToLower(f.ResultType)
	f.SendingMTAIP = ip(f.SendingMTAIP)
	f.ReceivingIP = ip(f.ReceivingIP)
	f.ReceivingMXHostname = domain(f.ReceivingMXHostname)
	f.ReceivingMXHelo = domain(f.ReceivingMXHelo)
	if f.FailedSessions, err = count(m["failed-session-count"]); err != nil {
		return f, fmt.Errorf("failed-session-count: %w", err)
	}
	return f, nil
}

// Key returns the identity of a report for exactly-once storage: the hex
// SHA-256 of the organization name (trimmed, lower-cased), the report-id
// (trimmed), and the begin and end of the date range as Unix seconds, each
// followed by a 0x00 byte. Two deliveries of one report have the same key.
func Key(r *Report) string {
	h := sha256.New()
	for _, s := range []string{
		strings.ToLower(strings.TrimSpace(r.OrganizationName)),
		strings.TrimSpace(r.ReportID),
		strconv.FormatInt(r.Begin.Unix(), 10),
		strconv.FormatInt(r.End.Unix(), 10),
	} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// syntaxError turns an encoding/json error into a JSONSyntax error naming
// the line and column where the document went wrong.
func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Offset counts the bytes read including the offending one.
		off := se.Offset - 1
		line, col := position(data, off)
		return parse.Wrap(parse.JSONSyntax, err, "tls report: JSON syntax error at line %d, column %d (byte %d)", line, col, off)
	}
	// io.ErrUnexpectedEOF and the like: the document ends early.
	line, col := position(data, int64(len(data)))
	return parse.Wrap(parse.JSONSyntax, err, "tls report: JSON ends early at line %d, column %d", line, col)
}

// position returns the 1-based line and column of the byte at offset off.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

func missing(field string, err error) error {
	return parse.Wrap(parse.MissingField, err, "tls report: %s", field)
}

// members decodes a JSON object into its members.
func members(raw json.RawMessage) (map[string]json.RawMessage, error) {
	if raw == nil || isNull(raw) {
		return nil, errors.New("missing")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("not an object")
	}
	return m, nil
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// str decodes an optional string member: absent and null are "", a number or
// boolean is taken as its literal text, an object or array is an error.
func str(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return strings.TrimSpace(s), nil
	case '{', '[':
		return "", errors.New("not a string")
	}
	return string(raw), nil
}

// strs decodes a member that should be an array of strings but is a single
// string in some reports. With lower, each value is normalised as a domain.
func strs(raw json.RawMessage, lower bool) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var l []json.RawMessage
	if raw[0] == '[' {
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, err
		}
	} else {
		l = []json.RawMessage{raw}
	}
	var out []string
	for _, e := range l {
		s, err := str(e)
		if err != nil {
			return nil, err
		}
		if lower {
			s = domain(s)
		}
		out = append(out, s)
	}
	return out, nil
}

// count decodes a session count: a JSON number (RFC 8460 §4.4), or a string
// holding one as some generators send. Absent and null are 0.
func count(raw json.RawMessage) (uint64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		s = strings.TrimSpace(s)
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return n, nil
	}
	// 12.0 or 1.2e3: accept integral values.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f != math.Trunc(f) || f >= math.MaxUint64 {
		return 0, fmt.Errorf("%q is not a non-negative integer", s)
	}
	return uint64(f), nil
}

func dateRange(raw json.RawMessage) (begin, end time.Time, err error) {
	m, err := members(raw)
	if err != nil {
		return begin, end, err
	}
	if begin, err = datetime(m["start-datetime"]); err != nil {
		return begin, end, fmt.Errorf("start-datetime: %w", err)
	}
	if end, err = datetime(m["end-datetime"]); err != nil {
		return begin, end, fmt.Errorf("end-datetime: %w", err)
	}
	return begin, end, nil
}

// Layouts tried in order. RFC 8460 §4.4 says RFC 3339 date-time; Microsoft
// sends no offset (mox `tlsrpt/report.go` falls back the same way), which is
// taken as UTC. time.Parse accepts fractional seconds in all of these.
var layouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02",
}

func datetime(raw json.RawMessage) (time.Time, error) {
	s, err := str(raw)
	if err != nil {
		return time.Time{}, err
	}
	if s == "" {
		return time.Time{}, errors.New("missing")
	}
	u := strings.ToUpper(s) // "t" and "z" are allowed by RFC 3339 §5.6
	for _, l := range layouts {
		if t, err := time.Parse(l, u); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 date-time", s)
}

// domain normalises a domain name: trimmed, lower-cased, without a trailing
// dot, U-labels converted to A-labels (align.Normalize).
func domain(s string) string {
	return align.Normalize(s)
}

// ip returns the canonical text of an IP address, or s trimmed if it is not one.
func ip(s string) string {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	return s
}

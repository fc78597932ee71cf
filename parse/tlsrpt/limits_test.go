package tlsrpt

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/internal/attacktest"
)

type stream = attacktest.Stream

// heapGrowth returns the bytes allocated while f ran.
var heapGrowth = attacktest.Allocated

const reportHead = `{"organization-name":"o","report-id":"r","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},"policies":[`

const policy = `{"policy":{"policy-type":"sts","policy-domain":"example.com"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}`

// wantStop checks that err has the code and says what, and that at most
// bound bytes of the attack were read.
func wantStop(t *testing.T, err error, code parse.Code, what string, s *stream, bound int64) {
	t.Helper()
	if parse.CodeOf(err) != code || !strings.Contains(fmt.Sprint(err), what) {
		t.Fatalf("got %v (code %q), want %s saying %q", err, parse.CodeOf(err), code, what)
	}
	if s.Consumed > bound {
		t.Fatalf("read %d bytes of the attack, want at most %d: reading must stop at the limit", s.Consumed, bound)
	}
	t.Logf("stopped after %d bytes: %v", s.Consumed, err)
}

func TestAMillionFailureDetailsRowsStopAtTheRowLimit(t *testing.T) {
	row := `{"result-type":"certificate-expired","failed-session-count":1},`
	s := &stream{Head: reportHead + `{"policy":{"policy-type":"sts","policy-domain":"example.com"},"summary":{},"failure-details":[`,
		Body: row, N: 1_000_000, Tail: `{}]}]}`}
	var err error
	alloc := heapGrowth(func() { _, err = Parse(s, 0) })
	// 10,000 rows of 64 bytes, plus the reader's buffers.
	wantStop(t, err, parse.TooLarge, "more than 10000 failure-details rows", s, 10001*int64(len(row))+64<<10)
	if alloc > 64<<20 {
		t.Errorf("allocated %d MiB, want under 64 MiB", alloc>>20)
	}
	t.Logf("allocated %.1f MiB", float64(alloc)/(1<<20))
}

func TestTooManyPoliciesStopAtThePolicyLimit(t *testing.T) {
	s := &stream{Head: reportHead, Body: policy + ",", N: 1_000_000, Tail: policy + "]}"}
	_, err := ParseLimits(s, Limits{MaxPolicies: 50})
	wantStop(t, err, parse.TooLarge, "more than 50 policies", s, 51*int64(len(policy)+1)+64<<10)
}

func TestEndlessJSONStopsAtMaxBytes(t *testing.T) {
	s := &stream{Head: reportHead + policy, Body: strings.Repeat(" ", 4096), N: 1 << 30}
	_, err := ParseLimits(s, Limits{MaxBytes: 1 << 20})
	wantStop(t, err, parse.TooLarge, "more than 1 MiB of JSON", s, 1<<20+4096)
}

func TestALongStringStopsAtTheStringLimit(t *testing.T) {
	s := &stream{Head: reportHead + `{"policy":{"policy-string":["`, Body: strings.Repeat("a", 1024), N: 2, Tail: `"]}}]}`}
	_, err := ParseLimits(s, Limits{MaxStringBytes: 1000})
	wantStop(t, err, parse.TooLarge, "a JSON string longer than 1000 bytes", s, 64<<10)
}

func TestAnEndlessStringStopsAtTheStringLimit(t *testing.T) {
	s := &stream{Head: `{"organization-name":"`, Body: strings.Repeat("a", 4096), N: 1 << 20}
	var err error
	alloc := heapGrowth(func() { _, err = Parse(s, 0) })
	wantStop(t, err, parse.TooLarge, "a JSON string longer than 16384 bytes", s, 64<<10)
	if alloc > 1<<20 {
		t.Errorf("allocated %d KiB", alloc>>10)
	}
}

func TestDeepNestingStopsAtTheDepthLimit(t *testing.T) {
	s := &stream{Head: `{"policies":`, Body: "[", N: 1 << 24}
	_, err := Parse(s, 0)
	wantStop(t, err, parse.TooLarge, "nested more than 16 levels deep", s, 64<<10)
}

func TestHostileValuesAreInvalid(t *testing.T) {
	report := func(id, begin, domain, count string) string {
		return `{"organization-name":"o","report-id":` + id + `,"date-range":{"start-datetime":"` + begin +
			`","end-datetime":"2024-01-01T23:59:59Z"},"policies":[{"policy":{"policy-type":"sts","policy-domain":` + domain +
			`},"summary":{"total-successful-session-count":` + count + `,"total-failure-session-count":` + count + `}}]}`
	}
	cases := []struct{ name, in, want string }{
		{"report-id with terminal escapes", report(`"r\u001b]0;owned\u0007"`, "2024-01-01T00:00:00Z", `"example.com"`, "1"), `\x1b]0;owned\x07`},
		{"report-id too long", report(`"`+strings.Repeat("r", MaxReportIDBytes+1)+`"`, "2024-01-01T00:00:00Z", `"example.com"`, "1"), "at most 1024 bytes"},
		{"policy-domain outside DNS syntax", report(`"r"`, "2024-01-01T00:00:00Z", `"exa mple.com"`, "1"), "outside DNS syntax"},
		{"policy-domain too long", report(`"r"`, "2024-01-01T00:00:00Z", `"`+strings.Repeat("a.", 200)+`com"`, "1"), "more than 253"},
		{"date-range before 2000", report(`"r"`, "1970-01-01T00:00:00Z", `"example.com"`, "1"), "before 2000-01-01"},
		{"session counts overflow", report(`"r"`, "2024-01-01T00:00:00Z", `"example.com"`, "18446744073709551615"), "overflow"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.in), 0)
			if parse.CodeOf(err) != parse.InvalidValue || !strings.Contains(fmt.Sprint(err), c.want) {
				t.Fatalf("got %v, want invalid_value saying %q", err, c.want)
			}
			if bytes.ContainsAny([]byte(err.Error()), "\x1b\x07") {
				t.Fatalf("error carries raw control characters: %q", err)
			}
		})
	}
}

func TestMXHostsOutsideDNSSyntaxAreDropped(t *testing.T) {
	in := reportHead + `{"policy":{"policy-type":"sts","policy-domain":"example.com","mx-host":["mx: bad","*.mx.example.com","mx1.example.com"]},"summary":{}}]}`
	rep, err := Parse(strings.NewReader(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.Policies[0].MXHosts, ","); got != "*.mx.example.com,mx1.example.com" {
		t.Fatalf("mx hosts %q", got)
	}
}

func TestWhiteSpaceReachesTheLimitCheckSqueezed(t *testing.T) {
	// encoding/json's Token rescans the white space before a token on every
	// refill: 20 MiB of it took 22 s. The check sees one space per run.
	s := &stream{Head: `{"a": "x  y",`, Body: strings.Repeat(" \r\n\t", 1024), N: 5 << 10, Tail: ` "b" : 1 }`}
	out, err := io.ReadAll(&squeezeReader{r: s})
	if err != nil || string(out) != `{"a": "x  y", "b" : 1 }` {
		t.Fatalf("squeezed %d bytes of %d to %q, %v", len(out), s.Consumed, out, err)
	}
}

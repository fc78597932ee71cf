package failure

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/internal/attacktest"
)

type stream = attacktest.Stream

// parseWork parses r and returns the report, the error and the bytes
// allocated meanwhile.
func parseWork(t *testing.T, r io.Reader) (*Report, error, uint64) {
	t.Helper()
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	rep, err := Parse(r, Options{})
	runtime.ReadMemStats(&b)
	alloc := b.TotalAlloc - a.TotalAlloc
	t.Logf("%v; %.1f MiB allocated", err, float64(alloc)/(1<<20))
	return rep, err, alloc
}

// arfParts returns the text of an ARF report around a place for an attack:
// before it and after it.
func arfParts(feedback string) (string, string) {
	full := arf("multipart/report; report-type=feedback-report", "", feedback+"@@", "text/rfc822-headers", sampleOriginal)
	before, after, _ := strings.Cut(full, "@@")
	return before, after
}

func wantCode(t *testing.T, err error, code parse.Code, what string) {
	t.Helper()
	if parse.CodeOf(err) != code || !strings.Contains(fmt.Sprint(err), what) {
		t.Fatalf("error %v (code %q), want %s saying %q", err, parse.CodeOf(err), code, what)
	}
}

func TestAMillionLinePartHeaderStopsAtTheFieldLimit(t *testing.T) {
	head := "From: r@reporter.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n"
	s := &stream{Head: head, Body: "X-A: b\r\n", N: 1_000_000, Tail: "\r\nhi\r\n--b1--\r\n"}
	_, err, alloc := parseWork(t, s)
	wantCode(t, err, parse.TooLarge, "part 1 has more than 1000 header fields")
	// The 8 MB message is held (Options.MaxBytes bounds it); its header
	// is not built: go-message made a million fields of it before.
	if alloc > 64<<20 {
		t.Errorf("allocated %d MiB", alloc>>20)
	}
}

func TestAMessageHeaderOfManyFieldsStopsAtTheFieldLimit(t *testing.T) {
	s := &stream{Head: "From: r@reporter.example\r\n", Body: "X-A: b\r\n", N: 100_000, Tail: "\r\nhi\r\n"}
	_, err, _ := parseWork(t, s)
	wantCode(t, err, parse.TooLarge, "failure report: header has more than 1000 header fields")
}

func TestAMillionPartsStopAtThePartLimit(t *testing.T) {
	head := "From: r@reporter.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b1\"\r\n\r\n"
	s := &stream{Head: head, Body: "--b1\r\n\r\nx\r\n", N: 1_000_000, Tail: "--b1--\r\n"}
	_, err, alloc := parseWork(t, s)
	wantCode(t, err, parse.TooLarge, "more than 1000 MIME parts")
	if alloc > 128<<20 {
		t.Errorf("allocated %d MiB", alloc>>20)
	}
}

func TestAFieldOfManyContinuationLinesIsCutInOnePass(t *testing.T) {
	before, after := arfParts("Feedback-Type: auth-failure\r\nAuthentication-Results: r.example;")
	s := &stream{Head: before, Body: "\r\n a", N: 200_000, Tail: "\r\nReported-Domain: example.org\r\n" + after}
	var rep *Report
	var err error
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	rep, err = Parse(s, Options{MaxBytes: 64 << 20})
	runtime.ReadMemStats(&b)
	alloc := b.TotalAlloc - a.TotalAlloc
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.AuthenticationResults) != 1 || len(rep.AuthenticationResults[0]) > MaxFieldBytes {
		t.Fatalf("%d values, first of %d bytes: want one cut to %d", len(rep.AuthenticationResults), len(rep.AuthenticationResults[0]), MaxFieldBytes)
	}
	if strings.Join(rep.ReportedDomain, ",") != "example.org" {
		t.Fatalf("the field after the long one was lost: %q", rep.ReportedDomain)
	}
	// Unfolding by string concatenation copied the value once per line:
	// gigabytes for this attack.
	if alloc > 64<<20 {
		t.Errorf("allocated %d MiB", alloc>>20)
	}
}

func TestAReportedDomainOutsideDNSSyntaxIsInvalid(t *testing.T) {
	for _, d := range []string{"example.com\"'\x00!x'); SELECT 1; --", strings.Repeat("a", 300) + ".example"} {
		fb := "Feedback-Type: auth-failure\r\nReported-Domain: " + d + "\r\n"
		_, err := Parse(strings.NewReader(arf("multipart/report; report-type=feedback-report", "", fb, "text/rfc822-headers", sampleOriginal)), Options{})
		wantCode(t, err, parse.InvalidValue, "Reported-Domain")
		if strings.ContainsRune(err.Error(), 0) {
			t.Fatalf("error carries a NUL: %q", err)
		}
	}
}

func TestAHugeFeedbackPartIsTooLarge(t *testing.T) {
	before, after := arfParts("Feedback-Type: auth-failure\r\nAuthentication-Results: r.example; ")
	s := &stream{Head: before, Body: strings.Repeat("dkim=fail ", 1024), N: 200, Tail: "\r\n" + after} // 2 MiB
	_, err, _ := parseWork(t, s)
	wantCode(t, err, parse.TooLarge, "message/feedback-report part over 1048576 bytes")
}

func TestOtherDomainsOutsideDNSSyntaxAreDroppedAndBadDatesAbsent(t *testing.T) {
	fb := "Feedback-Type: auth-failure\r\nUser-Agent: x/1\r\nVersion: 1\r\nAuth-Failure: dmarc\r\n" +
		"Arrival-Date: Thu, 1 Jan 2099 00:00:00 +0000\r\n" +
		"Reported-Domain: Example.ORG.\r\n" +
		"DKIM-Domain: \"><script>.example\r\nReporting-MTA: dns; mx.reporter.example\r\n"
	orig := "From: Author <author@" + strings.Repeat("a.", 150) + "org>\r\nSubject: hello\r\n" // 303 bytes: over 253
	rep, err := Parse(strings.NewReader(arf("multipart/report; report-type=feedback-report", "", fb, "text/rfc822-headers", orig)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.ReportedDomain, ",") != "example.org" || rep.DKIMDomain != "" || rep.Original.FromDomain != "" {
		t.Errorf("reported %q, dkim %q, from domain %q: want only example.org kept", rep.ReportedDomain, rep.DKIMDomain, rep.Original.FromDomain)
	}
	if !rep.ArrivalDate.IsZero() || rep.ReportingMTA != "mx.reporter.example" {
		t.Errorf("arrival %v, reporting MTA %q: want a date in 2099 absent", rep.ArrivalDate, rep.ReportingMTA)
	}
}

// TestDKIMDomainKeepsEveryValidDomainOfAList pins a real reporter's
// "DKIM-Domain: ietf.org; example.net" (one domain per failed signature):
// the list is kept, a hostile member dropped.
func TestDKIMDomainKeepsEveryValidDomainOfAList(t *testing.T) {
	for in, want := range map[string]string{
		"ietf.org; example.net":                "ietf.org; example.net",
		"Example.ORG.":                         "example.org",
		"ietf.org; \"><script>.x, example.net": "ietf.org; example.net",
		"\"><script>.example":                  "",
	} {
		if got := normDomainList(in); got != want {
			t.Errorf("normDomainList(%q) = %q, want %q", in, got, want)
		}
	}
}

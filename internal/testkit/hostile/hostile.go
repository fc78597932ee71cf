// Package hostile builds the inputs an attacker can send dmarcd: anyone can
// mail a published rua/ruf address or drop an object into the bucket that
// Amazon SES writes to, so every byte of a report is attacker-controlled.
// Each Attack streams its bytes from a generator parametrised by size (it
// is never held in memory), so a test can use a size that shows a limit at
// work and the benchmark (scripts/bench-hostile.sh) sizes up to
// limits.max_message_bytes (64 MiB) of input that expand to gigabytes.
//
// The attacks are run through `dmarcd ingest --json` and `dmarcd serve`
// by this package's tests, which assert each outcome (status and reason
// code), the peak memory and CPU of the process, that a good report ingested
// after the attack is stored, and that nothing of the attack is.
package hostile

import (
	"bufio"
	"io"
)

// Kind groups attacks by what they aim at.
type Kind string

const (
	Aggregate Kind = "aggregate" // the XML of an aggregate report (RFC 7489 appendix C)
	TLSRPT    Kind = "tlsrpt"    // the JSON of an SMTP TLS report (RFC 8460)
	MIME      Kind = "mime"      // mail structure and containers (RFC 5322, 2045-2046; gzip, zip)
	Failure   Kind = "failure"   // failure reports (RFC 6591 ARF)
	Transport Kind = "transport" // how the bytes arrive: pipes, sizes
)

// Want is the outcome an attack must end with.
type Want struct {
	Status string   // "invalid" (set aside with a reason) for every attack
	Codes  []string // reason codes accepted (parse/errors.go)
}

// Attack is one hostile input.
type Attack struct {
	Name string // short, for file names and test names
	Kind Kind
	What string // what the input is, and the size's unit
	// Ext is the file name ending the input is written with (".xml.gz",
	// ".eml", ...). dmarcd sniffs content, so it only helps people.
	Ext string
	// Mail is set when the input is an RFC 5322 message; the others are
	// bare files (report documents, archives) that AsMail wraps for IMAP.
	Mail bool
	// Stdin: the input is piped into `dmarcd ingest -`, not written to a
	// file. Such an attack's size may be 0 for a stream without end.
	Stdin bool
	// TestSize is the size the tests use: past the limit the attack hits
	// (at the test's limits, see TestLimits) but quick to run. BenchSize is
	// the benchmark's: at most 64 MiB of input at the default limits.
	TestSize, BenchSize int64
	Want                Want
	// Pending says why this attack still wins on the current code: the
	// tests log its outcome instead of asserting it. Empty when it is
	// answered.
	Pending string
	// HeldWhole: dmarcd holds this input in memory by design (a mail is
	// read whole, up to limits.max_message_bytes, before its parts are
	// walked), so its bound is the 200 MB for any input up to
	// 64 MiB rather than the 100 MB of inputs that stream.
	HeldWhole bool

	write func(w io.Writer, size int64) error
}

// WriteTo writes the attack at the size given to w.
func (a Attack) Write(w io.Writer, size int64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := a.write(bw, size); err != nil {
		return err
	}
	return bw.Flush()
}

// Open returns the attack at the size given as a stream, generated while it
// is read. Close it to stop the generator early.
func (a Attack) Open(size int64) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(a.Write(pw, size)) }()
	return pr
}

// AsMail writes the attack at the size given as a report mail: a mail
// attack as it is, a bare file as a base64 attachment (how report mails
// carry them), for sources that only take mail (IMAP).
func (a Attack) AsMail(w io.Writer, size int64) error {
	if a.Mail {
		return a.Write(w, size)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	ctype := "application/octet-stream"
	switch a.Ext {
	case ".xml.gz", ".json.gz", ".gz":
		ctype = "application/gzip"
	case ".zip":
		ctype = "application/zip"
	case ".xml":
		ctype = "text/xml"
	case ".json":
		ctype = "application/tlsrpt+json"
	}
	err := writeMailWith(bw, "Report Domain: example.com Submitter: hostile.test Report-ID: "+a.Name,
		ctype, a.Name+a.Ext, func(w io.Writer) error { return a.write(w, size) })
	if err != nil {
		return err
	}
	return bw.Flush()
}

// Find returns the attack with the name given.
func Find(name string) (Attack, bool) {
	for _, a := range All() {
		if a.Name == name {
			return a, true
		}
	}
	return Attack{}, false
}

// TestLimits are the limits the tests run dmarcd with (environment
// variables of internal/lib/config): the decompression limits lowered so that a
// bomb proves them in a fraction of a second instead of inflating the
// default 1 GiB; everything else is at its default. The benchmark runs at
// the defaults.
var TestLimits = []string{
	"DMARCD_LIMITS_MAX_MEMBER_BYTES=64MiB",
	"DMARCD_LIMITS_MAX_TOTAL_BYTES=128MiB",
}

// MiB is 1 << 20.
const MiB = 1 << 20

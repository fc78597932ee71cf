// Package extract finds the report payloads in an input's bytes: a raw email
// (RFC 5322, MIME per RFC 2045/2046), a bare XML or JSON file, a gzip stream
// (RFC 1952) or a zip archive, nested in any order. Detection is by sniffing
// bytes, never by declared media type or file name (RFC 7489 §7.2.1.1 and
// RFC 9990 §3.5.2 prescribe types that real senders do not follow; see
// docs/standards.md §2.2 and §6.1), and every container is opened within
// Limits.
//
// Decompressed payloads are streamed to the caller: a gzip-compressed report
// of any size passes through with flat memory. Zip archives need random access,
// so their compressed bytes are buffered (at most Limits.MaxMessageBytes), and
// so is an email (which Failure payloads hand over whole).
package extract

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"

	"github.com/dmarcd/dmarcd/parse"
)

// Kind is the kind of report a payload holds.
type Kind string

const (
	// Aggregate is DMARC aggregate report XML (RFC 7489 App. C, RFC 9990):
	// bytes starting with '<' (after a BOM and white space) with a <feedback>
	// element in their first 64 KiB. The aggregate parser does the real check.
	Aggregate Kind = "aggregate"
	// TLSRPT is an SMTP TLS report (RFC 8460 §4): JSON, first non-space byte '{'.
	TLSRPT Kind = "tlsrpt"
	// Failure is a DMARC failure report (RFC 6591, RFC 9991): an email with a
	// message/feedback-report part (any Feedback-Type), or a multipart/report
	// whose text plainly is a DMARC failure notice (Exim). The payload is the
	// whole message.
	Failure Kind = "failure"
)

// Limits bound the work one input may cause. They are checked while
// reading: a walk past a limit reads and inflates no more of the input. A
// zero field takes its default.
type Limits struct {
	MaxMessageBytes int64 // any email or zip archive (held in memory); default 64 MiB
	MaxMemberBytes  int64 // decompressed bytes of one gzip stream or zip member; default 1 GiB
	// MaxTotalBytes is the decompressed bytes in all of one input, every
	// level of nesting counted (an archive inside an archive is counted
	// once as the inner archive's bytes and again as its members'), and an
	// embedded message's copy too; default 2 GiB.
	MaxTotalBytes int64
	MaxZipMembers int // files in one zip archive; default 64
	MaxDepth      int // nesting of containers, messages and multiparts; default 8
	// MaxRatio bounds the work of decompression against the input: past
	// ratioAllowance (16 MiB), at most MaxRatio decompressed bytes per input
	// byte read so far; default 250. Real reports compress 10 to 50 times;
	// a 42.zip-style bomb (nested archives, 4 PB from 42 KB) stops after
	// about 26 MiB of inflation.
	MaxRatio int64
	// MaxContainers is the number of containers opened in one input, at
	// every level: gzip members, zip archives and members, embedded
	// messages; default 256 (a real report mail opens one to three).
	MaxContainers int
	// MaxParts is the number of MIME parts read in one input, every
	// multipart at every level and the failure-report check's look at them
	// counted; default 1,000 (a report mail has two to five).
	MaxParts int
	// MaxHeaderFields is the number of fields in one header block (an
	// email's or a MIME part's); default 1,000.
	MaxHeaderFields int
	// MaxHeaderBytes is the size of one header block; default 1 MiB (the
	// bound go-message's message.Read applies to a message header).
	MaxHeaderBytes int64
	// MaxHeaderLineBytes is the length of one line of a header block
	// (RFC 5322 §2.1.1 allows 998 characters; long encoded subjects and
	// unfolded signatures exceed that); default 64 KiB.
	MaxHeaderLineBytes int64
}

// ratioAllowance is the decompression every input may do whatever its size,
// before MaxRatio applies.
const ratioAllowance = 16 << 20

// DefaultMaxMessageBytes is the default of Limits.MaxMessageBytes (64 MiB):
// the largest mail read whole, which the pipeline's hashing and the report
// verifier take as their default bound too.
const DefaultMaxMessageBytes = 64 << 20

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:    DefaultMaxMessageBytes,
		MaxMemberBytes:     1 << 30,
		MaxTotalBytes:      2 << 30,
		MaxZipMembers:      64,
		MaxDepth:           8,
		MaxRatio:           250,
		MaxContainers:      256,
		MaxParts:           1000,
		MaxHeaderFields:    1000,
		MaxHeaderBytes:     1 << 20,
		MaxHeaderLineBytes: 64 << 10,
	}
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits { return l.withDefaults() }

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	set64(&l.MaxMessageBytes, d.MaxMessageBytes)
	set64(&l.MaxMemberBytes, d.MaxMemberBytes)
	set64(&l.MaxTotalBytes, d.MaxTotalBytes)
	set(&l.MaxZipMembers, d.MaxZipMembers)
	set(&l.MaxDepth, d.MaxDepth)
	set64(&l.MaxRatio, d.MaxRatio)
	set(&l.MaxContainers, d.MaxContainers)
	set(&l.MaxParts, d.MaxParts)
	set(&l.MaxHeaderFields, d.MaxHeaderFields)
	set64(&l.MaxHeaderBytes, d.MaxHeaderBytes)
	set64(&l.MaxHeaderLineBytes, d.MaxHeaderLineBytes)
	return l
}

// Payload is one report found in an input.
type Payload struct {
	Kind Kind
	// Where is the path inside the input, e.g.
	// `part 2 "google.com!x!1!2.zip" > zip member "google.com!x!1!2.xml"`;
	// "" for a bare file at the top level.
	Where string
	// Filename is the innermost file name, if any (MIME filename/name
	// parameter, zip member name, gzip header name).
	Filename string
	// R streams the decompressed payload. It is valid until the next call
	// of Reader.Next or Reader.Close. Reads past a limit return a *parse.Error with code
	// DecompressionLimit (or TooLarge for the input itself); a corrupt or
	// truncated container yields BadArchive or Truncated.
	R io.Reader
	// Mail holds headers of the innermost email carrying the payload; nil for
	// bare files.
	Mail *MailInfo
	// Repairs says which malformed MIME header lines of the input, up to
	// this payload, were read leniently (repair.go), e.g. `part 2: header
	// line "name=\"a.xml.gz\"" is not a field: read as a continuation of
	// the field before it (Content-Type)`; nil when none were. At most
	// maxInputRepairs, hostile bytes escaped.
	Repairs []string
}

// MailInfo holds the headers of a carrying email.
type MailInfo struct {
	Subject   string // RFC 2047 decoded
	From      string // address of the first From mailbox, or the raw value
	MessageID string // without angle brackets
	Date      time.Time
}

// sniffLen is how much of a stream is looked at to decide what it is.
const sniffLen = 64 << 10

// Reader yields the payloads of one input in order, as a walk of the input
// finds them: the caller pulls the next payload when it is done with the
// last, and the walk waits meanwhile (it reads the input no further than
// the payload handed out). Memory stays flat as in the walk itself. A
// Reader is for one goroutine; Close it when done.
type Reader struct {
	next func() (*Payload, bool)
	stop func()
	end  error // how the walk ended: nil, or the reason nothing was found
	err  error // what Next returns once the walk has ended
}

// errClosed ends a walk whose Reader was closed, and is what Next returns
// after Close.
var errClosed = errors.New("extract: Reader closed")

// NewReader returns a Reader of the payloads in r, every container opened
// within lim. Nothing is read before the first Next.
func NewReader(r io.Reader, lim Limits) *Reader {
	x := &Reader{}
	x.next, x.stop = iter.Pull(func(yield func(*Payload) bool) {
		x.end = walk(r, lim, yield)
	})
	return x
}

// Next returns the next payload. Its R is valid until the next call of
// Next or Close. After the last payload Next returns io.EOF; when the input
// held none, it returns a *parse.Error instead: NotAReport with the reason
// ("email has no report attachment (parts: text/html)", "empty input",
// "bytes are neither email, XML, JSON, gzip nor zip"), or the error of a
// corrupt candidate: BadArchive, Truncated, DecompressionLimit, TooLarge,
// MIMESyntax. A corrupt candidate beside a good one does not prevent the
// good one from being delivered, and its error is then not returned. Once
// the walk has ended every call returns the same error.
func (x *Reader) Next() (*Payload, error) {
	if x.err != nil {
		return nil, x.err
	}
	if p, ok := x.next(); ok {
		return p, nil
	}
	x.err = x.end
	if x.err == nil {
		x.err = io.EOF
	}
	return nil, x.err
}

// Close ends the walk: the rest of the input is not read, and what the walk
// opened (a zip member) is closed. Next then returns an error. Close always
// returns nil; calling it again does nothing.
func (x *Reader) Close() error {
	x.stop()
	if x.err == nil {
		x.err = errClosed
	}
	return nil
}

// walk sniffs r and yields every payload found, in order, until yield
// returns false (then it returns errClosed). Its error is that of
// Reader.Next, nil when a payload was found.
func walk(r io.Reader, lim Limits, yield func(*Payload) bool) error {
	w := &walker{lim: lim.withDefaults(), yield: yield}
	if observeWalk != nil {
		defer observeWalk(w)
	}
	// Emails and zip archives are held in memory and bounded by
	// MaxMessageBytes where they are read; a bare XML, JSON or gzip stream
	// passes through, so the input as a whole is bounded by the larger of
	// that and MaxTotalBytes (a 700 MB bare report must get through).
	in := &inputReader{r: r, max: max(w.lim.MaxMessageBytes, w.lim.MaxTotalBytes)}
	w.in = in
	br := bufio.NewReaderSize(in, sniffLen)
	if err := w.sniff(br, node{top: true}); err != nil {
		return err
	}
	if w.found > 0 {
		return nil
	}
	if w.over != nil {
		return w.over
	}
	if w.failed != nil {
		return w.failed
	}
	if w.notReport != nil {
		return w.notReport
	}
	return parse.Errorf(parse.NotAReport, "no report found")
}

// observeWalk, when set (by tests), sees each walker when its walk ends: the
// work it did (bytes inflated, containers opened, parts read).
var observeWalk func(*walker)

// walker holds the state of one walk.
type walker struct {
	lim         Limits
	yield       func(*Payload) bool
	in          *inputReader
	total       int64 // decompressed bytes so far
	opened      int   // containers opened
	parts       int   // MIME parts read
	over        error // a work limit passed: the walk opens and reads nothing more
	found       int
	failed      error    // first error of a corrupt candidate
	notReport   error    // first reason a candidate is not a report
	repairs     []string // header repairs made so far (repair.go)
	moreRepairs int      // repairs past maxInputRepairs
}

// node describes where a stream sits in the input.
type node struct {
	where    string    // path so far
	filename string    // innermost file name
	mail     *MailInfo // innermost carrying email
	depth    int       // containers entered
	top      bool      // the input itself
	declared string    // declared media type of the MIME part, "" outside MIME
	textual  bool      // a text/* MIME part: be stricter about what counts
}

// maxInputRepairs is how many header repairs one input notes; the rest are
// counted in a last note.
const maxInputRepairs = 16

// repaired notes header repairs made in the input.
func (w *walker) repaired(notes []string) {
	for _, n := range notes {
		switch {
		case len(w.repairs) < maxInputRepairs:
			w.repairs = append(w.repairs, n)
		default:
			w.moreRepairs++
		}
	}
}

// repairNotes is the repairs noted so far, for a payload.
func (w *walker) repairNotes() []string {
	if len(w.repairs) == 0 {
		return nil
	}
	out := append([]string(nil), w.repairs...)
	if w.moreRepairs > 0 {
		out = append(out, fmt.Sprintf("%d more header repairs", w.moreRepairs))
	}
	return out
}

// child returns n one level down, at seg.
func (n node) child(seg string) node {
	c := n
	c.top = false
	c.declared = ""
	c.textual = false
	if seg != "" {
		if c.where == "" {
			c.where = seg
		} else {
			c.where += " > " + seg
		}
	}
	return c
}

// at prefixes msg with the node's place.
func (n node) at(msg string) string {
	if n.where == "" {
		return msg
	}
	return n.where + ": " + msg
}

// fail records the error of a corrupt candidate; the first one wins.
func (w *walker) fail(err error) {
	if parse.CodeOf(err) == parse.NotAReport {
		w.skip(err)
		return
	}
	if w.failed == nil {
		w.failed = err
	}
}

// skip records why a candidate is not a report; the first reason wins.
func (w *walker) skip(err error) {
	if w.notReport == nil {
		w.notReport = err
	}
}

// enter checks the nesting limit before n opens another container.
func (w *walker) enter(n node, what string) bool {
	if w.over != nil {
		return false
	}
	if n.depth >= w.lim.MaxDepth {
		w.fail(parse.Errorf(parse.TooLarge, "%s", n.at(fmt.Sprintf("%s nested more than %d levels deep", what, w.lim.MaxDepth))))
		return false
	}
	return true
}

// open counts one container opened (a gzip member, a zip archive or member,
// an embedded message) against MaxContainers.
func (w *walker) open(n node, what string) bool {
	if w.over != nil {
		return false
	}
	w.opened++
	if w.opened > w.lim.MaxContainers {
		w.stop(parse.Errorf(parse.DecompressionLimit, "%s", n.at(fmt.Sprintf("%s: more than %d containers opened in one input", what, w.lim.MaxContainers))))
		return false
	}
	return true
}

// stop ends the walk at a work limit: nothing more is opened or read.
func (w *walker) stop(err error) {
	if w.over == nil {
		w.over = err
	}
	w.fail(err)
}

// deliver hands one payload to the Reader; errClosed when it was closed.
func (w *walker) deliver(k Kind, r io.Reader, n node) error {
	w.found++
	p := &Payload{Kind: k, Where: n.where, Filename: n.filename, R: r, Mail: n.mail, Repairs: w.repairNotes()}
	if !w.yield(p) {
		return errClosed
	}
	return nil
}

// sniff decides what br holds and dispatches on it. It returns only the
// error that ends the walk (errClosed); a candidate's own trouble is
// recorded.
func (w *walker) sniff(br *bufio.Reader, n node) error {
	if w.over != nil {
		return nil
	}
	head, err := br.Peek(sniffLen)
	if err != nil && err != io.EOF && len(head) == 0 {
		w.fail(readError(n, "", err))
		return nil
	}
	if len(head) == 0 {
		if n.top {
			w.skip(parse.Errorf(parse.NotAReport, "empty input"))
		} else if !n.textual {
			w.skip(parse.Errorf(parse.NotAReport, "%s", n.at("empty")))
		}
		return nil
	}
	kind := sniffBytes(head, n.textual)
	if err != nil && err != io.EOF && kind != kindGzip && kind != kindZip && kind != kindAggregate && kind != kindTLSRPT {
		// What could be read says nothing: the reason is the read error
		// (a corrupt or truncated container, a limit).
		w.fail(readError(n, "", err))
		return nil
	}
	switch kind {
	case kindGzip:
		return w.gzip(br, n)
	case kindZip:
		data, err := readAll(br, w.lim.MaxMessageBytes, n, "zip archive")
		if err != nil {
			w.fail(err)
			return nil
		}
		return w.zip(data, n)
	case kindAggregate:
		return w.deliver(Aggregate, br, n)
	case kindTLSRPT:
		return w.deliver(TLSRPT, br, n)
	case kindEmail:
		data, err := readAll(newMessageGuard(br, w.lim, n.at("email")), w.lim.MaxMessageBytes, n, "email")
		if err != nil {
			w.fail(err)
			return nil
		}
		return w.email(data, n)
	case kindXML:
		w.skip(parse.Errorf(parse.NotAReport, "%s", n.at("XML without a DMARC <feedback> element")))
		return nil
	}
	if n.declared != "" && isDeclaredArchive(n.declared, n.filename) {
		what := "a gzip stream"
		if strings.Contains(n.declared, "zip") || strings.HasSuffix(strings.ToLower(n.filename), ".zip") {
			what = "a zip archive"
		}
		decl := n.declared
		if !isDeclaredArchive(n.declared, "") {
			decl = fmt.Sprintf("%s %q", n.declared, n.filename)
		}
		w.fail(parse.Errorf(parse.BadArchive, "%s", n.at(fmt.Sprintf("declared %s but the bytes are not %s", decl, what))))
		return nil
	}
	if n.textual {
		return nil // an annotation: the email summary says why nothing was found
	}
	if n.top {
		w.skip(parse.Errorf(parse.NotAReport, "bytes are neither email, XML, JSON, gzip nor zip"))
	} else if n.declared == "" {
		w.skip(parse.Errorf(parse.NotAReport, "%s", n.at(fmt.Sprintf("content is neither XML, JSON, gzip nor zip (starts %q)", prefix(head, 16)))))
	}
	return nil
}

// prefix returns at most n bytes of b.
func prefix(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// readAll reads all of r into memory, at most max bytes.
func readAll(r io.Reader, max int64, n node, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, readError(n, what, err)
	}
	if int64(len(data)) > max {
		return nil, parse.Errorf(parse.TooLarge, "%s", n.at(fmt.Sprintf("%s larger than %s", what, size(max))))
	}
	return data, nil
}

// readError turns an error from reading a candidate into a *parse.Error.
func readError(n node, what string, err error) error {
	var pe *parse.Error
	if errors.As(err, &pe) {
		return err
	}
	if what == "" {
		what = "reading"
	}
	return parse.Wrap(parse.InputUnreadable, err, "%s", n.at(what))
}

// inputReader bounds the input itself: reads past max return TooLarge.
type inputReader struct {
	r   io.Reader
	max int64
	n   int64
	err error
}

func (r *inputReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.n >= r.max {
		var one [1]byte
		k, err := io.ReadFull(r.r, one[:])
		if k > 0 {
			r.err = parse.Errorf(parse.TooLarge, "input larger than %s", size(r.max))
			return 0, r.err
		}
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return 0, err
	}
	if int64(len(p)) > r.max-r.n {
		p = p[:r.max-r.n]
	}
	k, err := r.r.Read(p)
	r.n += int64(k)
	if err != nil && err != io.EOF {
		var pe *parse.Error
		if !errors.As(err, &pe) {
			err = parse.Wrap(parse.InputUnreadable, err, "reading input")
		}
	}
	return k, err
}

// size formats a byte count for messages: "20 MiB", "1 GiB", "1000 bytes".
func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

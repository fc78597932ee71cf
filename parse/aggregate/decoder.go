package aggregate

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dmarcd/dmarcd/parse"
)

// Limits bound what one report may cost. Every byte of a report is
// attacker-controlled (anyone can mail the rua address), so each limit is
// enforced while reading: the decoder's memory is proportional to the limits,
// never to the input, and exceeding one ends the report with parse.TooLarge
// and a message naming the element and the limit. Zero values mean the
// defaults.
type Limits struct {
	// MaxRecords is the number of records in one report (default 2,000,000).
	MaxRecords int
	// MaxDepth is the element depth of the document (default 64).
	MaxDepth int
	// MaxValueBytes is the length of one element's value after decoding
	// (default 64 KiB: org_name, extra_contact_info and reason comments, the
	// longest values real reports carry, are under 200 bytes).
	MaxValueBytes int
	// MaxTokenBytes is the input length of one XML token (default 64 KiB): a
	// start tag with its attributes, an element name, an end tag, a run of
	// character data (the white space between elements included), a comment,
	// a processing instruction, a CDATA section or a directive. Content that
	// is skipped is counted the same: a 1 GB comment stops here.
	MaxTokenBytes int
	// MaxUnknownBytes is the input length of one element the decoder does
	// not know (an extension, an unknown element with all it contains), and
	// of everything before <feedback> (default 1 MiB).
	MaxUnknownBytes int
	// MaxHeaderBytes is the input length from <feedback> until the header
	// (report_metadata and policy_published) is complete (default 1 MiB; a
	// real header is under 2 KiB). It bounds the records held when a reporter
	// sends records before the header, and repeated header elements.
	MaxHeaderBytes int
	// MaxResults is the number of DKIM results, SPF results and override
	// reasons in one record, each (default 100; real records carry 1 to 3).
	MaxResults int
	// MaxCount is the message count of one record (default 2^32-1): a larger
	// count sets the record aside (Record.Invalid), as a count whose sum over
	// the report would overflow does.
	MaxCount uint64

	now func() time.Time // the present, for date checks; tests set it
}

// Default limits.
const (
	DefaultMaxRecords      = 2_000_000
	DefaultMaxDepth        = 64
	DefaultMaxValueBytes   = 64 << 10
	DefaultMaxTokenBytes   = 64 << 10
	DefaultMaxUnknownBytes = 1 << 20
	DefaultMaxHeaderBytes  = 1 << 20
	DefaultMaxResults      = 100
	DefaultMaxCount        = 1<<32 - 1
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxRecords, DefaultMaxRecords)
	def(&l.MaxDepth, DefaultMaxDepth)
	def(&l.MaxValueBytes, DefaultMaxValueBytes)
	def(&l.MaxTokenBytes, DefaultMaxTokenBytes)
	def(&l.MaxUnknownBytes, DefaultMaxUnknownBytes)
	def(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	def(&l.MaxResults, DefaultMaxResults)
	if l.MaxCount == 0 {
		l.MaxCount = DefaultMaxCount
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// tokenizer is an XML tokenizer feeding a builder: the fast scanner
// (scan.go) or the encoding/xml reference (reference.go).
type tokenizer interface {
	// run feeds tokens to b until b.ready is set, the document ends or an
	// error occurs. At the end of input it returns errEOF.
	run(b *builder) error
	// line is the current line number, for error messages.
	line() int
}

// Decoder reads one aggregate report as a stream: Header first, then one
// Record per call to Next. Memory stays flat whatever the number of records,
// except that records which come before the header is complete (an
// element-order violation) are held until it is, up to Limits.MaxRecords.
//
// The decoder accepts exactly the well-formed XML that encoding/xml accepts,
// refuses any DOCTYPE (no entity is ever expanded: RFC 9990 §8.1) and stops
// reading at </feedback>. Errors are *parse.Error.
type Decoder struct {
	r   io.Reader
	lim Limits
	b   *builder
	tok tokenizer
	err error   // sticky
	eof bool    // </feedback> seen
	hdr *Header // once final
}

// NewDecoder returns a decoder reading the report from r.
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	return newDecoder(r, lim, false)
}

// newDecoder returns a fast decoder, or the encoding/xml reference decoder
// if reference is set.
func newDecoder(r io.Reader, lim Limits, reference bool) *Decoder {
	if reference {
		return newDecoderBuf(r, lim, 0)
	}
	return newDecoderBuf(r, lim, scanBufSize)
}

// newDecoderBuf returns the reference decoder if bufSize is 0, else a fast
// decoder whose scanner starts with a buffer of bufSize bytes (tests use
// tiny ones to exercise refills).
func newDecoderBuf(r io.Reader, lim Limits, bufSize int) *Decoder {
	lim = lim.withDefaults()
	d := &Decoder{r: r, lim: lim, b: newBuilder(lim)}
	if bufSize == 0 {
		d.tok = newRefTokenizer(r, lim)
	} else {
		d.tok = newScanner(r, bufSize, lim)
	}
	return d
}

// fill runs the tokenizer until the builder has something to hand out.
func (d *Decoder) fill() error {
	if d.err != nil {
		return d.err
	}
	d.b.ready = false
	err := d.tok.run(d.b)
	if err == errFallback {
		// The fast scanner met a declared encoding other than UTF-8 before
		// any element: the reference decoder takes the whole document over.
		s := d.tok.(*scanner)
		d.tok = newRefTokenizer(io.MultiReader(s.replay(), d.r), d.lim)
		err = d.tok.run(d.b)
	}
	if err != nil {
		d.err = d.wrap(err)
		return d.err
	}
	if d.b.state == fbDone {
		d.eof = true
	}
	return nil
}

// wrap turns a tokenizer or builder error into the *parse.Error returned.
// Tokenizer errors carry their line already; builder errors get it here.
func (d *Decoder) wrap(err error) error {
	if err == errEOF {
		err = d.b.eof()
		if d.b.state == fbBefore {
			return err
		}
	}
	var pe *parse.Error
	if !errors.As(err, &pe) {
		return parse.Wrap(parse.InputUnreadable, err, "reading report")
	}
	switch pe.Code {
	case parse.TooLarge, parse.Truncated:
		return &parse.Error{Code: pe.Code, Msg: fmt.Sprintf("line %d: %s", d.tok.line(), pe.Msg), Err: pe.Err}
	}
	return pe
}

// Header reads until the first <record> (or the end of <feedback>) and
// returns report_metadata and policy_published. If records come before the
// header is complete, they are held until it is.
func (d *Decoder) Header() (*Header, error) {
	if d.hdr != nil {
		return d.hdr, nil
	}
	for !d.b.hdrFinal {
		if err := d.fill(); err != nil {
			return nil, err
		}
	}
	if d.b.hdrErr != nil {
		return nil, d.b.hdrErr
	}
	h := d.b.hdr
	d.hdr = &h
	return d.hdr, nil
}

// Next returns the next record (Index set, 0-based), or io.EOF after
// </feedback> was seen. It calls Header first if that was not done.
func (d *Decoder) Next() (*Record, error) {
	if d.hdr == nil {
		if _, err := d.Header(); err != nil {
			return nil, err
		}
	}
	for {
		if r, ok := d.b.next(); ok {
			return r, nil
		}
		if d.eof {
			return nil, io.EOF
		}
		if err := d.fill(); err != nil {
			return nil, err
		}
	}
}

// Parse reads a whole report into memory (for `dmarcd parse` and tests).
// On error it returns what was read before the error too.
func Parse(r io.Reader, lim Limits) (*Header, []Record, error) {
	return parseWith(NewDecoder(r, lim))
}

func parseWith(d *Decoder) (*Header, []Record, error) {
	h, err := d.Header()
	if err != nil {
		return nil, nil, err
	}
	var recs []Record
	for {
		r, err := d.Next()
		if err == io.EOF {
			return h, recs, nil
		}
		if err != nil {
			return h, recs, err
		}
		recs = append(recs, *r)
	}
}

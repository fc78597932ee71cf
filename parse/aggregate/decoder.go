package aggregate

import (
	"errors"
	"fmt"
	"io"

	"github.com/dmarcd/dmarcd/parse"
)

// Limits bound what one report may cost. Zero values mean the defaults.
type Limits struct {
	MaxRecords int // records per report; 0 = default 2,000,000
	MaxDepth   int // XML element depth; 0 = default 64
}

// Default limits.
const (
	DefaultMaxRecords = 2_000_000
	DefaultMaxDepth   = 64
)

func (l Limits) withDefaults() Limits {
	if l.MaxRecords <= 0 {
		l.MaxRecords = DefaultMaxRecords
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
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
		d.tok = newRefTokenizer(r)
	} else {
		d.tok = newScanner(r, bufSize)
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
		d.tok = newRefTokenizer(io.MultiReader(s.replay(), d.r))
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

package extract

import (
	"bytes"
	"fmt"
	"io"

	"github.com/dmarcd/dmarcd/parse/valid"
)

// Header repair. A header block (a mail's or a MIME part's) is a run of
// fields, "name: value" (RFC 5322 §2.2), each continued by lines starting
// with white space (§2.2.3), ended by a blank line. Real senders break that:
// Outlook has been seen to write a Content-Type parameter on a line of its
// own without the leading white space of a fold (`name="x.xml.gz"`), and
// other lines turn up that are no field at all. go-message's part reader
// stops the whole multipart at such a line, losing that part and every part
// after it. Mail clients show the part. So does dmarcd, by these rules, each
// repair noted in Payload.Repairs:
//
//   - a line that reads as a MIME parameter (attribute "=" value, RFC 2045
//     §5.1), right after a field, continues that field: the fold's white
//     space is put back;
//   - any other line that is neither a field nor a continuation, a
//     continuation that continues no field, and the continuations of a
//     dropped line, are dropped;
//   - in a multipart, a delimiter line met inside a part's header block ends
//     that block (as if the blank line were there) and starts the next part.
//
// Body lines are never changed.

// maxRepairNotes is how many repairs one header repairer notes; the rest are
// counted in a last note. A real mail needs one or two.
const maxRepairNotes = 8

// lineKind classifies one header line, without its line end.
type lineKind uint8

const (
	lineField lineKind = iota // "name: value" with a valid name
	lineCont                  // starts with white space: continues a field
	lineParam                 // attribute=value: a fold that lost its white space
	lineJunk                  // anything else
)

// headerLine classifies l, one line of a header block without its line end.
func headerLine(l []byte) lineKind {
	if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
		return lineCont
	}
	if isParamLine(l) {
		return lineParam
	}
	i := bytes.IndexByte(l, ':')
	if i > 0 && validFieldName(bytes.TrimRight(l[:i], " \t")) {
		return lineField
	}
	return lineJunk
}

// isParamLine reports whether l starts as a MIME parameter: an attribute
// (RFC 2045 §5.1 token; RFC 2231 §3 adds "*" sections), optional white
// space, "=". A field name never holds "=" in practice, and since ":" is not
// a token character this is tested before the field syntax: a quoted file
// name with a colon in it stays a parameter.
func isParamLine(l []byte) bool {
	j := 0
	for j < len(l) && isTokenChar(l[j]) {
		j++
	}
	if j == 0 {
		return false
	}
	for j < len(l) && (l[j] == ' ' || l[j] == '\t') {
		j++
	}
	return j < len(l) && l[j] == '='
}

// isTokenChar reports whether c may be part of an RFC 2045 §5.1 token: any
// printable US-ASCII character except tspecials.
func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=':
		return false
	}
	return true
}

// lineState is what became of the previous line of a header block.
type lineState uint8

const (
	lastNone    lineState = iota // the block has just begun
	lastKept                     // a field (or its continuation) kept
	lastDropped                  // a line (or its continuation) dropped
)

// headerFixer applies the repair rules to the lines of one header block.
type headerFixer struct {
	last  lineState
	field string // name of the last field kept, for notes
	notes []string
	more  int // repairs past maxRepairNotes
}

// line decides what becomes of l (one header line without its line end):
// the bytes to write in its place (nil: drop it; with a leading space: a
// fold restored), noting any repair with the prefix where.
func (f *headerFixer) line(l []byte, where string) []byte {
	switch headerLine(l) {
	case lineField:
		f.last = lastKept
		i := bytes.IndexByte(l, ':')
		f.field = string(bytes.TrimRight(l[:min(i, 64)], " \t"))
		return l
	case lineCont:
		switch f.last {
		case lastKept:
			return l
		case lastNone:
			f.note(where, l, "continues no field: dropped")
			f.last = lastDropped
		}
		return nil
	case lineParam:
		if f.last == lastKept {
			f.note(where, l, "is not a field: read as a continuation of the field before it ("+valid.Printable(f.field)+")")
			return append([]byte{' '}, l...)
		}
	}
	f.note(where, l, "is not a header field: dropped")
	f.last = lastDropped
	return nil
}

func (f *headerFixer) note(where string, l []byte, what string) {
	if len(f.notes) >= maxRepairNotes {
		f.more++
		return
	}
	f.notes = append(f.notes, fmt.Sprintf("%sheader line %s %s", where, valid.Quote(string(l), 64), what))
}

// done returns the notes of the block and resets f for the next one.
func (f *headerFixer) done() []string {
	notes := f.notes
	if f.more > 0 {
		notes = append(notes, fmt.Sprintf("%d more header lines repaired", f.more))
	}
	*f = headerFixer{}
	return notes
}

// partRepair is a reader of a multipart body (RFC 2046 §5.1.1) that applies
// the header repair rules to the header block of each part, so that
// go-message's MultipartReader, reading through it, never meets a header
// line it refuses. It finds delimiter lines exactly as that reader does (the
// line "--" boundary, optional white space, the line end of the first
// delimiter line; after the first part only after a line end of that kind),
// so that a body line is never taken for a header line.
//
// Memory: one header line at a time (bounded by the HeaderGuard it reads
// through) and the start of one body line.
type partRepair struct {
	r     io.Reader
	delim []byte // "--" + boundary
	in    []byte
	out   []byte
	off   int   // bytes of out handed out
	err   error // the reader's error, returned once out is drained

	state    int  // inBody, inHeader or inEpilogue
	lf       bool // lines end in LF alone (decided by the first delimiter line)
	parts    int  // delimiter lines seen: the number of the current part
	prevCRLF bool // the last complete line ended in CRLF
	prev     byte // the last byte seen
	cand     bool // the current body line may still be a delimiter line
	line     []byte

	fix   headerFixer
	notes map[int][]string // repairs by part number
}

const (
	inBody = iota
	inHeader
	inEpilogue
)

// maxDelimLine is how long a delimiter line may be, past its delimiter,
// for partRepair to recognise it (white space padding): longer ones are
// left to go-message, unrepaired.
const maxDelimLine = 64

func newPartRepair(r io.Reader, boundary string) *partRepair {
	return &partRepair{r: r, delim: []byte("--" + boundary), in: make([]byte, 32<<10), cand: true}
}

// take returns the repairs of part i (1-based) and forgets them.
func (p *partRepair) take(i int) []string {
	n := p.notes[i]
	delete(p.notes, i)
	return n
}

func (p *partRepair) Read(b []byte) (int, error) {
	for p.off == len(p.out) {
		if p.err != nil {
			return 0, p.err
		}
		p.out, p.off = p.out[:0], 0
		k, err := p.r.Read(p.in)
		p.scan(p.in[:k])
		if err != nil {
			if len(p.line) > 0 {
				p.endLine(false)
			}
			p.err = err
		}
	}
	k := copy(b, p.out[p.off:])
	p.off += k
	return k, nil
}

// scan follows b, the next bytes of the body, writing what go-message is to
// read to p.out.
func (p *partRepair) scan(b []byte) {
	for len(b) > 0 {
		if p.state == inEpilogue || (p.state == inBody && !p.cand) {
			// Copy up to the end of the line: nothing in it can matter.
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				p.out = append(p.out, b...)
				p.prev = b[len(b)-1]
				return
			}
			p.out = append(p.out, b[:i+1]...)
			if i > 0 {
				p.prev = b[i-1]
			}
			b = b[i+1:]
			p.newLine(p.prev == '\r')
			continue
		}
		// A header line, or a body line that may be a delimiter: held
		// until its end.
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i+1]
		}
		b = b[len(seg):]
		p.line = append(p.line, seg...)
		if i < 0 {
			if p.state == inBody && len(p.line) > len(p.delim)+maxDelimLine {
				p.out = append(p.out, p.line...)
				p.prev = p.line[len(p.line)-1]
				p.line, p.cand = p.line[:0], false
			}
			continue
		}
		p.endLine(true)
	}
}

// newLine starts a line after one that ended (in CRLF if crlf).
func (p *partRepair) newLine(crlf bool) {
	p.prevCRLF = crlf
	p.prev = '\n'
	// After the first part go-message ends a part's body only at a line end
	// of the multipart's kind followed by the delimiter.
	p.cand = p.state == inBody && (p.parts == 0 || p.lf || crlf)
}

// endLine handles the held line p.line; ended says it ended in LF (else the
// input ended).
func (p *partRepair) endLine(ended bool) {
	l := p.line
	p.line = p.line[:0]
	crlf := bytes.HasSuffix(l, []byte("\r\n"))
	kind := p.delimiter(l)
	switch {
	case p.state == inHeader && kind != 0:
		// A part whose header block is not ended by a blank line.
		p.addNote(p.parts, fmt.Sprintf("part %d: header not ended by a blank line: ended at the next delimiter", p.parts))
		p.endHeader()
		if p.lf {
			p.out = append(p.out, '\n')
		} else {
			p.out = append(p.out, '\r', '\n')
		}
		p.out = append(p.out, l...)
		p.startPart(kind)
	case p.state == inHeader:
		body := bytes.TrimSuffix(bytes.TrimSuffix(l, []byte("\n")), []byte("\r"))
		if len(body) == 0 {
			p.out = append(p.out, l...)
			p.endHeader()
			break
		}
		if fixed := p.fix.line(body, fmt.Sprintf("part %d: ", p.parts)); fixed != nil {
			p.out = append(p.out, fixed...)
			p.out = append(p.out, l[len(body):]...)
		}
	default:
		p.out = append(p.out, l...)
		if kind != 0 {
			p.startPart(kind)
		}
	}
	if ended {
		p.newLine(crlf)
	}
}

// startPart follows a delimiter line: kind 1 begins a part, kind 2 (the
// close delimiter) ends the multipart.
func (p *partRepair) startPart(kind int) {
	if kind == 2 {
		p.state = inEpilogue
		return
	}
	p.parts++
	p.state = inHeader
}

// endHeader ends the current part's header block: its notes are kept for
// take.
func (p *partRepair) endHeader() {
	for _, n := range p.fix.done() {
		p.addNote(p.parts, n)
	}
	p.state = inBody
}

func (p *partRepair) addNote(part int, n string) {
	if p.notes == nil {
		p.notes = map[int][]string{}
	}
	if len(p.notes[part]) < maxRepairNotes+1 {
		p.notes[part] = append(p.notes[part], n)
	}
}

// delimiter reports whether l, a whole line with its line end, is a
// delimiter line (1) or the close delimiter line (2) as go-message's
// MultipartReader sees it (isBoundaryDelimiterLine, isFinalBoundary), and
// fixes the line-end kind at the first one. In a body, only lines that may
// be delimiters (p.cand) are.
func (p *partRepair) delimiter(l []byte) int {
	if p.state == inEpilogue || (p.state == inBody && !p.cand) || !bytes.HasPrefix(l, p.delim) {
		return 0
	}
	rest := l[len(p.delim):]
	kind := 1
	if bytes.HasPrefix(rest, []byte("--")) {
		kind, rest = 2, rest[2:]
	}
	rest = bytes.TrimLeft(rest, " \t")
	nl := "\r\n"
	if p.lf {
		nl = "\n"
	}
	switch {
	case string(rest) == nl:
	case kind == 1 && p.parts == 0 && string(rest) == "\n":
		p.lf = true
	case kind == 2 && len(rest) == 0:
	default:
		return 0
	}
	return kind
}

package extract

import (
	"bytes"
	"fmt"
	"io"

	"github.com/dmarcd/dmarcd/parse"
)

// HeaderGuard returns a reader of body, the raw bytes of a multipart body
// with the given boundary (RFC 2046 §5.1.1), that fails with a TooLarge
// error as soon as the header block of one of its parts passes lim's
// MaxHeaderFields, MaxHeaderBytes or MaxHeaderLineBytes. A MIME reader
// (go-message's textproto.NewMultipartReader, which bounds nothing) reading
// through it stops there instead of building a header of millions of fields.
// where names the multipart in the error. Zero limits take their defaults.
func HeaderGuard(body io.Reader, boundary string, lim Limits, where string) io.Reader {
	return newHeaderGuard(body, boundary, lim.withDefaults(), where)
}

// headerGuard follows the lines of a multipart body: after a boundary
// delimiter line it counts the part's header lines until the blank line that
// ends them.
type headerGuard struct {
	r        io.Reader
	lim      Limits
	where    string
	delim    []byte // "--" + boundary
	head     []byte // the first bytes of the current line, for the boundary match
	lineLen  int64  // bytes of the current line so far
	inHeader bool   // between a boundary line and the next blank line
	fields   int
	hdrBytes int64
	part     int // parts begun
	err      error
}

// MessageGuard returns a reader of msg, a whole message, that fails with a
// TooLarge error as soon as the message's own header block passes lim's
// header limits (as HeaderGuard does for parts). Zero limits take their
// defaults.
func MessageGuard(msg io.Reader, lim Limits, where string) io.Reader {
	return newMessageGuard(msg, lim.withDefaults(), where)
}

// newMessageGuard returns a guard of a whole message: its own header block
// is bounded as a part's, from the first byte; the body is not looked at.
func newMessageGuard(msg io.Reader, lim Limits, where string) *headerGuard {
	return &headerGuard{r: msg, lim: lim, where: where, inHeader: true, head: make([]byte, 0, 8)}
}

func newHeaderGuard(body io.Reader, boundary string, lim Limits, where string) *headerGuard {
	d := []byte("--" + boundary)
	return &headerGuard{r: body, lim: lim, where: where, delim: d, head: make([]byte, 0, len(d)+2)}
}

func (g *headerGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	k, err := g.r.Read(p)
	if g.scan(p[:k]) != nil {
		return 0, g.err
	}
	return k, err
}

// scan follows b, the next bytes of the body.
func (g *headerGuard) scan(b []byte) error {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i+1]
		}
		b = b[len(seg):]
		if room := cap(g.head) - len(g.head); room > 0 {
			g.head = append(g.head, seg[:min(room, len(seg))]...)
		}
		g.lineLen += int64(len(seg))
		if g.inHeader {
			g.hdrBytes += int64(len(seg))
			if err := g.check(); err != nil {
				return err
			}
		}
		if i >= 0 {
			g.endLine()
			if g.err != nil {
				return g.err
			}
		}
	}
	return nil
}

// endLine handles the line just ended.
func (g *headerGuard) endLine() {
	line := bytes.TrimRight(g.head, "\r\n")
	switch {
	case g.inHeader && len(line) == 0:
		g.inHeader = false
	case g.inHeader && len(line) > 0 && line[0] != ' ' && line[0] != '\t':
		g.fields++
		_ = g.check()
	case !g.inHeader && g.delim != nil && bytes.HasPrefix(line, g.delim) && !bytes.HasPrefix(line[len(g.delim):], []byte("--")):
		g.inHeader, g.fields, g.hdrBytes = true, 0, 0
		g.part++
	}
	g.head, g.lineLen = g.head[:0], 0
}

// check fails the read when the current header block is past a limit.
func (g *headerGuard) check() error {
	var what string
	switch {
	case g.fields > g.lim.MaxHeaderFields:
		what = fmt.Sprintf("more than %d header fields", g.lim.MaxHeaderFields)
	case g.hdrBytes > g.lim.MaxHeaderBytes:
		what = fmt.Sprintf("a header block over %s", size(g.lim.MaxHeaderBytes))
	case g.lineLen > g.lim.MaxHeaderLineBytes:
		what = fmt.Sprintf("a header line over %s", size(g.lim.MaxHeaderLineBytes))
	default:
		return nil
	}
	msg := fmt.Sprintf("part %d has %s", g.part, what)
	if g.delim == nil {
		msg = "header has " + what
	}
	if g.where != "" {
		msg = g.where + ": " + msg
	}
	g.err = parse.Errorf(parse.TooLarge, "%s", msg)
	return g.err
}

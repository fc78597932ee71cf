package aggregate

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/net/html/charset"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// refTokenizer is the reference decoder's XML half: encoding/xml's Token
// (which checks well-formedness and matches end tags) feeding the builder.
// It is simple and slow (docs/benchmarks.md: about 63,000 records/s); the fast
// scanner is checked against it by FuzzDecoderAgrees.
//
// encoding/xml reads a whole token into memory, so it reads through a
// boundedReader: no token may take more than refTokenSlack(MaxTokenBytes)
// bytes of input, and each token it returns is then held to MaxTokenBytes
// exactly, as the scanner does.
type refTokenizer struct {
	xd     *xml.Decoder
	br     *boundedReader
	maxTok int
	prolog bool     // only a BOM and white space read so far
	names  []string // local names of the open elements, for messages
}

func newRefTokenizer(r io.Reader, lim Limits) *refTokenizer {
	t := &refTokenizer{prolog: true, maxTok: lim.MaxTokenBytes}
	t.br = &boundedReader{r: bufio.NewReaderSize(r, scanBufSize), t: t}
	t.xd = xml.NewDecoder(t.br)
	t.xd.CharsetReader = t.charsetReader
	return t
}

// refTokenSlack is how many input bytes encoding/xml may read for one token:
// twice the limit, because a declared encoding such as UTF-16 takes two
// input bytes for one byte of the document, plus what a charset decoder
// reads ahead.
func refTokenSlack(maxTok int) int64 { return 2*int64(maxTok) + 8192 }

// boundedReader hands encoding/xml its input, up to limit bytes in all: the
// tokenizer moves limit before each token.
type boundedReader struct {
	r     *bufio.Reader
	n     int64 // bytes handed out
	limit int64
	t     *refTokenizer
}

func (br *boundedReader) over() error {
	return parse.Errorf(parse.TooLarge, "a token%s longer than %d bytes (limit MaxTokenBytes)", br.t.inside(), br.t.maxTok)
}

func (br *boundedReader) ReadByte() (byte, error) {
	if br.n >= br.limit {
		return 0, br.over()
	}
	c, err := br.r.ReadByte()
	if err == nil {
		br.n++
	}
	return c, err
}

func (br *boundedReader) Read(p []byte) (int, error) {
	if br.n >= br.limit {
		return 0, br.over()
	}
	if int64(len(p)) > br.limit-br.n {
		p = p[:br.limit-br.n]
	}
	k, err := br.r.Read(p)
	br.n += int64(k)
	return k, err
}

// inside names the innermost open element, for messages.
func (t *refTokenizer) inside() string {
	if len(t.names) == 0 {
		return ""
	}
	return " in <" + valid.Printable(valid.Truncate(t.names[len(t.names)-1], 64)) + ">"
}

// tokenKind names a token, for messages.
func tokenKind(tok xml.Token) string {
	switch tok.(type) {
	case xml.StartElement:
		return "start tag"
	case xml.EndElement:
		return "end tag"
	case xml.CharData:
		return "character data"
	case xml.Comment:
		return "comment"
	case xml.ProcInst:
		return "processing instruction"
	}
	return "directive"
}

// charsetReader decodes a declared encoding (docs/standards.md §6.3 item 16).
// Labels naming UTF-8 read the input unchanged, so invalid UTF-8 stays an
// error. An encoding declared anywhere but at the start of the document is
// refused: a decoder cannot switch encodings after it has handed out values.
func (t *refTokenizer) charsetReader(label string, in io.Reader) (io.Reader, error) {
	if isUTF8Label(label) {
		return in, nil
	}
	if !t.prolog {
		return nil, errors.New("encoding declared after the start of the document")
	}
	return charset.NewReaderLabel(label, in)
}

// isUTF8Label reports whether an encoding label names UTF-8.
func isUTF8Label(label string) bool {
	if strings.EqualFold(label, "utf-8") {
		return true
	}
	_, name := charset.Lookup(label)
	return name == "utf-8"
}

func (t *refTokenizer) line() int {
	l, _ := t.xd.InputPos()
	return l
}

func (t *refTokenizer) run(b *builder) error {
	for !b.ready {
		startLine := t.line()
		from := t.xd.InputOffset()
		t.br.limit = t.br.n + refTokenSlack(t.maxTok)
		tok, err := t.xd.Token()
		if err != nil {
			return t.classify(err)
		}
		b.off = t.xd.InputOffset()
		if b.off-from > int64(t.maxTok) {
			return parse.Errorf(parse.TooLarge, "%s%s longer than %d bytes (limit MaxTokenBytes)", tokenKind(tok), t.inside(), t.maxTok)
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			t.prolog = false
			t.names = append(t.names, tt.Name.Local)
			if err := b.start([]byte(tt.Name.Local), tt.Name.Space); err != nil {
				return err
			}
		case xml.EndElement:
			if len(t.names) > 0 {
				t.names = t.names[:len(t.names)-1]
			}
			if err := b.end(); err != nil {
				return err
			}
			if b.state == fbDone {
				return nil
			}
		case xml.CharData:
			if t.prolog && !isPrologText(tt) {
				t.prolog = false
			}
			if err := b.chars(tt); err != nil {
				return err
			}
		case xml.Directive:
			return parse.Errorf(parse.DTDRefused, "line %d: <!%s> refused: document type declarations are never processed", startLine, directiveName(tt))
		default:
			t.prolog = false
			if err := b.skip(); err != nil {
				return err
			}
		}
	}
	return nil
}

// classify maps an encoding/xml error to a parse error code.
func (t *refTokenizer) classify(err error) error {
	var se *xml.SyntaxError
	var pe *parse.Error
	switch {
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return errEOF
	case errors.As(err, &se):
		if strings.HasPrefix(se.Msg, "unexpected EOF") {
			return errEOF
		}
		return parse.Errorf(parse.XMLSyntax, "line %d: %s", se.Line, se.Msg)
	case errors.As(err, &pe):
		return pe
	case strings.HasPrefix(err.Error(), "xml: "):
		// Unsupported version, unknown or misplaced encoding.
		return parse.Errorf(parse.XMLSyntax, "line %d: %s", t.line(), strings.TrimPrefix(err.Error(), "xml: "))
	}
	return parse.Wrap(parse.InputUnreadable, err, "line %d", t.line())
}

// isPrologText reports whether character data is only byte order marks and
// XML white space: what may precede an XML declaration that sets the
// encoding.
func isPrologText(p []byte) bool {
	for i := 0; i < len(p); {
		switch c := p[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == 0xEF && i+2 < len(p) && p[i+1] == 0xBB && p[i+2] == 0xBF:
			i += 3
		default:
			return false
		}
	}
	return true
}

// directiveName is the keyword of a directive, for messages.
func directiveName(p []byte) string {
	n := 0
	for n < len(p) && n < 16 && (p[n] >= 'A' && p[n] <= 'Z' || p[n] >= 'a' && p[n] <= 'z') {
		n++
	}
	if n == 0 {
		return "..."
	}
	return fmt.Sprintf("%s", p[:n])
}

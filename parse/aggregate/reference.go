package aggregate

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/net/html/charset"

	"github.com/dmarcd/dmarcd/parse"
)

// refTokenizer is the reference decoder's XML half: encoding/xml's Token
// (which checks well-formedness and matches end tags) feeding the builder.
// It is simple and slow (design.md: about 100,000 records/s); the fast
// scanner is checked against it by FuzzDecoderAgrees.
type refTokenizer struct {
	xd     *xml.Decoder
	prolog bool // only a BOM and white space read so far
}

func newRefTokenizer(r io.Reader) *refTokenizer {
	t := &refTokenizer{prolog: true}
	t.xd = xml.NewDecoder(r)
	t.xd.CharsetReader = t.charsetReader
	return t
}

// charsetReader decodes a declared encoding (digest §6.3 item 16). Labels
// naming UTF-8 read the input unchanged, so invalid UTF-8 stays an error. An
// encoding declared anywhere but at the start of the document is refused:
// a decoder cannot switch encodings after it has handed out values.
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
		tok, err := t.xd.Token()
		if err != nil {
			return t.classify(err)
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			t.prolog = false
			if err := b.start([]byte(tt.Name.Local), tt.Name.Space); err != nil {
				return err
			}
		case xml.EndElement:
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
			b.chars(tt)
		case xml.Directive:
			return parse.Errorf(parse.DTDRefused, "line %d: <!%s> refused: document type declarations are never processed", startLine, directiveName(tt))
		default:
			t.prolog = false
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

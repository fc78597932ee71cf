package extract

import (
	"errors"
	"io"
	"mime/quotedprintable"
	"strings"

	"github.com/dmarcd/dmarcd/parse"
)

// transferDecode undoes a Content-Transfer-Encoding (RFC 2045 §6). Unknown
// encodings and 7bit/8bit/binary pass through.
func transferDecode(r io.Reader, cte string) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return &base64Reader{src: r}
	case "quoted-printable":
		return &mimeReader{r: quotedprintable.NewReader(r)}
	}
	return r
}

// mimeReader makes a MIME body reader lenient and typed: a body that ends
// without its closing boundary simply ends; other errors are MIMESyntax.
type mimeReader struct{ r io.Reader }

func (m *mimeReader) Read(p []byte) (int, error) {
	k, err := m.r.Read(p)
	if err == nil || err == io.EOF {
		return k, err
	}
	var pe *parse.Error
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = io.EOF
	case !errors.As(err, &pe):
		err = parse.Wrap(parse.MIMESyntax, err, "decoding MIME part")
	}
	return k, err
}

// base64Reader decodes base64 (RFC 2045 §6.8) leniently: characters outside
// the alphabet (CR, LF, spaces, stray punctuation) are ignored, "=" ends a
// group wherever it appears (so concatenated encodings decode), and a final
// incomplete group yields what bytes it holds. It never returns a decoding
// error: a damaged report is for the format parser to reject.
type base64Reader struct {
	src  io.Reader
	in   [4096]byte
	out  []byte // decoded, not yet returned
	buf  [3*4096/4 + 4]byte
	quad [4]byte
	nq   int
	err  error
}

var base64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	// base64url, seen from some web tools.
	t['-'] = 62
	t['_'] = 63
	return t
}()

func (b *base64Reader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		k, err := b.src.Read(b.in[:])
		out := b.buf[:0]
		for _, c := range b.in[:k] {
			if c == '=' {
				out = b.flush(out)
				continue
			}
			v := base64Value[c]
			if v == 0xff {
				continue
			}
			b.quad[b.nq] = v
			b.nq++
			if b.nq == 4 {
				out = append(out, b.quad[0]<<2|b.quad[1]>>4, b.quad[1]<<4|b.quad[2]>>2, b.quad[2]<<6|b.quad[3])
				b.nq = 0
			}
		}
		if err != nil {
			out = b.flush(out)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			b.err = err
		}
		b.out = out
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// flush decodes an incomplete group ended by "=" or the end of input.
func (b *base64Reader) flush(out []byte) []byte {
	switch b.nq {
	case 2:
		out = append(out, b.quad[0]<<2|b.quad[1]>>4)
	case 3:
		out = append(out, b.quad[0]<<2|b.quad[1]>>4, b.quad[1]<<4|b.quad[2]>>2)
	}
	b.nq = 0
	return out
}

package aggregate

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// The fast decoder's XML half: a streaming byte scanner specialised to what
// aggregate reports use, over a 64 KiB buffer, handing slices of that buffer
// to the builder (no allocation per token).
//
// It accepts exactly what encoding/xml's Decoder.Token accepts (Strict mode)
// and reports the same class of error at the same point: every rule below
// mirrors a step of encoding/xml (Go 1.26, xml.go rawToken, text, readName,
// nsname, popElement), and FuzzDecoderAgrees holds the two to it. Where a
// rule looks odd (attributes need no white space between them, "&#xD800;"
// is U+FFFD, comments and processing instructions are not checked for
// UTF-8), it is because encoding/xml does it so.

const scanBufSize = 64 << 10

var (
	errMore     = errors.New("need more input")                      // internal: refill and retry the token
	errFallback = errors.New("declared encoding: use the reference") // internal: see Decoder.fill
)

type nsBinding struct {
	prefix string
	url    string
	depth  int
}

type scanner struct {
	r      io.Reader
	buf    []byte
	pos    int   // start of the next token in buf
	end    int   // end of the data in buf
	eof    bool  // nothing more to read after buf[:end]
	rerr   error // read error other than io.EOF, reported at the end of input
	lines  int   // newlines in the bytes dropped from the front of buf
	base   int64 // bytes dropped from the front of buf
	maxTok int   // Limits.MaxTokenBytes
	prolog bool  // only a BOM and white space so far; buf holds every byte read

	names   []byte // names of the open elements, concatenated
	nameEnd []int
	ns      []nsBinding
	tmp     []byte // decoded character data
	nsval   []byte // decoded xmlns attribute value
}

// newScanner returns a scanner reading r through a buffer of size bytes. The
// buffer grows only while one token is incomplete, and no token may pass
// lim.MaxTokenBytes: it stays under 2*max(size, lim.MaxTokenBytes).
func newScanner(r io.Reader, size int, lim Limits) *scanner {
	return &scanner{r: r, buf: make([]byte, size), prolog: true, maxTok: lim.MaxTokenBytes}
}

// at tells the builder how far the input has been read: to s.pos.
func (s *scanner) at(b *builder) { b.off = s.base + int64(s.pos) }

// tooLarge is the error for a token of the kind named longer than
// MaxTokenBytes, at s.pos.
func (s *scanner) tooLarge(what string) error {
	in := ""
	if n := len(s.nameEnd); n > 0 {
		from := 0
		if n > 1 {
			from = s.nameEnd[n-2]
		}
		in = " in <" + valid.Printable(valid.Truncate(string(s.names[from:]), 64)) + ">"
	}
	return parse.Errorf(parse.TooLarge, "%s%s longer than %d bytes (limit MaxTokenBytes)", what, in, s.maxTok)
}

// pendingKind names the incomplete token at s.pos, for tooLarge.
func (s *scanner) pendingKind() string {
	d := s.buf[s.pos:s.end]
	switch {
	case len(d) == 0 || d[0] != '<':
		return "character data"
	case bytes.HasPrefix(d, []byte("<!--")):
		return "comment"
	case bytes.HasPrefix(d, []byte("<![")):
		return "CDATA section"
	case bytes.HasPrefix(d, []byte("<!")):
		return "directive"
	case bytes.HasPrefix(d, []byte("<?")):
		return "processing instruction"
	case bytes.HasPrefix(d, []byte("</")):
		return "end tag"
	}
	return "start tag"
}

// replay returns every byte read so far; valid only while s.prolog.
func (s *scanner) replay() io.Reader { return bytes.NewReader(s.buf[:s.end]) }

func (s *scanner) line() int { return s.lineAt(s.pos) }

func (s *scanner) lineAt(at int) int {
	if at > s.end {
		at = s.end
	}
	return s.lines + bytes.Count(s.buf[:at], []byte{'\n'}) + 1
}

func (s *scanner) syntax(at int, format string, args ...any) error {
	return parse.Errorf(parse.XMLSyntax, "line %d: %s", s.lineAt(at), fmt.Sprintf(format, args...))
}

// fill reads more input, keeping buf[pos:end] (all of buf in the prolog).
func (s *scanner) fill() {
	if !s.prolog && s.pos > 0 {
		s.lines += bytes.Count(s.buf[:s.pos], []byte{'\n'})
		s.base += int64(s.pos)
		s.end = copy(s.buf, s.buf[s.pos:s.end])
		s.pos = 0
	}
	if s.end == len(s.buf) {
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	for empty := 0; s.end < len(s.buf); {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err != nil {
			if err != io.EOF {
				s.rerr = err
			}
			s.eof = true
			return
		}
		if n == 0 {
			if empty++; empty > 100 {
				s.rerr, s.eof = io.ErrNoProgress, true
				return
			}
		}
	}
}

// eofErr is the error for input that ends here.
func (s *scanner) eofErr() error {
	if s.rerr != nil {
		var pe *parse.Error
		switch {
		case errors.As(s.rerr, &pe):
			return s.rerr
		case errors.Is(s.rerr, io.ErrUnexpectedEOF):
			return errEOF
		}
		return parse.Wrap(parse.InputUnreadable, s.rerr, "reading report")
	}
	return errEOF
}

// more is returned where a token needs bytes beyond those buffered.
func (s *scanner) more() error {
	if !s.eof {
		return errMore
	}
	return s.eofErr()
}

func (s *scanner) run(b *builder) error {
	for !b.ready {
		if s.pos >= s.end {
			if s.eof {
				return s.eofErr()
			}
			s.fill()
			continue
		}
		var err error
		if s.buf[s.pos] != '<' && !b.want && !s.prolog {
			// Character data nobody keeps (white space between elements):
			// skip plain bytes here; anything else goes through text.
			i := s.pos
			for i < s.end && textClass[s.buf[i]] == 0 {
				i++
			}
			if i < s.end && s.buf[i] == '<' {
				if i-s.pos > s.maxTok {
					return s.tooLarge("character data")
				}
				s.pos = i
				s.at(b)
				if err := b.skip(); err != nil {
					return err
				}
			}
		}
		if s.buf[s.pos] == '<' {
			err = s.markup(b)
		} else {
			err = s.text(b)
		}
		switch err {
		case nil:
		case errMore:
			if s.end-s.pos > s.maxTok {
				// The token is longer than the limit whatever follows.
				return s.tooLarge(s.pendingKind())
			}
			s.fill()
		default:
			return err
		}
	}
	return nil
}

// Byte classes.
var (
	nameByte    [256]bool // ASCII bytes encoding/xml's readName takes as part of a name
	textSpecial [256]bool // bytes plain character data needs a closer look at
	textClass   [256]byte // 0: plain character data; 1: '<' or textSpecial
	nameClass   [256]byte // 1: ASCII name byte other than ':'
	nameStart   [256]bool // ASCII bytes that may start a name, ':' excepted
)

func init() {
	for c := 0; c < 256; c++ {
		nameByte[c] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '_' || c == ':' || c == '.' || c == '-'
		textSpecial[c] = c < 0x20 && c != '\t' && c != '\n' || c == '&' || c == '>' || c >= 0x80
		if nameByte[c] && c != ':' {
			nameClass[c] = 1
		}
		nameStart[c] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_'
		if textSpecial[c] || c == '<' {
			textClass[c] = 1
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// scanName reads a name at data[i:] the way readName does: any byte >= 0x80
// counts as a name byte (checked afterwards). ok is false when data[i] cannot
// start a name; short when the data ends before the name does.
func scanName(data []byte, i int) (j int, nonASCII, ok, short bool) {
	if i >= len(data) {
		return i, false, false, true
	}
	if c := data[i]; c < utf8.RuneSelf && !nameByte[c] {
		return i, false, false, false
	}
	for j = i; j < len(data); j++ {
		c := data[j]
		if c >= utf8.RuneSelf {
			nonASCII = true
		} else if !nameByte[c] {
			return j, nonASCII, true, false
		}
	}
	return j, nonASCII, true, true
}

// validName is encoding/xml's isName for a name scanName returned.
func validName(name []byte, nonASCII bool) bool {
	if !nonASCII {
		c := name[0]
		return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || c == ':'
	}
	// Rare: let encoding/xml judge, as a processing instruction target.
	p := make([]byte, 0, len(name)+4)
	p = append(append(append(p, "<?"...), name...), "?>"...)
	_, err := xml.NewDecoder(bytes.NewReader(p)).RawToken()
	return err == nil
}

// splitName applies nsname: at most one colon; a colon splits prefix and
// local name only when both are non-empty.
func splitName(name []byte) (prefix, local []byte, ok bool) {
	c := bytes.IndexByte(name, ':')
	if c < 0 {
		return nil, name, true
	}
	if bytes.IndexByte(name[c+1:], ':') >= 0 {
		return nil, nil, false
	}
	if c == 0 || c == len(name)-1 {
		return nil, name, true
	}
	return name[:c], name[c+1:], true
}

func (s *scanner) markup(b *builder) error {
	data := s.buf[s.pos:s.end]
	if len(data) < 2 {
		return s.more()
	}
	switch data[1] {
	case '/':
		return s.endTag(b, data)
	case '?':
		return s.procInst(b, data)
	case '!':
		return s.bang(b, data)
	}
	return s.startTag(b, data)
}

// text handles character data up to the next '<'.
func (s *scanner) text(b *builder) error {
	data := s.buf[s.pos:s.end]
	i := 0
	for i < len(data) && textClass[data[i]] == 0 {
		i++
	}
	if i < len(data) && data[i] != '<' {
		// Something to decode or check: find the end, then go slow.
		j := i
		if k := bytes.IndexByte(data[i:], '<'); k >= 0 {
			return s.textSlow(b, data[:i+k], j, false)
		}
		if !s.eof {
			return errMore
		}
		return s.textSlow(b, data, j, true)
	}
	if i == len(data) && !s.eof {
		return errMore
	}
	if i > s.maxTok {
		return s.tooLarge("character data")
	}
	seg := data[:i]
	s.pos += i
	if s.prolog && !isPrologText(seg) {
		s.prolog = false
	}
	s.at(b)
	return b.chars(seg)
}

// textSlow decodes character data with entity references, carriage returns,
// non-ASCII or forbidden bytes from seg[j] on, as encoding/xml's text does:
// scan errors come in input order; invalid UTF-8 and characters outside the
// XML Char production are reported once the scan completes.
func (s *scanner) textSlow(b *builder, seg []byte, j int, atEOF bool) error {
	if len(seg) > s.maxTok {
		return s.tooLarge("character data")
	}
	keep := b.want || s.prolog
	out := s.tmp[:0]
	if keep {
		out = append(out, seg[:j]...)
	}
	var b0, b1 byte
	if j >= 1 {
		b1 = seg[j-1]
	}
	if j >= 2 {
		b0 = seg[j-2]
	}
	bad, badMsg := -1, ""
	for j < len(seg) {
		c := seg[j]
		switch {
		case c == '>' && b0 == ']' && b1 == ']':
			return s.syntax(s.pos+j, "unescaped ]]> not in CDATA section")
		case c == '&':
			r, n, err := s.entity(seg, j, !atEOF, s.pos)
			if err != nil {
				return err
			}
			if !inCharRange(r) && bad < 0 {
				bad, badMsg = j, fmt.Sprintf("illegal character code %U", r)
			}
			if keep {
				out = utf8.AppendRune(out, r)
			}
			j += n
			b0, b1 = 0, 0
			continue
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(seg[j:])
			if bad < 0 {
				if r == utf8.RuneError && size == 1 {
					bad, badMsg = j, "invalid UTF-8"
				} else if !inCharRange(r) {
					bad, badMsg = j, fmt.Sprintf("illegal character code %U", r)
				}
			}
			if keep {
				out = append(out, seg[j:j+size]...)
			}
			j += size
			b0, b1 = 0x80, 0x80
			continue
		case c == '\r':
			if keep {
				out = append(out, '\n')
			}
		case c == '\n' && b1 == '\r':
		case c < 0x20 && c != '\t' && c != '\n':
			if bad < 0 {
				bad, badMsg = j, fmt.Sprintf("illegal character code %U", rune(c))
			}
			if keep {
				out = append(out, c)
			}
		default:
			if keep {
				out = append(out, c)
			}
		}
		b0, b1 = b1, c
		j++
	}
	s.tmp = out
	if bad >= 0 {
		return s.syntax(s.pos+len(seg), "%s", badMsg)
	}
	s.pos += len(seg)
	if s.prolog && !isPrologText(out) {
		s.prolog = false
	}
	s.at(b)
	return b.chars(out)
}

func inCharRange(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// entity decodes the reference at seg[j] == '&', returning the character and
// the bytes it takes. When the reference runs to the end of seg, it is
// invalid if endIsLT (seg is followed by '<' or a quote), else more input is
// needed. base is seg's offset in buf, for messages.
func (s *scanner) entity(seg []byte, j int, endIsLT bool, base int) (rune, int, error) {
	runOut := func() (rune, int, error) {
		if endIsLT {
			return 0, 0, s.syntax(base+j, "invalid character entity %s (no semicolon)", seg[j:])
		}
		return 0, 0, s.more()
	}
	invalid := func(k int) (rune, int, error) {
		ent := string(seg[j:k])
		if seg[k-1] != ';' {
			ent += " (no semicolon)"
		}
		return 0, 0, s.syntax(base+j, "invalid character entity %s", ent)
	}
	k := j + 1
	if k >= len(seg) {
		return runOut()
	}
	if seg[k] == '#' {
		k++
		if k >= len(seg) {
			return runOut()
		}
		hex := seg[k] == 'x'
		if hex {
			k++
			if k >= len(seg) {
				return runOut()
			}
		}
		start := k
		var n uint64
		big := false
		for ; k < len(seg); k++ {
			c := seg[k]
			var d byte
			switch {
			case '0' <= c && c <= '9':
				d = c - '0'
			case hex && 'a' <= c && c <= 'f':
				d = c - 'a' + 10
			case hex && 'A' <= c && c <= 'F':
				d = c - 'A' + 10
			default:
				goto digitsDone
			}
			if n > utf8.MaxRune {
				big = true
			} else if hex {
				n = n*16 + uint64(d)
			} else {
				n = n*10 + uint64(d)
			}
		}
	digitsDone:
		if k >= len(seg) {
			return runOut()
		}
		if seg[k] != ';' {
			return invalid(k)
		}
		k++
		if k-1 == start || big || n > utf8.MaxRune {
			return invalid(k)
		}
		r := rune(n)
		if 0xD800 <= r && r <= 0xDFFF {
			r = utf8.RuneError // string(rune(n)) does this
		}
		return r, k - j, nil
	}
	nameEnd, _, _, short := scanName(seg, k)
	if short {
		return runOut()
	}
	k = nameEnd
	if seg[k] != ';' {
		return invalid(k)
	}
	var r rune
	switch string(seg[j+1 : k]) {
	case "lt":
		r = '<'
	case "gt":
		r = '>'
	case "amp":
		r = '&'
	case "apos":
		r = '\''
	case "quot":
		r = '"'
	default:
		return invalid(k + 1)
	}
	return r, k + 1 - j, nil
}

// startTag handles <name attr="value" ...> and <name .../>.
func (s *scanner) startTag(b *builder, data []byte) error {
	// Fast path: <name> with an ASCII name without colon and no attributes,
	// and when it holds a value, "value</name>" right after it.
	j := 1
	for j < len(data) && nameClass[data[j]] == 1 {
		j++
	}
	if j < len(data) && data[j] == '>' && j > 1 && nameStart[data[1]] {
		name := data[1:j]
		if string(name) != "feedback" {
			if j+1 > s.maxTok {
				return s.tooLarge("start tag")
			}
			s.pos += j + 1
			s.prolog = false
			s.at(b)
			if err := b.start(name, ""); err != nil {
				return err
			}
			if b.want {
				return s.leafValue(b, name)
			}
			s.names = append(s.names, name...)
			s.nameEnd = append(s.nameEnd, len(s.names))
			return nil
		}
	}
	j, nonASCII, ok, short := scanName(data, 1)
	if short {
		return s.more()
	}
	if !ok {
		return s.syntax(s.pos, "expected element name after <")
	}
	name := data[1:j]
	if !validName(name, nonASCII) {
		return s.syntax(s.pos, "invalid XML name: %s", name)
	}
	prefix, local, ok := splitName(name)
	if !ok {
		return s.syntax(s.pos, "expected element name after <")
	}
	nsStart := len(s.ns)
	depth := len(s.nameEnd) + 1
	empty := false
	i := j
	for {
		i = skipSpace(data, i)
		if i >= len(data) {
			s.ns = s.ns[:nsStart]
			return s.more()
		}
		c := data[i]
		if c == '/' {
			if i+1 >= len(data) {
				s.ns = s.ns[:nsStart]
				return s.more()
			}
			if data[i+1] != '>' {
				s.ns = s.ns[:nsStart]
				return s.syntax(s.pos+i, "expected /> in element")
			}
			empty = true
			i += 2
			break
		}
		if c == '>' {
			i++
			break
		}
		next, err := s.attr(data, i, depth)
		if err != nil {
			s.ns = s.ns[:nsStart]
			return err
		}
		i = next
	}
	if i > s.maxTok {
		s.ns = s.ns[:nsStart]
		return s.tooLarge("start tag")
	}
	s.pos += i
	s.prolog = false
	s.at(b)
	space := ""
	if string(local) == "feedback" {
		space = s.resolve(prefix)
	}
	if err := b.start(local, space); err != nil {
		return err
	}
	if empty {
		s.ns = s.ns[:nsStart]
		return b.end()
	}
	s.names = append(s.names, name...)
	s.nameEnd = append(s.nameEnd, len(s.names))
	return nil
}

// leafValue finishes "value</name>" after a start tag whose element holds a
// value, when the value is plain text; else it leaves the element open for
// the general path.
func (s *scanner) leafValue(b *builder, name []byte) error {
	data := s.buf[s.pos:s.end]
	i := 0
	for i < len(data) && textClass[data[i]] == 0 {
		i++
	}
	k := i + 2 + len(name)
	if k < len(data) && data[i] == '<' && data[i+1] == '/' && data[k] == '>' && string(data[i+2:k]) == string(name) {
		if i > s.maxTok {
			return s.tooLarge("character data")
		}
		// b.chars without its region check: the end tag's, a token
		// later, stops the same regions.
		if i > b.lim.MaxValueBytes {
			s.pos += i
			return b.chars(data[:i])
		}
		b.val = append(b.val, data[:i]...)
		s.pos += k + 1
		s.at(b)
		return b.end()
	}
	s.names = append(s.names, name...)
	s.nameEnd = append(s.nameEnd, len(s.names))
	return nil
}

// attr reads one attribute at data[i:], recording namespace declarations.
func (s *scanner) attr(data []byte, i, depth int) (int, error) {
	k, nonASCII, ok, short := scanName(data, i)
	if short {
		return 0, s.more()
	}
	if !ok {
		return 0, s.syntax(s.pos+i, "expected attribute name in element")
	}
	aname := data[i:k]
	if !validName(aname, nonASCII) {
		return 0, s.syntax(s.pos+i, "invalid XML name: %s", aname)
	}
	aprefix, alocal, ok := splitName(aname)
	if !ok {
		return 0, s.syntax(s.pos+i, "expected attribute name in element")
	}
	i = skipSpace(data, k)
	if i >= len(data) {
		return 0, s.more()
	}
	if data[i] != '=' {
		return 0, s.syntax(s.pos+i, "attribute name without = in element")
	}
	i = skipSpace(data, i+1)
	if i >= len(data) {
		return 0, s.more()
	}
	q := data[i]
	if q != '"' && q != '\'' {
		return 0, s.syntax(s.pos+i, "unquoted or missing attribute value in element")
	}
	i++
	// The value, as text(quote): no "]]>" rule; '<' is an error.
	bind := string(aprefix) == "xmlns" || len(aprefix) == 0 && string(alocal) == "xmlns"
	out := s.nsval[:0]
	var b1 byte
	bad, badMsg := -1, ""
	for {
		if i >= len(data) {
			if !s.eof {
				return 0, errMore
			}
			// The value ends with the input: encoding/xml checks it, then
			// finds the tag unfinished.
			if bad >= 0 {
				return 0, s.syntax(s.pos+i, "%s", badMsg)
			}
			return 0, s.eofErr()
		}
		c := data[i]
		if c == q {
			i++
			break
		}
		switch {
		case c == '<':
			return 0, s.syntax(s.pos+i, "unescaped < inside quoted string")
		case c == '&':
			r, n, err := s.entity(data, i, false, s.pos)
			if err != nil {
				return 0, err
			}
			if !inCharRange(r) && bad < 0 {
				bad, badMsg = i, fmt.Sprintf("illegal character code %U", r)
			}
			out = utf8.AppendRune(out, r)
			i += n
			b1 = 0
			continue
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(data[i:])
			if size == 1 && r == utf8.RuneError && i+utf8.UTFMax > len(data) && !s.eof {
				return 0, errMore // a sequence cut by the buffer end
			}
			if bad < 0 {
				if r == utf8.RuneError && size == 1 {
					bad, badMsg = i, "invalid UTF-8"
				} else if !inCharRange(r) {
					bad, badMsg = i, fmt.Sprintf("illegal character code %U", r)
				}
			}
			out = append(out, data[i:i+size]...)
			i += size
			b1 = 0x80
			continue
		case c == '\r':
			out = append(out, '\n')
		case c == '\n' && b1 == '\r':
		case c < 0x20 && c != '\t' && c != '\n':
			if bad < 0 {
				bad, badMsg = i, fmt.Sprintf("illegal character code %U", rune(c))
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
		b1 = c
		i++
	}
	s.nsval = out
	if bad >= 0 {
		return 0, s.syntax(s.pos+i, "%s", badMsg)
	}
	if bind {
		p := ""
		if len(aprefix) > 0 {
			p = string(alocal)
		}
		s.ns = append(s.ns, nsBinding{prefix: p, url: string(out), depth: depth})
	}
	return i, nil
}

// resolve is encoding/xml's translate for an element name's prefix.
func (s *scanner) resolve(prefix []byte) string {
	switch string(prefix) {
	case "xmlns":
		return "xmlns"
	case "xml":
		return "http://www.w3.org/XML/1998/namespace"
	}
	for i := len(s.ns) - 1; i >= 0; i-- {
		if s.ns[i].prefix == string(prefix) {
			return s.ns[i].url
		}
	}
	return string(prefix)
}

// endTag handles </name>, which must close the innermost open element.
func (s *scanner) endTag(b *builder, data []byte) error {
	if n := len(s.nameEnd); n > 0 {
		// Fast path: exactly the innermost open element's name, then '>'.
		from := 0
		if n > 1 {
			from = s.nameEnd[n-2]
		}
		top := s.names[from:]
		if k := 2 + len(top); k < len(data) && data[k] == '>' && string(data[2:k]) == string(top) {
			s.pos += k + 1
			s.at(b)
			s.names = s.names[:from]
			s.nameEnd = s.nameEnd[:n-1]
			for len(s.ns) > 0 && s.ns[len(s.ns)-1].depth >= n {
				s.ns = s.ns[:len(s.ns)-1]
			}
			return b.end()
		}
	}
	j, nonASCII, ok, short := scanName(data, 2)
	if short {
		return s.more()
	}
	if !ok {
		return s.syntax(s.pos, "expected element name after </")
	}
	name := data[2:j]
	if !validName(name, nonASCII) {
		return s.syntax(s.pos, "invalid XML name: %s", name)
	}
	_, local, ok := splitName(name)
	if !ok {
		return s.syntax(s.pos, "expected element name after </")
	}
	i := skipSpace(data, j)
	if i >= len(data) {
		return s.more()
	}
	if data[i] != '>' {
		return s.syntax(s.pos+i, "invalid characters between </%s and >", local)
	}
	n := len(s.nameEnd)
	if n == 0 {
		return s.syntax(s.pos, "unexpected end element </%s>", local)
	}
	from := 0
	if n > 1 {
		from = s.nameEnd[n-2]
	}
	if !bytes.Equal(s.names[from:], name) {
		return s.syntax(s.pos, "element <%s> closed by </%s>", s.names[from:], name)
	}
	if i+1 > s.maxTok {
		return s.tooLarge("end tag")
	}
	s.pos += i + 1
	s.at(b)
	s.names = s.names[:from]
	s.nameEnd = s.nameEnd[:n-1]
	for len(s.ns) > 0 && s.ns[len(s.ns)-1].depth >= n {
		s.ns = s.ns[:len(s.ns)-1]
	}
	return b.end()
}

// procInst handles <?target ...?>; the XML declaration's version and
// encoding are checked as encoding/xml does.
func (s *scanner) procInst(b *builder, data []byte) error {
	j, nonASCII, ok, short := scanName(data, 2)
	if short {
		return s.more()
	}
	if !ok {
		return s.syntax(s.pos, "expected target name after <?")
	}
	target := data[2:j]
	if !validName(target, nonASCII) {
		return s.syntax(s.pos, "invalid XML name: %s", target)
	}
	i := skipSpace(data, j)
	k := bytes.Index(data[i:], []byte("?>"))
	if k < 0 {
		return s.more()
	}
	if string(target) == "xml" {
		content := string(data[i : i+k])
		if v := procInstParam("version", content); v != "" && v != "1.0" {
			return s.syntax(s.pos, "unsupported version %q; only version 1.0 is supported", v)
		}
		if enc := procInstParam("encoding", content); enc != "" && !isUTF8Label(enc) {
			if s.prolog {
				return errFallback
			}
			return s.syntax(s.pos, "opening charset %q: encoding declared after the start of the document", enc)
		}
	}
	if i+k+2 > s.maxTok {
		return s.tooLarge("processing instruction")
	}
	s.pos += i + k + 2
	s.prolog = false
	s.at(b)
	return b.skip()
}

// procInstParam returns the quoted value of param= in an XML declaration,
// found the way encoding/xml's procInst finds it.
func procInstParam(param, s string) string {
	key := param + "="
	i := 0
	var sep byte
	for i < len(s) {
		rest := s[i:]
		k := indexString(rest, key)
		if k < 0 || k+len(key) >= len(rest) {
			return ""
		}
		i += k + len(key) + 1
		if c := rest[k+len(key)]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return ""
	}
	n := bytes.IndexByte([]byte(s[i:]), sep)
	if n < 0 {
		return ""
	}
	return s[i : i+n]
}

func indexString(s, sub string) int { return bytes.Index([]byte(s), []byte(sub)) }

// bang handles <!-- comments -->, <![CDATA[sections]]> and directives
// (<!DOCTYPE ...>), which are refused.
func (s *scanner) bang(b *builder, data []byte) error {
	if len(data) < 3 {
		return s.more()
	}
	switch data[2] {
	case '-':
		if len(data) < 4 {
			return s.more()
		}
		if data[3] != '-' {
			return s.syntax(s.pos, "invalid sequence <!- not part of <!--")
		}
		body := data[4:]
		k := bytes.Index(body, []byte("--"))
		if k < 0 || k+2 >= len(body) {
			return s.more()
		}
		if body[k+2] != '>' {
			return s.syntax(s.pos+4+k, `invalid sequence "--" not allowed in comments`)
		}
		if 4+k+3 > s.maxTok {
			return s.tooLarge("comment")
		}
		s.pos += 4 + k + 3
		s.prolog = false
		s.at(b)
		return b.skip()
	case '[':
		const cdata = "CDATA["
		for m := 0; m < len(cdata); m++ {
			if 3+m >= len(data) {
				return s.more()
			}
			if data[3+m] != cdata[m] {
				return s.syntax(s.pos, "invalid <![ sequence")
			}
		}
		body := data[9:]
		k := bytes.Index(body, []byte("]]>"))
		if k < 0 {
			return s.more()
		}
		return s.cdata(b, body[:k], 9+k+3)
	}
	return s.directive(data)
}

// cdata decodes a CDATA section's content (carriage returns only) and checks
// its characters.
func (s *scanner) cdata(b *builder, raw []byte, size int) error {
	if size > s.maxTok {
		return s.tooLarge("CDATA section")
	}
	out := s.tmp[:0]
	var b1 byte
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n == 1 {
				return s.syntax(s.pos+size, "invalid UTF-8")
			}
			if !inCharRange(r) {
				return s.syntax(s.pos+size, "illegal character code %U", r)
			}
			out = append(out, raw[i:i+n]...)
			i += n
			b1 = 0x80
			continue
		case c == '\r':
			out = append(out, '\n')
		case c == '\n' && b1 == '\r':
		case c < 0x20 && c != '\t' && c != '\n':
			return s.syntax(s.pos+size, "illegal character code %U", rune(c))
		default:
			out = append(out, c)
		}
		b1 = c
		i++
	}
	s.tmp = out
	s.pos += size
	if s.prolog && !isPrologText(out) {
		s.prolog = false
	}
	s.at(b)
	return b.chars(out)
}

// directive scans <!...> to its end exactly as encoding/xml does (quotes,
// nested <...> and comments), then refuses it: a DOCTYPE may declare entities,
// and none is ever expanded (RFC 9990 §8.1; docs/standards.md §6.3 item 21).
func (s *scanner) directive(data []byte) error {
	i := 3 // data[2], the first byte, is taken without a look
	var inquote byte
	depth := 0
	for {
		if i >= len(data) {
			return s.more()
		}
		c := data[i]
		i++
		if inquote == 0 && c == '>' && depth == 0 {
			break
		}
	handle:
		switch {
		case c == inquote:
			inquote = 0
		case inquote != 0:
		case c == '\'' || c == '"':
			inquote = c
		case c == '>':
			depth--
		case c == '<':
			const open = "!--"
			for m := 0; m < len(open); m++ {
				if i >= len(data) {
					return s.more()
				}
				c = data[i]
				i++
				if c != open[m] {
					depth++
					goto handle
				}
			}
			var b0, b1 byte
			for {
				if i >= len(data) {
					return s.more()
				}
				c = data[i]
				i++
				if b0 == '-' && b1 == '-' && c == '>' {
					break
				}
				b0, b1 = b1, c
			}
		}
	}
	if i > s.maxTok {
		return s.tooLarge("directive")
	}
	return parse.Errorf(parse.DTDRefused, "line %d: <!%s> refused: document type declarations are never processed",
		s.lineAt(s.pos), directiveName(data[2:i]))
}

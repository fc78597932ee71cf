package hostile

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
)

// seg is a piece of an attack's content: b written n times. A repeated
// segment is compressed once and its compressed form repeated, so a
// gigabyte of whitespace costs a megabyte of CPU work to generate.
type seg struct {
	b []byte
	n int64
}

// lit is a segment written once.
func lit(s string) seg { return seg{b: []byte(s), n: 1} }

// chunkSize is the unit of repeated content: 1 MiB of one byte deflates to
// about a kilobyte (the format's ratio tops out near 1032:1).
const chunkSize = 1 << 20

// fill returns segments making size bytes of pattern repeated (pattern is
// repeated to a chunk first, so a short pattern still compresses well).
func fill(pattern string, size int64) []seg {
	if size <= 0 || pattern == "" {
		return nil
	}
	per := max(chunkSize/len(pattern), 1)
	chunk := bytes.Repeat([]byte(pattern), per)
	var out []seg
	if n := size / int64(len(chunk)); n > 0 {
		out = append(out, seg{b: chunk, n: n})
	}
	if rest := size % int64(len(chunk)); rest > 0 {
		out = append(out, seg{b: chunk[:rest], n: 1})
	}
	return out
}

// rep returns s repeated n times as one segment group (s is batched into a
// chunk of about 1 MiB so the compressed form is reused).
func rep(s string, n int64) []seg {
	if n <= 0 {
		return nil
	}
	per := max(int64(chunkSize/max(len(s), 1)), 1)
	var out []seg
	if full := n / per; full > 0 {
		out = append(out, seg{b: bytes.Repeat([]byte(s), int(per)), n: full})
	}
	if rest := n % per; rest > 0 {
		out = append(out, seg{b: bytes.Repeat([]byte(s), int(rest)), n: 1})
	}
	return out
}

// cat joins segment lists.
func cat(parts ...[]seg) []seg {
	var out []seg
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// segs turns literal strings and []seg values into one list.
func segs(items ...any) []seg {
	var out []seg
	for _, it := range items {
		switch v := it.(type) {
		case string:
			out = append(out, lit(v))
		case seg:
			out = append(out, v)
		case []seg:
			out = append(out, v...)
		default:
			panic("hostile: segs of an unknown type")
		}
	}
	return out
}

// writeRaw writes the segments as they are.
func writeRaw(w io.Writer, ss []seg) error {
	for _, s := range ss {
		for i := int64(0); i < s.n; i++ {
			if _, err := w.Write(s.b); err != nil {
				return err
			}
		}
	}
	return nil
}

// deflated is the raw DEFLATE form (RFC 1951) of segments: each segment is
// compressed on its own and ends byte-aligned with a sync flush (an empty
// stored block), so compressed segments can be concatenated and repeated;
// back-references never reach across a segment.
type deflated struct {
	ss   []seg
	comp [][]byte
	crc  uint32
	size int64
}

var crcTable = crc32.MakeTable(crc32.IEEE)

// flateWriters reuses compressors: each holds about a megabyte of tables.
var flateWriters = sync.Pool{New: func() any {
	fw, err := flate.NewWriter(io.Discard, flate.BestCompression)
	if err != nil {
		panic(err) // only for a bad level
	}
	return fw
}}

// coalesce joins runs of segments written once into one segment, so that
// a document of many small literal pieces is compressed in one go.
func coalesce(ss []seg) []seg {
	var out []seg
	for _, s := range ss {
		if n := len(out); n > 0 && s.n == 1 && out[n-1].n == 1 && len(out[n-1].b)+len(s.b) <= chunkSize {
			out[n-1].b = append(out[n-1].b, s.b...)
			continue
		}
		if s.n == 1 {
			s.b = bytes.Clone(s.b) // appended to above: never alias a caller's chunk
		}
		out = append(out, s)
	}
	return out
}

func deflate(ss []seg) (*deflated, error) {
	ss = coalesce(ss)
	d := &deflated{ss: ss}
	var buf bytes.Buffer
	fw := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(fw)
	for _, s := range ss {
		buf.Reset()
		fw.Reset(&buf)
		if _, err := fw.Write(s.b); err != nil {
			return nil, err
		}
		if err := fw.Flush(); err != nil {
			return nil, err
		}
		d.comp = append(d.comp, bytes.Clone(buf.Bytes()))
		for i := int64(0); i < s.n; i++ {
			d.crc = crc32.Update(d.crc, crcTable, s.b)
		}
		d.size += int64(len(s.b)) * s.n
	}
	return d, nil
}

// finalBlock is an empty final DEFLATE block with fixed codes (BFINAL=1,
// BTYPE=01, end-of-block), which ends the stream.
var finalBlock = []byte{0x03, 0x00}

// compressedSize is the length of the stream write would produce.
func (d *deflated) compressedSize() int64 {
	n := int64(len(finalBlock))
	for i, c := range d.comp {
		n += int64(len(c)) * d.ss[i].n
	}
	return n
}

func (d *deflated) write(w io.Writer) error {
	for i, c := range d.comp {
		for j := int64(0); j < d.ss[i].n; j++ {
			if _, err := w.Write(c); err != nil {
				return err
			}
		}
	}
	_, err := w.Write(finalBlock)
	return err
}

// writeGzip writes one gzip member (RFC 1952) holding the segments.
func writeGzip(w io.Writer, ss []seg) error {
	d, err := deflate(ss)
	if err != nil {
		return err
	}
	// ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=2 (best) OS=255 (unknown).
	if _, err := w.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255}); err != nil {
		return err
	}
	if err := d.write(w); err != nil {
		return err
	}
	var tr [8]byte
	binary.LittleEndian.PutUint32(tr[:4], d.crc)
	binary.LittleEndian.PutUint32(tr[4:], uint32(d.size))
	_, err = w.Write(tr[:])
	return err
}

// zipMember is one file of a zip archive: content segments, deflated, or
// (stored set) bytes kept as they are, for archives nested inside.
type zipMember struct {
	name   string
	ss     []seg
	stored []byte
}

// streamZip writes a zip archive member by member; sizes and CRC-32 are
// true, so a reader that trusts them still meets the bomb.
type streamZip struct{ zw *zip.Writer }

func newStreamZip(w io.Writer) *streamZip { return &streamZip{zw: zip.NewWriter(w)} }

func (z *streamZip) add(m zipMember) error {
	if m.stored != nil {
		fh := &zip.FileHeader{Name: m.name, Method: zip.Store, CRC32: crc32.Checksum(m.stored, crcTable),
			CompressedSize64: uint64(len(m.stored)), UncompressedSize64: uint64(len(m.stored))}
		fw, err := z.zw.CreateRaw(fh)
		if err != nil {
			return err
		}
		_, err = fw.Write(m.stored)
		return err
	}
	d, err := deflate(m.ss)
	if err != nil {
		return err
	}
	fh := &zip.FileHeader{Name: m.name, Method: zip.Deflate, CRC32: d.crc,
		CompressedSize64: uint64(d.compressedSize()), UncompressedSize64: uint64(d.size)}
	fw, err := z.zw.CreateRaw(fh)
	if err != nil {
		return err
	}
	return d.write(fw)
}

func (z *streamZip) close() error { return z.zw.Close() }

// writeZip writes a zip archive of the members.
func writeZip(w io.Writer, members []zipMember) error {
	z := newStreamZip(w)
	for _, m := range members {
		if err := z.add(m); err != nil {
			return err
		}
	}
	return z.close()
}

// writeNestedZip writes a 42.zip-style archive: levels of zips, each
// holding fanout copies of the level below, the bottom one a member r.xml:
// a valid aggregate report padded with leaf bytes of whitespace, so that
// only a limit on the total decompressed (or the nesting) stops it. All but the top level are
// built in memory (fanout^(levels-1) leaves of about leaf/1000 bytes each).
func writeNestedZip(w io.Writer, levels, fanout int, leaf int64) error {
	var b bytes.Buffer
	doc := agg{reportID: "hostile-mime-nested-zips", between: fill(" ", leaf)}.doc()
	if err := writeZip(&b, []zipMember{{name: "r.xml", ss: doc}}); err != nil {
		return err
	}
	inner := bytes.Clone(b.Bytes())
	for l := 1; l < levels; l++ {
		b.Reset()
		ms := make([]zipMember, fanout)
		for i := range ms {
			ms[i] = zipMember{name: fmt.Sprintf("l%d-%d.zip", l, i), stored: inner}
		}
		if err := writeZip(&b, ms); err != nil {
			return err
		}
		inner = bytes.Clone(b.Bytes())
	}
	ms := make([]zipMember, fanout)
	for i := range ms {
		ms[i] = zipMember{name: fmt.Sprintf("top-%d.zip", i), stored: inner}
	}
	return writeZip(w, ms)
}

// gzipBytes returns the gzip form of small segments (for nesting inside
// other containers).
func gzipBytes(ss []seg) []byte {
	var b bytes.Buffer
	if err := writeGzip(&b, ss); err != nil {
		panic(err) // writing to a bytes.Buffer does not fail
	}
	return b.Bytes()
}

// lineWriter breaks what it is given into lines of width bytes ending in
// CRLF, as base64 bodies are (RFC 2045 §6.8: at most 76 characters).
type lineWriter struct {
	w     io.Writer
	width int
	col   int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(l.width-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		n += k
		l.col += k
		p = p[k:]
		if l.col == l.width {
			if _, err := io.WriteString(l.w, "\r\n"); err != nil {
				return n, err
			}
			l.col = 0
		}
	}
	return n, nil
}

func (l *lineWriter) end() error {
	if l.col == 0 {
		return nil
	}
	l.col = 0
	_, err := io.WriteString(l.w, "\r\n")
	return err
}

// writeBase64 writes what body writes, base64-encoded in lines of 76.
func writeBase64(w io.Writer, body func(io.Writer) error) error {
	lw := &lineWriter{w: w, width: 76}
	enc := base64.NewEncoder(base64.StdEncoding, lw)
	if err := body(enc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return lw.end()
}

package extract

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// gzip decompresses the gzip stream in br (RFC 1952) and sniffs what it holds:
// a report, or another container (gzip-in-gzip is seen in the wild,
// docs/standards.md §2.2). The output is streamed, never buffered.
func (w *walker) gzip(br *bufio.Reader, n node) error {
	if !w.enter(n, "gzip") || !w.open(n, "gzip stream") {
		return nil
	}
	c := n.child("gzip")
	c.depth++
	zr, err := gzip.NewReader(br)
	if err != nil {
		w.fail(archiveError(c, err))
		return nil
	}
	if name := path.Base(strings.ReplaceAll(zr.Name, `\`, "/")); zr.Name != "" && name != "." && name != "/" {
		c.filename = name
	}
	gs := &gzipStream{src: br, zr: zr, next: func() error {
		if !w.open(c, "gzip member") {
			return w.over
		}
		return nil
	}}
	lr := w.limit(&archiveReader{r: gs, n: c}, c)
	return w.sniff(bufio.NewReaderSize(lr, sniffLen), c)
}

// gzipStream reads a gzip file member by member. Multistream mode is off so
// that bytes after the last member are tolerated (Mimecast appends "\r\n",
// docs/standards.md §2.2 and §6.2 item 9); a following member is recognised by
// its magic bytes and read on.
type gzipStream struct {
	src  *bufio.Reader
	zr   *gzip.Reader
	next func() error // counts each following member as a container opened
	eof  bool
}

func (g *gzipStream) Read(p []byte) (int, error) {
	if g.eof {
		return 0, io.EOF
	}
	g.zr.Multistream(false)
	for {
		k, err := g.zr.Read(p)
		if err != io.EOF {
			return k, err
		}
		magic, _ := g.src.Peek(3)
		if !bytes.Equal(magic, []byte{0x1f, 0x8b, 8}) {
			g.eof = true
			return k, io.EOF
		}
		if err := g.next(); err != nil {
			return k, err
		}
		if err := g.zr.Reset(g.src); err != nil {
			return k, err
		}
		g.zr.Multistream(false)
		if k > 0 {
			return k, nil
		}
	}
}

// zip opens the zip archive in data and sniffs each member in order.
func (w *walker) zip(data []byte, n node) error {
	if !w.enter(n, "zip") || !w.open(n, "zip archive") {
		return nil
	}
	if entries, ok := declaredEntries(data); ok && entries > uint64(w.lim.MaxZipMembers) {
		// Refused before archive/zip reads a central directory of that size.
		w.fail(parse.Errorf(parse.TooLarge, "%s", n.at(fmt.Sprintf("zip archive declares %d members, more than %d", entries, w.lim.MaxZipMembers))))
		return nil
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		if !bytes.Contains(data, []byte("PK\x05\x06")) {
			w.fail(parse.Wrap(parse.Truncated, err, "%s", n.at("zip archive ends early (no end of central directory)")))
		} else {
			w.fail(parse.Wrap(parse.BadArchive, err, "%s", n.at("corrupt zip archive")))
		}
		return nil
	}
	if len(zr.File) > w.lim.MaxZipMembers {
		w.fail(parse.Errorf(parse.TooLarge, "%s", n.at(fmt.Sprintf("zip archive has %d members, more than %d", len(zr.File), w.lim.MaxZipMembers))))
		return nil
	}
	files := 0
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		files++
		if err := w.zipMember(f, n); err != nil {
			return err
		}
	}
	if files == 0 {
		w.skip(parse.Errorf(parse.NotAReport, "%s", n.at("zip archive has no files")))
	}
	return nil
}

func (w *walker) zipMember(f *zip.File, n node) error {
	c := n.child(fmt.Sprintf("zip member %s", valid.Quote(f.Name, 200)))
	if !w.open(c, "zip member") {
		return nil
	}
	c.depth++
	c.filename = path.Base(strings.ReplaceAll(f.Name, `\`, "/"))
	if f.Flags&1 != 0 {
		w.fail(parse.Errorf(parse.BadArchive, "%s", c.at("encrypted")))
		return nil
	}
	if f.UncompressedSize64 > uint64(w.lim.MaxMemberBytes) {
		w.fail(parse.Errorf(parse.DecompressionLimit, "%s", c.at(fmt.Sprintf("more than %s decompressed (declared %d bytes)", size(w.lim.MaxMemberBytes), f.UncompressedSize64))))
		return nil
	}
	rc, err := f.Open()
	if err != nil {
		w.fail(archiveError(c, err))
		return nil
	}
	defer rc.Close()
	lr := w.limit(&archiveReader{r: rc, n: c}, c)
	return w.sniff(bufio.NewReaderSize(lr, sniffLen), c)
}

// archiveReader turns a decompressor's errors into *parse.Error values that
// name the place: Truncated when the data ends early, BadArchive when it is
// corrupt.
type archiveReader struct {
	r   io.Reader
	n   node
	err error
}

func (a *archiveReader) Read(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	k, err := a.r.Read(p)
	if err != nil && err != io.EOF {
		err = archiveError(a.n, err)
		a.err = err
	}
	return k, err
}

// archiveError classifies an error from compress/gzip, compress/flate or
// archive/zip.
func archiveError(n node, err error) error {
	var pe *parse.Error
	var corrupt flate.CorruptInputError
	var internal flate.InternalError
	switch {
	case errors.As(err, &pe):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return parse.Wrap(parse.Truncated, err, "%s", n.at("ends early"))
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, zip.ErrChecksum):
		return parse.Wrap(parse.BadArchive, err, "%s", n.at("checksum mismatch"))
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, zip.ErrFormat), errors.Is(err, zip.ErrAlgorithm),
		errors.As(err, &corrupt), errors.As(err, &internal):
		return parse.Wrap(parse.BadArchive, err, "%s", n.at("corrupt"))
	}
	return parse.Wrap(parse.BadArchive, err, "%s", n.at("reading"))
}

// limit bounds the decompressed bytes read from r: MaxMemberBytes for this
// stream, MaxTotalBytes for the whole input.
func (w *walker) limit(r io.Reader, n node) io.Reader {
	return &limitReader{r: r, w: w, n: n, left: w.lim.MaxMemberBytes}
}

// limitReader returns a DecompressionLimit error, and stops reading, once
// more than the limit would be read.
type limitReader struct {
	r    io.Reader
	w    *walker
	n    node
	left int64
	err  error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	ratio := ratioAllowance + l.w.lim.MaxRatio*l.w.in.n
	allow := min(l.left, l.w.lim.MaxTotalBytes-l.w.total, ratio-l.w.total)
	if allow <= 0 {
		// At the limit: only the end of the stream is acceptable.
		var one [1]byte
		k, err := io.ReadFull(l.r, one[:])
		if k == 0 {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			return 0, err
		}
		switch {
		case l.left <= 0:
			l.err = parse.Errorf(parse.DecompressionLimit, "%s", l.n.at(fmt.Sprintf("more than %s decompressed", size(l.w.lim.MaxMemberBytes))))
		case l.w.total >= l.w.lim.MaxTotalBytes:
			l.err = parse.Errorf(parse.DecompressionLimit, "%s", l.n.at(fmt.Sprintf("more than %s decompressed in all of the input", size(l.w.lim.MaxTotalBytes))))
			l.w.stop(l.err)
		default:
			l.err = parse.Errorf(parse.DecompressionLimit, "%s", l.n.at(fmt.Sprintf("%d bytes decompressed from %d bytes read: more than %s plus %d times the input", l.w.total, l.w.in.n, size(ratioAllowance), l.w.lim.MaxRatio)))
			l.w.stop(l.err)
		}
		return 0, l.err
	}
	if int64(len(p)) > allow {
		p = p[:allow]
	}
	k, err := l.r.Read(p)
	l.left -= int64(k)
	l.w.total += int64(k)
	return k, err
}

// declaredEntries returns the number of entries a zip archive's end of
// central directory record declares (APPNOTE 4.3.16: 22 bytes, signature
// PK\x05\x06, total entries at offset 10), found in its last 64 KiB + 22
// bytes; ok is false when there is none or a Zip64 record may hold the real
// count (the value 0xffff).
func declaredEntries(data []byte) (entries uint64, ok bool) {
	const eocdLen = 22
	tail := data[max(0, len(data)-(eocdLen+0xffff)):]
	i := bytes.LastIndex(tail, []byte("PK\x05\x06"))
	if i < 0 || len(tail)-i < eocdLen {
		return 0, false
	}
	n := uint64(tail[i+10]) | uint64(tail[i+11])<<8
	return n, n != 0xffff
}

// countReader counts the bytes read through it as decompressed work against
// MaxTotalBytes and MaxRatio, for copies that are not decompression but cost
// the same (an embedded message read into memory).
func (w *walker) counted(r io.Reader, n node) io.Reader {
	return &limitReader{r: r, w: w, n: n, left: math.MaxInt64}
}

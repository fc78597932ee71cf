package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"sort"

	"github.com/dmarcd/dmarcd/parse"
)

// Input is one thing to process: a file, one message of an mbox, or standard input.
type Input struct {
	Name string // the path as given or as found under a directory; PATH#N for mbox message N (1-based)
	Open func() (io.ReadCloser, error)
	Size int64 // in bytes when known (a file, an mbox message), else 0
}

// errMboxTooLarge is returned by the Open of an mbox message over the limit.
var errMboxTooLarge = parse.Errorf(parse.TooLarge, "mbox message larger than the message size limit")

// FileInputs expands command-line paths into inputs, in a stable order: a
// file is one input (or, when it is an mbox, one input per message); a
// directory is walked recursively (Maildir folders included: each message file
// is an input); "-" is standard input. The sequence yields each input with a
// nil error; a path that cannot be read (or ctx done) yields the zero Input
// with the error and ends it. An mbox is split as the loop goes: message N+1
// is not read before message N is processed.
func FileInputs(ctx context.Context, paths []string, maxMessage int64) iter.Seq2[Input, error] {
	return func(yield func(Input, error) bool) {
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				yield(Input{}, err)
				return
			}
			if p == "-" {
				if !yield(Input{Name: "-", Open: func() (io.ReadCloser, error) { return io.NopCloser(os.Stdin), nil }}, nil) {
					return
				}
				continue
			}
			files, err := pathFiles(p)
			if err != nil {
				yield(Input{}, err)
				return
			}
			for _, f := range files {
				if err := ctx.Err(); err != nil {
					yield(Input{}, err)
					return
				}
				if !fileInputs(f, maxMessage, yield) {
					return
				}
			}
		}
	}
}

// pathFiles returns the regular files at p: p itself when it is not a
// directory, else every regular file under it, sorted.
func pathFiles(p string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

// fileInputs yields the inputs of one file: the file, or each message of an
// mbox. It returns false once yield did (the sequence ends).
func fileInputs(path string, maxMessage int64, yield func(Input, error) bool) bool {
	if isMbox(path) {
		return mboxInputs(path, maxMessage, yield)
	}
	in := Input{Name: path, Open: func() (io.ReadCloser, error) { return os.Open(path) }}
	if st, err := os.Stat(path); err == nil {
		in.Size = st.Size()
	}
	return yield(in, nil)
}

// isMbox reports whether the file starts with an mbox "From " separator line
// (RFC 4155) followed by header lines.
func isMbox(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	br := bufio.NewReader(f)
	line, err := br.ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(line, []byte("From ")) {
		return false
	}
	next, _ := br.Peek(64)
	i := bytes.IndexByte(next, ':')
	return i > 0 && bytes.IndexAny(next[:i], " \t\r\n") < 0
}

// mboxInputs splits an mbox (mboxrd/mboxo: ">From " lines unquoted once) into
// messages, each held in memory up to maxMessage bytes, and yields each as
// soon as it is read. A read error is yielded after the messages before it.
// It returns false once the sequence ended (yield returned false, or an
// error was yielded).
func mboxInputs(path string, maxMessage int64, yield func(Input, error) bool) bool {
	f, err := os.Open(path)
	if err != nil {
		yield(Input{}, err)
		return false
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var msg bytes.Buffer
	n, tooLarge := 0, false
	emit := func() bool {
		if n == 0 {
			return true
		}
		data := append([]byte(nil), msg.Bytes()...)
		big := tooLarge
		msg.Reset()
		tooLarge = false
		return yield(Input{Name: fmt.Sprintf("%s#%d", path, n), Size: int64(len(data)), Open: func() (io.ReadCloser, error) {
			if big {
				return nil, errMboxTooLarge
			}
			return memInput{bytes.NewReader(data)}, nil
		}}, nil)
	}
	prevBlank := true
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if prevBlank && bytes.HasPrefix(line, []byte("From ")) {
				if !emit() {
					return false
				}
				n++
			} else if n > 0 {
				l := line
				if bytes.HasPrefix(bytes.TrimLeft(l, ">"), []byte("From ")) && l[0] == '>' {
					l = l[1:]
				}
				if int64(msg.Len()+len(l)) > maxMessage && maxMessage > 0 {
					tooLarge = true
				} else if !tooLarge {
					msg.Write(l)
				}
			}
			prevBlank = len(bytes.TrimRight(line, "\r\n")) == 0
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			yield(Input{}, err)
			return false
		}
	}
	return emit()
}

// memInput is an input held in memory: it seeks, so the pipeline hashes it
// before parsing it (Pipeline.Process), and closes as a no-op.
type memInput struct{ *bytes.Reader }

func (memInput) Close() error { return nil }

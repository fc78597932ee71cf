package extract

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/internal/attacktest"
)

type stream = attacktest.Stream

// work is what one walk did.
type work struct {
	err             error
	inflated, input int64
	opened, parts   int
	alloc           uint64 // bytes allocated
	payloads        int
}

// walkWork walks r, reading every payload to its end, and returns the work
// done, counted by the walker itself.
func walkWork(t *testing.T, r io.Reader, lim Limits) work {
	t.Helper()
	var wk work
	observeWalk = func(w *walker) {
		wk.inflated, wk.input, wk.opened, wk.parts = w.total, w.in.n, w.opened, w.parts
	}
	defer func() { observeWalk = nil }()
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	wk.err = pullEach(r, lim, func(p *Payload) error {
		wk.payloads++
		_, err := io.Copy(io.Discard, p.R)
		return err
	})
	runtime.ReadMemStats(&b)
	wk.alloc = b.TotalAlloc - a.TotalAlloc
	t.Logf("%v; %d bytes read, %d inflated, %d containers, %d parts, %.1f MiB allocated",
		wk.err, wk.input, wk.inflated, wk.opened, wk.parts, float64(wk.alloc)/(1<<20))
	return wk
}

func wantErr(t *testing.T, err error, code parse.Code, what string) {
	t.Helper()
	if parse.CodeOf(err) != code || !strings.Contains(fmt.Sprint(err), what) {
		t.Fatalf("error %v (code %q), want %s saying %q", err, parse.CodeOf(err), code, what)
	}
}

func TestTwoMillionHeaderLinesStopAtTheFieldLimit(t *testing.T) {
	s := &stream{Head: "From: a@reporter.example\r\n", Body: "X-A: b\r\n", N: 2_000_000, Tail: "\r\nbody\r\n"}
	wk := walkWork(t, s, Limits{})
	wantErr(t, wk.err, parse.TooLarge, "email: header has more than 1000 header fields")
	// Read stops at the 1,001st field (plus the sniffer's 64 KiB buffer).
	if s.Consumed > 1001*8+2*sniffLen {
		t.Errorf("read %d bytes of a 16 MB header", s.Consumed)
	}
	if wk.alloc > 16<<20 {
		t.Errorf("allocated %d MiB, want under 16 MiB", wk.alloc>>20)
	}
}

func TestAnEndlessHeaderLineStopsAtTheLineLimit(t *testing.T) {
	s := &stream{Head: "From: a@reporter.example\r\nSubject: ", Body: strings.Repeat("x", 4096), N: 1 << 20}
	wk := walkWork(t, s, Limits{})
	wantErr(t, wk.err, parse.TooLarge, "header has a header line over 64 KiB")
	if s.Consumed > 64<<10+2*sniffLen {
		t.Errorf("read %d bytes of a 4 GiB line", s.Consumed)
	}
}

// multipartMail returns the head and tail of a multipart/mixed mail with
// boundary "b".
func multipartMail() (head, tail []byte) {
	return []byte("From: a@reporter.example\r\nSubject: r\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"),
		[]byte("--b--\r\n")
}

func TestAPartHeaderOfManyLinesStopsAtTheFieldLimit(t *testing.T) {
	head, tail := multipartMail()
	head = append(head, "--b\r\nContent-Type: text/plain\r\n"...)
	tail = append([]byte("\r\nhello\r\n"), tail...)
	s := &stream{Head: string(head), Body: "X-A: b\r\n", N: 500_000, Tail: string(tail)}
	wk := walkWork(t, s, Limits{})
	wantErr(t, wk.err, parse.TooLarge, "part 1 has more than 1000 header fields")
	if wk.alloc > 64<<20 {
		t.Errorf("allocated %d MiB for a 4 MB mail", wk.alloc>>20)
	}
}

func TestAMillionTinyPartsStopAtThePartLimit(t *testing.T) {
	head, tail := multipartMail()
	s := &stream{Head: string(head), Body: "--b\r\n\r\nx\r\n", N: 1_000_000, Tail: string(tail)}
	wk := walkWork(t, s, Limits{})
	wantErr(t, wk.err, parse.TooLarge, "more than 1000 MIME parts in one input")
	// The failure-report check and the walk each read up to the limit.
	if wk.parts > 1001 {
		t.Errorf("%d parts read", wk.parts)
	}
	// Each part read costs a 64 KiB sniff buffer: 1,000 of them, not 1M.
	if wk.alloc > 256<<20 {
		t.Errorf("allocated %d MiB", wk.alloc>>20)
	}
}

// nestedZips returns a 42.zip-style archive: levels of zips, each holding
// fan copies of the level below, the innermost fan files of 1 MiB of
// zeros. It expands to fan^levels MiB.
func nestedZips(t *testing.T, levels, fan int) []byte {
	data := bytes.Repeat([]byte{0}, 1<<20)
	name := "0.bin"
	for l := 1; l <= levels; l++ {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for i := range fan {
			f, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("%d-%s", i, name), Method: zip.Deflate})
			if err != nil {
				t.Fatal(err)
			}
			f.Write(data)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		data, name = b.Bytes(), fmt.Sprintf("l%d.zip", l)
	}
	return data
}

func TestANestedZipBombStopsAfterLittleWork(t *testing.T) {
	bomb := nestedZips(t, 5, 16) // 16^5 MiB = 1 TiB
	wk := walkWork(t, bytes.NewReader(bomb), Limits{})
	wantErr(t, wk.err, parse.DecompressionLimit, "")
	// Work counted, not timed: at most MaxContainers opened, and no more
	// inflated than the ratio allows for this input.
	if wk.opened > 257 {
		t.Errorf("%d containers opened", wk.opened)
	}
	if budget := ratioAllowance + 250*int64(len(bomb)); wk.inflated > budget+64<<10 {
		t.Errorf("%d bytes inflated from %d, over the ratio budget %d", wk.inflated, len(bomb), budget)
	}
	t.Logf("a %d-byte bomb of %d levels stopped after %d MiB inflated", len(bomb), 5, wk.inflated>>20)
}

func TestTheRatioStopsAReportBombUnderTheSizeLimits(t *testing.T) {
	// 512 MiB of spaces after "<feedback>": under max_member_bytes and
	// max_total_bytes, but a thousand times its compressed size.
	bomb := gzipBomb(t, "<feedback>", 512)
	wk := walkWork(t, bytes.NewReader(bomb), Limits{})
	wantErr(t, wk.err, parse.DecompressionLimit, "times the input")
	if budget := ratioAllowance + 250*int64(len(bomb)); wk.inflated > budget {
		t.Errorf("%d bytes inflated, over the ratio budget %d", wk.inflated, budget)
	}
}

func TestAMillionGzipMembersStopAtTheContainerLimit(t *testing.T) {
	member := gz(t, nil)
	s := &stream{Head: string(gz(t, []byte("<feedback>"))), Body: string(member), N: 1_000_000}
	wk := walkWork(t, s, Limits{})
	wantErr(t, wk.err, parse.DecompressionLimit, "more than 256 containers opened")
	if s.Consumed > 257*int64(len(member))+2*sniffLen {
		t.Errorf("read %d bytes of %d members", s.Consumed, 1_000_000)
	}
}

func TestAZipDeclaringTooManyMembersIsRefusedBeforeItsDirectoryIsRead(t *testing.T) {
	var ms []member
	for i := range 100 {
		ms = append(ms, member{fmt.Sprintf("%d.xml", i), []byte(report)})
	}
	_, err := walkAll(mkzip(t, ms...), Limits{MaxZipMembers: 8})
	wantErr(t, err, parse.TooLarge, "zip archive declares 100 members, more than 8")
}

func TestEmbeddedMessageCopiesCountAsWork(t *testing.T) {
	// Messages nested in messages, each copied whole: the copies count
	// against MaxTotalBytes like inflated bytes.
	msg := mkmail("r", "multipart/mixed", mimePart{ctype: "text/plain", cte: "7bit", body: bytes.Repeat([]byte("filler line\r\n"), 20000)})
	for range 3 {
		msg = mkmail("fwd", "multipart/mixed", mimePart{ctype: "message/rfc822", cte: "7bit", body: msg})
	}
	wk := walkWork(t, bytes.NewReader(msg), Limits{MaxTotalBytes: 400 << 10})
	wantErr(t, wk.err, parse.DecompressionLimit, "in all of the input")
}

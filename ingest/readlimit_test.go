package ingest_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
	"github.com/dmarcd/dmarcd/store"
)

// memStore stores TLS reports and logs inputs in memory; the embedded nil
// Store stands for the methods these tests never reach.
type memStore struct {
	ingest.Store
	tls    int
	logged []store.InputRow
}

func (s *memStore) WriteTLSRPT(context.Context, *tlsrpt.Report, store.InputMeta) (store.WriteResult, error) {
	s.tls++
	return store.WriteResult{Status: store.StatusStored}, nil
}

func (s *memStore) LogInput(_ context.Context, in store.InputRow) error {
	s.logged = append(s.logged, in)
	return nil
}

// countingSource yields chunk again and again, up to limit bytes, and
// counts what was read: an 8 GiB file or an endless pipe without the bytes.
type countingSource struct {
	chunk []byte
	limit int64
	read  int64
}

func (c *countingSource) Read(p []byte) (int, error) {
	if c.read >= c.limit {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && c.read < c.limit {
		k := copy(p[n:], c.chunk[c.read%int64(len(c.chunk)):])
		if rest := c.limit - c.read; int64(k) > rest {
			k = int(rest)
		}
		n += k
		c.read += int64(k)
	}
	return n, nil
}

func TestAnInputIsNotReadPastItsJudgement(t *testing.T) {
	st := &memStore{}
	p := ingest.New(st, ingest.Options{Source: "file"})
	src := &countingSource{chunk: []byte("\x00garbage that is no report "), limit: 8 << 30}
	out := p.Process(context.Background(), "big.bin", src)
	if out.Status != ingest.Invalid || out.ReasonCode != "not_a_report" {
		t.Fatalf("outcome %s %s %q, want invalid not_a_report", out.Status, out.ReasonCode, out.Reason)
	}
	// The sniffer looks at 64 KiB; reading ends there, not at 8 GiB.
	if src.read > 1<<20 || out.Size != src.read || !out.ReadPartially {
		t.Fatalf("read %d bytes, size %d, read_partially %v: want under 1 MiB read, all of it the size, and read_partially", src.read, out.Size, out.ReadPartially)
	}
	if !strings.Contains(out.Reason, "first") || len(st.logged) != 1 || st.logged[0].Size != src.read {
		t.Fatalf("reason %q, logged %+v: want the reason to say the hash is of the first bytes read", out.Reason, st.logged)
	}
	t.Logf("read %d bytes: %s", src.read, out.Reason)
}

// gzipStream is a gzip file of head, then run (a sync-flushed deflate
// fragment of chunk) n times, then tail: a stream of any length that costs
// one compression of chunk. read counts the gzip bytes handed out.
type gzipStream struct {
	parts [][]byte
	n     int
	read  int64
	cur   []byte
	stage int
}

func newGzipStream(t *testing.T, head string, chunk []byte, n int, tail string) *gzipStream {
	frag := func(data []byte, final bool) []byte {
		var b bytes.Buffer
		fw, _ := flate.NewWriter(&b, flate.BestSpeed)
		fw.Write(data)
		if final {
			fw.Close()
		} else {
			fw.Flush()
		}
		return b.Bytes()
	}
	crc := crc32.ChecksumIEEE([]byte(head))
	for range n {
		crc = crc32.Update(crc, crc32.IEEETable, chunk)
	}
	crc = crc32.Update(crc, crc32.IEEETable, []byte(tail))
	size := uint32(len(head) + n*len(chunk) + len(tail))
	end := binary.LittleEndian.AppendUint32(frag([]byte(tail), true), crc)
	end = binary.LittleEndian.AppendUint32(end, size)
	return &gzipStream{n: n, parts: [][]byte{
		append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, frag([]byte(head), false)...),
		frag(chunk, false), end}}
}

func (g *gzipStream) Read(p []byte) (int, error) {
	for len(g.cur) == 0 {
		switch {
		case g.stage == 0:
			g.cur, g.stage = g.parts[0], 1
		case g.stage == 1 && g.n > 0:
			g.cur, g.n = g.parts[1], g.n-1
		case g.stage == 1:
			g.cur, g.stage = g.parts[2], 2
		default:
			return 0, io.EOF
		}
	}
	k := copy(p, g.cur)
	g.cur = g.cur[k:]
	g.read += int64(k)
	return k, nil
}

const tlsReportJSON = `{"organization-name":"o","report-id":"r1","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},"policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}`

func TestATLSReportGetsTheTLSLimitNotTheMemberLimit(t *testing.T) {
	st := &memStore{}
	p := ingest.New(st, ingest.Options{Source: "file"})
	// 64 MiB of white space inside the JSON, gzipped: under
	// max_member_bytes (1 GiB), over the TLS parser's 20 MiB.
	chunk := bytes.Repeat([]byte("  \n\t"), 1<<18) // 1 MiB
	g := newGzipStream(t, tlsReportJSON[:len(tlsReportJSON)-1], chunk, 64, "}")
	out := p.Process(context.Background(), "big.json.gz", g)
	if out.Status != ingest.Invalid || out.ReasonCode != "too_large" || !strings.Contains(out.Reason, "tls report: more than 20 MiB") {
		t.Fatalf("outcome %s %s %q, want invalid too_large from the TLS parser", out.Status, out.ReasonCode, out.Reason)
	}
	// Reading stopped near 20 MiB of JSON: the gzip bytes of 21 chunks, and
	// the 64 KiB the sniffer buffers.
	if run := int64(len(g.parts[1])); g.read > 21*run+128<<10 || st.tls != 0 || !out.ReadPartially {
		t.Fatalf("%d gzip bytes read (%d per MiB), %d stored: want reading to stop near 20 MiB and nothing stored", g.read, run, st.tls)
	}
	t.Logf("%d of %d gzip bytes read: %s", g.read, 64*len(g.parts[1]), out.Reason)
}

func TestAStoredInputIsHashedWhole(t *testing.T) {
	st := &memStore{}
	p := ingest.New(st, ingest.Options{Source: "file"})
	in := tlsReportJSON + strings.Repeat("\n", 100<<10)
	out := p.Process(context.Background(), "r.json", strings.NewReader(in))
	sum := sha256.Sum256([]byte(in))
	if out.Status != ingest.Stored || out.ReadPartially || out.Size != int64(len(in)) || out.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("outcome %+v: want stored, the whole input hashed", out)
	}
}

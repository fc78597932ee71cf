package hostile

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"math/big"
	"net/mail"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// small is the size each generator is checked at: the test size, cut to a
// megabyte (or a thousand items) so the checks take milliseconds.
func small(a Attack) int64 {
	if a.TestSize > 1<<20 {
		return 1 << 20
	}
	if a.TestSize > 1_000 && a.TestSize < 1<<20 && !strings.Contains(a.What, "bytes") {
		return 1_000
	}
	if a.Stdin && a.TestSize == 0 {
		return 1 << 20
	}
	return a.TestSize
}

func generate(t *testing.T, a Attack, size int64) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := a.Write(&b, size); err != nil {
		t.Fatalf("%s: %v", a.Name, err)
	}
	return b.Bytes()
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr) // checks the CRC-32 and length at the end
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func attack(t *testing.T, name string) Attack {
	t.Helper()
	a, ok := Find(name)
	if !ok {
		t.Fatalf("no attack %s", name)
	}
	return a
}

func TestEveryAttackHasANameAnOutcomeAndAWellFormedContainer(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range All() {
		if a.Name == "" || seen[a.Name] || a.Want.Status != "invalid" || len(a.Want.Codes) == 0 || a.What == "" {
			t.Errorf("attack %+v: needs a unique name, a what, status invalid and codes", a)
		}
		seen[a.Name] = true
		b := generate(t, a, small(a))
		switch {
		case strings.HasSuffix(a.Ext, ".gz"):
			doc := gunzip(t, b)
			if !bytes.HasSuffix(doc, []byte("</feedback>\n")) && !bytes.HasSuffix(doc, []byte("]}\n")) {
				t.Errorf("%s: the document does not end as a report does: %q", a.Name, tail(doc))
			}
		case a.Mail:
			m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(b)))
			if err != nil {
				t.Errorf("%s: not a mail: %v", a.Name, err)
				continue
			}
			if m.Header.Get("From") == "" || m.Header.Get("Content-Type") == "" {
				t.Errorf("%s: mail without From or Content-Type", a.Name)
			}
		}
		// Every attack also makes a mail for IMAP.
		var m bytes.Buffer
		if err := a.AsMail(&m, min(small(a), 4096)); err != nil {
			t.Errorf("%s: AsMail: %v", a.Name, err)
		} else if _, err := mail.ReadMessage(bufio.NewReader(&m)); err != nil {
			t.Errorf("%s: AsMail is not a mail: %v", a.Name, err)
		}
	}
}

func tail(b []byte) []byte { return b[max(len(b)-40, 0):] }

func TestHugeOrgNameIsExactlyItsSizeAndCompressesAThousandfold(t *testing.T) {
	const size = 4 << 20
	b := generate(t, attack(t, "agg-huge-org-name"), size)
	doc := gunzip(t, b)
	org := regexp.MustCompile(`<org_name>(A*)</org_name>`).FindSubmatch(doc)
	if org == nil || len(org[1]) != size {
		t.Fatalf("org_name of %d bytes, want %d", len(org[1]), size)
	}
	if ratio := len(doc) / len(b); ratio < 900 {
		t.Errorf("%d bytes of gzip expand to %d: ratio %d, want over 900", len(b), len(doc), ratio)
	}
}

func TestGeneratorsStreamWithoutHoldingTheAttack(t *testing.T) {
	// 256 MiB of org_name (gzip) and 64 MiB of one header line (raw) go
	// through Open; the allocations stay a few megabytes.
	for _, c := range []struct {
		name string
		size int64
	}{{"agg-huge-org-name", 256 << 20}, {"mime-huge-header-line", 64 << 20}, {"agg-whitespace", 256 << 20}} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := attack(t, c.name).Open(c.size)
		n, err := io.Copy(io.Discard, r)
		r.Close()
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
			t.Errorf("%s at %d bytes: %d bytes allocated while streaming %d, want under 16 MiB", c.name, c.size, alloc, n)
		}
	}
}

func TestOpenStopsTheGeneratorWhenClosed(t *testing.T) {
	r := attack(t, "stdin-endless").Open(0)
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf, []byte("<feedback>")) {
		t.Errorf("stream begins %q", buf[:20])
	}
	r.Close() // the generator's next write fails and its goroutine ends
}

func TestWhitespaceAttackExpandsPastTheMemberLimit(t *testing.T) {
	a := attack(t, "agg-whitespace")
	var c countWriter
	if err := a.Write(&c, a.TestSize); err != nil {
		t.Fatal(err)
	}
	if a.TestSize <= 64<<20 || c.n > a.TestSize/500 {
		t.Errorf("test size %d (want past the test's 64 MiB member limit) in %d bytes of gzip", a.TestSize, c.n)
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func TestZipAttacksHoldWhatTheySay(t *testing.T) {
	// Many members: the archive lists them all.
	m := generate(t, attack(t, "mime-zip-many-members"), 200)
	zb := attachment(t, m)
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 200 {
		t.Errorf("%d members, want 200", len(zr.File))
	}
	// Nested: two levels of 8 zips, leaves a padded report.
	m = generate(t, attack(t, "mime-nested-zips"), 2)
	zb = attachment(t, m)
	zr, err = zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	leaves := countLeaves(t, zr)
	if leaves != 64 {
		t.Errorf("%d leaves, want 8*8", leaves)
	}
	// Zip bomb: the member declares its true size.
	m = generate(t, attack(t, "mime-zip-bomb"), 8<<20)
	zb = attachment(t, m)
	zr, err = zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	if got := zr.File[0].UncompressedSize64; got != 8<<20+uint64(len("<feedback>")) {
		t.Errorf("member declares %d bytes", got)
	}
	rc, _ := zr.File[0].Open()
	n, err := io.Copy(io.Discard, rc)
	if err != nil || n != int64(zr.File[0].UncompressedSize64) {
		t.Errorf("member inflates to %d bytes (%v)", n, err)
	}
}

func countLeaves(t *testing.T, zr *zip.Reader) int {
	t.Helper()
	n := 0
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f.Name, ".zip") {
			b, _ := io.ReadAll(rc)
			inner, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			n += countLeaves(t, inner)
		} else {
			// Read the head only: inflating 64 leaves of 16 MiB is the
			// bomb's job, not the test's.
			head := make([]byte, 64)
			io.ReadFull(rc, head)
			if !bytes.HasPrefix(head, []byte("<?xml")) || f.UncompressedSize64 < 16<<20 {
				t.Errorf("leaf %s: %d bytes beginning %q", f.Name, f.UncompressedSize64, head)
			}
			n++
		}
		rc.Close()
	}
	return n
}

// attachment returns the decoded base64 attachment of a generated mail.
func attachment(t *testing.T, m []byte) []byte {
	t.Helper()
	_, body, ok := bytes.Cut(m, []byte("Content-Transfer-Encoding: base64\r\n"))
	if !ok {
		t.Fatal("no base64 part")
	}
	_, body, _ = bytes.Cut(body, []byte("\r\n\r\n"))
	body, _, _ = bytes.Cut(body, []byte("--=-hostile--"))
	dec, err := io.ReadAll(base64Decoder(body))
	if err != nil {
		t.Fatal(err)
	}
	return dec
}

func TestValueAttacksCarryTheValuesTheyName(t *testing.T) {
	doc := string(gunzip(t, generate(t, attack(t, "agg-count-overflow"), 1)))
	sum := new(big.Int)
	for _, c := range regexp.MustCompile(`<count>(\d+)</count>`).FindAllStringSubmatch(doc, -1) {
		v, _ := new(big.Int).SetString(c[1], 10)
		sum.Add(sum, v)
	}
	if sum.BitLen() <= 64 {
		t.Errorf("counts sum to %s, which fits 64 bits", sum)
	}
	doc = string(gunzip(t, generate(t, attack(t, "agg-future-date"), 1)))
	if !strings.Contains(doc, "<begin>4345804800</begin>") { // 2107-09-18
		t.Errorf("no 2107 date: %s", doc)
	}
	doc = string(gunzip(t, generate(t, attack(t, "agg-hostile-domain"), 1)))
	if !strings.Contains(doc, "<domain>example.com\n&quot;&apos;!x&apos;); SELECT") {
		t.Errorf("no hostile domain: %s", doc)
	}
	doc = string(gunzip(t, generate(t, attack(t, "agg-entity-bomb"), 10)))
	if strings.Count(doc, "<!ENTITY") != 10 || !strings.Contains(doc, "&e9;") {
		t.Errorf("no 10-level entity bomb: %s", doc)
	}
	doc = string(gunzip(t, generate(t, attack(t, "tls-escape-report-id"), 1)))
	if !strings.Contains(doc, `\u001b]0;pwned\u0007`) {
		t.Errorf("no terminal escape: %s", doc)
	}
	m := string(generate(t, attack(t, "mime-deep-multipart"), 100))
	if strings.Count(m, "multipart/mixed") != 101 || !strings.Contains(m, "boundary=\"b100\"") {
		t.Errorf("not 100 nested multiparts")
	}
	m = string(generate(t, attack(t, "arf-hostile-domain"), 1))
	if !strings.Contains(m, "Reported-Domain: example.com \"'\x00!x'); SELECT") {
		t.Errorf("no hostile Reported-Domain: %s", m)
	}
}

func TestGoodReportAndMailCarryTheReportID(t *testing.T) {
	r := string(GoodReport("good-x"))
	if !strings.Contains(r, "<report_id>good-x</report_id>") || !strings.Contains(r, "<domain>example.com</domain>") {
		t.Errorf("good report: %s", r)
	}
	m := GoodMail("good-y")
	if !strings.Contains(string(attachment(t, m)), "<report_id>good-y</report_id>") {
		t.Errorf("good mail does not carry its report")
	}
}

func base64Decoder(b []byte) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.ReplaceAll(b, []byte("\r\n"), nil)))
}

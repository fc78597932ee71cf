package extract

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"

	"github.com/dmarcd/dmarcd/parse"
)

// corpusDir is ../shared/corpus next to the module root.
func corpusDir(t testing.TB) string { return corpus.Dir(t) }

// got is a payload as the test sees it, its stream read to the end.
type got struct {
	Kind     Kind
	Where    string
	Filename string
	Data     []byte
	ReadErr  error
	Mail     *MailInfo
}

// pullEach pulls every payload of r and hands it to fn; fn's error closes
// the Reader and is returned, as a caller that stops at a payload's read
// error does. The Reader's own error (io.EOF aside) is returned as is.
func pullEach(r io.Reader, lim Limits, fn func(*Payload) error) error {
	x := NewReader(r, lim)
	defer x.Close()
	for {
		p, err := x.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
	}
}

// walkAll pulls every payload and reads it to the end. A read error is kept
// in the payload and does not abort the walk.
func walkAll(data []byte, lim Limits) ([]got, error) {
	var out []got
	err := pullEach(bytes.NewReader(data), lim, func(p *Payload) error {
		b, err := io.ReadAll(p.R)
		out = append(out, got{p.Kind, p.Where, p.Filename, b, err, p.Mail})
		return nil
	})
	return out, err
}

// walkStrict is walkAll that stops at a read error, as the pipeline does.
func walkStrict(data []byte, lim Limits) ([]got, error) {
	var out []got
	err := pullEach(bytes.NewReader(data), lim, func(p *Payload) error {
		b, err := io.ReadAll(p.R)
		out = append(out, got{p.Kind, p.Where, p.Filename, b, err, p.Mail})
		return err
	})
	return out, err
}

func wantCode(t *testing.T, err error, code parse.Code) {
	t.Helper()
	if parse.CodeOf(err) != code {
		t.Fatalf("error %v (code %q), want code %q", err, parse.CodeOf(err), code)
	}
}

func kinds(ps []got) string {
	var s []string
	for _, p := range ps {
		s = append(s, string(p.Kind))
	}
	return strings.Join(s, ",")
}

// TestCorpusPayloads walks every corpus file and checks the kinds and count
// of payloads against the MANIFEST type.
func TestCorpusPayloads(t *testing.T) {
	dir := corpusDir(t)
	manifest, err := os.ReadFile(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatalf("reading corpus manifest: %v", err)
	}
	malformed := map[string]parse.Code{
		"keltia__dmarc-cat/malformed/bad.zip":                                   parse.NotAReport, // its only member is empty
		"domainaware__parsedmarc/malformed/empty.xml":                           parse.NotAReport,
		"ZeWaren__dmarc-report-milter/malformed/report-with-unreadable-zip.eml": parse.BadArchive,
		// Broken XML is still an aggregate candidate: the parser rejects it.
		"domainaware__parsedmarc/malformed/invalid_utf_8.xml": "",
		"domainaware__parsedmarc/malformed/invalid_xml.xml":   "",
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(manifest)), "\n")[1:] {
		cols := strings.Split(line, "\t")
		rel, typ := cols[0], cols[2]
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			ps, err := walkAll(data, DefaultLimits())
			for _, p := range ps {
				if p.ReadErr != nil {
					t.Errorf("payload %s at %q: read error %v", p.Kind, p.Where, p.ReadErr)
				}
			}
			isMail := strings.HasSuffix(rel, ".eml")
			switch typ {
			case "aggregate", "email":
				if err != nil || len(ps) != 1 || ps[0].Kind != Aggregate {
					t.Fatalf("got payloads [%s], error %v; want one aggregate", kinds(ps), err)
				}
				if !bytes.Contains(ps[0].Data, []byte("<feedback")) {
					t.Errorf("aggregate payload has no <feedback: %.80q", ps[0].Data)
				}
			case "smtp_tls":
				if err != nil || len(ps) != 1 || ps[0].Kind != TLSRPT {
					t.Fatalf("got payloads [%s], error %v; want one tlsrpt", kinds(ps), err)
				}
				if !bytes.HasPrefix(bytes.TrimSpace(ps[0].Data), []byte("{")) {
					t.Errorf("tlsrpt payload is not a JSON object: %.80q", ps[0].Data)
				}
			case "forensic":
				if err != nil || len(ps) != 1 || ps[0].Kind != Failure {
					t.Fatalf("got payloads [%s], error %v; want one failure", kinds(ps), err)
				}
				if !bytes.Equal(ps[0].Data, data) {
					t.Errorf("failure payload is not the whole message")
				}
			case "malformed":
				code, ok := malformed[rel]
				if !ok {
					t.Fatalf("malformed corpus file without an expectation in this test")
				}
				if code == "" {
					if err != nil || len(ps) != 1 || ps[0].Kind != Aggregate {
						t.Fatalf("got payloads [%s], error %v; want one aggregate", kinds(ps), err)
					}
					return
				}
				if len(ps) != 0 {
					t.Fatalf("got payloads [%s], want none", kinds(ps))
				}
				wantCode(t, err, code)
				return
			default:
				t.Skipf("type %q not walked by this test", typ)
			}
			if isMail != (ps[0].Mail != nil) {
				t.Errorf("Mail = %+v for an input that is an email: %v", ps[0].Mail, isMail)
			}
		})
		n++
	}
	if n < 60 {
		t.Errorf("walked %d corpus files, expected the whole manifest (64)", n)
	}
}

// TestCorpusWhereAndMail pins the path, file name and mail headers reported
// for Google's top-level application/zip body and a multipart mail.
func TestCorpusWhereAndMail(t *testing.T) {
	dir := corpusDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "ZeWaren__dmarc-report-milter/email/report-with-zip.eml"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := walkAll(data, DefaultLimits())
	if err != nil || len(ps) != 1 {
		t.Fatalf("got %d payloads, error %v", len(ps), err)
	}
	p := ps[0]
	wantWhere := `body "google.com!example.net!1728777600!1728863999.zip" > zip member "google.com!example.net!1728777600!1728863999.xml"`
	if p.Where != wantWhere || p.Filename != "google.com!example.net!1728777600!1728863999.xml" {
		t.Errorf("Where %q Filename %q, want %q", p.Where, p.Filename, wantWhere)
	}
	if p.Mail == nil || p.Mail.From != "noreply-dmarc-support@google.com" ||
		!strings.HasPrefix(p.Mail.Subject, "Report domain: example.net Submitter: google.com") || p.Mail.Date.IsZero() || p.Mail.MessageID == "" {
		t.Errorf("Mail = %+v", p.Mail)
	}

	data, err = os.ReadFile(filepath.Join(dir, "stalwartlabs__mail-auth/email/103.eml"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err = walkAll(data, DefaultLimits())
	if err != nil || len(ps) != 1 {
		t.Fatalf("got %d payloads, error %v", len(ps), err)
	}
	if want := `part 2 "protection.outlook.com!stalw.art!1666483200!1666569600.xml.gz" > gzip`; ps[0].Where != want {
		t.Errorf("Where %q, want %q", ps[0].Where, want)
	}
	// Outlook's Subject is RFC 2047 base64: it must come out decoded.
	if s := ps[0].Mail.Subject; strings.Contains(s, "=?") || !strings.Contains(s, "Submitter: protection.outlook.com") {
		t.Errorf("Subject not decoded: %q", s)
	}
}

// --- builders for hand-made inputs ---

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type member struct {
	name string
	data []byte
}

func mkzip(t testing.TB, ms ...member) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, m := range ms {
		f, err := zw.Create(m.name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(m.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// mimePart is one part of a hand-made multipart mail. Body is base64 encoded
// unless cte is set ("7bit" leaves it as is).
type mimePart struct {
	ctype, filename, cte string
	body                 []byte
}

var boundaries int

func mkmail(subject, ctype string, parts ...mimePart) []byte {
	var b bytes.Buffer
	boundaries++
	boundary := fmt.Sprintf("=_b0undary_%d", boundaries)
	fmt.Fprintf(&b, "From: Reporter <dmarc@reporter.example>\r\nTo: rua@example.com\r\nSubject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: Mon, 14 Oct 2024 09:40:04 +0000\r\nMessage-ID: <m1@reporter.example>\r\nMIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: %s; boundary=\"%s\"\r\n\r\nThis is a MIME message.\r\n", ctype, boundary)
	for _, p := range parts {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s", boundary, p.ctype)
		if p.filename != "" {
			fmt.Fprintf(&b, "; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"", p.filename, p.filename)
		}
		cte := p.cte
		if cte == "" {
			cte = "base64"
		}
		fmt.Fprintf(&b, "\r\nContent-Transfer-Encoding: %s\r\n\r\n", cte)
		if cte == "base64" {
			enc := base64.StdEncoding.EncodeToString(p.body)
			for len(enc) > 76 {
				b.WriteString(enc[:76] + "\r\n")
				enc = enc[76:]
			}
			b.WriteString(enc + "\r\n")
		} else {
			b.Write(p.body)
			b.WriteString("\r\n")
		}
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

const report = `<?xml version="1.0" encoding="UTF-8"?>
<feedback><report_metadata><org_name>reporter.example</org_name><report_id>1</report_id></report_metadata>
<policy_published><domain>example.com</domain></policy_published></feedback>
`

const tlsReport = `{"organization-name":"reporter.example","date-range":{},"report-id":"1","policies":[]}`

// deflateRun returns a raw deflate fragment (sync-flushed, not final) of n
// copies of c: fragments can be concatenated, so a huge stream costs little.
func deflateRun(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	fw.Write(data)
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bomb returns a raw deflate stream of prefix followed by mib MiB of spaces,
// with its CRC-32 and length.
func bomb(t testing.TB, prefix string, mib int) (deflated []byte, crc uint32, n int64) {
	t.Helper()
	chunk := bytes.Repeat([]byte(" "), 1<<20)
	run := deflateRun(t, chunk)
	var b bytes.Buffer
	b.Write(deflateRun(t, []byte(prefix)))
	crc = crc32.ChecksumIEEE([]byte(prefix))
	for range mib {
		b.Write(run)
		crc = crc32.Update(crc, crc32.IEEETable, chunk)
	}
	b.Write([]byte{0x03, 0x00}) // final empty fixed-Huffman block
	return b.Bytes(), crc, int64(len(prefix)) + int64(mib)<<20
}

func gzipBomb(t testing.TB, prefix string, mib int) []byte {
	t.Helper()
	d, crc, n := bomb(t, prefix, mib)
	out := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff}
	out = append(out, d...)
	out = binary.LittleEndian.AppendUint32(out, crc)
	return binary.LittleEndian.AppendUint32(out, uint32(n))
}

func zipBomb(t testing.TB, prefix string, mib int) []byte {
	t.Helper()
	d, crc, n := bomb(t, prefix, mib)
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	f, err := zw.CreateRaw(&zip.FileHeader{Name: "r.xml", Method: zip.Deflate, CRC32: crc,
		CompressedSize64: uint64(len(d)), UncompressedSize64: uint64(n)})
	if err != nil {
		t.Fatal(err)
	}
	f.Write(d)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var smallLimits = Limits{MaxMessageBytes: 4 << 20, MaxMemberBytes: 1 << 20, MaxTotalBytes: 2 << 20, MaxZipMembers: 8, MaxDepth: 8}

func TestGzipBombStopsAtMemberLimit(t *testing.T) {
	data := gzipBomb(t, "<feedback>", 2048) // 2 GiB decompressed
	t.Logf("gzip bomb: %d bytes compressed, 2 GiB decompressed", len(data))
	var read int64
	err := pullEach(bytes.NewReader(data), smallLimits, func(p *Payload) error {
		n, err := io.Copy(io.Discard, p.R)
		read = n
		return err
	})
	wantCode(t, err, parse.DecompressionLimit)
	if read > smallLimits.MaxMemberBytes {
		t.Errorf("read %d bytes, more than the %d limit", read, smallLimits.MaxMemberBytes)
	}
	if want := "gzip: more than 1 MiB decompressed"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestGzipBombInsideMailStopsAtMemberLimit(t *testing.T) {
	mail := mkmail("Report Domain: example.com", "multipart/mixed",
		mimePart{ctype: "application/gzip", filename: "r.xml.gz", body: gzipBomb(t, "<feedback>", 64)})
	_, err := walkStrict(mail, smallLimits)
	wantCode(t, err, parse.DecompressionLimit)
	if want := `part 1 "r.xml.gz" > gzip: more than 1 MiB decompressed`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestZipBombRefusedByDeclaredSize(t *testing.T) {
	data := zipBomb(t, "<feedback>", 2048)
	called := false
	err := pullEach(bytes.NewReader(data), smallLimits, func(p *Payload) error { called = true; return nil })
	wantCode(t, err, parse.DecompressionLimit)
	if called {
		t.Error("payload delivered for a member declared larger than the limit")
	}
	if !strings.HasPrefix(err.Error(), `zip member "r.xml": more than 1 MiB decompressed`) {
		t.Errorf("error %q", err)
	}
}

func TestZipBombStreamedStopsAtTotalLimit(t *testing.T) {
	// The member is under the member limit but over the total: the limiting
	// reader, not the declared-size check, stops it.
	data := zipBomb(t, "<feedback>", 3)
	lim := smallLimits
	lim.MaxMemberBytes = 4 << 20
	lim.MaxTotalBytes = 1 << 20
	_, err := walkStrict(data, lim)
	wantCode(t, err, parse.DecompressionLimit)
	if want := `zip member "r.xml": more than 1 MiB decompressed in all of the input`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestTotalLimitAcrossZipMembers(t *testing.T) {
	big := []byte("<feedback>" + strings.Repeat(" ", 700<<10))
	data := mkzip(t, member{"a.xml", big}, member{"b.xml", big}, member{"c.xml", big})
	ps, err := walkAll(data, smallLimits) // 1 MiB a member, 2 MiB in all
	if err != nil || len(ps) != 3 {
		t.Fatalf("got %d payloads, error %v", len(ps), err)
	}
	if ps[0].ReadErr != nil || ps[1].ReadErr != nil {
		t.Errorf("first two members under the total limit failed: %v, %v", ps[0].ReadErr, ps[1].ReadErr)
	}
	if parse.CodeOf(ps[2].ReadErr) != parse.DecompressionLimit {
		t.Errorf("third member: read error %v, want DecompressionLimit", ps[2].ReadErr)
	}
}

func TestTooManyZipMembers(t *testing.T) {
	var ms []member
	for i := range 9 {
		ms = append(ms, member{fmt.Sprintf("%d.xml", i), []byte(report)})
	}
	_, err := walkAll(mkzip(t, ms...), smallLimits)
	wantCode(t, err, parse.TooLarge)
}

func TestNestedForwardWithZip(t *testing.T) {
	inner := mkmail("Report domain: example.com Submitter: google.com", "multipart/mixed",
		mimePart{ctype: "text/plain", cte: "7bit", body: []byte("Here is the report.")},
		mimePart{ctype: "application/zip", filename: "google.com!example.com!1!2.zip", body: mkzip(t, member{"google.com!example.com!1!2.xml", []byte(report)})})
	outer := mkmail("Fwd: report", "multipart/mixed",
		mimePart{ctype: "text/plain", cte: "7bit", body: []byte("See attached.")},
		mimePart{ctype: "message/rfc822", cte: "7bit", body: inner})
	ps, err := walkAll(outer, DefaultLimits())
	if err != nil || len(ps) != 1 || ps[0].Kind != Aggregate {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
	if want := `part 2 > part 2 "google.com!example.com!1!2.zip" > zip member "google.com!example.com!1!2.xml"`; ps[0].Where != want {
		t.Errorf("Where %q, want %q", ps[0].Where, want)
	}
	if ps[0].Mail.Subject != "Report domain: example.com Submitter: google.com" {
		t.Errorf("Mail is not the innermost email's: %+v", ps[0].Mail)
	}
	if string(ps[0].Data) != report {
		t.Errorf("payload %q", ps[0].Data)
	}
}

func TestTwoReportsInOneMail(t *testing.T) {
	mail := mkmail("reports", "multipart/mixed",
		mimePart{ctype: "application/gzip", filename: "a.xml.gz", body: gz(t, []byte(report))},
		mimePart{ctype: "application/zip", filename: "b.zip", body: mkzip(t, member{"b.xml", []byte(report)})},
		mimePart{ctype: "application/tlsrpt+json", filename: "c.json", body: []byte(tlsReport)})
	ps, err := walkAll(mail, DefaultLimits())
	if err != nil || kinds(ps) != "aggregate,aggregate,tlsrpt" {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
	if ps[0].Where != `part 1 "a.xml.gz" > gzip` || ps[1].Filename != "b.xml" || ps[2].Filename != "c.json" {
		t.Errorf("payloads %q %q %q", ps[0].Where, ps[1].Where, ps[2].Where)
	}
}

func TestHTMLOnlyMailIsNotAReport(t *testing.T) {
	mail := []byte("From: a@example.com\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n<html><body><feedback>no</feedback></body></html>\r\n")
	ps, err := walkAll(mail, DefaultLimits())
	if len(ps) != 0 {
		t.Fatalf("got [%s] from HTML", kinds(ps))
	}
	wantCode(t, err, parse.NotAReport)
	if want := "email has no report attachment (parts: text/html)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestNewsletterIsNotAReport(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	mail := mkmail("Our October newsletter", "multipart/related",
		mimePart{ctype: "text/plain; charset=iso-8859-1", cte: "quoted-printable", body: []byte("Caf=E9 news: { great deals }")},
		mimePart{ctype: "text/html; charset=utf-8", cte: "7bit", body: []byte("<html><p>Give us feedback</p></html>")},
		mimePart{ctype: "image/png", filename: "logo.png", body: png})
	ps, err := walkAll(mail, DefaultLimits())
	if len(ps) != 0 {
		t.Fatalf("got [%s] from a newsletter", kinds(ps))
	}
	wantCode(t, err, parse.NotAReport)
	if !strings.Contains(err.Error(), "(parts: text/plain, text/html, image/png)") {
		t.Errorf("error %q does not list the parts", err)
	}
}

func TestGzipInGzip(t *testing.T) {
	ps, err := walkAll(gz(t, gz(t, []byte(report))), DefaultLimits())
	if err != nil || len(ps) != 1 || string(ps[0].Data) != report {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
	if ps[0].Where != "gzip > gzip" {
		t.Errorf("Where %q", ps[0].Where)
	}
	// Zip in gzip, gzip in zip.
	ps, err = walkAll(gz(t, mkzip(t, member{"r.xml.gz", gz(t, []byte(report))})), DefaultLimits())
	if err != nil || len(ps) != 1 || string(ps[0].Data) != report {
		t.Fatalf("zip in gzip: got [%s], error %v", kinds(ps), err)
	}
}

func TestNestingDeeperThanLimit(t *testing.T) {
	data := []byte(report)
	for range 10 {
		data = gz(t, data)
	}
	_, err := walkAll(data, smallLimits)
	wantCode(t, err, parse.TooLarge)
	lim := smallLimits
	lim.MaxDepth = 10
	if ps, err := walkAll(data, lim); err != nil || len(ps) != 1 {
		t.Errorf("10 levels under a limit of 10: [%s], %v", kinds(ps), err)
	}
}

func TestMislabelledParts(t *testing.T) {
	mail := mkmail("Report Domain: example.com", "multipart/mixed",
		mimePart{ctype: "application/zip", filename: "r.zip", body: gz(t, []byte(report))}, // GMX: gzip labelled zip
		mimePart{ctype: "application/octet-stream", filename: "r.bin", body: mkzip(t, member{"r.xml", []byte(report)})},
		mimePart{ctype: "text/plain", cte: "7bit", body: []byte(report)},                                   // XML in text/plain
		mimePart{ctype: "application/tlsrpt+gzip", filename: "t.json.gz", body: []byte(tlsReport)},         // plain JSON as tlsrpt+gzip
		mimePart{ctype: "application/octet-stream", filename: "t.json.gz", body: gz(t, []byte(tlsReport))}, // TLS report as octet-stream
		mimePart{ctype: "text/plain", cte: "7bit", body: []byte(`{"note": "not a report"}`)})               // JSON-ish annotation
	ps, err := walkAll(mail, DefaultLimits())
	if err != nil || kinds(ps) != "aggregate,aggregate,aggregate,tlsrpt,tlsrpt" {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
}

func TestContentTypeHeaderTypo(t *testing.T) {
	// Trustwave SEG writes "ContentType:": the body is then text/plain but holds
	// base64 gzip.
	body := base64.StdEncoding.EncodeToString(gz(t, []byte(report)))
	mail := "From: a@example.com\r\nSubject: Report Domain: example.com\r\nMIME-Version: 1.0\r\n" +
		"ContentType: application/gzip; name=r.xml.gz\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body + "\r\n"
	ps, err := walkAll([]byte(mail), DefaultLimits())
	if err != nil || len(ps) != 1 || string(ps[0].Data) != report {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
}

func TestLenientBase64(t *testing.T) {
	enc := base64.StdEncoding.EncodeToString(gz(t, []byte(report)))
	var b strings.Builder
	for i := 0; i < len(enc); i += 50 {
		b.WriteString(enc[i:min(i+50, len(enc))])
		b.WriteString(" \r\r\n") // stray spaces and bare CRs
	}
	mail := "From: a@example.com\nSubject: x\nContent-Type: application/gzip\nContent-Transfer-Encoding: BASE64\n\n" + b.String()
	ps, err := walkAll([]byte(mail), DefaultLimits())
	if err != nil || len(ps) != 1 || string(ps[0].Data) != report || ps[0].ReadErr != nil {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
}

func TestTruncatedGzip(t *testing.T) {
	long := []byte(report + strings.Repeat("<!-- padding -->\n", 20000))
	full := gz(t, long)

	// Cut in the middle of the deflate data: the report is delivered, and
	// reading it ends in Truncated.
	ps, err := walkStrict(full[:len(full)/2], DefaultLimits())
	wantCode(t, err, parse.Truncated)
	if len(ps) != 1 || ps[0].Kind != Aggregate {
		t.Errorf("got [%s]", kinds(ps))
	}

	// Cut inside the header: nothing to deliver.
	ps, err = walkStrict(full[:6], DefaultLimits())
	wantCode(t, err, parse.Truncated)
	if len(ps) != 0 {
		t.Errorf("got [%s] from 6 bytes of gzip", kinds(ps))
	}
}

func TestCorruptGzipChecksum(t *testing.T) {
	data := gz(t, []byte(report))
	data[len(data)-6] ^= 0xff // CRC-32
	_, err := walkStrict(data, DefaultLimits())
	wantCode(t, err, parse.BadArchive)
}

func TestGzipTrailingGarbage(t *testing.T) {
	// Mimecast appends "\r\n" after the gzip member.
	ps, err := walkStrict(append(gz(t, []byte(report)), "\r\n"...), DefaultLimits())
	if err != nil || len(ps) != 1 || string(ps[0].Data) != report {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
}

func TestGzipMembersConcatenated(t *testing.T) {
	half := len(report) / 2
	data := append(gz(t, []byte(report[:half])), gz(t, []byte(report[half:]))...)
	ps, err := walkStrict(data, DefaultLimits())
	if err != nil || len(ps) != 1 || string(ps[0].Data) != report {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
}

func TestGzipOfUnusedIsNotAReport(t *testing.T) {
	// Yahoo/AOL 2023: a gzip whose content is the word "unused".
	mail := mkmail("Report Domain: example.com", "multipart/mixed",
		mimePart{ctype: "application/gzip", filename: "r.xml.gz", body: gz(t, []byte("unused"))})
	for _, data := range [][]byte{gz(t, []byte("unused")), mail} {
		ps, err := walkAll(data, DefaultLimits())
		if len(ps) != 0 {
			t.Fatalf("got [%s]", kinds(ps))
		}
		wantCode(t, err, parse.NotAReport)
		if !strings.Contains(err.Error(), `"unused"`) {
			t.Errorf("error %q does not show the content", err)
		}
	}
}

func TestEmptyZipMemberIsNotAReport(t *testing.T) {
	_, err := walkAll(mkzip(t, member{"bad.xml", nil}), DefaultLimits())
	wantCode(t, err, parse.NotAReport)
	if want := `zip member "bad.xml": empty`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestCorruptCandidateBesideGoodOne(t *testing.T) {
	mail := mkmail("Report Domain: example.com", "multipart/mixed",
		mimePart{ctype: "application/zip", filename: "bad.zip", body: bytes.Repeat([]byte{0xa5}, 512)},
		mimePart{ctype: "application/gzip", filename: "good.xml.gz", body: gz(t, []byte(report))})
	ps, err := walkAll(mail, DefaultLimits())
	if err != nil || len(ps) != 1 || string(ps[0].Data) != report {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
	// Alone, the bad one is reported.
	mail = mkmail("Report Domain: example.com", "multipart/mixed",
		mimePart{ctype: "application/zip", filename: "bad.zip", body: bytes.Repeat([]byte{0xa5}, 512)})
	_, err = walkAll(mail, DefaultLimits())
	wantCode(t, err, parse.BadArchive)
	// A zip cut short has no central directory.
	z := mkzip(t, member{"r.xml", []byte(report)})
	_, err = walkAll(z[:len(z)-30], DefaultLimits())
	wantCode(t, err, parse.Truncated)
}

func TestFailureReportIsOnePayload(t *testing.T) {
	// The original message inside the ARF report carries a zip with report
	// XML: it must not come out as an aggregate report.
	original := mkmail("spam", "multipart/mixed",
		mimePart{ctype: "application/zip", filename: "x.zip", body: mkzip(t, member{"x.xml", []byte(report)})})
	arf := mkmail("DMARC Failure Report", "multipart/report; report-type=feedback-report",
		mimePart{ctype: "text/plain", cte: "7bit", body: []byte("This is an authentication failure report.")},
		mimePart{ctype: "message/feedback-report", cte: "7bit", body: []byte("Feedback-Type: auth-failure\r\nUser-Agent: x/1\r\nVersion: 1\r\n")},
		mimePart{ctype: "message/rfc822", cte: "7bit", body: original})
	ps, err := walkAll(arf, DefaultLimits())
	if err != nil || kinds(ps) != "failure" || !bytes.Equal(ps[0].Data, arf) {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
	// Forwarded, the failure report is the innermost message.
	fwd := mkmail("Fwd: failure", "multipart/mixed",
		mimePart{ctype: "text/plain", cte: "7bit", body: []byte("fyi")},
		mimePart{ctype: "message/rfc822", cte: "7bit", body: arf})
	ps, err = walkAll(fwd, DefaultLimits())
	if err != nil || kinds(ps) != "failure" || !bytes.Equal(ps[0].Data, arf) || ps[0].Where != "part 2" {
		t.Fatalf("forwarded: got [%s] at %q, error %v", kinds(ps), ps[0].Where, err)
	}
}

func TestDeliveryStatusNotificationIsNotAFailureReport(t *testing.T) {
	dsn := mkmail("Undelivered Mail Returned to Sender", "multipart/report; report-type=delivery-status",
		mimePart{ctype: "text/plain", cte: "7bit", body: []byte("550 5.7.26 rejected: the message failed DMARC policy.")},
		mimePart{ctype: "message/delivery-status", cte: "7bit", body: []byte("Reporting-MTA: dns; mx.example\r\n")})
	ps, err := walkAll(dsn, DefaultLimits())
	if len(ps) != 0 {
		t.Fatalf("got [%s] from a DSN", kinds(ps))
	}
	wantCode(t, err, parse.NotAReport)
}

func TestEmptyAndUnknownInput(t *testing.T) {
	_, err := walkAll(nil, DefaultLimits())
	wantCode(t, err, parse.NotAReport)
	if err.Error() != "empty input" {
		t.Errorf("error %q", err)
	}
	_, err = walkAll([]byte("\x00\x01binary junk"), DefaultLimits())
	wantCode(t, err, parse.NotAReport)
	if err.Error() != "bytes are neither email, XML, JSON, gzip nor zip" {
		t.Errorf("error %q", err)
	}
	_, err = walkAll([]byte(`<?xml version="1.0"?><html/>`), DefaultLimits())
	wantCode(t, err, parse.NotAReport)
}

func TestInputOverMessageLimit(t *testing.T) {
	lim := smallLimits
	lim.MaxMessageBytes = 1000
	mail := mkmail("big", "multipart/mixed",
		mimePart{ctype: "text/plain", cte: "7bit", body: bytes.Repeat([]byte("x"), 2000)},
		mimePart{ctype: "application/gzip", body: gz(t, []byte(report))})
	_, err := walkAll(mail, lim)
	wantCode(t, err, parse.TooLarge)
	// A bare XML streams: the message limit does not apply to it (a 700 MB
	// report must get through), the total decompressed limit does.
	_, err = walkStrict([]byte(report+strings.Repeat(" ", 2000)), lim)
	if err != nil {
		t.Fatalf("bare XML over the message limit: %v, want it streamed", err)
	}
	lim.MaxTotalBytes = 1500
	_, err = walkStrict([]byte(report+strings.Repeat(" ", 2000)), lim)
	wantCode(t, err, parse.TooLarge)
}

func TestCloseEndsTheWalkAtThePayloadHandedOut(t *testing.T) {
	mail := mkmail("reports", "multipart/mixed",
		mimePart{ctype: "application/gzip", filename: "a.xml.gz", body: gz(t, []byte(report))},
		mimePart{ctype: "application/gzip", filename: "b.xml.gz", body: gz(t, []byte(report))})
	found := -1
	observeWalk = func(w *walker) { found = w.found }
	defer func() { observeWalk = nil }()
	x := NewReader(bytes.NewReader(mail), DefaultLimits())
	if p, err := x.Next(); err != nil || p.Filename != "a.xml.gz" {
		t.Fatalf("first payload %+v, error %v", p, err)
	}
	x.Close()
	if p, err := x.Next(); p != nil || err == nil || err == io.EOF {
		t.Errorf("after Close: payload %+v, error %v; want none and an error that is not io.EOF", p, err)
	}
	if found != 1 {
		t.Errorf("the walk found %d payloads before it ended, want it ended at the first", found)
	}
}

func TestNextAfterTheEndReturnsTheSameError(t *testing.T) {
	for _, data := range [][]byte{[]byte(report), []byte("plain text")} {
		x := NewReader(bytes.NewReader(data), DefaultLimits())
		var first error
		for first == nil {
			_, first = x.Next()
		}
		if _, again := x.Next(); again != first {
			t.Errorf("%.10q: Next after the end returned %v, then %v", data, first, again)
		}
		x.Close()
		if _, closed := x.Next(); closed != first {
			t.Errorf("%.10q: Next after the end and Close returned %v, want %v", data, closed, first)
		}
	}
}

func TestCloseBeforeNextReadsNothing(t *testing.T) {
	r := &countReader{r: bytes.NewReader([]byte(report))}
	x := NewReader(r, DefaultLimits())
	x.Close()
	if _, err := x.Next(); err == nil || err == io.EOF {
		t.Errorf("Next after Close: error %v", err)
	}
	if r.n != 0 {
		t.Errorf("read %d bytes of an input closed before its first payload", r.n)
	}
}

// TestCloseMidPayloadStopsReadingTheInput closes the Reader of an endless
// gzip stream while its payload is half read: the walk ends there.
func TestCloseMidPayloadStopsReadingTheInput(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		zw := gzip.NewWriter(pw)
		zw.Write([]byte("<?xml version=\"1.0\"?>\n<feedback>\n"))
		rec := []byte(strings.Repeat("<record></record>\n", 1024))
		for {
			if _, err := zw.Write(rec); err != nil {
				return
			}
		}
	}()
	r := &countReader{r: pr}
	x := NewReader(r, DefaultLimits())
	p, err := x.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, p.R, 1<<20); err != nil {
		t.Fatal(err)
	}
	x.Close()
	read := r.n
	pr.CloseWithError(errors.New("closed by the test"))
	if _, err := x.Next(); err == nil || err == io.EOF {
		t.Errorf("Next after Close: error %v", err)
	}
	if r.n != read {
		t.Errorf("read %d bytes after Close", r.n-read)
	}
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}

func TestUTF16AndBOM(t *testing.T) {
	bom := append([]byte{0xef, 0xbb, 0xbf}, report...)
	var u16 []byte
	u16 = append(u16, 0xff, 0xfe)
	for _, r := range report {
		u16 = append(u16, byte(r), 0)
	}
	for _, data := range [][]byte{bom, u16} {
		ps, err := walkAll(data, DefaultLimits())
		if err != nil || kinds(ps) != "aggregate" {
			t.Errorf("got [%s], error %v for %.8q", kinds(ps), err, data)
		}
	}
}

// TestGzipStreamsWithFlatMemory pushes 256 MiB of report XML through gzip
// and checks that the Reader does not buffer it.
func TestGzipStreamsWithFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 256 MiB")
	}
	const total = 256 << 20
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		bw := bufio.NewWriter(zw)
		bw.WriteString("<?xml version=\"1.0\"?>\n<feedback>\n")
		rec := []byte(strings.Repeat("<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row></record>\n", 64))
		for n := 0; n < total; n += len(rec) {
			bw.Write(rec)
		}
		bw.WriteString("</feedback>\n")
		bw.Flush()
		zw.Close()
		pw.Close()
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var n int64
	err := pullEach(pr, DefaultLimits(), func(p *Payload) error {
		var err error
		n, err = io.Copy(io.Discard, p.R)
		return err
	})
	runtime.ReadMemStats(&after)
	if err != nil || n < total {
		t.Fatalf("read %d bytes, error %v", n, err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d MiB decompressed, %d KiB allocated", n>>20, alloc>>10)
	if alloc > 16<<20 {
		t.Errorf("allocated %d MiB to stream %d MiB: not flat", alloc>>20, n>>20)
	}
}

func TestFailureNoticeTextNeedsNoAttachment(t *testing.T) {
	// The Exim heuristic (multipart/report, text "failed ... DMARC") must not
	// swallow a report archive sent the same way.
	mail := mkmail("DMARC failure summary", "multipart/report",
		mimePart{ctype: "text/plain", cte: "7bit", body: []byte("Messages that failed DMARC are listed in the attachment.")},
		mimePart{ctype: "application/gzip", filename: "r.xml.gz", body: gz(t, []byte(report))})
	ps, err := walkAll(mail, DefaultLimits())
	if err != nil || kinds(ps) != "aggregate" {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
}

func TestMboxFromLineAndEmailInZip(t *testing.T) {
	inner := mkmail("Report Domain: example.com", "multipart/mixed",
		mimePart{ctype: "application/gzip", filename: "r.xml.gz", body: gz(t, []byte(report))})
	mbox := append([]byte("From dmarc@reporter.example Mon Oct 14 09:40:04 2024\n"), inner...)
	for _, data := range [][]byte{mbox, mkzip(t, member{"saved.eml", inner})} {
		ps, err := walkAll(data, DefaultLimits())
		if err != nil || kinds(ps) != "aggregate" || ps[0].Mail == nil {
			t.Errorf("got [%s], error %v", kinds(ps), err)
		}
	}
}

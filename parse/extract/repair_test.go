package extract

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"

	"github.com/dmarcd/dmarcd/parse"
)

// outlookMail is an Outlook-shaped aggregate report mail: multipart/mixed of
// a multipart/alternative (text and HTML) and a base64 gzip attachment. Each
// header block is given as lines; mutate lets a test break one of them.
type outlookMail struct {
	top, alt, text, html, attach []string
}

const outlookName = "example.jp!example.com!1700000000!1700086400.xml.gz"

func newOutlookMail() outlookMail {
	return outlookMail{
		top: []string{
			`From: "DMARC Report" <dmarc-report@example.jp>`,
			`To: <rua@example.com>`,
			`Subject: Report Domain: example.com Submitter: example.jp Report-ID: <x1>`,
			`Date: Tue, 14 Nov 2023 09:40:04 +0000`,
			`Message-ID: <x1@example.jp>`,
			`MIME-Version: 1.0`,
			`Content-Type: multipart/mixed;`,
			"\tboundary=\"_004_OUTLOOK_\"",
		},
		alt: []string{`Content-Type: multipart/alternative;`, "\tboundary=\"_000_OUTLOOK_\""},
		text: []string{`Content-Type: text/plain; charset="us-ascii"`,
			`Content-Transfer-Encoding: quoted-printable`},
		html: []string{`Content-Type: text/html; charset="us-ascii"`,
			`Content-Transfer-Encoding: quoted-printable`},
		attach: []string{
			`Content-Type: application/x-gzip;`,
			"\tname=\"" + outlookName + "\"",
			`Content-Description: ` + outlookName,
			`Content-Disposition: attachment;`,
			"\tfilename=\"" + outlookName + "\"; size=180;",
			"\tcreation-date=\"Tue, 14 Nov 2023 09:40:04 GMT\"",
			`Content-Transfer-Encoding: base64`,
		},
	}
}

func (m outlookMail) bytes(t *testing.T) []byte {
	var b strings.Builder
	block := func(lines []string) {
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
		b.WriteString("\r\n")
	}
	block(m.top)
	b.WriteString("--_004_OUTLOOK_\r\n")
	block(m.alt)
	b.WriteString("--_000_OUTLOOK_\r\n")
	block(m.text)
	b.WriteString("This is a DMARC aggregate report for example.com.\r\n\r\n--_000_OUTLOOK_\r\n")
	block(m.html)
	b.WriteString("<html><body>This is a DMARC aggregate report.</body></html>\r\n\r\n--_000_OUTLOOK_--\r\n\r\n")
	b.WriteString("--_004_OUTLOOK_\r\n")
	block(m.attach)
	enc := base64.StdEncoding.EncodeToString(gz(t, []byte(report)))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n\r\n--_004_OUTLOOK_--\r\n")
	return []byte(b.String())
}

// walkRepairs is walkAll that also collects each payload's Repairs.
func walkRepairs(t *testing.T, data []byte) ([]got, [][]string, error) {
	t.Helper()
	var out []got
	var reps [][]string
	err := pullEach(bytes.NewReader(data), DefaultLimits(), func(p *Payload) error {
		b, err := io.ReadAll(p.R)
		out = append(out, got{p.Kind, p.Where, p.Filename, b, err, p.Mail})
		reps = append(reps, p.Repairs)
		return nil
	})
	return out, reps, err
}

func TestAStrayHeaderLineDoesNotHideTheAttachmentBehindIt(t *testing.T) {
	stray := func(lines []string, at int, line string) []string {
		out := append([]string{}, lines[:at]...)
		out = append(out, line)
		return append(out, lines[at:]...)
	}
	cases := []struct {
		name     string
		mutate   func(*outlookMail)
		filename string // the attachment's name as recovered
		repair   string // in the payload's Repairs
	}{
		{"the attachment's name parameter is not folded", func(m *outlookMail) {
			m.attach[1] = `name="` + outlookName + `"`
		}, outlookName, `read as a continuation of the field before it`},
		{"a parameter with a colon in its value is not folded", func(m *outlookMail) {
			m.attach[1] = `name="report:1.xml.gz"`
			m.attach[4] = "\tfilename=\"\"; size=180;"
		}, "report:1.xml.gz", `read as a continuation`},
		{"the HTML part before the attachment has a line that is no field", func(m *outlookMail) {
			m.html = stray(m.html, 1, `this line is not a header field`)
		}, outlookName, `not a header field: dropped`},
		{"the HTML part's header starts with a continuation line", func(m *outlookMail) {
			m.html = stray(m.html, 0, "\tcharset=us-ascii")
		}, outlookName, `continues no field: dropped`},
		{"a field name holds a space in the part before the attachment", func(m *outlookMail) {
			m.alt = stray(m.alt, 2, `Content Language: en-US`)
		}, outlookName, `not a header field: dropped`},
		{"the mail's own boundary parameter is not folded", func(m *outlookMail) {
			m.top[7] = `boundary="_004_OUTLOOK_"`
		}, outlookName, `read as a continuation`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newOutlookMail()
			c.mutate(&m)
			ps, reps, err := walkRepairs(t, m.bytes(t))
			if err != nil || kinds(ps) != "aggregate" {
				t.Fatalf("got [%s], error %v; want the aggregate report", kinds(ps), err)
			}
			if string(ps[0].Data) != report || ps[0].ReadErr != nil {
				t.Fatalf("payload %q, read error %v", ps[0].Data, ps[0].ReadErr)
			}
			if ps[0].Filename != c.filename {
				t.Errorf("filename %q, want %q", ps[0].Filename, c.filename)
			}
			if all := strings.Join(reps[0], "\n"); !strings.Contains(all, c.repair) {
				t.Errorf("repairs %q, want one saying %q", reps[0], c.repair)
			}
		})
	}
}

func TestAWellFormedMailNeedsNoRepair(t *testing.T) {
	ps, reps, err := walkRepairs(t, newOutlookMail().bytes(t))
	if err != nil || kinds(ps) != "aggregate" || ps[0].Filename != outlookName {
		t.Fatalf("got [%s] %v, error %v", kinds(ps), ps, err)
	}
	if len(reps[0]) != 0 {
		t.Errorf("repairs %q of a well-formed mail", reps[0])
	}
}

func TestABodyLineLikeAHeaderIsNeverRewritten(t *testing.T) {
	// A text part whose body holds lines a header repair would touch, a line
	// that looks like a delimiter but is not one (a longer boundary), and a
	// delimiter preceded by a bare LF in a CRLF multipart (not a delimiter
	// to go-message either).
	body := "--_004_OUTLOOK_x\r\nnot a field\r\n\tindented\r\nname=\"x\"\r\n\n--_004_OUTLOOK_\r\nnot a field either\r\n"
	var b strings.Builder
	b.WriteString("From: a@example.jp\r\nContent-Type: multipart/mixed; boundary=\"_004_OUTLOOK_\"\r\n\r\n")
	b.WriteString("--_004_OUTLOOK_\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 7bit\r\n\r\n<?xml version=\"1.0\"?>\r\n<feedback>\r\n" + body + "</feedback>\r\n--_004_OUTLOOK_--\r\n")
	ps, reps, err := walkRepairs(t, []byte(b.String()))
	if err != nil || kinds(ps) != "aggregate" {
		t.Fatalf("got [%s], error %v", kinds(ps), err)
	}
	if want := "<?xml version=\"1.0\"?>\r\n<feedback>\r\n" + body + "</feedback>"; string(ps[0].Data) != want {
		t.Errorf("body\n%q\nwant\n%q", ps[0].Data, want)
	}
	if len(reps[0]) != 0 {
		t.Errorf("repairs %q", reps[0])
	}
}

func TestAPartWithoutABlankLineEndsAtTheNextDelimiter(t *testing.T) {
	mail := "From: a@example.jp\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
		report + "\r\n--b--\r\n"
	ps, reps, err := walkRepairs(t, []byte(mail))
	if err != nil || kinds(ps) != "aggregate" || string(ps[0].Data) != report {
		t.Fatalf("got [%s] %v, error %v", kinds(ps), ps, err)
	}
	if !strings.Contains(strings.Join(reps[0], "\n"), "part 1: header not ended by a blank line") {
		t.Errorf("repairs %q", reps[0])
	}
}

func TestABrokenLaterPartIsReportedNotSilentlyDropped(t *testing.T) {
	// After the first part, a line that is neither body nor delimiter where
	// a delimiter must follow: the parts before it are walked and the
	// trouble is the error given when no report was found.
	mail := "From: a@example.jp\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--b  junk\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"
	ps, _, err := walkRepairs(t, []byte(mail))
	if len(ps) != 0 {
		t.Fatalf("got [%s]", kinds(ps))
	}
	wantCode(t, err, parse.MIMESyntax)
	if !strings.Contains(err.Error(), "after part 1") {
		t.Errorf("error %q does not name where the multipart broke", err)
	}
}

// FuzzRepairedPartHeadersAreRead checks the repair's promise: whatever
// header block (without blank lines or delimiters) a part carries, go-message
// reads that part and the one after it.
func FuzzRepairedPartHeadersAreRead(f *testing.F) {
	for _, s := range []string{"Content-Type: text/plain", "name=\"a.gz\"", " x", "a b: c", ":", "\x00\xff", "Content-Type: a;\r\nname=x\r\n\tfilename=y", "x\r\r\ny"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if strings.Contains(h, "\n\n") || strings.Contains(h, "\n\r\n") || strings.Contains(h, "--b") || strings.HasPrefix(h, "\r\n") || strings.HasPrefix(h, "\n") || h == "" {
			return
		}
		body := "--b\r\n" + h + "\r\n\r\nfirst\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--b--\r\n"
		mr := textproto.NewMultipartReader(newPartRepair(strings.NewReader(body), "b"), "b")
		for i := 1; i <= 2; i++ {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatalf("part %d of header %q: %v", i, h, err)
			}
			if i == 2 {
				if b, _ := io.ReadAll(p); string(b) != "second" {
					t.Fatalf("second part %q", b)
				}
			}
		}
	})
}

package extract

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
	"github.com/dmarcd/dmarcd/parse"
)

// FuzzWalk checks that no input panics the Reader, that every error is a typed
// *parse.Error and that no payload yields more bytes than the limits allow.
// The seeds (testdata/fuzz/FuzzWalk, small corpus files when the corpus is
// there, and hand-made containers) run in go test.
func FuzzWalk(f *testing.F) {
	var files []string
	if root := corpus.ModuleRoot(); root != "" {
		files, _ = filepath.Glob(filepath.Join(root, "..", "shared", "corpus", "*", "*", "*"))
	}
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil && len(data) <= 32<<10 {
			f.Add(data)
		}
	}
	f.Add(gz(f, []byte(report)))
	f.Add(gz(f, gz(f, []byte(report))))
	f.Add(append(gz(f, []byte(tlsReport)), "\r\n"...))
	f.Add(mkzip(f, member{"a.xml", []byte(report)}, member{"b.json.gz", gz(f, []byte(tlsReport))}))
	f.Add(gzipBomb(f, "<feedback>", 4))
	f.Add(zipBomb(f, "<feedback>", 4))
	f.Add(mkmail("Report Domain: example.com", "multipart/mixed",
		mimePart{ctype: "text/plain", cte: "7bit", body: []byte("report attached")},
		mimePart{ctype: "application/gzip", filename: "r.xml.gz", body: gz(f, []byte(report))},
		mimePart{ctype: "message/rfc822", cte: "7bit", body: mkmail("inner", "multipart/mixed",
			mimePart{ctype: "application/zip", filename: "r.zip", body: mkzip(f, member{"r.xml", []byte(report)})})}))

	lim := Limits{MaxMessageBytes: 1 << 20, MaxMemberBytes: 256 << 10, MaxTotalBytes: 512 << 10, MaxZipMembers: 4, MaxDepth: 4,
		MaxContainers: 16, MaxParts: 32, MaxHeaderFields: 64, MaxHeaderBytes: 16 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		calls := 0
		err := pullEach(bytes.NewReader(data), lim, func(p *Payload) error {
			calls++
			switch p.Kind {
			case Aggregate, TLSRPT, Failure:
			default:
				t.Errorf("payload kind %q", p.Kind)
			}
			n, err := io.Copy(io.Discard, p.R)
			if err != nil && parse.CodeOf(err) == "" {
				t.Errorf("payload at %q: untyped read error %v", p.Where, err)
			}
			if n > lim.MaxMessageBytes {
				t.Errorf("payload at %q: %d bytes, over the message limit", p.Where, n)
			}
			if (strings.Contains(p.Where, "gzip") || strings.Contains(p.Where, "zip member")) && n > lim.MaxMemberBytes {
				t.Errorf("payload at %q: %d decompressed bytes, over the member limit", p.Where, n)
			}
			return nil
		})
		if err != nil && parse.CodeOf(err) == "" {
			t.Errorf("untyped error %v", err)
		}
		if err == nil && calls == 0 {
			t.Errorf("no payload and no error")
		}
	})
}

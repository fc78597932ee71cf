package failure

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
)

// FuzzParse checks that no input makes Parse, Key or Redact panic. Seeds:
// testdata/fuzz/FuzzParse (corpus reports, so that fuzzing works without
// the corpus), every corpus failure report when the corpus is there, and a
// synthetic one.
func FuzzParse(f *testing.F) {
	if root := corpus.ModuleRoot(); root != "" {
		if _, err := os.Stat(filepath.Join(root, "..", "shared", "corpus", "MANIFEST.tsv")); err == nil {
			dir := corpusDir(f)
			for _, row := range forensicManifest(f) {
				b, err := os.ReadFile(filepath.Join(dir, row.path))
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
	}
	f.Add([]byte(arf("multipart/mixed", "", "Feedback-Type: auth-failure\r\nSource-IP: 192.0.2.1\r\n", "text/rfc822-headers", sampleOriginal)))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Parse(bytes.NewReader(data), Options{MaxBytes: 1 << 20, KeepBody: true})
		if err != nil {
			return
		}
		k := Key(rep)
		Redact(rep, []byte("k"), true, true)
		if Key(rep) != k {
			t.Fatalf("Redact changed the key")
		}
	})
}

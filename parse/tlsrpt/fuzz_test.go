package tlsrpt

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
)

// FuzzParse checks that no input makes Parse panic, and that a report it
// accepts has a key. Seeds: testdata/fuzz/FuzzParse (corpus reports, so that
// fuzzing works without the corpus), every corpus TLS report when the corpus
// is there, and the deviant sample.
func FuzzParse(f *testing.F) {
	if root := corpus.ModuleRoot(); root != "" {
		if _, err := os.Stat(filepath.Join(root, "..", "shared", "corpus", "MANIFEST.tsv")); err == nil {
			dir := corpusDir(f)
			for _, m := range smtpTLSManifest(f) {
				f.Add(reportJSON(f, filepath.Join(dir, m.path)))
			}
		}
	}
	f.Add([]byte(deviant))
	f.Add([]byte(`{"policies":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := ParseLimits(bytes.NewReader(data), Limits{MaxBytes: 1 << 20, MaxFailureRows: 100, MaxPolicies: 10})
		if err == nil && len(Key(rep)) != 64 {
			t.Fatalf("bad key")
		}
	})
}

package tlsrpt

import (
	"bytes"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that a report it
// accepts has a key. Seeds: every corpus TLS report and the deviant sample.
func FuzzParse(f *testing.F) {
	dir := corpusDir(f)
	for _, m := range smtpTLSManifest(f) {
		f.Add(reportJSON(f, filepath.Join(dir, m.path)))
	}
	f.Add([]byte(deviant))
	f.Add([]byte(`{"policies":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Parse(bytes.NewReader(data), 1<<20)
		if err == nil && len(Key(rep)) != 64 {
			t.Fatalf("bad key")
		}
	})
}

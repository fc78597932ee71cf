// Package corpus gives tests the real-world report corpus that lies beside
// the repository (../shared/corpus, with MANIFEST.tsv describing each file).
// It is never copied into the repository.
package corpus

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Entry is one line of MANIFEST.tsv.
type Entry struct {
	Path      string // relative to Dir
	SHA256    string
	Type      string // aggregate, email, forensic, smtp_tls, malformed
	Container string // xml, gz, zip, eml, json, empty
	Org       string // reporting_org as written (may be "(empty)" or "-")
	Domain    string // policy_domain
	Records   int    // records (aggregate), policies (smtp_tls), feedback parts (forensic)
	CountSum  uint64 // sum of counts (aggregate), sessions (smtp_tls)
	Known     bool   // Records and CountSum were computed (not "-")
	Notes     string
}

// ModuleRoot returns the folder holding go.mod, found from the working
// directory up, or "".
func ModuleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Dir returns <module root>/../shared/corpus. When it is missing the test
// fails under CI=true and is skipped otherwise, saying why.
func Dir(t testing.TB) string {
	t.Helper()
	root := ModuleRoot()
	dir := filepath.Join(root, "..", "shared", "corpus")
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); root == "" || err != nil {
		msg := fmt.Sprintf("corpus: %s/MANIFEST.tsv is missing (the corpus is laid beside the repository as shared/corpus)", dir)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg + " (skipped: CI is not \"true\")")
	}
	return dir
}

// Manifest returns every entry of MANIFEST.tsv, in order; with types, only
// those of these types.
func Manifest(t testing.TB, types ...string) []Entry {
	t.Helper()
	f, err := os.Open(filepath.Join(Dir(t), "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if n == 1 {
			continue // header
		}
		// Plain TAB-separated text without quoting (an org name may start with '"').
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 9 {
			t.Fatalf("MANIFEST.tsv line %d: %d fields, want 9", n, len(c))
		}
		e := Entry{Path: c[0], SHA256: c[1], Type: c[2], Container: c[3], Org: c[4], Domain: c[5], Notes: c[8]}
		if r, err := strconv.Atoi(c[6]); err == nil {
			e.Records = r
			if s, err := strconv.ParseUint(c[7], 10, 64); err == nil {
				e.CountSum, e.Known = s, true
			}
		}
		if len(types) == 0 || contains(types, e.Type) {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("MANIFEST.tsv has no entries of types %v", types)
	}
	return out
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

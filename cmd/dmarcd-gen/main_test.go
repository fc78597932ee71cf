package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunWritesTheSetAndManifest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := run([]string{"-out", dir, "-days", "3", "-seed", "5", "-start", "2025-01-01"}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(m), "\n"); lines != len(ents) { // header + one line per file, MANIFEST not listed
		t.Errorf("%d manifest lines for %d entries", lines, len(ents))
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-out", t.TempDir(), "-start", "yesterday"},
		{"-out", t.TempDir(), "-domain", "com"},
		{"-out", t.TempDir(), "extra"},
	} {
		if err := run(args); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

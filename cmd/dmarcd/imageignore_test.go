package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ignored reports whether path (slash-separated, relative to the build
// context) is left out by the patterns of an ignore file, as podman and
// docker read it: a pattern matches the path or one of its parents
// (filepath.Match, "**/" for any depth), "!" re-includes, the last match
// wins.
func ignored(patterns []string, path string) bool {
	out := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		for prefix := path; prefix != "."; prefix = filepath.Dir(prefix) {
			if match(p, prefix) {
				out = !neg
				break
			}
		}
	}
	return out
}

func match(pattern, path string) bool {
	if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
		for p := path; ; {
			if m, _ := filepath.Match(rest, p); m {
				return true
			}
			_, after, found := strings.Cut(p, "/")
			if !found {
				return false
			}
			p = after
		}
	}
	m, _ := filepath.Match(pattern, path)
	return m
}

// TestImageBuildsLeaveOutTheDemoAndSecrets: an image built from the
// checkout (deploy/Containerfile copies the whole context) never holds
// make demo's ClickHouse data or its redaction key, with podman
// (.containerignore) or docker (.dockerignore); the sources the build needs
// are still in.
func TestImageBuildsLeaveOutTheDemoAndSecrets(t *testing.T) {
	var files [][]string
	for _, name := range []string{".containerignore", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var pats []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				pats = append(pats, l)
			}
		}
		files = append(files, pats)
		for _, p := range []string{".demo", ".demo/redaction.key", ".demo/clickhouse/data/dmarc/x.bin", "other/.demo/redaction.key", ".git/config", "bin/dmarcd"} {
			if !ignored(pats, p) {
				t.Errorf("%s lets %s into the image", name, p)
			}
		}
		for _, p := range []string{"go.mod", "go.sum", "cmd/dmarcd/main.go", "store/schema/migrations/0001_init.sql", "internal/product/readiness/senders.yaml", "deploy/Containerfile"} {
			if ignored(pats, p) {
				t.Errorf("%s leaves out %s, which the build needs", name, p)
			}
		}
	}
	if strings.Join(files[0], "\n") != strings.Join(files[1], "\n") {
		t.Errorf(".containerignore and .dockerignore differ:\n%q\n%q", files[0], files[1])
	}
}

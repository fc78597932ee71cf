package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// builds holds the executables Binary built for this test binary, in one
// temporary folder that Main removes.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]*build
}

type build struct {
	once sync.Once
	path string // where the executable goes, unique in the folder
	err  error
}

// Binary builds the main package pkg (a path relative to the module root,
// e.g. "./cmd/dmarcd") once per test binary and returns the executable's
// path: tests that run the command share one build instead of linking it
// each. The folder is removed by Main (or is left in the system's temporary
// folder by a package without Main). A build that fails fails the test.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	b, err := binaryEntry(pkg)
	if err != nil {
		t.Fatal(err)
	}
	b.once.Do(func() { b.err = goBuild(pkg, b.path) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func binaryEntry(pkg string) (*build, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "dmarcd-test-bin-")
		if err != nil {
			return nil, err
		}
		builds.dir = dir
		builds.bins = map[string]*build{}
	}
	b := builds.bins[pkg]
	if b == nil {
		b = &build{path: filepath.Join(builds.dir, fmt.Sprintf("%d-%s", len(builds.bins), filepath.Base(pkg)))}
		builds.bins[pkg] = b
	}
	return b, nil
}

// goBuild runs `go build -o bin pkg` in the module root.
func goBuild(pkg, bin string) error {
	root := ModuleRoot()
	if root == "" {
		return fmt.Errorf("go build %s: module root (go.mod) not found", pkg)
	}
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -o %s %s: %w\n%s", bin, pkg, err, out)
	}
	return nil
}

// removeBuilds removes the folder of Binary's executables.
func removeBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
}

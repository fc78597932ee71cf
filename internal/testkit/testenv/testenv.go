// Package testenv gives tests the real servers they need: a ClickHouse server
// on loopback (scripts/clickhouse.sh), and the paths of the module root and
// the shared corpus.
//
// A test package that uses ClickHouse calls Main from its TestMain, so that a
// server started for the test binary is stopped when the binary ends:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// When a server cannot be had, tests fail if the environment variable CI is
// "true" and skip with the reason otherwise. Under -short (make test-unit)
// no server is started or used: every test that needs one is skipped, CI or
// not, and a test that starts one of its own outside this package's helpers
// fails at StartsServer. Binary builds a command once per test binary; Long
// keeps the long soaks for make test-long.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Environment variables read by this package.
const (
	// EnvClickHouseAddr names an already running ClickHouse server
	// (host:port of its native protocol) to use instead of starting one.
	EnvClickHouseAddr = "DMARCD_TEST_CLICKHOUSE_ADDR"
	// EnvCI is "true" in CI, where a missing server fails the test.
	EnvCI = "CI"
)

// InCI reports whether the tests run in CI (CI=true).
func InCI() bool { return os.Getenv(EnvCI) == "true" }

// ModuleRoot returns the directory holding go.mod of the module under test,
// found by walking up from the working directory (a test's package
// directory), or from `go env GOMOD` as a fallback. It returns "" when
// neither works.
func ModuleRoot() string {
	if dir, err := os.Getwd(); err == nil {
		for d := dir; ; {
			if fi, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && !fi.IsDir() {
				return d
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return ""
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return ""
	}
	return filepath.Dir(gomod)
}

// CorpusDir returns the shared corpus folder, <module root>/../shared/corpus.
// When it is missing the test fails in CI and is skipped otherwise.
func CorpusDir(t testing.TB) string {
	t.Helper()
	return corpus.Dir(t)
}

func unavailable(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg + " (skipped: CI is not \"true\")")
}

// server is the ClickHouse server of this test binary.
var server struct {
	mu      sync.Mutex
	inMain  bool   // Main is running the tests: it stops the server
	started bool   // a start was tried
	addr    string // host:port of the native protocol
	dir     string // state folder of a server we started, "" otherwise
	err     error  // why there is no server
}

// Main runs the tests of a package (call it from TestMain) and then stops the
// ClickHouse server that ClickHouse started for them, if any, and removes
// the executables Binary built. It exits with the tests' status.
func Main(m *testing.M) {
	server.mu.Lock()
	server.inMain = true
	server.mu.Unlock()
	code := m.Run()
	stopCHDB()
	removeBuilds()
	server.mu.Lock()
	dir := server.dir
	server.mu.Unlock()
	if dir != "" {
		if err := stopServer(dir); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stopping clickhouse: %v\n", err)
		}
	}
	os.Exit(code)
}

// ClickHouse returns the DSN of a fresh, not yet created database on a
// ClickHouse server for this test: clickhouse://ADDR/<unique name>. The
// database is dropped when the test ends, unless the test failed.
//
// The server is the one at DMARCD_TEST_CLICKHOUSE_ADDR, or else one that
// scripts/clickhouse.sh starts once per test binary (stopped by Main).
// Under -short the test is skipped.
func ClickHouse(t testing.TB) (dsn string) {
	t.Helper()
	skipShort(t, "a ClickHouse server")
	addr, err := clickHouseAddr(t)
	if err != nil {
		unavailable(t, "clickhouse: "+err.Error()+
			"; install clickhouse-server (apt-get install clickhouse-server) or set "+EnvClickHouseAddr)
	}
	db := databaseName(t.Name())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("clickhouse: keeping database %s on %s of the failed test", db, addr)
			return
		}
		if err := dropDatabase(addr, db); err != nil {
			t.Logf("clickhouse: dropping database %s: %v", db, err)
		}
	})
	return "clickhouse://" + addr + "/" + db
}

// clickHouseAddr returns the server address, starting a server when needed.
func clickHouseAddr(t testing.TB) (string, error) {
	if addr := os.Getenv(EnvClickHouseAddr); addr != "" {
		if err := ping(addr); err != nil {
			return "", fmt.Errorf("%s=%s does not answer: %w", EnvClickHouseAddr, addr, err)
		}
		return addr, nil
	}
	server.mu.Lock()
	defer server.mu.Unlock()
	if !server.inMain {
		// Without Main nobody stops a shared server: give this test its own.
		addr, dir, err := startServer()
		if err != nil {
			return "", err
		}
		t.Cleanup(func() {
			if err := stopServer(dir); err != nil {
				t.Logf("clickhouse: stopping server: %v", err)
			}
		})
		return addr, nil
	}
	if !server.started {
		server.started = true
		server.addr, server.dir, server.err = startServer()
	}
	return server.addr, server.err
}

func script() (string, error) {
	root := ModuleRoot()
	if root == "" {
		return "", fmt.Errorf("module root (go.mod) not found, so scripts/clickhouse.sh is not either")
	}
	p := filepath.Join(root, "scripts", "clickhouse.sh")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// startServer runs `scripts/clickhouse.sh start DIR` in a new temporary
// folder and returns the server's native address and the folder.
func startServer() (addr, dir string, err error) {
	sh, err := script()
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "dmarcd-test-clickhouse-")
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // includes an apt-get install
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", sh, "start", dir)
	// Stop the server when this test binary dies without Main's teardown
	// (a panic, a -timeout).
	cmd.Env = append(os.Environ(), fmt.Sprintf("CLICKHOUSE_OWNER_PID=%d", os.Getpid()))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		stopServer(dir)
		return "", "", fmt.Errorf("%s start: %v: %s", sh, err, strings.TrimSpace(stderr.String()))
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), EnvClickHouseAddr+"="); ok {
			addr = v
		}
	}
	if addr == "" {
		stopServer(dir)
		return "", "", fmt.Errorf("%s start printed no %s line: %q", sh, EnvClickHouseAddr, out)
	}
	if err := ping(addr); err != nil {
		stopServer(dir)
		return "", "", fmt.Errorf("server started by %s does not answer: %w", sh, err)
	}
	return addr, dir, nil
}

// stopServer stops the server whose state is in dir and removes dir.
func stopServer(dir string) error {
	sh, err := script()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", sh, "stop", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s stop: %v: %s", sh, err, out)
	}
	return os.RemoveAll(dir)
}

func connect(addr string) (clickhouse.Conn, error) {
	return clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: "default"},
		DialTimeout: 5 * time.Second,
	})
}

func ping(addr string) error {
	conn, err := connect(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

func dropDatabase(addr, db string) error {
	conn, err := connect(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
}

// databaseName makes a unique database name that shows the test's name.
func databaseName(test string) string {
	var b strings.Builder
	b.WriteString("test_")
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 45 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

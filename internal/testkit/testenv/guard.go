package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Environment variables that choose which tests run and what they may start.
const (
	// EnvNoServers, when "1", forbids the test binary to start any server
	// (ClickHouse, Dovecot, versitygw, the chdb engine, promtool): a test
	// that asks for one fails instead. `make test-unit` sets it with -short.
	EnvNoServers = "DMARCD_TEST_NO_SERVERS"
	// EnvLong, when "1", runs the long soaks (`make test-long`); without it
	// they are skipped (see Long).
	EnvLong = "DMARCD_TEST_LONG"
)

// StartsServer is the guard a test calls before it starts a server (or a
// server-like tool) of its own, outside the helpers of this package: what
// names it. Under -short or with DMARCD_TEST_NO_SERVERS=1 it fails the
// test, since `make test-unit` starts no server; such a test skips under
// -short before it gets here (every helper of this package does).
func StartsServer(t testing.TB, what string) {
	t.Helper()
	if testing.Short() || os.Getenv(EnvNoServers) == "1" {
		t.Fatalf("testenv: the test starts %s under -short or %s=1, where no server may start: "+
			"skip it when testing.Short(), or ask for the server through testenv, which does", what, EnvNoServers)
	}
}

// skipShort skips the test under -short, which starts no server (what names
// the server the test needs), and otherwise guards the start (StartsServer).
func skipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs " + what + " (skipped with -short, which starts no server)")
	}
	StartsServer(t, what)
}

// Long marks a long soak: a test whose point needs minutes of load (many
// kills, large backlogs). It runs in `make test-long` (DMARCD_TEST_LONG=1)
// and is skipped otherwise, CI included, where .ci/run runs make test-long
// after make test when time allows.
func Long(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvLong) != "1" {
		t.Skip("a long soak: runs with make test-long (" + EnvLong + "=1)")
	}
}

// Promtool returns the path of promtool (Prometheus's rule checker):
// from PATH, or else from scripts/promtool.sh, which installs Debian's
// prometheus package when it is missing and we are root. Without it the
// test fails in CI and is skipped otherwise; under -short it is skipped.
func Promtool(t testing.TB) string {
	t.Helper()
	skipShort(t, "promtool")
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	out, err := exec.Command(filepath.Join(ModuleRoot(), "scripts", "promtool.sh")).Output()
	if p := strings.TrimSpace(string(out)); err == nil && p != "" {
		return p
	}
	unavailable(t, "promtool is missing (install Debian's prometheus package; scripts/promtool.sh does it as root)")
	return ""
}

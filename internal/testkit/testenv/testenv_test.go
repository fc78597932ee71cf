package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestModuleRootHoldsGoMod(t *testing.T) {
	root := ModuleRoot()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatalf("ModuleRoot() = %q: %v", root, err)
	}
	if !strings.Contains(string(b), "module github.com/dmarcd/dmarcd") {
		t.Errorf("%s/go.mod is not dmarcd's", root)
	}
}

func TestDatabaseNamesAreUniqueIdentifiers(t *testing.T) {
	ident := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	a := databaseName("TestX/sub test-1 with a very long name that goes on and on and on")
	b := databaseName("TestX/sub test-1 with a very long name that goes on and on and on")
	if a == b || !ident.MatchString(a) || len(a) > 64 {
		t.Errorf("names %q, %q: want two different identifiers of at most 64 bytes", a, b)
	}
}

func TestClickHouseGivesAFreshDatabaseOnAServerThatAnswers(t *testing.T) {
	dsn := ClickHouse(t)
	addr, db, ok := strings.Cut(strings.TrimPrefix(dsn, "clickhouse://"), "/")
	if !strings.HasPrefix(dsn, "clickhouse://") || !ok || db == "" {
		t.Fatalf("dsn %q: want clickhouse://ADDR/DB", dsn)
	}
	if err := ping(addr); err != nil {
		t.Fatalf("server %s: %v", addr, err)
	}
	if dsn2 := ClickHouse(t); dsn2 == dsn {
		t.Errorf("two calls gave the same database %s", dsn)
	}
}

func TestCorpusDirExists(t *testing.T) {
	dir := CorpusDir(t)
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); err != nil {
		t.Errorf("corpus %s: %v", dir, err)
	}
}

// failRecorder is a testing.TB whose Fatalf records the message instead of
// ending the test.
type failRecorder struct {
	testing.TB
	msg string
}

func (r *failRecorder) Helper() {}

func (r *failRecorder) Fatalf(format string, args ...any) { r.msg = fmt.Sprintf(format, args...) }

func TestStartsServerFailsATestWhereNoServerMayStart(t *testing.T) {
	t.Setenv(EnvNoServers, "1")
	r := &failRecorder{TB: t}
	StartsServer(r, "a ClickHouse server")
	if !strings.Contains(r.msg, "starts a ClickHouse server") {
		t.Errorf("StartsServer with %s=1: failure %q, want one naming the server", EnvNoServers, r.msg)
	}
	t.Setenv(EnvNoServers, "")
	if r := (&failRecorder{TB: t}); !testing.Short() {
		StartsServer(r, "a ClickHouse server")
		if r.msg != "" {
			t.Errorf("StartsServer without -short or %s: failed with %q", EnvNoServers, r.msg)
		}
	}
}

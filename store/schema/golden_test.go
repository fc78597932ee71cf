package schema

// Golden tests of the rendered migrations: every migration for a single
// server and for a cluster, compared with testdata/golden/. Run `go test
// ./store/schema/ -run Golden -update` to rewrite them after an intended
// change, and review the diff.

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of testdata/golden")

// goldenDir holds the golden files.
const goldenDir = "testdata/golden"

// Fixed inputs of the rendered statements.
const (
	goldenDatabase = "dmarc"
	goldenCluster  = "dmarc_cluster"
)

// goldenModes are the two ways the schema is rendered: golden files of each
// are named with the mode.
var goldenModes = []struct{ name, cluster string }{{"single", ""}, {"cluster", goldenCluster}}

// goldenSQL renders statements as a golden file: each statement after a
// comment naming the call that sends it (Exec).
func goldenSQL(stmts []string) string {
	var b strings.Builder
	for i, q := range stmts {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("-- Exec\n" + strings.TrimSpace(q) + ";\n")
	}
	return b.String()
}

// checkGolden compares got with testdata/golden/name, or writes it there
// under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *updateGolden {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./store/schema/ -run Golden -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the rendered SQL (if intended, run go test ./store/schema/ -run Golden -update and review the diff):\n%s",
			path, firstDifference(string(want), got))
	}
}

// firstDifference shows the first line where want and got differ.
func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  golden:   %q\n  rendered: %q", i+1, wl, gl)
		}
	}
	return "(same lines)"
}

// goldenMigrationFile names the golden file of one migration in a mode:
// migrate_single_0001_init.sql, migrate_cluster_schema_migrations.sql.
func goldenMigrationFile(mode, migration string) string {
	return "migrate_" + mode + "_" + strings.TrimSuffix(filepath.Base(migration), ".sql") + ".sql"
}

// TestGoldenMigrationsRenderAsRecorded renders schema_migrations and every
// migration for a single server and for a cluster (ON CLUSTER, Replicated
// _local tables and their Distributed tables) and compares each with its
// golden file; a golden file without a migration fails too.
func TestGoldenMigrationsRenderAsRecorded(t *testing.T) {
	written := map[string]bool{}
	for _, mode := range goldenModes {
		stmts, err := Target{Database: goldenDatabase, Cluster: mode.cluster}.Statements()
		if err != nil {
			t.Fatalf("%s: %v", mode.name, err)
		}
		var order []string
		byFile := map[string][]string{}
		for _, st := range stmts {
			f := goldenMigrationFile(mode.name, st.Migration)
			if byFile[f] == nil {
				order = append(order, f)
			}
			byFile[f] = append(byFile[f], st.SQL)
		}
		for _, f := range order {
			written[f] = true
			t.Run(f, func(t *testing.T) { checkGolden(t, f, goldenSQL(byFile[f])) })
		}
	}
	old, err := filepath.Glob(filepath.Join(goldenDir, "migrate_*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range old {
		if !written[filepath.Base(p)] {
			if *updateGolden {
				os.Remove(p)
				continue
			}
			t.Errorf("%s: no migration renders it any more (run with -update to remove it)", p)
		}
	}
}

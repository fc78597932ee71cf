package schema

// Golden tests of the rendered migrations: every migration for a single
// server and for a cluster, compared with testdata/golden/. Run `go test
// ./store/schema/ -run Golden -update` to rewrite them after an intended
// change, and review the diff.

import (
	"github.com/dmarcd/dmarcd/internal/testkit/sqlgolden"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
			t.Run(f, func(t *testing.T) { sqlgolden.Check(t, f, goldenSQL(byFile[f])) })
		}
	}
	old, err := filepath.Glob(filepath.Join(sqlgolden.Dir, "migrate_*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range old {
		if !written[filepath.Base(p)] {
			if sqlgolden.Updating() {
				os.Remove(p)
				continue
			}
			t.Errorf("%s: no migration renders it any more (run with -update to remove it)", p)
		}
	}
}

// Package sqlgolden records the statements a reader sends (Recorder, a
// chsql.Querier without a server) and compares them with golden files of
// the package under test (testdata/golden/). Run the package's tests with
// -update to rewrite them after an intended change, and review the diff.
package sqlgolden

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden")

// Dir holds the golden files, relative to the package under test.
const Dir = "testdata/golden"

// Stmt is one statement sent to a Recorder.
type Stmt struct {
	Call, SQL string
	Args      []any
}

// Recorder records the statements sent to it and answers each with no
// rows: Query returns empty rows, QueryRow a row that scans nothing.
type Recorder struct {
	mu    sync.Mutex
	Stmts []Stmt
}

func (r *Recorder) record(call, q string, args []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Stmts = append(r.Stmts, Stmt{call, q, args})
}

// Query records q and returns no rows.
func (r *Recorder) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	r.record("Query", q, args)
	return noRows{}, nil
}

// QueryRow records q and returns a row whose Scan sets nothing.
func (r *Recorder) QueryRow(ctx context.Context, q string, args ...any) driver.Row {
	r.record("QueryRow", q, args)
	return noRow{}
}

// SQL renders the recorded statements as a golden file: each statement with
// its call and arguments as a comment (the format of store's golden files).
func (r *Recorder) SQL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for i, st := range r.Stmts {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "-- %s", st.Call)
		if len(st.Args) > 0 {
			fmt.Fprintf(&b, " args: %v", st.Args)
		}
		b.WriteString("\n" + strings.TrimSpace(st.SQL) + ";\n")
	}
	return b.String()
}

// Updating reports whether the test runs with -update (golden files are
// rewritten, not compared).
func Updating() bool { return *update }

// Check compares got with Dir/name, or writes it there under -update.
func Check(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(Dir, name)
	if *update {
		if err := os.MkdirAll(Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the rendered SQL (if intended, run the test with -update and review the diff):\n%s",
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

// noRows are empty result rows.
type noRows struct{ driver.Rows }

func (noRows) Next() bool           { return false }
func (noRows) Err() error           { return nil }
func (noRows) Close() error         { return nil }
func (noRows) Scan(...any) error    { return nil }
func (noRows) ScanStruct(any) error { return nil }

// noRow is QueryRow's answer: no error, nothing scanned.
type noRow struct{}

func (noRow) Err() error           { return nil }
func (noRow) Scan(...any) error    { return nil }
func (noRow) ScanStruct(any) error { return nil }

package compat

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/store"
)

// maxPerShape bounds the statements replayed per shape (the same query with
// other values: a report key, a domain, a time): the first ones sent.
const maxPerShape = 3

// TestEveryReadDmarcdSendsAnswersTheSameOnClickHouse18And26 captures the
// reads dmarcd really sends, on ClickHouse 18.16, and asks ClickHouse 26.x
// the same on the same data:
//
//  1. on a fresh 18.16 database whose connections log every statement
//     (capture), it stores two domains' generated reports, a forged one,
//     TLS and failure reports, attributions and DNS record changes, then
//     runs every reader: each read method of *store.Store (a reader added
//     later fails TestEveryStoreMethodIsCapturedOrAccountedFor until it is
//     called here), the gauges, `dmarcd summary` and `dmarcd readiness`
//     (human and --json) and every ClickHouse query of every dashboard with
//     its macros expanded;
//  2. it reads the distinct statements from system.query_log, so a query
//     added to any of those paths is checked without being listed;
//  3. it copies every table of the database to 26.x (the CREATE TABLE
//     statements 18.16 shows, the rows in TSV);
//  4. it runs each SELECT on both and compares columns, types and rows
//     (compareResults): statements on system tables by columns and types
//     only, as their rows describe each engine's own state.
func TestEveryReadDmarcdSendsAnswersTheSameOnClickHouse18And26(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ClickHouse 18.16 and the 26.x engine (skipped with -short)")
	}
	began := time.Now()
	e := testenv.CHDB(t)
	c := newCapture(t)
	ctx := context.Background()

	st := c.openStore(t, 40) // reports of more than 40 records go through staging
	s := seed(t, st)
	readers := storeReaders(s)
	names := make([]string, 0, len(readers))
	for n := range readers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := readers[n](ctx, st); err != nil {
			t.Fatalf("store %s on 18.16: %v", n, err)
		}
	}
	products := productReaders()
	names = names[:0]
	for n := range products {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := products[n](ctx, st); err != nil {
			t.Fatalf("%s on 18.16: %v", n, err)
		}
	}
	runGauges(t, st)
	st.Close()
	runCommands(t, c.dsn)
	nDash := runDashboards(t, c.conn)
	captured := time.Now()

	stmts := c.statements(t)
	kinds := map[string]int{}
	for _, s := range stmts {
		kinds[s.kind]++
	}
	t.Logf("captured %d distinct statements on 18.16 (%v) in %v; %d dashboard queries", len(stmts), kinds, captured.Sub(began).Round(time.Millisecond), nDash)

	tables := copyTables(t, c, e)
	t.Logf("copied %d tables to %s", tables, e.Version())

	var checked, onSystem, gone, shapes int
	perShape := map[string]int{}
	for _, s := range stmts {
		if s.kind != "SELECT" && s.kind != "WITH" {
			continue
		}
		sh := shape(s.sql)
		if perShape[sh]++; perShape[sh] > maxPerShape {
			continue
		}
		if perShape[sh] == 1 {
			shapes++
		}
		a, err := c.http.query(s.sql)
		if err != nil {
			// Sent while writing: a staging or claim table dropped since.
			if strings.Contains(err.Error(), "Code: 60") {
				gone++
				continue
			}
			t.Errorf("18.16 refuses a statement it ran when captured: %v\n%s", err, s.sql)
			continue
		}
		system := strings.Contains(s.sql, "system.")
		b, err := query26(e, strings.ReplaceAll(s.sql, c.db, e.Database()))
		if err != nil {
			t.Errorf("26.x refuses a statement that 18.16 runs: %v\n%s", err, s.sql)
			continue
		}
		checked++
		if system {
			onSystem++
			a.rows, b.rows = nil, nil
		}
		if d := compareResults(s.sql, a, b); len(d) > 0 {
			t.Errorf("26.x answers otherwise than 18.16:\n  %s\n%s", strings.Join(d, "\n  "), s.sql)
		}
	}
	t.Logf("checked %d distinct reads (%d shapes; %d on system tables by columns and types only); %d sent while writing are gone with their tables; total %v",
		checked, shapes, onSystem, gone, time.Since(began).Round(time.Millisecond))
	if shapes < 40 {
		t.Errorf("only %d shapes of reads checked: the capture lost statements", shapes)
	}
}

// query26 runs sql on the 26.x engine.
func query26(e *testenv.Engine, sql string) (result, error) {
	cols, rows, err := e.Query(sql)
	return result{cols: cols, rows: rows}, err
}

// copyTables copies every table of the 18.16 database to the engine's:
// merged first (OPTIMIZE ... FINAL, so that both hold the same rows), then
// created with the statement SHOW CREATE TABLE prints on 18.16 and filled
// with its rows in TSVWithNames (AggregateFunction states as 18.16
// serialises them). It returns the number of tables.
func copyTables(t *testing.T, c *capture, e *testenv.Engine) int {
	t.Helper()
	ctx := context.Background()
	rows, err := c.admin.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree' ORDER BY name", c.db)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	for _, tb := range tables {
		if err := c.admin.Exec(ctx, "OPTIMIZE TABLE "+tb+" FINAL"); err != nil {
			t.Fatalf("OPTIMIZE TABLE %s FINAL on 18.16: %v", tb, err)
		}
		var create string
		if err := c.admin.QueryRow(ctx, "SHOW CREATE TABLE "+tb).Scan(&create); err != nil {
			t.Fatal(err)
		}
		create = strings.Replace(create, "CREATE TABLE "+c.db+".", "CREATE TABLE ", 1)
		if err := e.Exec(create); err != nil {
			t.Fatalf("26.x refuses the table 18.16 shows: %v\n%s", err, create)
		}
		data, err := c.http.raw("SELECT * FROM " + tb + " FORMAT TSVWithNames")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(data, "\n") < 2 {
			continue
		}
		if err := e.Exec("INSERT INTO " + tb + " SETTINGS optimize_on_insert = 0 FORMAT TSVWithNames\n" + data); err != nil {
			t.Fatalf("copying %s to 26.x: %v", tb, err)
		}
		var n18 uint64
		if err := c.admin.QueryRow(ctx, "SELECT count() FROM "+tb).Scan(&n18); err != nil {
			t.Fatal(err)
		}
		_, r, err := e.Query("SELECT count() FROM " + tb)
		if err != nil || len(r) != 1 || r[0][0] != fmt.Sprint(n18) {
			t.Fatalf("%s on 26.x: %v rows (%v), 18.16 has %d", tb, r, err, n18)
		}
	}
	return len(tables)
}

// TestEveryStoreMethodIsCapturedOrAccountedFor makes a method added to
// *store.Store either a reader the capture calls or one that says why not.
func TestEveryStoreMethodIsCapturedOrAccountedFor(t *testing.T) {
	readers := storeReaders(seeded{})
	typ := reflect.TypeOf(&store.Store{})
	var missing []string
	for i := 0; i < typ.NumMethod(); i++ {
		n := typ.Method(i).Name
		_, r := readers[n]
		_, w := storeNotReaders[n]
		switch {
		case r && w:
			t.Errorf("store.%s is both called and left out", n)
		case !r && !w:
			missing = append(missing, n)
		}
	}
	for n := range readers {
		if _, ok := typ.MethodByName(n); !ok {
			t.Errorf("storeReaders calls store.%s, which is gone", n)
		}
	}
	for n := range storeNotReaders {
		if _, ok := typ.MethodByName(n); !ok {
			t.Errorf("storeNotReaders lists store.%s, which is gone", n)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("store methods neither called by the capture (storeReaders) nor listed in storeNotReaders: %v", missing)
	}
}

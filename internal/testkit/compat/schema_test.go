package compat

// The schema on ClickHouse 26.x: every migration as Migrate renders it for a
// single server, applied twice on the 26.x engine; every statement of the
// cluster rendering parsed there (ON CLUSTER and Replicated engines need a
// server and ZooKeeper); and the tables compared, column by column, with
// what the 18.16 server of the test run creates.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/store"
	"github.com/dmarcd/dmarcd/store/schema"
)

// migrate26 applies every single-server schema statement to the engine's
// database, in order. With again set the schema is there already: a
// statement may fail only with an error Migrate takes as applied, and the
// errors are returned.
func migrate26(t *testing.T, e *testenv.Engine, again bool) []error {
	t.Helper()
	stmts, err := schema.Target{Database: e.Database()}.Statements()
	if err != nil {
		t.Fatal(err)
	}
	var applied []error
	for i, s := range stmts {
		err := e.Exec(s.SQL)
		switch {
		case err == nil:
		case again && schema.ErrorIsApplied(s.SQL, err):
			applied = append(applied, err)
		default:
			t.Fatalf("%s, statement %d on %s: %v\n%s", s.Migration, i+1, e.Version(), err, s.SQL)
		}
	}
	return applied
}

// column is one row of system.columns. 18.16 and 26.7 print every type and
// default expression of the schema the same way: no normalisation needed.
type column struct {
	Table, Name, Type, DefaultKind, Default string
}

func (c column) String() string {
	return fmt.Sprintf("%s.%s %s %s %s", c.Table, c.Name, c.Type, c.DefaultKind, c.Default)
}

// columnsQueries list the columns of the schema, then each table's engine,
// partition and sorting keys as a column "" (Type, DefaultKind, Default).
var columnsQueries = []string{`SELECT table, name, type, default_kind, default_expression
FROM system.columns WHERE database = currentDatabase() ORDER BY table, name`,
	`SELECT name, '', engine, partition_key, sorting_key
FROM system.tables WHERE database = currentDatabase() ORDER BY name`}

func columns26(t *testing.T, e *testenv.Engine) []column {
	t.Helper()
	var out []column
	for _, q := range columnsQueries {
		_, rows, err := e.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			u := testenv.UnescapeTSV
			out = append(out, column{u(r[0]), u(r[1]), u(r[2]), u(r[3]), u(r[4])})
		}
	}
	return out
}

func TestEveryMigrationAppliesOn26AndAgainAsANoOp(t *testing.T) {
	e := testenv.CHDB(t)
	migrate26(t, e, false)
	first := columns26(t, e)
	if len(first) == 0 {
		t.Fatal("the migrations created no columns")
	}
	applied := migrate26(t, e, true)
	if len(applied) == 0 {
		t.Fatal("no ADD COLUMN ran twice: this test checks nothing of alreadyApplied")
	}
	for _, err := range applied {
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != 15 {
			t.Errorf("ADD COLUMN of an existing column on 26.x: %v, want code 15 (DUPLICATE_COLUMN)", err)
		}
	}
	if again := columns26(t, e); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("the second run changed the columns: %s", testenv.FirstDiff(again, first))
	}
	t.Logf("schema statements applied twice on %s (%d ADD COLUMN taken as applied the second time), %d columns and table engines/keys",
		e.Version(), len(applied), len(first))
}

func TestEveryClusterStatementParsesOn26(t *testing.T) {
	e := testenv.CHDB(t)
	stmts, err := schema.Target{Database: "dmarc", Cluster: "dmarc_cluster"}.Statements()
	if err != nil {
		t.Fatal(err)
	}
	onCluster := 0
	for i, s := range stmts {
		if strings.Contains(s.SQL, " ON CLUSTER ") {
			onCluster++
		}
		if _, _, err := e.Query("EXPLAIN AST " + s.SQL); err != nil {
			t.Errorf("%s, cluster statement %d does not parse on %s: %v\n%s", s.Migration, i+1, e.Version(), err, s.SQL)
		}
	}
	if onCluster == 0 {
		t.Fatal("no statement runs ON CLUSTER: the cluster rendering is not what this test checks")
	}
	t.Logf("%d cluster statements parsed on %s", len(stmts), e.Version())
}

func columns1816(t *testing.T) []column {
	t.Helper()
	dsn := testenv.ClickHouse(t)
	ctx := context.Background()
	s, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("store.Open(%s): %v", dsn, err)
	}
	s.Close()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []column
	for _, q := range columnsQueries {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c column
			if err := rows.Scan(&c.Table, &c.Name, &c.Type, &c.DefaultKind, &c.Default); err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

func TestTheSchemaOn26HasThe1816TablesColumnsAndTypes(t *testing.T) {
	old := columns1816(t)
	e := testenv.CHDB(t)
	migrate26(t, e, false)
	cur := columns26(t, e)
	key := func(c column) string { return c.Table + "." + c.Name }
	byKey := map[string]column{}
	for _, c := range old {
		byKey[key(c)] = c
	}
	var diffs []string
	for _, c := range cur {
		o, ok := byKey[key(c)]
		delete(byKey, key(c))
		switch {
		case !ok:
			diffs = append(diffs, "only on 26.x: "+c.String())
		case o != c:
			diffs = append(diffs, fmt.Sprintf("18.16: %v\n   26.x: %v", o, c))
		}
	}
	for _, c := range byKey {
		diffs = append(diffs, "only on 18.16: "+c.String())
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Error(d)
	}
	t.Logf("%d columns and table engines/keys compared between 18.16 and %s", len(cur), e.Version())
}

package compat

import (
	"errors"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestTheEngineIsClickHouse26(t *testing.T) {
	e := testenv.CHDB(t)
	if !strings.HasPrefix(e.Version(), "26.") {
		t.Fatalf("engine version %q, want 26.x", e.Version())
	}
}

func TestTheEngineKeepsMergeTreeTablesInTheTestsDatabase(t *testing.T) {
	t.Parallel()
	e, other := testenv.CHDB(t), testenv.CHDB(t)
	if e.Database() == other.Database() {
		t.Fatalf("two engines share database %s", e.Database())
	}
	if err := other.Exec("CREATE TABLE t (x UInt8) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	if err := e.Exec("CREATE TABLE t (d Date, s String, a Array(String)) ENGINE = MergeTree ORDER BY d"); err != nil {
		t.Fatal(err)
	}
	if err := e.Exec("INSERT INTO t VALUES ('2024-01-02', 'tab\there', ['x','y'])"); err != nil {
		t.Fatal(err)
	}
	cols, rows, err := e.Query("SELECT d, s, a, currentDatabase() AS db FROM t")
	if err != nil {
		t.Fatal(err)
	}
	want := []testenv.Column{{Name: "d", Type: "Date"}, {Name: "s", Type: "String"}, {Name: "a", Type: "Array(String)"}, {Name: "db", Type: "String"}}
	if len(cols) != len(want) || len(rows) != 1 {
		t.Fatalf("columns %v, rows %v; want %v and one row", cols, rows, want)
	}
	for i := range want {
		if cols[i] != want[i] {
			t.Errorf("column %d is %v, want %v", i, cols[i], want[i])
		}
	}
	if got := strings.Join(rows[0], "|"); got != `2024-01-02|tab\there|['x','y']|`+e.Database() {
		t.Errorf("row %q", got)
	}
}

func TestTheEngineReportsErrorsAsAServerWould(t *testing.T) {
	e := testenv.CHDB(t)
	err := e.Exec("SELECT no_such_column FROM system.one")
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 47 || !strings.HasSuffix(ex.Message, "(UNKNOWN_IDENTIFIER)") {
		t.Fatalf("error %#v, want a clickhouse.Exception code 47 UNKNOWN_IDENTIFIER", err)
	}
}

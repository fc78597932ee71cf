package store

import (
	"context"
	"errors"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/store/schema"
)

// TestAddColumnRunTwiceCountsAsApplied: a process that dies after a
// migration's ALTER ... ADD COLUMN but before recording it, or two processes
// migrating one database at once, run the ALTER a second time. ClickHouse
// (18.16 has no ADD COLUMN IF NOT EXISTS) answers "column already exists",
// which Migrate must take as done, and nothing else as done.
func TestAddColumnRunTwiceCountsAsApplied(t *testing.T) {
	st, _ := open(t, Options{})
	ctx := context.Background()
	list, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range list {
		stmts, err := st.target().MigrationStatements(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range stmts {
			if !schema.AddsColumn(q) {
				continue
			}
			n++
			err := st.conn.Exec(ctx, q)
			if err == nil {
				t.Errorf("%s: ALTER ran twice without an error: %.80q", m.File, q)
				continue
			}
			if !schema.ErrorIsApplied(q, err) {
				t.Errorf("%s: the second run's error is not taken as applied: %v", m.File, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no migration adds columns: this test checks nothing")
	}
	bad := "ALTER TABLE aggregate_reports ADD COLUMN zz_new String"
	if err := st.conn.Exec(ctx, "ALTER TABLE no_such_table ADD COLUMN x String"); err == nil || schema.ErrorIsApplied(bad, err) {
		t.Errorf("an ALTER of a missing table is taken as applied: %v", err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
}

// ddlTimeoutConn fails the first fails Execs as a distributed DDL that a
// server did not run in time (code 159), then runs them.
type ddlTimeoutConn struct {
	driver.Conn
	fails, execs int
}

func (c *ddlTimeoutConn) Exec(ctx context.Context, q string, args ...any) error {
	c.execs++
	if c.fails > 0 {
		c.fails--
		return &clickhouse.Exception{Code: schema.ErrCodeTimeoutExceeded, Message: "Watching task /clickhouse/task_queue/ddl/query-0000000096 is executing longer than distributed_ddl_task_timeout (=180) seconds. There are 1 unfinished hosts (1 of them are currently active), they are going to execute the query in background"}
	}
	return c.Conn.Exec(ctx, q, args...)
}

// TestMigrationStatementRunsAgainAfterADDLTimeout: a statement whose
// distributed DDL timed out runs again (it is idempotent), up to
// schema.DDLAttempts times; other errors are not retried.
func TestMigrationStatementRunsAgainAfterADDLTimeout(t *testing.T) {
	s, _ := open(t, Options{})
	real := s.conn
	defer func() { s.conn = real }()
	q := "CREATE TABLE IF NOT EXISTS ddl_retry (x UInt8) ENGINE = Memory"

	c := &ddlTimeoutConn{Conn: real, fails: schema.DDLAttempts - 1}
	s.conn = c
	if err := s.runner().Exec(context.Background(), q); err != nil {
		t.Fatalf("after %d timeouts: %v", schema.DDLAttempts-1, err)
	}
	if c.execs != schema.DDLAttempts {
		t.Errorf("%d runs, want %d", c.execs, schema.DDLAttempts)
	}
	if n := queryUint(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'ddl_retry'"); n != 1 {
		t.Errorf("table created %d times, want 1", n)
	}

	c = &ddlTimeoutConn{Conn: real, fails: schema.DDLAttempts}
	s.conn = c
	err := s.runner().Exec(context.Background(), q)
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != schema.ErrCodeTimeoutExceeded || c.execs != schema.DDLAttempts {
		t.Errorf("after %d timeouts: %v in %d runs, want the timeout after %d", schema.DDLAttempts, err, c.execs, schema.DDLAttempts)
	}

	s.conn = real
	if err := s.runner().Exec(context.Background(), "CREATE TABLE ddl_retry (x UInt8) ENGINE = Memory"); err == nil {
		t.Error("a statement that fails otherwise succeeded")
	}
}

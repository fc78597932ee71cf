package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func TestMigrationsRenderForSingleServerAndCluster(t *testing.T) {
	list, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) == 0 || list[0].Version != 1 || list[0].Name != "init" {
		t.Fatalf("migrations = %+v, want 0001_init first", list)
	}
	for _, cluster := range []string{"", "dmarc_cluster"} {
		s := &Store{database: "dmarc", cluster: cluster}
		for _, m := range list {
			text, err := migrationFiles.ReadFile(m.File)
			if err != nil {
				t.Fatal(err)
			}
			stmts, err := s.render(m.File, string(text))
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range stmts {
				if strings.Contains(q, "--") || strings.HasSuffix(q, ";") {
					t.Errorf("statement keeps a comment or its ';': %q", q)
				}
				for _, banned := range []string{"LowCardinality", "Map(", "DateTime64", "TTL", "IPv4", "IPv6"} {
					if strings.Contains(q, banned) {
						t.Errorf("%s uses %s, which ClickHouse 18.16 lacks", m.File, banned)
					}
				}
				// ALTER ... ADD COLUMN cannot say IF NOT EXISTS on 18.16:
				// Migrate treats "column already exists" as applied.
				alter := addColumn.MatchString(q)
				if !alter && !strings.Contains(q, "IF NOT EXISTS") {
					t.Errorf("%s: statement is not idempotent: %.60q", m.File, q)
				}
				onCluster := strings.Contains(q, "ON CLUSTER `dmarc_cluster`")
				replicated := strings.Contains(q, "ENGINE = Replicated") || alter
				if cluster == "" && (onCluster || strings.Contains(q, "ENGINE = Replicated")) || cluster != "" && (!onCluster || !replicated) {
					t.Errorf("cluster %q: statement %.80q", cluster, q)
				}
			}
		}
	}
}

func TestEngineRendersReplicatedFormInClusterMode(t *testing.T) {
	s := &Store{database: "dmarc"}
	if got := s.engine("aggregate_reports", "ReplacingMergeTree", "ingested_at"); got != "ReplacingMergeTree(ingested_at)" {
		t.Errorf("single server: %s", got)
	}
	s.cluster = "c"
	want := "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/dmarc/aggregate_reports', '{replica}', ingested_at)"
	if got := s.engine("aggregate_reports", "ReplacingMergeTree", "ingested_at"); got != want {
		t.Errorf("cluster:\n got %s\nwant %s", got, want)
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- a comment;\nCREATE TABLE a (x UInt8);\n\n-- b\nCREATE TABLE b\n(y String);\nSELECT 1")
	want := []string{"CREATE TABLE a (x UInt8)", "CREATE TABLE b\n(y String)", "SELECT 1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestAddColumnRunTwiceCountsAsApplied: a process that dies after a
// migration's ALTER ... ADD COLUMN but before recording it, or two processes
// migrating one database at once, run the ALTER a second time. ClickHouse
// (18.16 has no ADD COLUMN IF NOT EXISTS) answers "column already exists",
// which Migrate must take as done, and nothing else as done.
func TestAddColumnRunTwiceCountsAsApplied(t *testing.T) {
	st, _ := open(t, Options{})
	ctx := context.Background()
	list, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range list {
		text, _ := migrationFiles.ReadFile(m.File)
		stmts, err := st.render(m.File, string(text))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range stmts {
			if !addColumn.MatchString(q) {
				continue
			}
			n++
			err := st.conn.Exec(ctx, q)
			if err == nil {
				t.Errorf("%s: ALTER ran twice without an error: %.80q", m.File, q)
				continue
			}
			if !alreadyApplied(q, err) {
				t.Errorf("%s: the second run's error is not taken as applied: %v", m.File, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no migration adds columns: this test checks nothing")
	}
	bad := "ALTER TABLE aggregate_reports ADD COLUMN zz_new String"
	if err := st.conn.Exec(ctx, "ALTER TABLE no_such_table ADD COLUMN x String"); err == nil || alreadyApplied(bad, err) {
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
		return &clickhouse.Exception{Code: errCodeTimeoutExceeded, Message: "Watching task /clickhouse/task_queue/ddl/query-0000000096 is executing longer than distributed_ddl_task_timeout (=180) seconds. There are 1 unfinished hosts (1 of them are currently active), they are going to execute the query in background"}
	}
	return c.Conn.Exec(ctx, q, args...)
}

// TestMigrationStatementRunsAgainAfterADDLTimeout: a statement whose
// distributed DDL timed out runs again (it is idempotent), up to
// ddlAttempts times; other errors are not retried.
func TestMigrationStatementRunsAgainAfterADDLTimeout(t *testing.T) {
	s, _ := open(t, Options{})
	real := s.conn
	defer func() { s.conn = real }()
	q := "CREATE TABLE IF NOT EXISTS ddl_retry (x UInt8) ENGINE = Memory"

	c := &ddlTimeoutConn{Conn: real, fails: ddlAttempts - 1}
	s.conn = c
	if err := s.execMigration(context.Background(), q); err != nil {
		t.Fatalf("after %d timeouts: %v", ddlAttempts-1, err)
	}
	if c.execs != ddlAttempts {
		t.Errorf("%d runs, want %d", c.execs, ddlAttempts)
	}
	if n := queryUint(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'ddl_retry'"); n != 1 {
		t.Errorf("table created %d times, want 1", n)
	}

	c = &ddlTimeoutConn{Conn: real, fails: ddlAttempts}
	s.conn = c
	err := s.execMigration(context.Background(), q)
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != errCodeTimeoutExceeded || c.execs != ddlAttempts {
		t.Errorf("after %d timeouts: %v in %d runs, want the timeout after %d", ddlAttempts, err, c.execs, ddlAttempts)
	}

	s.conn = real
	if err := s.execMigration(context.Background(), "CREATE TABLE ddl_retry (x UInt8) ENGINE = Memory"); err == nil {
		t.Error("a statement that fails otherwise succeeded")
	}
}

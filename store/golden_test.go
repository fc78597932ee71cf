package store

// Golden tests of the SQL the store renders: every migration for a single
// server and for a cluster, and the statements built at run time (staging
// and rollup DDL, the rollup's INSERT ... SELECTs, rebuild, prune and
// claims), each from fixed inputs (the readers' queries have golden files
// of their own packages, internal/product/*). No server: migrations render from their templates, and the rest
// is recorded by goldenConn, a connection that answers every statement with
// scripted rows. Run `go test ./store/ -run Golden -update` to rewrite
// testdata/golden/ after an intended change, and review the diff.

import (
	"context"
	"fmt"
	"github.com/dmarcd/dmarcd/internal/testkit/sqlgolden"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Fixed inputs of the rendered statements.
const (
	goldenDatabase = "dmarc"
	goldenCluster  = "dmarc_cluster"
	goldenDomain   = "example.com"
	goldenKey      = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

var (
	goldenSince = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	goldenUntil = time.Date(2026, 11, 8, 0, 0, 0, 0, time.UTC)
)

// goldenRandom matches the random parts of table names (staging tables,
// taken-over claims), which goldenSQL replaces by a fixed placeholder.
var goldenRandom = regexp.MustCompile(`(` + stagingPrefix + `(?:rollup_)?)[0-9a-f]{16}|(_stale_)[0-9a-f]{8}`)

// goldenStmt is one statement sent to goldenConn.
type goldenStmt struct {
	call, sql string
	args      []any
}

// goldenLog is what the connections of a golden store received, in order.
type goldenLog struct {
	mu    sync.Mutex
	stmts []goldenStmt
}

// goldenConn records the statements a Store sends and answers them without
// a server: Exec succeeds, Query returns the rows that answer gives for the
// statement (none by default), QueryRow scans nothing (its destinations keep
// their zero values), PrepareBatch fails. In cluster mode each shard has
// one, labelled "shard N".
type goldenConn struct {
	driver.Conn
	answer func(q string, args []any) [][]any
	label  string
	log    *goldenLog
}

func (c *goldenConn) record(call, q string, args []any) {
	if c.label != "" {
		call = c.label + " " + call
	}
	c.log.mu.Lock()
	defer c.log.mu.Unlock()
	c.log.stmts = append(c.log.stmts, goldenStmt{call, q, args})
}

func (c *goldenConn) Exec(ctx context.Context, q string, args ...any) error {
	c.record("Exec", q, args)
	return nil
}

func (c *goldenConn) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	c.record("Query", q, args)
	var rows [][]any
	if c.answer != nil {
		rows = c.answer(q, args)
	}
	return &goldenRows{rows: rows}, nil
}

func (c *goldenConn) QueryRow(ctx context.Context, q string, args ...any) driver.Row {
	c.record("QueryRow", q, args)
	return goldenRow{}
}

func (c *goldenConn) PrepareBatch(ctx context.Context, q string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	c.record("PrepareBatch", q, nil)
	return nil, fmt.Errorf("goldenConn: no batches")
}

// goldenRows are scripted result rows; Scan sets each destination to the
// row's value of the same position.
type goldenRows struct {
	driver.Rows
	rows [][]any
	cur  []any
}

func (r *goldenRows) Next() bool {
	if len(r.rows) == 0 {
		return false
	}
	r.cur, r.rows = r.rows[0], r.rows[1:]
	return true
}

func (r *goldenRows) Scan(dest ...any) error {
	if len(dest) != len(r.cur) {
		return fmt.Errorf("goldenRows: %d destinations for %d values", len(dest), len(r.cur))
	}
	for i, v := range r.cur {
		reflect.ValueOf(dest[i]).Elem().Set(reflect.ValueOf(v))
	}
	return nil
}

func (r *goldenRows) Close() error { return nil }
func (r *goldenRows) Err() error   { return nil }

// goldenRow is QueryRow's answer: no error, nothing scanned.
type goldenRow struct{ driver.Row }

func (goldenRow) Err() error           { return nil }
func (goldenRow) Scan(...any) error    { return nil }
func (goldenRow) ScanStruct(any) error { return nil }

// goldenStore is a Store of database goldenDatabase on a goldenConn: on a
// single server for cluster "", else in cluster mode (as openCluster sets
// it up) with two shards.
func goldenStore(t *testing.T, cluster string, answer func(q string, args []any) [][]any) (*Store, *goldenLog) {
	t.Helper()
	l := &goldenLog{}
	c := &goldenConn{answer: answer, log: l}
	s := &Store{conn: c, database: goldenDatabase, cluster: cluster,
		batchRows: DefaultBatchRows, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if cluster != "" {
		for n := uint32(1); n <= 2; n++ {
			sc := &goldenConn{answer: answer, log: l, label: fmt.Sprintf("shard %d", n)}
			s.shards = append(s.shards, &shard{num: n, conn: sc})
		}
	}
	return s, l
}

// goldenModes are the two ways the store runs: golden files of each are
// named with the mode.
var goldenModes = []struct{ name, cluster string }{{"single", ""}, {"cluster", goldenCluster}}

// goldenSQL renders statements as a golden file: each statement with its
// call and arguments as a comment, random name parts replaced by X.
func goldenSQL(stmts []goldenStmt) string {
	var b strings.Builder
	for i, st := range stmts {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "-- %s", st.call)
		if len(st.args) > 0 {
			// This process's claim owner (host, PID, token) differs per run.
			fmt.Fprintf(&b, " args: %v", strings.ReplaceAll(fmt.Sprint(st.args), claimOwner(), "host|pidns|pid|token"))
		}
		b.WriteString("\n" + strings.TrimSpace(st.sql) + ";\n")
	}
	return goldenRandom.ReplaceAllStringFunc(b.String(), func(m string) string {
		p := goldenRandom.FindStringSubmatch(m)
		prefix := p[1] + p[2]
		return prefix + strings.Repeat("X", len(m)-len(prefix))
	})
}

// goldenAnswer scripts the rows of the statements the store reads before it
// writes: the partitions of a table (one month; several when pruning), the days of a rebuilt month, the claims left by dead writers.
func goldenAnswer(q string, args []any) [][]any {
	switch {
	case strings.Contains(q, "FROM system.parts"):
		if len(args) == 1 && args[0] == "prune_only" {
			return [][]any{{"197001"}, {"202001"}, {"202605"}, {"202611"}, {"all"}}
		}
		return [][]any{{"202611"}}
	case strings.Contains(q, "SELECT DISTINCT toString(toDate(date_begin))"):
		return [][]any{{"2026-11-01"}, {"2026-11-02"}}
	case strings.Contains(q, "FROM system.tables") && len(args) == 1 && args[0] == claimPrefix:
		return [][]any{{claimTable("dead writer")}, {claimTable("dead writer") + "_stale_0123abcd"}, {claimPrefix + "not-an-ident"}}
	case strings.Contains(q, "FROM system.tables") && len(args) == 1 && args[0] == stagingPrefix:
		return [][]any{{stagingPrefix + "0123456789abcdef"}, {stagingPrefix + "rollup_0123456789abcdef"}, {stagingPrefix + "not-an-ident"}}
	}
	return nil
}

// TestGoldenWriteStatementsRenderAsRecorded records, on a single server and
// in cluster mode (routed to the report's shard), the statements of the
// write path's DDL for fixed inputs: a large report's records staging table
// and its attach, each rollup table's staging table filled from the staged
// records and attached, the rollup completed from stored records (the data
// rows of a report whose mail failed authentication), a claim taken and
// released, and what Open drops of dead writers (claims, staging tables).
func TestGoldenWriteStatementsRenderAsRecorded(t *testing.T) {
	for _, mode := range goldenModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			s, l := goldenStore(t, mode.cluster, goldenAnswer)
			goldenLargeReport(t, s, ctx, s.routeOf(goldenKey))
			sqlgolden.Check(t, "write_"+mode.name+"_large_report.sql", goldenSQL(l.stmts))

			s, l = goldenStore(t, mode.cluster, goldenAnswer)
			if err := s.completeRollup(ctx, s.routeOf(goldenKey), goldenDomain, goldenSince, goldenKey, AuthFailKey); err != nil {
				t.Fatal(err)
			}
			sqlgolden.Check(t, "write_"+mode.name+"_complete_rollup.sql", goldenSQL(l.stmts))

			s, l = goldenStore(t, mode.cluster, goldenAnswer)
			rt := s.routeOf(goldenKey)
			release, err := s.claim(ctx, rt, goldenKey)
			if err != nil {
				t.Fatal(err)
			}
			release()
			s.takeOverClaim(ctx, rt, claimTable(goldenKey))
			if err := s.eachShard(context.Background(), s.dropStaleClaims); err != nil {
				t.Fatal(err)
			}
			if err := s.eachShard(context.Background(), s.dropOrphanedStaging); err != nil {
				t.Fatal(err)
			}
			sqlgolden.Check(t, "write_"+mode.name+"_claims.sql", goldenSQL(l.stmts))
		})
	}
}

// goldenLargeReport sends the DDL of a large report's commit as
// writeAggregate does, with stageRollupsOf's selects one at a time (they run
// concurrently there, in no fixed order), each followed by the INSERT of
// the rows the writer summed itself (stagedFillOf; goldenConn records its
// PrepareBatch and refuses the batch).
func goldenLargeReport(t *testing.T, s *Store, ctx context.Context, r route) {
	t.Helper()
	staging, err := s.createStaging(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.attachStaging(ctx, r, staging); err != nil {
		t.Fatal(err)
	}
	for _, rt := range rollupTables {
		rs, err := s.createRollupStaging(ctx, r, rt)
		if err != nil {
			t.Fatal(err)
		}
		f := s.stagedFillOf(r, rt, &reportFields{key: goldenKey, domain: goldenDomain, begin: goldenSince}, &streamSums{})
		for _, sel := range f.selects {
			if err := s.fillRollupSelect(ctx, r, rt, sel, rs, staging, dataKeySQL(""), "1"); err != nil {
				t.Fatal(err)
			}
		}
		_ = f.send(ctx, rs)
		if err := s.attachRollup(ctx, r, rt, rs); err != nil {
			t.Fatal(err)
		}
		s.dropTable(ctx, r, rs)
	}
	s.dropTable(ctx, r, staging)
}

// TestGoldenMaintenanceStatementsRenderAsRecorded records, on a single
// server and in cluster mode (every shard), the rollup rebuild of one month
// (two days of records, each rollup table's month replaced), the rollup gaps
// check, and prune with a fixed cutoff (undated and non-monthly partitions
// kept).
func TestGoldenMaintenanceStatementsRenderAsRecorded(t *testing.T) {
	ctx := context.Background()
	for _, mode := range goldenModes {
		t.Run(mode.name, func(t *testing.T) {
			s, l := goldenStore(t, mode.cluster, goldenAnswer)
			if err := s.RebuildRollup(ctx, []string{"202611"}); err != nil {
				t.Fatal(err)
			}
			sqlgolden.Check(t, "maintenance_"+mode.name+"_rebuild_rollup.sql", goldenSQL(l.stmts))

			s, l = goldenStore(t, mode.cluster, goldenAnswer)
			if _, err := s.RollupGaps(ctx); err != nil {
				t.Fatal(err)
			}
			sqlgolden.Check(t, "maintenance_"+mode.name+"_rollup_gaps.sql", goldenSQL(l.stmts))

			s, l = goldenStore(t, mode.cluster, func(q string, args []any) [][]any {
				return goldenAnswer(q, []any{"prune_only"})
			})
			cutoff := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
			if err := s.eachShard(ctx, func(ctx context.Context, rt route) error {
				dropped, err := s.prune(ctx, rt, cutoff)
				if err == nil && len(dropped) != 2*len(prunedTables) {
					err = fmt.Errorf("prune dropped %d partitions, want %d (202001 and 202605 of each table): %v", len(dropped), 2*len(prunedTables), dropped)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			sqlgolden.Check(t, "maintenance_"+mode.name+"_prune.sql", goldenSQL(l.stmts))
		})
	}
}

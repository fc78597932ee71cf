package schema

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Runner applies the migrations to a target through a connection to one
// of its servers.
type Runner struct {
	Conn   driver.Conn
	Target Target
	Log    *slog.Logger // nil: slog.Default()
}

func (r Runner) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// Migrate applies the embedded migrations that schema_migrations does not
// list yet, in version order, and records each. Every statement is
// idempotent (IF NOT EXISTS, or an ADD COLUMN whose "column already
// exists" counts as done: alter.go), so a migration interrupted half-way is
// simply applied again; running Migrate again is a no-op. The caller
// serializes Migrates of one process.
func (r Runner) Migrate(ctx context.Context) error {
	if err := r.createSchemaMigrations(ctx); err != nil {
		return err
	}
	applied, err := Applied(ctx, r.Conn)
	if err != nil {
		return err
	}
	list, err := Migrations()
	if err != nil {
		return err
	}
	for _, m := range list {
		if applied[m.Version] {
			continue
		}
		stmts, err := r.Target.MigrationStatements(m)
		if err != nil {
			return err
		}
		for i, q := range stmts {
			if err := r.Exec(ctx, q); err != nil {
				return fmt.Errorf("migration %s, statement %d: %w", m.File, i+1, err)
			}
		}
		err = insertOne(ctx, r.Conn, "INSERT INTO schema_migrations (version, name, applied_at)",
			m.Version, m.Name, time.Now().UTC())
		if err != nil {
			return fmt.Errorf("recording migration %s: %w", m.File, err)
		}
		r.log().Info("applied migration", "version", m.Version, "name", m.Name, "database", r.Target.Database)
	}
	return nil
}

// insertOne inserts one row through a batch: query names the columns
// ("INSERT INTO t (a, b)", which 18.16 requires), values follow in order.
func insertOne(ctx context.Context, conn driver.Conn, query string, values ...any) error {
	b, err := conn.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	if err := b.Append(values...); err != nil {
		b.Abort()
		return err
	}
	return b.Send()
}

// DDLAttempts is how many times Exec runs a statement whose distributed
// DDL timed out.
const DDLAttempts = 3

// Exec runs one statement of a migration. A distributed DDL (ON CLUSTER)
// that a server has not run within distributed_ddl_task_timeout fails with
// code 159 although the server is up; ClickHouse's DDL worker sometimes
// leaves a task waiting until the next one arrives (reported upstream for
// many versions). Every statement is idempotent (IF NOT EXISTS,
// ErrorIsApplied), so it runs again, which queues a new task, up to
// DDLAttempts times.
func (r Runner) Exec(ctx context.Context, q string) error {
	for attempt := 1; ; attempt++ {
		err := r.Conn.Exec(ctx, q)
		if err == nil || alreadyApplied(q, err) {
			return nil
		}
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != ErrCodeTimeoutExceeded || attempt == DDLAttempts || ctx.Err() != nil {
			return err
		}
		r.log().Warn("distributed DDL not done everywhere in time; running it again", "attempt", attempt+1, "err", err)
	}
}

// ErrCodeTimeoutExceeded is ClickHouse's TIMEOUT_EXCEEDED, what a
// distributed DDL returns after distributed_ddl_task_timeout.
const ErrCodeTimeoutExceeded = 159

// Applied reads the versions that schema_migrations lists.
func Applied(ctx context.Context, conn driver.Conn) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("reading schema_migrations: %w", err)
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

// createSchemaMigrations creates schema_migrations. In cluster mode the ON
// CLUSTER DDL waits for every server, so it is skipped when the table is
// already there: an instance can start while a server is down once the
// schema is in place.
func (r Runner) createSchemaMigrations(ctx context.Context) error {
	if r.Target.Cluster != "" {
		var n uint64
		err := r.Conn.QueryRow(ctx, `SELECT count() FROM system.tables
			WHERE database = currentDatabase() AND name = 'schema_migrations'`).Scan(&n)
		if err != nil {
			return fmt.Errorf("looking for schema_migrations: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
	stmts, err := r.Target.SchemaMigrationsStatements()
	if err != nil {
		return err
	}
	for _, q := range stmts {
		if err := r.Conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
	}
	return nil
}

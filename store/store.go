// Package store keeps DMARC reports in ClickHouse: the exactly-once report
// writer (claims, routing to a cluster's shards, rollups in the same commit)
// and the read queries. Open applies the schema of store/schema (its
// versioned migrations) before anything else.
//
// It speaks ClickHouse's native protocol (clickhouse-go v2) and runs on
// ClickHouse 18.16 (Debian's package) as on current releases. Retention
// drops whole monthly partitions (Prune); rows are never deleted.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/store/schema"
)

// DefaultDSN is the DSN used when Open is given "".
const DefaultDSN = "clickhouse://127.0.0.1:9000/dmarc"

// DefaultBatchRows is the default of Options.BatchRows.
const DefaultBatchRows = 5000

// MaxBatchRows caps Options.BatchRows below ClickHouse's default
// max_insert_block_size (1,048,576): a larger INSERT may be split into
// several blocks, and would no longer appear at once.
const MaxBatchRows = 1000000

// Options configure a Store.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	// Cluster is "" for a single server, else the name of a cluster in the
	// servers' remote_servers: ON CLUSTER DDL, Replicated tables named
	// <name>_local and Distributed tables under the plain names, report
	// writes routed to the shard of their key (see cluster.go).
	Cluster string
	// BatchRows is the most records sent in one INSERT (default 5000, at
	// most MaxBatchRows). A large report holds three buffers of BatchRows
	// records (one filling, two sending), with the driver's copies: 5000
	// keeps a 1,000,000-record ingest near 75 MB RSS. A report with at most BatchRows records is written in one INSERT; a
	// larger one goes through a staging table (see WriteAggregate).
	BatchRows int
	// WrapConn, when set, wraps the connection every statement of a single
	// server goes through (Migrate, the writers, the readers; not the one
	// that creates the database, nor a cluster's per-shard connections).
	// Only for tests: internal/testkit/compat records the write path with it and
	// replays it on other ClickHouse versions.
	WrapConn func(driver.Conn) driver.Conn
	// ReadOnly opens the store for reading only: the database is not
	// created (ErrNoDatabase when it does not exist), no migration is
	// applied (ErrSchemaBehind when one is pending) and writers' leftovers
	// are left to the next writer. Read-only commands use it: a read with
	// a mistyped DSN creates nothing.
	ReadOnly bool
	// Group, when set, commits small reports that arrive together in one
	// group (see group.go, docs/schema.md "Group commit"): WriteAggregate
	// of a report of at most BatchRows records returns once its group
	// committed. dmarcd's writers set it; nil writes each report on its
	// own.
	Group *GroupOptions
}

// Store is a ClickHouse database holding DMARC reports. It is safe for
// concurrent use.
type Store struct {
	conn      driver.Conn
	database  string
	cluster   string
	batchRows int
	log       *slog.Logger

	migrateMu sync.Mutex
	locks     keyLocks
	shards    []*shard                   // cluster mode: the cluster's shards (see route)
	attempts  *attempts                  // the inputs in hand (attempts.go)
	group     *committer                 // Options.Group (group.go); nil: off
	inputRows coalescer[[]any, struct{}] // rows of inputs logged together (LogInput)
}

// ErrBadDSN is returned by Open for a DSN it cannot use.
var ErrBadDSN = errors.New("store: bad ClickHouse DSN")

// ErrNoDatabase is returned by a ReadOnly Open when the DSN's database
// does not exist: nothing was stored there yet.
var ErrNoDatabase = errors.New("store: no such database")

// ErrSchemaBehind is returned by a ReadOnly Open when a migration of this
// version of dmarcd is not applied yet (dmarcd migrate applies it).
var ErrSchemaBehind = errors.New("store: schema migrations pending")

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Open connects to ClickHouse with the native protocol, creates the DSN's
// database when it does not exist, runs the migrations and drops staging
// tables that crashed writers left behind.
//
// The DSN has the form clickhouse://user:pass@host:9000/dmarc?secure=true
// (clickhouse-go v2's DSN; "" is DefaultDSN). The database name must be a
// plain identifier ([A-Za-z_][A-Za-z0-9_]*).
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if dsn == "" {
		dsn = DefaultDSN
	}
	chopts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDSN, err)
	}
	if chopts.Protocol != clickhouse.Native {
		return nil, fmt.Errorf("%w: only the native protocol (clickhouse://, port 9000 style) works with every supported ClickHouse", ErrBadDSN)
	}
	db := chopts.Auth.Database
	if db == "" {
		db = "dmarc"
	}
	if !identRe.MatchString(db) {
		return nil, fmt.Errorf("%w: database name %q: want letters, digits and _", ErrBadDSN, db)
	}
	if opts.Cluster != "" && !identRe.MatchString(opts.Cluster) {
		return nil, fmt.Errorf("store: cluster name %q: want letters, digits and _", opts.Cluster)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = DefaultBatchRows
	}
	if opts.BatchRows > MaxBatchRows {
		opts.BatchRows = MaxBatchRows
	}

	// The database may not exist yet: create it from "default".
	boot := *chopts
	boot.Auth.Database = "default"
	bconn, err := clickhouse.Open(&boot)
	if err != nil {
		return nil, fmt.Errorf("store: connecting to %v: %w", chopts.Addr, err)
	}
	if opts.ReadOnly {
		err = databaseExists(ctx, bconn, db, chopts.Addr)
	} else {
		q := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(db)
		if opts.Cluster != "" {
			q += " ON CLUSTER " + quoteIdent(opts.Cluster)
		}
		if err = bconn.Exec(ctx, q); err != nil {
			err = fmt.Errorf("store: creating database %s on %v: %w", db, chopts.Addr, err)
		}
	}
	bconn.Close()
	if err != nil {
		return nil, err
	}

	chopts.Auth.Database = db
	if opts.Cluster != "" {
		clusterSettings(chopts)
	}
	conn, err := clickhouse.Open(chopts)
	if err != nil {
		return nil, fmt.Errorf("store: connecting to %v: %w", chopts.Addr, err)
	}
	s := &Store{
		conn:      taggedConn{Conn: conn, prefix: queryIDPrefix(db)},
		database:  db,
		cluster:   opts.Cluster,
		batchRows: opts.BatchRows,
		log:       opts.Logger,
		attempts:  newAttempts(),
	}
	if opts.WrapConn != nil {
		s.conn = opts.WrapConn(s.conn)
	}
	migrate := s.Migrate
	if opts.ReadOnly {
		migrate = s.schemaCurrent
	}
	if err := migrate(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	if err := s.openCluster(ctx, chopts); err != nil {
		conn.Close()
		return nil, err
	}
	if opts.ReadOnly {
		return s, nil
	}
	if err := s.eachShard(ctx, s.waitForOrphanedWrites); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.eachShard(ctx, s.dropOrphanedStaging); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.eachShard(ctx, s.dropStaleClaims); err != nil {
		s.Close()
		return nil, err
	}
	if opts.Group != nil {
		s.group = newCommitter(s, *opts.Group)
	}
	return s, nil
}

// databaseExists returns nil if db exists on the server of conn, else
// ErrNoDatabase (or why it could not tell).
func databaseExists(ctx context.Context, conn driver.Conn, db string, addr []string) error {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&n); err != nil {
		return fmt.Errorf("store: connecting to %v: %w", addr, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: database %s does not exist on %v: nothing was stored there yet (dmarcd ingest, serve or migrate creates it), or the DSN names another server or database", ErrNoDatabase, db, addr)
	}
	return nil
}

// schemaCurrent returns nil if every migration of this version is applied,
// else ErrSchemaBehind; it changes nothing.
func (s *Store) schemaCurrent(ctx context.Context) error {
	applied, err := schema.Applied(ctx, s.conn)
	if err != nil {
		return fmt.Errorf("%w: %v (dmarcd migrate creates the tables)", ErrSchemaBehind, err)
	}
	list, err := schema.Migrations()
	if err != nil {
		return err
	}
	for _, m := range list {
		if !applied[m.Version] {
			return fmt.Errorf("%w: database %s lacks migration %s (dmarcd migrate applies it)", ErrSchemaBehind, s.database, m.File)
		}
	}
	return nil
}

// Close ends the attempts still in hand (EndAttempt) and closes the
// connections.
func (s *Store) Close() error {
	if s.group != nil {
		s.group.close()
	}
	if s.attempts != nil {
		s.closeAttempts()
	}
	closeShards(s.shards)
	return s.conn.Close()
}

// Database is the name of the store's database.
func (s *Store) Database() string { return s.database }

// insertOne inserts one row through the store's connection (route's
// insertOne).
func (s *Store) insertOne(ctx context.Context, query string, values ...any) error {
	return s.plainRoute().insertOne(ctx, query, values...)
}

// drain reads next to its end, counting records and messages.
func drain(next func() (*enrich.Record, error)) (records int, messages uint64, err error) {
	for {
		r, err := next()
		if err == io.EOF {
			return records, messages, nil
		}
		if err != nil {
			return records, messages, err
		}
		if r == nil || r.Record == nil {
			return records, messages, errNilRow
		}
		records++
		messages += r.Count
	}
}

var errNilRow = errors.New("store: next returned a nil row without an error")

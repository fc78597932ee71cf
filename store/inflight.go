package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// A process killed with SIGKILL can leave an INSERT it had already sent
// running on the server: it still lands, tens of milliseconds later (measured
// up to ~90 ms on 18.16). A new process that checked "are this report's
// records there?" before it landed would write them again. Every write of
// the store therefore carries a query_id that names the database
// ("dmarcd:<db>:<random>"), and Open waits until no such query of a
// previous process is still running before it takes any decision.

// taggedConn gives every write a query_id with the store's prefix.
type taggedConn struct {
	driver.Conn
	prefix string
}

func newQueryID(prefix string) string {
	var b [8]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (c taggedConn) tag(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithQueryID(newQueryID(c.prefix)))
}

func (c taggedConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	return c.Conn.PrepareBatch(c.tag(ctx), query, opts...)
}

func (c taggedConn) Exec(ctx context.Context, query string, args ...any) error {
	return c.Conn.Exec(c.tag(ctx), query, args...)
}

func queryIDPrefix(db string) string { return "dmarcd:" + db + ":" }

// inflightWait bounds how long Open waits for writes of dead processes.
const inflightWait = 30 * time.Second

// waitForOrphanedWrites waits until no write of an earlier process on this
// database is running on the server (this process has sent none yet).
func (s *Store) waitForOrphanedWrites(ctx context.Context, rt route) error {
	prefix := queryIDPrefix(s.database)
	deadline := time.Now().Add(inflightWait)
	for {
		var n uint64
		err := rt.conn.QueryRow(ctx, `SELECT count() FROM system.processes
			WHERE substring(query_id, 1, length(?)) = ?`, prefix, prefix).Scan(&n)
		if err != nil {
			return fmt.Errorf("store: looking for writes still running: %w", err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			s.log.Warn("writes of another process still running; going on", "queries", n, "waited", inflightWait)
			return nil
		}
		s.log.Info("waiting for writes of a previous process to land", "queries", n)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

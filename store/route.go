package store

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/store/schema"
)

// route is where statements go and how they name the schema's tables
// there. An aggregate report's writes (its claim, existence checks,
// records, rollups and report row) take the route of its key (routeOf),
// chosen once per report and passed down; a failure or TLS report's claim
// does too, and its rows go through the store's connection. Maintenance of each shard's own tables
// (eachShard) takes each shard's route. On a single server every route is
// the store's connection with schema.Plain names; in cluster mode a
// shard's route is its connection with schema.Local names (the shard's
// Replicated <name>_local tables), and the store's connection (s.conn)
// reaches every shard through the Distributed tables under the plain
// names (docs/cluster.md).
type route struct {
	conn  driver.Conn
	names schema.Names
}

// table is the name of a table of the schema on r.
func (r route) table(name string) string { return r.names.Of(name) }

// plainRoute is the store's own connection with the plain names.
func (s *Store) plainRoute() route { return route{conn: s.conn, names: schema.Plain} }

// routeOf is the route of a report key's writes: in cluster mode the local
// tables of the shard that holds the key (shardIndex), else plainRoute.
func (s *Store) routeOf(key string) route {
	if len(s.shards) == 0 {
		return s.plainRoute()
	}
	return s.shards[shardIndex(key, len(s.shards))].route()
}

// route is the shard's connection with the names of its local tables.
func (sh *shard) route() route { return route{conn: sh.conn, names: schema.Local} }

// insertOne inserts one row through a batch on r: query names the columns
// ("INSERT INTO t (a, b)", which 18.16 requires), values follow in order.
func (r route) insertOne(ctx context.Context, query string, values ...any) error {
	b, err := r.conn.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	if err := b.Append(values...); err != nil {
		b.Abort()
		return err
	}
	return b.Send()
}

// eachRow runs a query on r and calls fn for each row with its Scan.
func (r route) eachRow(ctx context.Context, sql string, args []any, fn func(scan func(...any) error) error) error {
	rows, err := r.conn.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

package store

import (
	"context"

	"github.com/dmarcd/dmarcd/store/schema"
)

// recordsOrderBy is the sorting key of aggregate_records; staging tables
// must have the same one for ATTACH PARTITION FROM.
const recordsOrderBy = schema.RecordsOrderBy

// target is the store's database as the schema renders it.
func (s *Store) target() schema.Target {
	return schema.Target{Database: s.database, Cluster: s.cluster}
}

// Migrate applies the embedded migrations (store/schema) that
// schema_migrations does not list yet, in version order, and records each;
// running it again is a no-op. In cluster mode statements run ON CLUSTER
// and each table is a Replicated <name>_local and a Distributed <name>.
func (s *Store) Migrate(ctx context.Context) error {
	s.migrateMu.Lock()
	defer s.migrateMu.Unlock()
	return s.runner().Migrate(ctx)
}

// runner applies the migrations through the store's connection.
func (s *Store) runner() schema.Runner {
	return schema.Runner{Conn: s.conn, Target: s.target(), Log: s.log}
}

// quoteIdent quotes a ClickHouse identifier with backquotes.
func quoteIdent(s string) string { return schema.QuoteIdent(s) }

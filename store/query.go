package store

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Query runs a read-only statement on the store's connection (in cluster
// mode, the Distributed tables): what the readers of internal/product
// need (chsql.Querier).
func (s *Store) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	return s.conn.Query(ctx, query, args...)
}

// QueryRow is Query for a statement of one row.
func (s *Store) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	return s.conn.QueryRow(ctx, query, args...)
}

// PrepareBatch starts an INSERT into a table the store does not write
// itself (source_attribution, dns_records: internal/product/attrib and
// internal/product/dnscheck own those rows).
func (s *Store) PrepareBatch(ctx context.Context, query string) (driver.Batch, error) {
	return s.conn.PrepareBatch(ctx, query)
}

// Ping checks that ClickHouse answers.
func (s *Store) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }

// eachRow runs sql and calls fn with each row's Scan.
func (s *Store) eachRow(ctx context.Context, sql string, args []any, fn func(scan func(...any) error) error) error {
	rows, err := s.conn.Query(ctx, sql, args...)
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

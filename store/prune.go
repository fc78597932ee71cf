package store

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"
)

// prunedTables are the tables partitioned by month (of the report's begin,
// the failure report's arrival date, or the input's processing time) that
// Prune cuts.
var prunedTables = []string{"aggregate_records", "aggregate_rollup", "aggregate_sources", "aggregate_outcomes", "aggregate_pair_buckets", "aggregate_reports", "failure_reports",
	"tlsrpt_reports", "tlsrpt_policies", "tlsrpt_failures", "inputs", "input_attempts"}

// unknownDatePartition holds failure reports without a usable Arrival-Date
// (stored as 1970-01-01): they cannot be aged, so Prune keeps them.
const unknownDatePartition = "197001"

// Prune drops the monthly partitions of the report tables (and of inputs)
// whose whole month (of report begin dates, UTC) lies before
// now - olderThan: ALTER TABLE ... DROP PARTITION, which works on every
// ClickHouse version (no TTL on 18.16). It never deletes single rows, so a
// month is kept until all of it is older than the cutoff. It returns the
// partitions dropped, as "table/YYYYMM", sorted.
func (s *Store) Prune(ctx context.Context, olderThan time.Duration) (dropped []string, err error) {
	if olderThan <= 0 {
		return nil, fmt.Errorf("store: prune: olderThan %v: want a positive duration", olderThan)
	}
	cutoff := time.Now().UTC().Add(-olderThan)
	// In cluster mode each shard drops its own local tables' partitions
	// (on the replica it reaches; replication drops them on the others):
	// the plain names are Distributed tables, which have no parts.
	err = s.eachShard(ctx, func(ctx context.Context, rt route) error {
		d, err := s.prune(ctx, rt, cutoff)
		dropped = append(dropped, d...)
		return err
	})
	sort.Strings(dropped)
	dropped = slices.Compact(dropped)
	return dropped, err
}

func (s *Store) prune(ctx context.Context, rt route, cutoff time.Time) (dropped []string, err error) {
	for _, table := range prunedTables {
		ids, err := s.partitions(ctx, rt, rt.table(table))
		if err != nil {
			return dropped, err
		}
		for _, id := range ids {
			ym, err := strconv.Atoi(id)
			if err != nil || ym < 100001 || ym > 999912 || id == unknownDatePartition {
				continue // not a toYYYYMM partition, or undated
			}
			monthEnd := time.Date(ym/100, time.Month(ym%100)+1, 1, 0, 0, 0, 0, time.UTC)
			if monthEnd.After(cutoff) {
				continue
			}
			q := fmt.Sprintf("ALTER TABLE %s DROP PARTITION ID '%s'", rt.table(table), id) // the local table in cluster mode
			if err := rt.conn.Exec(ctx, q); err != nil {
				return dropped, fmt.Errorf("store: prune: dropping partition %s of %s: %w", id, table, err)
			}
			s.log.Info("dropped partition", "table", table, "partition", id, "cutoff", cutoff)
			dropped = append(dropped, table+"/"+id)
		}
	}
	return dropped, nil
}

// partitions lists the partition IDs of a table on rt that hold active
// parts (table as rt names it).
func (s *Store) partitions(ctx context.Context, rt route, table string) ([]string, error) {
	rows, err := rt.conn.Query(ctx, `SELECT DISTINCT partition_id FROM system.parts
		WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id`, table)
	if err != nil {
		return nil, fmt.Errorf("store: listing partitions of %s: %w", table, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

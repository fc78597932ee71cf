package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// TestClusterPruneDropsOldPartitionsOnEveryShard: in cluster mode the plain
// names are Distributed tables without parts; Prune drops the old months of
// each shard's local tables.
func TestClusterPruneDropsOldPartitionsOnEveryShard(t *testing.T) {
	d := testenv.ClickHouseCluster(t, testenv.Shards2)
	s := openClusterStore(t, d, 1)
	now := time.Now().UTC()
	old := time.Date(2020, 3, 10, 0, 0, 0, 0, time.UTC)
	shards := map[int]bool{}
	for i := 0; shards[0] == false || shards[1] == false; i++ {
		if i > 64 {
			t.Fatal("64 report ids and still not one old report on each shard")
		}
		h := header("google.com", "old-"+string(rune('a'+i%26))+string(rune('a'+i/26)), "example.com", old)
		res := write(t, s, h, genRows(3, "example.com"))
		shards[shardIndex(res.ReportKey, 2)] = true
	}
	write(t, s, header("google.com", "new", "example.com", now.Add(-48*time.Hour)), genRows(4, "example.com"))
	dropped, err := s.Prune(context.Background(), 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"aggregate_records/202003", "aggregate_reports/202003"} {
		if !slices.Contains(dropped, want) {
			t.Errorf("dropped %q, want it to hold %s", dropped, want)
		}
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 4 {
		t.Errorf("%d records left (Distributed), want 4 (the new report's)", n)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_reports"); n != 1 {
		t.Errorf("%d reports left (Distributed), want 1", n)
	}
	for node := 1; node <= 2; node++ {
		var n uint64
		if err := nodeConn(t, d, node).QueryRow(context.Background(),
			"SELECT count() FROM aggregate_records_local WHERE date_begin < '2021-01-01 00:00:00'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("node %d still holds %d old records", node, n)
		}
	}
}

// TestClusterRollupRebuildOnEveryShard: in cluster mode `dmarcd rollup
// rebuild` recomputes each shard's local rollup tables from its own records
// (the plain names are Distributed tables, which have no partitions).
func TestClusterRollupRebuildOnEveryShard(t *testing.T) {
	d := testenv.ClickHouseCluster(t, testenv.Shards2)
	s := openClusterStore(t, d, 1)
	ctx := context.Background()
	begin := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	shards := map[int]bool{}
	for i := 0; !shards[0] || !shards[1] || i < 4; i++ {
		if i > 64 {
			t.Fatal("64 report ids and still not one report on each shard")
		}
		res := write(t, s, header("google.com", fmt.Sprint("r-", i), "example.com", begin.AddDate(0, 0, i%3)), mixedRows(120, "example.com"))
		shards[shardIndex(res.ReportKey, 2)] = true
	}
	checkRollup(t, s)
	// As if the sums were stale: gone on every shard.
	for node := 1; node <= 2; node++ {
		for _, tbl := range []string{"aggregate_rollup_local", "aggregate_sources_local", "aggregate_outcomes_local", "aggregate_pair_buckets_local"} {
			if err := nodeConn(t, d, node).Exec(ctx, "ALTER TABLE "+tbl+" DROP PARTITION ID '202603'"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_sources"); n != 0 {
		t.Fatalf("%d aggregate_sources rows left after dropping them", n)
	}
	if err := s.RebuildRollup(ctx, nil); err != nil {
		t.Fatal(err)
	}
	checkRollup(t, s)
	for node := 1; node <= 2; node++ {
		var n uint64
		if err := nodeConn(t, d, node).QueryRow(ctx, "SELECT count() FROM aggregate_sources_local").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("node %d: no aggregate_sources rows after the rebuild", node)
		}
	}
}

package testenv

import (
	"context"
	"testing"
	"time"
)

func TestClickHouseClusterGivesADatabaseOnBothServers(t *testing.T) {
	for _, layout := range []string{Shards2, Replicas2} {
		t.Run(layout, func(t *testing.T) {
			d := ClickHouseCluster(t, layout)
			if d.Name == "" || len(d.Addrs) != 2 || d.Addrs[0] == d.Addrs[1] {
				t.Fatalf("cluster %+v: want a name and two servers", d.Cluster)
			}
			wantShards := map[string]uint64{Shards2: 2, Replicas2: 1}[layout]
			for node := 1; node <= 2; node++ {
				conn, err := connect(d.Addrs[node-1])
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				var dbs, shards, replicas uint64
				if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", d.Database).Scan(&dbs); err != nil {
					t.Fatal(err)
				}
				if err := conn.QueryRow(ctx, "SELECT uniqExact(shard_num), count() FROM system.clusters WHERE cluster = ?", d.Name).Scan(&shards, &replicas); err != nil {
					t.Fatal(err)
				}
				if dbs != 1 || shards != wantShards || replicas != 2 {
					t.Errorf("node %d: database %s found %d times, cluster has %d shards and %d servers; want 1, %d, 2",
						node, d.Database, dbs, shards, replicas, wantShards)
				}
				var macros uint64
				if err := conn.QueryRow(ctx, "SELECT count() FROM system.macros WHERE macro IN ('shard', 'replica')").Scan(&macros); err != nil {
					t.Fatal(err)
				}
				if macros != 2 {
					t.Errorf("node %d: %d of the macros shard and replica, want 2", node, macros)
				}
			}
		})
	}
}

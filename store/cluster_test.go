package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store/schema"
)

// openCluster opens a store in database d through server node.
func openClusterStore(t testing.TB, d testenv.ClusterDB, node int) *Store {
	t.Helper()
	s, err := Open(context.Background(), d.DSN(node), Options{Logger: quietLogger(), Cluster: d.Name})
	if err != nil {
		t.Fatalf("Open(%s, cluster %s): %v", d.DSN(node), d.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// nodeConn is a plain connection to the database on one server.
func nodeConn(t testing.TB, d testenv.ClusterDB, node int) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{d.Addrs[node-1]},
		Auth: clickhouse.Auth{Database: d.Database}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func tableEngines(t testing.TB, conn driver.Conn) map[string]string {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		"SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var n, e string
		if err := rows.Scan(&n, &e); err != nil {
			t.Fatal(err)
		}
		m[n] = e
	}
	return m
}

func TestSipHash64MatchesClickHouse(t *testing.T) {
	s, _ := open(t, Options{})
	var keys []string
	for n := 0; n <= 40; n++ {
		keys = append(keys, strings.Repeat("k", n))
	}
	keys = append(keys, "google.com!example.com!1234567890!1700000000!1700086399", "é€𝄞", "abc")
	for _, k := range keys {
		var want uint64
		if err := s.conn.QueryRow(context.Background(), "SELECT sipHash64(?)", k).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got := sipHash64([]byte(k)); got != want {
			t.Errorf("sipHash64(%q) = %d, ClickHouse says %d", k, got, want)
		}
	}
}

func TestClusterMigrationsCreateReplicatedLocalAndDistributedTables(t *testing.T) {
	d := testenv.ClickHouseCluster(t, testenv.Shards2)
	s := openClusterStore(t, d, 1)
	list, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for node := 1; node <= 2; node++ {
		engines := tableEngines(t, nodeConn(t, d, node))
		for _, tb := range schema.Sharded {
			name := tb.Name
			if e := engines[name+localSuffix]; !strings.HasPrefix(e, "Replicated") {
				t.Errorf("node %d: %s%s has engine %q, want Replicated*", node, name, localSuffix, e)
			}
			if e := engines[name]; e != "Distributed" {
				t.Errorf("node %d: %s has engine %q, want Distributed", node, name, e)
			}
		}
		if e := engines["schema_migrations"]; e != "ReplicatedReplacingMergeTree" {
			t.Errorf("node %d: schema_migrations has engine %q", node, e)
		}
		var n uint64
		// Written on node 1, replicated to node 2 (SYNC REPLICA waits for it).
		conn := nodeConn(t, d, node)
		if err := conn.Exec(context.Background(), "SYSTEM SYNC REPLICA schema_migrations"); err != nil {
			t.Fatalf("node %d: %v", node, err)
		}
		if err := conn.QueryRow(context.Background(), "SELECT uniqExact(version) FROM schema_migrations").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != uint64(len(list)) {
			t.Errorf("node %d: schema_migrations lists %d versions, want %d", node, n, len(list))
		}
	}

	// An instance on the other server finds the schema in place: its
	// Migrate applies nothing and writes no row.
	s2 := openClusterStore(t, d, 2)
	if err := s2.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := queryUint(t, s2, "SELECT count() FROM schema_migrations"); n != uint64(len(list)) {
		t.Errorf("schema_migrations has %d rows after a second instance, want %d", n, len(list))
	}
	if len(s.shards) != 2 || len(s2.shards) != 2 {
		t.Errorf("shards: %d and %d, want 2", len(s.shards), len(s2.shards))
	}
}

func TestClusterShardsComeFromSystemClusters(t *testing.T) {
	d := testenv.ClickHouseCluster(t, testenv.Replicas2)
	s := openClusterStore(t, d, 2)
	if len(s.shards) != 1 {
		t.Fatalf("%d shards, want 1 of two replicas", len(s.shards))
	}
	got := append([]string(nil), s.shards[0].addrs...)
	want := append([]string(nil), d.Addrs...)
	sort.Strings(got)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replicas of the shard %v, want %v", got, want)
	}
}

// localCount counts rows of a report key in a local table of one server.
func localCount(t testing.TB, conn driver.Conn, table, key string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+table+" WHERE report_key = ?", key).Scan(&n); err != nil {
		t.Fatalf("%s: %v", table, err)
	}
	return n
}

func TestClusterWritesEachReportToTheShardOfItsKey(t *testing.T) {
	t.Parallel()
	d := testenv.ClickHouseCluster(t, testenv.Shards2)
	ctx := context.Background()
	a, err := Open(ctx, d.DSN(1), Options{Logger: quietLogger(), Cluster: d.Name, BatchRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := openClusterStore(t, d, 2)
	nodes := []driver.Conn{nodeConn(t, d, 1), nodeConn(t, d, 2)}

	var wantRecords, wantMsgs uint64
	perShard := make([]int, 2)
	for i := 0; i < 24; i++ {
		n := 1 + i*13 // up to 300 records: several through a staging table
		h := header("example.org", fmt.Sprintf("shard-%d", i), "example.com", jan2024.AddDate(0, i%3, i))
		res := write(t, a, h, genRows(n, "example.com"))
		if res.Status != StatusStored {
			t.Fatalf("report %d: %s, want stored", i, res.Status)
		}
		wantRecords += uint64(n)
		wantMsgs += wantMessages(n)
		home := shardIndex(res.ReportKey, 2)
		perShard[home]++
		for node, conn := range nodes {
			recs := localCount(t, conn, "aggregate_records_local", res.ReportKey)
			reps := localCount(t, conn, "aggregate_reports_local", res.ReportKey)
			want, wantRep := uint64(0), uint64(0)
			if node == home {
				want, wantRep = uint64(n), 1
			}
			if recs != want || reps != wantRep {
				t.Errorf("report %d (shard %d): node %d holds %d records and %d report rows, want %d and %d",
					i, home+1, node+1, recs, reps, want, wantRep)
			}
		}
		// The other instance, through the other server, finds it stored.
		if res := write(t, b, h, genRows(n, "example.com")); res.Status != StatusDuplicate {
			t.Errorf("report %d written again through node 2: %s, want duplicate", i, res.Status)
		}
	}
	if perShard[0] == 0 || perShard[1] == 0 {
		t.Errorf("reports per shard %v: want both shards used", perShard)
	}
	for _, s := range []*Store{a, b} {
		if n := queryUint(t, s, "SELECT count() FROM aggregate_reports"); n != 24 {
			t.Errorf("aggregate_reports (Distributed) holds %d rows, want 24", n)
		}
		if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != wantRecords {
			t.Errorf("aggregate_records (Distributed) holds %d rows, want %d", n, wantRecords)
		}
		if n := queryUint(t, s, "SELECT sum(message_count) FROM aggregate_records"); n != wantMsgs {
			t.Errorf("messages (Distributed) %d, want %d", n, wantMsgs)
		}
	}
	for node, conn := range nodes {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND (startsWith(name, 'aggregate_records_staging_') OR startsWith(name, ?))", claimPrefix).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("node %d: %d staging or claim tables left", node+1, n)
		}
	}
}

// raceCopies makes two stores (two processes, as far as the per-key lock
// goes) write copies of one report at the same moment, rounds times, and
// checks that each report is stored once.
func raceCopies(t *testing.T, a, b *Store, rounds int) {
	t.Helper()
	ctx := context.Background()
	var wantRecords uint64
	for i := 0; i < rounds; i++ {
		n := 3 + i%5
		if i%10 == 9 {
			n = 250 // through a staging table (BatchRows 100)
		}
		wantRecords += uint64(n)
		h := header("google.com", fmt.Sprintf("race-%d", i), "example.com", jan2024.AddDate(0, 0, i%28))
		start := make(chan struct{})
		results := make([]WriteResult, 2)
		errs := make([]error, 2)
		done := make(chan int)
		for j, s := range []*Store{a, b} {
			go func() {
				<-start
				results[j], errs[j] = s.WriteAggregate(ctx, h, meta, genRows(n, "example.com"))
				done <- j
			}()
		}
		close(start)
		<-done
		<-done
		for j := range errs {
			if errs[j] != nil {
				t.Fatalf("round %d, instance %d: %v", i, j+1, errs[j])
			}
		}
		stored := 0
		for _, r := range results {
			if r.Status == StatusStored {
				stored++
			}
		}
		if stored != 1 {
			t.Errorf("round %d: statuses %s and %s, want one stored and one duplicate", i, results[0].Status, results[1].Status)
		}
	}
	if n := queryUint(t, a, "SELECT count() FROM aggregate_reports"); n != uint64(rounds) {
		t.Errorf("aggregate_reports holds %d rows, want %d", n, rounds)
	}
	if n := queryUint(t, a, "SELECT count() FROM aggregate_records"); n != wantRecords {
		t.Errorf("aggregate_records holds %d rows, want %d", n, wantRecords)
	}
}

func TestTwoInstancesWritingCopiesAtOnceStoreEachReportOnce(t *testing.T) {
	t.Parallel()
	a, dsn := open(t, Options{BatchRows: 100})
	b, err := Open(context.Background(), dsn, Options{Logger: quietLogger(), BatchRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	raceCopies(t, a, b, 100)
}

func TestTwoClusterInstancesWritingCopiesAtOnceStoreEachReportOnce(t *testing.T) {
	t.Parallel()
	d := testenv.ClickHouseCluster(t, testenv.Shards2)
	var st []*Store
	for node := 1; node <= 2; node++ {
		s, err := Open(context.Background(), d.DSN(node), Options{Logger: quietLogger(), Cluster: d.Name, BatchRows: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		st = append(st, s)
	}
	raceCopies(t, st[0], st[1], 100)
}

func TestStaleClaimOfADeadWriterIsTakenOver(t *testing.T) {
	defer func(d time.Duration) { claimStale = d }(claimStale)
	claimStale = time.Second
	s, dsn := open(t, Options{})
	ctx := context.Background()
	h := header("google.com", "stale-claim", "example.com", jan2024)
	key := aggregate.Key(h)
	claim := claimTable(key)
	// A writer that died: its claim's newest heartbeat is a minute old.
	for _, q := range []string{"CREATE TABLE " + claim + " (t DateTime) ENGINE = Memory",
		"INSERT INTO " + claim + " SELECT now() - 60"} {
		if err := s.conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if res := write(t, s, h, genRows(5, "example.com")); res.Status != StatusStored {
		t.Errorf("status %s, want stored", res.Status)
	}
	// Open drops stale claims, and keeps live ones.
	other := claimTable("other")
	for _, q := range []string{"CREATE TABLE " + claim + " (t DateTime) ENGINE = Memory",
		"INSERT INTO " + claim + " SELECT now() - 60",
		"CREATE TABLE " + other + " (t DateTime) ENGINE = Memory"} {
		if err := s.conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2500 * time.Millisecond) // both claims are older than claimStale
	// A live writer's heartbeat, dated a minute ahead: it stays fresh
	// however long Open takes on a loaded machine (now() has whole seconds,
	// so a heartbeat of now() looks stale to a claimStale of 1 s as soon as
	// Open reads it a second or two later).
	if err := s.conn.Exec(ctx, "INSERT INTO "+other+" SELECT now() + 60"); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, dsn, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := queryUint(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", claim); n != 0 {
		t.Error("Open kept the stale claim")
	}
	if n := queryUint(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", other); n != 1 {
		t.Error("Open dropped a live claim")
	}
}

// BenchmarkClaim prints what the cross-process claim costs a report write:
// CREATE TABLE, a heartbeat INSERT, DROP TABLE.
func BenchmarkClaim(b *testing.B) {
	s, _ := open(b, Options{})
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		release, err := s.claim(ctx, s.plainRoute(), fmt.Sprint("bench-", i))
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}

func TestClusterReplicaStoppedAndRestartedLosesNothing(t *testing.T) {
	d := testenv.ClickHouseCluster(t, testenv.Replicas2)
	ctx := context.Background()
	s, err := Open(ctx, d.DSN(1), Options{Logger: quietLogger(), Cluster: d.Name, BatchRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wantRecords uint64
	writeSome := func(from, to int) {
		for i := from; i < to; i++ {
			n := 1 + i*17 // some through a staging table
			h := header("example.org", fmt.Sprintf("replica-%d", i), "example.com", jan2024.AddDate(0, 0, i))
			if res := write(t, s, h, genRows(n, "example.com")); res.Status != StatusStored {
				t.Fatalf("report %d: %s", i, res.Status)
			}
			wantRecords += uint64(n)
		}
	}
	writeSome(0, 8)
	d.StopNode(t, 2)
	stopped := true
	defer func() {
		if stopped {
			d.StartNode(t, 2)
		}
	}()
	writeSome(8, 16) // replica 2 is down: replica 1 takes every write
	d.StartNode(t, 2)
	stopped = false

	conn2 := nodeConn(t, d, 2)
	for _, table := range []string{"aggregate_records_local", "aggregate_reports_local"} {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := conn2.Exec(sctx, "SYSTEM SYNC REPLICA "+table)
		cancel()
		if err != nil {
			t.Fatalf("node 2: SYSTEM SYNC REPLICA %s: %v", table, err)
		}
	}
	var reports, records uint64
	if err := conn2.QueryRow(ctx, "SELECT count() FROM aggregate_reports_local").Scan(&reports); err != nil {
		t.Fatal(err)
	}
	if err := conn2.QueryRow(ctx, "SELECT count() FROM aggregate_records_local").Scan(&records); err != nil {
		t.Fatal(err)
	}
	if reports != 16 || records != wantRecords {
		t.Errorf("restarted replica holds %d reports and %d records, want 16 and %d", reports, records, wantRecords)
	}
	// Another instance through the restarted replica finds every report.
	s2 := openClusterStore(t, d, 2)
	for i := 0; i < 16; i++ {
		h := header("example.org", fmt.Sprintf("replica-%d", i), "example.com", jan2024.AddDate(0, 0, i))
		if res := write(t, s2, h, genRows(1+i*17, "example.com")); res.Status != StatusDuplicate {
			t.Errorf("report %d through node 2: %s, want duplicate", i, res.Status)
		}
	}
}

// Waiters read a claim while its holder drops it: whatever error the read
// gets from the vanishing table (UNKNOWN_TABLE, TABLE_IS_DROPPED, its
// metadata file not found), the waiter polls again and claims in turn; it
// is never the report's error (CI once failed a report with "Table is
// dropped" here). The race runs until both sides did their share (claims
// taken, claims dropped by the other writer), not for a time: a deadline
// on the context could cut a read short with an i/o timeout seen before
// the context says it is done.
func TestClaimReadRacingItsDropIsNotAnError(t *testing.T) {
	defer func(d time.Duration) { claimPoll = d }(claimPoll)
	claimPoll = time.Millisecond // many reads, some of them meeting a drop
	s, _ := open(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const key = "racing-drop"
	const enough = 100 // claims taken and dropped by each side
	name := claimTable(key)
	var drops atomic.Int64
	done := make(chan struct{})
	go func() { // another writer, taking and dropping the claim in a loop
		defer close(done)
		for ctx.Err() == nil {
			if s.conn.Exec(ctx, "CREATE TABLE "+name+" (t DateTime) ENGINE = Memory") == nil {
				s.conn.Exec(ctx, "INSERT INTO "+name+" SELECT now()")
				if s.conn.Exec(ctx, "DROP TABLE IF EXISTS "+name) == nil {
					drops.Add(1)
				}
			}
		}
	}()
	start := time.Now()
	claims := 0
	for claims < enough || drops.Load() < enough {
		if time.Since(start) > 5*time.Minute { // a failure bound only
			t.Fatalf("after %v only %d claims taken and %d dropped by the other writer, want %d each",
				time.Since(start).Round(time.Second), claims, drops.Load(), enough)
		}
		release, err := s.claim(ctx, s.plainRoute(), key)
		if err != nil {
			t.Fatalf("after %d claims: %v", claims, err)
		}
		release()
		claims++
	}
	cancel()
	<-done
	t.Logf("%d claims taken while another writer took and dropped it %d times", claims, drops.Load())
}

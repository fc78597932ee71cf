package store

// Cluster mode (Options.Cluster, config clickhouse.cluster): the schema lives
// on every server of a ClickHouse cluster, created with ON CLUSTER DDL.
//
//   - Each table of the migrations becomes a pair: <name>_local, a
//     Replicated*MergeTree table on every server (ZooKeeper path
//     /clickhouse/tables/{shard}/<database>/<name>, replica '{replica}'),
//     and <name> itself, a Distributed table over the <name>_local tables of
//     all shards. Reads (dashboards, gauges, readiness, summaries) keep their
//     SQL: the plain names fan out to every shard.
//   - schema_migrations is one table replicated to every server of the
//     cluster (path /clickhouse/tables/all/<database>/schema_migrations,
//     replica '{shard}_{replica}'): whichever server an instance connects
//     to, it sees which migrations ran.
//   - Writes that name a plain table go through the Distributed table with
//     insert_distributed_sync=1, so they are on their shard when the INSERT
//     returns. A report's writes take the route of its key (routeOf in
//     route.go): the local tables of the shard that sipHash64(key) % shards
//     picks, the same shard the Distributed table's sharding key picks.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/store/schema"
)

// localSuffix names the shard-local table behind a Distributed table.
const localSuffix = schema.LocalSuffix

// shard is one shard of the cluster: a connection to its replicas, the
// first answering one preferred (reads then see what this store wrote).
type shard struct {
	num   uint32
	addrs []string
	conn  driver.Conn
}

// clusterShards connects to each shard of the cluster as system.clusters
// lists it on the server of conn, with the options of the main connection.
func clusterShards(ctx context.Context, conn driver.Conn, cluster string, base *clickhouse.Options, prefix string) ([]*shard, error) {
	rows, err := conn.Query(ctx, `SELECT shard_num, host_address, port FROM system.clusters
		WHERE cluster = ? ORDER BY shard_num, replica_num`, cluster)
	if err != nil {
		return nil, fmt.Errorf("store: reading cluster %s from system.clusters: %w", cluster, err)
	}
	var shards []*shard
	for rows.Next() {
		var num uint32
		var host string
		var port uint16
		if err := rows.Scan(&num, &host, &port); err != nil {
			rows.Close()
			return nil, err
		}
		addr := fmt.Sprintf("%s:%d", host, port)
		if strings.Contains(host, ":") {
			addr = fmt.Sprintf("[%s]:%d", host, port)
		}
		if len(shards) == 0 || shards[len(shards)-1].num != num {
			shards = append(shards, &shard{num: num})
		}
		sh := shards[len(shards)-1]
		sh.addrs = append(sh.addrs, addr)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(shards) == 0 {
		return nil, fmt.Errorf("store: cluster %q is not in system.clusters of the server (remote_servers in its config)", cluster)
	}
	for _, sh := range shards {
		o := *base
		o.Addr = sh.addrs
		o.ConnOpenStrategy = clickhouse.ConnOpenInOrder
		c, err := clickhouse.Open(&o)
		if err != nil {
			closeShards(shards)
			return nil, fmt.Errorf("store: connecting to shard %d (%v): %w", sh.num, sh.addrs, err)
		}
		sh.conn = taggedConn{Conn: c, prefix: prefix}
	}
	return shards, nil
}

func closeShards(shards []*shard) {
	for _, sh := range shards {
		if sh.conn != nil {
			sh.conn.Close()
		}
	}
}

// shardIndex is the index (0-based, in shard_num order) of the shard that
// holds a report key: sipHash64(key) % shards, as the Distributed tables'
// sharding key sipHash64(report_key) with equal weights.
func shardIndex(key string, shards int) int {
	if shards <= 1 {
		return 0
	}
	return int(sipHash64([]byte(key)) % uint64(shards))
}

// sipHash64 is ClickHouse's sipHash64 of a String: SipHash-2-4 with a zero
// key.
func sipHash64(p []byte) uint64 {
	v0 := uint64(0x736f6d6570736575)
	v1 := uint64(0x646f72616e646f6d)
	v2 := uint64(0x6c7967656e657261)
	v3 := uint64(0x7465646279746573)
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(p)
	for len(p) >= 8 {
		m := binary.LittleEndian.Uint64(p)
		v3 ^= m
		round()
		round()
		v0 ^= m
		p = p[8:]
	}
	var last [8]byte
	copy(last[:], p)
	last[7] = byte(n)
	m := binary.LittleEndian.Uint64(last[:])
	v3 ^= m
	round()
	round()
	v0 ^= m
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}

// clusterSettings sets what cluster mode needs on every connection: an
// INSERT into a Distributed table returns once the rows are on their shard
// (the default queues them for a background send).
func clusterSettings(o *clickhouse.Options) {
	if o.Settings == nil {
		o.Settings = clickhouse.Settings{}
	}
	o.Settings["insert_distributed_sync"] = 1
	// load_balancing = in_order (a Distributed table then reads from the
	// replica that an unrouted write went to) is a string setting, which the
	// driver cannot send to 18.16: it belongs in the profile of dmarcd's user
	// (docs/cluster.md).
}

// openCluster connects to the cluster's shards, the routes of report
// writes (routeOf). Run after Migrate. On a single server it does nothing.
func (s *Store) openCluster(ctx context.Context, base *clickhouse.Options) error {
	if s.cluster == "" {
		return nil
	}
	shards, err := clusterShards(ctx, s.conn, s.cluster, base, queryIDPrefix(s.database))
	if err != nil {
		return err
	}
	s.shards = shards
	s.log.Info("cluster mode", "cluster", s.cluster, "shards", len(shards), "database", s.database)
	return nil
}

// eachShard runs f once per shard with the shard's route (its first
// answering replica, its local tables), or once on a single server with
// plainRoute.
func (s *Store) eachShard(ctx context.Context, f func(context.Context, route) error) error {
	if len(s.shards) == 0 {
		return f(ctx, s.plainRoute())
	}
	for _, sh := range s.shards {
		if err := f(ctx, sh.route()); err != nil {
			return fmt.Errorf("shard %d: %w", sh.num, err)
		}
	}
	return nil
}

// Claims: one writer per report across processes.
//
// The per-key lock (keyLocks) serializes writers of one report inside one
// process. Two processes (two dmarcd instances on one server, or on one
// shard) that receive copies of a report at the same moment would both find
// it absent and both write it. Before its existence check a writer
// therefore claims the key on the server that stores the report: CREATE
// TABLE dmarcd_claim_<sipHash64(key)> without IF NOT EXISTS, which exactly
// one creator wins (ClickHouse serializes DDL on one table name). The loser
// waits until the claim is dropped, then claims in turn and finds the report
// stored. The holder inserts a heartbeat row (now()) every claimBeat; a
// claim whose newest heartbeat is older than claimStale (its writer died,
// or the server restarted and the Memory table lost its rows) is taken
// over by renaming it away, and dropped by Open.

const (
	claimPrefix = "dmarcd_claim_"
	claimBeat   = 5 * time.Second
	// claimReadRetries is how many reads of a claim in a row may fail
	// before the failure is the write's (about two seconds of polling).
	claimReadRetries = 100
)

// claimPoll is how often a waiter reads a claim (a variable for tests).
var claimPoll = 20 * time.Millisecond

// claimStale is the age after which a claim without a newer heartbeat is
// taken to be a dead writer's (a variable for tests).
var claimStale = 30 * time.Second

// errCodeTableExists is ClickHouse's TABLE_ALREADY_EXISTS.
const errCodeTableExists = 57

func claimTable(key string) string {
	return fmt.Sprintf("%s%016x", claimPrefix, sipHash64([]byte(key)))
}

// claim takes the claim of a report key on rt (in cluster mode the shard
// of the key), waiting while another writer holds it. release drops it.
func (s *Store) claim(ctx context.Context, rt route, key string) (release func(), err error) {
	return s.claimNamed(ctx, rt, claimTable(key), "report "+key)
}

// claimNamed takes the claim table name on rt, waiting while another
// writer holds it; what names the claimed thing in errors and logs.
func (s *Store) claimNamed(ctx context.Context, rt route, name, what string) (release func(), err error) {
	waited := false
	readErrors := 0
	for {
		err := rt.conn.Exec(ctx, "CREATE TABLE "+name+" (t DateTime, owner String DEFAULT '') ENGINE = Memory")
		if err == nil {
			// Who holds it, for a waiter on this machine to tell at once
			// that the holder died (claimOwnerDead). A waiter that reads
			// the claim before this row judges by age, as before.
			if err := rt.conn.Exec(ctx, "INSERT INTO "+name+" (t, owner) SELECT now(), ?", claimOwner()); err != nil {
				s.log.Debug("claim: recording its owner", "claim", name, "err", err)
			}
			break
		}
		// Held by another writer: the table exists, or another CREATE of
		// it runs at this moment ("... is creating or attaching right now").
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != errCodeTableExists && !strings.Contains(ex.Message, "right now") {
			return nil, fmt.Errorf("%s: claiming it (%s): %w", what, name, err)
		}
		if !waited {
			s.log.Debug("claimed by another writer; waiting", "what", what, "claim", name)
			waited = true
		}
		stale, err := s.claimIsStale(ctx, rt, name)
		if err != nil {
			// Reading a claim that its holder drops at this moment fails
			// in ways that vary by version and instant (UNKNOWN_TABLE,
			// TABLE_IS_DROPPED, the metadata file not found): poll again;
			// only an error that persists is the writer's error.
			if readErrors++; readErrors < claimReadRetries && ctx.Err() == nil {
				s.log.Debug("reading a claim failed; polling again", "claim", name, "err", err)
				time.Sleep(claimPoll)
				continue
			}
			return nil, fmt.Errorf("%s: reading claim %s: %w", what, name, err)
		}
		readErrors = 0
		if stale || s.claimOwnerDead(ctx, rt, name) {
			s.takeOverClaim(ctx, rt, name)
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(claimPoll):
		}
	}
	// A claim's age starts at its creation (metadata_modification_time);
	// heartbeats extend it while the write runs.
	bctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	beat := func() error { return rt.conn.Exec(bctx, "INSERT INTO "+name+" (t) SELECT now()") }
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(claimBeat)
		defer t.Stop()
		for {
			select {
			case <-bctx.Done():
				return
			case <-t.C:
				if err := beat(); err != nil && bctx.Err() == nil {
					s.log.Warn("claim heartbeat", "claim", name, "err", err)
				}
			}
		}
	}()
	return func() {
		stop()
		<-done
		s.dropClaim(ctx, rt, name)
	}, nil
}

func (s *Store) dropClaim(ctx context.Context, rt route, name string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := rt.conn.Exec(dctx, "DROP TABLE IF EXISTS "+name); err != nil {
		s.log.Warn("dropping claim", "claim", name, "err", err)
	}
}

// claimIsStale tells whether a claim is older than claimStale and so is its
// newest heartbeat (a claim that vanished meanwhile is not stale: claim
// again). A claim just created has no heartbeat yet: its age is the age of
// its metadata.
func (s *Store) claimIsStale(ctx context.Context, rt route, name string) (bool, error) {
	var created, beat int64
	err := rt.conn.QueryRow(ctx, `SELECT toInt64(now()) - toInt64(metadata_modification_time) FROM system.tables
		WHERE database = currentDatabase() AND name = ?`, name).Scan(&created)
	if err == nil {
		err = rt.conn.QueryRow(ctx, "SELECT toInt64(now()) - toInt64(max(t)) FROM "+name).Scan(&beat)
	}
	// Dropped meanwhile (system.tables too fails for a table being
	// dropped, and a read racing the DROP gets TABLE_IS_DROPPED): not
	// stale, claim again.
	var ex *clickhouse.Exception
	if errors.Is(err, sql.ErrNoRows) || errors.As(err, &ex) && (ex.Code == errCodeUnknownTable || ex.Code == errCodeTableIsDropped) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	limit := int64(claimStale / time.Second)
	if limit < 1 {
		limit = 1
	}
	return created > limit && beat > limit, nil
}

// claimOwner names this process as a claim's holder:
// host|pid namespace|pid|token, the token random per process.
func claimOwner() string {
	return claimProcess.host + "|" + claimProcess.pidNS + "|" + strconv.Itoa(claimProcess.pid) + "|" + claimProcess.token
}

// claimProcess is this process as claimOwner names it.
var claimProcess = func() (p struct {
	host, pidNS, token string
	pid                int
}) {
	p.host, _ = os.Hostname()
	p.pidNS, _ = os.Readlink("/proc/self/ns/pid")
	p.pid = os.Getpid()
	var rnd [8]byte
	rand.Read(rnd[:])
	p.token = hex.EncodeToString(rnd[:])
	return p
}()

// claimOwnerDead tells whether the claim's holder is known to be a process
// of this machine (same host name and PID namespace) that no longer runs:
// its PID is gone, or it is this process's PID with another token (a
// previous run of a restarted service, PID 1 in a container). Then the
// claim is taken over at once instead of after claimStale, so that a
// process restarted after a crash resumes in seconds. Anything it cannot
// judge (another machine, a claim without an owner row, an error, a PID
// that runs) is not dead: the age rule of claimIsStale decides.
func (s *Store) claimOwnerDead(ctx context.Context, rt route, name string) bool {
	var owner string
	err := rt.conn.QueryRow(ctx, "SELECT owner FROM "+name+" WHERE owner != '' LIMIT 1").Scan(&owner)
	if err != nil {
		return false
	}
	return ownerDead(owner)
}

// ownerDead judges a claimOwner string (see claimOwnerDead).
func ownerDead(owner string) bool {
	f := strings.Split(owner, "|")
	if len(f) != 4 || claimProcess.host == "" || claimProcess.pidNS == "" ||
		f[0] != claimProcess.host || f[1] != claimProcess.pidNS {
		return false
	}
	pid, err := strconv.Atoi(f[2])
	if err != nil || pid <= 0 {
		return false
	}
	if pid == claimProcess.pid {
		return f[3] != claimProcess.token
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// ClickHouse's UNKNOWN_TABLE and TABLE_IS_DROPPED.
const (
	errCodeUnknownTable   = 60
	errCodeTableIsDropped = 218
)

// takeOverClaim moves a stale claim out of the way: RENAME succeeds for one
// of several waiters, and the loser simply finds the name free or taken
// again. The renamed table is dropped.
func (s *Store) takeOverClaim(ctx context.Context, rt route, name string) {
	var rnd [4]byte
	rand.Read(rnd[:])
	dead := name + "_stale_" + hex.EncodeToString(rnd[:])
	if err := rt.conn.Exec(ctx, "RENAME TABLE "+name+" TO "+dead); err != nil {
		return
	}
	s.log.Warn("took over the stale claim of a writer that died", "claim", name)
	s.dropClaim(ctx, rt, dead)
}

// dropStaleClaims drops the claims of writers that died (stale ones, and
// renamed ones). Run at Open, once per shard.
func (s *Store) dropStaleClaims(ctx context.Context, rt route) error {
	names, err := s.tablesWithPrefix(ctx, rt, claimPrefix)
	if err != nil {
		return fmt.Errorf("listing claims: %w", err)
	}
	for _, n := range names {
		if !identRe.MatchString(n) {
			continue
		}
		stale := strings.Contains(n, "_stale_") || s.claimOwnerDead(ctx, rt, n)
		if !stale {
			if stale, err = s.claimIsStale(ctx, rt, n); err != nil {
				return err
			}
		}
		if stale {
			s.dropClaim(ctx, rt, n)
			s.log.Info("dropped the stale claim of a writer that died", "claim", n)
		}
	}
	return nil
}

package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Layouts of a test cluster (scripts/clickhouse-cluster.sh): two servers as
// two shards of one replica, or as one shard of two replicas. The {shard}
// macro is per server, so a pair of servers has one layout; a test binary
// that asks for both gets two pairs.
const (
	Shards2   = "2x1"
	Replicas2 = "1x2"
)

// Environment variables read by ClickHouseCluster: a cluster already running
// (e.g. under `scripts/clickhouse-cluster.sh run`) is used when its layout is
// the one asked for.
const (
	EnvClusterAddrs  = "DMARCD_TEST_CLUSTER_ADDRS"  // host:port,host:port (native)
	EnvClusterLayout = "DMARCD_TEST_CLUSTER_LAYOUT" // 2x1 or 1x2
	EnvClusterName   = "DMARCD_CLICKHOUSE_CLUSTER"  // the cluster's name
)

// Cluster is a ClickHouse cluster of two servers and a ZooKeeper.
type Cluster struct {
	Name   string   // for store.Options.Cluster
	Layout string   // Shards2 or Replicas2
	Addrs  []string // native host:port of server 1 and server 2
	dir    string   // state folder when this package started it
}

// ClusterDB is a fresh database on a test cluster.
type ClusterDB struct {
	*Cluster
	Database string
}

// DSN is the DSN of the database on server node (1 or 2).
func (d ClusterDB) DSN(node int) string {
	return "clickhouse://" + d.Addrs[node-1] + "/" + d.Database
}

var clusters struct {
	mu sync.Mutex
	m  map[string]*clusterStart
}

type clusterStart struct {
	c   *Cluster
	err error
}

// ClickHouseCluster returns a fresh database, created ON CLUSTER, on a test
// cluster of the given layout. The cluster (ZooKeeper and two
// clickhouse-server on loopback, scripts/clickhouse-cluster.sh) is started
// once per test binary and layout, and stopped when the binary exits. The
// database is dropped when the test ends, unless it failed. Without the
// servers the test fails when CI=true and is skipped otherwise; under -short
// it is skipped.
func ClickHouseCluster(t testing.TB, layout string) ClusterDB {
	t.Helper()
	skipShort(t, "a ClickHouse cluster")
	c, err := cluster(layout)
	if err != nil {
		unavailable(t, "clickhouse cluster: "+err.Error()+
			"; install clickhouse-server and zookeeper (apt-get install clickhouse-server zookeeper)")
	}
	db := databaseName(t.Name())
	if err := clusterExec(c, "CREATE DATABASE IF NOT EXISTS "+db+" ON CLUSTER "+c.Name); err != nil {
		t.Fatalf("clickhouse cluster: creating database %s: %v", db, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("clickhouse cluster: keeping database %s on %v of the failed test", db, c.Addrs)
			return
		}
		if err := clusterExec(c, "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+c.Name); err != nil {
			t.Logf("clickhouse cluster: dropping database %s: %v", db, err)
		}
	})
	return ClusterDB{Cluster: c, Database: db}
}

func cluster(layout string) (*Cluster, error) {
	if layout != Shards2 && layout != Replicas2 {
		return nil, fmt.Errorf("layout %q: want %s or %s", layout, Shards2, Replicas2)
	}
	if addrs := os.Getenv(EnvClusterAddrs); addrs != "" && os.Getenv(EnvClusterLayout) == layout {
		c := &Cluster{Name: os.Getenv(EnvClusterName), Layout: layout, Addrs: strings.Split(addrs, ",")}
		if c.Name == "" || len(c.Addrs) != 2 {
			return nil, fmt.Errorf("%s=%s with %s=%q: want two addresses and a cluster name", EnvClusterAddrs, addrs, EnvClusterName, c.Name)
		}
		for _, a := range c.Addrs {
			if err := ping(a); err != nil {
				return nil, fmt.Errorf("%s: %s does not answer: %w", EnvClusterAddrs, a, err)
			}
		}
		return c, nil
	}
	clusters.mu.Lock()
	defer clusters.mu.Unlock()
	if clusters.m == nil {
		clusters.m = map[string]*clusterStart{}
	}
	st := clusters.m[layout]
	if st == nil {
		st = &clusterStart{}
		st.c, st.err = startCluster(layout)
		clusters.m[layout] = st
	}
	return st.c, st.err
}

// startCluster runs `scripts/clickhouse-cluster.sh start DIR LAYOUT`. The
// script stops the servers and removes DIR once this process is gone.
func startCluster(layout string) (*Cluster, error) {
	sh, err := scriptPath("clickhouse-cluster.sh")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dmarcd-test-cluster-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // includes apt-get installs
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", sh, "start", dir, layout)
	cmd.Env = append(os.Environ(), fmt.Sprintf("CLICKHOUSE_OWNER_PID=%d", os.Getpid()), "CLUSTER_REMOVE_DIR=1")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		exec.Command("bash", sh, "stop", dir).Run()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s start: %v: %s", sh, err, strings.TrimSpace(stderr.String()))
	}
	c := &Cluster{Layout: layout, dir: dir}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case EnvClusterAddrs:
			c.Addrs = strings.Split(v, ",")
		case EnvClusterName:
			c.Name = v
		}
	}
	if len(c.Addrs) != 2 || c.Name == "" {
		return nil, fmt.Errorf("%s start printed no usable %s/%s lines: %q", sh, EnvClusterAddrs, EnvClusterName, out)
	}
	for _, a := range c.Addrs {
		if err := ping(a); err != nil {
			return nil, fmt.Errorf("server %s started by %s does not answer: %w", a, sh, err)
		}
	}
	return c, nil
}

// StopNode stops server node (1 or 2) of a cluster this package started;
// StartNode starts it again with its data. A test that stops a node must
// start it again before it ends: the cluster is shared by the test binary.
func (c *Cluster) StopNode(t testing.TB, node int) {
	t.Helper()
	c.node(t, "stop-node", node)
}

// StartNode starts server node again (see StopNode).
func (c *Cluster) StartNode(t testing.TB, node int) {
	t.Helper()
	c.node(t, "start-node", node)
	if err := ping(c.Addrs[node-1]); err != nil {
		t.Fatalf("clickhouse cluster: node %d does not answer after its start: %v", node, err)
	}
}

func (c *Cluster) node(t testing.TB, what string, node int) {
	t.Helper()
	if c.dir == "" {
		t.Skipf("clickhouse cluster: %s needs a cluster that the test started, not %s", what, EnvClusterAddrs)
	}
	sh, err := scriptPath("clickhouse-cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", sh, what, c.dir, fmt.Sprint(node)).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s %d: %v: %s", sh, what, node, err, out)
	}
}

// clusterExec runs a statement on server 1 in database default.
func clusterExec(c *Cluster, q string) error {
	conn, err := connect(c.Addrs[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return conn.Exec(ctx, q)
}

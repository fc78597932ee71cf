package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/product/gauges/gaugedb"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/product/summary"
	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/store"
)

// clusterTotals are read the way dashboards and gauges read: plain table
// names, no FINAL (in cluster mode the Distributed tables).
var clusterTotals = []string{
	"SELECT count() FROM aggregate_reports",
	"SELECT sum(record_count), sum(message_count) FROM aggregate_reports",
	"SELECT count(), sum(message_count), sum(dmarc_pass * message_count) FROM aggregate_records",
	"SELECT uniqExact(report_key), uniqExact(policy_domain), uniqExact(source_ip) FROM aggregate_records",
	"SELECT count() FROM failure_reports",
	"SELECT count() FROM tlsrpt_reports",
	"SELECT count() FROM tlsrpt_policies",
	"SELECT count() FROM tlsrpt_failures",
}

func totals(t *testing.T, dsn string) []string {
	t.Helper()
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []string
	for _, q := range clusterTotals {
		rows, err := conn.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		cols := rows.ColumnTypes()
		vals := make([]any, len(cols))
		for i := range vals {
			var v uint64
			vals[i] = &v
		}
		for rows.Next() {
			if err := rows.Scan(vals...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		rows.Close()
		s := q + " ="
		for _, v := range vals {
			s += fmt.Sprintf(" %d", *v.(*uint64))
		}
		out = append(out, s)
	}
	return out
}

func ingestAll(t *testing.T, st *store.Store, entries []corpus.Entry, dir string, reverse bool) {
	t.Helper()
	p := ingest.New(st, ingest.Options{Source: "file", Logger: slog.New(slog.DiscardHandler),
		Privacy: ingest.Privacy{Key: []byte("test-key-0123456789abcdef")}})
	for i := range entries {
		e := entries[i]
		if reverse {
			e = entries[len(entries)-1-i]
		}
		f, err := os.Open(filepath.Join(dir, e.Path))
		if err != nil {
			t.Error(err)
			return
		}
		out := p.Process(context.Background(), e.Path, f)
		f.Close()
		if e.Type != "malformed" && out.Status != ingest.Stored && out.Status != ingest.Duplicate {
			t.Errorf("%s: %s (%s: %s)", e.Path, out.Status, out.ReasonCode, out.Reason)
		}
	}
}

// TestClusterCorpusThroughTwoInstancesMatchesSingleServer ingests the corpus
// into a single server with one instance, and into a cluster of two shards
// with two instances (one per server) that each ingest every file at the
// same time, in opposite orders: every total read through the Distributed
// tables equals the single server's.
func TestClusterCorpusThroughTwoInstancesMatchesSingleServer(t *testing.T) {
	t.Parallel()
	dir := corpus.Dir(t)
	entries := corpus.Manifest(t)
	ctx := context.Background()

	single := testenv.ClickHouse(t)
	st, err := store.Open(ctx, single, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ingestAll(t, st, entries, dir, false)
	want := totals(t, single)

	d := testenv.ClickHouseCluster(t, testenv.Shards2)
	var wg sync.WaitGroup
	for node := 1; node <= 2; node++ {
		s, err := store.Open(ctx, d.DSN(node), store.Options{Logger: slog.New(slog.DiscardHandler), Cluster: d.Name})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ingestAll(t, s, entries, dir, node == 2)
		}()
	}
	wg.Wait()
	var stores []*store.Store
	for node := 1; node <= 2; node++ {
		got := totals(t, d.DSN(node))
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("through node %d:\n got %s\nwant %s (single server)", node, got[i], want[i])
			}
		}
		s, err := store.Open(ctx, d.DSN(node), store.Options{Logger: slog.New(slog.DiscardHandler), Cluster: d.Name})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}

	// The read queries of readiness, summaries and gauges give the same
	// answers through either server as on the single server.
	since, until := time.Unix(0, 0), time.Now().AddDate(1, 0, 0)
	reads := map[string]func(*store.Store) (any, error){
		"Summary": func(s *store.Store) (any, error) { return summary.Read(ctx, s, since) },
		"ReadinessSources": func(s *store.Store) (any, error) {
			l, err := readiness.ReadSources(ctx, s, since, until, readiness.Options{})
			// topK(5)(source_ip) picks among IPs of equal frequency in
			// an order that depends on how shards merge: compare how
			// many it names, not which.
			for i := range l {
				l[i].TopIPs = []string{fmt.Sprint(len(l[i].TopIPs))}
			}
			return l, err
		},
		"ReadinessPolicies":   func(s *store.Store) (any, error) { return readiness.ReadPolicies(ctx, s, since, until) },
		"ReadinessUnverified": func(s *store.Store) (any, error) { return readiness.ReadUnverified(ctx, s, since, until) },
		"LastReportsByOrg":    func(s *store.Store) (any, error) { return gaugedb.ReadLastReportsByOrg(ctx, s, since) },
		"LastReportsByDomain": func(s *store.Store) (any, error) { return gaugedb.ReadLastReportsByDomain(ctx, s, since) },
		"GaugeDomains":        func(s *store.Store) (any, error) { return gaugedb.ReadDomains(ctx, s, since, until) },
	}
	for name, read := range reads {
		w, err := read(st)
		if err != nil {
			t.Errorf("%s on the single server: %v", name, err)
			continue
		}
		for i, s := range stores {
			g, err := read(s)
			if err != nil {
				t.Errorf("%s through node %d: %v", name, i+1, err)
				continue
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s through node %d differs from the single server: %s", name, i+1, testenv.FirstDiff(g, w))
			}
		}
	}
}

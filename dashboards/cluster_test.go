package dashboards

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck/checkdb"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/store"
)

// input is one file to ingest.
type input struct {
	name      string
	data      []byte
	malformed bool // the corpus says the pipeline must reject it
}

// clusterInputs are the generated week of example.com that
// TestEveryDashboardQueryRunsOnSeededClickHouse seeds, and every file of
// the corpus: reports of some thirty domains, TLS and failure reports.
func clusterInputs(t *testing.T) []input {
	t.Helper()
	files, err := gen.Generate(gen.Options{Domain: testDomain, Days: 7, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var l []input
	for _, f := range files {
		l = append(l, input{name: f.Name, data: f.Data})
	}
	dir := corpus.Dir(t)
	for _, e := range corpus.Manifest(t) {
		b, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		l = append(l, input{name: e.Path, data: b, malformed: e.Type == "malformed"})
	}
	return l
}

// clusterDNSRecords are the DNS records of seedDNSRecords at a fixed time,
// so that both databases hold the same rows.
func clusterDNSRecords(first time.Time) []checkdb.DNSRecord {
	change := first.Add(72 * time.Hour)
	return []checkdb.DNSRecord{
		{Domain: testDomain, Kind: "dmarc", Name: "_dmarc." + testDomain, Value: "v=DMARC1; p=none", Initial: true, Change: "first seen: v=DMARC1; p=none", CheckedAt: first},
		{Domain: testDomain, Kind: "spf", Name: testDomain, Value: "v=spf1 -all", Initial: true, Change: "first seen: v=spf1 -all", CheckedAt: first},
		{Domain: "other.example", Kind: "dmarc", Name: "_dmarc.other.example", Value: "v=DMARC1; p=reject", Previous: "v=DMARC1; p=none", Change: "p=none → p=reject", CheckedAt: change},
		{Domain: testDomain, Kind: "dmarc", Name: "_dmarc." + testDomain, Value: "v=DMARC1; p=quarantine", Previous: "v=DMARC1; p=none", Change: "p=none → p=quarantine", CheckedAt: change},
		{Domain: "keltia.net", Kind: "dkim:s1", Name: "s1._domainkey.keltia.net", Value: "v=DKIM1; p=AAAB", Previous: "v=DKIM1; p=AAAA", Change: "key changed", CheckedAt: change.Add(time.Hour)},
	}
}

// ingestInputs runs the files through the pipeline of st.
func ingestInputs(t *testing.T, st *store.Store, files []input) {
	t.Helper()
	p := ingest.New(st, ingest.Options{Source: "file", Logger: slog.New(slog.DiscardHandler),
		Privacy: ingest.Privacy{Key: []byte("k")}})
	for _, f := range files {
		o := p.Process(context.Background(), f.name, bytes.NewReader(f.data))
		if !f.malformed && o.Status != ingest.Stored && o.Status != ingest.Duplicate {
			t.Errorf("%s: %s (%s: %s)", f.name, o.Status, o.ReasonCode, o.Reason)
		}
	}
}

func openConn(t *testing.T, dsn string) driver.Conn {
	t.Helper()
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// result is what a query returned: its columns and its rows, each value
// made comparable (floats as float64, the rest as text).
type result struct {
	cols []string
	rows [][]any
	err  error
}

func runResult(conn driver.Conn, sql string) result {
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		return result{err: err}
	}
	defer rows.Close()
	r := result{cols: rows.Columns()}
	for rows.Next() {
		vals := make([]any, len(rows.ColumnTypes()))
		for i, ct := range rows.ColumnTypes() {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			return result{err: err}
		}
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i] = comparable(v)
		}
		r.rows = append(r.rows, row)
	}
	if err := rows.Err(); err != nil {
		return result{err: err}
	}
	return r
}

// comparable is v (a pointer from Scan) as a float64 for a float, and as
// text otherwise (times in UTC).
func comparable(v any) any {
	rv := reflect.Indirect(reflect.ValueOf(v))
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "NULL"
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	}
	if tm, ok := rv.Interface().(time.Time); ok {
		return tm.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%v", rv.Interface())
}

func sameValue(a, b any) bool {
	fa, aok := a.(float64)
	fb, bok := b.(float64)
	if aok && bok {
		if math.IsNaN(fa) || math.IsNaN(fb) {
			return math.IsNaN(fa) && math.IsNaN(fb)
		}
		return math.Abs(fa-fb) <= 1e-9*math.Max(1, math.Max(math.Abs(fa), math.Abs(fb)))
	}
	return aok == bok && a == b
}

func sameRow(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameValue(a[i], b[i]) {
			return false
		}
	}
	return true
}

// rowKey orders rows for a comparison without order (floats rounded, so
// that values within the tolerance sort alike).
func rowKey(r []any) string {
	var b strings.Builder
	for _, v := range r {
		if f, ok := v.(float64); ok {
			fmt.Fprintf(&b, "%.6g\x00", f)
		} else {
			fmt.Fprintf(&b, "%v\x00", v)
		}
	}
	return b.String()
}

var (
	orderByRe = regexp.MustCompile(`(?is)\bORDER BY\s+(.+?)(?:\s+LIMIT\b.*)?$`)
	groupByRe = regexp.MustCompile(`(?is)\bGROUP BY\s+(.+?)(?:\s+(?:HAVING|ORDER BY|LIMIT)\b.*)?$`)
)

// totalOrder says whether the rows of sql come in one order only: an ORDER
// BY that names every GROUP BY term, or one row.
func totalOrder(sql string, rows int) bool {
	if rows <= 1 {
		return true
	}
	o := orderByRe.FindStringSubmatch(sql)
	g := groupByRe.FindStringSubmatch(sql)
	if o == nil || g == nil {
		return false
	}
	terms := func(s string) []string {
		var l []string
		for _, x := range strings.Split(s, ",") {
			x = strings.TrimSpace(x)
			x = strings.TrimSuffix(strings.TrimSuffix(x, " DESC"), " ASC")
			l = append(l, strings.TrimSpace(x))
		}
		return l
	}
	order := terms(o[1])
	for _, x := range terms(g[1]) {
		if !slices.Contains(order, x) {
			return false
		}
	}
	return true
}

// diffResults describes how got differs from want, "" when they are the
// same: same columns, same rows (in the same order when ordered).
func diffResults(got, want result, ordered bool) string {
	if got.err != nil || want.err != nil {
		if got.err != nil && want.err != nil {
			return ""
		}
		return fmt.Sprintf("error %v, single server: error %v", got.err, want.err)
	}
	if !slices.Equal(got.cols, want.cols) {
		return fmt.Sprintf("columns %q, single server %q", got.cols, want.cols)
	}
	if len(got.rows) != len(want.rows) {
		return fmt.Sprintf("%d rows, single server %d:\n got %v\nwant %v", len(got.rows), len(want.rows), got.rows, want.rows)
	}
	g, w := got.rows, want.rows
	how := "in order"
	if !ordered {
		how = "sorted"
		g, w = slices.Clone(g), slices.Clone(w)
		for _, l := range [][][]any{g, w} {
			sort.SliceStable(l, func(i, j int) bool { return rowKey(l[i]) < rowKey(l[j]) })
		}
	}
	for i := range g {
		if !sameRow(g[i], w[i]) {
			return fmt.Sprintf("row %d (%s):\n got %v\nwant %v (single server)", i, how, g[i], w[i])
		}
	}
	return ""
}

// TestClusterDashboardQueriesMatchSingleServer seeds the same reports (the
// generated week of example.com and the whole corpus) into a single server
// and, through two instances in cluster mode, into a cluster of two shards;
// every query of every dashboard (variables, panels, annotations), for
// every domain with data, and the readiness reads of the store must return
// through either server of the cluster what they return on the single
// server.
func TestClusterDashboardQueriesMatchSingleServer(t *testing.T) {
	ctx := context.Background()
	files := clusterInputs(t)
	dnsFirst := time.Now().UTC().AddDate(0, 0, -10).Truncate(time.Second)
	quiet := slog.New(slog.DiscardHandler)

	single := testenv.ClickHouse(t)
	st, err := store.Open(ctx, single, store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ingestInputs(t, st, files)
	if err := checkdb.WriteDNSRecords(ctx, st, clusterDNSRecords(dnsFirst)); err != nil {
		t.Fatal(err)
	}

	// Two instances, one per server, ingest every other file at the same
	// time; each report lands on the shard of its key.
	d := testenv.ClickHouseCluster(t, testenv.Shards2)
	var stores []*store.Store
	for node := 1; node <= 2; node++ {
		s, err := store.Open(ctx, d.DSN(node), store.Options{Logger: quiet, Cluster: d.Name})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	for i, s := range stores {
		var mine []input
		for j, f := range files {
			if j%2 == i {
				mine = append(mine, f)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ingestInputs(t, s, mine)
		}()
	}
	wg.Wait()
	if err := checkdb.WriteDNSRecords(ctx, stores[1], clusterDNSRecords(dnsFirst)); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	conns := []driver.Conn{openConn(t, single), openConn(t, d.DSN(1)), openConn(t, d.DSN(2))}
	where := []string{"single server", "cluster node 1", "cluster node 2"}

	// The data must be spread: every shard holds some of each kind.
	for node := 1; node <= 2; node++ {
		for _, tbl := range []string{"aggregate_reports", "aggregate_records", "aggregate_rollup", "aggregate_sources", "tlsrpt_policies", "failure_reports"} {
			var n uint64
			if err := conns[node].QueryRow(ctx, "SELECT count() FROM "+tbl+"_local").Scan(&n); err != nil {
				t.Fatalf("node %d: %s_local: %v", node, tbl, err)
			}
			if n == 0 {
				t.Errorf("shard of node %d holds no %s: the test compares nothing distributed", node, tbl)
			}
		}
	}

	// compare runs sql everywhere and reports a difference; it returns the
	// single server's result.
	compare := func(t *testing.T, what, sql string) result {
		t.Helper()
		// When each database ingested a report differs (ingested_at,
		// in seconds, a tie-break of the latest policy): order by the
		// next key, report_key, alone.
		sql = strings.ReplaceAll(sql, "ingested_at DESC, ", "")
		want := runResult(conns[0], sql)
		if want.err != nil {
			t.Errorf("%s on the single server: %v\n%s", what, want.err, sql)
			return want
		}
		ordered := totalOrder(sql, len(want.rows))
		for i := 1; i < len(conns); i++ {
			if diff := diffResults(runResult(conns[i], sql), want, ordered); diff != "" {
				t.Errorf("%s through %s: %s\n%s", what, where[i], diff, sql)
			}
		}
		return want
	}

	// Every domain with reports of any kind.
	var domains []string
	for _, q := range []string{"aggregate_reports", "failure_reports", "tlsrpt_policies"} {
		r := compare(t, "domains of "+q, "SELECT DISTINCT policy_domain FROM "+q+" ORDER BY policy_domain")
		for _, row := range r.rows {
			if s := row[0].(string); !slices.Contains(domains, s) {
				domains = append(domains, s)
			}
		}
	}
	if !slices.Contains(domains, testDomain) || len(domains) < 10 {
		t.Fatalf("domains %v: want example.com and many others", domains)
	}

	queries := 0
	for _, db := range loadDashboards(t) {
		for _, v := range db.Templating.List {
			if v.Datasource.Type != chType {
				continue
			}
			q, _ := v.Query.(string)
			compare(t, db.file+" variable "+v.Name, expand(q, rangeFrom, rangeTo, testDomain))
			queries++
		}
		for _, p := range append(db.Panels, annotationPanels(db)...) {
			for _, tg := range p.Targets {
				if tg.Datasource.Type != chType {
					continue
				}
				queries++
				t.Run(db.file+"/"+p.Title, func(t *testing.T) {
					nonEmpty := 0
					for _, dom := range domains {
						if r := compare(t, dom, expand(tg.RawSQL, rangeFrom, rangeTo, dom)); len(r.rows) > 0 {
							nonEmpty++
						}
					}
					if nonEmpty == 0 {
						t.Errorf("no rows for any domain: the comparison shows nothing")
					}
				})
			}
		}
	}
	if queries < 20 {
		t.Errorf("%d dashboard queries compared; want them all", queries)
	}

	// The store's readiness reads that store/cluster_ingest_test.go does
	// not compare (it does Summary, ReadinessSources, ReadinessPolicies,
	// LastReports* and GaugeDomains).
	since, until := rangeFrom, rangeTo
	reads := map[string]func(*store.Store) (any, error){
		"ReadinessIPs": func(s *store.Store) (any, error) {
			l, err := readiness.ReadIPs(ctx, s, since, until)
			sort.SliceStable(l, func(i, j int) bool { return fmt.Sprint(l[i]) < fmt.Sprint(l[j]) })
			return l, err
		},
		"ReadinessFailedAuthReports": func(s *store.Store) (any, error) { return readiness.ReadFailedAuth(ctx, s, since, until) },
		"ReadinessSourcesWith(IncludeFailedAuth)": func(s *store.Store) (any, error) {
			l, err := readiness.ReadSources(ctx, s, since, until, readiness.Options{IncludeFailedAuth: true})
			for i := range l {
				// topK picks among IPs of equal frequency in an order
				// that depends on how the shards merge.
				l[i].TopIPs = []string{fmt.Sprint(len(l[i].TopIPs))}
			}
			// Rows of equal messages within a class come in any order.
			sort.SliceStable(l, func(i, j int) bool { return fmt.Sprint(l[i]) < fmt.Sprint(l[j]) })
			return l, err
		},
	}
	for name, read := range reads {
		w, err := read(st)
		if err != nil {
			t.Errorf("%s on the single server: %v", name, err)
			continue
		}
		if reflect.ValueOf(w).Len() == 0 && name != "ReadinessFailedAuthReports" {
			t.Errorf("%s on the single server: no rows", name)
		}
		for i, s := range stores {
			g, err := read(s)
			if err != nil {
				t.Errorf("%s through cluster node %d: %v", name, i+1, err)
				continue
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s through cluster node %d differs from the single server: %s", name, i+1, testenv.FirstDiff(g, w))
			}
		}
	}
}

func TestTotalOrder(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT t AS time, count() FROM x GROUP BY time ORDER BY time":                               true,
		"SELECT a, b FROM x GROUP BY a, b ORDER BY n DESC, a, b LIMIT 10":                            true,
		"SELECT a FROM x GROUP BY org_name ORDER BY messages DESC, reporter":                         false,
		"SELECT a FROM x GROUP BY a, b HAVING c > 0 ORDER BY a":                                      false,
		"SELECT a FROM x ORDER BY a":                                                                 false,
		"SELECT d FROM x GROUP BY d, c HAVING c != 'aligned' OR p < m\nORDER BY messages DESC, d, c": true,
	} {
		if got := totalOrder(sql, 2); got != want {
			t.Errorf("totalOrder(%q) = %v, want %v", sql, got, want)
		}
	}
}

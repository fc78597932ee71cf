// Command benchqueries measures the dashboard and gauge queries on a large
// generated data set (make bench-queries, scripts/bench-queries.sh):
//
//	benchqueries -dsn DSN -load -records 100000000   fill an empty database (records, report rows, rollup)
//	benchqueries -dsn DSN -rebuild                   rebuild the rollup from the records
//	benchqueries -dsn DSN [-runs 10] [-md]           p50 and p95 of every query
//
// Every ClickHouse query of every dashboard in dashboards/grafana (macros
// and variables expanded as dashboards/dashboards_test.go expands them, over
// the last 30 days of the data) runs for one domain (the largest) and for
// all domains (the domain condition removed, as if Grafana's variable were
// "All"); every gauge query of store runs over the 30-day window, as
// internal/product/gauges runs it. It prints figures and never fails on speed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
	"github.com/dmarcd/dmarcd/internal/product/gauges/gaugedb"
	"github.com/dmarcd/dmarcd/store"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchqueries:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("benchqueries", flag.ContinueOnError)
	dsn := fs.String("dsn", os.Getenv("DMARCD_CLICKHOUSE_DSN"), "ClickHouse DSN of the benchmark database")
	doLoad := fs.Bool("load", false, "fill the database with generated data when it holds fewer than -records records")
	records := fs.Int("records", 100_000_000, "records to generate")
	chunk := fs.Int("chunk", 5_000_000, "records per INSERT ... SELECT")
	runs := fs.Int("runs", 10, "measured runs per query (after one warm-up run)")
	budget := fs.Duration("budget", time.Minute, "stop measuring a query after this long (at least 3 runs)")
	dir := fs.String("dashboards", "dashboards/grafana", "folder of the dashboard JSON files")
	filter := fs.String("run", "", "only queries whose name matches this regular expression")
	md := fs.Bool("md", false, "print a Markdown table")
	rebuild := fs.Bool("rebuild", false, "rebuild the rollup from the records (store.RebuildRollup) and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dsn == "" {
		return fmt.Errorf("no -dsn and no DMARCD_CLICKHOUSE_DSN")
	}
	ctx := context.Background()
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }

	// Open runs the migrations (and so creates the rollup table).
	st, err := store.Open(ctx, *dsn, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	opts, err := clickhouse.ParseDSN(*dsn)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()

	var have uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM aggregate_records").Scan(&have); err != nil {
		return err
	}
	if *doLoad && have < uint64(*records) {
		if have > 0 {
			return fmt.Errorf("the database holds %d records, fewer than %d: drop it first", have, *records)
		}
		if err := load(ctx, conn, *records, *chunk, logf); err != nil {
			return err
		}
		t := time.Now()
		if err := st.RebuildRollup(ctx, nil); err != nil {
			return err
		}
		logf("rollup rebuilt in %s", time.Since(t).Round(time.Millisecond))
		have = uint64(*records)
	}
	if *rebuild {
		t := time.Now()
		if err := st.RebuildRollup(ctx, nil); err != nil {
			return err
		}
		logf("rollup rebuilt in %s", time.Since(t).Round(time.Millisecond))
	}
	if *doLoad || *rebuild {
		return nil
	}

	queries, err := collect(*dir)
	if err != nil {
		return err
	}
	re, err := regexp.Compile(*filter)
	if err != nil {
		return err
	}
	dom, err := largestDomain(ctx, conn)
	if err != nil {
		return err
	}
	to := dataStart.AddDate(0, 0, dataDays)
	from := to.AddDate(0, 0, -30)
	logf("%d records; one domain: %s; range %s .. %s; %d runs per query", have, dom, from.Format(time.DateOnly), to.Format(time.DateOnly), *runs)

	var results []result
	for _, q := range queries {
		if !re.MatchString(q.name) {
			continue
		}
		for _, scope := range q.scopes() {
			sql, args := q.expand(scope, from, to, dom)
			r := result{name: q.name, scope: scope}
			r.times, r.rows, r.err = measure(ctx, conn, sql, args, *runs, *budget)
			if r.err != nil {
				logf("%s (%s): %v", q.name, scope, r.err)
			}
			results = append(results, r)
			if !*md {
				fmt.Println(r.line())
			}
		}
	}
	if *md {
		printMarkdown(results)
	}
	return nil
}

// query is a dashboard panel's SQL or a gauge query.
type query struct {
	name string
	sql  string
	// gauge is set for a gauge query: its statement over the window
	// (from, to), arguments included.
	gauge func(from, to time.Time) chsql.Stmt
}

const (
	scopeOne = "one domain"
	scopeAll = "all domains"
)

var domainCond = regexp.MustCompile(`policy_domain = '\$\{?domain\}?'( AND )?`)

func (q query) scopes() []string {
	if q.gauge == nil && domainCond.MatchString(q.sql) {
		return []string{scopeOne, scopeAll}
	}
	return []string{scopeAll}
}

var timeFilterRe = regexp.MustCompile(`\$__timeFilter\(\s*([^)]+?)\s*\)`)

// expand renders the query for a scope: for dashboards as
// dashboards/dashboards_test.go's expand (plugin v4 macros, Grafana
// variables), without the domain condition for all domains.
func (q query) expand(scope string, from, to time.Time, domain string) (string, []any) {
	if q.gauge != nil {
		st := q.gauge(from, to)
		return st.SQL, st.Args
	}
	sql := q.sql
	if scope == scopeAll {
		sql = domainCond.ReplaceAllStringFunc(sql, func(m string) string {
			if strings.HasSuffix(m, " AND ") {
				return ""
			}
			return "1"
		})
	}
	f, t := fmt.Sprintf("toDateTime(%d)", from.Unix()), fmt.Sprintf("toDateTime(%d)", to.Unix())
	sql = timeFilterRe.ReplaceAllString(sql, "$1 >= "+f+" AND $1 <= "+t)
	sql = strings.NewReplacer("$__fromTime", f, "$__toTime", t, "${domain}", domain, "$domain", domain).Replace(sql)
	return sql, nil
}

// collect reads the dashboards' ClickHouse queries (panels and variables)
// and adds the gauge queries.
func collect(dir string) ([]query, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no dashboards in %s (run from the repository's root or set -dashboards)", dir)
	}
	sort.Strings(files)
	var l []query
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d struct {
			Templating struct {
				List []struct {
					Name       string `json:"name"`
					Datasource struct{ Type string }
					Query      any `json:"query"`
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Datasource struct{ Type string }
					RawSQL     string `json:"rawSql"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		base := filepath.Base(f)
		for _, v := range d.Templating.List {
			if s, ok := v.Query.(string); ok && v.Datasource.Type == "grafana-clickhouse-datasource" {
				l = append(l, query{name: base + " variable " + v.Name, sql: s})
			}
		}
		for _, p := range d.Panels {
			for i, t := range p.Targets {
				if t.Datasource.Type != "grafana-clickhouse-datasource" || t.RawSQL == "" {
					continue
				}
				name := base + "/" + p.Title
				if i > 0 {
					name += fmt.Sprintf(" #%d", i+1)
				}
				l = append(l, query{name: name, sql: t.RawSQL})
			}
		}
	}
	for i, g := range gaugedb.Queries(time.Time{}, time.Time{}) {
		l = append(l, query{name: "gauge " + g.Name, sql: g.SQL, gauge: func(from, to time.Time) chsql.Stmt {
			return gaugedb.Queries(from, to)[i].Stmt
		}})
	}
	return l, nil
}

// largestDomain is the policy domain with the most records.
func largestDomain(ctx context.Context, conn driver.Conn) (string, error) {
	var d string
	err := conn.QueryRow(ctx, `SELECT policy_domain FROM aggregate_reports
		GROUP BY policy_domain ORDER BY sum(record_count) DESC LIMIT 1`).Scan(&d)
	if err != nil {
		return "", fmt.Errorf("finding the largest domain: %w", err)
	}
	return d, nil
}

type result struct {
	name, scope string
	times       []time.Duration
	rows        int
	err         error
}

// measure runs sql once to warm up, then runs times, reading every row; it
// stops early when budget is spent and it has 3 measured runs.
func measure(ctx context.Context, conn driver.Conn, sql string, args []any, runs int, budget time.Duration) ([]time.Duration, int, error) {
	var times []time.Duration
	n := 0
	start := time.Now()
	for i := 0; i <= runs; i++ {
		if len(times) >= 3 && time.Since(start) > budget {
			break
		}
		t := time.Now()
		rows, err := conn.Query(ctx, sql, args...)
		if err != nil {
			return nil, 0, fmt.Errorf("%w\n%s", err, sql)
		}
		n = 0
		for rows.Next() {
			n++
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, 0, err
		}
		if i > 0 {
			times = append(times, time.Since(t))
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return times, n, nil
}

// percentile by nearest rank of sorted durations.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p*float64(len(d))+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

func (r result) line() string {
	if r.err != nil {
		return fmt.Sprintf("%-70s %-11s error", r.name, r.scope)
	}
	return fmt.Sprintf("%-70s %-11s p50 %7.3f s  p95 %7.3f s  %6d rows  %2d runs", r.name, r.scope,
		percentile(r.times, 0.5).Seconds(), percentile(r.times, 0.95).Seconds(), r.rows, len(r.times))
}

func printMarkdown(l []result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintln(w, "| query | scope | p50 | p95 | rows | runs |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range l {
		if r.err != nil {
			fmt.Fprintf(w, "| %s | %s | error | error | |\n", r.name, r.scope)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %.3f s | %.3f s | %d | %d |\n", r.name, r.scope,
			percentile(r.times, 0.5).Seconds(), percentile(r.times, 0.95).Seconds(), r.rows, len(r.times))
	}
	w.Flush()
}

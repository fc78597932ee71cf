package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"gopkg.in/yaml.v3"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/lib/chsql"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck/checkdb"
	"github.com/dmarcd/dmarcd/internal/product/gauges"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type datasource struct{ Type, UID string }

type target struct {
	RefID      string     `json:"refId"`
	Datasource datasource `json:"datasource"`
	RawSQL     string     `json:"rawSql"`
	Expr       string     `json:"expr"`
	Format     *int       `json:"format"`
	QueryType  string     `json:"queryType"`
	EditorType string     `json:"editorType"`
}

type panel struct {
	Title      string     `json:"title"`
	Type       string     `json:"type"`
	Datasource datasource `json:"datasource"`
	Targets    []target   `json:"targets"`
}

type dashboard struct {
	file       string
	raw        []byte // the JSON as the file holds it
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string     `json:"name"`
			Datasource datasource `json:"datasource"`
			Query      any        `json:"query"`
			Sort       int        `json:"sort"`
			Multi      bool       `json:"multi"`
			IncludeAll bool       `json:"includeAll"`
		} `json:"list"`
	} `json:"templating"`
	Panels      []panel `json:"panels"`
	Annotations struct {
		List []annotation `json:"list"`
	} `json:"annotations"`
}

// annotation is an annotation query of a dashboard; built-in ones (Grafana's
// own annotations and alerts) have no target.
type annotation struct {
	Name       string     `json:"name"`
	BuiltIn    int        `json:"builtIn"`
	Datasource datasource `json:"datasource"`
	Target     target     `json:"target"`
}

// annotationPanels returns the annotation queries of d as panels titled
// "annotation NAME", so that they are checked and run like panel queries.
func annotationPanels(d dashboard) []panel {
	var l []panel
	for _, a := range d.Annotations.List {
		if a.BuiltIn != 0 {
			continue
		}
		l = append(l, panel{Title: "annotation " + a.Name, Datasource: a.Datasource, Targets: []target{a.Target}})
	}
	return l
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, _ := filepath.Glob("grafana/*.json")
	if len(files) == 0 {
		t.Fatal("no dashboards in grafana/")
	}
	var l []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file, d.raw = filepath.Base(f), b
		l = append(l, d)
	}
	return l
}

const (
	chType   = "grafana-clickhouse-datasource"
	promType = "prometheus"
)

// The time range and domain the dashboard queries run with.
var (
	rangeFrom = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	rangeTo   = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

const testDomain = "example.com"

var timeFilterRe = regexp.MustCompile(`\$__timeFilter\(\s*([^)]+?)\s*\)`)

// expand replaces the macros of grafana-clickhouse-datasource v4
// (pkg/macros: $__timeFilter(c) is "c >= toDateTime(FROM) AND c <=
// toDateTime(TO)" in Unix seconds, $__fromTime and $__toTime are
// toDateTime(...)) and the template variables Grafana substitutes before
// the plugin sees the query (expandVariables, with domain as the value of
// the domain variable).
func expand(sql string, from, to time.Time, domain string) string {
	f, tt := fmt.Sprintf("toDateTime(%d)", from.Unix()), fmt.Sprintf("toDateTime(%d)", to.Unix())
	sql = timeFilterRe.ReplaceAllString(sql, "$1 >= "+f+" AND $1 <= "+tt)
	sql = strings.NewReplacer("$__fromTime", f, "$__toTime", tt).Replace(sql)
	return expandVariables(sql, map[string]string{"domain": domain})
}

func TestExpandMatchesThePluginV4Macros(t *testing.T) {
	got := expand("WHERE $__timeFilter(date_begin) AND d = decodeURLComponent('${domain:percentencode}') AND x < $__toTime AND y >= $__fromTime", time.Unix(10, 0), time.Unix(20, 0), "a.example")
	want := "WHERE date_begin >= toDateTime(10) AND date_begin <= toDateTime(20) AND d = decodeURLComponent('a.example') AND x < toDateTime(20) AND y >= toDateTime(10)"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestDashboardsAreWellFormed checks what Grafana and plugin v4 need and
// what ClickHouse 18.16 cannot run.
func TestDashboardsAreWellFormed(t *testing.T) {
	uids := map[string]bool{}
	for _, d := range loadDashboards(t) {
		if d.UID == "" || uids[d.UID] || d.Title == "" {
			t.Errorf("%s: uid %q (must be set and unique), title %q", d.file, d.UID, d.Title)
		}
		uids[d.UID] = true
		for _, p := range append(d.Panels, annotationPanels(d)...) {
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", d.file, p.Title)
			}
			for _, tg := range p.Targets {
				switch tg.Datasource.Type {
				case chType:
					if tg.EditorType != "sql" || tg.RawSQL == "" || tg.Format == nil ||
						(tg.QueryType != "table" && tg.QueryType != "timeseries") {
						t.Errorf("%s: panel %q: not a plugin v4 SQL target: %+v", d.file, p.Title, tg)
					}
					if tg.QueryType == "timeseries" && !strings.Contains(tg.RawSQL, " AS time") {
						t.Errorf("%s: panel %q: a time series query needs a time column", d.file, p.Title)
					}
					for _, bad := range []string{"toStartOfInterval", "$__timeInterval", "$__interval"} {
						if strings.Contains(tg.RawSQL, bad) {
							t.Errorf("%s: panel %q uses %s, which ClickHouse 18.16 lacks", d.file, p.Title, bad)
						}
					}
				case promType:
					if tg.Expr == "" {
						t.Errorf("%s: panel %q: empty expr", d.file, p.Title)
					}
				default:
					t.Errorf("%s: panel %q: data source type %q", d.file, p.Title, tg.Datasource.Type)
				}
			}
		}
	}
}

// want is what a panel's query must return on the seeded data: its columns
// in order, and optionally a check of the rows.
type want struct {
	cols  []string
	check func(t *testing.T, rows [][]any)
}

// seeded is what seedStore wrote.
type seeded struct {
	dsn            string
	messages, pass uint64 // of the reports whose mail did not fail authentication
	reports        int
	dnsChange      time.Time // when the seeded DMARC record changed
	// One more report whose mail failed authentication (a likely forgery):
	// its messages and aligned passes. The readiness panels leave it out,
	// as `dmarcd readiness` does; the others count it.
	forgedMessages, forgedPass uint64
}

// forgedStore stores what it is given as if its mail had failed
// authentication on arrival (the store's auth_result 'fail'), to seed a
// forged report without DNS.
type forgedStore struct{ ingest.Store }

func (f forgedStore) WriteAggregate(ctx context.Context, h *aggregate.Header, meta store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	meta.AuthResult, meta.AuthDetail = "fail", "seeded as forged"
	return f.Store.WriteAggregate(ctx, h, meta, next)
}

// seedDNSRecords writes what the daemon's periodic check stores when the
// DMARC record of example.com goes from p=none to p=quarantine (see
// internal/app/daemon/periodic_test.go for the check itself): the first
// sighting of each record, which is no change, then the change.
func seedDNSRecords(t *testing.T, st *store.Store) time.Time {
	t.Helper()
	first := time.Now().UTC().AddDate(0, 0, -10).Truncate(time.Second)
	change := first.Add(72 * time.Hour)
	err := checkdb.WriteDNSRecords(context.Background(), st, []checkdb.DNSRecord{
		{Domain: testDomain, Kind: "dmarc", Name: "_dmarc." + testDomain, Value: "v=DMARC1; p=none", Initial: true, Change: "first seen: v=DMARC1; p=none", CheckedAt: first},
		{Domain: testDomain, Kind: "spf", Name: testDomain, Value: "v=spf1 -all", Initial: true, Change: "first seen: v=spf1 -all", CheckedAt: first},
		{Domain: "other.example", Kind: "dmarc", Name: "_dmarc.other.example", Value: "v=DMARC1; p=reject", Previous: "v=DMARC1; p=none", Change: "p=none → p=reject", CheckedAt: change},
		{Domain: testDomain, Kind: "dmarc", Name: "_dmarc." + testDomain, Value: "v=DMARC1; p=quarantine", Previous: "v=DMARC1; p=none", Change: "p=none → p=quarantine", CheckedAt: change},
	})
	if err != nil {
		t.Fatal(err)
	}
	return change
}

// openStore opens a store on a new database of the test ClickHouse,
// closed when the test ends, and returns it with the database's DSN.
func openStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	dsn := testenv.ClickHouse(t)
	st, err := store.Open(context.Background(), dsn, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dsn
}

// seedStore ingests 7 generated days for example.com, and the corpus TLS and
// failure reports of example.com, through the pipeline.
func seedStore(t *testing.T) seeded {
	t.Helper()
	st, dsn := openStore(t)
	ctx := context.Background()
	files, err := gen.Generate(gen.Options{Domain: testDomain, Days: 7, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	p := ingest.New(st, ingest.Options{Source: "file", Privacy: ingest.Privacy{Key: []byte("k")}})
	process := func(name string, data []byte) {
		o := p.Process(ctx, name, bytes.NewReader(data))
		if o.Status != ingest.Stored && o.Status != ingest.Duplicate {
			t.Fatalf("%s: %s %s", name, o.Status, o.Reason)
		}
	}
	for _, f := range files {
		process(f.Name, f.Data)
	}
	dir := testenv.CorpusDir(t)
	for _, rel := range []string{
		"isseis__tlsrpt-digest/smtp_tls/tlsrpt_failure.eml",
		"domainaware__parsedmarc/forensic/dmarc_ruf_report_linkedin.eml",
	} {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		process(rel, b)
	}
	tr := gen.Summarize(files)
	s := seeded{dsn: dsn, messages: tr.Messages, reports: tr.Reports, dnsChange: seedDNSRecords(t, st)}
	for _, d := range tr.PerDomain {
		s.pass += d.DMARCPassRelaxed
	}
	// The forged report: one aggregate report of another generated set.
	more, err := gen.Generate(gen.Options{Domain: testDomain, Days: 1, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	forged := ingest.New(forgedStore{st}, ingest.Options{Source: "file", Privacy: ingest.Privacy{Key: []byte("k")}})
	for _, f := range more {
		ft := gen.Summarize([]gen.File{f})
		if ft.Reports != 1 || ft.Messages == 0 {
			continue
		}
		if o := forged.Process(ctx, "forged/"+f.Name, bytes.NewReader(f.Data)); o.Status != ingest.Stored {
			t.Fatalf("forged %s: %s %s", f.Name, o.Status, o.Reason)
		}
		s.forgedMessages = ft.Messages
		for _, d := range ft.PerDomain {
			s.forgedPass += d.DMARCPassRelaxed
		}
		break
	}
	if s.forgedMessages == 0 {
		t.Fatal("no generated report to seed as forged")
	}
	return s
}

func num(v any) float64 {
	rv := reflect.Indirect(reflect.ValueOf(v))
	switch rv.Kind() {
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint())
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int())
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	}
	return math.NaN()
}

func sumCol(rows [][]any, i int) float64 {
	var s float64
	for _, r := range rows {
		s += num(r[i])
	}
	return s
}

// TestEveryDashboardQueryRunsOnSeededClickHouse runs every SQL query of
// every dashboard, macros expanded as plugin v4 does, on the real schema
// with generated data, and checks the columns and values returned.
func TestEveryDashboardQueryRunsOnSeededClickHouse(t *testing.T) {
	s := seedStore(t)
	// The readiness panels: without the forged report; the others: all.
	msgs := float64(s.messages)
	pass := float64(s.pass)
	allMsgs := msgs + float64(s.forgedMessages)
	allPass := pass + float64(s.forgedPass)
	eq := func(col int, v float64) func(*testing.T, [][]any) {
		return func(t *testing.T, rows [][]any) {
			if got := sumCol(rows, col); math.Abs(got-v) > 1e-9*math.Max(1, v) {
				t.Errorf("column %d sums to %v, want %v", col, got, v)
			}
		}
	}
	expect := map[string]want{
		"overview.json/Messages":                                  {[]string{"messages"}, eq(0, allMsgs)},
		"overview.json/DMARC pass rate":                           {[]string{"pass_rate"}, eq(0, allPass/allMsgs)},
		"overview.json/Failing DMARC (what p=reject would block)": {[]string{"failing"}, eq(0, allMsgs-allPass)},
		"overview.json/Policy in force": {[]string{"policy_domain", "p", "sp", "pct", "adkim", "aspf", "stated_by", "as_of"},
			func(t *testing.T, rows [][]any) {
				if len(rows) != 1 || fmt.Sprint(reflect.Indirect(reflect.ValueOf(rows[0][1]))) != "none" {
					t.Errorf("policy rows %v, want one with p=none", rows)
				}
			}},
		"overview.json/Messages per day": {[]string{"time", "pass", "fail"}, func(t *testing.T, rows [][]any) {
			if len(rows) < 7 || sumCol(rows, 1)+sumCol(rows, 2) != allMsgs || sumCol(rows, 1) != allPass {
				t.Errorf("%d days, pass %v fail %v; want >= 7 days, %v and %v", len(rows), sumCol(rows, 1), sumCol(rows, 2), allPass, allMsgs-allPass)
			}
		}},
		"overview.json/Reporters": {[]string{"reporter", "reports", "messages", "last_period_end"}, func(t *testing.T, rows [][]any) {
			if sumCol(rows, 1) != float64(s.reports+1) || sumCol(rows, 2) != allMsgs {
				t.Errorf("reporters: %v reports, %v messages; want %d, %v", sumCol(rows, 1), sumCol(rows, 2), s.reports+1, allMsgs)
			}
		}},
		"overview.json/All domains": {[]string{"domain", "messages", "pass_rate", "failing"}, eq(1, allMsgs)},
		"sources.json/Sources by IP and From domain": {[]string{"source_ip", "header_from", "header_from_org", "messages", "spf_pass",
			"dkim_pass", "spf_aligned", "dkim_aligned", "dmarc_pass", "selectors"}, func(t *testing.T, rows [][]any) {
			if sumCol(rows, 8) != allPass || len(rows) < 10 {
				t.Errorf("%d sources, dmarc_pass %v; want many, %v", len(rows), sumCol(rows, 8), allPass)
			}
		}},
		"sources.json/DKIM signatures: domain, selector, result":       {[]string{"dkim_domain", "dkim_selector", "dkim_result", "messages", "source_ips"}, nil},
		"sources.json/SPF: MAIL FROM domain and result":                {[]string{"spf_domain", "spf_scope", "spf_result", "messages", "source_ips"}, nil},
		"sources.json/Alignment per day":                               {[]string{"time", "dkim_aligned", "spf_aligned", "dkim_aligned_strict", "spf_aligned_strict"}, nil},
		"readiness.json/p=quarantine / p=reject would act on":          {[]string{"would_block"}, eq(0, msgs-pass)},
		"readiness.json/Strict alignment (adkim=s, aspf=s) would fail": {[]string{"failing_if_strict"}, nil},
		"readiness.json/Messages by readiness class": {[]string{"class", "messages", "source_ips"}, func(t *testing.T, rows [][]any) {
			classes := map[string]float64{}
			for _, r := range rows {
				classes[fmt.Sprint(reflect.Indirect(reflect.ValueOf(r[0])))] = num(r[1])
			}
			if sumCol(rows, 1) != msgs || classes[readiness.ClassAligned] != pass || classes[readiness.ClassUnauthenticated] == 0 {
				t.Errorf("classes %v; want a sum of %v, aligned %v, some unauthenticated", classes, msgs, pass)
			}
		}},
		"readiness.json/Who would be blocked (not aligned), by sender": {[]string{"header_from", "class", "dkim_pass", "spf_pass", "messages", "source_ips", "pass_if_strict"}, nil},
		"readiness.json/Failing messages per day":                      {[]string{"time", "failing", "failing_if_strict"}, eq(1, msgs-pass)},
		"failure-tls.json/Failure reports per day":                     {[]string{"time", "reports"}, eq(1, 1)},
		"failure-tls.json/Failure reports": {[]string{"arrival_date", "reporter", "source_ip", "original_from_domain", "original_mail_from_domain",
			"auth_failure", "delivery_result", "dkim_domain", "dkim_selector", "original_subject"}, nil},
		"failure-tls.json/TLS sessions per day": {[]string{"time", "successful", "failed"}, func(t *testing.T, rows [][]any) {
			if sumCol(rows, 1) != 4523 || sumCol(rows, 2) != 2 { // MANIFEST: successful=4523 failed=2
				t.Errorf("TLS sessions %v ok, %v failed; want 4523, 2", sumCol(rows, 1), sumCol(rows, 2))
			}
		}},
		"failure-tls.json/TLS failures": {[]string{"result_type", "receiving_mx_hostname", "sending_mta_ip", "failed_sessions", "reporters", "last_seen"}, eq(3, 2)},
		"overview.json/annotation DNS record changes": {[]string{"time", "text", "tags"}, func(t *testing.T, rows [][]any) {
			want := "DMARC record of example.com changed: p=none → p=quarantine"
			if len(rows) != 1 || fmt.Sprint(reflect.Indirect(reflect.ValueOf(rows[0][1]))) != want ||
				!reflect.Indirect(reflect.ValueOf(rows[0][0])).Interface().(time.Time).Equal(s.dnsChange) ||
				fmt.Sprint(reflect.Indirect(reflect.ValueOf(rows[0][2]))) != "dns,dmarc" {
				t.Errorf("annotations %v; want one at %v: %q, tags dns,dmarc", rows, s.dnsChange, want)
			}
		}},
	}

	conn := openConn(t, s.dsn)
	ctx := context.Background()
	ran := map[string]bool{}
	for _, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Datasource.Type != chType {
				continue
			}
			q, _ := v.Query.(string)
			rows := runQuery(t, conn, d.file+" variable "+v.Name, expand(q, rangeFrom, rangeTo, testDomain))
			if !slices.ContainsFunc(rows, func(r []any) bool { return fmt.Sprint(reflect.Indirect(reflect.ValueOf(r[0]))) == testDomain }) {
				t.Errorf("%s: variable %s: %s not offered (%v)", d.file, v.Name, testDomain, rows)
			}
		}
		for _, p := range append(d.Panels, annotationPanels(d)...) {
			for _, tg := range p.Targets {
				if tg.Datasource.Type != chType {
					continue
				}
				key := d.file + "/" + p.Title
				sql := expand(tg.RawSQL, rangeFrom, rangeTo, testDomain)
				if strings.Contains(sql, "$") {
					t.Errorf("%s: unexpanded macro or variable in %s", key, sql)
					continue
				}
				w, ok := expect[key]
				if !ok {
					t.Errorf("%s: no expectation in this test: add one", key)
					continue
				}
				ran[key] = true
				t.Run(key, func(t *testing.T) {
					rows, err := conn.Query(ctx, sql)
					if err != nil {
						t.Fatalf("%v\n%s", err, sql)
					}
					defer rows.Close()
					if cols := rows.Columns(); !slices.Equal(cols, w.cols) {
						t.Errorf("columns %q, want %q", cols, w.cols)
					}
					all := scanRows(t, rows)
					if len(all) == 0 {
						t.Fatalf("no rows on the seeded data\n%s", sql)
					}
					if tg.QueryType == "timeseries" && rows.ColumnTypes()[0].DatabaseTypeName() != "DateTime('UTC')" {
						t.Errorf("time column is %s", rows.ColumnTypes()[0].DatabaseTypeName())
					}
					if w.check != nil {
						w.check(t, all)
					}
					if strings.Contains(sql, "FROM aggregate_sources") || strings.Contains(sql, "FROM aggregate_outcomes") {
						ref, ok := recordsQuestions[key]
						if ok {
							ref = expand(ref, rangeFrom, rangeTo, testDomain)
						} else if strings.Contains(sql, "FROM aggregate_outcomes") {
							t.Fatalf("a panel of aggregate_outcomes without its question of the records in recordsQuestions")
						} else {
							ref = strings.ReplaceAll(sql, "FROM aggregate_sources", "FROM aggregate_records")
							ref = regexp.MustCompile(`\bby_source = 1 AND`).ReplaceAllString(ref, "record_error = '' AND")
						}
						sameAsRecords(t, conn, ref, all)
					}
				})
			}
		}
	}
	for k := range expect {
		if !ran[k] {
			t.Errorf("expectation %s matches no panel", k)
		}
	}
}

// recordsQuestions are, for the panels that read aggregate_outcomes (or
// aggregate_sources through joins, states or its source_pair column), the
// same question asked of every valid record: what the panel must return.
// The other panels that read aggregate_sources are checked against their
// own SQL with FROM aggregate_records and the valid-records condition for
// by_source = 1.
var recordsQuestions = map[string]string{
	"sources.json/Sources by IP and From domain": sourcesByIPOfRecords,
	"readiness.json/Messages by readiness class": `WITH ` + knownSelectors + `
SELECT ` + chsql.ClassRule + ` AS class, sum(message_count) AS messages, uniq(source_ip) AS source_ips
FROM aggregate_records
WHERE policy_domain = decodeURLComponent('${domain:percentencode}') AND record_error = '' AND $__timeFilter(date_begin) AND ` + chsql.NotFailedAuth + `
GROUP BY class ORDER BY messages DESC`,
	"readiness.json/Who would be blocked (not aligned), by sender": `WITH ` + knownSelectors + `
SELECT header_from, ` + chsql.ClassRule + ` AS class,
arrayStringConcat(arraySort(arrayFilter((d, r) -> r = 'pass', dkim_domains, dkim_results)), ' ') AS dkim_pass,
arrayStringConcat(arraySort(arrayFilter((d, r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_domains, spf_results, spf_scopes)), ' ') AS spf_pass,
sum(message_count) AS messages, uniq(source_ip) AS source_ips,
sumIf(message_count, dkim_aligned_strict = 1 OR spf_aligned_strict = 1) AS pass_if_strict
FROM aggregate_records
WHERE policy_domain = decodeURLComponent('${domain:percentencode}') AND record_error = '' AND $__timeFilter(date_begin) AND ` + chsql.NotFailedAuth + `
GROUP BY header_from, class, dkim_pass, spf_pass
HAVING class != 'aligned' OR pass_if_strict < messages`,
	"sources.json/DKIM signatures: domain, selector, result": `SELECT dkim_domain, dkim_selector, dkim_result, sum(message_count) AS messages, uniq(source_ip) AS source_ips
FROM aggregate_records
ARRAY JOIN dkim_domains AS dkim_domain, dkim_selectors AS dkim_selector, dkim_results AS dkim_result
WHERE policy_domain = decodeURLComponent('${domain:percentencode}') AND record_error = '' AND $__timeFilter(date_begin)
GROUP BY dkim_domain, dkim_selector, dkim_result`,
	"sources.json/SPF: MAIL FROM domain and result": `SELECT spf_domain, spf_scope, spf_result, sum(message_count) AS messages, uniq(source_ip) AS source_ips
FROM aggregate_records
ARRAY JOIN spf_domains AS spf_domain, spf_scopes AS spf_scope, spf_results AS spf_result
WHERE policy_domain = decodeURLComponent('${domain:percentencode}') AND record_error = '' AND $__timeFilter(date_begin)
GROUP BY spf_domain, spf_scope, spf_result`,
}

// knownSelectors is chsql.KnownSelectors over the dashboard's time range,
// without the reports whose mail failed authentication, as `dmarcd
// readiness` reads it; the readiness panels hold this very text.
var knownSelectors = chsql.KnownSelectors(chsql.Text("$__timeFilter(date_begin) AND " + chsql.NotFailedAuth)).SQL

// sameAsRecords checks a panel that reads aggregate_sources (rows got)
// against ref, the same question asked of the records themselves. Rows are
// compared as sets of printed rows (ties in ORDER BY may order them
// differently).
func sameAsRecords(t *testing.T, conn clickhouse.Conn, ref string, got [][]any) {
	t.Helper()
	rows, err := conn.Query(context.Background(), ref)
	if err != nil {
		t.Fatalf("the same question of aggregate_records: %v\n%s", err, ref)
	}
	defer rows.Close()
	print := func(r []any) string {
		var b strings.Builder
		for _, v := range r {
			fmt.Fprintf(&b, "%v|", reflect.Indirect(reflect.ValueOf(v)))
		}
		return b.String()
	}
	var want, have []string
	for _, r := range scanRows(t, rows) {
		want = append(want, print(r))
	}
	for _, r := range got {
		have = append(have, print(r))
	}
	slices.Sort(want)
	slices.Sort(have)
	if !slices.Equal(want, have) {
		t.Errorf("rows differ from the same question of aggregate_records:\ngot  %q\nwant %q", have, want)
	}
}

// scanRows reads every row, each value into a new variable of its
// column's scan type.
func scanRows(t *testing.T, rows driver.Rows) [][]any {
	t.Helper()
	var all [][]any
	for rows.Next() {
		vals := make([]any, len(rows.ColumnTypes()))
		for i, ct := range rows.ColumnTypes() {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			t.Fatal(err)
		}
		all = append(all, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return all
}

func runQuery(t *testing.T, conn clickhouse.Conn, what, sql string) [][]any {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, sql)
	}
	defer rows.Close()
	var all [][]any
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		all = append(all, []any{v})
	}
	return all
}

// TestReadinessDashboardUsesTheReadinessRules checks that the readiness
// dashboard classifies with the very SQL of `dmarcd readiness`.
func TestReadinessDashboardUsesTheReadinessRules(t *testing.T) {
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	for _, d := range loadDashboards(t) {
		if d.file != "readiness.json" {
			continue
		}
		n := 0
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if strings.Contains(tg.RawSQL, "AS class") {
					n++
					if !strings.Contains(norm(tg.RawSQL), norm(chsql.ClassRule)) {
						t.Errorf("panel %q: class expression differs from chsql.ClassRule", p.Title)
					}
					if !strings.Contains(norm(tg.RawSQL), norm(knownSelectors)) {
						t.Errorf("panel %q: known selectors differ from chsql.KnownSelectors without failed authentication:\n%s", p.Title, knownSelectors)
					}
				}
			}
		}
		if n == 0 {
			t.Fatal("readiness.json: no panel classifies")
		}
		// The evidence `dmarcd readiness` uses: the data rows of reports
		// whose mail failed authentication (report_key chsql.AuthFailKey)
		// are left out of every panel.
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				q := norm(tg.RawSQL)
				switch {
				case strings.Contains(q, "FROM aggregate_outcomes") && !strings.Contains(q, "WHERE report_key = ''"),
					strings.Contains(q, "by_source = 0") && !strings.Contains(q, "report_key != '"+chsql.AuthFailKey+"'"):
					t.Errorf("panel %q counts reports whose mail failed authentication:\n%s", p.Title, tg.RawSQL)
				}
			}
		}
		return
	}
	t.Fatal("readiness.json not found")
}

var metricRe = regexp.MustCompile(`\b(dmarcd?_[a-z_]+|up)\b\s*[{\[)]`)

// metricNames returns the metric names a PromQL expression selects.
func metricNames(expr string) []string {
	var l []string
	for _, m := range metricRe.FindAllStringSubmatch(expr, -1) {
		l = append(l, m[1])
	}
	return l
}

var known struct {
	once  sync.Once
	names map[string]bool
}

// knownMetric says whether dmarcd exports name: the names declared in
// internal/lib/metrics, internal/app/daemon and internal/product/gauges (histograms with
// their _bucket, _sum and _count), and Prometheus' own up.
func knownMetric(t *testing.T, name string) bool {
	known.once.Do(func() {
		known.names = map[string]bool{"up": true}
		for _, n := range gauges.MetricNames {
			known.names[n] = true
		}
		root := testenv.ModuleRoot()
		for _, dir := range []string{"internal/lib/metrics", "internal/app/daemon"} {
			files, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
			for _, f := range files {
				if strings.HasSuffix(f, "_test.go") {
					continue
				}
				b, _ := os.ReadFile(f)
				for _, m := range regexp.MustCompile(`"(dmarcd?_[a-z_]+)"`).FindAllStringSubmatch(string(b), -1) {
					known.names[m[1]] = true
					for _, s := range []string{"_bucket", "_sum", "_count"} {
						known.names[m[1]+s] = true
					}
				}
			}
		}
	})
	return known.names[name]
}

// TestPrometheusPanelsUseExportedMetricsAndParse checks every Prometheus
// expression of the dashboards: its metrics exist, and promtool parses it
// (as a recording rule of a temporary rule file, Grafana's variables
// replaced).
func TestPrometheusPanelsUseExportedMetricsAndParse(t *testing.T) {
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.Datasource.Type != promType {
					continue
				}
				names := metricNames(tg.Expr)
				if len(names) == 0 {
					t.Errorf("%s: panel %q: no metric in %s", d.file, p.Title, tg.Expr)
				}
				for _, n := range names {
					if !knownMetric(t, n) {
						t.Errorf("%s: panel %q: metric %s is not exported by dmarcd", d.file, p.Title, n)
					}
				}
				e := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*").Replace(tg.Expr)
				rules = append(rules, rule{Record: fmt.Sprintf("dashboard:expr_%d", len(rules)), Expr: e})
			}
		}
	}
	if len(rules) == 0 {
		t.Fatal("no Prometheus panels")
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboards", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "exprs.yml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, dir, "check", "rules", "exprs.yml")
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T, path string) []alertRule {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var l []alertRule
	for _, g := range f.Groups {
		l = append(l, g.Rules...)
	}
	return l
}

package compat

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/product/attrib"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck/checkdb"
	"github.com/dmarcd/dmarcd/internal/product/gauges"
	"github.com/dmarcd/dmarcd/internal/product/gauges/gaugedb"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/product/summary"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

// capture is a fresh database on the ClickHouse 18.16 server whose every
// statement sent by dmarcd is logged: the DSN given to the store and to the
// dmarcd binary carries the settings log_queries=1 (so query_log records it
// whatever the server's profile says) and a client name made for this test
// (client_info_product), which tells its statements from those of other
// tests on the same server.
type capture struct {
	addr, db string
	dsn      string      // the logged DSN: clickhouse://addr/db?log_queries=1&...
	token    string      // in the client name of every logged connection
	conn     driver.Conn // logged, on db: the dashboards' queries
	admin    driver.Conn // not logged, on db: query_log, SHOW CREATE, OPTIMIZE
	http     http18
}

func newCapture(t *testing.T) *capture {
	t.Helper()
	plain := testenv.ClickHouse(t)
	u, err := url.Parse(plain)
	if err != nil {
		t.Fatal(err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	c := &capture{addr: u.Host, db: strings.TrimPrefix(u.Path, "/"), token: "dmarcd-compat-" + hex.EncodeToString(rnd[:])}
	c.dsn = plain + "?log_queries=1&client_info_product=" + c.token + "/1"
	hp, err := httpPort(c.addr)
	if err != nil {
		if testenv.InCI() {
			t.Fatal(err)
		}
		t.Skip(err.Error() + " (skipped: CI is not \"true\")")
	}
	c.http = http18{base: "http://127.0.0.1:" + hp + "/", db: c.db}
	// The store creates the database; the connections below need it.
	st := c.openStore(t, 0)
	st.Close()
	c.conn = openConn(t, c.dsn)
	c.admin = openConn(t, plain)
	return c
}

func openConn(t *testing.T, dsn string) driver.Conn {
	t.Helper()
	o, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// openStore opens the store on the logged DSN; batchRows 0 is the default.
func (c *capture) openStore(t *testing.T, batchRows int) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), c.dsn, store.Options{Logger: slog.New(slog.DiscardHandler), BatchRows: batchRows})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// httpPort finds the HTTP port of the 18.16 server whose native address is
// addr: CLICKHOUSE_HTTP_PORT when `scripts/clickhouse.sh run` (make test)
// started it, else the env file scripts/clickhouse.sh wrote in the server's
// folder (testenv starts servers in $TMPDIR/dmarcd-test-clickhouse-*).
// Results are read over HTTP in TSV, as the engine prints them, because the
// native protocol's client cannot read every type (AggregateFunction).
func httpPort(addr string) (string, error) {
	if p := os.Getenv("CLICKHOUSE_HTTP_PORT"); p != "" && os.Getenv(testenv.EnvClickHouseAddr) == addr {
		return p, nil
	}
	envs, _ := filepath.Glob(filepath.Join(os.TempDir(), "dmarcd-*clickhouse*", "env"))
	for _, f := range envs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		vars := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				vars[k] = v
			}
		}
		if vars[testenv.EnvClickHouseAddr] == addr && vars["CLICKHOUSE_HTTP_PORT"] != "" {
			return vars["CLICKHOUSE_HTTP_PORT"], nil
		}
	}
	return "", fmt.Errorf("no HTTP port known for the ClickHouse server at %s: run the test under scripts/clickhouse.sh run (it exports CLICKHOUSE_HTTP_PORT)", addr)
}

// http18 runs statements on the 18.16 server's HTTP interface, in db.
type http18 struct{ base, db string }

// raw runs sql and returns the server's output.
func (h http18) raw(sql string) (string, error) {
	resp, err := http.Post(h.base+"?database="+url.QueryEscape(h.db), "text/plain", strings.NewReader(sql))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _, _ := strings.Cut(string(b), "\n")
		return "", fmt.Errorf("18.16: %s", strings.TrimSpace(msg))
	}
	return string(b), nil
}

// query runs sql and returns its columns and TSV rows, as testenv.Engine's
// Query does on 26.x.
func (h http18) query(sql string) (result, error) {
	sql = strings.TrimRight(strings.TrimSpace(sql), ";")
	out, err := h.raw(sql + "\nFORMAT TSVWithNamesAndTypes")
	if err != nil {
		return result{}, err
	}
	return parseTSV(out)
}

// parseTSV splits TSVWithNamesAndTypes output (values stay TSV-escaped).
func parseTSV(out string) (result, error) {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 2 {
		return result{}, fmt.Errorf("TSVWithNamesAndTypes output without its two header lines: %q", out)
	}
	names, types := strings.Split(lines[0], "\t"), strings.Split(lines[1], "\t")
	if len(names) != len(types) {
		return result{}, fmt.Errorf("%d column names but %d types", len(names), len(types))
	}
	var r result
	for i := range names {
		r.cols = append(r.cols, testenv.Column{Name: names[i], Type: types[i]})
	}
	for _, l := range lines[2:] {
		f := strings.Split(l, "\t")
		if len(f) != len(names) {
			return result{}, fmt.Errorf("row of %d fields, want %d: %q", len(f), len(names), l)
		}
		r.rows = append(r.rows, f)
	}
	return r, nil
}

// The seeded data: what dmarcd stores for two domains over ten days up to
// two days ago, a report whose mail failed authentication, the corpus' TLS
// and failure reports, attributions of some source IPs and DNS record
// changes.
var seedDomains = []string{"example.com", "example.org"}

// forgedStore stores what it is given as if its mail had failed
// authentication on arrival (auth_result 'fail').
type forgedStore struct{ ingest.Store }

func (f forgedStore) WriteAggregate(ctx context.Context, h *aggregate.Header, meta store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	meta.AuthResult, meta.AuthDetail = "fail", "seeded as forged"
	return f.Store.WriteAggregate(ctx, h, meta, next)
}

// seeded is what seed wrote that the readers are asked about.
type seeded struct {
	inputs []string // input names as stored
	months []string // partitions (YYYYMM) of the generated reports
}

func seed(t *testing.T, st *store.Store) seeded {
	t.Helper()
	ctx := context.Background()
	var s seeded
	p := ingest.New(st, ingest.Options{Source: "file", Privacy: ingest.Privacy{Key: []byte("k")}})
	process := func(p *ingest.Pipeline, name string, data []byte) {
		o := p.Process(ctx, name, bytes.NewReader(data))
		if o.Status != ingest.Stored && o.Status != ingest.Duplicate {
			t.Fatalf("%s: %s %s", name, o.Status, o.Reason)
		}
		s.inputs = append(s.inputs, name)
	}
	start := time.Now().UTC().AddDate(0, 0, -12)
	months := map[string]bool{}
	for i, d := range seedDomains {
		files, err := gen.Generate(gen.Options{Domain: d, Days: 10, Seed: int64(3 + i), Start: start})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			process(p, d+"/"+f.Name, f.Data)
			for _, r := range f.Reports {
				months[r.Begin.Format("200601")] = true
			}
		}
	}
	for m := range months {
		s.months = append(s.months, m)
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
		process(p, rel, b)
	}
	more, err := gen.Generate(gen.Options{Domain: seedDomains[0], Days: 1, Seed: 9, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	forged := ingest.New(forgedStore{st}, ingest.Options{Source: "file", Privacy: ingest.Privacy{Key: []byte("k")}})
	process(forged, "forged/"+more[0].Name, more[0].Data)
	seedDNSRecords(t, st)
	seedAttributions(t, st)
	return s
}

// seedDNSRecords writes what the daemon's periodic check stores when the
// DMARC record of the first domain goes from p=none to p=quarantine.
func seedDNSRecords(t *testing.T, st *store.Store) {
	t.Helper()
	first := time.Now().UTC().AddDate(0, 0, -10).Truncate(time.Second)
	change := first.Add(72 * time.Hour)
	d, o := seedDomains[0], seedDomains[1]
	err := checkdb.WriteDNSRecords(context.Background(), st, []checkdb.DNSRecord{
		{Domain: d, Kind: "dmarc", Name: "_dmarc." + d, Value: "v=DMARC1; p=none", Initial: true, Change: "first seen: v=DMARC1; p=none", CheckedAt: first},
		{Domain: d, Kind: "spf", Name: d, Value: "v=spf1 -all", Initial: true, Change: "first seen: v=spf1 -all", CheckedAt: first},
		{Domain: o, Kind: "dmarc", Name: "_dmarc." + o, Value: "v=DMARC1; p=reject", Previous: "v=DMARC1; p=none", Change: "p=none → p=reject", CheckedAt: change},
		{Domain: d, Kind: "dmarc", Name: "_dmarc." + d, Value: "v=DMARC1; p=quarantine", Previous: "v=DMARC1; p=none", Change: "p=none → p=quarantine", CheckedAt: change},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// seedAttributions attributes every other unattributed source IP, as the
// daemon's attribution pass would (PTR, SPF, geo, known source).
func seedAttributions(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	ips, err := attrib.UnattributedIPs(ctx, st, 40)
	if err != nil {
		t.Fatal(err)
	}
	var l []attrib.SourceAttribution
	for i, ip := range ips {
		if i%2 == 1 {
			continue
		}
		l = append(l, attrib.SourceAttribution{IP: ip.IP, PTR: fmt.Sprintf("mx%d.sender.example", i), PTRConfirmed: i%4 == 0,
			SPFDomain: ip.Domains[0], SPFMechanism: "include", SPFIncludes: []string{"_spf.sender.example"},
			Country: "DE", ASN: uint32(64500 + i), ASOrg: "Sender AS", KnownSource: map[bool]string{true: "Sender"}[i%4 == 0],
			KnownAuthorised: i%8 == 0, CheckedAt: time.Now().UTC().Truncate(time.Second)})
	}
	if len(l) == 0 {
		t.Fatal("no source IP to attribute")
	}
	if err := attrib.WriteAttributions(ctx, st, l); err != nil {
		t.Fatal(err)
	}
}

// storeReaders are the exported methods of *store.Store that read or
// keep the store in shape: each is called here, on the seeded data, so
// that its statements are captured; every other method is listed in
// storeNotReaders with what covers it.
func storeReaders(s seeded) map[string]func(ctx context.Context, st *store.Store) error {
	return map[string]func(ctx context.Context, st *store.Store) error{
		"BeginAttempt": func(ctx context.Context, st *store.Store) error {
			_, err := st.BeginAttempt(ctx, "file", "compat/attempt")
			return err
		},
		// An attempt in hand marked alone, whose count is of deaths alone.
		"AloneAttempt": func(ctx context.Context, st *store.Store) error {
			if _, err := st.BeginAttempt(ctx, "file", "compat/alone"); err != nil {
				return err
			}
			if _, err := st.AloneAttempt(ctx, "file", "compat/alone"); err != nil {
				return err
			}
			return st.EndAttempt(ctx, "file", "compat/alone")
		},
		"EndAttempt": func(ctx context.Context, st *store.Store) error { return st.EndAttempt(ctx, "file", "compat/attempt") },
		// A chunk's attempts, whose rows and counts share statements.
		"BeginAttempts": func(ctx context.Context, st *store.Store) error {
			_, err := st.BeginAttempts(ctx, "imap", []string{"compat/1", "compat/2", "compat/3"})
			return err
		},
		"EndAttempts": func(ctx context.Context, st *store.Store) error {
			return st.EndAttempts(ctx, "imap", []string{"compat/1", "compat/2", "compat/3"})
		},
		"InputStatuses": func(ctx context.Context, st *store.Store) error {
			_, err := st.InputStatuses(ctx, s.inputs[:10])
			return err
		},
		"Ping": func(ctx context.Context, st *store.Store) error { return st.Ping(ctx) },
		// Nothing is that old: Prune reads the partitions and drops none.
		"Prune": func(ctx context.Context, st *store.Store) error {
			_, err := st.Prune(ctx, 150*365*24*time.Hour)
			return err
		},
		"RebuildRollup": func(ctx context.Context, st *store.Store) error { return st.RebuildRollup(ctx, s.months[:1]) },
		"RollupGaps":    func(ctx context.Context, st *store.Store) error { _, err := st.RollupGaps(ctx); return err },
	}
}

// productReaders are the readers of internal/product, each called here on
// the seeded data through the store's Query (chsql.Querier), so that their
// statements are captured.
func productReaders() map[string]func(ctx context.Context, st *store.Store) error {
	now := time.Now().UTC()
	month := now.AddDate(0, 0, -31)
	d := seedDomains[0]
	return map[string]func(ctx context.Context, st *store.Store) error{
		"attrib.AttributionsOf": func(ctx context.Context, st *store.Store) error {
			ips, err := attrib.UnattributedIPs(ctx, st, 5)
			if err != nil {
				return err
			}
			l := []string{"192.0.2.1"}
			for _, ip := range ips {
				l = append(l, ip.IP)
			}
			_, err = attrib.AttributionsOf(ctx, st, l)
			return err
		},
		"attrib.SourceAttributions": func(ctx context.Context, st *store.Store) error {
			_, err := attrib.SourceAttributions(ctx, st)
			return err
		},
		"attrib.UnattributedIPs": func(ctx context.Context, st *store.Store) error {
			_, err := attrib.UnattributedIPs(ctx, st, 100)
			return err
		},
		"checkdb.CheckSelectorsOf": func(ctx context.Context, st *store.Store) error {
			_, err := checkdb.CheckSelectorsOf(ctx, st, d, 20)
			return err
		},
		"checkdb.DKIMSelectorsOf": func(ctx context.Context, st *store.Store) error {
			_, err := checkdb.DKIMSelectorsOf(ctx, st, d)
			return err
		},
		"checkdb.DNSRecords": func(ctx context.Context, st *store.Store) error {
			_, err := checkdb.DNSRecords(ctx, st, d)
			return err
		},
		"checkdb.DomainTraffic": func(ctx context.Context, st *store.Store) error {
			_, _, err := checkdb.DomainTraffic(ctx, st, d)
			return err
		},
		"checkdb.LatestDNSRecords": func(ctx context.Context, st *store.Store) error {
			_, err := checkdb.LatestDNSRecords(ctx, st, d)
			return err
		},
		"checkdb.RecentPolicyDomains": func(ctx context.Context, st *store.Store) error {
			_, err := checkdb.RecentPolicyDomains(ctx, st, month)
			return err
		},
		"gaugedb.ReadDomains": func(ctx context.Context, st *store.Store) error {
			_, err := gaugedb.ReadDomains(ctx, st, month, now)
			return err
		},
		"gaugedb.ReadLastReportsByDomain": func(ctx context.Context, st *store.Store) error {
			_, err := gaugedb.ReadLastReportsByDomain(ctx, st, month)
			return err
		},
		"gaugedb.ReadLastReportsByOrg": func(ctx context.Context, st *store.Store) error {
			_, err := gaugedb.ReadLastReportsByOrg(ctx, st, month)
			return err
		},
		"readiness.ReadFailedAuth": func(ctx context.Context, st *store.Store) error {
			_, err := readiness.ReadFailedAuth(ctx, st, month, now)
			return err
		},
		"readiness.ReadIPs": func(ctx context.Context, st *store.Store) error {
			_, err := readiness.ReadIPs(ctx, st, month, now)
			return err
		},
		"readiness.ReadPolicies": func(ctx context.Context, st *store.Store) error {
			_, err := readiness.ReadPolicies(ctx, st, month, now)
			return err
		},
		"readiness.ReadUnverified": func(ctx context.Context, st *store.Store) error {
			_, err := readiness.ReadUnverified(ctx, st, month, now)
			return err
		},
		"readiness.ReadSources": func(ctx context.Context, st *store.Store) error {
			_, err := readiness.ReadSources(ctx, st, month, now, readiness.Options{})
			return err
		},
		"readiness.ReadSources IncludeFailedAuth": func(ctx context.Context, st *store.Store) error {
			_, err := readiness.ReadSources(ctx, st, month, now, readiness.Options{IncludeFailedAuth: true})
			return err
		},
		"summary.Read": func(ctx context.Context, st *store.Store) error { _, err := summary.Read(ctx, st, month); return err },
	}
}

// storeNotReaders are the exported methods of *store.Store that the
// capture does not call itself, and why; the writers run while seeding,
// so their statements are captured too.
var storeNotReaders = map[string]string{
	"Close":          "no statement",
	"Database":       "no statement",
	"Instance":       "no statement",
	"Migrate":        "runs in store.Open (captured)",
	"LogInput":       "runs while seeding (captured)",
	"PrepareBatch":   "the INSERTs of attrib and checkdb, run while seeding (captured)",
	"Query":          "the statements of productReaders (captured)",
	"QueryRow":       "the statements of productReaders (captured)",
	"WriteAggregate": "runs while seeding (captured)",
	"WriteFailure":   "runs while seeding (captured)",
	"WriteTLSRPT":    "runs while seeding (captured)",
}

// runCommands builds the dmarcd binary and runs its reading commands on
// the logged DSN: summary and readiness, human and JSON.
func runCommands(t *testing.T, dsn string) {
	t.Helper()
	root := testenv.ModuleRoot()
	bin := filepath.Join(t.TempDir(), "dmarcd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/dmarcd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/dmarcd: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"summary"}, {"summary", "--all", "--json"},
		{"readiness"}, {"readiness", "--json"}, {"readiness", seedDomains[0]},
		{"readiness", "--json", "--include-failed-auth", "--days", "60", seedDomains[1]},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "DMARCD_CLICKHOUSE_DSN="+dsn)
		cmd.Dir = t.TempDir()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("dmarcd %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		if out.Len() == 0 {
			t.Fatalf("dmarcd %s printed nothing", strings.Join(args, " "))
		}
	}
}

// runGauges computes the daemon's gauges once on the store.
func runGauges(t *testing.T, st *store.Store) {
	t.Helper()
	g := gauges.New(gauges.Reader{Q: st}, 0, 0, slog.New(slog.DiscardHandler))
	if err := g.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// dashboardQuery is one ClickHouse query of a dashboard: a panel's or an
// annotation's rawSql, or a template variable's query.
type dashboardQuery struct{ where, sql string }

const chPlugin = "grafana-clickhouse-datasource"

// dashboardQueries returns every ClickHouse query of dashboards/grafana:
// each object with a rawSql (only the ClickHouse plugin's targets have
// one), and each template variable of the ClickHouse data source.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(testenv.ModuleRoot(), "dashboards", "grafana", "*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards in dashboards/grafana")
	}
	var l []dashboardQuery
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var walk func(where string, v any)
		walk = func(where string, v any) {
			switch x := v.(type) {
			case map[string]any:
				if title, ok := x["title"].(string); ok {
					where += "/" + title
				} else if name, ok := x["name"].(string); ok {
					where += "/" + name
				}
				if sql, ok := x["rawSql"].(string); ok {
					l = append(l, dashboardQuery{where, sql})
				}
				if ds, ok := x["datasource"].(map[string]any); ok && ds["type"] == chPlugin && x["type"] == "query" {
					if sql, ok := x["query"].(string); ok {
						l = append(l, dashboardQuery{where + " (variable)", sql})
					}
				}
				for _, c := range x {
					walk(where, c)
				}
			case []any:
				for _, c := range x {
					walk(where, c)
				}
			}
		}
		walk(filepath.Base(f), v)
	}
	return l
}

// The time range and domain the dashboard queries run with.
var (
	rangeFrom = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	rangeTo   = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

// leftVariable finds a macro or variable that expand left in a query.
var leftVariable = regexp.MustCompile(`\$[{_A-Za-z]`)

var timeFilterRe = regexp.MustCompile(`\$__timeFilter\(\s*([^)]+?)\s*\)`)

// expand replaces the macros of grafana-clickhouse-datasource v4 as
// dashboards/dashboards_test.go's expand does ($__timeFilter(c) is "c >=
// toDateTime(FROM) AND c <= toDateTime(TO)", $__fromTime and $__toTime are
// toDateTime(...)), and the domain variable (percent-encoding leaves a plain
// domain as it is).
func expand(sql, domain string) string {
	f, to := fmt.Sprintf("toDateTime(%d)", rangeFrom.Unix()), fmt.Sprintf("toDateTime(%d)", rangeTo.Unix())
	sql = timeFilterRe.ReplaceAllString(sql, "$1 >= "+f+" AND $1 <= "+to)
	return strings.NewReplacer("$__fromTime", f, "$__toTime", to, "${domain:percentencode}", domain, "${domain}", domain).Replace(sql)
}

// runDashboards runs every dashboard query, for each seeded domain, on the
// logged connection, and returns how many queries it ran.
func runDashboards(t *testing.T, conn driver.Conn) int {
	t.Helper()
	qs := dashboardQueries(t)
	if len(qs) < 20 {
		t.Fatalf("only %d ClickHouse queries found in the dashboards", len(qs))
	}
	for _, q := range qs {
		for _, d := range seedDomains {
			sql := expand(q.sql, d)
			if leftVariable.MatchString(sql) {
				t.Fatalf("%s: unexpanded macro or variable in %s", q.where, sql)
			}
			rows, err := conn.Query(context.Background(), sql)
			if err != nil {
				t.Fatalf("%s on 18.16: %v\n%s", q.where, err, sql)
			}
			rows.Close()
		}
	}
	return len(qs)
}

// statement is a distinct statement dmarcd sent, as query_log has it.
type statement struct {
	sql  string
	kind string // its first keyword, upper case: SELECT, WITH, INSERT, ...
}

var leadingNoise = regexp.MustCompile(`^(\s+|--[^\n]*\n|/\*[\s\S]*?\*/|\()+`)

// firstKeyword is the statement's first word, comments and "(" skipped.
func firstKeyword(sql string) string {
	s := leadingNoise.ReplaceAllString(sql, "")
	end := strings.IndexFunc(s, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') })
	if end < 0 {
		end = len(s)
	}
	return strings.ToUpper(s[:end])
}

// statements reads from query_log the distinct statements of the logged
// connections that finished (type 2, QueryFinish, on 18.16), in the order
// they were first sent.
func (c *capture) statements(t *testing.T) []statement {
	t.Helper()
	ctx := context.Background()
	if err := c.admin.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}
	rows, err := c.admin.Query(ctx, `SELECT query FROM system.query_log
		WHERE type = 2 AND is_initial_query = 1 AND position(client_name, ?) > 0
		GROUP BY query ORDER BY min(event_time), query`, c.token)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var l []statement
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			t.Fatal(err)
		}
		l = append(l, statement{sql: q, kind: firstKeyword(q)})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return l
}

var (
	literalRe = regexp.MustCompile(`'(?:[^'\\]|\\.)*'`)
	numberRe  = regexp.MustCompile(`\b[0-9]+(?:\.[0-9]+)?\b|\b[0-9a-f]{16,}\b`)
)

// shape is a statement with its literals (strings, numbers, long hex
// names) and spacing made one: the same query asked with other values.
func shape(sql string) string {
	s := literalRe.ReplaceAllString(sql, "'?'")
	s = numberRe.ReplaceAllString(s, "?")
	return strings.Join(strings.Fields(s), " ")
}

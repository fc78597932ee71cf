package dashboards

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/parse/valid"
)

// listener counts the connections a test's hostile SQL makes to a local
// port (ClickHouse's url() table function, an outside listener in a real
// attack).
type listener struct {
	ln   net.Listener
	port int
	conn chan net.Addr // the remote address of each connection accepted
}

func listen(t *testing.T) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, conn: make(chan net.Addr, 1024)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(l.conn)
				return
			}
			l.conn <- c.RemoteAddr()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return l
}

// connectionsSoFar returns how many connections reached l before this
// call: it connects itself and counts those accepted before its own (the
// kernel hands connections to Accept in the order they were made), so that
// a connection not yet accepted is not missed.
func (l *listener) connectionsSoFar(t *testing.T) int {
	t.Helper()
	c, err := net.Dial("tcp", l.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := 0
	for a := range l.conn {
		if a.String() == c.LocalAddr().String() {
			return n
		}
		n++
	}
	t.Fatal("listener closed")
	return n
}

// waitConnection waits for the next connection to l.
func (l *listener) waitConnection(t *testing.T, what string) {
	t.Helper()
	select {
	case <-l.conn:
	case <-time.After(time.Minute): // a guard against a hung test, not a timing assumption
		t.Fatalf("%s: no connection to the listener", what)
	}
}

// urlPayload is SQL that makes ClickHouse connect to the listener on port.
func urlPayload(port int) string {
	return fmt.Sprintf("policy_domain IN (SELECT a FROM url('http://127.0.0.1:%d/x', CSV, 'a String'))", port)
}

// hostileDomains are policy domains a forged report (or another writer)
// may have stored: each tries to end the string literal of a query's
// domain condition, and those with url() make ClickHouse call the
// listener on port when they do.
func hostileDomains(port int) []string {
	return []string{
		"it's.example",
		`trailing-backslash.example\`,
		"x' OR 1=1 --",
		`x\' OR 1=1 --`,
		fmt.Sprintf("!x'); SELECT * FROM url('http://127.0.0.1:%d/x', CSV, 'a String')--", port),
		"!x' OR " + urlPayload(port) + " --",
		`\' OR ` + urlPayload(port) + " --",
		`x\\' OR ` + urlPayload(port) + " --",
		"new\nline.example",
		"nul\x00.example",
		"%27 OR 1=1 --", // percent-encoded already: decoded once, it is itself
		strings.Repeat("a", 1023) + "'",
	}
}

// sqlHex returns s as an SQL expression that no byte of s can break.
func sqlHex(s string) string { return "unhex('" + hex.EncodeToString([]byte(s)) + "')" }

// copyDomain copies the rows of domain in every table with a policy_domain
// (dns_records: domain) column to each of the other domains, as if their
// reports had been stored too.
func copyDomain(t *testing.T, conn driver.Conn, domain string, to []string) {
	t.Helper()
	ctx := context.Background()
	cols := map[string][]string{} // table -> insertable columns in order
	key := map[string]string{}    // table -> its domain column
	rows, err := conn.Query(ctx, `SELECT c.table, c.name FROM system.columns AS c
		WHERE c.database = currentDatabase() AND c.default_kind NOT IN ('MATERIALIZED', 'ALIAS')
		AND c.table IN (SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, name string
		if err := rows.Scan(&table, &name); err != nil {
			t.Fatal(err)
		}
		cols[table] = append(cols[table], name)
		if name == "policy_domain" || (name == "domain" && table == "dns_records") {
			key[table] = name
		}
	}
	rows.Close()
	if len(key) < 5 {
		t.Fatalf("tables with a domain: %v; want the aggregate, TLS, failure and DNS tables", key)
	}
	for table, k := range key {
		for _, d := range to {
			sel := make([]string, len(cols[table]))
			for i, c := range cols[table] {
				sel[i] = c
				if c == k {
					// No alias: it would stand for the column in WHERE.
					sel[i] = sqlHex(d)
				}
			}
			q := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s = %s",
				table, strings.Join(cols[table], ", "), strings.Join(sel, ", "), table, k, sqlHex(domain))
			if err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("copying %s to %q: %v", table, d, err)
			}
		}
	}
}

// printRows prints rows as a sorted list of lines, floats to 9 digits
// (sums added in another order differ in the last bits), with every
// occurrence of domain replaced by as.
func printRows(rows [][]any, domain, as string) []string {
	var l []string
	for _, r := range rows {
		var b strings.Builder
		for _, v := range r {
			v = reflect.Indirect(reflect.ValueOf(v)).Interface()
			switch f := v.(type) {
			case float64:
				if math.IsNaN(f) {
					b.WriteString("NaN|")
					continue
				}
				fmt.Fprintf(&b, "%.9g|", f)
			default:
				fmt.Fprintf(&b, "%v|", v)
			}
		}
		l = append(l, strings.ReplaceAll(b.String(), domain, as))
	}
	slices.Sort(l)
	return l
}

// TestHostileDomainsStayStringsInEveryDashboardQuery stores the rows of
// example.com again under hostile policy domains (quotes, backslashes,
// SQL that calls url(), a newline, a NUL, 1 KiB), then runs every
// ClickHouse query of every dashboard with each of them as the domain
// variable's value, expanded as Grafana expands it. Each query must run,
// return exactly what it returns for example.com (its rows, for that
// domain only), and no query may connect to the listener. The domain
// variable's own query must offer none of them.
func TestHostileDomainsStayStringsInEveryDashboardQuery(t *testing.T) {
	s := seedStore(t)
	conn := openConn(t, s.dsn)
	l := listen(t)
	hostile := hostileDomains(l.port)
	copyDomain(t, conn, testDomain, hostile)
	ctx := context.Background()

	run := func(t *testing.T, sql string) ([][]any, error) {
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		return scanRows(t, rows), nil
	}
	n := 0
	for _, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Datasource.Type != chType {
				continue
			}
			q, _ := v.Query.(string)
			for _, r := range runQuery(t, conn, d.file+" variable "+v.Name, expand(q, rangeFrom, rangeTo, testDomain)) {
				if dom := r[0].(string); slices.Contains(hostile, dom) || valid.Domain(dom) != nil {
					t.Errorf("%s: variable %s offers %s", d.file, v.Name, valid.Quote(dom, 80))
				}
			}
		}
		for _, p := range append(d.Panels, annotationPanels(d)...) {
			for _, tg := range p.Targets {
				if tg.Datasource.Type != chType || len(varRefs(tg.RawSQL)) == 0 {
					continue
				}
				key := d.file + "/" + p.Title
				t.Run(key, func(t *testing.T) {
					wantRows, err := run(t, expand(tg.RawSQL, rangeFrom, rangeTo, testDomain))
					if err != nil {
						t.Fatalf("for %s: %v", testDomain, err)
					}
					want := printRows(wantRows, testDomain, testDomain)
					for _, dom := range hostile {
						sql := expand(tg.RawSQL, rangeFrom, rangeTo, dom)
						rows, err := run(t, sql)
						n++
						if err != nil {
							t.Errorf("domain %s: %v\n%s", valid.Quote(dom, 80), err, sql)
							continue
						}
						if got := printRows(rows, dom, testDomain); !slices.Equal(got, want) {
							t.Errorf("domain %s: %d rows, not those of %s alone (%d rows)\n%s", valid.Quote(dom, 80), len(got), testDomain, len(want), sql)
						}
					}
				})
			}
		}
	}
	if n == 0 {
		t.Fatal("no dashboard query ran")
	}
	if c := l.connectionsSoFar(t); c != 0 {
		t.Errorf("%d connections to the listener from %d queries: a domain became SQL", c, n)
	}
}

// TestDomainVariableOffersValidDomainsMostMessagesFirst checks the domain
// variable's query of every dashboard on stored policy domains that
// valid.Domain accepts and refuses (a leading "!" that sorts first, label
// and name lengths at and past their limits, empty labels, quotes): it must
// offer exactly those valid.Domain accepts, the one with the most messages
// of reports whose mail did not fail authentication first (Grafana selects
// the first option by default; the variables keep the query's order).
func TestDomainVariableOffersValidDomainsMostMessagesFirst(t *testing.T) {
	s := seedStore(t)
	conn := openConn(t, s.dsn)
	ctx := context.Background()
	label63, label64 := strings.Repeat("a", 63), strings.Repeat("b", 64)
	name253 := strings.Repeat(label63+".", 3) + strings.Repeat("c", 61) // 253 bytes
	samples := []string{
		"!first.example", "UPPER.Example", "under_score.example", "-hyphen.example", label63 + ".example",
		label64 + ".example", name253, name253 + "d", "trailing.dot.", "a..b.example", ".lead.example",
		"it's.example", "space .example", "é.example", "nul\x00.example", "",
	}
	for _, d := range samples {
		// One report of example.com again, under d.
		q := "INSERT INTO aggregate_reports SELECT " + reportColumnsWithDomain(t, conn, sqlHex(d)) +
			" FROM aggregate_reports WHERE policy_domain = " + sqlHex(testDomain) + " LIMIT 1"
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%q: %v", d, err)
		}
	}
	// What the variable must offer, in order, asked without its query.
	rows, err := conn.Query(ctx, `SELECT policy_domain, sumIf(message_count, auth_result != 'fail') AS m
		FROM aggregate_reports GROUP BY policy_domain ORDER BY m DESC, policy_domain`)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for rows.Next() {
		var d string
		var m uint64
		if err := rows.Scan(&d, &m); err != nil {
			t.Fatal(err)
		}
		if valid.Domain(d) == nil {
			want = append(want, d)
		}
	}
	rows.Close()
	for _, d := range samples[1:5] {
		if !slices.Contains(want, d) {
			t.Fatalf("valid.Domain refuses %q: the samples are wrong", d)
		}
	}
	n := 0
	for _, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			if v.Datasource.Type != chType {
				continue
			}
			n++
			q, _ := v.Query.(string)
			var got []string
			for _, r := range runQuery(t, conn, d.file+" variable "+v.Name, expand(q, rangeFrom, rangeTo, testDomain)) {
				got = append(got, r[0].(string))
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: variable %s offers\n%q\nwant\n%q", d.file, v.Name, got, want)
			}
			if got[0] != testDomain {
				t.Errorf("%s: variable %s: first option %q, want %s (the most messages)", d.file, v.Name, got[0], testDomain)
			}
			if v.Sort != 0 || v.Multi || v.IncludeAll {
				t.Errorf("%s: variable %s: sort %d, multi %v, includeAll %v; want 0 (the query's order: most messages first), false, false", d.file, v.Name, v.Sort, v.Multi, v.IncludeAll)
			}
		}
	}
	if n == 0 {
		t.Fatal("no ClickHouse variable")
	}
}

// reportColumnsWithDomain returns the columns of aggregate_reports for a
// SELECT, with expr in place of policy_domain.
func reportColumnsWithDomain(t *testing.T, conn driver.Conn, expr string) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT name FROM system.columns
		WHERE database = currentDatabase() AND table = 'aggregate_reports'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var l []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		if c == "policy_domain" {
			c = expr // no alias: it would stand for the column in WHERE
		}
		l = append(l, c)
	}
	return strings.Join(l, ", ")
}

// TestSQLStringFormatLetsABackslashEndTheLiteralInClickHouse is why the
// dashboards percent-encode their variables rather than use Grafana's
// sqlstring format: sqlstring doubles single quotes but leaves a
// backslash, which ClickHouse reads as an escape, so a domain \' OR ...
// ends the literal. A raw ${domain} is worse still. The percent-encoded
// form finds each hostile domain's own row and nothing else.
func TestSQLStringFormatLetsABackslashEndTheLiteralInClickHouse(t *testing.T) {
	_, dsn := openStore(t)
	conn := openConn(t, dsn)
	ctx := context.Background()
	l := listen(t)
	hostile := hostileDomains(l.port)
	for _, d := range append([]string{"a.example", "b.example"}, hostile...) {
		if err := conn.Exec(ctx, "INSERT INTO aggregate_reports (report_key, policy_domain) SELECT "+sqlHex(d)+", "+sqlHex(d)); err != nil {
			t.Fatal(err)
		}
	}
	count := func(cond, d string) (uint64, error) {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM aggregate_reports WHERE "+expandVariables(cond, map[string]string{"domain": d})).Scan(&n)
		return n, err
	}
	const safe = "policy_domain = decodeURLComponent('${domain:percentencode}')"
	for _, d := range hostile {
		if n, err := count(safe, d); err != nil || n != 1 {
			t.Errorf("%s for %s: %d rows, %v; want its one row", safe, valid.Quote(d, 80), n, err)
		}
	}
	if c := l.connectionsSoFar(t); c != 0 {
		t.Fatalf("%d connections to the listener from the percent-encoded queries", c)
	}

	// sqlstring: \' OR 1=1 -- selects every row.
	if n, err := count("policy_domain = ${domain:sqlstring}", `x\' OR 1=1 --`); err != nil || n < 3 {
		t.Errorf("sqlstring: %d rows, %v; want every row (the literal ended at the backslash)", n, err)
	}
	// sqlstring: a trailing backslash leaves the literal open.
	if _, err := count("policy_domain = ${domain:sqlstring}", `trailing-backslash.example\`); err == nil {
		t.Error("sqlstring: a trailing backslash gave no syntax error")
	}
	// raw (the plugin's default for ${domain}): url() is called.
	_, _ = count("policy_domain = '${domain}'", "!x' OR "+urlPayload(l.port)+" --")
	l.waitConnection(t, "raw ${domain} with url()")
}

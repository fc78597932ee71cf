package dashboards

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

// sourcesByIPOfRecords is what the Sources dashboard's "Sources by IP and
// From domain" table must return: the 1,000 (IP, From domain) pairs with
// the most messages, asked of every valid record by grouping them all. The
// panel gets there without grouping them all (source_pair buckets,
// docs/dashboards.md).
const sourcesByIPOfRecords = `SELECT source_ip, header_from, header_from_org, sum(message_count) AS messages,
sumIf(message_count, has(spf_results, 'pass')) AS spf_pass, sumIf(message_count, has(dkim_results, 'pass')) AS dkim_pass,
sumIf(message_count, spf_aligned_relaxed = 1) AS spf_aligned, sumIf(message_count, dkim_aligned_relaxed = 1) AS dkim_aligned,
sumIf(message_count, dmarc_pass = 1) AS dmarc_pass,
arrayStringConcat(arraySort(arrayFilter(s -> s != '', groupUniqArrayArray(dkim_selectors))), ' ') AS selectors
FROM aggregate_records
WHERE policy_domain = decodeURLComponent('${domain:percentencode}') AND record_error = '' AND $__timeFilter(date_begin)
GROUP BY source_ip, header_from, header_from_org
ORDER BY messages DESC, source_ip, header_from
LIMIT 1000`

// bigDomain is the domain of TestSourcesByIPFindsTheTopPairsWithoutGroupingAll.
const bigDomain = "big.example"

// sourceRows yields one record per source IP of ips, each with its count.
func sourceRows(ips []string, counts []uint64) func() (*enrich.Record, error) {
	i := 0
	return func() (*enrich.Record, error) {
		if i == len(ips) {
			return nil, io.EOF
		}
		pass := i%2 == 0
		r := &enrich.Record{
			Record: &aggregate.Record{
				Index: i, SourceIP: ips[i], Count: counts[i], Disposition: "none",
				EvalDKIM: map[bool]string{true: "pass", false: "fail"}[pass], EvalSPF: "fail",
				HeaderFrom:   bigDomain,
				EnvelopeFrom: aggregate.Opt{Value: "bounce.other.example", Set: true},
				DKIM:         []aggregate.DKIMResult{{Domain: bigDomain, Selector: "s1", Result: map[bool]string{true: "pass", false: "fail"}[pass]}},
				SPF:          []aggregate.SPFResult{{Domain: "bounce.other.example", Scope: "mfrom", Result: "pass"}},
			},
			HeaderFromOrg: bigDomain, DKIMAlignedRelaxed: pass, DKIMAlignedStrict: pass, DMARCPass: pass,
		}
		i++
		return r, nil
	}
}

// TestSourcesByIPFindsTheTopPairsWithoutGroupingAll seeds a domain whose
// pairs take every road of the Sources by IP query: 1,200 pairs with one
// heavy record each (more than 40 times the mean record, so they set the
// bound), 20 pairs whose 30 records, one a day, are each light but add up
// to the largest totals (found only through their buckets' sums in
// aggregate_pair_buckets), and 60,000 pairs of one message (buckets the
// bound rules out). The panel, for the domain and for all domains, must
// return exactly what grouping every record returns, while grouping the
// pairs of fewer buckets than the data occupies; and still the same
// without aggregate_pair_buckets.
func TestSourcesByIPFindsTheTopPairsWithoutGroupingAll(t *testing.T) {
	st, dsn := openStore(t)
	ctx := context.Background()
	day0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	report := func(id string, day int, ips []string, counts []uint64) {
		t.Helper()
		begin := day0.AddDate(0, 0, day).Add(18 * time.Hour) // in the evening: see from below
		h := &aggregate.Header{Schema: aggregate.SchemaRFC7489, Version: "1.0", OrgName: "receiver.example",
			Email: "dmarc@receiver.example", ReportID: id, Begin: begin, End: begin.Add(24*time.Hour - time.Second),
			Domain: bigDomain, P: aggregate.Opt{Value: "none", Set: true}, Errors: []string{}}
		meta := store.InputMeta{Source: "file", InputName: id, InputSHA256: fmt.Sprintf("%064x", len(id)*1000003+day)}
		if _, err := st.WriteAggregate(ctx, h, meta, sourceRows(ips, counts)); err != nil {
			t.Fatalf("writing %s: %v", id, err)
		}
	}
	var ips []string
	var counts []uint64
	for i := range 1200 { // heavy: 300,000 + i messages once
		ips, counts = append(ips, fmt.Sprintf("10.1.%d.%d", i/256, i%256)), append(counts, uint64(300000+i))
	}
	for i := range 60000 { // noise: one message each
		ips, counts = append(ips, fmt.Sprintf("10.3.%d.%d", i/256, i%256)), append(counts, 1)
	}
	report("heavy-and-noise", 0, ips, counts)
	for d := range 30 { // spread: 50,000 + j messages a day for 30 days
		ips, counts = nil, nil
		for j := range 20 {
			ips, counts = append(ips, fmt.Sprintf("10.2.0.%d", j)), append(counts, uint64(50000+j))
		}
		report(fmt.Sprintf("spread-%02d", d), d, ips, counts)
	}

	var panelSQL string
	for _, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			if d.file == "sources.json" && p.Title == "Sources by IP and From domain" {
				panelSQL = p.Targets[0].RawSQL
			}
		}
	}
	if panelSQL == "" {
		t.Fatal("no Sources by IP panel in sources.json")
	}
	conn := openConn(t, dsn)

	// The range starts at noon of the first day, after the midnight of the
	// days of aggregate_pair_buckets and before the reports' begin: the
	// panel must still count that day's buckets.
	from := day0.Add(12 * time.Hour)
	oneDomain := expand(panelSQL, from, rangeTo, bigDomain)
	allDomains := expand(allDomainsOf(panelSQL), from, rangeTo, bigDomain)
	want := expand(sourcesByIPOfRecords, from, rangeTo, bigDomain)
	for name, sql := range map[string]string{"one domain": oneDomain, "all domains": allDomains} {
		t.Run(name, func(t *testing.T) {
			rows, err := conn.Query(ctx, sql)
			if err != nil {
				t.Fatalf("%v\n%s", err, sql)
			}
			got := scanRows(t, rows)
			rows.Close()
			if len(got) != 1000 {
				t.Fatalf("%d rows, want 1000", len(got))
			}
			// The 20 spread pairs (1.5 million messages each) come first.
			for i, r := range got[:20] {
				if ip := fmt.Sprint(*r[0].(*string)); !strings.HasPrefix(ip, "10.2.0.") {
					t.Errorf("row %d is %s, want a spread pair 10.2.0.x", i, ip)
				}
			}
			sameAsRecords(t, conn, want, got)
		})
	}

	// The buckets the panel groups: fewer than the data occupies, or the
	// test would not tell the bounded search from grouping every pair.
	excluded := subqueryAfter(t, oneDomain, "PREWHERE toUInt16(source_pair) NOT IN (")
	var grouped, occupied uint64
	q := "SELECT uniqExact(toUInt16(source_pair)) FROM aggregate_sources WHERE by_source = 1 AND toUInt16(source_pair) NOT IN (" + excluded + ")"
	if err := conn.QueryRow(ctx, q).Scan(&grouped); err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	if err := conn.QueryRow(ctx, "SELECT uniqExact(toUInt16(source_pair)) FROM aggregate_sources WHERE by_source = 1").Scan(&occupied); err != nil {
		t.Fatal(err)
	}
	if grouped == 0 || grouped*10 > occupied {
		t.Errorf("the panel groups the pairs of %d buckets of the %d occupied, want a few", grouped, occupied)
	}
	t.Logf("buckets grouped: %d of %d occupied", grouped, occupied)

	// Without aggregate_pair_buckets for the range (months stored before
	// migration 0013 and not rebuilt yet) no bucket is ruled out: the panel
	// groups every pair, slowly but right.
	if err := conn.Exec(ctx, "ALTER TABLE aggregate_pair_buckets DROP PARTITION ID '202610'"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, oneDomain)
	if err != nil {
		t.Fatalf("%v\n%s", err, oneDomain)
	}
	got := scanRows(t, rows)
	rows.Close()
	sameAsRecords(t, conn, want, got)
}

// allDomainsOf removes the domain condition from a panel's SQL, as
// `make bench-queries` does for its all-domains figures.
func allDomainsOf(sql string) string {
	return strings.ReplaceAll(sql, "policy_domain = decodeURLComponent('${domain:percentencode}') AND ", "")
}

// subqueryAfter returns the text inside the parentheses that open at the
// end of prefix in sql.
func subqueryAfter(t *testing.T, sql, prefix string) string {
	t.Helper()
	i := strings.Index(sql, prefix)
	if i < 0 {
		t.Fatalf("no %q in\n%s", prefix, sql)
	}
	start, depth := i+len(prefix), 1
	for j := start; j < len(sql); j++ {
		switch sql[j] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return sql[start:j]
			}
		}
	}
	t.Fatalf("unbalanced parentheses after %q", prefix)
	return ""
}

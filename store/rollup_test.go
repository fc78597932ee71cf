package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/lib/chsql"
	"github.com/dmarcd/dmarcd/internal/product/gauges/gaugedb"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/align"
)

// totals are sums that aggregate_rollup and aggregate_records must agree on.
type totals struct {
	records, messages, pass, dkimRelaxed, dkimStrict, spfRelaxed, spfStrict, strictPass, invalid uint64
	groups                                                                                       uint64 // distinct (domain, begin, header_from, ip, org)
}

func (a totals) String() string {
	return fmt.Sprintf("records %d messages %d pass %d dkim r/s %d/%d spf r/s %d/%d strict %d invalid %d groups %d",
		a.records, a.messages, a.pass, a.dkimRelaxed, a.dkimStrict, a.spfRelaxed, a.spfStrict, a.strictPass, a.invalid, a.groups)
}

func scanTotals(t testing.TB, s *Store, q string) totals {
	t.Helper()
	var x totals
	err := s.conn.QueryRow(context.Background(), q).Scan(&x.records, &x.messages, &x.pass, &x.dkimRelaxed,
		&x.dkimStrict, &x.spfRelaxed, &x.spfStrict, &x.strictPass, &x.invalid, &x.groups)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	return x
}

// recordTotals sums the records; groups counts the keys of the rollup's
// grain bySource.
func recordTotals(t testing.TB, s *Store, bySource int) totals {
	ip := "''"
	if bySource == 1 {
		ip = "source_ip"
	}
	return scanTotals(t, s, `SELECT toUInt64(countIf(record_error = '')), sumIf(message_count, record_error = ''),
		sumIf(message_count, record_error = '' AND dmarc_pass = 1),
		sumIf(message_count, record_error = '' AND dkim_aligned_relaxed = 1), sumIf(message_count, record_error = '' AND dkim_aligned_strict = 1),
		sumIf(message_count, record_error = '' AND spf_aligned_relaxed = 1), sumIf(message_count, record_error = '' AND spf_aligned_strict = 1),
		sumIf(message_count, record_error = '' AND (dkim_aligned_strict = 1 OR spf_aligned_strict = 1)),
		toUInt64(countIf(record_error != '')), toUInt64(uniqExact(policy_domain, date_begin, header_from, `+ip+`, org_name))
		FROM aggregate_records`)
}

func rollupTotals(t testing.TB, s *Store, bySource int) totals {
	return scanTotals(t, s, `SELECT sum(record_count), sum(message_count), sum(pass_messages), sum(dkim_relaxed_messages), sum(dkim_strict_messages),
		sum(spf_relaxed_messages), sum(spf_strict_messages), sum(strict_pass_messages), sum(invalid_records),
		toUInt64(uniqExactIf((policy_domain, date_begin, header_from, source_ip, org_name), report_count = 0))
		FROM aggregate_rollup WHERE by_source = `+fmt.Sprint(bySource))
}

// selectorTotals sums the DKIM "d=/selector" passes (selector set) of
// valid records and the known-selector rows of the rollup: occurrences,
// messages, distinct (domain, begin, pair, org, report) keys and a
// checksum of those keys.
func selectorTotals(t testing.TB, s *Store) (records, rollup [4]uint64) {
	t.Helper()
	ctx := context.Background()
	q := `SELECT toUInt64(uniqExact(policy_domain, date_begin, ds, org_name, report_key)),
		toUInt64(groupBitXor(cityHash64(policy_domain, date_begin, ds, org_name, report_key)))
		FROM (SELECT DISTINCT policy_domain, date_begin, ds, org_name, report_key FROM aggregate_records ARRAY JOIN
			arrayFilter((x, r) -> r = 'pass' AND NOT endsWith(x, '/'), arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results) AS ds
			WHERE record_error = '')`
	occ := `SELECT toUInt64(count()), sum(message_count) FROM aggregate_records ARRAY JOIN
		arrayFilter((x, r) -> r = 'pass' AND NOT endsWith(x, '/'), arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results) AS ds
		WHERE record_error = ''`
	if err := s.conn.QueryRow(ctx, q).Scan(&records[2], &records[3]); err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	if err := s.conn.QueryRow(ctx, occ).Scan(&records[0], &records[1]); err != nil {
		t.Fatalf("%v\n%s", err, occ)
	}
	rq := `SELECT toUInt64(uniqExact(policy_domain, date_begin, header_from, org_name, report_key)),
		toUInt64(groupBitXor(h)) FROM (SELECT DISTINCT policy_domain, date_begin, header_from, org_name, report_key,
			cityHash64(policy_domain, date_begin, header_from, org_name, report_key) AS h FROM aggregate_rollup WHERE by_source = 2)`
	if err := s.conn.QueryRow(ctx, rq).Scan(&rollup[2], &rollup[3]); err != nil {
		t.Fatalf("%v\n%s", err, rq)
	}
	sq := "SELECT sum(record_count), sum(message_count) FROM aggregate_rollup WHERE by_source = 2"
	if err := s.conn.QueryRow(ctx, sq).Scan(&rollup[0], &rollup[1]); err != nil {
		t.Fatalf("%v\n%s", err, sq)
	}
	return records, rollup
}

// checkRollup fails unless the rollup agrees with the records and holds one
// marker per report row.
func checkRollup(t testing.TB, s *Store) {
	t.Helper()
	if r, a := recordTotals(t, s, 0), rollupTotals(t, s, 0); r != a {
		t.Errorf("rollup (by_source = 0) differs from records:\nrecords %v\nrollup  %v", r, a)
	}
	// The per-source grain lives in aggregate_sources, not in aggregate_rollup.
	if n := queryUint(t, s, "SELECT count() FROM aggregate_rollup WHERE by_source = 1"); n != 0 {
		t.Errorf("%d rollup rows of by_source = 1, want none", n)
	}
	// Known selectors (by_source = 2): per report and passing pair, the
	// occurrences and their messages, as the records have them.
	rs, as := selectorTotals(t, s)
	if rs != as {
		t.Errorf("rollup (by_source = 2) differs from records:\nrecords %v\nrollup  %v", rs, as)
	}
	reports := queryUint(t, s, "SELECT count() FROM aggregate_reports WHERE record_count > 0")
	markers := queryUint(t, s, "SELECT sum(report_count) FROM aggregate_rollup")
	if markers != reports {
		t.Errorf("rollup counts %d reports, aggregate_reports %d with records", markers, reports)
	}
	// aggregate_sources (per source) and aggregate_outcomes (per outcome):
	// every group's record and message sums (and distinct source IPs in
	// aggregate_outcomes) as the records have them (groups, totals and a
	// checksum of each group's key and sums), and one marker per report.
	for _, table := range []string{"aggregate_sources", "aggregate_outcomes"} {
		if r, a := sourcesTotals(t, s, "aggregate_records", table), sourcesTotals(t, s, table, table); r != a {
			t.Errorf("%s differs from records:\nrecords %v\n%s %v", table, r, table, a)
		}
		if markers := queryUint(t, s, "SELECT sum(report_count) FROM "+table); markers != reports {
			t.Errorf("%s counts %d reports, aggregate_reports %d with records", table, markers, reports)
		}
	}
	// aggregate_pair_buckets: per UTC day and pair bucket, the records'
	// valid records and messages, and one marker per report.
	if r, a := pairBucketTotals(t, s, "aggregate_records"), pairBucketTotals(t, s, "aggregate_pair_buckets"); r != a {
		t.Errorf("aggregate_pair_buckets differs from records:\nrecords %v\nbuckets %v", r, a)
	}
	if markers := queryUint(t, s, "SELECT sum(report_count) FROM aggregate_pair_buckets WHERE kind = 0"); markers != reports {
		t.Errorf("aggregate_pair_buckets counts %d reports, aggregate_reports %d with records", markers, reports)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_sources WHERE by_source = 0 AND report_count = 0"); n != 0 {
		t.Errorf("%d aggregate_sources rows without source IP (by_source = 0), want none (aggregate_outcomes has them)", n)
	}
}

// pairBucketTotals sums the valid records of table (aggregate_records or
// aggregate_pair_buckets) per UTC day and pair bucket: groups, records,
// messages and a checksum of every group's key and sums.
func pairBucketTotals(t testing.TB, s *Store, table string) [4]uint64 {
	t.Helper()
	day, bucket, records, where := "toStartOfDay(date_begin)", "toUInt16(cityHash64(source_ip, header_from))", "toUInt64(count())", "record_error = ''"
	if table == "aggregate_pair_buckets" {
		day, bucket, records, where = "date_begin", "bucket", "sum(record_count)", "kind = 1 AND report_count = 0"
	}
	q := `SELECT toUInt64(count()), sum(r), sum(m), toUInt64(groupBitXor(h)) FROM (
		SELECT ` + records + ` AS r, sum(message_count) AS m, cityHash64(d, b, r, m) AS h
		FROM ` + table + ` WHERE ` + where + ` GROUP BY ` + day + ` AS d, ` + bucket + ` AS b)`
	var x [4]uint64
	if err := s.conn.QueryRow(context.Background(), q).Scan(&x[0], &x[1], &x[2], &x[3]); err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	return x
}

// sourcesTotals sums table (aggregate_records, aggregate_sources or
// aggregate_outcomes) by the keys of grain (aggregate_sources: per source
// IP; aggregate_outcomes: without it, with the distinct IPs, as the sketch
// counts them and as source_ipsMap lists them with their records): groups,
// records, messages and a checksum of every group's key and sums.
func sourcesTotals(t testing.TB, s *Store, table, grain string) [4]uint64 {
	t.Helper()
	ip, records, ips, where := "source_ip, ", "toUInt64(count())", "toUInt64(0)", "record_error = ''"
	ipMap := "tuple(emptyArrayUInt32(), emptyArrayUInt64())"
	if grain == "aggregate_outcomes" {
		ip, ips = "", "toUInt64(uniqExact(source_ip))"
		ipMap = "sumMap([toUInt32(cityHash64(source_ip))], [toUInt64(1)])"
	}
	switch table { // every data row, of reports whose mail failed authentication too (AuthFailKey)
	case "aggregate_sources":
		records, where = "sum(record_count)", "by_source = 1 AND report_count = 0"
	case "aggregate_outcomes":
		records, ips, where = "sum(record_count)", "toUInt64(uniqMerge(source_ip_state))", "report_count = 0"
		ipMap = "sumMap(source_ipsMap.ip_hash, source_ipsMap.records)"
	}
	key := "policy_domain, date_begin, header_from, header_from_org, " + ip + sourcesOutcome
	q := `SELECT toUInt64(count()), sum(r), sum(m), toUInt64(groupBitXor(h)) FROM (
		SELECT ` + records + ` AS r, sum(message_count) AS m, ` + ips + ` AS n, ` + ipMap + ` AS p,
			cityHash64(` + key + `, r, m, n, p.1, p.2) AS h
		FROM ` + table + ` WHERE ` + where + ` GROUP BY ` + key + `)`
	var x [4]uint64
	if err := s.conn.QueryRow(context.Background(), q).Scan(&x[0], &x[1], &x[2], &x[3]); err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	return x
}

// mixedRows yields n rows of genRows with varied alignment, and every 97th
// record invalid.
func mixedRows(n int, domain string) func() (*enrich.Record, error) {
	next := genRows(n, domain)
	i := 0
	return func() (*enrich.Record, error) {
		r, err := next()
		if err != nil {
			return r, err
		}
		r.DKIMAlignedStrict = i%3 == 0
		r.SPFAlignedRelaxed = i%5 == 0
		r.SPFAlignedStrict = i%10 == 0
		if i%97 == 5 {
			r.Invalid = "source_ip: not an IP address"
		}
		i++
		return r, nil
	}
}

func TestRollupEqualsRecordsForSmallAndLargeReports(t *testing.T) {
	s, _ := open(t, Options{BatchRows: 200})
	begin := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	write(t, s, header("google.com", "small-1", "example.com", begin), mixedRows(150, "example.com"))
	write(t, s, header("google.com", "small-2", "example.com", begin), mixedRows(150, "example.com"))
	write(t, s, header("Yahoo", "large-1", "example.org", begin.AddDate(0, 0, 1)), mixedRows(1000, "example.org"))
	write(t, s, header("Yahoo", "empty", "example.org", begin), mixedRows(0, "example.org"))
	// Duplicates add nothing.
	write(t, s, header("google.com", "small-1", "example.com", begin), mixedRows(150, "example.com"))
	write(t, s, header("Yahoo", "large-1", "example.org", begin.AddDate(0, 0, 1)), mixedRows(1000, "example.org"))
	if n := stagingTables(t, s); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
	checkRollup(t, s)
	// Merges sum the data rows of the two small reports and keep markers.
	for _, table := range []string{"aggregate_rollup", "aggregate_sources", "aggregate_outcomes", "aggregate_pair_buckets"} {
		if err := s.conn.Exec(context.Background(), "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	checkRollup(t, s)
	for _, table := range []string{"aggregate_sources", "aggregate_outcomes"} {
		want := sourcesTotals(t, s, "aggregate_records", table)[0]
		if n := queryUint(t, s, "SELECT count() FROM "+table+" WHERE report_key = ''"); n != want {
			t.Errorf("after OPTIMIZE FINAL %d %s data rows, want one per group (%d)", n, table, want)
		}
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_rollup WHERE report_key = '' AND by_source = 0"); n != rollupTotals(t, s, 0).groups {
		t.Errorf("after OPTIMIZE FINAL %d data rows of by_source 0, want one per group", n)
	}
}

// TestRollupOfLargeReportWithTooManyKeysIsSummedByClickHouse: a large
// report with more aggregate_rollup data rows than the writer sums itself
// (streamSumsKeys) has them and its pair buckets summed from its staged
// records, with the same rollup.
func TestRollupOfLargeReportWithTooManyKeysIsSummedByClickHouse(t *testing.T) {
	defer func(n int) { streamSumsKeys = n }(streamSumsKeys)
	streamSumsKeys = 2 // mixedRows has one header_from and two known selectors
	s, _ := open(t, Options{BatchRows: 200})
	begin := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	write(t, s, header("Yahoo", "large-keys", "example.org", begin), mixedRows(1000, "example.org"))
	write(t, s, header("google.com", "small-keys", "example.com", begin), mixedRows(150, "example.com"))
	if n := stagingTables(t, s); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
	checkRollup(t, s)
}

// authSplit sums the data rows of table (where) by whether their report's
// mail failed authentication (report_key AuthFailKey): messages of the
// others, then of those.
func authSplit(t testing.TB, s *Store, table, where string) [2]uint64 {
	t.Helper()
	return [2]uint64{
		queryUint(t, s, "SELECT sum(message_count) FROM "+table+" WHERE report_key = '' AND "+where),
		queryUint(t, s, "SELECT sum(message_count) FROM "+table+" WHERE report_key = ? AND "+where, AuthFailKey),
	}
}

// TestRollupKeepsApartReportsWhoseMailFailedAuthentication: the data rows
// of a report whose mail failed authentication carry report_key
// AuthFailKey in every rollup table, whichever path wrote them (one INSERT,
// staged large report, completion of stored records, rebuild), so that the
// readiness panels and gauges (report_key = ”) leave them out as `dmarcd
// readiness` does, and everything else still counts them.
func TestRollupKeepsApartReportsWhoseMailFailedAuthentication(t *testing.T) {
	s, _ := open(t, Options{BatchRows: 200})
	ctx := context.Background()
	begin := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	forged := InputMeta{Source: "file", AuthResult: "fail", AuthDetail: "test"}
	for _, w := range []struct {
		h    *aggregate.Header
		n    int
		meta InputMeta
	}{
		{header("google.com", "ok-small", "example.com", begin), 150, InputMeta{Source: "file", AuthResult: "pass"}},
		{header("google.com", "ok-unverified", "example.com", begin), 120, InputMeta{Source: "file"}},
		{header("forger", "forged-small", "example.com", begin), 150, forged},
		{header("forger", "forged-large", "example.com", begin.AddDate(0, 0, 1)), 1000, forged},
	} {
		if _, err := s.WriteAggregate(ctx, w.h, w.meta, mixedRows(w.n, "example.com")); err != nil {
			t.Fatal(err)
		}
	}
	checkRollup(t, s)
	records := [2]uint64{
		queryUint(t, s, "SELECT sum(message_count) FROM aggregate_records WHERE record_error = '' AND "+chsql.NotFailedAuth),
		queryUint(t, s, "SELECT sum(message_count) FROM aggregate_records WHERE record_error = '' AND "+chsql.FailedAuth),
	}
	if records[0] == 0 || records[1] == 0 {
		t.Fatalf("messages of reports whose mail passed or failed: %v, want both", records)
	}
	check := func(when string) {
		t.Helper()
		for _, x := range []struct{ table, where string }{
			{"aggregate_rollup", "by_source = 0"},
			{"aggregate_sources", "by_source = 1"},
			{"aggregate_outcomes", "1"},
			{"aggregate_pair_buckets", "kind = 1"},
		} {
			if got := authSplit(t, s, x.table, x.where); got != records {
				t.Errorf("%s: %s messages (others, failed authentication) %v, want %v as the records", when, x.table, got, records)
			}
		}
	}
	check("written")
	if err := s.RebuildRollup(ctx, nil); err != nil {
		t.Fatal(err)
	}
	check("rebuilt")
	checkRollup(t, s)

	// Completing reports whose records are stored (a writer died before
	// their rollups): the data key comes from the report's input.
	for _, table := range []string{"aggregate_rollup", "aggregate_sources", "aggregate_outcomes", "aggregate_pair_buckets"} {
		if err := s.conn.Exec(ctx, "ALTER TABLE "+table+" DROP PARTITION ID '202605'"); err != nil {
			t.Fatal(err)
		}
	}
	type stored struct {
		key, domain string
		begin       time.Time
		failed      uint8
	}
	var reports []stored
	if err := s.eachRow(ctx, "SELECT report_key, policy_domain, date_begin, toUInt8(auth_result = 'fail') FROM aggregate_reports", nil,
		func(scan func(...any) error) error {
			var r stored
			err := scan(&r.key, &r.domain, &r.begin, &r.failed)
			reports = append(reports, r)
			return err
		}); err != nil {
		t.Fatal(err)
	}
	for _, r := range reports {
		dataKey := ""
		if r.failed == 1 {
			dataKey = AuthFailKey
		}
		if err := s.completeRollup(ctx, s.plainRoute(), r.domain, r.begin, r.key, dataKey); err != nil {
			t.Fatal(err)
		}
	}
	check("completed")
	checkRollup(t, s)
}

func TestRollupRebuildRecomputesPartitions(t *testing.T) {
	s, _ := open(t, Options{BatchRows: 200})
	ctx := context.Background()
	mar := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)
	write(t, s, header("google.com", "r1", "example.com", mar), mixedRows(300, "example.com"))
	write(t, s, header("google.com", "r2", "example.com", mar.AddDate(0, 0, 1)), mixedRows(100, "example.com"))
	// As if the rollup were stale: a partition emptied, one with extra rows,
	// one with no records at all.
	for _, q := range []string{
		"ALTER TABLE aggregate_rollup DROP PARTITION ID '202603'",
		"ALTER TABLE aggregate_sources DROP PARTITION ID '202603'",
		"ALTER TABLE aggregate_outcomes DROP PARTITION ID '202603'",
		"ALTER TABLE aggregate_pair_buckets DROP PARTITION ID '202603'",
		"INSERT INTO aggregate_sources (policy_domain, date_begin, message_count, record_count) SELECT 'example.com', toDateTime('2026-04-02 00:00:00'), toUInt64(5), toUInt64(1)",
		"INSERT INTO aggregate_outcomes (policy_domain, date_begin, message_count, record_count, source_ip) SELECT 'example.com', toDateTime('2026-04-02 00:00:00'), toUInt64(5), toUInt64(1), '192.0.2.9'",
		"INSERT INTO aggregate_rollup (policy_domain, date_begin, message_count, record_count) SELECT 'example.com', toDateTime('2026-04-02 00:00:00'), toUInt64(5), toUInt64(1)",
		// An aggregate_outcomes row as versions before migration 0011 read:
		// three IPs in the sketch, the arrays computed from the one source_ip.
		"INSERT INTO aggregate_outcomes (policy_domain, date_begin, message_count, record_count, source_ip, source_ip_state, source_ipsMap.ip_hash, source_ipsMap.records) " +
			"SELECT 'example.com', toDateTime('2026-04-03 00:00:00'), toUInt64(5), toUInt64(3), '192.0.2.9', arrayReduce('uniqState', ['192.0.2.7', '192.0.2.8', '192.0.2.9']), [toUInt32(cityHash64('192.0.2.9'))], [toUInt64(1)]",
		// A per-source row as versions before aggregate_sources wrote them.
		"INSERT INTO aggregate_rollup (by_source, policy_domain, date_begin, source_ip, message_count, record_count) SELECT 1, 'example.com', toDateTime('2026-04-01 00:00:00'), '192.0.2.1', toUInt64(5), toUInt64(1)",
		"INSERT INTO aggregate_rollup (policy_domain, date_begin, message_count, record_count) SELECT 'example.com', toDateTime('2025-01-02 00:00:00'), toUInt64(5), toUInt64(1)",
	} {
		if err := s.conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	gaps, err := s.RollupGaps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"aggregate_outcomes/202603", "aggregate_outcomes/202604", "aggregate_pair_buckets/202603", "aggregate_rollup/202603", "aggregate_sources/202603"}; !slices.Equal(gaps, want) {
		t.Errorf("RollupGaps %q, want %q", gaps, want)
	}
	if err := s.RebuildRollup(ctx, nil); err != nil {
		t.Fatal(err)
	}
	checkRollup(t, s)
	if gaps, err := s.RollupGaps(ctx); err != nil || len(gaps) != 0 {
		t.Errorf("after the rebuild RollupGaps %q, %v; want none", gaps, err)
	}
	if n := stagingTables(t, s); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
	// Once more changes nothing; a duplicate after it adds nothing.
	if err := s.RebuildRollup(ctx, []string{"202603"}); err != nil {
		t.Fatal(err)
	}
	write(t, s, header("google.com", "r1", "example.com", mar), mixedRows(300, "example.com"))
	checkRollup(t, s)
	if err := s.RebuildRollup(ctx, []string{"2026-03"}); err == nil {
		t.Error("RebuildRollup accepted partition 2026-03")
	}
}

// The crash test re-executes this test binary as a writer that kills itself
// (SIGKILL) at one step of a report's commit.
const (
	envHelperDSN     = "DMARCD_TEST_WRITER_DSN"
	envHelperRecords = "DMARCD_TEST_WRITER_RECORDS"
)

// TestHelperWriter is the writer process of
// TestKilledCommitLeavesRollupEqualToRecords; it does nothing in a normal run.
func TestHelperWriter(t *testing.T) {
	dsn := os.Getenv(envHelperDSN)
	if dsn == "" {
		t.Skip("helper process of TestKilledCommitLeavesRollupEqualToRecords")
	}
	n, _ := strconv.Atoi(os.Getenv(envHelperRecords))
	// The retry after a kill finds the dead writer's claim: take it over
	// after 2 s rather than 30 (one writer at a time here).
	claimStale = 2 * time.Second
	s, err := Open(context.Background(), dsn, Options{BatchRows: 200, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := header("google.com", "killed-"+strconv.Itoa(n), "example.com", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	res, err := s.WriteAggregate(context.Background(), h, InputMeta{Source: "file"}, mixedRows(n, "example.com"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("STATUS", res.Status)
}

// runWriter runs the helper writer with a failpoint ("" for none) and
// returns whether it was killed, and its status line otherwise.
func runWriter(t *testing.T, dsn string, records int, fp string) (killed bool, status string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envHelperDSN+"="+dsn, envHelperRecords+"="+strconv.Itoa(records), EnvFailpoint+"="+fp)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, ""
		}
	}
	if err != nil {
		t.Fatalf("writer (failpoint %q): %v\n%s", fp, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "STATUS ") {
			return false, strings.TrimPrefix(l, "STATUS ")
		}
	}
	t.Fatalf("writer (failpoint %q) printed no status:\n%s", fp, out)
	return false, ""
}

// TestKilledCommitLeavesRollupEqualToRecords kills a writer between every
// step of a report's commit (a small report: one INSERT of records, one of
// rollup rows; a large one: staging tables attached), reruns it, and finds
// the report stored once with a rollup equal to its records.
func TestKilledCommitLeavesRollupEqualToRecords(t *testing.T) {
	if os.Getenv(envHelperDSN) != "" {
		t.Skip("in the helper process")
	}
	cases := []struct {
		records int
		steps   []string
	}{
		{150, []string{"after-records", "after-sources", "after-outcomes", "after-pair-buckets", "after-rollup", "after-report"}},
		{1000, []string{"after-staging", "after-records", "after-sources", "after-outcomes", "after-pair-buckets", "after-rollup", "after-report"}},
	}
	for _, c := range cases {
		for _, fp := range c.steps {
			t.Run(fmt.Sprintf("%d records/%s", c.records, fp), func(t *testing.T) {
				s, dsn := open(t, Options{})
				if killed, _ := runWriter(t, dsn, c.records, fp); !killed {
					t.Fatalf("the writer was not killed at %s", fp)
				}
				_, status := runWriter(t, dsn, c.records, "")
				want := string(StatusStored)
				if fp == "after-report" {
					want = string(StatusDuplicate)
				}
				if status != want {
					t.Errorf("rerun: status %s, want %s", status, want)
				}
				// A third run finds it stored.
				if _, status := runWriter(t, dsn, c.records, ""); status != string(StatusDuplicate) {
					t.Errorf("third run: status %s, want duplicate", status)
				}
				if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != uint64(c.records) {
					t.Errorf("%d records stored, want %d", n, c.records)
				}
				if n := queryUint(t, s, "SELECT count() FROM aggregate_reports"); n != 1 {
					t.Errorf("%d report rows, want 1", n)
				}
				checkRollup(t, s)
				if n := stagingTables(t, s); n != 0 {
					t.Errorf("%d staging tables left", n)
				}
			})
		}
	}
}

// TestGaugeStoppedPassingCountsSourcesThatLostAlignment pins
// GaugeStoppedPassingQuery: a source that passed the week before and fails
// in the window counts; a source still passing, a new failing source
// (spoofing), and a source below the message threshold do not.
func TestGaugeStoppedPassingCountsSourcesThatLostAlignment(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	r := align.Relaxed
	pass := func(ip string, n uint64) *enrich.Record {
		return authRow(ip, n, "example.com", []string{"example.com/s1/pass"}, []string{"example.com/pass"}, nil, r, r)
	}
	fail := func(ip string, n uint64) *enrich.Record {
		return authRow(ip, n, "example.com", []string{"example.com/s1/fail"}, []string{"amazonses.com/pass"}, nil, r, r)
	}
	day := time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC) // the window: this day
	for i := 1; i <= 7; i++ {
		write(t, s, header("google.com", fmt.Sprint("before-", i), "example.com", day.AddDate(0, 0, -i)), rowsOf(
			pass("192.0.2.1", 20), pass("192.0.2.2", 20), pass("192.0.2.4", 20), fail("192.0.2.4", 1)))
	}
	write(t, s, header("google.com", "window", "example.com", day), rowsOf(
		fail("192.0.2.1", 30),                       // stopped passing
		pass("192.0.2.2", 25), fail("192.0.2.2", 1), // still passing
		fail("203.0.113.5", 500), // never passed: spoofing, not this gauge
		fail("192.0.2.4", 5),     // too few messages
	))
	// Earlier than the 7 days before: ignored.
	write(t, s, header("google.com", "long-ago", "example.com", day.AddDate(0, 0, -9)), rowsOf(pass("203.0.113.5", 100)))

	got, err := gaugedb.ReadDomains(ctx, s, day, day.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].StoppedPassingSources != 1 || got[0].StoppedPassingMessages != 30 {
		t.Fatalf("got %+v, want example.com with 1 source and 30 messages that stopped passing", got)
	}
	// The week before: nothing stopped passing then.
	got, err = gaugedb.ReadDomains(ctx, s, day.AddDate(0, 0, -1), day)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].StoppedPassingSources != 0 {
		t.Fatalf("day before: got %+v, want no source that stopped passing", got)
	}
	// Windows longer than gaugedb.StoppedPassingMaxDays leave it at 0.
	got, err = gaugedb.ReadDomains(ctx, s, day.AddDate(0, 0, -29), day.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].StoppedPassingSources != 0 {
		t.Fatalf("30 days: got %+v, want the gauge not computed", got)
	}
}

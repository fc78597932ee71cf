package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/product/summary"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store/schema"
)

// TestMain runs the tests with testenv's servers. The long races of two
// writers and the cluster tests that spend their time in ClickHouse round
// trips call t.Parallel; tests that change the package's timing variables
// (claimPoll, claimStale) or stop a cluster node run alone.
func TestMain(m *testing.M) { testenv.Main(m) }

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// open opens a store in a fresh database of the test server.
func open(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	dsn := testenv.ClickHouse(t)
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dsn, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

func header(org, id, domain string, begin time.Time) *aggregate.Header {
	return &aggregate.Header{
		Schema:   aggregate.SchemaRFC7489,
		Version:  "1.0",
		OrgName:  org,
		Email:    "noreply-dmarc-support@" + org,
		ReportID: id,
		Begin:    begin.UTC(),
		End:      begin.Add(24*time.Hour - time.Second).UTC(),
		Domain:   domain,
		ADKIM:    aggregate.Opt{Value: "r", Set: true},
		ASPF:     aggregate.Opt{Value: "r", Set: true},
		P:        aggregate.Opt{Value: "none", Set: true},
		Pct:      aggregate.Opt{Value: "100", Set: true},
		Errors:   []string{},
	}
}

// genRows yields n rows; record i has count i%7+1 and source IP 192.0.2.(i%250),
// and passes DMARC when i is even.
func genRows(n int, domain string) func() (*enrich.Record, error) {
	ips := make([]string, 250)
	for i := range ips {
		ips[i] = fmt.Sprintf("192.0.2.%d", i)
	}
	i := 0
	return func() (*enrich.Record, error) {
		if i == n {
			return nil, io.EOF
		}
		pass := i%2 == 0
		evalDKIM := "fail"
		if pass {
			evalDKIM = "pass"
		}
		r := &enrich.Record{
			Record: &aggregate.Record{
				Index:        i,
				SourceIP:     ips[i%250],
				Count:        uint64(i%7 + 1),
				Disposition:  "none",
				EvalDKIM:     evalDKIM,
				EvalSPF:      "fail",
				HeaderFrom:   domain,
				EnvelopeFrom: aggregate.Opt{Value: "mail." + domain, Set: true},
				DKIM:         []aggregate.DKIMResult{{Domain: domain, Selector: "s1", Result: "pass"}, {Domain: "amazonses.com", Selector: "x", Result: "pass"}},
				SPF:          []aggregate.SPFResult{{Domain: "mail." + domain, Scope: "mfrom", Result: "pass"}},
			},
			HeaderFromOrg:      domain,
			DKIMAlignedRelaxed: pass,
			DKIMAlignedStrict:  pass,
			SPFAlignedRelaxed:  true,
			SPFAlignedStrict:   false,
			DMARCPass:          true,
		}
		r.DMARCPass = r.DKIMAlignedRelaxed || r.SPFAlignedRelaxed
		i++
		return r, nil
	}
}

func rowsOf(rs ...*enrich.Record) func() (*enrich.Record, error) {
	return func() (*enrich.Record, error) {
		if len(rs) == 0 {
			return nil, io.EOF
		}
		r := rs[0]
		rs = rs[1:]
		return r, nil
	}
}

// wantMessages is the sum of counts genRows yields for n rows.
func wantMessages(n int) uint64 {
	var m uint64
	for i := 0; i < n; i++ {
		m += uint64(i%7 + 1)
	}
	return m
}

func queryUint(t testing.TB, s *Store, q string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := s.conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

var meta = InputMeta{Source: "file", InputName: "test.xml", InputSHA256: strings.Repeat("ab", 32)}

func write(t testing.TB, s *Store, h *aggregate.Header, next func() (*enrich.Record, error)) WriteResult {
	t.Helper()
	res, err := s.WriteAggregate(context.Background(), h, meta, next)
	if err != nil {
		t.Fatalf("WriteAggregate(%s): %v", h.ReportID, err)
	}
	return res
}

var jan2024 = time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)

func TestMigrateTwiceIsNoOp(t *testing.T) {
	s, dsn := open(t, Options{})
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	s2, err := Open(ctx, dsn, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	s2.Close()

	list, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if got := queryUint(t, s, "SELECT count() FROM schema_migrations"); got != uint64(len(list)) {
		t.Errorf("schema_migrations has %d rows, want %d (one per migration)", got, len(list))
	}
	var version uint32
	var name string
	if err := s.conn.QueryRow(ctx, "SELECT version, name FROM schema_migrations ORDER BY version LIMIT 1").Scan(&version, &name); err != nil {
		t.Fatal(err)
	}
	if version != 1 || name != "init" {
		t.Errorf("first migration = %d %q, want 1 \"init\"", version, name)
	}
	for _, table := range []string{"aggregate_reports", "aggregate_records", "inputs", "schema_migrations"} {
		if n := queryUint(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", table); n != 1 {
			t.Errorf("table %s missing", table)
		}
	}
}

func TestDuplicateReportStoredOnce(t *testing.T) {
	s, _ := open(t, Options{})
	h := header("google.com", "1234567890", "example.com", jan2024)
	first := write(t, s, h, genRows(5, "example.com"))
	second := write(t, s, h, genRows(5, "example.com"))
	if first.Status != StatusStored || second.Status != StatusDuplicate {
		t.Errorf("statuses = %s, %s; want stored, duplicate", first.Status, second.Status)
	}
	for _, r := range []WriteResult{first, second} {
		if r.Records != 5 || r.Messages != wantMessages(5) || r.ReportKey != first.ReportKey {
			t.Errorf("result %+v: want 5 records, %d messages, key %s", r, wantMessages(5), first.ReportKey)
		}
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_reports"); n != 1 {
		t.Errorf("%d report rows, want 1", n)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 5 {
		t.Errorf("%d record rows, want 5", n)
	}
	if n := queryUint(t, s, "SELECT sum(message_count) FROM aggregate_records"); n != wantMessages(5) {
		t.Errorf("sum(message_count) = %d, want %d", n, wantMessages(5))
	}
}

func TestSameReportIDFromTwoReportersIsTwoReports(t *testing.T) {
	s, _ := open(t, Options{})
	a := write(t, s, header("google.com", "42", "example.com", jan2024), genRows(3, "example.com"))
	b := write(t, s, header("Yahoo", "42", "example.com", jan2024), genRows(3, "example.com"))
	if a.Status != StatusStored || b.Status != StatusStored || a.ReportKey == b.ReportKey {
		t.Errorf("results %+v, %+v: want two stored reports with different keys", a, b)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_reports"); n != 2 {
		t.Errorf("%d report rows, want 2", n)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 6 {
		t.Errorf("%d record rows, want 6", n)
	}
}

func TestRecordsWithSameSourceIPSurviveMerges(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	mk := func(from string, count uint64, dkim string) *enrich.Record {
		return &enrich.Record{Record: &aggregate.Record{SourceIP: "203.0.113.7", Count: count, Disposition: "none",
			EvalDKIM: dkim, EvalSPF: "pass", HeaderFrom: from,
			DKIM: []aggregate.DKIMResult{{Domain: from, Result: dkim}}}, HeaderFromOrg: "example.com", DMARCPass: true}
	}
	h := header("google.com", "same-ip", "example.com", jan2024)
	write(t, s, h, rowsOf(mk("example.com", 3, "pass"), mk("news.example.com", 4, "fail")))
	// Two more reports in other inserts, so that merges have parts to merge.
	write(t, s, header("google.com", "same-ip-2", "example.com", jan2024), rowsOf(mk("example.com", 3, "pass"), mk("example.com", 3, "pass")))
	write(t, s, header("google.com", "same-ip-2", "example.com", jan2024), rowsOf(mk("example.com", 3, "pass"), mk("example.com", 3, "pass")))

	check := func(when string) {
		t.Helper()
		if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 4 {
			t.Errorf("%s: %d records, want 4", when, n)
		}
		if n := queryUint(t, s, "SELECT sum(message_count) FROM aggregate_records"); n != 13 {
			t.Errorf("%s: sum(message_count) = %d, want 13", when, n)
		}
		if n := queryUint(t, s, "SELECT count() FROM aggregate_reports"); n != 2 {
			t.Errorf("%s: %d reports, want 2", when, n)
		}
		if n := queryUint(t, s, "SELECT sum(message_count) FROM aggregate_reports"); n != 13 {
			t.Errorf("%s: reports' sum(message_count) = %d, want 13", when, n)
		}
	}
	check("before merges")
	for _, table := range []string{"aggregate_records", "aggregate_reports"} {
		if err := s.conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			t.Fatalf("OPTIMIZE TABLE %s FINAL: %v", table, err)
		}
	}
	check("after OPTIMIZE FINAL")
	if n := queryUint(t, s, "SELECT count() FROM aggregate_reports FINAL"); n != 2 {
		t.Errorf("%d reports with FINAL, want 2", n)
	}
}

func TestCompletesReportAfterCrashBetweenRecordsAndReportRow(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	h := header("google.com", "crash", "example.com", jan2024)
	// The first attempt stored the records and died before the report row.
	if _, err := s.insertRecords(ctx, s.plainRoute(), h, aggregate.Key(h), "", genRows(7, "example.com")); err != nil {
		t.Fatal(err)
	}
	res := write(t, s, h, genRows(7, "example.com"))
	if res.Status != StatusStored || res.Records != 7 || res.Messages != wantMessages(7) {
		t.Errorf("retry: %+v, want stored, 7 records, %d messages", res, wantMessages(7))
	}
	again := write(t, s, h, genRows(7, "example.com"))
	if again.Status != StatusDuplicate {
		t.Errorf("third write: %s, want duplicate", again.Status)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 7 {
		t.Errorf("%d records, want 7", n)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_reports"); n != 1 {
		t.Errorf("%d reports, want 1", n)
	}
	if n := queryUint(t, s, "SELECT record_count FROM aggregate_reports"); n != 7 {
		t.Errorf("record_count = %d, want 7", n)
	}
}

func stagingTables(t testing.TB, s *Store) uint64 {
	t.Helper()
	return queryUint(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND startsWith(name, ?)", stagingPrefix)
}

func TestLargeReportGoesThroughStaging(t *testing.T) {
	s, _ := open(t, Options{BatchRows: 100})
	h := header("google.com", "large", "example.com", jan2024)
	res := write(t, s, h, genRows(1050, "example.com"))
	if res.Status != StatusStored || res.Records != 1050 || res.Messages != wantMessages(1050) {
		t.Errorf("%+v, want stored, 1050 records, %d messages", res, wantMessages(1050))
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 1050 {
		t.Errorf("%d records, want 1050", n)
	}
	if n := queryUint(t, s, "SELECT uniqExact(record_index) FROM aggregate_records"); n != 1050 {
		t.Errorf("%d distinct record_index, want 1050", n)
	}
	if n := queryUint(t, s, "SELECT sum(message_count) FROM aggregate_records"); n != wantMessages(1050) {
		t.Errorf("sum(message_count) = %d, want %d", n, wantMessages(1050))
	}
	if n := stagingTables(t, s); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
	if dup := write(t, s, h, genRows(1050, "example.com")); dup.Status != StatusDuplicate || dup.Records != 1050 {
		t.Errorf("second write: %+v, want duplicate of 1050 records", dup)
	}
	// Exactly BatchRows records take the one-INSERT path.
	if r := write(t, s, header("google.com", "exact", "example.com", jan2024), genRows(100, "example.com")); r.Records != 100 {
		t.Errorf("100-record report: %+v", r)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 1150 {
		t.Errorf("%d records, want 1150", n)
	}
}

func TestFailedReadStoresNothing(t *testing.T) {
	for _, n := range []int{5, 250} { // one INSERT, staging
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s, _ := open(t, Options{BatchRows: 100})
			gen := genRows(1000, "example.com")
			i := 0
			boom := errors.New("truncated report")
			next := func() (*enrich.Record, error) {
				if i == n {
					return nil, boom
				}
				i++
				return gen()
			}
			_, err := s.WriteAggregate(context.Background(), header("google.com", "broken", "example.com", jan2024), meta, next)
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want %v", err, boom)
			}
			if c := queryUint(t, s, "SELECT count() FROM aggregate_records"); c != 0 {
				t.Errorf("%d records stored from a failed report", c)
			}
			if c := queryUint(t, s, "SELECT count() FROM aggregate_reports"); c != 0 {
				t.Errorf("%d reports stored from a failed report", c)
			}
			if c := stagingTables(t, s); c != 0 {
				t.Errorf("%d staging tables left", c)
			}
		})
	}
}

func TestCancelledLargeWriteLeavesNothing(t *testing.T) {
	s, _ := open(t, Options{BatchRows: 100})
	ctx, cancel := context.WithCancel(context.Background())
	gen := genRows(1000, "example.com")
	i := 0
	next := func() (*enrich.Record, error) {
		if i == 450 {
			cancel()
		}
		i++
		return gen()
	}
	_, err := s.WriteAggregate(ctx, header("google.com", "cancelled", "example.com", jan2024), meta, next)
	if err == nil {
		t.Fatal("WriteAggregate with a cancelled context succeeded")
	}
	if c := queryUint(t, s, "SELECT count() FROM aggregate_records"); c != 0 {
		t.Errorf("%d records stored from a cancelled write", c)
	}
	if c := queryUint(t, s, "SELECT count() FROM aggregate_reports"); c != 0 {
		t.Errorf("%d reports stored from a cancelled write", c)
	}
	if c := stagingTables(t, s); c != 0 {
		t.Errorf("%d staging tables left", c)
	}
}

func TestOpenDropsOrphanedStagingTables(t *testing.T) {
	s, dsn := open(t, Options{})
	ctx := context.Background()
	if _, err := s.createStaging(ctx, s.plainRoute()); err != nil {
		t.Fatal(err)
	}
	if n := stagingTables(t, s); n != 1 {
		t.Fatalf("%d staging tables, want 1", n)
	}
	s2, err := Open(ctx, dsn, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if n := stagingTables(t, s); n != 0 {
		t.Errorf("%d staging tables after Open, want 0", n)
	}
}

func TestEmptyReportStoresReportRow(t *testing.T) {
	s, _ := open(t, Options{})
	h := header("google.com", "empty", "example.com", jan2024)
	if r := write(t, s, h, rowsOf()); r.Status != StatusStored || r.Records != 0 {
		t.Errorf("%+v, want stored with 0 records", r)
	}
	if r := write(t, s, h, rowsOf()); r.Status != StatusDuplicate {
		t.Errorf("%+v, want duplicate", r)
	}
}

func TestReportRowKeepsAbsentPolicyFieldsNull(t *testing.T) {
	s, _ := open(t, Options{})
	h := header("google.com", "policy", "example.com", jan2024)
	h.SP = aggregate.Opt{}                     // absent
	h.Fo = aggregate.Opt{Value: "", Set: true} // present, empty
	h.Errors = []string{"bad thing"}
	write(t, s, h, genRows(1, "example.com"))
	var p, sp, fo *string
	var errs []string
	var begin time.Time
	err := s.conn.QueryRow(context.Background(), "SELECT p, sp, fo, errors, date_begin FROM aggregate_reports").Scan(&p, &sp, &fo, &errs, &begin)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil || *p != "none" || sp != nil || fo == nil || *fo != "" {
		t.Errorf("p, sp, fo = %v, %v, %v; want none, NULL, \"\"", p, sp, fo)
	}
	if len(errs) != 1 || errs[0] != "bad thing" || !begin.Equal(h.Begin) {
		t.Errorf("errors %q, date_begin %v; want [bad thing], %v", errs, begin, h.Begin)
	}
}

func TestPruneDropsOnlyOldPartitions(t *testing.T) {
	s, _ := open(t, Options{})
	now := time.Now().UTC()
	old := time.Date(2020, 3, 10, 0, 0, 0, 0, time.UTC)
	write(t, s, header("google.com", "old", "example.com", old), genRows(3, "example.com"))
	write(t, s, header("google.com", "new", "example.com", now.Add(-48*time.Hour)), genRows(4, "example.com"))
	dropped, err := s.Prune(context.Background(), 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"aggregate_outcomes/202003", "aggregate_pair_buckets/202003", "aggregate_records/202003", "aggregate_reports/202003", "aggregate_rollup/202003", "aggregate_sources/202003"}
	if fmt.Sprint(dropped) != fmt.Sprint(want) {
		t.Errorf("dropped %q, want %q", dropped, want)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 4 {
		t.Errorf("%d records left, want 4 (the new report's)", n)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_reports WHERE report_id = 'new'"); n != 1 {
		t.Errorf("new report gone")
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_reports"); n != 1 {
		t.Errorf("%d reports left, want 1", n)
	}
	if dropped, err := s.Prune(context.Background(), 365*24*time.Hour); err != nil || len(dropped) != 0 {
		t.Errorf("second Prune: %q, %v; want nothing", dropped, err)
	}
}

func TestSummaryCountsAlignmentPerDomain(t *testing.T) {
	s, _ := open(t, Options{})
	recent := time.Now().UTC().Add(-72 * time.Hour).Truncate(24 * time.Hour)
	mk := func(ip string, count uint64, dkimR, dkimS, spfR, spfS bool) *enrich.Record {
		return &enrich.Record{Record: &aggregate.Record{SourceIP: ip, Count: count, Disposition: "none", HeaderFrom: "example.com"},
			HeaderFromOrg: "example.com", DKIMAlignedRelaxed: dkimR, DKIMAlignedStrict: dkimS,
			SPFAlignedRelaxed: spfR, SPFAlignedStrict: spfS, DMARCPass: dkimR || spfR}
	}
	write(t, s, header("google.com", "s1", "example.com", recent), rowsOf(
		mk("192.0.2.1", 10, true, true, true, false),
		mk("192.0.2.2", 5, false, false, false, false),
		mk("192.0.2.3", 7, false, false, false, false),
		mk("192.0.2.2", 1, false, false, false, false),
		&enrich.Record{Record: &aggregate.Record{SourceIP: "", Count: 99, Invalid: `source_ip "": not an IP address`}},
	))
	write(t, s, header("google.com", "s2", "example.org", recent), rowsOf(mk("198.51.100.1", 3, false, false, true, true)))
	write(t, s, header("google.com", "s0", "example.com", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)), rowsOf(mk("192.0.2.9", 1000, false, false, false, false)))

	got, err := summary.Read(context.Background(), s, recent.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []summary.DomainSummary{
		{Domain: "example.com", Messages: 23, DMARCPass: 10, DKIMRelaxed: 10, DKIMStrict: 10, SPFRelaxed: 10, SPFStrict: 0,
			WouldQuarantineOrReject: 13, TopFailing: []summary.SourceCount{{SourceIP: "192.0.2.3", Messages: 7}, {SourceIP: "192.0.2.2", Messages: 6}}},
		{Domain: "example.org", Messages: 3, DMARCPass: 3, SPFRelaxed: 3, SPFStrict: 3},
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("Summary:\n got %+v\nwant %+v", got, want)
	}
}

func TestLogInput(t *testing.T) {
	s, _ := open(t, Options{})
	in := InputRow{Time: jan2024, Source: "imap", Name: "<a@b>", SHA256: "00", Size: 123, Kind: "aggregate",
		Status: "stored", ReportKeys: []string{"k1", "k2"}}
	if err := s.LogInput(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if err := s.LogInput(context.Background(), InputRow{Source: "file", Name: "x", Status: "invalid", ReasonCode: "zip_bomb", Reason: "too big"}); err != nil {
		t.Fatal(err)
	}
	if n := queryUint(t, s, "SELECT count() FROM inputs"); n != 2 {
		t.Errorf("%d inputs, want 2", n)
	}
	if n := queryUint(t, s, "SELECT length(report_keys) FROM inputs WHERE source = 'imap'"); n != 2 {
		t.Errorf("report_keys has %d keys, want 2", n)
	}
}

func TestConcurrentWritesOfOneReportStoreItOnce(t *testing.T) {
	s, _ := open(t, Options{})
	h := header("google.com", "race", "example.com", jan2024)
	results := make(chan WriteResult, 4)
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			r, err := s.WriteAggregate(context.Background(), h, meta, genRows(20, "example.com"))
			results <- r
			errs <- err
		}()
	}
	stored := 0
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if (<-results).Status == StatusStored {
			stored++
		}
	}
	if stored != 1 {
		t.Errorf("%d writers stored the report, want 1", stored)
	}
	if n := queryUint(t, s, "SELECT count() FROM aggregate_records"); n != 20 {
		t.Errorf("%d records, want 20", n)
	}
}

func TestOpenRejectsBadDSN(t *testing.T) {
	for _, dsn := range []string{"http://127.0.0.1:8123/dmarc", "clickhouse://127.0.0.1:9000/bad-name"} {
		if _, err := Open(context.Background(), dsn, Options{}); !errors.Is(err, ErrBadDSN) {
			t.Errorf("Open(%q) = %v, want ErrBadDSN", dsn, err)
		}
	}
}

func BenchmarkWriteAggregate(b *testing.B) {
	s, _ := open(b, Options{})
	const n = 100000
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := header("google.com", fmt.Sprintf("bench-%d", i), "example.com", jan2024)
		res, err := s.WriteAggregate(context.Background(), h, meta, genRows(n, "example.com"))
		if err != nil || res.Records != n {
			b.Fatalf("%+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}

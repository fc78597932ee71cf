package compat

// The write path on ClickHouse 26.x: every statement the store sends while
// it writes a realistic data set to the 18.16 server is recorded
// (writes_recorder_test.go), replayed in the same order on the 26.x engine
// after the same migrations (writes_replay_test.go), and every table's
// full contents are compared between the two engines.
//
// The data set goes through every path of the writers: the whole corpus
// (aggregate reports in every container, failure and TLS reports, malformed
// inputs), generated reports over days and months (small reports: one
// INSERT per table), reports above BatchRows (a staging table filled by
// concurrent INSERTs with several blocks, its rollups summed by INSERT ...
// SELECT into staging tables, all attached with ATTACH PARTITION FROM),
// duplicate deliveries, a report whose mail failed authentication, writes
// interrupted after the records (the retry completes the rollups from the
// stored records) and after some rollups of a large report, claims for every
// report (created, beaten, dropped, created again by the duplicate), input
// log and attempts, DNS records and attributions, `dmarcd rollup rebuild`
// (REPLACE PARTITION, and DROP PARTITION for a month without records),
// and Prune (DROP PARTITION of old months).
//
// Compared after OPTIMIZE TABLE ... FINAL on both engines: before it, the
// number of rows of the Summing/ReplacingMergeTree tables depends on merges
// (and 26.x merges each INSERT's block on insert: optimize_on_insert), not
// their meaning. Values are compared as ClickHouse's toString prints them;
// the one normalisation is 18.16's zero Date/DateTime (0000-00-00...), which
// 26.x prints as the epoch it is (zeroTimes18).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/product/attrib"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck/checkdb"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

// writesBatchRows is the store's BatchRows in the replay: small, so that a
// report of a few hundred records takes the staging path.
const writesBatchRows = 40

// writesForged stores what it is given as if its mail had failed
// authentication on arrival (auth_result 'fail', data rows keyed
// store.AuthFailKey).
type writesForged struct{ ingest.Store }

func (f writesForged) WriteAggregate(ctx context.Context, h *aggregate.Header, meta store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	meta.AuthResult, meta.AuthDetail = "fail", "replayed as forged"
	return f.Store.WriteAggregate(ctx, h, meta, next)
}

// errInjected is the recorder's interruption of a write.
var errInjected = errors.New("compat: write interrupted by the test")

// failOnce makes the recorder refuse the next statement starting with
// prefix, once.
func (r *writesRecorder) failOnce(prefix string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = func(sql string) error {
		if !strings.HasPrefix(strings.TrimSpace(sql), prefix) {
			return nil
		}
		r.fail = nil // under r.mu: injected reads it under the lock
		return errInjected
	}
}

// writesData writes the data set through st (whose connection rec
// records) and returns how many inputs ended in each status.
func writesData(t *testing.T, st *store.Store, rec *writesRecorder) map[ingest.Status]int {
	t.Helper()
	ctx := context.Background()
	statuses := map[ingest.Status]int{}
	opts := ingest.Options{Source: "file", Privacy: ingest.Privacy{Key: []byte("k")}}
	p := ingest.New(st, opts)
	process := func(p *ingest.Pipeline, name string, data []byte) ingest.Outcome {
		o := p.Process(ctx, name, bytes.NewReader(data))
		statuses[o.Status]++
		return o
	}
	mustStore := func(p *ingest.Pipeline, name string, data []byte) {
		if o := process(p, name, data); o.Status != ingest.Stored {
			t.Fatalf("%s: %s %s %s", name, o.Status, o.ReasonCode, o.Reason)
		}
	}
	// An interrupted write fails; its retry stores the report.
	interrupted := func(name string, data []byte, at string) {
		rec.failOnce(at)
		if o := process(p, name, data); o.Status == ingest.Stored || o.Status == ingest.Duplicate {
			t.Fatalf("%s interrupted at %q: %s, want a failure", name, at, o.Status)
		}
		rec.mu.Lock()
		armed := rec.fail != nil
		rec.fail = nil
		rec.mu.Unlock()
		if armed {
			t.Fatalf("%s: the store sent no statement starting with %q", name, at)
		}
		mustStore(p, name+" (retry)", data)
	}

	// The corpus: real reports, one input of each kind and container
	// (MANIFEST.tsv: path, sha256, type, container, ...), malformed ones
	// among them.
	dir := testenv.CorpusDir(t)
	manifest, err := os.ReadFile(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(manifest)), "\n")[1:] {
		f := strings.Split(line, "\t")
		if len(f) < 4 || kinds[f[2]+"/"+f[3]] {
			continue
		}
		kinds[f[2]+"/"+f[3]] = true
		b, err := os.ReadFile(filepath.Join(dir, f[0]))
		if err != nil {
			t.Fatal(err)
		}
		process(p, f[0], b)
	}

	// Generated mail of two domains: recent days, and a month long past
	// (Prune drops it), duplicates included.
	now := time.Now().UTC()
	for i, g := range []gen.Options{
		{Domain: "example.com", Days: 1, Seed: 5, Start: now.AddDate(0, 0, -7)},
		{Domain: "example.net", Days: 1, Seed: 6, Start: now.AddDate(-1, -2, 0)},
	} {
		files, err := gen.Generate(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			process(p, fmt.Sprintf("gen%d/%s", i, f.Name), f.Data)
		}
	}

	// Above BatchRows: staging tables; delivered twice.
	var large bytes.Buffer
	if err := gen.WriteLargeReport(&large, 7*writesBatchRows+3, 7); err != nil {
		t.Fatal(err)
	}
	mustStore(p, "large.xml", large.Bytes())
	if o := process(p, "large-again.xml", large.Bytes()); o.Status != ingest.Duplicate {
		t.Fatalf("large report delivered again: %s, want duplicate", o.Status)
	}

	// A report whose mail failed authentication.
	forged, err := gen.Generate(gen.Options{Domain: "example.org", Days: 1, Seed: 8, Start: now.AddDate(0, 0, -3)})
	if err != nil {
		t.Fatal(err)
	}
	mustStore(ingest.New(writesForged{st}, opts), "forged/"+forged[0].Name, forged[0].Data)

	// Interrupted after the records of a small report (the retry sums all
	// rollups from the stored records), and after the first rollup of a
	// large one (the retry sums the others).
	small, err := gen.Generate(gen.Options{Domain: "example.org", Days: 1, Seed: 9, Start: now.AddDate(0, 0, -2)})
	if err != nil {
		t.Fatal(err)
	}
	interrupted("small-interrupted/"+small[0].Name, small[0].Data, "INSERT INTO aggregate_sources")
	large.Reset()
	if err := gen.WriteLargeReport(&large, 3*writesBatchRows+1, 10); err != nil {
		t.Fatal(err)
	}
	interrupted("large-interrupted.xml", large.Bytes(), "ALTER TABLE aggregate_outcomes ATTACH")

	// What the daemon's periodic jobs write.
	if _, err := st.BeginAttempt(ctx, "imap", "INBOX/1"); err != nil {
		t.Fatal(err)
	}
	if err := st.EndAttempt(ctx, "imap", "INBOX/1"); err != nil {
		t.Fatal(err)
	}
	checked := now.Add(-time.Hour).Truncate(time.Second)
	if err := checkdb.WriteDNSRecords(ctx, st, []checkdb.DNSRecord{
		{Domain: "example.com", Kind: "dmarc", Name: "_dmarc.example.com", Value: "v=DMARC1; p=none", Initial: true, Change: "first seen: v=DMARC1; p=none", CheckedAt: checked},
		{Domain: "example.com", Kind: "dmarc", Name: "_dmarc.example.com", Value: "v=DMARC1; p=reject", Previous: "v=DMARC1; p=none", Change: "p=none → p=reject", CheckedAt: checked.Add(time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	ips, err := attrib.UnattributedIPs(ctx, st, 10)
	if err != nil {
		t.Fatal(err)
	}
	var attrs []attrib.SourceAttribution
	for i, ip := range ips {
		attrs = append(attrs, attrib.SourceAttribution{IP: ip.IP, PTR: fmt.Sprintf("mx%d.sender.example", i), PTRConfirmed: i%2 == 0,
			SPFDomain: ip.Domains[0], SPFMechanism: "include", SPFIncludes: []string{"_spf.sender.example"},
			Country: "DE", ASN: uint32(64500 + i), ASOrg: "Sender AS 'quoted' \\ tab\t", KnownSource: "Sender", CheckedAt: checked})
	}
	if len(attrs) == 0 {
		t.Fatal("no unattributed source IP")
	}
	if err := attrib.WriteAttributions(ctx, st, attrs); err != nil {
		t.Fatal(err)
	}
	return statuses
}

func TestTheWritePathReplayedOn26LeavesTheSameTables(t *testing.T) {
	start := time.Now()
	dsn := testenv.ClickHouse(t)
	e := testenv.CHDB(t)
	ctx := context.Background()
	rec := &writesRecorder{}
	st, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.DiscardHandler), BatchRows: writesBatchRows, WrapConn: rec.wrap})
	if err != nil {
		t.Fatalf("store.Open(%s): %v", dsn, err)
	}
	defer st.Close()
	admin := openConn(t, dsn)
	db18 := st.Database()

	statuses := writesData(t, st, rec)
	// The months of the recent generated reports (all months: as many
	// statements again, for no other path), and one without records (DROP
	// PARTITION).
	months := []string{time.Now().UTC().AddDate(0, 0, -7).Format("200601"), "200101"}
	if m := time.Now().UTC().Format("200601"); m != months[0] {
		months = append(months, m)
	}
	if err := st.RebuildRollup(ctx, months); err != nil {
		t.Fatal(err)
	}
	reopen(t, dsn, admin, rec)
	done := 0
	var total replayStats
	t.Logf("written on 18.16 in %v", time.Since(start).Round(time.Millisecond))
	check := func(when string) {
		t.Helper()
		stmts := rec.statements()
		began := time.Now()
		stats, diffs := replay(e, db18, stmts, done)
		t.Logf("%s: %d statements replayed in %v", when, len(stmts)-done, time.Since(began).Round(time.Millisecond))
		done = len(stmts)
		for _, d := range diffs {
			t.Errorf("%s, replayed on %s: %v", when, e.Version(), d)
		}
		total.add(stats)
		began = time.Now()
		compareTables(t, when, admin, e)
		t.Logf("%s: compared in %v", when, time.Since(began).Round(time.Millisecond))
	}
	check("after the writes and the rollup rebuild")

	began := time.Now()
	dropped, err := st.Prune(ctx, 300*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) == 0 {
		t.Fatal("Prune dropped nothing: the replay does not check DROP PARTITION of old months")
	}
	t.Logf("pruned on 18.16 in %v", time.Since(began).Round(time.Millisecond))
	check("after Prune")

	stmts := rec.statements()
	for _, want := range []string{"CREATE TABLE dmarcd_claim_", "SELECT toInt64(now()) - toInt64(metadata_modification_time) FROM system.tables", "CREATE TABLE " + "aggregate_records_staging_", "ALTER TABLE aggregate_records ATTACH PARTITION",
		"INSERT INTO aggregate_records_staging_rollup_", "ALTER TABLE aggregate_rollup REPLACE PARTITION", "ALTER TABLE aggregate_rollup DROP PARTITION",
		"INSERT INTO failure_reports", "INSERT INTO tlsrpt_reports", "SYSTEM STOP MERGES"} {
		if !slices.ContainsFunc(stmts, func(s recordedStmt) bool { return strings.HasPrefix(strings.TrimSpace(s.sql), want) }) {
			t.Errorf("no statement starting with %q was recorded: the data set misses a path", want)
		}
	}
	if len(rec.other) > 0 {
		t.Errorf("calls the recorder does not replay: %q", rec.other)
	}
	t.Logf("inputs %v; %d statements replayed on %s (%d Exec, %d queries of which %d momentary, %d batches of %d rows; %d refused on both), Prune dropped %d partitions; %v",
		statuses, len(stmts), e.Version(), total.exec, total.query, total.unchecked, total.batch, total.rows, total.failedBoth, len(dropped), time.Since(start).Round(time.Millisecond))
}

// reopen leaves what writers that died leave behind, then opens the store
// again, as a restarted dmarcd does: a claim renamed away by a waiter (Open
// drops it), a claim of a live writer (Open reads its age and keeps it), a
// staging table (dropped). On the way, two refusals the claim code matches
// by error code: a claim taken (TABLE_ALREADY_EXISTS, 57) and a claim gone
// (UNKNOWN_TABLE, 60). These statements go through the recorder too.
func reopen(t *testing.T, dsn string, admin driver.Conn, rec *writesRecorder) {
	t.Helper()
	ctx := context.Background()
	w := rec.wrap(admin)
	const live = "dmarcd_claim_00000000000000aa"
	for _, q := range []string{
		"CREATE TABLE " + live + " (t DateTime) ENGINE = Memory",
		"INSERT INTO " + live + " SELECT now()",
		"CREATE TABLE dmarcd_claim_00000000000000bb_stale_0123abcd (t DateTime) ENGINE = Memory",
		"CREATE TABLE aggregate_records_staging_00000000000000cc AS aggregate_records ENGINE = MergeTree() PARTITION BY toYYYYMM(date_begin) ORDER BY report_key",
	} {
		if err := w.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := w.Exec(ctx, "CREATE TABLE "+live+" (t DateTime) ENGINE = Memory"); errCode(err) != 57 {
		t.Fatalf("claiming a claimed report on 18.16: %v, want code 57", err)
	}
	var n int64
	if err := w.QueryRow(ctx, "SELECT toInt64(now()) - toInt64(max(t)) FROM dmarcd_claim_00000000000000dd").Scan(&n); errCode(err) != 60 {
		t.Fatalf("reading a claim that is gone on 18.16: %v, want code 60", err)
	}
	st, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.DiscardHandler), BatchRows: writesBatchRows, WrapConn: rec.wrap})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := w.Exec(ctx, "DROP TABLE "+live); err != nil {
		t.Fatalf("the live claim: %v (Open dropped it?)", err)
	}
}

func (s *replayStats) add(o replayStats) {
	s.exec += o.exec
	s.query += o.query
	s.batch += o.batch
	s.rows += o.rows
	s.unchecked += o.unchecked
	s.failedBoth += o.failedBoth
}

// compareTables compares the tables of the two databases: their names (no
// claim or staging table left behind on either), then, after OPTIMIZE
// TABLE ... FINAL of each MergeTree table on both engines, every row.
func compareTables(t *testing.T, when string, admin driver.Conn, e *testenv.Engine) {
	t.Helper()
	ctx := context.Background()
	const tablesQuery = "SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name"
	rows, err := admin.Query(ctx, tablesQuery)
	if err != nil {
		t.Fatal(err)
	}
	var tables18 [][]string
	for rows.Next() {
		var n, eng string
		if err := rows.Scan(&n, &eng); err != nil {
			t.Fatal(err)
		}
		tables18 = append(tables18, []string{n, eng})
	}
	rows.Close()
	_, tables26, err := e.Query(tablesQuery)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := rowSet(tables18, false), rowSet(tables26, true); a != b {
		t.Fatalf("%s: the tables differ:\n 18.16: %q\n  26.x: %q", when, a, b)
	}
	compared, rowsCompared := 0, 0
	var unmerged []string // tables whose rows before OPTIMIZE differ in number
	for _, tb := range tables18 {
		name := tb[0]
		if strings.HasPrefix(name, "dmarcd_claim_") || strings.HasPrefix(name, "aggregate_records_staging_") {
			t.Errorf("%s: %s left behind", when, name)
			continue
		}
		if strings.HasSuffix(tb[1], "MergeTree") {
			var n18 uint64
			if err := admin.QueryRow(ctx, "SELECT count() FROM `"+name+"`").Scan(&n18); err != nil {
				t.Fatal(err)
			}
			_, n26, err := e.Query("SELECT count() FROM `" + name + "`")
			if err != nil {
				t.Fatal(err)
			}
			if c := fmt.Sprint(n18); c != n26[0][0] {
				unmerged = append(unmerged, fmt.Sprintf("%s %s/%s", name, c, n26[0][0]))
			}
			if err := admin.Exec(ctx, "OPTIMIZE TABLE `"+name+"` FINAL"); err != nil {
				t.Fatalf("18.16: OPTIMIZE TABLE %s FINAL: %v", name, err)
			}
			if err := e.Exec("OPTIMIZE TABLE `" + name + "` FINAL"); err != nil {
				t.Fatalf("26.x: OPTIMIZE TABLE %s FINAL: %v", name, err)
			}
		}
		cols := columnsOf18(t, admin, name)
		a, err := tableContents18(ctx, admin, name, cols)
		if err != nil {
			t.Fatalf("18.16: reading %s: %v", name, err)
		}
		b, err := tableContents26(e, name, cols)
		if err != nil {
			t.Fatalf("26.x: reading %s: %v", name, err)
		}
		if only18, only26 := sortedDiff(a, b); len(only18)+len(only26) > 0 {
			t.Errorf("%s: table %s differs (%d rows on 18.16, %d on 26.x):\n only on 18.16: %q\n only on 26.x:  %q",
				when, name, len(a), len(b), first(only18, 3), first(only26, 3))
		}
		compared++
		rowsCompared += len(a)
	}
	t.Logf("%s: %d tables, %d rows compared; before OPTIMIZE FINAL rows on 18.16/26.x differed in %q (merges, optimize_on_insert)",
		when, compared, rowsCompared, unmerged)
}

func columnsOf18(t *testing.T, admin driver.Conn, table string) []tableColumn {
	t.Helper()
	rows, err := admin.Query(context.Background(), "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = ?", table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []tableColumn
	for rows.Next() {
		var c tableColumn
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	return cols
}

// sortedDiff returns the rows of a not in b and of b not in a (both
// sorted, duplicates counted).
func sortedDiff(a, b []string) (onlyA, onlyB []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i] < b[j]:
			onlyA = append(onlyA, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			onlyB = append(onlyB, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return onlyA, onlyB
}

func first(l []string, n int) []string { return l[:min(n, len(l))] }

// The assumptions of the write path about the server, on both engines:
// the database is Atomic on 26.x (DROP TABLE of a claim or staging table
// frees its name at once, its data later: the replay re-creates claims by
// the same name right after their drop), and an INSERT of up to
// store.MaxBatchRows rows is one block (max_insert_block_size).
func TestTheWritePathAssumptionsHoldOn26(t *testing.T) {
	e := testenv.CHDB(t)
	_, rows, err := e.Query("SELECT engine FROM system.databases WHERE name = currentDatabase()")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0][0] != "Atomic" {
		t.Errorf("26.x database engine %q, want Atomic (the default since 20.10, what the replay tests)", rows)
	}
	dsn := testenv.ClickHouse(t) // a database not created: ask "default"
	admin := openConn(t, dsn[:strings.LastIndex(dsn, "/")]+"/default")
	var v18 string
	if err := admin.QueryRow(context.Background(), "SELECT value FROM system.settings WHERE name = 'max_insert_block_size'").Scan(&v18); err != nil {
		t.Fatal(err)
	}
	_, rows, err = e.Query("SELECT value FROM system.settings WHERE name = 'max_insert_block_size'")
	if err != nil {
		t.Fatal(err)
	}
	v26 := rows[0][0]
	for name, v := range map[string]string{"18.16": v18, "26.x": v26} {
		if n, err := strconv.Atoi(v); err != nil || n < store.MaxBatchRows {
			t.Errorf("%s: max_insert_block_size %s, below store.MaxBatchRows %d", name, v, store.MaxBatchRows)
		}
	}
	_, rows, err = e.Query("SELECT value FROM system.settings WHERE name = 'optimize_on_insert'")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("max_insert_block_size 18.16 %s, 26.x %s; optimize_on_insert on 26.x %s", v18, v26, rows[0][0])
}

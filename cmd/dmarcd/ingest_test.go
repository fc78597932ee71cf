package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// TestMain runs the tests with testenv's servers. Tests that mostly wait
// (on outages, restarts, daemons polling) call t.Parallel and run beside
// each other after the rest; the kill tests and the tests of two instances
// sharing a source run alone. The long kill soaks run in make test-long.
func TestMain(m *testing.M) { testenv.Main(m) }

// buildDmarcd returns the command built once for the test binary
// (testenv.Binary); tests run it and never change it.
func buildDmarcd(t *testing.T) string {
	t.Helper()
	return testenv.Binary(t, "./cmd/dmarcd")
}

func conn(t *testing.T, dsn string) clickhouse.Conn {
	t.Helper()
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := clickhouse.Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func counts(t *testing.T, c clickhouse.Conn) (reports, records, messages uint64) {
	t.Helper()
	ctx := context.Background()
	if err := c.QueryRow(ctx, "SELECT count() FROM aggregate_reports").Scan(&reports); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "SELECT count(), sum(message_count) FROM aggregate_records").Scan(&records, &messages); err != nil {
		t.Fatal(err)
	}
	return
}

type outcome struct {
	Input      string   `json:"input"`
	Kind       string   `json:"kind"`
	Status     string   `json:"status"`
	Reports    int      `json:"reports"`
	Records    int      `json:"records"`
	Messages   uint64   `json:"messages"`
	ReportIDs  []string `json:"report_ids"`
	ReasonCode string   `json:"reason_code"`
	Reason     string   `json:"reason"`
}

func runJSON(t *testing.T, bin, dsn string, args ...string) ([]outcome, int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"ingest", "--json"}, args...)...)
	cmd.Env = append(os.Environ(), "DMARCD_CLICKHOUSE_DSN="+dsn)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var outs []outcome
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var o outcome
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("line %q is not one JSON object: %v", sc.Text(), err)
		}
		outs = append(outs, o)
	}
	if code != 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return outs, code
}

// TestIngestSurvivesKill9 kills `dmarcd ingest` with SIGKILL at random
// moments, reruns it, and finds every generated report exactly once. A long
// soak: it runs in make test-long.
func TestIngestSurvivesKill9(t *testing.T) {
	testenv.Long(t)
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	dir := t.TempDir()
	files, err := gen.Generate(gen.Options{Domain: "example.com", Days: 10, Seed: 7, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Scale: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.WriteDir(dir, files); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "MANIFEST.tsv"))
	truth := gen.Summarize(files)

	// A full run into another database tells how long a run takes, so the
	// kills below land anywhere in it: at start-up, mid-report, between
	// inputs, near the end.
	start := time.Now()
	if _, code := runJSON(t, bin, testenv.ClickHouse(t), dir); code != 0 {
		t.Fatalf("baseline run exited %d", code)
	}
	full := time.Since(start)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	midRun := 0
	for i := 0; i < 8; i++ {
		cmd := exec.Command(bin, "ingest", "--json", dir)
		cmd.Env = append(os.Environ(), "DMARCD_CLICKHOUSE_DSN="+dsn)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int63n(int64(full))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if n := bytes.Count(stdout.Bytes(), []byte("\n")); n > 0 && n < len(files) {
			midRun++
		}
	}
	t.Logf("a full run takes %s; %d of 8 kills landed after some inputs and before the last", full, midRun)
	outs, code := runJSON(t, bin, dsn, dir)
	if code != 0 {
		t.Fatalf("final run exited %d", code)
	}
	if len(outs) != len(files)-0 && len(outs) < len(files)-1 {
		t.Fatalf("%d outcomes for %d files", len(outs), len(files))
	}
	c := conn(t, dsn)
	reports, records, messages := counts(t, c)
	if reports != uint64(truth.Reports) || records != uint64(truth.Records) || messages != truth.Messages {
		t.Fatalf("after kill -9 and rerun ClickHouse holds %d reports, %d records, %d messages; want %d, %d, %d",
			reports, records, messages, truth.Reports, truth.Records, truth.Messages)
	}
	for _, tbl := range []string{"aggregate_reports", "aggregate_records"} {
		if err := c.Exec(context.Background(), "OPTIMIZE TABLE "+tbl+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	if r2, rec2, m2 := counts(t, c); r2 != reports || rec2 != records || m2 != messages {
		t.Fatalf("OPTIMIZE FINAL changed the counts: %d/%d/%d -> %d/%d/%d", reports, records, messages, r2, rec2, m2)
	}
}

// TestIngestJSONContractAndExitCodes pins the --json keys, the status words
// and the exit status: 0 with invalid inputs, 1 when the store is unreachable,
// 2 for usage errors.
func TestIngestJSONContractAndExitCodes(t *testing.T) {
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	dir := t.TempDir()
	files, err := gen.Generate(gen.Options{Domain: "example.com", Days: 2, Seed: 3, Start: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), Scale: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.WriteDir(dir, files); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "MANIFEST.tsv"))
	os.WriteFile(filepath.Join(dir, "newsletter.eml"), []byte("From: a@b.example\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n<p>Sale!</p>\r\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.xml"), nil, 0o644)

	outs, code := runJSON(t, bin, dsn, dir)
	if code != 0 {
		t.Fatalf("exit %d, want 0 (invalid inputs are accounted for, not failures)", code)
	}
	seen := map[string]outcome{}
	for _, o := range outs {
		seen[filepath.Base(o.Input)] = o
		switch o.Status {
		case "stored", "duplicate", "invalid":
		default:
			t.Errorf("%s: status %q", o.Input, o.Status)
		}
		if o.ReportIDs == nil {
			t.Errorf("%s: report_ids must be a list, even empty", o.Input)
		}
	}
	if o := seen["newsletter.eml"]; o.Status != "invalid" || o.ReasonCode != "not_a_report" || o.Kind != "none" {
		t.Errorf("newsletter: %+v", o)
	}
	if o := seen["empty.xml"]; o.Status != "invalid" || o.ReasonCode != "not_a_report" {
		t.Errorf("empty file: %+v", o)
	}

	// Again: everything is a duplicate with the same counts.
	again, code := runJSON(t, bin, dsn, dir)
	if code != 0 {
		t.Fatalf("second run exit %d", code)
	}
	for _, o := range again {
		first := seen[filepath.Base(o.Input)]
		if first.Status == "stored" && (o.Status != "duplicate" || o.Records != first.Records || o.Messages != first.Messages) {
			t.Errorf("%s: second run %s %d/%d, first %s %d/%d", o.Input, o.Status, o.Records, o.Messages, first.Status, first.Records, first.Messages)
		}
	}

	// ClickHouse unreachable: reports end "error" with store_unavailable, exit 1.
	outs, code = runJSON(t, bin, "clickhouse://127.0.0.1:1/dmarc?dial_timeout=1s", dir)
	if code != 1 {
		t.Fatalf("unreachable store: exit %d, want 1", code)
	}
	var errs int
	for _, o := range outs {
		if o.Status == "error" {
			errs++
			if o.ReasonCode != "store_unavailable" || !strings.Contains(o.Reason, "clickhouse") {
				t.Errorf("%s: %s %q", o.Input, o.ReasonCode, o.Reason)
			}
		}
	}
	if errs == 0 {
		t.Fatal("no input ended error with ClickHouse unreachable")
	}

	// Usage error.
	if err := exec.Command(bin, "ingest").Run(); err == nil || err.(*exec.ExitError).ExitCode() != 2 {
		t.Fatalf("ingest without paths: %v, want exit 2", err)
	}
}

// TestIngestFailureAndTLSReportsCountedInMetrics ingests the corpus failure
// and TLS reports with the command, as a cron job would, and reads the
// metrics it leaves for node_exporter's textfile collector.
func TestIngestFailureAndTLSReportsCountedInMetrics(t *testing.T) {
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	corpus := testenv.CorpusDir(t)
	forensic, _ := filepath.Glob(filepath.Join(corpus, "*", "forensic"))
	tls, _ := filepath.Glob(filepath.Join(corpus, "*", "smtp_tls"))
	prom := filepath.Join(t.TempDir(), "dmarcd.prom")
	args := append([]string{"--metrics-textfile", prom}, append(forensic, tls...)...)
	t.Setenv("DMARCD_PRIVACY_KEY", "00112233445566778899aabbccddeeff")
	outs, code := runJSON(t, bin, dsn, args...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	kinds := map[string]int{}
	for _, o := range outs {
		if o.Status != "stored" && o.Status != "duplicate" {
			t.Errorf("%s: %s %s: %s", o.Input, o.Status, o.ReasonCode, o.Reason)
		}
		kinds[o.Kind]++
	}
	if kinds["failure"] < 7 || kinds["tlsrpt"] < 9 {
		t.Errorf("kinds %v, want every corpus failure and TLS report", kinds)
	}
	text, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`dmarc_failure_reports_total{auth_failure="dmarc",policy_domain="`,
		`dmarc_tlsrpt_failed_sessions_total{policy_domain="`,
		`dmarc_tlsrpt_successful_sessions_total{policy_domain="`,
		`dmarcd_inputs_total{kind="failure",reason_code="",source="file",status="stored"}`,
		`dmarcd_build_info{`,
		`dmarcd_stage_duration_seconds_count{kind="failure",stage="parse"}`,
		`dmarcd_stage_duration_seconds_count{kind="tlsrpt",stage="store"}`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	c := conn(t, dsn)
	var failures, tlsReports uint64
	if err := c.QueryRow(context.Background(), "SELECT count() FROM failure_reports").Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(context.Background(), "SELECT count() FROM tlsrpt_reports").Scan(&tlsReports); err != nil {
		t.Fatal(err)
	}
	if failures != 6 || tlsReports < 8 {
		// The two LinkedIn files (LF and CRLF) are one report.
		t.Errorf("%d failure reports and %d TLS reports stored", failures, tlsReports)
	}
}

// TestIngestLargeReportSurvivesKill9 kills `dmarcd ingest` while it streams
// a 200,000-record report through a staging table (blocks of 5000), reruns
// it, and finds every record exactly once: a staging table is attached in
// one step or not at all, and a dead process's last writes are waited for.
func TestIngestLargeReportSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 150 MB report")
	}
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	path := filepath.Join(t.TempDir(), "large.xml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200_000
	if err := gen.WriteLargeReport(f, n, 5); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < 5; i++ {
		cmd := exec.Command(bin, "ingest", path)
		cmd.Env = append(os.Environ(), "DMARCD_CLICKHOUSE_DSN="+dsn, "DMARCD_CLICKHOUSE_BATCH_ROWS=5000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(100+rng.Intn(900)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	outs, code := runJSON(t, bin, dsn, path)
	if code != 0 || len(outs) != 1 || outs[0].Records != n {
		t.Fatalf("final run: exit %d, %+v", code, outs)
	}
	c := conn(t, dsn)
	reports, records, _ := counts(t, c)
	if reports != 1 || records != n {
		t.Fatalf("after kills and a rerun: %d reports, %d records; want 1 and %d", reports, records, n)
	}
	var staging uint64
	if err := c.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE 'aggregate_records_staging_%'").Scan(&staging); err != nil {
		t.Fatal(err)
	}
	if staging != 0 {
		t.Errorf("%d staging tables left behind", staging)
	}
}

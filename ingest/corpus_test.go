package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/store"
)

// TestMain runs the tests with testenv's servers. The long exactly-once
// tests over the corpus and an IMAP backlog call t.Parallel; tests that
// change the package's variables (StoreProbeInterval, the spool's hook) or
// the process's environment (the S3 tests' AWS variables) run alone.
func TestMain(m *testing.M) { testenv.Main(m) }

func openStore(t testing.TB) (*store.Store, clickhouse.Conn) {
	t.Helper()
	dsn := testenv.ClickHouse(t)
	st, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return st, conn
}

// aggregateCounts reads the exactly-once truth the way a user would: without FINAL.
func aggregateCounts(t *testing.T, conn clickhouse.Conn) (reports, records, messages uint64) {
	t.Helper()
	ctx := context.Background()
	if err := conn.QueryRow(ctx, "SELECT count() FROM aggregate_reports").Scan(&reports); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(), sum(message_count) FROM aggregate_records").Scan(&records, &messages); err != nil {
		t.Fatal(err)
	}
	return
}

func optimizeFinal(t *testing.T, conn clickhouse.Conn) {
	t.Helper()
	for _, tbl := range []string{"aggregate_reports", "aggregate_records", "inputs"} {
		if err := conn.Exec(context.Background(), "OPTIMIZE TABLE "+tbl+" FINAL"); err != nil {
			t.Fatalf("OPTIMIZE TABLE %s FINAL: %v", tbl, err)
		}
	}
}

func processFile(t *testing.T, p *ingest.Pipeline, path, name string) ingest.Outcome {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return p.Process(context.Background(), name, f)
}

// TestCorpusStoredExactlyOnce ingests every file of the real-world corpus
// into a real ClickHouse: each aggregate report file and report mail ends
// stored or duplicate with exactly the MANIFEST's record count and message
// sum; every malformed file ends invalid with a reason; the tables hold each
// distinct report once, also after a second full ingest and OPTIMIZE FINAL.
func TestCorpusStoredExactlyOnce(t *testing.T) {
	t.Parallel()
	dir := corpus.Dir(t)
	entries := corpus.Manifest(t)
	st, conn := openStore(t)
	p := ingest.New(st, ingest.Options{Source: "file", Privacy: ingest.Privacy{Key: []byte("test-key-0123456789abcdef")}})

	type truth struct {
		records  int
		messages uint64
	}
	unique := map[string]truth{}
	run := func(pass int) {
		for _, e := range entries {
			out := processFile(t, p, filepath.Join(dir, e.Path), e.Path)
			switch e.Type {
			case "aggregate", "email":
				if out.Kind != "aggregate" {
					t.Errorf("%s: kind %q, want aggregate (%s: %s)", e.Path, out.Kind, out.ReasonCode, out.Reason)
					continue
				}
				want := ingest.Stored
				if pass > 1 {
					want = ingest.Duplicate
				}
				if out.Status != ingest.Stored && out.Status != ingest.Duplicate || (pass > 1 && out.Status != want) {
					t.Errorf("pass %d %s: status %s (%s: %s), want %s", pass, e.Path, out.Status, out.ReasonCode, out.Reason, want)
					continue
				}
				if e.Known && (out.Records != e.Records || out.Messages != e.CountSum) {
					t.Errorf("%s: %d records / %d messages, MANIFEST says %d / %d", e.Path, out.Records, out.Messages, e.Records, e.CountSum)
				}
				if len(out.ReportKeys) != 1 {
					t.Errorf("%s: %d report keys, want 1", e.Path, len(out.ReportKeys))
					continue
				}
				unique[out.ReportKeys[0]] = truth{out.Records, out.Messages}
			case "malformed":
				if out.Status != ingest.Invalid || out.ReasonCode == "" || out.Reason == "" {
					t.Errorf("%s: status %s code %q reason %q, want invalid with a reason", e.Path, out.Status, out.ReasonCode, out.Reason)
				}
			case "forensic", "smtp_tls":
				kind := map[string]string{"forensic": "failure", "smtp_tls": "tlsrpt"}[e.Type]
				if out.Kind != kind || (out.Status != ingest.Stored && out.Status != ingest.Duplicate) ||
					(pass > 1 && out.Status != ingest.Duplicate) {
					t.Errorf("pass %d %s: kind %q status %s (%s: %s), want %s stored or duplicate", pass, e.Path, out.Kind, out.Status, out.ReasonCode, out.Reason, kind)
				}
				if e.Type == "smtp_tls" && e.Known && (out.Records != e.Records || out.Messages != e.CountSum) {
					t.Errorf("%s: %d policies / %d sessions, MANIFEST says %d / %d", e.Path, out.Records, out.Messages, e.Records, e.CountSum)
				}
			}
		}
	}
	var wantRecords int
	var wantMessages uint64
	check := func(stage string) {
		t.Helper()
		wantRecords, wantMessages = 0, 0
		for _, u := range unique {
			wantRecords += u.records
			wantMessages += u.messages
		}
		reports, records, messages := aggregateCounts(t, conn)
		if reports != uint64(len(unique)) || records != uint64(wantRecords) || messages != wantMessages {
			t.Fatalf("%s: ClickHouse holds %d reports, %d records, %d messages; want %d, %d, %d",
				stage, reports, records, messages, len(unique), wantRecords, wantMessages)
		}
	}
	run(1)
	check("after the first ingest")
	run(2)
	check("after ingesting everything again")
	optimizeFinal(t, conn)
	check("after OPTIMIZE TABLE ... FINAL")
	if len(unique) < 20 {
		t.Fatalf("only %d distinct reports found in the corpus", len(unique))
	}
}

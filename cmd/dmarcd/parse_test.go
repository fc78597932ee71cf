package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/internal/corpus"
)

func runCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &env{stdout: &o, stderr: &e, stdin: strings.NewReader("")})
	return o.String(), e.String(), code
}

// TestParsePrintsReportsWithoutAStore pins `dmarcd parse`: one JSON document
// per report with the recomputed alignment, or one CSV row per record.
func TestParsePrintsReportsWithoutAStore(t *testing.T) {
	dir := corpus.Dir(t)
	gz := filepath.Join(dir, "domainaware__parsedmarc/aggregate/nice-input.xml.gz")
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "clickhouse://127.0.0.1:1/unused")

	out, errOut, code := runCmd(t, "parse", "--json", gz)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		ReportKey string `json:"report_key"`
		Report    struct{ OrgName, Domain string }
		Records   []struct {
			SourceIP           string
			Count              uint64
			DKIMAlignedRelaxed bool `json:"dkim_aligned_relaxed"`
		} `json:"records"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	var sum uint64
	for _, r := range doc.Records {
		sum += r.Count
	}
	if doc.Report.OrgName != "google.com" || doc.Report.Domain != "example.com" || len(doc.Records) != 20 || sum != 3047 || len(doc.ReportKey) != 64 {
		t.Errorf("got %s %s, %d records, %d messages, key %q; MANIFEST says google.com example.com 20 3047",
			doc.Report.OrgName, doc.Report.Domain, len(doc.Records), sum, doc.ReportKey)
	}

	out, _, code = runCmd(t, "parse", "--csv", gz)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 21 {
		t.Fatalf("csv: exit %d, %v, %d rows (want header + 20)", code, err, len(rows))
	}
	if rows[0][0] != "input" || rows[1][4] != "example.com" {
		t.Errorf("csv header %v, first row %v", rows[0], rows[1])
	}

	_, errOut, code = runCmd(t, "parse", filepath.Join(dir, "domainaware__parsedmarc/malformed/invalid_xml.xml"))
	if code != 1 || !strings.Contains(errOut, "invalid_xml.xml") {
		t.Errorf("malformed: exit %d, stderr %q; want 1 and the file named", code, errOut)
	}
	if _, _, code = runCmd(t, "parse", "--json", "--csv", gz); code != 2 {
		t.Errorf("--json --csv together: exit %d, want 2", code)
	}
}

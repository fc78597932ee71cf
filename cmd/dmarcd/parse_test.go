package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
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
		Report    struct {
			OrgName string `json:"org_name"`
			Domain  string `json:"policy_domain"`
		} `json:"report"`
		Records []struct {
			SourceIP           string `json:"source_ip"`
			Count              uint64 `json:"message_count"`
			DKIMAlignedRelaxed bool   `json:"dkim_aligned_relaxed"`
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

// hostileReport is a well-formed aggregate report whose free-text values are
// spreadsheet formulas (XML 1.0 cannot carry a control character; the file
// name below does).
const hostileReport = `<?xml version="1.0"?>
<feedback><report_metadata><org_name>=HYPERLINK("http://evil.example/x","click")</org_name>
<email>noreply@evil.example</email><report_id>@SUM(1+1)</report_id>
<date_range><begin>1764979200</begin><end>1765065599</end></date_range></report_metadata>
<policy_published><domain>example.com</domain><p>none</p></policy_published>
<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><disposition>none</disposition>
<dkim>fail</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers>
<auth_results><spf><domain>example.com</domain><result>fail</result></spf></auth_results></record></feedback>`

// TestParseCSVDefusesFormulasAndEscapes pins that `dmarcd parse --csv` never
// writes a cell a spreadsheet runs as a formula, and that no control
// character from a report reaches the terminal.
func TestParseCSVDefusesFormulasAndEscapes(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "clickhouse://127.0.0.1:1/unused")
	path := filepath.Join(t.TempDir(), "report\x1b[31m.xml")
	if err := os.WriteFile(path, []byte(hostileReport), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCmd(t, "parse", "--csv", path)
	if strings.ContainsAny(out+errOut, "\x1b\x07") {
		t.Errorf("a control character reached the output:\n%q\n%q", out, errOut)
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("csv: %v, %d rows", err, len(rows))
	}
	if !strings.Contains(out, `'=HYPERLINK`) {
		t.Errorf("org_name not printed as a defused cell:\n%s", out)
	}
	for i, cell := range rows[1] {
		if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
			t.Errorf("column %s: cell %q is a formula", rows[0][i], cell)
		}
	}
}

// TestHumanLineEscapesControlCharacters pins `dmarcd ingest`'s readable line:
// an input name or a reason quoting a hostile value cannot steer the terminal.
func TestHumanLineEscapesControlCharacters(t *testing.T) {
	for _, o := range []ingest.Outcome{
		{Input: "x\x1b]0;pwned\x07.xml", Status: ingest.Invalid, ReasonCode: "xml_syntax", Reason: "report-id \x1b[2J"},
		{Input: "ok.xml", Status: ingest.Stored, Reason: "record 2: \u202eevil", Auth: enrich.AuthFail, AuthDetail: "dkim \x9b31m"},
	} {
		line := humanLine(o)
		if strings.ContainsAny(line, "\x1b\x07\u202e\u009b") {
			t.Errorf("humanLine(%+v) = %q carries a control character", o, line)
		}
	}
}

// TestParseJSONSpeaksSnakeCaseOnly pins `dmarcd parse --json` to one naming
// convention, that of `ingest --json` and the CSV columns: every key of
// every report of the corpus's aggregate set is snake_case, no Go field
// name and no {"Value","Set"} wrapper; an absent optional value is null.
// The keys are those docs/parse-json.md lists.
func TestParseJSONSpeaksSnakeCaseOnly(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "clickhouse://127.0.0.1:1/unused")
	dir := corpus.Dir(t)
	doc, err := os.ReadFile("../../docs/parse-json.md")
	if err != nil {
		t.Fatal(err)
	}
	out, _, _ := runCmd(t, "parse", "--json", filepath.Join(dir, "domainaware__parsedmarc/aggregate"))
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				seen[k] = true
				if !snake.MatchString(k) {
					t.Errorf("key %q is not snake_case", k)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("not a JSON document per line: %v\n%.200s", err, line)
		}
		walk(v)
		n++
		if r := v["report"].(map[string]any); r["policy_domain"] == nil || r["date_begin"] == nil {
			t.Errorf("report lacks policy_domain or date_begin: %v", r)
		}
	}
	if n < 5 {
		t.Fatalf("only %d reports parsed", n)
	}
	for k := range seen {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("key %s is not documented in docs/parse-json.md", k)
		}
	}
}

// TestParseOnATLSReportSaysItPrintsAggregateReports: a TLS report given to
// parse is named as one, and the message says plainly that parse prints
// aggregate reports only and what stores it; with nothing printed the exit
// status is 1.
func TestParseOnATLSReportSaysItPrintsAggregateReports(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "clickhouse://127.0.0.1:1/unused")
	eml := filepath.Join(corpus.Dir(t), "mjl-__mox/smtp_tls/microsoft.eml")
	for _, mode := range []string{"--csv", "--json"} {
		out, errOut, code := runCmd(t, "parse", mode, eml)
		if code != exitFail || !strings.Contains(errOut, "SMTP TLS report") || !strings.Contains(errOut, "dmarcd parse prints DMARC aggregate reports only") {
			t.Errorf("parse %s on a TLS report: exit %d, stderr %q", mode, code, errOut)
		}
		if strings.Count(out, "\n") > 1 {
			t.Errorf("parse %s printed rows for a TLS report: %q", mode, out)
		}
	}
}

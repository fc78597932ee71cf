package compat

import (
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// bindWindow puts a window (January 2024) into a query's ? parameters, the
// since and until of readiness queries.
func bindWindow(q string) string {
	for i := 0; strings.Contains(q, "?"); i++ {
		v := "'2024-01-01 00:00:00'"
		if i%2 == 1 {
			v = "'2024-02-01 00:00:00'"
		}
		q = strings.Replace(q, "?", v, 1)
	}
	return q
}

// The readiness join of known sources (readiness.SourcesStmt) failed
// on 26.x with code 206 ALIAS_REQUIRED: its subquery had no alias. It runs
// there now with the analyzer on and off, and joins the known source.
func TestReadinessJoinsKnownSourcesOn26(t *testing.T) {
	e := testenv.CHDB(t)
	migrate26(t, e, false)
	for _, q := range []string{
		`INSERT INTO aggregate_reports (report_key, policy_domain, date_begin, auth_result) VALUES ('k1', 'example.com', '2024-01-10 00:00:00', 'pass')`,
		`INSERT INTO aggregate_records (report_key, record_index, org_name, policy_domain, date_begin, source_ip, message_count, header_from, dmarc_pass)
			VALUES ('k1', 0, 'google.com', 'example.com', '2024-01-10 00:00:00', '192.0.2.1', 3, 'example.com', 1)`,
		`INSERT INTO source_attribution (ip, checked_at, known_source, known_authorised) VALUES ('192.0.2.1', '2024-01-11 00:00:00', 'Google Workspace', 1)`,
	} {
		if err := e.Exec(q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	for _, analyzer := range []string{"1", "0"} {
		q := bindWindow(readiness.SourcesStmt(chsql.Window{}, readiness.Options{}).SQL) + "\nSETTINGS allow_experimental_analyzer = " + analyzer
		cols, rows, err := e.Query(q)
		if err != nil {
			t.Fatalf("analyzer %s: %v", analyzer, err)
		}
		known := -1
		for i, c := range cols {
			if c.Name == "ip_known_source" {
				known = i
			}
		}
		if known < 0 || len(rows) != 1 || rows[0][known] != "Google Workspace" {
			t.Errorf("analyzer %s: columns %v, rows %q; want one row of known source Google Workspace", analyzer, cols, rows)
		}
	}
}

package compat

import (
	"testing"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// The reasons of unverified readiness evidence (readiness.UnverifiedStmt)
// join aggregate_reports through an aliased subquery; it runs on 26.x with
// the analyzer on and off and classifies ingest's details.
func TestReadinessUnverifiedReasonsRunOn26(t *testing.T) {
	e := testenv.CHDB(t)
	migrate26(t, e, false)
	for _, q := range []string{
		`INSERT INTO aggregate_reports (report_key, policy_domain, date_begin, auth_result, auth_detail) VALUES
			('k1', 'example.com', '2024-01-10 00:00:00', 'unverified', 'no DKIM signature; from=google.com has no DMARC policy'),
			('k2', 'example.com', '2024-01-10 00:00:00', 'unverified', 'bare file: no mail to verify'),
			('k3', 'example.com', '2024-01-10 00:00:00', 'pass', 'dkim=pass d=google.com s=1')`,
		`INSERT INTO aggregate_records (report_key, record_index, org_name, policy_domain, date_begin, source_ip, message_count, header_from, dmarc_pass)
			VALUES ('k1', 0, 'google.com', 'example.com', '2024-01-10 00:00:00', '192.0.2.1', 3, 'example.com', 1),
			('k2', 0, 'google.com', 'example.com', '2024-01-10 00:00:00', '192.0.2.1', 2, 'example.com', 1),
			('k3', 0, 'google.com', 'example.com', '2024-01-10 00:00:00', '192.0.2.1', 7, 'example.com', 1)`,
	} {
		if err := e.Exec(q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	for _, analyzer := range []string{"1", "0"} {
		q := bindWindow(readiness.UnverifiedStmt(chsql.Window{}).SQL) + "\nSETTINGS allow_experimental_analyzer = " + analyzer
		_, rows, err := e.Query(q)
		if err != nil {
			t.Fatalf("analyzer %s: %v", analyzer, err)
		}
		if len(rows) != 2 || rows[0][1] != readiness.UnverifiedUnsigned || rows[0][3] != "3" || rows[1][1] != readiness.UnverifiedNoMail || rows[1][3] != "2" {
			t.Errorf("analyzer %s: rows %q; want unsigned 3 messages, no_mail 2", analyzer, rows)
		}
	}
}

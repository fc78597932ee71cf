package readiness

import (
	"context"
	"fmt"
	"time"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
)

// Why reports are unverified (aggregate_reports.auth_result 'unverified'),
// from the auth_detail ingest/auth.go wrote: the classes of
// UnverifiedStmt.
const (
	// UnverifiedNoMail: a bare report file, or a report inside an archive:
	// there was no mail to authenticate (also rows stored before migration
	// 0004, whose detail is empty).
	UnverifiedNoMail = "no_mail"
	// UnverifiedUnsigned: the report mail carried no DKIM signature and its
	// From domain publishes no enforcing policy.
	UnverifiedUnsigned = "unsigned"
	// UnverifiedNotChecked: a signature could not be checked on arrival
	// (DNS failure or timeout, or a key no longer published).
	UnverifiedNotChecked = "not_checked"
	// UnverifiedUnaligned: signed, but by no domain aligned with the report
	// mail's From domain, which publishes no enforcing policy.
	UnverifiedUnaligned = "unaligned"
	// UnverifiedDisabled: report_auth was disabled when it arrived.
	UnverifiedDisabled = "disabled"
	// UnverifiedOther: any other detail (aggregate_reports.auth_detail has
	// it).
	UnverifiedOther = "other"
)

// UnverifiedReasons are the Unverified* classes.
var UnverifiedReasons = []string{UnverifiedNoMail, UnverifiedUnsigned, UnverifiedNotChecked, UnverifiedUnaligned, UnverifiedDisabled, UnverifiedOther}

// unverifiedReason classifies auth_detail into the Unverified*
// classes; the texts matched are those ingest/auth.go writes.
const unverifiedReason = `multiIf(auth_detail = '' OR position(auth_detail, 'bare file') > 0 OR position(auth_detail, 'not a mail') > 0, '` + UnverifiedNoMail + `',
	position(auth_detail, 'report_auth disabled') > 0, '` + UnverifiedDisabled + `',
	position(auth_detail, 'no DKIM signature') > 0, '` + UnverifiedUnsigned + `',
	position(auth_detail, 'temperror') > 0 OR position(auth_detail, 'neutral') > 0 OR position(auth_detail, 'not verified') > 0, '` + UnverifiedNotChecked + `',
	position(auth_detail, 'dkim=') > 0, '` + UnverifiedUnaligned + `',
	'` + UnverifiedOther + `')`

// UnverifiedStmt sums, per policy domain and reason, the valid records of
// window w whose report's mail could not be authenticated: why the
// readiness evidence is unverified. The reasons come from
// aggregate_reports, joined GLOBAL (a Distributed aggregate_records joins
// the whole table once) through an aliased subquery (ClickHouse 20.x and
// later require the alias, code 206).
func UnverifiedStmt(w chsql.Window) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT policy_domain, reason, uniqExact(report_key) AS reports, sum(message_count) AS messages
FROM aggregate_records
GLOBAL ANY LEFT JOIN (SELECT report_key, any(`+unverifiedReason+`) AS reason
	FROM aggregate_reports WHERE auth_result = 'unverified' GROUP BY report_key) AS unverified_reports USING report_key
WHERE record_error = '' AND `), w.Cond(), chsql.Text(` AND `+chsql.Unverified+`
GROUP BY policy_domain, reason
ORDER BY policy_domain, messages DESC, reason`))
}

// UnverifiedRow is one row of UnverifiedStmt.
type UnverifiedRow struct {
	PolicyDomain string `ch:"policy_domain" json:"policy_domain"`
	Reason       string `ch:"reason" json:"reason"` // Unverified*
	Reports      uint64 `ch:"reports" json:"reports"`
	Messages     uint64 `ch:"messages" json:"messages"`
}

// ReadUnverified runs UnverifiedStmt over reports that began in
// [since, until).
func ReadUnverified(ctx context.Context, q chsql.Querier, since, until time.Time) ([]UnverifiedRow, error) {
	l, err := chsql.Select[UnverifiedRow](ctx, q, UnverifiedStmt(chsql.Window{Since: since, Until: until}))
	if err != nil {
		return nil, fmt.Errorf("readiness, why reports are unverified: %w", err)
	}
	return l, nil
}

package store

import (
	"context"
	"fmt"
	"time"
)

// Why reports are unverified (aggregate_reports.auth_result 'unverified'),
// from the auth_detail ingest/auth.go wrote: the classes of
// ReadinessUnverifiedQuery.
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

// readinessUnverifiedReason classifies auth_detail into the Unverified*
// classes; the texts matched are those ingest/auth.go writes.
const readinessUnverifiedReason = `multiIf(auth_detail = '' OR position(auth_detail, 'bare file') > 0 OR position(auth_detail, 'not a mail') > 0, '` + UnverifiedNoMail + `',
	position(auth_detail, 'report_auth disabled') > 0, '` + UnverifiedDisabled + `',
	position(auth_detail, 'no DKIM signature') > 0, '` + UnverifiedUnsigned + `',
	position(auth_detail, 'temperror') > 0 OR position(auth_detail, 'neutral') > 0 OR position(auth_detail, 'not verified') > 0, '` + UnverifiedNotChecked + `',
	position(auth_detail, 'dkim=') > 0, '` + UnverifiedUnaligned + `',
	'` + UnverifiedOther + `')`

// ReadinessUnverifiedQuery sums, per policy domain and reason, the valid
// records of the window whose report's mail could not be authenticated:
// why the readiness evidence is unverified. The reasons come from
// aggregate_reports, joined GLOBAL (a Distributed aggregate_records joins
// the whole table once) through an aliased subquery (ClickHouse 20.x and
// later require the alias, code 206). Parameters: the window's since and
// until.
var ReadinessUnverifiedQuery = `SELECT policy_domain, reason, uniqExact(report_key) AS reports, sum(message_count) AS messages
FROM aggregate_records
GLOBAL ANY LEFT JOIN (SELECT report_key, any(` + readinessUnverifiedReason + `) AS reason
	FROM aggregate_reports WHERE auth_result = 'unverified' GROUP BY report_key) AS unverified_reports USING report_key
WHERE record_error = '' AND ` + readinessWindow + ` AND ` + readinessUnverified + `
GROUP BY policy_domain, reason
ORDER BY policy_domain, messages DESC, reason`

// ReadinessUnverified is one row of ReadinessUnverifiedQuery.
type ReadinessUnverified struct {
	PolicyDomain string `json:"policy_domain"`
	Reason       string `json:"reason"` // Unverified*
	Reports      uint64 `json:"reports"`
	Messages     uint64 `json:"messages"`
}

// ReadinessUnverifiedReasons runs ReadinessUnverifiedQuery over reports
// that began in [since, until).
func (s *Store) ReadinessUnverifiedReasons(ctx context.Context, since, until time.Time) ([]ReadinessUnverified, error) {
	rows, err := s.conn.Query(ctx, ReadinessUnverifiedQuery, unixSeconds(since), unixSeconds(until))
	if err != nil {
		return nil, fmt.Errorf("store: readiness, why reports are unverified: %w", err)
	}
	defer rows.Close()
	var l []ReadinessUnverified
	for rows.Next() {
		var r ReadinessUnverified
		if err := rows.Scan(&r.PolicyDomain, &r.Reason, &r.Reports, &r.Messages); err != nil {
			return nil, fmt.Errorf("store: readiness, why reports are unverified: %w", err)
		}
		l = append(l, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: readiness, why reports are unverified: %w", err)
	}
	return l, nil
}

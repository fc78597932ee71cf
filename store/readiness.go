package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Readiness classes of a record: how a stored record would fare under an
// enforcing DMARC policy, and why (docs/readiness.md). The first rule that
// matches wins, in this order.
const (
	// ClassAligned: the record passed DMARC (an aligned SPF or DKIM pass
	// under the published adkim/aspf, as dmarcd recomputes it).
	ClassAligned = "aligned"
	// ClassForwarded: the receiver named a forwarding override
	// (forwarded, mailing_list, trusted_forwarder), or a DKIM signature of
	// the From domain's organization failed with a selector that passed
	// elsewhere in the window: the classic breakage of a forwarder or list
	// that rewrote the message.
	ClassForwarded = "forwarded"
	// ClassMisaligned: some DKIM pass, or some SPF pass for the MAIL FROM
	// identity, for a domain that is not aligned with header_from.
	// Fixable if the sender is legitimate.
	ClassMisaligned = "misaligned"
	// ClassUnauthenticated: no pass of any kind: likely spoofing.
	ClassUnauthenticated = "unauthenticated"
)

// ReadinessKnownSelectors is the WITH clause the class expression needs:
// every "d=/selector" pair with a DKIM pass in valid records of the same
// window ({window} is replaced by the window's condition). Reporters that
// omit selectors (Yahoo) contribute nothing, so an empty selector never
// matches.
//
// It reads the known-selector rows of the rollup (aggregate_rollup,
// by_source = 2: one row per report and passing pair, the pair in
// header_from, written with the report's rollup, store/rollup.go) rather
// than the DKIM arrays of every record: the same set, from a few rows per
// report. The window's conditions (date_begin, report_key) apply to those
// rows as to the records.
//
// ClickHouse 18.16 rejects a lambda whose body combines an outer column
// with other expressions ("Unknown identifier"), so
// outer columns go into lambdas as arrays (arrayResize([col], length(arr)))
// and the set lookup (hasAny) stays outside the lambda.
//
// The set is sorted: ClickHouse 18.16 may evaluate the scalar subquery more
// than once for one query, and over a Distributed table (cluster mode) two
// runs of groupUniqArray can order the set differently, which fails the
// query: "Different expressions with the same alias known_selectors"
// (dashboards.TestClusterDashboardQueriesMatchSingleServer).
const ReadinessKnownSelectors = `(SELECT arraySort(groupUniqArray(header_from))
	FROM aggregate_rollup WHERE by_source = 2 AND {window}) AS known_selectors`

// ReadinessClass is the SQL expression of a record's readiness class over
// aggregate_records; it refers to known_selectors (ReadinessKnownSelectors).
// Dashboards, gauges and alerts use this very text.
const ReadinessClass = `multiIf(dmarc_pass = 1, 'aligned',
	hasAny(override_types, ['forwarded', 'mailing_list', 'trusted_forwarder'])
	OR hasAny(known_selectors, arrayFilter((ds, d, s, r, o) -> r != 'pass' AND s != '' AND (d = o OR endsWith(d, concat('.', o))),
		arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors),
		dkim_domains, dkim_selectors, dkim_results, arrayResize([header_from_org], length(dkim_domains)))), 'forwarded',
	has(dkim_results, 'pass')
	OR arrayExists((r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_results, spf_scopes), 'misaligned',
	'unauthenticated')`

// readinessWindow is the condition on records of the window: reports that
// began in [since, until).
const readinessWindow = `date_begin >= toDateTime(?) AND date_begin < toDateTime(?)`

// Conditions on records by how the mail that carried their report
// authenticated (aggregate_reports.auth_result, migration 0004): records of
// reports whose mail failed are left out of verdicts unless asked for
// (docs/readiness.md, "Trusting the reports"). Records whose report row is
// missing (a write in progress) are kept.
const (
	// ReadinessNotFailedAuth is exported for the readiness dashboard's
	// known selectors, which must leave out the same reports.
	ReadinessNotFailedAuth = `report_key NOT IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'fail')`
	readinessFailedAuth    = `report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'fail')`
	readinessUnverified    = `report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'unverified')`
)

// ReadinessOptions choose the evidence of a readiness query.
type ReadinessOptions struct {
	// IncludeFailedAuth keeps the records of reports whose mail failed
	// authentication (likely forged), left out by default.
	IncludeFailedAuth bool
}

// authCondition is the records condition of opt.
func (o ReadinessOptions) authCondition() string {
	if o.IncludeFailedAuth {
		return "1"
	}
	return ReadinessNotFailedAuth
}

// ReadinessSourcesQuery groups the valid records of a window by policy
// domain, header_from, class and the sender's authenticated identities (the
// sorted DKIM d= domains that passed, the sorted SPF MAIL FROM domains that
// passed): one row per sender as it shows itself, e.g. SES with a custom
// MAIL FROM is [amazonses.com, example.com] / [mail.example.com]. Its
// parameters are the window's since and until, twice (known selectors, then
// records).
//
// The pass_* columns count messages that would pass DMARC under each pair of
// alignment modes (dkim mode, spf mode): what adkim=s / aspf=s would change.
//
// unverified counts the messages of reports whose mail could not be
// verified (auth_result 'unverified').
var ReadinessSourcesQuery = readinessSourcesQuery(ReadinessOptions{})

func readinessSourcesQuery(o ReadinessOptions) string {
	return `WITH ` + replaceWindowAuth(ReadinessKnownSelectors, o) + `
SELECT policy_domain, header_from, ` + ReadinessClass + ` AS class,
	arraySort(arrayFilter((d, r) -> r = 'pass', dkim_domains, dkim_results)) AS dkim_pass,
	arraySort(arrayFilter((d, r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_domains, spf_results, spf_scopes)) AS spf_pass,
	sum(message_count) AS messages,
	count() AS records,
	uniqExact(source_ip) AS source_ips,
	uniqExact(toDate(date_begin)) AS days,
	arraySort(groupUniqArrayArray(arrayFilter((ds, r) -> r = 'pass' AND NOT endsWith(ds, '/'),
		arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors), dkim_results))) AS selectors,
	arraySort(groupUniqArray(org_name)) AS reporters,
	topK(5)(source_ip) AS top_ips,
	arraySort(groupUniqArrayArray(override_types)) AS overrides,
	sumIf(message_count, dkim_aligned_relaxed = 1 OR spf_aligned_relaxed = 1) AS pass_rr,
	sumIf(message_count, dkim_aligned_strict = 1 OR spf_aligned_relaxed = 1) AS pass_sr,
	sumIf(message_count, dkim_aligned_relaxed = 1 OR spf_aligned_strict = 1) AS pass_rs,
	sumIf(message_count, dkim_aligned_strict = 1 OR spf_aligned_strict = 1) AS pass_ss,
	sumIf(message_count, ` + readinessUnverified + `) AS unverified,
	ip_known_source, ip_known_authorised
FROM aggregate_records
` + readinessKnownJoin + `
WHERE record_error = '' AND ` + readinessWindow + ` AND ` + o.authCondition() + `
GROUP BY policy_domain, header_from, class, dkim_pass, spf_pass, ip_known_source, ip_known_authorised
ORDER BY policy_domain, header_from, class, messages DESC,
	arrayStringConcat(dkim_pass, ','), arrayStringConcat(spf_pass, ','), ip_known_source, ip_known_authorised`
}

// readinessKnownJoin adds the known source internal/product/attrib stored for each
// source IP (source_attribution, migration 0005): ip_known_source, "" for
// none or not yet attributed, and ip_known_authorised. GLOBAL so that a
// Distributed aggregate_records joins the whole table once. The subquery
// has an alias: ClickHouse 20.x and later refuse a joined subquery without
// one (code 206 ALIAS_REQUIRED, joined_subquery_requires_alias); 18.16
// accepts both.
const readinessKnownJoin = `GLOBAL ANY LEFT JOIN (SELECT ip AS source_ip, argMax(known_source, checked_at) AS ip_known_source,
	argMax(known_authorised, checked_at) AS ip_known_authorised
	FROM source_attribution GROUP BY ip) AS known_sources USING source_ip`

// ReadinessIPsQuery is the per-source-IP view of the same classification:
// one row per (policy domain, header_from, source_ip, class) with its
// messages, for drill-down. Parameters as ReadinessSourcesQuery; records of
// reports whose mail failed authentication are left out.
var ReadinessIPsQuery = `WITH ` + replaceWindowAuth(ReadinessKnownSelectors, ReadinessOptions{}) + `
SELECT policy_domain, header_from, source_ip, ` + ReadinessClass + ` AS class,
	sum(message_count) AS messages
FROM aggregate_records
WHERE record_error = '' AND ` + readinessWindow + ` AND ` + ReadinessNotFailedAuth + `
GROUP BY policy_domain, header_from, source_ip, class
ORDER BY policy_domain, header_from, messages DESC, source_ip, class`

// ReadinessPolicyQuery returns the policy each domain published in its most
// recent report of the window (latest date_begin, then latest ingested).
// A report whose mail failed authentication is not believed about it.
var ReadinessPolicyQuery = `SELECT policy_domain, p, sp, np, pct, testing, adkim, aspf
FROM aggregate_reports
WHERE ` + readinessWindow + ` AND auth_result != 'fail'
ORDER BY policy_domain, date_begin DESC, ingested_at DESC, report_key
LIMIT 1 BY policy_domain`

// ReadinessFailedAuthQuery sums, per policy domain, the valid records of
// the window whose report's mail failed authentication: what the verdicts
// leave out by default. Parameters: the window's since and until.
var ReadinessFailedAuthQuery = `SELECT policy_domain, uniqExact(report_key) AS reports,
	sum(message_count) AS messages, arraySort(groupUniqArray(org_name)) AS reporters
FROM aggregate_records
WHERE record_error = '' AND ` + readinessWindow + ` AND ` + readinessFailedAuth + `
GROUP BY policy_domain
ORDER BY policy_domain`

func replaceWindow(s string) string { return strings.Replace(s, "{window}", readinessWindow, 1) }

// replaceWindowAuth is replaceWindow with the records condition of o: a
// forged report must not make a selector "known" either.
func replaceWindowAuth(s string, o ReadinessOptions) string {
	return strings.Replace(s, "{window}", readinessWindow+" AND "+o.authCondition(), 1)
}

// ReadinessSource is one row of ReadinessSourcesQuery.
type ReadinessSource struct {
	PolicyDomain string   `json:"policy_domain"`
	HeaderFrom   string   `json:"header_from"`
	Class        string   `json:"class"`
	DKIMPass     []string `json:"dkim_pass"` // d= domains that passed, sorted
	SPFPass      []string `json:"spf_pass"`  // MAIL FROM domains that passed, sorted
	Messages     uint64   `json:"messages"`
	Records      uint64   `json:"records"`
	SourceIPs    uint64   `json:"source_ips"`
	Days         uint64   `json:"days"`      // distinct report days
	Selectors    []string `json:"selectors"` // "d/selector" of DKIM passes (selector known)
	Reporters    []string `json:"reporters"`
	TopIPs       []string `json:"top_ips"`
	Overrides    []string `json:"overrides"`
	// Messages that pass DMARC under each pair of alignment modes:
	// PassRR adkim=r aspf=r, PassSR adkim=s aspf=r, PassRS adkim=r aspf=s,
	// PassSS both strict.
	PassRR, PassSR, PassRS, PassSS uint64
	// Unverified counts the messages of reports whose mail could not be
	// verified (auth_result 'unverified').
	Unverified uint64 `json:"unverified"`
	// KnownSource is the known source the source IPs matched when they were
	// attributed (source_attribution.known_source), "" for none;
	// KnownAuthorised whether it was marked authorised then.
	KnownSource     string `json:"known_source,omitempty"`
	KnownAuthorised bool   `json:"known_authorised,omitempty"`
}

// ReadinessFailedAuth is one row of ReadinessFailedAuthQuery.
type ReadinessFailedAuth struct {
	PolicyDomain string   `json:"policy_domain"`
	Reports      uint64   `json:"reports"`
	Messages     uint64   `json:"messages"`
	Reporters    []string `json:"reporters"` // org_name the reports claim
}

// ReadinessIP is one row of ReadinessIPsQuery.
type ReadinessIP struct {
	PolicyDomain, HeaderFrom, SourceIP, Class string
	Messages                                  uint64
}

// Policy is a published DMARC policy as a report states it; a nil field is
// a tag the report left out (its default applies).
type Policy struct {
	Domain                               string
	P, SP, NP, Pct, Testing, ADKIM, ASPF *string
}

// ReadinessSources runs ReadinessSourcesQuery over reports that began in
// [since, until).
func (s *Store) ReadinessSources(ctx context.Context, since, until time.Time) ([]ReadinessSource, error) {
	return s.ReadinessSourcesWith(ctx, since, until, ReadinessOptions{})
}

// ReadinessSourcesWith is ReadinessSources with the evidence chosen by o.
func (s *Store) ReadinessSourcesWith(ctx context.Context, since, until time.Time, o ReadinessOptions) ([]ReadinessSource, error) {
	a, b := unixSeconds(since), unixSeconds(until)
	rows, err := s.conn.Query(ctx, readinessSourcesQuery(o), a, b, a, b)
	if err != nil {
		return nil, fmt.Errorf("store: readiness sources: %w", err)
	}
	defer rows.Close()
	var l []ReadinessSource
	for rows.Next() {
		var r ReadinessSource
		var known uint8
		if err := rows.Scan(&r.PolicyDomain, &r.HeaderFrom, &r.Class, &r.DKIMPass, &r.SPFPass,
			&r.Messages, &r.Records, &r.SourceIPs, &r.Days, &r.Selectors, &r.Reporters, &r.TopIPs,
			&r.Overrides, &r.PassRR, &r.PassSR, &r.PassRS, &r.PassSS, &r.Unverified, &r.KnownSource, &known); err != nil {
			return nil, fmt.Errorf("store: readiness sources: %w", err)
		}
		r.KnownAuthorised = known == 1
		l = append(l, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: readiness sources: %w", err)
	}
	return l, nil
}

// ReadinessIPs runs ReadinessIPsQuery over reports that began in
// [since, until).
func (s *Store) ReadinessIPs(ctx context.Context, since, until time.Time) ([]ReadinessIP, error) {
	a, b := unixSeconds(since), unixSeconds(until)
	rows, err := s.conn.Query(ctx, ReadinessIPsQuery, a, b, a, b)
	if err != nil {
		return nil, fmt.Errorf("store: readiness by IP: %w", err)
	}
	defer rows.Close()
	var l []ReadinessIP
	for rows.Next() {
		var r ReadinessIP
		if err := rows.Scan(&r.PolicyDomain, &r.HeaderFrom, &r.SourceIP, &r.Class, &r.Messages); err != nil {
			return nil, fmt.Errorf("store: readiness by IP: %w", err)
		}
		l = append(l, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: readiness by IP: %w", err)
	}
	return l, nil
}

// ReadinessPolicies runs ReadinessPolicyQuery: the latest published policy
// of each domain with reports that began in [since, until).
func (s *Store) ReadinessPolicies(ctx context.Context, since, until time.Time) ([]Policy, error) {
	rows, err := s.conn.Query(ctx, ReadinessPolicyQuery, unixSeconds(since), unixSeconds(until))
	if err != nil {
		return nil, fmt.Errorf("store: readiness policies: %w", err)
	}
	defer rows.Close()
	var l []Policy
	for rows.Next() {
		var p Policy
		if err := rows.Scan(&p.Domain, &p.P, &p.SP, &p.NP, &p.Pct, &p.Testing, &p.ADKIM, &p.ASPF); err != nil {
			return nil, fmt.Errorf("store: readiness policies: %w", err)
		}
		l = append(l, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: readiness policies: %w", err)
	}
	return l, nil
}

// ReadinessFailedAuthReports runs ReadinessFailedAuthQuery over reports
// that began in [since, until).
func (s *Store) ReadinessFailedAuthReports(ctx context.Context, since, until time.Time) ([]ReadinessFailedAuth, error) {
	rows, err := s.conn.Query(ctx, ReadinessFailedAuthQuery, unixSeconds(since), unixSeconds(until))
	if err != nil {
		return nil, fmt.Errorf("store: readiness, reports failing authentication: %w", err)
	}
	defer rows.Close()
	var l []ReadinessFailedAuth
	for rows.Next() {
		var r ReadinessFailedAuth
		if err := rows.Scan(&r.PolicyDomain, &r.Reports, &r.Messages, &r.Reporters); err != nil {
			return nil, fmt.Errorf("store: readiness, reports failing authentication: %w", err)
		}
		l = append(l, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: readiness, reports failing authentication: %w", err)
	}
	return l, nil
}

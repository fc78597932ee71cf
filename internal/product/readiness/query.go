package readiness

import (
	"context"
	"fmt"
	"time"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
)

// The readiness queries: what `dmarcd readiness` reads from ClickHouse,
// each with the row type it scans into. The class of a record is
// chsql.ClassRule; its names are the Class* constants.

// Readiness classes of a record: how a stored record would fare under an
// enforcing DMARC policy, and why (docs/readiness.md). The first rule that
// matches wins, in this order (chsql.ClassRule).
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

// Options choose the evidence of a readiness query.
type Options struct {
	// IncludeFailedAuth keeps the records of reports whose mail failed
	// authentication (likely forged), left out by default.
	IncludeFailedAuth bool
}

// authCondition is the records condition of o.
func (o Options) authCondition() string {
	if o.IncludeFailedAuth {
		return "1"
	}
	return chsql.NotFailedAuth
}

// evidence is the condition on the records (and known selectors) of
// window w that o believes: a forged report must not make a selector
// "known" either.
func (o Options) evidence(w chsql.Window) chsql.Stmt {
	return chsql.Join(w.Cond(), chsql.Text(" AND "+o.authCondition()))
}

// knownJoin adds the known source internal/product/attrib stored for each
// source IP (source_attribution, migration 0005): ip_known_source, "" for
// none or not yet attributed, and ip_known_authorised. GLOBAL so that a
// Distributed aggregate_records joins the whole table once. The subquery
// has an alias: ClickHouse 20.x and later refuse a joined subquery without
// one (code 206 ALIAS_REQUIRED, joined_subquery_requires_alias); 18.16
// accepts both.
const knownJoin = `GLOBAL ANY LEFT JOIN (SELECT ip AS source_ip, argMax(known_source, checked_at) AS ip_known_source,
	argMax(known_authorised, checked_at) AS ip_known_authorised
	FROM source_attribution GROUP BY ip) AS known_sources USING source_ip`

// SourcesStmt groups the valid records of window w by policy domain,
// header_from, class and the sender's authenticated identities (the sorted
// DKIM d= domains that passed, the sorted SPF MAIL FROM domains that
// passed): one row per sender as it shows itself, e.g. SES with a custom
// MAIL FROM is [amazonses.com, example.com] / [mail.example.com].
//
// The pass_* columns count messages that would pass DMARC under each pair
// of alignment modes (dkim mode, spf mode): what adkim=s / aspf=s would
// change.
//
// unverified counts the messages of reports whose mail could not be
// verified (auth_result 'unverified').
func SourcesStmt(w chsql.Window, o Options) chsql.Stmt {
	return chsql.Join(chsql.Text(`WITH `), chsql.KnownSelectors(o.evidence(w)), chsql.Text(`
SELECT policy_domain, header_from, `+chsql.ClassRule+` AS class,
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
	sumIf(message_count, `+chsql.Unverified+`) AS unverified,
	ip_known_source, ip_known_authorised
FROM aggregate_records
`+knownJoin+`
WHERE record_error = '' AND `), o.evidence(w), chsql.Text(`
GROUP BY policy_domain, header_from, class, dkim_pass, spf_pass, ip_known_source, ip_known_authorised
ORDER BY policy_domain, header_from, class, messages DESC,
	arrayStringConcat(dkim_pass, ','), arrayStringConcat(spf_pass, ','), ip_known_source, ip_known_authorised`))
}

// IPsStmt is the per-source-IP view of the same classification: one row
// per (policy domain, header_from, source_ip, class) with its messages,
// for drill-down. Records of reports whose mail failed authentication are
// left out.
func IPsStmt(w chsql.Window) chsql.Stmt {
	o := Options{}
	return chsql.Join(chsql.Text(`WITH `), chsql.KnownSelectors(o.evidence(w)), chsql.Text(`
SELECT policy_domain, header_from, source_ip, `+chsql.ClassRule+` AS class,
	sum(message_count) AS messages
FROM aggregate_records
WHERE record_error = '' AND `), o.evidence(w), chsql.Text(`
GROUP BY policy_domain, header_from, source_ip, class
ORDER BY policy_domain, header_from, messages DESC, source_ip, class`))
}

// PoliciesStmt returns the policy each domain published in its most recent
// report of window w (latest date_begin, then latest ingested). A report
// whose mail failed authentication is not believed about it.
func PoliciesStmt(w chsql.Window) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT policy_domain, p, sp, np, pct, testing, adkim, aspf
FROM aggregate_reports
WHERE `), w.Cond(), chsql.Text(` AND auth_result != 'fail'
ORDER BY policy_domain, date_begin DESC, ingested_at DESC, report_key
LIMIT 1 BY policy_domain`))
}

// FailedAuthStmt sums, per policy domain, the valid records of window w
// whose report's mail failed authentication: what the verdicts leave out
// by default.
func FailedAuthStmt(w chsql.Window) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT policy_domain, uniqExact(report_key) AS reports,
	sum(message_count) AS messages, arraySort(groupUniqArray(org_name)) AS reporters
FROM aggregate_records
WHERE record_error = '' AND `), w.Cond(), chsql.Text(` AND `+chsql.FailedAuth+`
GROUP BY policy_domain
ORDER BY policy_domain`))
}

// SourceRow is one row of SourcesStmt.
type SourceRow struct {
	PolicyDomain string   `ch:"policy_domain" json:"policy_domain"`
	HeaderFrom   string   `ch:"header_from" json:"header_from"`
	Class        string   `ch:"class" json:"class"`
	DKIMPass     []string `ch:"dkim_pass" json:"dkim_pass"` // d= domains that passed, sorted
	SPFPass      []string `ch:"spf_pass" json:"spf_pass"`   // MAIL FROM domains that passed, sorted
	Messages     uint64   `ch:"messages" json:"messages"`
	Records      uint64   `ch:"records" json:"records"`
	SourceIPs    uint64   `ch:"source_ips" json:"source_ips"`
	Days         uint64   `ch:"days" json:"days"`           // distinct report days
	Selectors    []string `ch:"selectors" json:"selectors"` // "d/selector" of DKIM passes (selector known)
	Reporters    []string `ch:"reporters" json:"reporters"`
	TopIPs       []string `ch:"top_ips" json:"top_ips"`
	Overrides    []string `ch:"overrides" json:"overrides"`
	// Messages that pass DMARC under each pair of alignment modes:
	// PassRR adkim=r aspf=r, PassSR adkim=s aspf=r, PassRS adkim=r aspf=s,
	// PassSS both strict.
	PassRR uint64 `ch:"pass_rr"`
	PassSR uint64 `ch:"pass_sr"`
	PassRS uint64 `ch:"pass_rs"`
	PassSS uint64 `ch:"pass_ss"`
	// Unverified counts the messages of reports whose mail could not be
	// verified (auth_result 'unverified').
	Unverified uint64 `ch:"unverified" json:"unverified"`
	// KnownSource is the known source the source IPs matched when they were
	// attributed (source_attribution.known_source), "" for none;
	// KnownAuthorised whether it was marked authorised then.
	KnownSource     string `ch:"ip_known_source" json:"known_source,omitempty"`
	KnownAuthorised bool   `ch:"ip_known_authorised" json:"known_authorised,omitempty"`
}

// FailedAuthRow is one row of FailedAuthStmt.
type FailedAuthRow struct {
	PolicyDomain string   `ch:"policy_domain" json:"policy_domain"`
	Reports      uint64   `ch:"reports" json:"reports"`
	Messages     uint64   `ch:"messages" json:"messages"`
	Reporters    []string `ch:"reporters" json:"reporters"` // org_name the reports claim
}

// IPRow is one row of IPsStmt.
type IPRow struct {
	PolicyDomain string `ch:"policy_domain"`
	HeaderFrom   string `ch:"header_from"`
	SourceIP     string `ch:"source_ip"`
	Class        string `ch:"class"`
	Messages     uint64 `ch:"messages"`
}

// PublishedPolicy is a published DMARC policy as a report states it (one
// row of PoliciesStmt); a nil field is a tag the report left out (its
// default applies).
type PublishedPolicy struct {
	Domain  string  `ch:"policy_domain"`
	P       *string `ch:"p"`
	SP      *string `ch:"sp"`
	NP      *string `ch:"np"`
	Pct     *string `ch:"pct"`
	Testing *string `ch:"testing"`
	ADKIM   *string `ch:"adkim"`
	ASPF    *string `ch:"aspf"`
}

// ReadSources runs SourcesStmt over reports that began in [since, until).
func ReadSources(ctx context.Context, q chsql.Querier, since, until time.Time, o Options) ([]SourceRow, error) {
	l, err := chsql.Select[SourceRow](ctx, q, SourcesStmt(chsql.Window{Since: since, Until: until}, o))
	if err != nil {
		return nil, fmt.Errorf("readiness sources: %w", err)
	}
	return l, nil
}

// ReadIPs runs IPsStmt over reports that began in [since, until).
func ReadIPs(ctx context.Context, q chsql.Querier, since, until time.Time) ([]IPRow, error) {
	l, err := chsql.Select[IPRow](ctx, q, IPsStmt(chsql.Window{Since: since, Until: until}))
	if err != nil {
		return nil, fmt.Errorf("readiness by IP: %w", err)
	}
	return l, nil
}

// ReadPolicies runs PoliciesStmt: the latest published policy of each
// domain with reports that began in [since, until).
func ReadPolicies(ctx context.Context, q chsql.Querier, since, until time.Time) ([]PublishedPolicy, error) {
	l, err := chsql.Select[PublishedPolicy](ctx, q, PoliciesStmt(chsql.Window{Since: since, Until: until}))
	if err != nil {
		return nil, fmt.Errorf("readiness policies: %w", err)
	}
	return l, nil
}

// ReadFailedAuth runs FailedAuthStmt over reports that began in
// [since, until).
func ReadFailedAuth(ctx context.Context, q chsql.Querier, since, until time.Time) ([]FailedAuthRow, error) {
	l, err := chsql.Select[FailedAuthRow](ctx, q, FailedAuthStmt(chsql.Window{Since: since, Until: until}))
	if err != nil {
		return nil, fmt.Errorf("readiness, reports failing authentication: %w", err)
	}
	return l, nil
}

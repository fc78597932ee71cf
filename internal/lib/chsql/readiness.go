package chsql

// The readiness class of a record (docs/readiness.md) and the conditions on
// how a report's mail authenticated (aggregate_reports.auth_result,
// migration 0004; docs/readiness.md, "Trusting the reports"). The readers
// (internal/product/readiness, internal/product/gauges), the writer's
// rollup (store/rollup.go) and the readiness dashboard (dashboards/) use
// this very text.

// ClassRule is the SQL expression of a record's readiness class over
// aggregate_records (or aggregate_outcomes): 'aligned', 'forwarded',
// 'misaligned' or 'unauthenticated', the first rule that matches winning
// (internal/product/readiness names the classes). It refers to
// known_selectors (KnownSelectors).
const ClassRule = `multiIf(dmarc_pass = 1, 'aligned',
	hasAny(override_types, ['forwarded', 'mailing_list', 'trusted_forwarder'])
	OR hasAny(known_selectors, arrayFilter((ds, d, s, r, o) -> r != 'pass' AND s != '' AND (d = o OR endsWith(d, concat('.', o))),
		arrayMap((d, s) -> concat(d, '/', s), dkim_domains, dkim_selectors),
		dkim_domains, dkim_selectors, dkim_results, arrayResize([header_from_org], length(dkim_domains)))), 'forwarded',
	has(dkim_results, 'pass')
	OR arrayExists((r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_results, spf_scopes), 'misaligned',
	'unauthenticated')`

// KnownSelectors is the WITH clause ClassRule needs: every "d=/selector"
// pair with a DKIM pass in valid records of the rows cond selects (a
// window, and which reports to believe). Reporters that omit selectors
// (Yahoo) contribute nothing, so an empty selector never matches.
//
// It reads the known-selector rows of the rollup (aggregate_rollup,
// by_source = 2: one row per report and passing pair, the pair in
// header_from, written with the report's rollup, store/rollup.go) rather
// than the DKIM arrays of every record: the same set, from a few rows per
// report. The window's conditions (date_begin, report_key) apply to those
// rows as to the records.
//
// ClickHouse 18.16 rejects a lambda whose body combines an outer column
// with other expressions ("Unknown identifier"), so outer columns go into
// lambdas as arrays (arrayResize([col], length(arr))) and the set lookup
// (hasAny) stays outside the lambda.
//
// The set is sorted: ClickHouse 18.16 may evaluate the scalar subquery more
// than once for one query, and over a Distributed table (cluster mode) two
// runs of groupUniqArray can order the set differently, which fails the
// query: "Different expressions with the same alias known_selectors"
// (dashboards.TestClusterDashboardQueriesMatchSingleServer).
func KnownSelectors(cond Stmt) Stmt {
	return Join(Text("(SELECT arraySort(groupUniqArray(header_from))\n\tFROM aggregate_rollup WHERE by_source = 2 AND "),
		cond, Text(") AS known_selectors"))
}

// Conditions on records (or rollup rows) by how the mail that carried
// their report authenticated. Records whose report row is missing (a write
// in progress) match neither FailedAuth nor Unverified.
const (
	// NotFailedAuth leaves out the records of reports whose mail failed
	// authentication (likely forged).
	NotFailedAuth = `report_key NOT IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'fail')`
	// FailedAuth keeps only those records.
	FailedAuth = `report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'fail')`
	// Unverified keeps the records of reports whose mail could not be
	// verified (auth_result 'unverified').
	Unverified = `report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'unverified')`
)

// AuthFailKey is the report_key of the data rows (aggregate_rollup's
// by_source = 0, aggregate_sources' by_source = 1, aggregate_outcomes)
// summed from reports whose mail failed authentication on arrival
// (aggregate_reports.auth_result = 'fail'); the data rows of the other
// reports have an empty report_key. So the readiness panels and gauges
// leave out the evidence of likely forged reports, as `dmarcd readiness`
// does (NotFailedAuth), with an empty report_key (or != AuthFailKey), and
// what reads every report's data counts it with report_count = 0 (the
// markers have 1) or no condition on report_key at all. A report key is
// 64 hex digits: this one cannot be one.
const AuthFailKey = "auth:fail"

// FailedAuthIn is FailedAuth reading the report rows of table (a shard's
// local aggregate_reports when a writer sums one shard's records again).
func FailedAuthIn(table string) string {
	return `report_key IN (SELECT report_key FROM ` + table + ` WHERE auth_result = 'fail')`
}

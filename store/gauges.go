package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// The gauge queries: what the dmarc_ gauges (internal/product/gauges) read, over one
// report window [since, until) by date_begin (arrival_date for failure
// reports). Each reads one table once and groups by policy domain; none uses
// FINAL (the writer stores every row once). Dashboards use the same
// expressions.

// GaugeAggregateQuery sums the valid records of a window per policy domain,
// from the rollup (aggregate_rollup, by_source = 0): messages, messages
// passing DMARC (aligned DKIM or SPF under the published modes, recomputed
// by dmarcd), messages failing it (what p=quarantine or p=reject with
// pct=100 would have acted on), and messages that would pass under strict
// alignment (adkim=s and aspf=s).
const GaugeAggregateQuery = `SELECT policy_domain,
	sum(message_count) AS messages,
	sum(pass_messages) AS pass,
	toUInt64(sum(message_count) - sum(pass_messages)) AS failing,
	sum(strict_pass_messages) AS strict_pass
FROM aggregate_rollup
WHERE by_source = 0 AND ` + readinessWindow + `
GROUP BY policy_domain
HAVING sum(record_count) > 0`

// Thresholds of a source that stopped passing (GaugeStoppedPassingQuery).
const (
	// StoppedPassingMinMessages: messages a source must have sent in each
	// period to count.
	StoppedPassingMinMessages = 10
	// StoppedPassingBefore: its DMARC pass ratio in the 7 days before the
	// window was at least this.
	StoppedPassingBefore = 0.9
	// StoppedPassingNow: its pass ratio in the window is at most this.
	StoppedPassingNow = 0.5
	// StoppedPassingMaxDays: the query runs for windows of at most this
	// many days (it reads the window and the 7 days before it).
	StoppedPassingMaxDays = 7
)

// GaugeStoppedPassingQuery counts, per policy domain, the sources (source
// IPs) that passed DMARC in the 7 days before the window (at least
// StoppedPassingBefore of at least StoppedPassingMinMessages messages) and
// fail in the window (a pass ratio of at most StoppedPassingNow, at least
// StoppedPassingMinMessages messages), and their failing messages in the
// window: a legitimate sender that lost alignment. It reads the per-source
// rows of aggregate_sources (by_source = 1), and only the source IPs with a
// DMARC pass in the 7 days before, for any domain (the IN set, a superset
// the HAVING narrows; an IN of (domain, IP) pairs takes five times
// longer): the millions of sources that never pass (spoofing) are never
// grouped. It reads the IPs as numbers (source_ip_hash, cityHash64 of the
// IP, migration 0012) and groups by a hash of (domain, IP hash): half the
// time of the IP strings on the benchmark (docs/benchmarks.md).
// Parameters: the window's since four times, since minus 7 days, until,
// since minus 7 days, since.
var GaugeStoppedPassingQuery = fmt.Sprintf(`SELECT domain AS policy_domain, count() AS sources, toUInt64(sum(now_messages - now_pass)) AS failing
FROM (
	SELECT any(policy_domain) AS domain, cityHash64(policy_domain, source_ip_hash) AS source,
		sumIf(message_count, date_begin < toDateTime(?)) AS before_messages,
		sumIf(message_count, date_begin < toDateTime(?) AND dmarc_pass = 1) AS before_pass,
		sumIf(message_count, date_begin >= toDateTime(?)) AS now_messages,
		sumIf(message_count, date_begin >= toDateTime(?) AND dmarc_pass = 1) AS now_pass
	FROM aggregate_sources
	WHERE by_source = 1 AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?)
		AND source_ip_hash IN (SELECT source_ip_hash FROM aggregate_sources
			WHERE by_source = 1 AND dmarc_pass = 1 AND date_begin >= toDateTime(?) AND date_begin < toDateTime(?))
	GROUP BY source
	HAVING before_messages >= %[1]d AND before_pass >= %[2]g * before_messages
		AND now_messages >= %[1]d AND now_pass <= %[3]g * now_messages
)
GROUP BY domain`, StoppedPassingMinMessages, StoppedPassingBefore, StoppedPassingNow)

// GaugeUnauthenticatedQuery counts, per policy domain, messages of the
// readiness class "unauthenticated" (ReadinessClass: no pass of any kind,
// not forwarded): likely spoofing. It reads aggregate_outcomes: the records
// summed per outcome, which is all the class depends on. Like `dmarcd
// readiness` it leaves out the evidence of reports whose mail failed
// authentication (their rows have report_key AuthFailKey, their known
// selectors ReadinessNotFailedAuth). Parameters: since, until, twice (known
// selectors, then the rows).
var GaugeUnauthenticatedQuery = `WITH ` + replaceWindowAuth(ReadinessKnownSelectors, ReadinessOptions{}) + `
SELECT policy_domain, sumIf(message_count, ` + ReadinessClass + ` = 'unauthenticated') AS unauthenticated
FROM aggregate_outcomes
WHERE report_key = '' AND dmarc_pass = 0 AND ` + readinessWindow + `
GROUP BY policy_domain`

// GaugeTLSRPTQuery sums failed and successful TLS sessions per policy domain
// of the TLS reports (RFC 8460) that began in the window.
const GaugeTLSRPTQuery = `SELECT policy_domain, sum(failed_sessions) AS failed, sum(successful_sessions) AS successful
FROM tlsrpt_policies
WHERE ` + readinessWindow + `
GROUP BY policy_domain`

// GaugeFailureQuery counts failure reports per policy domain whose
// Arrival-Date falls in the window.
const GaugeFailureQuery = `SELECT policy_domain, count() AS reports
FROM failure_reports
WHERE arrival_date >= toDateTime(?) AND arrival_date < toDateTime(?)
GROUP BY policy_domain`

// GaugeLastReportOrgQuery returns, per reporter organisation, the messages of
// its aggregate reports that began since the parameter, and the end of the
// latest period it reported on (never later than now).
const GaugeLastReportOrgQuery = `SELECT org_name, sum(message_count) AS messages,
	toUInt32(least(max(date_end), now())) AS last_end
FROM aggregate_reports
WHERE date_begin >= toDateTime(?)
GROUP BY org_name
ORDER BY messages DESC, org_name`

// GaugeLastReportDomainQuery is GaugeLastReportOrgQuery per policy domain.
const GaugeLastReportDomainQuery = `SELECT policy_domain, sum(message_count) AS messages,
	toUInt32(least(max(date_end), now())) AS last_end
FROM aggregate_reports
WHERE date_begin >= toDateTime(?)
GROUP BY policy_domain
ORDER BY messages DESC, policy_domain`

// DomainGauges is what one report window says about one policy domain.
type DomainGauges struct {
	Domain string
	// Messages in valid aggregate records.
	Messages uint64
	// DMARCPass: messages with an aligned DKIM or SPF pass under the
	// published adkim/aspf.
	DMARCPass uint64
	// Failing: messages failing DMARC, what p=quarantine or p=reject
	// (pct=100) would have acted on (local overrides aside).
	Failing uint64
	// StrictPass: messages that would pass with adkim=s and aspf=s.
	StrictPass uint64
	// Unauthenticated: messages of readiness class "unauthenticated".
	Unauthenticated uint64
	// TLS-RPT sessions of reports that began in the window.
	TLSFailedSessions, TLSSuccessfulSessions uint64
	// FailureReports: failure reports that arrived in the window.
	FailureReports uint64
	// StoppedPassingSources: sources that passed DMARC in the 7 days
	// before the window and fail in it (GaugeStoppedPassingQuery), and
	// StoppedPassingMessages their failing messages in the window. Only
	// computed for windows of at most StoppedPassingMaxDays days.
	StoppedPassingSources, StoppedPassingMessages uint64
}

// GaugeDomains runs the gauge queries over the window [since, until) and
// returns one DomainGauges per policy domain seen in any of them, sorted by
// domain.
func (s *Store) GaugeDomains(ctx context.Context, since, until time.Time) ([]DomainGauges, error) {
	a, b := unixSeconds(since), unixSeconds(until)
	m := map[string]*DomainGauges{}
	get := func(d string) *DomainGauges {
		g := m[d]
		if g == nil {
			g = &DomainGauges{Domain: d}
			m[d] = g
		}
		return g
	}
	type query struct {
		name, sql string
		args      []any
		scan      func(scan func(...any) error) error
	}
	queries := []query{
		{"aggregate", GaugeAggregateQuery, []any{a, b}, func(scan func(...any) error) error {
			var d string
			var msgs, pass, fail, strict uint64
			if err := scan(&d, &msgs, &pass, &fail, &strict); err != nil {
				return err
			}
			g := get(d)
			g.Messages, g.DMARCPass, g.Failing, g.StrictPass = msgs, pass, fail, strict
			return nil
		}},
		{"unauthenticated", GaugeUnauthenticatedQuery, []any{a, b, a, b}, func(scan func(...any) error) error {
			var d string
			var n uint64
			if err := scan(&d, &n); err != nil {
				return err
			}
			get(d).Unauthenticated = n
			return nil
		}},
		{"tlsrpt", GaugeTLSRPTQuery, []any{a, b}, func(scan func(...any) error) error {
			var d string
			var failed, ok uint64
			if err := scan(&d, &failed, &ok); err != nil {
				return err
			}
			g := get(d)
			g.TLSFailedSessions, g.TLSSuccessfulSessions = failed, ok
			return nil
		}},
		{"failure reports", GaugeFailureQuery, []any{a, b}, func(scan func(...any) error) error {
			var d string
			var n uint64
			if err := scan(&d, &n); err != nil {
				return err
			}
			get(d).FailureReports = n
			return nil
		}},
	}
	if until.Sub(since) <= StoppedPassingMaxDays*24*time.Hour {
		before := unixSeconds(since.AddDate(0, 0, -7))
		queries = append(queries, query{"stopped passing", GaugeStoppedPassingQuery, []any{a, a, a, a, before, b, before, a},
			func(scan func(...any) error) error {
				var d string
				var n, m uint64
				if err := scan(&d, &n, &m); err != nil {
					return err
				}
				g := get(d)
				g.StoppedPassingSources, g.StoppedPassingMessages = n, m
				return nil
			}})
	}
	for _, q := range queries {
		if err := s.eachRow(ctx, q.sql, q.args, q.scan); err != nil {
			return nil, fmt.Errorf("store: gauges: %s: %w", q.name, err)
		}
	}
	l := make([]DomainGauges, 0, len(m))
	for _, g := range m {
		l = append(l, *g)
	}
	sort.Slice(l, func(i, j int) bool { return l[i].Domain < l[j].Domain })
	return l, nil
}

// LastReport is the latest aggregate report of a reporter organisation or a
// policy domain.
type LastReport struct {
	Name     string    // org_name or policy_domain
	Messages uint64    // messages of its reports since the query's start
	End      time.Time // date_end of its latest report, at most now
}

// LastReportsByOrg returns, per reporter organisation with aggregate reports
// that began at or after since, its messages and the end of its latest
// report, by messages descending.
func (s *Store) LastReportsByOrg(ctx context.Context, since time.Time) ([]LastReport, error) {
	return s.lastReports(ctx, "by org", GaugeLastReportOrgQuery, since)
}

// LastReportsByDomain is LastReportsByOrg per policy domain.
func (s *Store) LastReportsByDomain(ctx context.Context, since time.Time) ([]LastReport, error) {
	return s.lastReports(ctx, "by domain", GaugeLastReportDomainQuery, since)
}

func (s *Store) lastReports(ctx context.Context, what, sql string, since time.Time) ([]LastReport, error) {
	var l []LastReport
	err := s.eachRow(ctx, sql, []any{unixSeconds(since)}, func(scan func(...any) error) error {
		var r LastReport
		var end uint32
		if err := scan(&r.Name, &r.Messages, &end); err != nil {
			return err
		}
		r.End = time.Unix(int64(end), 0).UTC()
		l = append(l, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: last reports %s: %w", what, err)
	}
	return l, nil
}

// Ping checks that ClickHouse answers.
func (s *Store) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }

// eachRow runs sql and calls fn with each row's Scan.
func (s *Store) eachRow(ctx context.Context, sql string, args []any, fn func(scan func(...any) error) error) error {
	rows, err := s.conn.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// GaugeQuery is one query GaugeDomains or the last-report gauges run, for
// benchmarks: its SQL and its parameters, Windows times (since, until) or
// (SinceOnly) since alone; Windows 0: GaugeStoppedPassingQuery's.
type GaugeQuery struct {
	Name      string
	SQL       string
	Windows   int
	SinceOnly bool
}

// GaugeQueries lists the gauge queries.
func GaugeQueries() []GaugeQuery {
	return []GaugeQuery{
		{"aggregate", GaugeAggregateQuery, 1, false},
		{"stopped passing (1d window)", GaugeStoppedPassingQuery, 0, false},
		{"unauthenticated", GaugeUnauthenticatedQuery, 2, false},
		{"tlsrpt", GaugeTLSRPTQuery, 1, false},
		{"failure reports", GaugeFailureQuery, 1, false},
		{"last report by org", GaugeLastReportOrgQuery, 1, true},
		{"last report by domain", GaugeLastReportDomainQuery, 1, true},
	}
}

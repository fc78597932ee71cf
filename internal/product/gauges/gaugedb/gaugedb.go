// Package gaugedb holds the queries of the dmarc_ gauges
// (internal/product/gauges), each with the row it scans into: what one
// report window says about each policy domain, and the latest report of
// each reporter and domain. It imports nothing of the pipeline, so the
// writer's tests (store) check the gauges on the rows they write.
package gaugedb

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
)

// The gauge queries: what the dmarc_ gauges read, over one report window
// [since, until) by date_begin (arrival_date for failure reports). Each
// reads one table once and groups by policy domain; none uses FINAL (the
// writer stores every row once). Dashboards use the same expressions.

// AggregateStmt sums the valid records of window w per policy domain, from
// the rollup (aggregate_rollup, by_source = 0): messages, messages passing
// DMARC (aligned DKIM or SPF under the published modes, recomputed by
// dmarcd), messages failing it (what p=quarantine or p=reject with pct=100
// would have acted on), and messages that would pass under strict
// alignment (adkim=s and aspf=s).
func AggregateStmt(w chsql.Window) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT policy_domain,
	sum(message_count) AS messages,
	sum(pass_messages) AS pass,
	toUInt64(sum(message_count) - sum(pass_messages)) AS failing,
	sum(strict_pass_messages) AS strict_pass
FROM aggregate_rollup
WHERE by_source = 0 AND `), w.Cond(), chsql.Text(`
GROUP BY policy_domain
HAVING sum(record_count) > 0`))
}

// Thresholds of a source that stopped passing (StoppedPassingStmt).
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

// stoppedPassingHaving is the HAVING condition of StoppedPassingStmt's
// sources, its thresholds as SQL literals.
var stoppedPassingHaving = func() string {
	n := strconv.Itoa(StoppedPassingMinMessages)
	ratio := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	return `HAVING before_messages >= ` + n + ` AND before_pass >= ` + ratio(StoppedPassingBefore) + ` * before_messages
		AND now_messages >= ` + n + ` AND now_pass <= ` + ratio(StoppedPassingNow) + ` * now_messages`
}()

// StoppedPassingStmt counts, per policy domain, the sources (source IPs)
// that passed DMARC in the 7 days before window w (at least
// StoppedPassingBefore of at least StoppedPassingMinMessages messages) and
// fail in it (a pass ratio of at most StoppedPassingNow, at least
// StoppedPassingMinMessages messages), and their failing messages in the
// window: a legitimate sender that lost alignment. It reads the per-source
// rows of aggregate_sources (by_source = 1), and only the source IPs with a
// DMARC pass in the 7 days before, for any domain (the IN set, a superset
// the HAVING narrows; an IN of (domain, IP) pairs takes five times
// longer): the millions of sources that never pass (spoofing) are never
// grouped. It reads the IPs as numbers (source_ip_hash, cityHash64 of the
// IP, migration 0012) and groups by a hash of (domain, IP hash): half the
// time of the IP strings on the benchmark (docs/benchmarks.md).
func StoppedPassingStmt(w chsql.Window) chsql.Stmt {
	before := chsql.Window{Since: w.Since.AddDate(0, 0, -7), Until: w.Since}
	sinceCond := func(op string) chsql.Stmt { return chsql.TimeCond("date_begin", op, w.Since) }
	return chsql.Join(chsql.Text(`SELECT domain AS policy_domain, count() AS sources, toUInt64(sum(now_messages - now_pass)) AS failing
FROM (
	SELECT any(policy_domain) AS domain, cityHash64(policy_domain, source_ip_hash) AS source,
		sumIf(message_count, `), sinceCond("<"), chsql.Text(`) AS before_messages,
		sumIf(message_count, `), sinceCond("<"), chsql.Text(` AND dmarc_pass = 1) AS before_pass,
		sumIf(message_count, `), sinceCond(">="), chsql.Text(`) AS now_messages,
		sumIf(message_count, `), sinceCond(">="), chsql.Text(` AND dmarc_pass = 1) AS now_pass
	FROM aggregate_sources
	WHERE by_source = 1 AND `), chsql.Window{Since: before.Since, Until: w.Until}.Cond(), chsql.Text(`
		AND source_ip_hash IN (SELECT source_ip_hash FROM aggregate_sources
			WHERE by_source = 1 AND dmarc_pass = 1 AND `), before.Cond(), chsql.Text(`)
	GROUP BY source
	`+stoppedPassingHaving+`
)
GROUP BY domain`))
}

// UnauthenticatedStmt counts, per policy domain, messages of the readiness
// class "unauthenticated" (chsql.ClassRule: no pass of any kind, not
// forwarded): likely spoofing. It reads aggregate_outcomes: the records
// summed per outcome, which is all the class depends on. Like `dmarcd
// readiness` it leaves out the evidence of reports whose mail failed
// authentication (their rows have report_key chsql.AuthFailKey, their
// known selectors chsql.NotFailedAuth).
func UnauthenticatedStmt(w chsql.Window) chsql.Stmt {
	return chsql.Join(chsql.Text(`WITH `), chsql.KnownSelectors(chsql.Join(w.Cond(), chsql.Text(" AND "+chsql.NotFailedAuth))), chsql.Text(`
SELECT policy_domain, sumIf(message_count, `+chsql.ClassRule+` = 'unauthenticated') AS unauthenticated
FROM aggregate_outcomes
WHERE report_key = '' AND dmarc_pass = 0 AND `), w.Cond(), chsql.Text(`
GROUP BY policy_domain`))
}

// TLSRPTStmt sums failed and successful TLS sessions per policy domain of
// the TLS reports (RFC 8460) that began in window w.
func TLSRPTStmt(w chsql.Window) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT policy_domain, sum(failed_sessions) AS failed, sum(successful_sessions) AS successful
FROM tlsrpt_policies
WHERE `), w.Cond(), chsql.Text(`
GROUP BY policy_domain`))
}

// FailureStmt counts failure reports per policy domain whose Arrival-Date
// falls in window w.
func FailureStmt(w chsql.Window) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT policy_domain, count() AS reports
FROM failure_reports
WHERE `), w.CondOn("arrival_date"), chsql.Text(`
GROUP BY policy_domain`))
}

// LastReportStmt returns, per reporter organisation (by "org_name") or
// per policy domain (by "policy_domain"), the messages of its aggregate
// reports that began since, and the end of the latest period it reported
// on (never later than now).
func LastReportStmt(by string, since time.Time) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT `+by+`, sum(message_count) AS messages,
	toUInt32(least(max(date_end), now())) AS last_end
FROM aggregate_reports
WHERE `), chsql.TimeCond("date_begin", ">=", since), chsql.Text(`
GROUP BY `+by+`
ORDER BY messages DESC, `+by))
}

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
	// before the window and fail in it (StoppedPassingStmt), and
	// StoppedPassingMessages their failing messages in the window. Only
	// computed for windows of at most StoppedPassingMaxDays days.
	StoppedPassingSources, StoppedPassingMessages uint64
}

// Rows of the gauge queries, each scanned by its column names.
type (
	aggregateRow struct {
		Domain     string `ch:"policy_domain"`
		Messages   uint64 `ch:"messages"`
		Pass       uint64 `ch:"pass"`
		Failing    uint64 `ch:"failing"`
		StrictPass uint64 `ch:"strict_pass"`
	}
	unauthenticatedRow struct {
		Domain          string `ch:"policy_domain"`
		Unauthenticated uint64 `ch:"unauthenticated"`
	}
	tlsrptRow struct {
		Domain     string `ch:"policy_domain"`
		Failed     uint64 `ch:"failed"`
		Successful uint64 `ch:"successful"`
	}
	failureRow struct {
		Domain  string `ch:"policy_domain"`
		Reports uint64 `ch:"reports"`
	}
	stoppedPassingRow struct {
		Domain  string `ch:"policy_domain"`
		Sources uint64 `ch:"sources"`
		Failing uint64 `ch:"failing"`
	}
)

// gaugeQuery is one query of ReadDomains: it runs and folds its rows into
// the domains' gauges (get returns a domain's, created on first use).
type gaugeQuery struct {
	name string
	run  func(ctx context.Context, q chsql.Querier, get func(string) *DomainGauges) error
}

// fold makes a gaugeQuery of st whose rows of type T set(get(domain), row).
func fold[T any](name string, st chsql.Stmt, domain func(T) string, set func(*DomainGauges, T)) gaugeQuery {
	return gaugeQuery{name, func(ctx context.Context, q chsql.Querier, get func(string) *DomainGauges) error {
		l, err := chsql.Select[T](ctx, q, st)
		for _, r := range l {
			set(get(domain(r)), r)
		}
		return err
	}}
}

// domainQueries are the queries ReadDomains runs over window w.
func domainQueries(w chsql.Window) []gaugeQuery {
	l := []gaugeQuery{
		fold("aggregate", AggregateStmt(w), func(r aggregateRow) string { return r.Domain }, func(g *DomainGauges, r aggregateRow) {
			g.Messages, g.DMARCPass, g.Failing, g.StrictPass = r.Messages, r.Pass, r.Failing, r.StrictPass
		}),
		fold("unauthenticated", UnauthenticatedStmt(w), func(r unauthenticatedRow) string { return r.Domain }, func(g *DomainGauges, r unauthenticatedRow) {
			g.Unauthenticated = r.Unauthenticated
		}),
		fold("tlsrpt", TLSRPTStmt(w), func(r tlsrptRow) string { return r.Domain }, func(g *DomainGauges, r tlsrptRow) {
			g.TLSFailedSessions, g.TLSSuccessfulSessions = r.Failed, r.Successful
		}),
		fold("failure reports", FailureStmt(w), func(r failureRow) string { return r.Domain }, func(g *DomainGauges, r failureRow) {
			g.FailureReports = r.Reports
		}),
	}
	if w.Until.Sub(w.Since) <= StoppedPassingMaxDays*24*time.Hour {
		l = append(l, fold("stopped passing", StoppedPassingStmt(w), func(r stoppedPassingRow) string { return r.Domain }, func(g *DomainGauges, r stoppedPassingRow) {
			g.StoppedPassingSources, g.StoppedPassingMessages = r.Sources, r.Failing
		}))
	}
	return l
}

// ReadDomains runs the gauge queries over the window [since, until) and
// returns one DomainGauges per policy domain seen in any of them, sorted by
// domain.
func ReadDomains(ctx context.Context, q chsql.Querier, since, until time.Time) ([]DomainGauges, error) {
	m := map[string]*DomainGauges{}
	get := func(d string) *DomainGauges {
		g := m[d]
		if g == nil {
			g = &DomainGauges{Domain: d}
			m[d] = g
		}
		return g
	}
	for _, gq := range domainQueries(chsql.Window{Since: since, Until: until}) {
		if err := gq.run(ctx, q, get); err != nil {
			return nil, fmt.Errorf("gauges: %s: %w", gq.name, err)
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

// lastReportRow is a row of LastReportStmt by org_name or policy_domain.
type lastReportRow struct {
	Org      string `ch:"org_name"`
	Domain   string `ch:"policy_domain"`
	Messages uint64 `ch:"messages"`
	End      uint32 `ch:"last_end"`
}

// ReadLastReportsByOrg returns, per reporter organisation with aggregate
// reports that began at or after since, its messages and the end of its
// latest report, by messages descending.
func ReadLastReportsByOrg(ctx context.Context, q chsql.Querier, since time.Time) ([]LastReport, error) {
	return readLastReports(ctx, q, "org_name", since)
}

// ReadLastReportsByDomain is ReadLastReportsByOrg per policy domain.
func ReadLastReportsByDomain(ctx context.Context, q chsql.Querier, since time.Time) ([]LastReport, error) {
	return readLastReports(ctx, q, "policy_domain", since)
}

func readLastReports(ctx context.Context, q chsql.Querier, by string, since time.Time) ([]LastReport, error) {
	rows, err := chsql.Select[lastReportRow](ctx, q, LastReportStmt(by, since))
	if err != nil {
		return nil, fmt.Errorf("last reports by %s: %w", by, err)
	}
	var l []LastReport
	for _, r := range rows {
		l = append(l, LastReport{Name: r.Org + r.Domain, Messages: r.Messages, End: time.Unix(int64(r.End), 0).UTC()})
	}
	return l, nil
}

// NamedStmt is a gauge query with its arguments, for benchmarks.
type NamedStmt struct {
	Name string
	chsql.Stmt
}

// Queries are the gauge queries over window [since, until), the stopped
// passing one over its last day (its longest window is
// StoppedPassingMaxDays; the benchmark times a day), the last-report ones
// since since.
func Queries(since, until time.Time) []NamedStmt {
	w := chsql.Window{Since: since, Until: until}
	return []NamedStmt{
		{"aggregate", AggregateStmt(w)},
		{"stopped passing (1d window)", StoppedPassingStmt(chsql.Window{Since: until.AddDate(0, 0, -1), Until: until})},
		{"unauthenticated", UnauthenticatedStmt(w)},
		{"tlsrpt", TLSRPTStmt(w)},
		{"failure reports", FailureStmt(w)},
		{"last report by org", LastReportStmt("org_name", since)},
		{"last report by domain", LastReportStmt("policy_domain", since)},
	}
}

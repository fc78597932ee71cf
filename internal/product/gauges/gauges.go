// Package gauges computes dmarcd's report-time gauges (prefix dmarc_) from
// ClickHouse: the DMARC facts of complete report windows, which alerts use
// instead of ingest-time counters (those land on the day a report arrived,
// one to three days after the mail was sent).
//
// A Gauges is a prometheus.Collector holding the last snapshot; Run refreshes
// the snapshot on a ticker (default every 5 minutes), so a scrape never
// queries ClickHouse. Series of domains or organisations that left the
// snapshot disappear with it.
//
// Windows are complete report days: they end at the UTC midnight `lag` days
// before today (default 2: most reporters send a day's report within a day or
// two) and span 1, 7 and 30 days, by the reports' date_begin (the failure
// reports' Arrival-Date).
//
// Labels are bounded (docs/dashboards.md): domain is what the labeler given to
// SetDomains says (the daemon's: an owned domain, subdomains summed into it
// and every other domain summed as "other", so that forged domains cannot
// push an owned one out; metrics.Domains), or without one, one of the
// MaxLabels policy domains with the most messages over 30 days (others
// summed as "other"); org one of the MaxLabels reporter organisations with
// the most messages (others as "other"), each cut to metrics.MaxLabelBytes
// and made printable (metrics.LabelValue: an 8 MiB org_name costs a scrape
// 64 bytes); window "1d", "7d" or "30d", policy "quarantine" or "reject".
package gauges

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dmarcd/dmarcd/internal/lib/metrics"
	"github.com/dmarcd/dmarcd/internal/product/gauges/gaugedb"
)

// Defaults of New's arguments when zero (or negative).
const (
	DefaultInterval = 5 * time.Minute
	DefaultLag      = 2
)

// MaxLabels bounds the domain and org labels; the rest count as "other".
const MaxLabels = 50

// Other is the label value of domains and organisations beyond MaxLabels.
const Other = "other"

// lastReportLookback is how far back last report times are looked for: a
// domain whose reports stopped keeps its series (and its alert) this long.
const lastReportLookback = 400 * 24 * time.Hour

// Window is a report window of whole UTC days.
type Window struct {
	Name string // label value: "1d", "7d", "30d"
	Days int
}

// Windows are the windows every domain gauge is computed over.
var Windows = []Window{{"1d", 1}, {"7d", 7}, {"30d", 30}}

// Gauges computes the dmarc_ gauges from a Store. It is safe for concurrent
// use.
type Gauges struct {
	st       Querier
	interval time.Duration
	lag      int
	log      *slog.Logger
	now      func() time.Time

	mu     sync.Mutex
	snap   snapshot
	labels Labeler // nil: the MaxLabels busiest domains
}

// Labeler maps a policy domain to its label value: *metrics.Domains.
type Labeler interface {
	Label(domain string) string
}

// SetDomains makes g label domains with l (shared with the ingest-time
// counters of the process) instead of keeping the MaxLabels domains with
// the most messages; l is called in order of messages over the longest
// window, busiest first. Call it before Run.
func (g *Gauges) SetDomains(l Labeler) {
	g.mu.Lock()
	g.labels = l
	g.mu.Unlock()
}

// snapshot is the result of one successful Update, plus the health of the
// last attempt.
type snapshot struct {
	domains    map[string][]DomainGauges // by window name, domains already bounded
	orgs       []LastReport              // bounded
	lastDomain []LastReport              // bounded
	windowEnd  time.Time
	updated    time.Time // last successful update
	took       time.Duration
	up         bool // the last attempt succeeded
	errors     uint64
}

// Querier is what Gauges reads: Reader over *store.Store, or the daemon's store that
// opens on first use.
type Querier interface {
	GaugeDomains(ctx context.Context, since, until time.Time) ([]DomainGauges, error)
	LastReportsByOrg(ctx context.Context, since time.Time) ([]LastReport, error)
	LastReportsByDomain(ctx context.Context, since time.Time) ([]LastReport, error)
}

// New returns Gauges reading st every interval (DefaultInterval if zero)
// over windows ending lag days before today's UTC midnight (DefaultLag if
// negative; 0 means windows end at today's midnight). log may be nil.
func New(st Querier, interval time.Duration, lag int, log *slog.Logger) *Gauges {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if lag < 0 {
		lag = DefaultLag
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Gauges{st: st, interval: interval, lag: lag, log: log, now: time.Now}
}

// WindowEnd returns the end of the report windows at time now: the UTC
// midnight lag days before now's day.
func WindowEnd(now time.Time, lag int) time.Time {
	return now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -lag)
}

// Run updates the gauges now and then every interval until ctx is done. An
// update that fails is logged and leaves the previous values, with
// dmarcd_clickhouse_up at 0.
func (g *Gauges) Run(ctx context.Context) {
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		if err := g.Update(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("gauges: update failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Update runs the gauge queries once and replaces the snapshot. On error the
// previous values stay and dmarcd_clickhouse_up becomes 0.
func (g *Gauges) Update(ctx context.Context) error {
	start := time.Now()
	s, err := g.query(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.snap.up = false
		g.snap.errors++
		return err
	}
	s.took = time.Since(start)
	s.up = true
	s.errors = g.snap.errors
	g.snap = s
	return nil
}

func (g *Gauges) query(ctx context.Context) (snapshot, error) {
	now := g.now()
	end := WindowEnd(now, g.lag)
	s := snapshot{domains: map[string][]DomainGauges{}, windowEnd: end, updated: now}
	raw := map[string][]DomainGauges{}
	for _, w := range Windows {
		l, err := g.st.GaugeDomains(ctx, end.AddDate(0, 0, -w.Days), end)
		if err != nil {
			return s, err
		}
		raw[w.Name] = l
	}
	label := g.labeler(raw[Windows[len(Windows)-1].Name])
	for name, l := range raw {
		s.domains[name] = labelDomains(l, label)
	}
	orgs, err := g.st.LastReportsByOrg(ctx, now.Add(-lastReportLookback))
	if err != nil {
		return s, err
	}
	s.orgs = boundLast(mergeLast(orgs, metrics.LabelValue))
	doms, err := g.st.LastReportsByDomain(ctx, now.Add(-lastReportLookback))
	if err != nil {
		return s, err
	}
	s.lastDomain = boundLast(mergeLast(doms, label))
	return s, nil
}

// labeler returns the label of each domain for this snapshot. With a
// Labeler, the domains of longest (the longest window) are shown to it
// busiest first (ties and TLS/failure-only domains by name); without one,
// those MaxLabels domains keep their label and the rest are Other.
func (g *Gauges) labeler(longest []DomainGauges) func(string) string {
	g.mu.Lock()
	l := g.labels
	g.mu.Unlock()
	ordered := byMessages(longest)
	if l != nil {
		for _, d := range ordered {
			l.Label(d.Domain)
		}
		return l.Label
	}
	keep := map[string]bool{}
	for i := 0; i < len(ordered) && i < MaxLabels; i++ {
		keep[ordered[i].Domain] = true
	}
	return func(d string) string {
		if !keep[d] || d == Other {
			return Other
		}
		return metrics.LabelValue(d)
	}
}

// byMessages returns l sorted by messages, most first, then by name.
func byMessages(l []DomainGauges) []DomainGauges {
	l = append([]DomainGauges(nil), l...)
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Messages != l[j].Messages {
			return l[i].Messages > l[j].Messages
		}
		return l[i].Domain < l[j].Domain
	})
	return l
}

// labelDomains sums the entries of l by their label (label(domain)), in
// order of first appearance, Other last.
func labelDomains(l []DomainGauges, label func(string) string) []DomainGauges {
	var out []DomainGauges
	at := map[string]int{}
	var other DomainGauges
	others := false
	for _, d := range l {
		name := label(d.Domain)
		if name == Other {
			others = true
			addGauges(&other, d)
			continue
		}
		i, ok := at[name]
		if !ok {
			i = len(out)
			at[name] = i
			out = append(out, DomainGauges{Domain: name})
		}
		addGauges(&out[i], d)
	}
	if others {
		other.Domain = Other
		out = append(out, other)
	}
	return out
}

// addGauges adds the figures of d to sum (not its Domain).
func addGauges(sum *DomainGauges, d DomainGauges) {
	sum.Messages += d.Messages
	sum.DMARCPass += d.DMARCPass
	sum.Failing += d.Failing
	sum.StrictPass += d.StrictPass
	sum.Unauthenticated += d.Unauthenticated
	sum.TLSFailedSessions += d.TLSFailedSessions
	sum.TLSSuccessfulSessions += d.TLSSuccessfulSessions
	sum.FailureReports += d.FailureReports
	sum.StoppedPassingSources += d.StoppedPassingSources
	sum.StoppedPassingMessages += d.StoppedPassingMessages
}

// mergeLast renames the entries of l (sorted by messages) with label and
// merges those that end up with the same name (messages summed, latest
// end), sorted again by messages: two org names that share their first
// metrics.MaxLabelBytes bytes are one series, not a duplicate that would
// fail the whole scrape.
func mergeLast(l []LastReport, label func(string) string) []LastReport {
	var out []LastReport
	at := map[string]int{}
	for _, r := range l {
		name := label(r.Name)
		i, ok := at[name]
		if !ok {
			i = len(out)
			at[name] = i
			out = append(out, LastReport{Name: name})
		}
		out[i].Messages += r.Messages
		if r.End.After(out[i].End) {
			out[i].End = r.End
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Name == Other) != (out[j].Name == Other) {
			return out[j].Name == Other
		}
		return out[i].Messages > out[j].Messages
	})
	return out
}

// boundLast keeps the first MaxLabels entries (sorted by messages, Other
// last) and folds the rest, and any Other, into Other with the latest end.
func boundLast(l []LastReport) []LastReport {
	if len(l) <= MaxLabels {
		return l
	}
	out := append([]LastReport(nil), l[:MaxLabels]...)
	other := LastReport{Name: Other}
	for _, r := range l[MaxLabels:] {
		other.Messages += r.Messages
		if r.End.After(other.End) {
			other.End = r.End
		}
	}
	return append(out, other)
}

var (
	descMessages = prometheus.NewDesc("dmarc_messages",
		"Messages in valid aggregate records of reports that began in the window, per policy domain.",
		[]string{"domain", "window"}, nil)
	descPassRatio = prometheus.NewDesc("dmarc_pass_ratio",
		"Share of messages passing DMARC (aligned DKIM or aligned SPF under the published adkim/aspf, recomputed by dmarcd); absent when the window has no messages.",
		[]string{"domain", "window"}, nil)
	descWouldBlock = prometheus.NewDesc("dmarc_would_block_messages",
		"Messages failing DMARC: what the policy (quarantine or reject, pct=100) would have acted on, receivers' local overrides aside.",
		[]string{"domain", "window", "policy"}, nil)
	descStrictRatio = prometheus.NewDesc("dmarc_strict_pass_ratio",
		"Share of messages that would pass DMARC under strict alignment (adkim=s, aspf=s); absent when the window has no messages.",
		[]string{"domain", "window"}, nil)
	descUnauth = prometheus.NewDesc("dmarc_unauthenticated_messages",
		"Messages from unauthenticated sources (readiness class unauthenticated: no pass of any kind, not forwarded): likely spoofing.",
		[]string{"domain", "window"}, nil)
	descTLSFailed = prometheus.NewDesc("dmarc_tlsrpt_failed_sessions",
		"Failed TLS sessions in SMTP TLS reports (RFC 8460) that began in the window.",
		[]string{"domain", "window"}, nil)
	descTLSOK = prometheus.NewDesc("dmarc_tlsrpt_successful_sessions",
		"Successful TLS sessions in SMTP TLS reports (RFC 8460) that began in the window.",
		[]string{"domain", "window"}, nil)
	descFailure = prometheus.NewDesc("dmarc_failure_reports",
		"Failure (ruf) reports whose Arrival-Date falls in the window.",
		[]string{"domain", "window"}, nil)
	descStopped = prometheus.NewDesc("dmarc_sources_stopped_passing",
		"Sources (source IPs) that passed DMARC in the 7 days before the window and fail in it: a legitimate sender that lost alignment (windows 1d and 7d only).",
		[]string{"domain", "window"}, nil)
	descStoppedMsgs = prometheus.NewDesc("dmarc_sources_stopped_passing_messages",
		"Messages failing DMARC in the window from sources that passed in the 7 days before it (windows 1d and 7d only).",
		[]string{"domain", "window"}, nil)
	descLastOrg = prometheus.NewDesc("dmarc_last_report_timestamp_seconds",
		"End of the period of the latest aggregate report of a reporter organisation (Unix time, at most now).",
		[]string{"org"}, nil)
	descLastDomain = prometheus.NewDesc("dmarc_domain_last_report_timestamp_seconds",
		"End of the period of the latest aggregate report for a policy domain (Unix time, at most now).",
		[]string{"domain"}, nil)
	descWindowEnd = prometheus.NewDesc("dmarc_gauges_window_end_timestamp_seconds",
		"End of the report windows of the dmarc_ gauges (a UTC midnight, lag days back).", nil, nil)
	descUpdated = prometheus.NewDesc("dmarc_gauges_last_update_timestamp_seconds",
		"Unix time of the last successful update of the dmarc_ gauges.", nil, nil)
	descTook = prometheus.NewDesc("dmarc_gauges_update_duration_seconds",
		"Time the last successful update of the dmarc_ gauges took.", nil, nil)
	descErrors = prometheus.NewDesc("dmarc_gauges_update_errors_total",
		"Updates of the dmarc_ gauges that failed.", nil, nil)
	descUp = prometheus.NewDesc("dmarcd_clickhouse_up",
		"1 if the last gauge update could query ClickHouse, 0 if it failed.", nil, nil)
)

// Describe implements prometheus.Collector.
func (g *Gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMessages, descPassRatio, descWouldBlock, descStrictRatio,
		descUnauth, descTLSFailed, descTLSOK, descFailure, descStopped, descStoppedMsgs, descLastOrg, descLastDomain, descWindowEnd,
		descUpdated, descTook, descErrors, descUp} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the values of the last snapshot.
func (g *Gauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	s := g.snap
	g.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	up := 0.0
	if s.up {
		up = 1
	}
	gauge(descUp, up)
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(s.errors))
	if s.updated.IsZero() {
		return // nothing computed yet: no dmarc_ series rather than zeros
	}
	gauge(descUpdated, float64(s.updated.Unix()))
	gauge(descTook, s.took.Seconds())
	gauge(descWindowEnd, float64(s.windowEnd.Unix()))
	for _, w := range Windows {
		for _, d := range s.domains[w.Name] {
			gauge(descMessages, float64(d.Messages), d.Domain, w.Name)
			if d.Messages > 0 {
				gauge(descPassRatio, float64(d.DMARCPass)/float64(d.Messages), d.Domain, w.Name)
				gauge(descStrictRatio, float64(d.StrictPass)/float64(d.Messages), d.Domain, w.Name)
			}
			gauge(descWouldBlock, float64(d.Failing), d.Domain, w.Name, "quarantine")
			gauge(descWouldBlock, float64(d.Failing), d.Domain, w.Name, "reject")
			gauge(descUnauth, float64(d.Unauthenticated), d.Domain, w.Name)
			gauge(descTLSFailed, float64(d.TLSFailedSessions), d.Domain, w.Name)
			gauge(descTLSOK, float64(d.TLSSuccessfulSessions), d.Domain, w.Name)
			gauge(descFailure, float64(d.FailureReports), d.Domain, w.Name)
			if w.Days <= gaugedb.StoppedPassingMaxDays {
				gauge(descStopped, float64(d.StoppedPassingSources), d.Domain, w.Name)
				gauge(descStoppedMsgs, float64(d.StoppedPassingMessages), d.Domain, w.Name)
			}
		}
	}
	for _, o := range s.orgs {
		gauge(descLastOrg, float64(o.End.Unix()), o.Name)
	}
	for _, d := range s.lastDomain {
		gauge(descLastDomain, float64(d.End.Unix()), d.Name)
	}
}

// MetricNames lists every metric name Gauges exports (for dashboards and
// alert rules checks).
var MetricNames = []string{"dmarc_messages", "dmarc_pass_ratio", "dmarc_would_block_messages",
	"dmarc_strict_pass_ratio", "dmarc_unauthenticated_messages", "dmarc_tlsrpt_failed_sessions",
	"dmarc_tlsrpt_successful_sessions", "dmarc_failure_reports",
	"dmarc_sources_stopped_passing", "dmarc_sources_stopped_passing_messages", "dmarc_last_report_timestamp_seconds",
	"dmarc_domain_last_report_timestamp_seconds", "dmarc_gauges_window_end_timestamp_seconds",
	"dmarc_gauges_last_update_timestamp_seconds", "dmarc_gauges_update_duration_seconds",
	"dmarc_gauges_update_errors_total", "dmarcd_clickhouse_up"}

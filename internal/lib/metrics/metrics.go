// Package metrics holds dmarcd's Prometheus metrics: the daemon's own health
// (prefix dmarcd_) and the DMARC facts counted at ingest time (prefix dmarc_).
// Labels are bounded (docs/dashboards.md): policy domains are the owned
// domains (others count as "other"; with every domain accepted, the first
// MaxDomains seen: see Domains), values taken from reports are printable and
// at most MaxLabelBytes long (LabelValue), and result words come from closed
// sets (unknown words count as "other"). Never an IP, a selector or a report
// ID.
package metrics

import (
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dmarcd/dmarcd/parse"
)

// MaxDomains bounds the policy_domain label when no owned domains are
// configured (owned_domains empty or ["*"]): the first MaxDomains domains
// seen get their own series, later ones count as "other".
const MaxDomains = 50

// Metrics is the set of collectors of one process. Its methods take plain
// values; the composition root (internal/app/wire.Observer) turns what the
// pipeline tells into them.
type Metrics struct {
	Registry *prometheus.Registry

	inputs       *prometheus.CounterVec
	inputSeconds *prometheus.HistogramVec
	stageSeconds *prometheus.HistogramVec
	reports      *prometheus.CounterVec
	records      *prometheus.CounterVec
	messages     *prometheus.CounterVec
	lastSuccess  *prometheus.GaugeVec
	imapBacklog  *prometheus.GaugeVec
	failures     *prometheus.CounterVec
	tlsFailed    *prometheus.CounterVec
	tlsOK        *prometheus.CounterVec

	domains *Domains
}

// New registers every collector, the Go and process collectors and
// dmarcd_build_info in a new registry. ownedDomains bound the domain labels
// (NewDomains: empty or ["*"] is every domain, the first MaxDomains seen).
func New(version string, ownedDomains []string) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), domains: NewDomains(ownedDomains)}
	m.inputs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmarcd_inputs_total",
		Help: "Inputs (mails, objects, files) processed, by source, report kind, status (stored, duplicate, invalid, error) and reason code.",
	}, []string{"source", "kind", "status", "reason_code"})
	m.inputSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "dmarcd_input_duration_seconds",
		Help:    "Time to extract, parse and store one input, by source and kind.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
	}, []string{"source", "kind"})
	m.stageSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "dmarcd_stage_duration_seconds",
		Help:    "Time per report in each stage: parse (decompression and parsing, streamed) and store (ClickHouse checks and writes), by report kind.",
		Buckets: prometheus.ExponentialBuckets(0.001, 3, 10),
	}, []string{"kind", "stage"})
	m.reports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmarcd_reports_total",
		Help: "Reports found in inputs, by source, kind and status (stored or duplicate).",
	}, []string{"source", "kind", "status"})
	m.records = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmarcd_records_stored_total",
		Help: "Aggregate records (and TLS policies) newly stored, by source and kind.",
	}, []string{"source", "kind"})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmarcd_messages_stored_total",
		Help: "Messages counted by newly stored aggregate records (sessions for TLS reports), by source and kind. Counted on the day of ingest, not of the mail: use the dmarc_ gauges for alerts.",
	}, []string{"source", "kind"})
	m.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dmarcd_last_success_timestamp_seconds",
		Help: "Unix time of the last input of a source that ended stored or duplicate.",
	}, []string{"source"})
	m.imapBacklog = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dmarcd_imap_backlog_messages",
		Help: "Mails waiting in an IMAP source's mailbox, as of its last pass and mail processed.",
	}, []string{"source"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmarc_failure_reports_total",
		Help: "Failure (ruf) reports newly stored, by policy domain and Auth-Failure value (adsp, bodyhash, revoked, signature, spf, dmarc, none, other).",
	}, []string{"policy_domain", "auth_failure"})
	m.tlsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmarc_tlsrpt_failed_sessions_total",
		Help: "Failed TLS sessions in newly stored SMTP TLS reports, by policy domain and result type (RFC 8460 registry; others as other).",
	}, []string{"policy_domain", "result_type"})
	m.tlsOK = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmarc_tlsrpt_successful_sessions_total",
		Help: "Successful TLS sessions in newly stored SMTP TLS reports, by policy domain.",
	}, []string{"policy_domain"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "dmarcd_build_info",
		Help:        "dmarcd's version and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": LabelValue(version), "goversion": runtime.Version()},
	})
	build.Set(1)
	m.declareDomains()
	m.Registry.MustRegister(m.inputs, m.inputSeconds, m.stageSeconds, m.reports, m.records, m.messages, m.lastSuccess, m.imapBacklog,
		m.failures, m.tlsFailed, m.tlsOK, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// The status label values of dmarcd_inputs_total and dmarcd_reports_total:
// the fate of an input, the words of ingest.Status.
const (
	Stored    = "stored"
	Duplicate = "duplicate"
	Invalid   = "invalid"
	Error     = "error"
)

// Report kinds and input kinds, the kind label of the input counters.
var (
	reportKinds = []string{"aggregate", "failure", "tlsrpt"}
	inputKinds  = append(append([]string{}, reportKinds...), "none")
	stages      = []string{"parse", "store"}
	// errorCodes are the reason codes of status error: the store's, and an
	// input that could not be read to its end.
	errorCodes = []string{string(parse.StoreUnavailable), string(parse.InputUnreadable), "other"}
)

// Source declares, at zero, the series
// of source that are known up front, so that rate() and increase() see
// the first input of a source after a restart. For dmarcd_inputs_total,
// per kind: stored and duplicate without a code, stored with
// invalid_value (records set aside), invalid with every reason code (and
// "other"), error with the codes of an error (store_unavailable,
// input_unreadable, other); kind none only invalid and error. About 90
// series a source. The duration histogram of each kind, and per report kind
// dmarcd_reports_total (stored, duplicate), dmarcd_records_stored_total and
// dmarcd_messages_stored_total. dmarcd_last_success_timestamp_seconds is
// left out: 0 would read as a success in 1970.
func (m *Metrics) Source(source string) {
	invalidCodes := []string{"other"}
	for _, c := range parse.Codes {
		invalidCodes = append(invalidCodes, string(c))
	}
	for _, kind := range inputKinds {
		m.inputSeconds.WithLabelValues(source, kind)
		for _, c := range invalidCodes {
			m.inputs.WithLabelValues(source, kind, Invalid, c)
		}
		for _, c := range errorCodes {
			m.inputs.WithLabelValues(source, kind, Error, c)
		}
		if kind == "none" {
			continue
		}
		m.inputs.WithLabelValues(source, kind, Stored, "")
		m.inputs.WithLabelValues(source, kind, Stored, string(parse.InvalidValue))
		m.inputs.WithLabelValues(source, kind, Duplicate, "")
		m.reports.WithLabelValues(source, kind, Stored)
		m.reports.WithLabelValues(source, kind, Duplicate)
		m.records.WithLabelValues(source, kind)
		m.messages.WithLabelValues(source, kind)
	}
}

// declareDomains declares, at zero, the series known when the process
// starts: the stage histograms of each report kind, and with owned domains
// the failure and TLS counters of each owned domain and of "other", for
// every Auth-Failure value and result type.
func (m *Metrics) declareDomains() {
	for _, kind := range reportKinds {
		for _, st := range stages {
			m.stageSeconds.WithLabelValues(kind, st)
		}
	}
	if !m.domains.HasOwned() {
		return
	}
	for _, d := range append(append([]string{}, m.domains.owned...), Other) {
		for _, af := range append(sortedKeys(authFailures), "none", Other) {
			m.failures.WithLabelValues(d, af)
		}
		for _, rt := range append(sortedKeys(resultTypes), "unspecified", Other) {
			m.tlsFailed.WithLabelValues(d, rt)
		}
		m.tlsOK.WithLabelValues(d)
	}
}

// sortedKeys returns the keys of a closed set in order.
func sortedKeys(set map[string]bool) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Input is what became of one input: the labels and counts of
// dmarcd_inputs_total and the counters it feeds.
type Input struct {
	Kind       string // aggregate | failure | tlsrpt | none
	Status     string // Stored, Duplicate, Invalid or Error
	ReasonCode string // a parse.Code, or ""; any other counts as "other"
	Reports    int    // reports found in the input
	Records    int    // records (TLS policies) newly stored
	Messages   uint64 // messages (TLS sessions) those records count
}

// Input counts one input of source that took took.
func (m *Metrics) Input(source string, in Input, took time.Duration) {
	code := in.ReasonCode
	if !knownCode(code) {
		code = "other"
	}
	m.inputs.WithLabelValues(source, in.Kind, in.Status, code).Inc()
	m.inputSeconds.WithLabelValues(source, in.Kind).Observe(took.Seconds())
	switch in.Status {
	case Stored, Duplicate:
		m.lastSuccess.WithLabelValues(source).SetToCurrentTime()
		m.reports.WithLabelValues(source, in.Kind, in.Status).Add(float64(in.Reports))
		if in.Status == Stored {
			// An input whose reports were partly duplicates counts all of
			// them here: the outcome of an input does not split them, and
			// re-delivery of one report inside a new mail is rare.
			m.records.WithLabelValues(source, in.Kind).Add(float64(in.Records))
			m.messages.WithLabelValues(source, in.Kind).Add(float64(in.Messages))
		}
	}
}

// IMAPBacklog returns the function an IMAP source calls with its backlog.
func (m *Metrics) IMAPBacklog(source string) func(n int) {
	g := m.imapBacklog.WithLabelValues(source)
	return func(n int) { g.Set(float64(n)) }
}

// Stage observes the time one report of kind spent in stage ("parse" or
// "store").
func (m *Metrics) Stage(kind, stage string, took time.Duration) {
	m.stageSeconds.WithLabelValues(kind, stage).Observe(took.Seconds())
}

// FailureStored counts a failure report stored now for the policy domain
// domain, once per Auth-Failure value (RFC 6591 §3.2.2; "none" when it has
// none).
func (m *Metrics) FailureStored(domain string, authFailure []string) {
	d := m.domain(domain)
	if len(authFailure) == 0 {
		m.failures.WithLabelValues(d, "none").Inc()
		return
	}
	for _, af := range authFailure {
		m.failures.WithLabelValues(d, closed(af, authFailures)).Inc()
	}
}

// TLSPolicy is what one policy of an SMTP TLS report (RFC 8460 §4.4)
// counts.
type TLSPolicy struct {
	Domain     string // the policy domain
	Successful uint64 // total-successful-session-count
	Failed     uint64 // total-failure-session-count
	Failures   []TLSFailure
}

// TLSFailure is one failure-details entry of a TLS policy.
type TLSFailure struct {
	ResultType     string // result-type (RFC 8460 §4.3)
	FailedSessions uint64 // failed-session-count
}

// TLSRPTStored counts the sessions of the policies of a TLS report stored
// now.
func (m *Metrics) TLSRPTStored(policies []TLSPolicy) {
	for _, p := range policies {
		d := m.domain(p.Domain)
		m.tlsOK.WithLabelValues(d).Add(float64(p.Successful))
		for _, f := range p.Failures {
			m.tlsFailed.WithLabelValues(d, closed(f.ResultType, resultTypes)).Add(float64(f.FailedSessions))
		}
		var detailed uint64
		for _, f := range p.Failures {
			detailed += f.FailedSessions
		}
		if p.Failed > detailed {
			// Sessions counted in the summary without a failure detail.
			m.tlsFailed.WithLabelValues(d, "unspecified").Add(float64(p.Failed - detailed))
		}
	}
}

// Domains returns the labeler of the policy domain labels, for the other
// collectors of the process (the report-time gauges) to share its bound.
func (m *Metrics) Domains() *Domains { return m.domains }

// domain bounds the policy_domain label.
func (m *Metrics) domain(d string) string { return m.domains.Label(d) }

var authFailures = map[string]bool{"adsp": true, "bodyhash": true, "revoked": true, "signature": true, "spf": true, "dmarc": true}

// resultTypes is the RFC 8460 §6.6 registry and values seen in the wild.
var resultTypes = map[string]bool{"starttls-not-supported": true, "certificate-host-mismatch": true,
	"certificate-expired": true, "certificate-not-trusted": true, "validation-failure": true,
	"tlsa-invalid": true, "dnssec-invalid": true, "dane-required": true, "sts-policy-invalid": true,
	"sts-webpki-invalid": true, "sts-policy-fetch-error": true}

func closed(v string, set map[string]bool) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if set[v] {
		return v
	}
	return "other"
}

func knownCode(c string) bool {
	if c == "" {
		return true
	}
	for _, k := range parse.Codes {
		if string(k) == c {
			return true
		}
	}
	return false
}

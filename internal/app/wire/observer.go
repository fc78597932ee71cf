package wire

import (
	"time"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/lib/metrics"
	"github.com/dmarcd/dmarcd/parse/failure"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
)

// Observer is the ingest.SourceObserver that counts what a pipeline does in
// m: it turns outcomes and reports into the plain values metrics takes, so
// that metrics, a leaf library, imports nothing of the pipeline.
func Observer(m *metrics.Metrics) ingest.SourceObserver { return observer{m} }

// observer adapts *metrics.Metrics to ingest.SourceObserver.
type observer struct{ m *metrics.Metrics }

// Source declares the series of source at zero (metrics.Metrics.Source).
func (o observer) Source(source string) { o.m.Source(source) }

// Input counts one input's outcome; the status words of ingest.Status are
// the status label values of metrics.
func (o observer) Input(source string, out ingest.Outcome, took time.Duration) {
	o.m.Input(source, metrics.Input{Kind: out.Kind, Status: string(out.Status), ReasonCode: out.ReasonCode,
		Reports: out.Reports, Records: out.Records, Messages: out.Messages}, took)
}

// Stage observes one report's time in a stage.
func (o observer) Stage(kind, stage string, took time.Duration) { o.m.Stage(kind, stage, took) }

// FailureStored counts a failure report under its policy domain: the
// domain of the original message's From, else the first Reported-Domain
// (RFC 6591 §3.2.2).
func (o observer) FailureStored(r *failure.Report) {
	domain := r.Original.FromDomain
	if len(r.ReportedDomain) > 0 && domain == "" {
		domain = r.ReportedDomain[0]
	}
	o.m.FailureStored(domain, r.AuthFailure)
}

// TLSRPTStored counts the sessions of each policy of a TLS report.
func (o observer) TLSRPTStored(r *tlsrpt.Report) {
	ps := make([]metrics.TLSPolicy, len(r.Policies))
	for i, p := range r.Policies {
		ps[i] = metrics.TLSPolicy{Domain: p.Domain, Successful: p.Successful, Failed: p.Failed,
			Failures: make([]metrics.TLSFailure, len(p.Failures))}
		for j, f := range p.Failures {
			ps[i].Failures[j] = metrics.TLSFailure{ResultType: f.ResultType, FailedSessions: f.FailedSessions}
		}
	}
	o.m.TLSRPTStored(ps)
}

// The S3 counters of metrics are what an S3 source reports to.
var _ ingest.S3ErrorObserver = (*metrics.S3Source)(nil)

// Package enrich is the stage between parse and store: it adds to a parsed
// report what dmarcd computes of it, with no I/O of its own. Aggregate and
// failure reports pass through it alike:
//
//   - an aggregate record becomes a Record: the Organizational Domain of its
//     header_from and its DKIM and SPF alignment under relaxed and strict
//     rules and its DMARC verdict, recomputed from its authentication
//     results (RFC 7489 §3.1, package parse/align), never copied from the
//     reporter's policy_evaluated;
//   - a failure report becomes a FailureReport: the same alignment, from the
//     Authentication-Results fields it carries (RFC 6591 §3.1, RFC 8601),
//     its policy domain and its reporter;
//   - the mail that carried a report is authenticated on arrival
//     (mailauth.go: DKIM, RFC 6376, and the DMARC policy of its From
//     domain), DNS behind the LookupTXT function type.
//
// A TLS report (parse/tlsrpt) carries nothing to recompute and passes from
// parse to store unchanged.
package enrich

import (
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/align"
)

// Record is one enriched aggregate record: the record as parsed plus what
// dmarcd computed (Organizational Domain of header_from, alignment in both
// modes, the DMARC verdict under the published modes).
type Record struct {
	*aggregate.Record
	HeaderFromOrg      string
	DKIMAlignedRelaxed bool
	DKIMAlignedStrict  bool
	SPFAlignedRelaxed  bool
	SPFAlignedStrict   bool
	DMARCPass          bool
}

// Aggregator enriches the records of one aggregate report. It reuses its
// buffers from record to record: one Aggregator per report, used by one
// goroutine.
type Aggregator struct {
	adkim, aspf align.Mode
	dkim, spf   []align.Auth
}

// Aggregate returns the enricher of the records of the report whose header
// is h: its published adkim and aspf (RFC 7489 §6.3) decide DMARCPass.
func Aggregate(h *aggregate.Header) *Aggregator {
	return AggregateWith(align.ParseMode(h.ADKIM.Value), align.ParseMode(h.ASPF.Value))
}

// AggregateWith returns the enricher of records published under adkim and
// aspf (for records built without a report header, as tests do).
func AggregateWith(adkim, aspf align.Mode) *Aggregator {
	return &Aggregator{adkim: adkim, aspf: aspf}
}

// Record enriches rec. The returned Record is new and refers to rec.
func (a *Aggregator) Record(rec *aggregate.Record) *Record {
	a.dkim, a.spf = a.dkim[:0], a.spf[:0]
	for _, d := range rec.DKIM {
		a.dkim = append(a.dkim, align.Auth{Domain: d.Domain, Result: d.Result})
	}
	for _, s := range rec.SPF {
		a.spf = append(a.spf, align.Auth{Domain: s.Domain, Result: s.Result, Scope: s.Scope})
	}
	f := align.Evaluate(rec.HeaderFrom, a.dkim, a.spf, a.adkim, a.aspf)
	return &Record{Record: rec, HeaderFromOrg: f.HeaderFromOrg,
		DKIMAlignedRelaxed: f.DKIMAlignedRelaxed, DKIMAlignedStrict: f.DKIMAlignedStrict,
		SPFAlignedRelaxed: f.SPFAlignedRelaxed, SPFAlignedStrict: f.SPFAlignedStrict,
		DMARCPass: f.DMARCPass}
}

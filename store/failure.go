package store

import (
	"context"
	"fmt"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/parse/failure"
)

// WriteFailure stores one failure report exactly once in failure_reports,
// under key: failure.Key of the report, which the caller computes (before
// or after failure.Redact, which changes none of its inputs). r is stored as
// given, with what enrich.Failure computed of it: redact it first. The body is stored only when r.Original.Body is
// set (failure.Redact drops it unless asked to keep it).
//
// A failure report is one row written in one INSERT, so there is no partial
// state to complete after a crash: serialized per key in this process, a row
// with the key and the report's arrival_date exists (duplicate) or the row
// is written (stored). The result has Records 1 and Messages the report's
// Incidents (1 when 0), for a duplicate too.
//
// arrival_date is the report's Arrival-Date, else the report email's Date,
// else meta's time received (failure.Report.Arrival); arrival_date_source
// says which. Copies of a report with either date are looked for in one
// partition (and in 1970-01, where reports without an Arrival-Date were
// stored before migration 0015); a report with neither is looked for by its
// key in every partition, since each copy is received at another time.
//
// An error caused by the report itself (a value ClickHouse refuses: see
// refused.go) carries parse.StoreRefused.
func (s *Store) WriteFailure(ctx context.Context, key string, r *enrich.FailureReport, meta InputMeta) (WriteResult, error) {
	res, err := s.writeFailure(ctx, key, r, meta)
	return res, refused(err)
}

func (s *Store) writeFailure(ctx context.Context, key string, r *enrich.FailureReport, meta InputMeta) (WriteResult, error) {
	res := WriteResult{ReportKey: key, Records: 1, Messages: r.Incidents}
	if res.Messages == 0 {
		res.Messages = 1
	}
	if key == "" {
		return res, fmt.Errorf("store: failure report: empty report key")
	}
	unlock := s.locks.lock(key)
	defer unlock()
	release, err := s.claim(ctx, s.routeOf(key), key) // against other processes (cluster.go)
	if err != nil {
		return res, err
	}
	defer release()

	arrival, from := failureArrival(r.Report, meta)
	n, err := s.failureCopies(ctx, key, arrival, from)
	if err != nil {
		return res, fmt.Errorf("failure report %s: looking for its row: %w", key, err)
	}
	if n > 0 {
		res.Status = StatusDuplicate
		return res, nil
	}
	if err := s.insertFailure(ctx, key, r, arrival, from, meta); err != nil {
		return res, fmt.Errorf("failure report %s (reporter %s, source %s): %w", key, quoteField(r.Reporter), quoteField(r.SourceIP), err)
	}
	res.Status = StatusStored
	return res, nil
}

// failureArrival is the stored arrival_date, to the second, and its source
// (see WriteFailure).
func failureArrival(r *failure.Report, meta InputMeta) (time.Time, string) {
	at, from := r.Arrival(meta.received())
	return time.Unix(int64(unixSeconds(at)), 0).UTC(), from
}

// failureCopies counts the stored rows of the report key (see WriteFailure).
func (s *Store) failureCopies(ctx context.Context, key string, arrival time.Time, from string) (uint64, error) {
	var n uint64
	if from == failure.ArrivalFromReceived {
		err := s.conn.QueryRow(ctx, `SELECT count() FROM failure_reports WHERE report_key = ?`, key).Scan(&n)
		return n, err
	}
	err := s.conn.QueryRow(ctx, `SELECT count() FROM failure_reports
		WHERE (arrival_date = toDateTime(?) OR arrival_date = toDateTime(0)) AND report_key = ?`,
		unixSeconds(arrival), key).Scan(&n)
	return n, err
}

const failureColumnList = `report_key, policy_domain, reporter, reporter_domain, reporting_mta,
	feedback_type, user_agent, version, arf, incomplete, arrival_date, arrival_date_raw,
	source_ip, source_port, incidents, reported_domain, reported_uri, auth_failure,
	delivery_result, original_mail_from, original_mail_from_domain, original_rcpt_to,
	original_envelope_id, dkim_domain, dkim_identity, dkim_selector, spf_dns,
	identity_alignment, authentication_results, original_from, original_from_domain,
	original_from_org, original_to, original_subject, original_message_id, original_date,
	original_return_path, original_header_hash, original_headers_names, original_headers_values,
	has_body, body, dkim_aligned_relaxed, dkim_aligned_strict, spf_aligned_relaxed,
	spf_aligned_strict, report_subject, source, input_name, input_sha256, ingested_at,
	auth_result, auth_detail, arrival_date_source, input_part`

// insertFailure writes the report's row.
func (s *Store) insertFailure(ctx context.Context, key string, r *enrich.FailureReport, arrival time.Time, from string, meta InputMeta) error {
	o := &r.Original
	names := make([]string, len(o.Headers))
	values := make([]string, len(o.Headers))
	for i, h := range o.Headers {
		names[i], values[i] = h.Name, h.Value
	}
	al := r.Alignment
	hasBody := o.HasBody || len(o.Body) > 0
	return s.insertOne(ctx, "INSERT INTO failure_reports ("+failureColumnList+")",
		key, r.PolicyDomain, r.Reporter, r.ReporterDomain, r.ReportingMTA,
		r.FeedbackType, r.UserAgent, r.Version, b2u(r.ARF), b2u(r.Incomplete), arrival, r.ArrivalDateRaw,
		r.SourceIP, r.SourcePort, r.Incidents, nonNilStrings(r.ReportedDomain), nonNilStrings(r.ReportedURI), nonNilStrings(r.AuthFailure),
		r.DeliveryResult, r.OriginalMailFrom, r.MailFromDomain, nonNilStrings(r.OriginalRcptTo),
		r.OriginalEnvelopeID, r.DKIMDomain, r.DKIMIdentity, r.DKIMSelector, nonNilStrings(r.SPFDNS),
		nonNilStrings(r.IdentityAlignment), nonNilStrings(r.AuthenticationResults), o.From, r.FromDomain,
		r.FromOrg, nonNilStrings(o.To), o.Subject, o.MessageID, o.Date,
		o.ReturnPath, o.HeaderHash, names, values,
		b2u(hasBody), string(o.Body), b2u(al.DKIMRelaxed), b2u(al.DKIMStrict), b2u(al.SPFRelaxed),
		b2u(al.SPFStrict), r.ReportSubject, meta.Source, meta.InputName, meta.InputSHA256, time.Now().UTC(),
		meta.authResult(), meta.AuthDetail, from, meta.InputPart)
}

// nonNilStrings returns l, or an empty slice for nil.
func nonNilStrings(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/failure"
)

// WriteFailure stores one failure report exactly once in failure_reports,
// under key: failure.Key of the report, which the caller computes (before
// or after failure.Redact, which changes none of its inputs). r is stored as
// given: redact it first. The body is stored only when r.Original.Body is
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
func (s *Store) WriteFailure(ctx context.Context, key string, r *failure.Report, meta InputMeta) (WriteResult, error) {
	res, err := s.writeFailure(ctx, key, r, meta)
	return res, refused(err)
}

func (s *Store) writeFailure(ctx context.Context, key string, r *failure.Report, meta InputMeta) (WriteResult, error) {
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

	arrival, from := failureArrival(r, meta)
	n, err := s.failureCopies(ctx, key, arrival, from)
	if err != nil {
		return res, fmt.Errorf("failure report %s: looking for its row: %w", key, err)
	}
	if n > 0 {
		res.Status = StatusDuplicate
		return res, nil
	}
	if err := s.insertFailure(ctx, key, r, arrival, from, meta); err != nil {
		return res, fmt.Errorf("failure report %s (reporter %s, source %s): %w", key, quoteField(failureReporter(r)), quoteField(r.SourceIP), err)
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

// failureReporter is the Reporting-MTA name, else the domain of the report
// email's From, as failure.Key uses them.
func failureReporter(r *failure.Report) string {
	if r.ReportingMTA != "" {
		return r.ReportingMTA
	}
	return r.ReporterDomain
}

// failurePolicyDomain is the domain whose mail failed: the original's From
// domain, else the first Reported-Domain.
func failurePolicyDomain(r *failure.Report) string {
	if d := align.Normalize(r.Original.FromDomain); d != "" {
		return d
	}
	for _, d := range r.ReportedDomain {
		if d = align.Normalize(d); d != "" {
			return d
		}
	}
	return ""
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
func (s *Store) insertFailure(ctx context.Context, key string, r *failure.Report, arrival time.Time, from string, meta InputMeta) error {
	o := &r.Original
	names := make([]string, len(o.Headers))
	values := make([]string, len(o.Headers))
	for i, h := range o.Headers {
		names[i], values[i] = h.Name, h.Value
	}
	fromDomain := align.Normalize(o.FromDomain)
	al := failureAlignment(r)
	hasBody := o.HasBody || len(o.Body) > 0
	return s.insertOne(ctx, "INSERT INTO failure_reports ("+failureColumnList+")",
		key, failurePolicyDomain(r), failureReporter(r), r.ReporterDomain, r.ReportingMTA,
		r.FeedbackType, r.UserAgent, r.Version, b2u(r.ARF), b2u(r.Incomplete), arrival, r.ArrivalDateRaw,
		r.SourceIP, r.SourcePort, r.Incidents, nonNilStrings(r.ReportedDomain), nonNilStrings(r.ReportedURI), nonNilStrings(r.AuthFailure),
		r.DeliveryResult, r.OriginalMailFrom, addrDomain(r.OriginalMailFrom), nonNilStrings(r.OriginalRcptTo),
		r.OriginalEnvelopeID, r.DKIMDomain, r.DKIMIdentity, r.DKIMSelector, nonNilStrings(r.SPFDNS),
		nonNilStrings(r.IdentityAlignment), nonNilStrings(r.AuthenticationResults), o.From, fromDomain,
		align.OrgDomain(fromDomain), nonNilStrings(o.To), o.Subject, o.MessageID, o.Date,
		o.ReturnPath, o.HeaderHash, names, values,
		b2u(hasBody), string(o.Body), b2u(al.dkimRelaxed), b2u(al.dkimStrict), b2u(al.spfRelaxed),
		b2u(al.spfStrict), r.ReportSubject, meta.Source, meta.InputName, meta.InputSHA256, time.Now().UTC(),
		meta.authResult(), meta.AuthDetail, from, meta.InputPart)
}

// nonNilStrings returns l, or an empty slice for nil.
func nonNilStrings(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// addrDomain returns the normalised domain of an address ("" when it has no
// '@'), or of a bare domain name.
func addrDomain(a string) string {
	a = strings.Trim(strings.TrimSpace(a), "<>\"")
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return align.Normalize(a[i+1:])
	}
	if a == "" || strings.ContainsAny(a, " \t=;") {
		return ""
	}
	return align.Normalize(a)
}

// failureAlign holds the alignment of a failure report's identifiers with the
// original's From domain, recomputed as for aggregate records.
type failureAlign struct {
	dkimRelaxed, dkimStrict bool
	spfRelaxed, spfStrict   bool
}

// failureAlignment recomputes DKIM and SPF alignment from what the report
// asserts (RFC 7489 §3.1), not from Identity-Alignment, whose meaning differs
// between RFC 6591 §3.1 and RFC 9991 (docs/standards.md §3.5). Only a pass in
// the report's Authentication-Results fields (RFC 6591 §3.1) counts; with no
// pass found, nothing is aligned.
//
// DKIM: each domain of DKIM-Domain (some generators list several) that
// Authentication-Results show as dkim=pass, with header.d (or the domain of
// header.i) equal to it or with no domain at all, is aligned when
// align.Aligned with the original's From domain. Without DKIM-Domain, the
// domains of the dkim=pass results are the candidates.
//
// SPF: the domain of Original-Mail-From when Authentication-Results show
// spf=pass for it (smtp.mailfrom in that domain, or no smtp.mailfrom).
// Without Original-Mail-From (the null path), the domains of smtp.mailfrom
// of the spf=pass results are the candidates.
func failureAlignment(r *failure.Report) failureAlign {
	var res []authResult
	for _, ar := range r.AuthenticationResults {
		res = append(res, parseAuthResults(ar)...)
	}
	from := align.Normalize(r.Original.FromDomain)
	var a failureAlign
	if from == "" {
		return a
	}

	check := func(method, cand string, acceptBare bool, relaxed, strict *bool) {
		if cand == "" {
			return
		}
		for _, x := range res {
			if x.method != method || x.result != "pass" {
				continue
			}
			if x.domain == cand || x.domain == "" && acceptBare {
				if align.Aligned(cand, from, align.Relaxed) {
					*relaxed = true
				}
				if align.Aligned(cand, from, align.Strict) {
					*strict = true
				}
				return
			}
		}
	}

	dkimDomains := strings.FieldsFunc(r.DKIMDomain, func(c rune) bool {
		return c == ';' || c == ',' || c == ' ' || c == '\t'
	})
	for _, d := range dkimDomains {
		check("dkim", align.Normalize(d), true, &a.dkimRelaxed, &a.dkimStrict)
	}
	if len(dkimDomains) == 0 {
		for _, x := range res {
			if x.method == "dkim" {
				check("dkim", x.domain, false, &a.dkimRelaxed, &a.dkimStrict)
			}
		}
	}

	if mf := addrDomain(r.OriginalMailFrom); mf != "" {
		check("spf", mf, true, &a.spfRelaxed, &a.spfStrict)
	} else {
		for _, x := range res {
			if x.method == "spf" {
				check("spf", x.domain, false, &a.spfRelaxed, &a.spfStrict)
			}
		}
	}
	return a
}

// authResult is one method result of an Authentication-Results field
// (RFC 8601 §2.2): the method, its result, and the domain it is about
// (DKIM: header.d, else the domain of header.i; SPF: the domain of
// smtp.mailfrom), all lower-cased; domain is "" when not given.
type authResult struct {
	method, result, domain string
}

// parseAuthResults reads the method results of one Authentication-Results
// value, leniently: the authserv-id may be missing (as some failure report
// generators do, docs/standards.md §3.8), results may be separated by
// white space only, comments are dropped. A "key=value" token whose key has
// no '.' (and is not "reason") starts a result; "ptype.property=value"
// tokens belong to the result before them.
func parseAuthResults(v string) []authResult {
	var out []authResult
	cur := -1
	for _, tok := range authTokens(v) {
		k, val, ok := strings.Cut(tok, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(k)
		val = strings.Trim(val, `"`)
		if !strings.Contains(k, ".") && k != "reason" {
			if i := strings.IndexByte(k, '/'); i >= 0 {
				k = k[:i] // method version, RFC 8601 §2.2
			}
			out = append(out, authResult{method: k, result: strings.ToLower(val)})
			cur = len(out) - 1
			continue
		}
		if cur < 0 {
			continue
		}
		x := &out[cur]
		switch {
		case x.method == "dkim" && k == "header.d":
			x.domain = align.Normalize(val)
		case x.method == "dkim" && k == "header.i" && x.domain == "":
			x.domain = addrDomain(val)
		case x.method == "spf" && k == "smtp.mailfrom":
			x.domain = addrDomain(val)
		}
	}
	return out
}

// authTokens splits an Authentication-Results value into white-space and
// ';' separated tokens, dropping comments (RFC 5322 §3.2.2, nested) and
// keeping quoted strings whole.
func authTokens(v string) []string {
	var toks []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			toks = append(toks, b.String())
			b.Reset()
		}
	}
	depth := 0
	quoted := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			if c == '\\' && i+1 < len(v) {
				i++
				b.WriteByte(v[i])
				continue
			}
			if c == '"' {
				quoted = false
			}
			b.WriteByte(c)
		case depth > 0:
			if c == '\\' {
				i++
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
		case c == '(':
			flush()
			depth++
		case c == '"':
			quoted = true
			b.WriteByte(c)
		case c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n':
			flush()
		default:
			b.WriteByte(c)
		}
	}
	flush()
	return toks
}

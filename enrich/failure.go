package enrich

import (
	"strings"

	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/failure"
)

// FailureReport is one enriched failure report: the report as parsed (and
// redacted: enrich it after failure.Redact, which keeps every domain) plus
// what dmarcd computed of it.
type FailureReport struct {
	*failure.Report
	// PolicyDomain is the domain whose mail failed: the original's From
	// domain, else the first Reported-Domain.
	PolicyDomain string
	// Reporter is the Reporting-MTA name, else the domain of the report
	// email's From, as failure.Key uses them.
	Reporter string
	// FromDomain is the original's From domain, normalised (align.Normalize);
	// FromOrg its Organizational Domain (RFC 7489 §3.2).
	FromDomain string
	FromOrg    string
	// MailFromDomain is the domain of Original-Mail-From, "" for the null
	// path.
	MailFromDomain string
	// AuthResults are the method results of the report's
	// Authentication-Results fields, in order (ParseAuthResults).
	AuthResults []AuthResult
	// Alignment is recomputed from AuthResults (see Failure).
	Alignment FailureAlignment
}

// FailureAlignment is the alignment of a failure report's authenticated
// identifiers with the original's From domain, under relaxed and strict
// rules (RFC 7489 §3.1).
type FailureAlignment struct {
	DKIMRelaxed, DKIMStrict bool
	SPFRelaxed, SPFStrict   bool
}

// Failure enriches r.
//
// Alignment is recomputed from what the report asserts (RFC 7489 §3.1), not
// from Identity-Alignment, whose meaning differs between RFC 6591 §3.1 and
// RFC 9991 (docs/standards.md §3.5). Only a pass in the report's
// Authentication-Results fields (RFC 6591 §3.1) counts; with no pass found,
// nothing is aligned.
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
func Failure(r *failure.Report) *FailureReport {
	f := &FailureReport{Report: r, PolicyDomain: failurePolicyDomain(r), Reporter: failureReporter(r),
		FromDomain: align.Normalize(r.Original.FromDomain), MailFromDomain: addrDomain(r.OriginalMailFrom)}
	f.FromOrg = align.OrgDomain(f.FromDomain)
	for _, ar := range r.AuthenticationResults {
		f.AuthResults = append(f.AuthResults, ParseAuthResults(ar)...)
	}
	f.Alignment = failureAlignment(f)
	return f
}

// failureReporter is the Reporting-MTA name, else the domain of the report
// email's From.
func failureReporter(r *failure.Report) string {
	if r.ReportingMTA != "" {
		return r.ReportingMTA
	}
	return r.ReporterDomain
}

// failurePolicyDomain is the original's From domain, else the first
// Reported-Domain.
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

// failureAlignment computes f.Alignment from f.AuthResults, as Failure
// describes.
func failureAlignment(f *FailureReport) FailureAlignment {
	res := f.AuthResults
	from := f.FromDomain
	var a FailureAlignment
	if from == "" {
		return a
	}

	check := func(method, cand string, acceptBare bool, relaxed, strict *bool) {
		if cand == "" {
			return
		}
		for _, x := range res {
			if x.Method != method || x.Result != "pass" {
				continue
			}
			if x.Domain == cand || x.Domain == "" && acceptBare {
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

	dkimDomains := strings.FieldsFunc(f.DKIMDomain, func(c rune) bool {
		return c == ';' || c == ',' || c == ' ' || c == '\t'
	})
	for _, d := range dkimDomains {
		check("dkim", align.Normalize(d), true, &a.DKIMRelaxed, &a.DKIMStrict)
	}
	if len(dkimDomains) == 0 {
		for _, x := range res {
			if x.Method == "dkim" {
				check("dkim", x.Domain, false, &a.DKIMRelaxed, &a.DKIMStrict)
			}
		}
	}

	if mf := f.MailFromDomain; mf != "" {
		check("spf", mf, true, &a.SPFRelaxed, &a.SPFStrict)
	} else {
		for _, x := range res {
			if x.Method == "spf" {
				check("spf", x.Domain, false, &a.SPFRelaxed, &a.SPFStrict)
			}
		}
	}
	return a
}

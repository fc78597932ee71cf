// Package checkdb holds what `dmarcd check` and the daemon's periodic check
// (internal/app/daemon) read and write in ClickHouse, each query with the
// row it scans into: the DKIM selectors and traffic of a domain's stored
// reports (the check's inputs), the recent policy domains (what the check
// looks at when every domain is owned), and the DNS records the check
// stores when they change (dns_records, migration 0006). It is apart from
// internal/product/dnscheck, which checks DNS and imports no database.
package checkdb

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// DefaultCheckSelectors is how many DKIM selectors of a domain `dmarcd
// check` (and the daemon's periodic check) looks up at most: those on the
// most messages. One forged report can list thousands of selectors; each
// costs a DNS query.
const DefaultCheckSelectors = dnscheck.DefaultMaxSelectors

// maxSelectorLen bounds a selector worth a DNS query: with "._domainkey."
// and d= it must fit in a 253-byte name.
const maxSelectorLen = 200

// CheckSelector is a DKIM d=/selector pair seen for a domain (used by
// `dmarcd check`).
type CheckSelector struct {
	Domain   string `ch:"d"`
	Selector string `ch:"sel"`
	Messages uint64 `ch:"messages"`
	Passed   uint64 `ch:"passed"`
}

// domainOrSub is the condition that col is domain or one of its
// subdomains.
func domainOrSub(col, domain string) chsql.Stmt {
	return chsql.Stmt{SQL: "(" + col + " = ? OR endsWith(" + col + ", ?))", Args: []any{domain, "." + domain}}
}

// DKIMSelectorsStmt selects the DKIM d=/selector pairs of the valid records
// whose header_from is domain or a subdomain of it, where d= is domain or
// one of its subdomains, with their messages and DKIM passes.
func DKIMSelectorsStmt(domain string) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT d, sel, sum(message_count) AS messages, sumIf(message_count, r = 'pass') AS passed
FROM aggregate_records
ARRAY JOIN dkim_domains AS d, dkim_selectors AS sel, dkim_results AS r
WHERE record_error = '' AND `), domainOrSub("header_from", domain), chsql.Text(`
	AND sel != '' AND `), domainOrSub("d", domain), chsql.Text(`
GROUP BY d, sel
ORDER BY d, sel`))
}

// DKIMSelectorsOf returns the DKIM d=/selector pairs of the records whose
// header_from is domain or a subdomain of it, where d= is domain or one of
// its subdomains (other signers' keys are not the domain's to fix).
func DKIMSelectorsOf(ctx context.Context, q chsql.Querier, domain string) ([]CheckSelector, error) {
	l, err := chsql.Select[CheckSelector](ctx, q, DKIMSelectorsStmt(domain))
	if err != nil {
		return nil, fmt.Errorf("reading DKIM selectors of %s: %w", valid.Quote(domain, 64), err)
	}
	return l, nil
}

// CheckSelectorsStmt selects the DKIM pairs CheckSelectorsOf returns, the
// busiest first, at most limit of them.
func CheckSelectorsStmt(domain string, limit int) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT d, sel, sum(message_count) AS messages, sumIf(message_count, r = 'pass') AS passed
FROM aggregate_records
ARRAY JOIN dkim_domains AS d, dkim_selectors AS sel, dkim_results AS r
WHERE record_error = '' AND `), domainOrSub("header_from", domain), chsql.Text(`
	AND `), domainOrSub("d", domain), chsql.Stmt{SQL: `
	AND sel != '' AND length(sel) <= ? AND match(sel, '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$')
	AND report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'pass')
GROUP BY d, sel
ORDER BY messages DESC, d, sel
LIMIT ?`, Args: []any{maxSelectorLen, limit}})
}

// CheckSelectorsOf returns the DKIM d=/selector pairs the check of domain
// looks up: from the records whose header_from is domain or a subdomain of
// it, where d= is domain or one of its subdomains (other signers' keys are
// not the domain's to fix), and only from reports whose mail authenticated
// (aggregate_reports.auth_result 'pass'; docs/readiness.md, "Trusting the
// reports"): a forged report cannot make the check query names it chose.
// Selectors that are not dot-separated labels of letters, digits, '-' and
// '_' are left out. At most limit pairs (DefaultCheckSelectors when 0),
// those on the most messages, sorted by d= and selector.
func CheckSelectorsOf(ctx context.Context, q chsql.Querier, domain string, limit int) ([]CheckSelector, error) {
	if limit <= 0 {
		limit = DefaultCheckSelectors
	}
	l, err := chsql.Select[CheckSelector](ctx, q, CheckSelectorsStmt(domain, limit))
	if err != nil {
		return nil, fmt.Errorf("reading DKIM selectors of %s: %w", domain, err)
	}
	sort.Slice(l, func(i, j int) bool {
		if l[i].Domain != l[j].Domain {
			return l[i].Domain < l[j].Domain
		}
		return l[i].Selector < l[j].Selector
	})
	return l, nil
}

// Traffic is what DomainTraffic reads: the messages of a domain's records,
// and how many had any DKIM pass or SPF (MAIL FROM) pass.
type Traffic struct {
	Messages      uint64 `ch:"messages"`
	Authenticated uint64 `ch:"authenticated"`
}

// TrafficStmt sums the valid records whose header_from is domain.
func TrafficStmt(domain string) chsql.Stmt {
	return chsql.Stmt{SQL: `SELECT sum(message_count) AS messages,
	sumIf(message_count, dmarc_pass = 1 OR has(dkim_results, 'pass')
		OR arrayExists((r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_results, spf_scopes)) AS authenticated
FROM aggregate_records WHERE record_error = '' AND header_from = ?`, Args: []any{domain}}
}

// DomainTraffic returns the messages of the records whose header_from is
// domain, and how many of them had any DKIM pass or SPF (MAIL FROM) pass.
func DomainTraffic(ctx context.Context, q chsql.Querier, domain string) (messages, authenticated uint64, err error) {
	st := TrafficStmt(domain)
	var t Traffic
	if err := q.QueryRow(ctx, st.SQL, st.Args...).ScanStruct(&t); err != nil {
		return 0, 0, fmt.Errorf("reading traffic of %s: %w", valid.Quote(domain, 64), err)
	}
	return t.Messages, t.Authenticated, nil
}

// RecentPolicyDomainsStmt selects the policy domains of the aggregate
// reports that began at or after since.
func RecentPolicyDomainsStmt(since time.Time) chsql.Stmt {
	return chsql.Stmt{SQL: `SELECT DISTINCT policy_domain FROM aggregate_reports
WHERE date_begin >= ? AND policy_domain != '' ORDER BY policy_domain`, Args: []any{since.UTC()}}
}

// policyDomain is one row of RecentPolicyDomainsStmt.
type policyDomain struct {
	Domain string `ch:"policy_domain"`
}

// RecentPolicyDomains returns the policy domains of the aggregate reports
// that began at or after since, sorted: those valid.Domain accepts only. A
// policy domain is what a report said, and the caller looks the names up in
// DNS and logs them; a stored name outside DNS syntax (a forged report's,
// or one stored before dmarcd checked) is left out.
func RecentPolicyDomains(ctx context.Context, q chsql.Querier, since time.Time) ([]string, error) {
	rows, err := chsql.Select[policyDomain](ctx, q, RecentPolicyDomainsStmt(since))
	if err != nil {
		return nil, fmt.Errorf("reading recent policy domains: %w", err)
	}
	var l []string
	for _, r := range rows {
		if valid.Domain(r.Domain) != nil {
			continue
		}
		l = append(l, r.Domain)
	}
	return l, nil
}

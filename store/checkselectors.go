package store

import (
	"context"
	"fmt"
	"sort"
)

// DefaultCheckSelectors is how many DKIM selectors of a domain `dmarcd
// check` (and the daemon's periodic check) looks up at most: those on the
// most messages. One forged report can list thousands of selectors; each
// costs a DNS query.
const DefaultCheckSelectors = 20

// maxSelectorLen bounds a selector worth a DNS query: with "._domainkey."
// and d= it must fit in a 253-byte name.
const maxSelectorLen = 200

// CheckSelectorsOf returns the DKIM d=/selector pairs the check of domain
// looks up: from the records whose header_from is domain or a subdomain of
// it, where d= is domain or one of its subdomains (other signers' keys are
// not the domain's to fix), and only from reports whose mail authenticated
// (aggregate_reports.auth_result 'pass'; docs/readiness.md, "Trusting the
// reports"): a forged report cannot make the check query names it chose.
// Selectors that are not dot-separated labels of letters, digits, '-' and
// '_' are left out. At most limit pairs (DefaultCheckSelectors when 0),
// those on the most messages, sorted by d= and selector.
func (s *Store) CheckSelectorsOf(ctx context.Context, domain string, limit int) ([]CheckSelector, error) {
	if limit <= 0 {
		limit = DefaultCheckSelectors
	}
	q := `SELECT d, sel, sum(message_count) AS messages, sumIf(message_count, r = 'pass')
FROM aggregate_records
ARRAY JOIN dkim_domains AS d, dkim_selectors AS sel, dkim_results AS r
WHERE record_error = '' AND (header_from = ? OR endsWith(header_from, ?))
	AND (d = ? OR endsWith(d, ?))
	AND sel != '' AND length(sel) <= ? AND match(sel, '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$')
	AND report_key IN (SELECT report_key FROM aggregate_reports WHERE auth_result = 'pass')
GROUP BY d, sel
ORDER BY messages DESC, d, sel
LIMIT ?`
	suffix := "." + domain
	rows, err := s.conn.Query(ctx, q, domain, suffix, domain, suffix, maxSelectorLen, limit)
	if err != nil {
		return nil, fmt.Errorf("reading DKIM selectors of %s: %w", domain, err)
	}
	defer rows.Close()
	var l []CheckSelector
	for rows.Next() {
		var c CheckSelector
		if err := rows.Scan(&c.Domain, &c.Selector, &c.Messages, &c.Passed); err != nil {
			return nil, fmt.Errorf("reading DKIM selectors of %s: %w", domain, err)
		}
		l = append(l, c)
	}
	sort.Slice(l, func(i, j int) bool {
		if l[i].Domain != l[j].Domain {
			return l[i].Domain < l[j].Domain
		}
		return l[i].Selector < l[j].Selector
	})
	return l, rows.Err()
}

package store

import (
	"context"
	"fmt"
	"time"

	"github.com/dmarcd/dmarcd/parse/valid"
)

// SourceAttribution is one row of source_attribution (migrations 0003 and
// 0005): who a source IP is, as internal/product/attrib found it.
type SourceAttribution struct {
	IP           string `json:"ip"`
	PTR          string `json:"ptr"`
	PTRConfirmed bool   `json:"ptr_confirmed"`
	SPFDomain    string `json:"spf_domain"`
	SPFMechanism string `json:"spf_mechanism"`
	// SPFIncludes are the include/redirect domains through which the SPF
	// of SPFDomain authorises the IP, outermost first.
	SPFIncludes []string `json:"spf_includes"`
	Country     string   `json:"country"` // ISO 3166-1 alpha-2, "" unknown
	ASN         uint32   `json:"asn"`     // 0 unknown
	ASOrg       string   `json:"as_org"`
	// KnownSource is the name of the known source the IP matched ("" for
	// none); KnownAuthorised whether the operator marked it authorised.
	KnownSource     string    `json:"known_source"`
	KnownAuthorised bool      `json:"known_authorised"`
	CheckedAt       time.Time `json:"checked_at"`
}

// UnattributedIP is a source IP of the stored records that
// source_attribution does not list yet, with the domains it sent for.
type UnattributedIP struct {
	IP       string
	Domains  []string // policy domains and header_from domains, sorted
	Messages uint64
}

// UnattributedIPs returns up to limit source IPs of valid records that have
// no source_attribution row, those with the most messages first.
func (s *Store) UnattributedIPs(ctx context.Context, limit int) ([]UnattributedIP, error) {
	q := `SELECT source_ip, arraySort(arrayDistinct(arrayConcat(groupUniqArray(policy_domain), groupUniqArray(header_from)))) AS domains,
	sum(message_count) AS messages
FROM aggregate_records
WHERE record_error = '' AND source_ip != '' AND source_ip NOT IN (SELECT ip FROM source_attribution)
GROUP BY source_ip
ORDER BY messages DESC, source_ip
LIMIT ?`
	rows, err := s.conn.Query(ctx, q, uint64(limit))
	if err != nil {
		return nil, fmt.Errorf("reading unattributed IPs: %w", err)
	}
	defer rows.Close()
	var l []UnattributedIP
	for rows.Next() {
		var u UnattributedIP
		if err := rows.Scan(&u.IP, &u.Domains, &u.Messages); err != nil {
			return nil, fmt.Errorf("reading unattributed IPs: %w", err)
		}
		l = append(l, u)
	}
	return l, rows.Err()
}

// WriteAttributions stores attributions in one INSERT.
func (s *Store) WriteAttributions(ctx context.Context, l []SourceAttribution) error {
	if len(l) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, `INSERT INTO source_attribution (ip, ptr, ptr_confirmed, spf_domain, spf_mechanism,
	spf_includes, country, asn, as_org, known_source, known_authorised, checked_at)`)
	if err != nil {
		return fmt.Errorf("writing source attribution: %w", err)
	}
	for _, a := range l {
		incl := a.SPFIncludes
		if incl == nil {
			incl = []string{}
		}
		if err := b.Append(a.IP, a.PTR, b2u(a.PTRConfirmed), a.SPFDomain, a.SPFMechanism,
			incl, a.Country, a.ASN, a.ASOrg, a.KnownSource, b2u(a.KnownAuthorised),
			a.CheckedAt.UTC().Truncate(time.Second)); err != nil {
			b.Abort()
			return fmt.Errorf("writing source attribution of %s: %w", a.IP, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("writing source attribution: %w", err)
	}
	return nil
}

// SourceAttributions returns the latest attribution of every IP, by IP.
func (s *Store) SourceAttributions(ctx context.Context) ([]SourceAttribution, error) {
	rows, err := s.conn.Query(ctx, `SELECT ip, argMax(ptr, checked_at), argMax(ptr_confirmed, checked_at),
	argMax(spf_domain, checked_at), argMax(spf_mechanism, checked_at), argMax(spf_includes, checked_at),
	argMax(country, checked_at), argMax(asn, checked_at), argMax(as_org, checked_at),
	argMax(known_source, checked_at), argMax(known_authorised, checked_at), max(checked_at)
FROM source_attribution GROUP BY ip ORDER BY ip`)
	if err != nil {
		return nil, fmt.Errorf("reading source attribution: %w", err)
	}
	defer rows.Close()
	var l []SourceAttribution
	for rows.Next() {
		var a SourceAttribution
		var c, k uint8
		if err := rows.Scan(&a.IP, &a.PTR, &c, &a.SPFDomain, &a.SPFMechanism, &a.SPFIncludes,
			&a.Country, &a.ASN, &a.ASOrg, &a.KnownSource, &k, &a.CheckedAt); err != nil {
			return nil, fmt.Errorf("reading source attribution: %w", err)
		}
		a.PTRConfirmed, a.KnownAuthorised = c == 1, k == 1
		l = append(l, a)
	}
	return l, rows.Err()
}

// AttributionsOf returns the latest attribution of each of ips that has
// one, by IP.
func (s *Store) AttributionsOf(ctx context.Context, ips []string) (map[string]SourceAttribution, error) {
	out := map[string]SourceAttribution{}
	if len(ips) == 0 {
		return out, nil
	}
	rows, err := s.conn.Query(ctx, `SELECT ip, argMax(ptr, checked_at), argMax(ptr_confirmed, checked_at),
	argMax(country, checked_at), argMax(asn, checked_at), argMax(as_org, checked_at),
	argMax(known_source, checked_at), argMax(known_authorised, checked_at)
FROM source_attribution WHERE has(?, ip) GROUP BY ip`, ips)
	if err != nil {
		return nil, fmt.Errorf("reading source attribution: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a SourceAttribution
		var c, k uint8
		if err := rows.Scan(&a.IP, &a.PTR, &c, &a.Country, &a.ASN, &a.ASOrg, &a.KnownSource, &k); err != nil {
			return nil, fmt.Errorf("reading source attribution: %w", err)
		}
		a.PTRConfirmed, a.KnownAuthorised = c == 1, k == 1
		out[a.IP] = a
	}
	return out, rows.Err()
}

// CheckSelector is a DKIM d=/selector pair seen for a domain (used by
// `dmarcd check`).
type CheckSelector struct {
	Domain, Selector string
	Messages, Passed uint64
}

// DKIMSelectorsOf returns the DKIM d=/selector pairs of the records whose
// header_from is domain or a subdomain of it, where d= is domain or one of
// its subdomains (other signers' keys are not the domain's to fix).
func (s *Store) DKIMSelectorsOf(ctx context.Context, domain string) ([]CheckSelector, error) {
	q := `SELECT d, sel, sum(message_count), sumIf(message_count, r = 'pass')
FROM aggregate_records
ARRAY JOIN dkim_domains AS d, dkim_selectors AS sel, dkim_results AS r
WHERE record_error = '' AND (header_from = ? OR endsWith(header_from, ?))
	AND sel != '' AND (d = ? OR endsWith(d, ?))
GROUP BY d, sel
ORDER BY d, sel`
	suffix := "." + domain
	rows, err := s.conn.Query(ctx, q, domain, suffix, domain, suffix)
	if err != nil {
		return nil, fmt.Errorf("reading DKIM selectors of %s: %w", valid.Quote(domain, 64), err)
	}
	defer rows.Close()
	var l []CheckSelector
	for rows.Next() {
		var c CheckSelector
		if err := rows.Scan(&c.Domain, &c.Selector, &c.Messages, &c.Passed); err != nil {
			return nil, fmt.Errorf("reading DKIM selectors of %s: %w", valid.Quote(domain, 64), err)
		}
		l = append(l, c)
	}
	return l, rows.Err()
}

// DomainTraffic returns the messages of the records whose header_from is
// domain, and how many of them had any DKIM pass or SPF (MAIL FROM) pass.
func (s *Store) DomainTraffic(ctx context.Context, domain string) (messages, authenticated uint64, err error) {
	q := `SELECT sum(message_count),
	sumIf(message_count, dmarc_pass = 1 OR has(dkim_results, 'pass')
		OR arrayExists((r, sc) -> r = 'pass' AND (sc = '' OR sc = 'mfrom'), spf_results, spf_scopes))
FROM aggregate_records WHERE record_error = '' AND header_from = ?`
	row := s.conn.QueryRow(ctx, q, domain)
	if err := row.Scan(&messages, &authenticated); err != nil {
		return 0, 0, fmt.Errorf("reading traffic of %s: %w", valid.Quote(domain, 64), err)
	}
	return messages, authenticated, nil
}

package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// DomainSummary is what the reports say about one policy domain.
type DomainSummary struct {
	Domain   string
	Messages uint64 // messages in valid records
	// DMARCPass counts messages that passed DMARC (an aligned SPF or DKIM
	// pass, recomputed by dmarcd).
	DMARCPass   uint64
	DKIMRelaxed uint64 // messages with a DKIM pass aligned in relaxed mode
	DKIMStrict  uint64
	SPFRelaxed  uint64
	SPFStrict   uint64
	// WouldQuarantineOrReject counts messages that failed DMARC: what
	// p=quarantine or p=reject (pct=100) would have acted on.
	WouldQuarantineOrReject uint64
	TopFailing              []SourceCount // sources with most failing messages, at most 10
}

// SourceCount is a source IP and its messages.
type SourceCount struct {
	SourceIP string
	Messages uint64
}

// topFailing is how many failing sources Summary lists per domain.
const topFailing = 10

// Summary sums the records of reports that began at or after since, per
// policy domain (sorted by domain). Records marked invalid (record_error) are
// left out. It reads without FINAL: the writer stores every record once.
func (s *Store) Summary(ctx context.Context, since time.Time) ([]DomainSummary, error) {
	rows, err := s.conn.Query(ctx, `SELECT policy_domain,
		sum(message_count),
		sumIf(message_count, dmarc_pass = 1),
		sumIf(message_count, dkim_aligned_relaxed = 1),
		sumIf(message_count, dkim_aligned_strict = 1),
		sumIf(message_count, spf_aligned_relaxed = 1),
		sumIf(message_count, spf_aligned_strict = 1),
		sumIf(message_count, dmarc_pass = 0)
		FROM aggregate_records
		WHERE date_begin >= toDateTime(?) AND record_error = ''
		GROUP BY policy_domain
		ORDER BY policy_domain`, unixSeconds(since))
	if err != nil {
		return nil, fmt.Errorf("store: summary: %w", err)
	}
	var l []DomainSummary
	idx := map[string]int{}
	for rows.Next() {
		var d DomainSummary
		if err := rows.Scan(&d.Domain, &d.Messages, &d.DMARCPass, &d.DKIMRelaxed, &d.DKIMStrict,
			&d.SPFRelaxed, &d.SPFStrict, &d.WouldQuarantineOrReject); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: summary: %w", err)
		}
		idx[d.Domain] = len(l)
		l = append(l, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: summary: %w", err)
	}

	rows, err = s.conn.Query(ctx, fmt.Sprintf(`SELECT policy_domain, source_ip, sum(message_count) AS m
		FROM aggregate_records
		WHERE date_begin >= toDateTime(?) AND record_error = '' AND dmarc_pass = 0
		GROUP BY policy_domain, source_ip
		ORDER BY policy_domain, m DESC, source_ip
		LIMIT %d BY policy_domain`, topFailing), unixSeconds(since))
	if err != nil {
		return nil, fmt.Errorf("store: summary: failing sources: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var domain string
		var sc SourceCount
		if err := rows.Scan(&domain, &sc.SourceIP, &sc.Messages); err != nil {
			return nil, fmt.Errorf("store: summary: failing sources: %w", err)
		}
		if i, ok := idx[domain]; ok {
			l[i].TopFailing = append(l[i].TopFailing, sc)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(l, func(i, j int) bool { return l[i].Domain < l[j].Domain })
	return l, nil
}

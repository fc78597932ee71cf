package store

import (
	"context"
	"fmt"
	"time"

	"github.com/dmarcd/dmarcd/parse/valid"
)

// DNSRecord is one row of dns_records (migration 0006): a DNS record as
// the daemon's periodic check read it, stored when it first appears and
// each time it changes.
type DNSRecord struct {
	Domain    string    `json:"domain"`
	Kind      string    `json:"kind"` // dmarc, spf, dkim:SELECTOR[:D], report_auth:HOST
	Name      string    `json:"name"`
	Value     string    `json:"value"`    // "" when none is published
	Previous  string    `json:"previous"` // the value of the row before
	Initial   bool      `json:"initial"`  // the first row of (domain, kind): no change
	Change    string    `json:"change"`   // what changed, in words
	Findings  string    `json:"findings"` // error and warning findings, one per line
	Errors    uint32    `json:"errors"`
	Warnings  uint32    `json:"warnings"`
	CheckedAt time.Time `json:"checked_at"`
}

// LatestDNSRecords returns the last stored row of every kind of domain's
// records, by kind.
func (s *Store) LatestDNSRecords(ctx context.Context, domain string) (map[string]DNSRecord, error) {
	rows, err := s.conn.Query(ctx, `SELECT kind, argMax(name, checked_ns), argMax(value, checked_ns), max(checked_at)
FROM dns_records WHERE domain = ? GROUP BY kind`, domain)
	if err != nil {
		return nil, fmt.Errorf("reading the stored DNS records of %s: %w", valid.Quote(domain, 64), err)
	}
	defer rows.Close()
	m := map[string]DNSRecord{}
	for rows.Next() {
		r := DNSRecord{Domain: domain}
		if err := rows.Scan(&r.Kind, &r.Name, &r.Value, &r.CheckedAt); err != nil {
			return nil, fmt.Errorf("reading the stored DNS records of %s: %w", valid.Quote(domain, 64), err)
		}
		m[r.Kind] = r
	}
	return m, rows.Err()
}

// WriteDNSRecords stores rows in one INSERT.
func (s *Store) WriteDNSRecords(ctx context.Context, l []DNSRecord) error {
	if len(l) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO dns_records (domain, kind, name, value, previous, initial, change, findings, errors, warnings, checked_at, checked_ns)")
	if err != nil {
		return fmt.Errorf("writing DNS records: %w", err)
	}
	for _, r := range l {
		var initial uint8
		if r.Initial {
			initial = 1
		}
		if err := b.Append(r.Domain, r.Kind, r.Name, r.Value, r.Previous, initial, r.Change, r.Findings,
			r.Errors, r.Warnings, r.CheckedAt.UTC().Truncate(time.Second), uint64(r.CheckedAt.UnixNano())); err != nil {
			b.Abort()
			return fmt.Errorf("writing DNS record %s of %s: %w", r.Kind, r.Domain, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("writing DNS records: %w", err)
	}
	return nil
}

// DNSRecords returns the stored rows of domain (every domain when ""), in
// time order.
func (s *Store) DNSRecords(ctx context.Context, domain string) ([]DNSRecord, error) {
	rows, err := s.conn.Query(ctx, `SELECT domain, kind, name, value, previous, initial, change, findings, errors, warnings, checked_at
FROM dns_records WHERE ? = '' OR domain = ? ORDER BY checked_ns, domain, kind`, domain, domain)
	if err != nil {
		return nil, fmt.Errorf("reading DNS records: %w", err)
	}
	defer rows.Close()
	var l []DNSRecord
	for rows.Next() {
		var r DNSRecord
		var initial uint8
		if err := rows.Scan(&r.Domain, &r.Kind, &r.Name, &r.Value, &r.Previous, &initial, &r.Change, &r.Findings,
			&r.Errors, &r.Warnings, &r.CheckedAt); err != nil {
			return nil, fmt.Errorf("reading DNS records: %w", err)
		}
		r.Initial = initial == 1
		l = append(l, r)
	}
	return l, rows.Err()
}

// RecentPolicyDomains returns the policy domains of the aggregate reports
// that began at or after since, sorted: those valid.Domain accepts only. A
// policy domain is what a report said, and the caller looks the names up in
// DNS and logs them; a stored name outside DNS syntax (a forged report's,
// or one stored before dmarcd checked) is left out.
func (s *Store) RecentPolicyDomains(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT policy_domain FROM aggregate_reports
WHERE date_begin >= ? AND policy_domain != '' ORDER BY policy_domain`, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("reading recent policy domains: %w", err)
	}
	defer rows.Close()
	var l []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("reading recent policy domains: %w", err)
		}
		if valid.Domain(d) != nil {
			continue
		}
		l = append(l, d)
	}
	return l, rows.Err()
}

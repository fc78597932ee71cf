package checkdb

import (
	"context"
	"fmt"
	"time"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// DB is what the periodic check needs of the store: its reads and the
// INSERT of dns_records rows. *store.Store implements it.
type DB interface {
	chsql.Querier
	chsql.Batcher
}

// DNSRecord is one row of dns_records (migration 0006): a DNS record as
// the daemon's periodic check read it, stored when it first appears and
// each time it changes.
type DNSRecord struct {
	Domain    string    `ch:"domain" json:"domain"`
	Kind      string    `ch:"kind" json:"kind"` // dmarc, spf, dkim:SELECTOR[:D], report_auth:HOST
	Name      string    `ch:"name" json:"name"`
	Value     string    `ch:"value" json:"value"`       // "" when none is published
	Previous  string    `ch:"previous" json:"previous"` // the value of the row before
	Initial   bool      `ch:"initial" json:"initial"`   // the first row of (domain, kind): no change
	Change    string    `ch:"change" json:"change"`     // what changed, in words
	Findings  string    `ch:"findings" json:"findings"` // error and warning findings, one per line
	Errors    uint32    `ch:"errors" json:"errors"`
	Warnings  uint32    `ch:"warnings" json:"warnings"`
	CheckedAt time.Time `ch:"checked_at" json:"checked_at"`
}

// LatestStmt selects the last stored name and value of every kind of
// domain's records. Its aliases name no column of dns_records (an alias
// like name would replace the column in its own argMax).
func LatestStmt(domain string) chsql.Stmt {
	return chsql.Stmt{SQL: `SELECT kind, argMax(name, checked_ns) AS latest_name, argMax(value, checked_ns) AS latest_value, max(checked_at) AS latest_checked_at
FROM dns_records WHERE domain = ? GROUP BY kind`, Args: []any{domain}}
}

// latestRow is one row of LatestStmt.
type latestRow struct {
	Kind      string    `ch:"kind"`
	Name      string    `ch:"latest_name"`
	Value     string    `ch:"latest_value"`
	CheckedAt time.Time `ch:"latest_checked_at"`
}

// LatestDNSRecords returns the last stored row of every kind of domain's
// records, by kind.
func LatestDNSRecords(ctx context.Context, q chsql.Querier, domain string) (map[string]DNSRecord, error) {
	rows, err := chsql.Select[latestRow](ctx, q, LatestStmt(domain))
	if err != nil {
		return nil, fmt.Errorf("reading the stored DNS records of %s: %w", valid.Quote(domain, 64), err)
	}
	m := map[string]DNSRecord{}
	for _, r := range rows {
		m[r.Kind] = DNSRecord{Domain: domain, Kind: r.Kind, Name: r.Name, Value: r.Value, CheckedAt: r.CheckedAt}
	}
	return m, nil
}

// WriteDNSRecords stores rows in one INSERT.
func WriteDNSRecords(ctx context.Context, db chsql.Batcher, l []DNSRecord) error {
	if len(l) == 0 {
		return nil
	}
	b, err := db.PrepareBatch(ctx, "INSERT INTO dns_records (domain, kind, name, value, previous, initial, change, findings, errors, warnings, checked_at, checked_ns)")
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

// RecordsStmt selects the stored rows of domain (every domain when ""),
// in time order.
func RecordsStmt(domain string) chsql.Stmt {
	var b chsql.Builder
	b.Text(`SELECT domain, kind, name, value, previous, initial, change, findings, errors, warnings, checked_at
FROM dns_records`)
	if domain != "" {
		b.Add(chsql.Stmt{SQL: " WHERE domain = ?", Args: []any{domain}})
	}
	return b.Text(" ORDER BY checked_ns, domain, kind").Stmt()
}

// DNSRecords returns the stored rows of domain (every domain when ""), in
// time order.
func DNSRecords(ctx context.Context, q chsql.Querier, domain string) ([]DNSRecord, error) {
	l, err := chsql.Select[DNSRecord](ctx, q, RecordsStmt(domain))
	if err != nil {
		return nil, fmt.Errorf("reading DNS records: %w", err)
	}
	return l, nil
}

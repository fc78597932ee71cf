// Package summary reads what the stored aggregate reports say about each
// policy domain: the totals `dmarcd summary` prints, with the query and
// the rows it scans into in one file.
package summary

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
)

// DomainSummary is what the reports say about one policy domain.
type DomainSummary struct {
	Domain   string `ch:"policy_domain"`
	Messages uint64 `ch:"messages"` // messages in valid records
	// DMARCPass counts messages that passed DMARC (an aligned SPF or DKIM
	// pass, recomputed by dmarcd).
	DMARCPass   uint64 `ch:"pass"`
	DKIMRelaxed uint64 `ch:"dkim_relaxed"` // messages with a DKIM pass aligned in relaxed mode
	DKIMStrict  uint64 `ch:"dkim_strict"`
	SPFRelaxed  uint64 `ch:"spf_relaxed"`
	SPFStrict   uint64 `ch:"spf_strict"`
	// WouldQuarantineOrReject counts messages that failed DMARC: what
	// p=quarantine or p=reject (pct=100) would have acted on.
	WouldQuarantineOrReject uint64        `ch:"failing"`
	TopFailing              []SourceCount `ch:"-"` // sources with most failing messages, at most 10
}

// SourceCount is a source IP and its messages.
type SourceCount struct {
	SourceIP string
	Messages uint64
}

// topFailing is how many failing sources Read lists per domain.
const topFailing = 10

// DomainsStmt sums the valid records of reports that began at or after
// since, per policy domain. Its aliases name no column of
// aggregate_records (an alias like dmarc_pass would replace the column in
// its own sumIf).
func DomainsStmt(since time.Time) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT policy_domain,
		sum(message_count) AS messages,
		sumIf(message_count, dmarc_pass = 1) AS pass,
		sumIf(message_count, dkim_aligned_relaxed = 1) AS dkim_relaxed,
		sumIf(message_count, dkim_aligned_strict = 1) AS dkim_strict,
		sumIf(message_count, spf_aligned_relaxed = 1) AS spf_relaxed,
		sumIf(message_count, spf_aligned_strict = 1) AS spf_strict,
		sumIf(message_count, dmarc_pass = 0) AS failing
		FROM aggregate_records
		WHERE `), chsql.TimeCond("date_begin", ">=", since), chsql.Text(` AND record_error = ''
		GROUP BY policy_domain
		ORDER BY policy_domain`))
}

// FailingStmt lists, per policy domain, the topFailing source IPs with the
// most messages failing DMARC in the valid records of reports that began
// at or after since.
func FailingStmt(since time.Time) chsql.Stmt {
	return chsql.Join(chsql.Text(`SELECT policy_domain, source_ip, sum(message_count) AS m
		FROM aggregate_records
		WHERE `), chsql.TimeCond("date_begin", ">=", since), chsql.Text(` AND record_error = '' AND dmarc_pass = 0
		GROUP BY policy_domain, source_ip
		ORDER BY policy_domain, m DESC, source_ip
		LIMIT `+strconv.Itoa(topFailing)+` BY policy_domain`))
}

// failingRow is one row of FailingStmt.
type failingRow struct {
	Domain   string `ch:"policy_domain"`
	SourceIP string `ch:"source_ip"`
	Messages uint64 `ch:"m"`
}

// Read sums the records of reports that began at or after since, per
// policy domain (sorted by domain). Records marked invalid (record_error)
// are left out. It reads without FINAL: the writer stores every record
// once.
func Read(ctx context.Context, q chsql.Querier, since time.Time) ([]DomainSummary, error) {
	l, err := chsql.Select[DomainSummary](ctx, q, DomainsStmt(since))
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	idx := map[string]int{}
	for i, d := range l {
		idx[d.Domain] = i
	}
	failing, err := chsql.Select[failingRow](ctx, q, FailingStmt(since))
	if err != nil {
		return nil, fmt.Errorf("summary: failing sources: %w", err)
	}
	for _, r := range failing {
		if i, ok := idx[r.Domain]; ok {
			l[i].TopFailing = append(l[i].TopFailing, SourceCount{SourceIP: r.SourceIP, Messages: r.Messages})
		}
	}
	sort.SliceStable(l, func(i, j int) bool { return l[i].Domain < l[j].Domain })
	return l, nil
}

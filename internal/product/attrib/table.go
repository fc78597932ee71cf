package attrib

import (
	"context"
	"fmt"
	"time"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
)

// The attribution's table, source_attribution (migrations 0003 and 0005):
// the rows Run and Refresh write, and what they and `dmarcd readiness`
// read, each query with the row it scans into.

// DB is what the attribution needs of the store: its reads (the records'
// source IPs, the stored attributions) and the INSERT of its rows.
// *store.Store implements it.
type DB interface {
	chsql.Querier
	chsql.Batcher
}

// SourceAttribution is one row of source_attribution: who a source IP is,
// as Attribute found it.
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
	IP       string   `ch:"source_ip"`
	Domains  []string `ch:"domains"` // policy domains and header_from domains, sorted
	Messages uint64   `ch:"messages"`
}

// UnattributedStmt selects up to limit source IPs of valid records that
// have no source_attribution row, those with the most messages first.
func UnattributedStmt(limit int) chsql.Stmt {
	return chsql.Stmt{SQL: `SELECT source_ip, arraySort(arrayDistinct(arrayConcat(groupUniqArray(policy_domain), groupUniqArray(header_from)))) AS domains,
	sum(message_count) AS messages
FROM aggregate_records
WHERE record_error = '' AND source_ip != '' AND source_ip NOT IN (SELECT ip FROM source_attribution)
GROUP BY source_ip
ORDER BY messages DESC, source_ip
LIMIT ?`, Args: []any{uint64(limit)}}
}

// UnattributedIPs returns up to limit source IPs of valid records that
// have no source_attribution row, those with the most messages first.
func UnattributedIPs(ctx context.Context, q chsql.Querier, limit int) ([]UnattributedIP, error) {
	l, err := chsql.Select[UnattributedIP](ctx, q, UnattributedStmt(limit))
	if err != nil {
		return nil, fmt.Errorf("reading unattributed IPs: %w", err)
	}
	return l, nil
}

// WriteAttributions stores attributions in one INSERT.
func WriteAttributions(ctx context.Context, db chsql.Batcher, l []SourceAttribution) error {
	if len(l) == 0 {
		return nil
	}
	b, err := db.PrepareBatch(ctx, `INSERT INTO source_attribution (ip, ptr, ptr_confirmed, spf_domain, spf_mechanism,
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

// b2u is a bool as a UInt8 column's value.
func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// latestRow is one row of LatestStmt or LatestOfStmt: the latest
// attribution of an IP (argMax by checked_at). Its aliases name no column
// of source_attribution (an alias like ptr would replace the column in
// its own argMax). A column a statement leaves out stays zero.
type latestRow struct {
	IP              string    `ch:"ip"`
	PTR             string    `ch:"latest_ptr"`
	PTRConfirmed    bool      `ch:"latest_ptr_confirmed"`
	SPFDomain       string    `ch:"latest_spf_domain"`
	SPFMechanism    string    `ch:"latest_spf_mechanism"`
	SPFIncludes     []string  `ch:"latest_spf_includes"`
	Country         string    `ch:"latest_country"`
	ASN             uint32    `ch:"latest_asn"`
	ASOrg           string    `ch:"latest_as_org"`
	KnownSource     string    `ch:"latest_known_source"`
	KnownAuthorised bool      `ch:"latest_known_authorised"`
	CheckedAt       time.Time `ch:"latest_checked_at"`
}

func (r latestRow) attribution() SourceAttribution {
	return SourceAttribution{IP: r.IP, PTR: r.PTR, PTRConfirmed: r.PTRConfirmed, SPFDomain: r.SPFDomain,
		SPFMechanism: r.SPFMechanism, SPFIncludes: r.SPFIncludes, Country: r.Country, ASN: r.ASN, ASOrg: r.ASOrg,
		KnownSource: r.KnownSource, KnownAuthorised: r.KnownAuthorised, CheckedAt: r.CheckedAt}
}

// LatestStmt selects the latest attribution of every IP, by IP.
func LatestStmt() chsql.Stmt {
	return chsql.Text(`SELECT ip, argMax(ptr, checked_at) AS latest_ptr, argMax(ptr_confirmed, checked_at) AS latest_ptr_confirmed,
	argMax(spf_domain, checked_at) AS latest_spf_domain, argMax(spf_mechanism, checked_at) AS latest_spf_mechanism,
	argMax(spf_includes, checked_at) AS latest_spf_includes,
	argMax(country, checked_at) AS latest_country, argMax(asn, checked_at) AS latest_asn, argMax(as_org, checked_at) AS latest_as_org,
	argMax(known_source, checked_at) AS latest_known_source, argMax(known_authorised, checked_at) AS latest_known_authorised,
	max(checked_at) AS latest_checked_at
FROM source_attribution GROUP BY ip ORDER BY ip`)
}

// SourceAttributions returns the latest attribution of every IP, by IP.
func SourceAttributions(ctx context.Context, q chsql.Querier) ([]SourceAttribution, error) {
	rows, err := chsql.Select[latestRow](ctx, q, LatestStmt())
	if err != nil {
		return nil, fmt.Errorf("reading source attribution: %w", err)
	}
	var l []SourceAttribution
	for _, r := range rows {
		l = append(l, r.attribution())
	}
	return l, nil
}

// LatestOfStmt selects the latest PTR, geo and known source of each of ips
// that has an attribution.
func LatestOfStmt(ips []string) chsql.Stmt {
	return chsql.Stmt{SQL: `SELECT ip, argMax(ptr, checked_at) AS latest_ptr, argMax(ptr_confirmed, checked_at) AS latest_ptr_confirmed,
	argMax(country, checked_at) AS latest_country, argMax(asn, checked_at) AS latest_asn, argMax(as_org, checked_at) AS latest_as_org,
	argMax(known_source, checked_at) AS latest_known_source, argMax(known_authorised, checked_at) AS latest_known_authorised
FROM source_attribution WHERE has(?, ip) GROUP BY ip`, Args: []any{ips}}
}

// AttributionsOf returns the latest attribution of each of ips that has
// one, by IP: its PTR, geo and known source.
func AttributionsOf(ctx context.Context, q chsql.Querier, ips []string) (map[string]SourceAttribution, error) {
	out := map[string]SourceAttribution{}
	if len(ips) == 0 {
		return out, nil
	}
	rows, err := chsql.Select[latestRow](ctx, q, LatestOfStmt(ips))
	if err != nil {
		return nil, fmt.Errorf("reading source attribution: %w", err)
	}
	for _, r := range rows {
		out[r.IP] = r.attribution()
	}
	return out, nil
}

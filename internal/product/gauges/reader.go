package gauges

import (
	"context"
	"time"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
	"github.com/dmarcd/dmarcd/internal/product/gauges/gaugedb"
)

// DomainGauges is what one report window says about one policy domain.
type DomainGauges = gaugedb.DomainGauges

// LastReport is the latest aggregate report of a reporter organisation or
// a policy domain.
type LastReport = gaugedb.LastReport

// Reader reads the gauges from ClickHouse: the Querier of New.
type Reader struct{ Q chsql.Querier }

// GaugeDomains is gaugedb.ReadDomains.
func (r Reader) GaugeDomains(ctx context.Context, since, until time.Time) ([]DomainGauges, error) {
	return gaugedb.ReadDomains(ctx, r.Q, since, until)
}

// LastReportsByOrg is gaugedb.ReadLastReportsByOrg.
func (r Reader) LastReportsByOrg(ctx context.Context, since time.Time) ([]LastReport, error) {
	return gaugedb.ReadLastReportsByOrg(ctx, r.Q, since)
}

// LastReportsByDomain is gaugedb.ReadLastReportsByDomain.
func (r Reader) LastReportsByDomain(ctx context.Context, since time.Time) ([]LastReport, error) {
	return gaugedb.ReadLastReportsByDomain(ctx, r.Q, since)
}

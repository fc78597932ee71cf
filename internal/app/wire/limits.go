package wire

import (
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/extract"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
)

// Limits are the parsers' bounds built from the configuration's limits
// section, for `dmarcd ingest`, `dmarcd parse` and the daemon's sources. A
// key left at 0 keeps the parser's own default.
type Limits struct {
	Extract   extract.Limits
	Aggregate aggregate.Limits
	TLSRPT    tlsrpt.Limits
	// HashAhead is ingest.Options.MaxHashAhead (0: its default).
	HashAhead int64
}

// LimitsFrom returns the parsers' limits for c.
func LimitsFrom(c config.Config) Limits {
	l := c.Limits
	return Limits{
		Extract: extract.Limits{
			MaxMessageBytes: int64(l.MaxMessageBytes),
			MaxMemberBytes:  int64(l.MaxMemberBytes),
			MaxTotalBytes:   int64(l.MaxTotalBytes),
			MaxZipMembers:   l.MaxZipMembers,
			MaxDepth:        l.MaxDepth,
			MaxRatio:        l.MaxDecompressionRate,
			MaxContainers:   l.MaxContainers,
			MaxParts:        l.MaxMIMEParts,
			MaxHeaderFields: l.MaxHeaderFields,
			MaxHeaderBytes:  int64(l.MaxHeaderBytes),
		},
		Aggregate: aggregate.Limits{
			MaxRecords:     l.MaxRecords,
			MaxDepth:       l.MaxXMLDepth,
			MaxTokenBytes:  int(l.MaxXMLTokenBytes),
			MaxValueBytes:  int(l.MaxXMLValueBytes),
			MaxHeaderBytes: int(l.MaxXMLHeaderBytes),
			MaxResults:     l.MaxResultsPerRecord,
		},
		TLSRPT: tlsrpt.Limits{
			MaxBytes:       int64(l.MaxTLSRPTBytes),
			MaxFailureRows: l.MaxTLSRPTFailureRows,
		},
		HashAhead: int64(l.HashAheadBytes),
	}
}

package gaugedb

import (
	"context"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/sqlgolden"
)

// TestGoldenReadQueriesRenderAsRecorded renders every gauge query over a
// fixed window and compares the statements and their arguments with
// testdata/golden/read_gauges.sql.
func TestGoldenReadQueriesRenderAsRecorded(t *testing.T) {
	ctx := context.Background()
	since, until := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 8, 0, 0, 0, 0, time.UTC)
	r := &sqlgolden.Recorder{}
	if _, err := ReadDomains(ctx, r, since, until); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLastReportsByOrg(ctx, r, since); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLastReportsByDomain(ctx, r, since); err != nil {
		t.Fatal(err)
	}
	sqlgolden.Check(t, "read_gauges.sql", r.SQL())
}

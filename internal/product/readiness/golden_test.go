package readiness

import (
	"context"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/sqlgolden"
)

// TestGoldenReadQueriesRenderAsRecorded renders every readiness query over
// a fixed window and compares the statements and their arguments with
// testdata/golden/read_readiness.sql.
func TestGoldenReadQueriesRenderAsRecorded(t *testing.T) {
	ctx := context.Background()
	since, until := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 8, 0, 0, 0, 0, time.UTC)
	r := &sqlgolden.Recorder{}
	if _, err := ReadSources(ctx, r, since, until, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSources(ctx, r, since, until, Options{IncludeFailedAuth: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadIPs(ctx, r, since, until); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPolicies(ctx, r, since, until); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFailedAuth(ctx, r, since, until); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadUnverified(ctx, r, since, until); err != nil {
		t.Fatal(err)
	}
	sqlgolden.Check(t, "read_readiness.sql", r.SQL())
}

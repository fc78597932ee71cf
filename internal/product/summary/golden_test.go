package summary

import (
	"context"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/sqlgolden"
)

// TestGoldenReadQueriesRenderAsRecorded renders the summary's queries from
// a fixed date and compares the statements and their arguments with
// testdata/golden/read_summary.sql.
func TestGoldenReadQueriesRenderAsRecorded(t *testing.T) {
	r := &sqlgolden.Recorder{}
	if _, err := Read(context.Background(), r, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	sqlgolden.Check(t, "read_summary.sql", r.SQL())
}

package checkdb

import (
	"context"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/sqlgolden"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestGoldenReadQueriesRenderAsRecorded renders every query of the check's
// reads for a fixed domain and date and compares the statements and their
// arguments with testdata/golden/read_check.sql.
func TestGoldenReadQueriesRenderAsRecorded(t *testing.T) {
	ctx := context.Background()
	r := &sqlgolden.Recorder{}
	if _, err := CheckSelectorsOf(ctx, r, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := DKIMSelectorsOf(ctx, r, "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := DomainTraffic(ctx, r, "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := RecentPolicyDomains(ctx, r, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if _, err := LatestDNSRecords(ctx, r, "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := DNSRecords(ctx, r, "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := DNSRecords(ctx, r, ""); err != nil {
		t.Fatal(err)
	}
	sqlgolden.Check(t, "read_check.sql", r.SQL())
}

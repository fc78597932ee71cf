package attrib

import (
	"context"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/sqlgolden"
)

// TestGoldenReadQueriesRenderAsRecorded renders every query of the
// attribution's reads and compares the statements and their arguments
// with testdata/golden/read_attrib.sql.
func TestGoldenReadQueriesRenderAsRecorded(t *testing.T) {
	ctx := context.Background()
	r := &sqlgolden.Recorder{}
	if _, err := UnattributedIPs(ctx, r, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := SourceAttributions(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := AttributionsOf(ctx, r, []string{"192.0.2.1", "2001:db8::1"}); err != nil {
		t.Fatal(err)
	}
	sqlgolden.Check(t, "read_attrib.sql", r.SQL())
}

package checkdb

import (
	"context"
	"fmt"
	"github.com/dmarcd/dmarcd/enrich"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/storetest"
	"github.com/dmarcd/dmarcd/parse/align"
)

// TestCheckSelectorsComeOnlyFromAuthenticatedReportsAndAreBounded: a
// forged report (its mail unverified, or failed) listing 5,000 selectors
// adds none; of an authenticated report's selectors, only the busiest
// DefaultCheckSelectors that are DNS labels are returned.
func TestCheckSelectorsComeOnlyFromAuthenticatedReportsAndAreBounded(t *testing.T) {
	s := storetest.Open(t)
	ctx := context.Background()
	r := align.Relaxed
	var forged []*enrich.Record
	for i := range 5000 {
		forged = append(forged, storetest.AuthRow(fmt.Sprintf("198.51.100.%d", i%250), 1000, "example.com", []string{fmt.Sprintf("example.com/f%04d/pass", i)}, nil, nil, r, r))
	}
	for i, res := range []string{"unverified", "fail"} {
		m := storetest.Meta
		m.AuthResult = res
		if _, err := s.WriteAggregate(ctx, storetest.Header("forger.example", fmt.Sprint("forged", i), "example.com", storetest.Jan2024), m, storetest.Rows(forged...)); err != nil {
			t.Fatal(err)
		}
	}
	var genuine []*enrich.Record
	for i := range 30 {
		genuine = append(genuine, storetest.AuthRow("192.0.2.1", uint64(100+i), "example.com", []string{fmt.Sprintf("example.com/s%02d/pass", i)}, nil, nil, r, r))
	}
	genuine = append(genuine, storetest.AuthRow("192.0.2.2", 10000, "example.com", []string{"example.com/bad sel;x/pass", "example.com/a..b/pass"}, nil, nil, r, r))
	m := storetest.Meta
	m.AuthResult = "pass"
	if _, err := s.WriteAggregate(ctx, storetest.Header("google.com", "genuine", "example.com", storetest.Jan2024), m, storetest.Rows(genuine...)); err != nil {
		t.Fatal(err)
	}
	sels, err := CheckSelectorsOf(ctx, s, "example.com", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sels) != DefaultCheckSelectors {
		t.Fatalf("%d selectors, want %d: %+v", len(sels), DefaultCheckSelectors, sels)
	}
	for i, c := range sels {
		if want := fmt.Sprintf("s%02d", 10+i); c.Selector != want || c.Domain != "example.com" {
			t.Errorf("selector %d = %+v, want %s (the busiest, sorted)", i, c, want)
		}
	}
}

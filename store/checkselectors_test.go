package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/parse/align"
)

// TestCheckSelectorsComeOnlyFromAuthenticatedReportsAndAreBounded: a
// forged report (its mail unverified, or failed) listing 5,000 selectors
// adds none; of an authenticated report's selectors, only the busiest
// DefaultCheckSelectors that are DNS labels are returned.
func TestCheckSelectorsComeOnlyFromAuthenticatedReportsAndAreBounded(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	r := align.Relaxed
	var forged []*enrich.Record
	for i := range 5000 {
		forged = append(forged, authRow(fmt.Sprintf("198.51.100.%d", i%250), 1000, "example.com", []string{fmt.Sprintf("example.com/f%04d/pass", i)}, nil, nil, r, r))
	}
	for i, res := range []string{"unverified", "fail"} {
		m := meta
		m.AuthResult = res
		if _, err := s.WriteAggregate(ctx, header("forger.example", fmt.Sprint("forged", i), "example.com", jan2024), m, rowsOf(forged...)); err != nil {
			t.Fatal(err)
		}
	}
	var genuine []*enrich.Record
	for i := range 30 {
		genuine = append(genuine, authRow("192.0.2.1", uint64(100+i), "example.com", []string{fmt.Sprintf("example.com/s%02d/pass", i)}, nil, nil, r, r))
	}
	genuine = append(genuine, authRow("192.0.2.2", 10000, "example.com", []string{"example.com/bad sel;x/pass", "example.com/a..b/pass"}, nil, nil, r, r))
	m := meta
	m.AuthResult = "pass"
	if _, err := s.WriteAggregate(ctx, header("google.com", "genuine", "example.com", jan2024), m, rowsOf(genuine...)); err != nil {
		t.Fatal(err)
	}
	sels, err := s.CheckSelectorsOf(ctx, "example.com", 0)
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

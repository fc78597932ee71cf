package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestInputStatusesFindsFinishedInputsInLongLists logs inputs with every
// status and looks them up among more names than one query may carry: a
// committed row wins over an invalid one, error rows do not count.
func TestInputStatusesFindsFinishedInputsInLongLists(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	log := func(name, status string) {
		if err := s.LogInput(ctx, InputRow{Source: "s3", Name: name, Status: status}); err != nil {
			t.Fatal(err)
		}
	}
	log("s3://b/stored#1", "stored")
	log("s3://b/dup#1", "duplicate")
	log("s3://b/invalid#1", "invalid")
	log("s3://b/retried#1", "error")
	log("s3://b/retried#1", "stored")
	log("s3://b/failing#1", "error")
	log("s3://b/quote'd#1", "stored")
	names := []string{"s3://b/stored#1", "s3://b/dup#1", "s3://b/invalid#1", "s3://b/retried#1", "s3://b/failing#1",
		"s3://b/stored#2", "s3://b/quote'd#1"}
	pad := strings.Repeat("x", 200)
	for i := range 2000 { // 400 KB of names: several queries
		names = append(names, fmt.Sprintf("s3://b/%s/%d#0", pad, i))
	}
	got, err := s.InputStatuses(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"s3://b/stored#1": "stored", "s3://b/dup#1": "duplicate", "s3://b/invalid#1": "invalid",
		"s3://b/retried#1": "stored", "s3://b/quote'd#1": "stored"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}

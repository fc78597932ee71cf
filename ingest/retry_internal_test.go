package ingest

import (
	"fmt"
	"testing"
	"time"
)

// TestRetryBookIsBoundedAndBacksOffPerInput: an input's delay doubles from
// Min up to Max with jitter (each in its upper half), and an attacker's
// flood of failing inputs never holds more than Entries of them: the one
// whose last error is oldest is forgotten first.
func TestRetryBookIsBoundedAndBacksOffPerInput(t *testing.T) {
	pol := RetryPolicy{Min: time.Second, Max: 8 * time.Second, Entries: 100}.withDefaults()
	b := newRetryBook(pol)
	now := time.Unix(1e9, 0)
	for i, want := range []time.Duration{1, 2, 4, 8, 8} {
		e := b.fail("x", now)
		d := e.due.Sub(now)
		if lo, hi := want*time.Second/2, want*time.Second; d < lo || d > hi {
			t.Errorf("error %d: due in %v, want within [%v, %v]", i+1, d, lo, hi)
		}
		if b.due("x", now) || !b.due("x", now.Add(want*time.Second)) {
			t.Errorf("error %d: due at once or not after its delay", i+1)
		}
	}
	for i := range 10 * pol.Entries {
		b.fail(fmt.Sprint("flood-", i), now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := b.len(); n != pol.Entries {
		t.Errorf("%d inputs remembered, want at most %d", n, pol.Entries)
	}
	if !b.due("x", now) {
		t.Error("the oldest entry is still remembered after the flood")
	}
	if b.due(fmt.Sprint("flood-", 10*pol.Entries-1), now) {
		t.Error("the newest entry was forgotten")
	}
}

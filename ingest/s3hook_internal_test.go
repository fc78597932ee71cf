package ingest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCoalescerFiresOnceAtOnceAndOnceMoreAtTheEndOfTheInterval: 1,000
// notifies from 8 goroutines fire once at once and once more when the
// interval ends (the pending flag), not once each; a notify after the
// interval fires again at once.
func TestCoalescerFiresOnceAtOnceAndOnceMoreAtTheEndOfTheInterval(t *testing.T) {
	var fired atomic.Int64
	fires := make(chan time.Time, 1000)
	c := &coalescer{interval: 200 * time.Millisecond, fire: func() {
		fired.Add(1)
		fires <- time.Now()
	}}
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 125 {
				c.notify()
			}
		})
	}
	wg.Wait()
	burst := time.Since(start)
	first := <-fires
	second := <-fires // the pending one
	if d := second.Sub(first); d < c.interval {
		t.Errorf("second firing %v after the first; want at least %v", d, c.interval)
	}
	// A machine that stalls the burst over several intervals gets one
	// firing more per interval, no more.
	if n, max := fired.Load(), 2+int64(burst/c.interval); n > max {
		t.Errorf("fired %d times for 1,000 notifies in %v; want at most %d", n, burst, max)
	}
	var again atomic.Int64
	later := &coalescer{interval: c.interval, fire: func() { again.Add(1) }, last: time.Now().Add(-c.interval)}
	later.notify()
	if again.Load() != 1 {
		t.Errorf("a notify an interval after the last firing did not fire at once")
	}
}

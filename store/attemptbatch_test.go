package store

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
)

// TestCallersThatComeWhileABatchRunsGoTogetherInTheNext holds the first
// batch until eight more callers queued: they go in one batch, each gets
// its own answer, and an error of a batch reaches each of its callers.
func TestCallersThatComeWhileABatchRunsGoTogetherInTheNext(t *testing.T) {
	var c coalescer[int, int]
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	fail := errors.New("batch failed")
	do := func(_ context.Context, qs []int) ([]int, error) {
		mu.Lock()
		sizes = append(sizes, len(qs))
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release
		}
		out := make([]int, len(qs))
		for i, q := range qs {
			if q < 0 {
				return nil, fail
			}
			out[i] = 2 * q
		}
		return out, nil
	}
	firstDone := make(chan int, 1)
	go func() {
		a, _ := c.run(context.Background(), 1, do)
		firstDone <- a
	}()
	// The first batch runs (busy) once the first call is queued.
	for {
		c.mu.Lock()
		busy, queued := c.busy, len(c.reqs)
		c.mu.Unlock()
		if busy && queued == 0 {
			break
		}
		runtime.Gosched()
	}
	var wg sync.WaitGroup
	answers := make([]int, 8)
	for i := range answers {
		wg.Go(func() { answers[i], _ = c.run(context.Background(), 10+i, do) })
	}
	for {
		c.mu.Lock()
		queued := len(c.reqs)
		c.mu.Unlock()
		if queued == len(answers) {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if a := <-firstDone; a != 2 {
		t.Errorf("first caller's answer %d, want 2", a)
	}
	for i, a := range answers {
		if a != 2*(10+i) {
			t.Errorf("caller %d: answer %d, want %d", i, a, 2*(10+i))
		}
	}
	if len(sizes) != 2 || sizes[1] != len(answers) {
		t.Errorf("batch sizes %v, want [1 %d]", sizes, len(answers))
	}
	if _, err := c.run(context.Background(), -1, do); !errors.Is(err, fail) {
		t.Errorf("a failed batch's caller got %v, want its error", err)
	}
}

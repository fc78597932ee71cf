package ingest

import (
	"context"
	"runtime"
	"testing"
)

// memLog is an AttemptLog that records nothing: a key of its own gate.
type memLog struct{ _ int }

func (*memLog) BeginAttempt(context.Context, string, string) (int, error) { return 0, nil }
func (*memLog) EndAttempt(context.Context, string, string) error          { return nil }
func (*memLog) AloneAttempt(context.Context, string, string) (int, error) { return 0, nil }

// TestASuspectWaitsForTheInputsInHandAndHoldsBackNewOnes is the guard's
// rule: a suspect is in hand with nothing else; inputs that come while it
// waits or runs wait for it; those in hand before it end first.
func TestASuspectWaitsForTheInputsInHandAndHoldsBackNewOnes(t *testing.T) {
	g := gateOf(&memLog{})
	g.enter() // an input in hand
	g.enter() // another
	alone := make(chan struct{})
	go func() {
		g.beAlone()
		close(alone)
	}()
	waitUntil(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.waiting == 1 })
	if g.tryEnter() {
		t.Fatal("an input came in hand while a suspect waits")
	}
	entered := make(chan struct{})
	go func() {
		g.enter()
		close(entered)
	}()
	g.leave()
	select {
	case <-alone:
		t.Fatal("the suspect is alone while an input is in hand")
	default:
	}
	g.leave()
	<-alone
	select {
	case <-entered:
		t.Fatal("an input came in hand while the suspect is alone")
	default:
	}
	g.done(true)
	<-entered
	if !g.tryEnter() {
		t.Error("no input may come in hand once the suspect is done")
	}
}

// waitUntil waits for cond, checked each time the scheduler runs others.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		if t.Context().Err() != nil {
			t.Fatal("condition never met")
		}
		runtime.Gosched()
	}
}

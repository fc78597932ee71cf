package ingest

import "context"

// Gate bounds how many inputs are read and parsed at once
// (Pipeline.ProcessGated), apart from how many a caller has in hand: an
// input waiting for the store holds no turn. It is safe for concurrent use.
type Gate struct{ turns chan struct{} }

// NewGate returns a Gate of n turns (at least one).
func NewGate(n int) *Gate { return &Gate{turns: make(chan struct{}, max(1, n))} }

// turn is one input's hold on a Gate; with a nil turn or Gate, enter and leave do
// nothing.
type turn struct {
	g    *Gate
	held bool
}

// enter takes a turn unless one is held, waiting for one to be free; once
// ctx is done it returns without one (the store then fails the input).
func (t *turn) enter(ctx context.Context) {
	if t == nil || t.g == nil || t.held {
		return
	}
	select {
	case t.g.turns <- struct{}{}:
		t.held = true
	case <-ctx.Done():
	}
}

// leave gives the turn back, if held.
func (t *turn) leave() {
	if t == nil || t.g == nil || !t.held {
		return
	}
	<-t.g.turns
	t.held = false
}

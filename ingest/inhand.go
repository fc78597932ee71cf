package ingest

// inHandBytes bounds the bytes (by listed size) of the inputs a spool or S3
// source has in hand at once; a larger input is in hand alone.
const inHandBytes = 32 << 20

// InHand runs a backlog's inputs concurrently and hands their results
// back in the order they were started, so that a source (or `dmarcd
// ingest` of a folder) counts, reports and ends its pass as it does one
// input at a time. The store commits the small reports whose writers wait
// together as one group (store/group.go, docs/schema.md "Group commit"):
// inputs in hand together share its INSERTs and claim.
//
// It holds at most limit inputs and maxBytes bytes (at least one input).
// NewInHand's limit is its maximum from the start. The spool and S3
// sources' (newInHand) starts at 1 and doubles with each input that ends
// without an error, up to its maximum; an input that met an error while
// the store was down puts it back to 1 (took). So a store that is down
// meets one attempt at a time, and a pass stops after the same errors in
// a row as one input at a time would.
//
// The zero value is not usable. One goroutine (the pass) calls its
// methods.
type InHand[R any] struct {
	max, limit int
	maxBytes   int64
	bytes      int64
	queue      []handed[R]
}

// handed is one input in hand: its result, once ready, and its size.
type handed[R any] struct {
	c    chan R
	size int64
}

// NewInHand returns an InHand of n inputs (at least 1) and maxBytes bytes
// at once.
func NewInHand[R any](n int, maxBytes int64) *InHand[R] {
	n = max(1, n)
	return &InHand[R]{max: n, limit: n, maxBytes: maxBytes}
}

// newInHand returns the InHand of a spool or S3 pass: at most n inputs
// and inHandBytes, one at first.
func newInHand[R any](n int) *InHand[R] {
	return &InHand[R]{max: max(1, n), limit: 1, maxBytes: inHandBytes}
}

// Full tells whether an input of size must wait for the oldest in hand.
func (h *InHand[R]) Full(size int64) bool {
	return len(h.queue) > 0 && (len(h.queue) >= h.limit || h.bytes+size > h.maxBytes)
}

// Len is the number of inputs in hand.
func (h *InHand[R]) Len() int { return len(h.queue) }

// Start runs work in a goroutine of its own as an input of size in hand.
func (h *InHand[R]) Start(size int64, work func() R) {
	c := make(chan R, 1)
	h.queue = append(h.queue, handed[R]{c: c, size: size})
	h.bytes += size
	go func() { c <- work() }()
}

// Ready tells whether the oldest input in hand has its result: Next
// returns at once.
func (h *InHand[R]) Ready() bool { return len(h.queue) > 0 && len(h.queue[0].c) > 0 }

// Next waits for the oldest input in hand and returns its result.
func (h *InHand[R]) Next() R {
	first := h.queue[0]
	h.queue[0] = handed[R]{}
	h.queue = h.queue[1:]
	h.bytes -= first.size
	return <-first.c
}

// succeeded doubles the limit, up to max: an input ended without error.
func (h *InHand[R]) succeeded() { h.limit = min(h.max, 2*h.limit) }

// storeDown puts the limit back to one input: the store did not answer.
func (h *InHand[R]) storeDown() { h.limit = 1 }

// passTally is what the outcomes of a pass said, as a source takes them
// in order from its inputs in hand (took).
type passTally struct {
	errors     int    // inputs whose outcome was an error
	firstError string // reason of the first error
	storeDown  bool   // some error came while the store was down
	downInARow int    // errors while the store was down, in a row
}

// took counts out (its verdict v) into t and sizes h by it: an input
// without error widens the inputs in hand, an error while the store is
// down narrows them to one, and stop tells that maxErrorsPass of those
// came in a row (the pass ends). An input's own trouble changes neither:
// the others go on.
func took[R any](t *passTally, h *InHand[R], out Outcome, v verdict) (stop bool) {
	if out.Status != Error {
		h.succeeded()
		t.downInARow = 0
		return false
	}
	t.errors++
	if t.firstError == "" {
		t.firstError = out.Reason
	}
	if v != storeDown {
		return false
	}
	t.storeDown = true
	h.storeDown()
	t.downInARow++
	return t.downInARow >= maxErrorsPass
}

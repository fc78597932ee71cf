package ingest

import (
	"hash"
	"sync"
)

// asyncHashChunk is how many bytes asyncHash gathers before a goroutine of
// its own hashes them; asyncHashChunks chunks at most are in flight (the
// memory it holds: 1 MiB).
const (
	asyncHashChunk  = 256 << 10
	asyncHashChunks = 4
)

// asyncHash hashes the bytes written to it with h on a goroutine of its
// own, so that the goroutine reading and parsing an input does not wait
// for SHA-256 (about a tenth of its CPU time on a large report,
// docs/benchmarks.md "Large report"). Write copies the bytes into chunks
// and hands each full one over; an input shorter than one chunk is hashed
// by Sum, with no goroutine. Sum waits for every chunk and returns h's
// sum; it must be called once, after the last Write, and ends the
// goroutine.
type asyncHash struct {
	h    hash.Hash
	cur  []byte
	work chan []byte
	free chan []byte
	wg   sync.WaitGroup
}

func newAsyncHash(h hash.Hash) *asyncHash { return &asyncHash{h: h} }

// Write copies p; it never fails.
func (a *asyncHash) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if a.cur == nil {
			a.cur = a.chunk()
		}
		k := copy(a.cur[len(a.cur):cap(a.cur)], p)
		a.cur = a.cur[:len(a.cur)+k]
		p = p[k:]
		if len(a.cur) == cap(a.cur) {
			a.start()
			a.work <- a.cur
			a.cur = nil
		}
	}
	return n, nil
}

// chunk returns an empty chunk: a new one until asyncHashChunks exist,
// then one the goroutine has hashed.
func (a *asyncHash) chunk() []byte {
	if a.free == nil {
		a.free = make(chan []byte, asyncHashChunks)
		for range asyncHashChunks {
			a.free <- make([]byte, 0, asyncHashChunk)
		}
	}
	return (<-a.free)[:0]
}

// start starts the hashing goroutine the first time.
func (a *asyncHash) start() {
	if a.work != nil {
		return
	}
	a.work = make(chan []byte, asyncHashChunks)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for c := range a.work {
			a.h.Write(c)
			a.free <- c
		}
	}()
}

// Sum hashes what is left, waits for the goroutine and appends h's sum to
// b.
func (a *asyncHash) Sum(b []byte) []byte {
	if a.work != nil {
		close(a.work)
		a.wg.Wait()
		a.work = nil
	}
	a.h.Write(a.cur)
	a.cur = nil
	return a.h.Sum(b)
}

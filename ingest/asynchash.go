package ingest

import (
	"hash"
	"sync"
)

// asyncHashChunk is how many bytes asyncHash gathers before a goroutine of
// its own hashes them; asyncHashChunks chunks at most are in flight per
// input (1 MiB), taken from hashChunks.
const (
	asyncHashChunk  = 256 << 10
	asyncHashChunks = 4
)

// hashChunks holds the chunks of the inputs being hashed, so that inputs
// processed one after another reuse them.
var hashChunks = sync.Pool{New: func() any {
	c := make([]byte, 0, asyncHashChunk)
	return &c
}}

// asyncHash hashes the bytes written to it with h, on a goroutine of its
// own once the input is longer than one chunk, so that the goroutine
// reading and parsing a large input does not wait for SHA-256 (about a
// tenth of its CPU time on a large report, docs/benchmarks.md "Large
// report"). The first asyncHashChunk bytes are hashed by Write itself: an
// input of at most one chunk (nearly every report) costs no goroutine and
// no chunk. Past them, Write copies the bytes into chunks and hands each
// full one over. Sum waits for every chunk and returns h's sum; it must be
// called once, after the last Write, and ends the goroutine.
type asyncHash struct {
	h      hash.Hash
	direct int // bytes hashed by Write, at most asyncHashChunk
	cur    []byte
	work   chan []byte
	free   chan []byte // hashed chunks, for Write to fill again
	made   int         // chunks taken from hashChunks
	wg     sync.WaitGroup
}

func newAsyncHash(h hash.Hash) *asyncHash { return &asyncHash{h: h} }

// Write hashes or copies p; it never fails.
func (a *asyncHash) Write(p []byte) (int, error) {
	n := len(p)
	if a.work == nil && a.direct+n <= asyncHashChunk {
		a.direct += n
		return a.h.Write(p)
	}
	a.start()
	for len(p) > 0 {
		if a.cur == nil {
			a.cur = a.chunk()
		}
		k := copy(a.cur[len(a.cur):cap(a.cur)], p)
		a.cur = a.cur[:len(a.cur)+k]
		p = p[k:]
		if len(a.cur) == cap(a.cur) {
			a.work <- a.cur
			a.cur = nil
		}
	}
	return n, nil
}

// chunk returns an empty chunk: one the goroutine has hashed, else one
// from hashChunks while fewer than asyncHashChunks were taken, else the
// next one the goroutine hashes.
func (a *asyncHash) chunk() []byte {
	select {
	case c := <-a.free:
		return c[:0]
	default:
	}
	if a.made < asyncHashChunks {
		a.made++
		return (*hashChunks.Get().(*[]byte))[:0]
	}
	return (<-a.free)[:0]
}

// start starts the hashing goroutine the first time.
func (a *asyncHash) start() {
	if a.work != nil {
		return
	}
	a.work = make(chan []byte, asyncHashChunks)
	a.free = make(chan []byte, asyncHashChunks)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for c := range a.work {
			a.h.Write(c)
			a.free <- c
		}
	}()
}

// Sum hashes what is left, waits for the goroutine, gives the chunks back
// to hashChunks and appends h's sum to b.
func (a *asyncHash) Sum(b []byte) []byte {
	if a.work != nil {
		close(a.work)
		a.wg.Wait()
		a.work = nil
	}
	if a.cur != nil {
		a.h.Write(a.cur)
		a.release(a.cur)
		a.cur = nil
	}
	for a.free != nil && len(a.free) > 0 {
		a.release(<-a.free)
	}
	return a.h.Sum(b)
}

func (a *asyncHash) release(c []byte) {
	c = c[:0]
	hashChunks.Put(&c)
}

// Package attacktest builds hostile inputs of any size for the parsers'
// limit tests without holding them in memory, and measures what a parser
// allocated while reading one.
package attacktest

import (
	"io"
	"runtime"
)

// Stream yields Head, then Body N times, then Tail, holding none of it
// beyond those three strings: an attack of any size costs the test nothing.
// Consumed counts the bytes handed out, so a test can check that reading
// stopped near a limit.
type Stream struct {
	Head, Body, Tail string
	N                int
	Consumed         int64

	cur   string
	stage int
}

func (s *Stream) Read(p []byte) (int, error) {
	for s.cur == "" {
		switch {
		case s.stage == 0:
			s.cur, s.stage = s.Head, 1
		case s.stage == 1 && s.N > 0:
			s.cur, s.N = s.Body, s.N-1
		case s.stage == 1:
			s.cur, s.stage = s.Tail, 2
		default:
			return 0, io.EOF
		}
	}
	k := copy(p, s.cur)
	s.cur = s.cur[k:]
	s.Consumed += int64(k)
	return k, nil
}

// Allocated returns the bytes allocated on the heap while f ran (all
// goroutines counted: tests calling it must not run in parallel).
func Allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

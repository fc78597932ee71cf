package ingest

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
)

func TestAsyncHashSumsAsSHA256DoesForEveryLengthAndWriteSize(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, asyncHashChunk - 1, asyncHashChunk, asyncHashChunk + 1, 3*asyncHashChunk + 17, 11*asyncHashChunk + 5} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		want := sha256.Sum256(data)
		for _, step := range []int{1 << 20, 4096, 7} {
			if n > 1<<20 && step == 7 {
				continue
			}
			a := newAsyncHash(sha256.New())
			src := struct{ io.Reader }{bytes.NewReader(data)} // no WriteTo: writes of step bytes
			if _, err := io.CopyBuffer(a, src, make([]byte, step)); err != nil {
				t.Fatal(err)
			}
			if got := a.Sum(nil); !bytes.Equal(got, want[:]) {
				t.Errorf("%d bytes written %d at a time: sum %x, want %x", n, step, got, want)
			}
		}
	}
}

func TestAsyncHashHashesAnInputOfOneChunkWithoutGoroutineOrChunk(t *testing.T) {
	a := newAsyncHash(sha256.New())
	data := bytes.Repeat([]byte("x"), asyncHashChunk)
	for i := 0; i < len(data); i += 4096 {
		a.Write(data[i : i+4096])
	}
	if a.work != nil || a.made != 0 || a.cur != nil {
		t.Errorf("after %d bytes: goroutine started %v, chunks taken %d", len(data), a.work != nil, a.made)
	}
	want := sha256.Sum256(data)
	if got := a.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Errorf("sum %x, want %x", got, want)
	}
}

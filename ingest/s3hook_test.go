package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
)

// eventBody is an S3 event notification announcing key in bucket, as
// versitygw and MinIO POST it (one record).
func eventBody(bucket, key string) string {
	return fmt.Sprintf(`{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q}}}]}`,
		bucket, key)
}

// TestS3WebhookRefusesABodyOverTheLimitWith413WhileReadingIt: a body
// declared larger than MaxBodyBytes is refused unread, and a chunked one
// (no length) once the limit is crossed: 413 either way, the rest of the
// body never read. An event under the limit is taken (204).
func TestS3WebhookRefusesABodyOverTheLimitWith413WhileReadingIt(t *testing.T) {
	src, err := ingest.NewS3Source(ingest.S3Config{Bucket: "b", Prefix: "incoming/"}, ingest.New(nil, ingest.Options{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	const max = 4 << 10
	h := src.Webhook(ingest.WebhookOptions{MaxBodyBytes: max})

	declared := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat(" ", 2*max)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, declared)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "8192 bytes is over the limit of 4096") {
		t.Errorf("declared 8 KiB: %d %q, want 413 naming both sizes", rec.Code, rec.Body)
	}

	// A chunked body of 1 GiB of spaces (JSON whitespace: a decoder without
	// a limit would read it all): counted while read.
	body := &countingReader{r: io.LimitReader(zeros{}, 1<<30)}
	chunked := httptest.NewRequest("POST", "/", body)
	chunked.ContentLength = -1
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, chunked)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 1 GiB: %d %q, want 413", rec.Code, rec.Body)
	}
	if n := body.n.Load(); n > 2*max+64<<10 {
		t.Errorf("read %d bytes of the chunked body; the limit is %d", n, max)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(eventBody("b", "incoming/x"))))
	if rec.Code != http.StatusNoContent {
		t.Errorf("an event under the limit: %d %q, want 204", rec.Code, rec.Body)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// listCounter counts listing pages (one per list call on a small bucket).
type listCounter struct{ pages atomic.Int64 }

func (c *listCounter) Listed(int)  { c.pages.Add(1) }
func (c *listCounter) Fetched()    {}
func (c *listCounter) Backlog(int) {}

// TestS3WebhookFloodOfEventsCostsOneListingPerInterval POSTs 1,000 events
// for a new object to a running source with an hour between polls, one
// every 2 ms (8 at a time), so that they span many passes: the object is
// fetched without waiting for the poll, and the source lists the bucket at
// most once per MinInterval (1 s, the default) while they arrive, plus the
// listing that follows the last one. Without the coalescing every event
// that arrives between two passes costs a listing (hundreds here).
func TestS3WebhookFloodOfEventsCostsOneListingPerInterval(t *testing.T) {
	got, elapsed := floodWebhook(t, ingest.WebhookOptions{})
	bound := 2 + int64(elapsed/ingest.DefaultWebhookMinInterval)
	t.Logf("1000 events in %v: %d listings (bound %d)", elapsed.Round(time.Millisecond), got, bound)
	if got < 1 || got > bound {
		t.Errorf("1000 events in %v caused %d listings; want 1..%d", elapsed, got, bound)
	}
}

// floodWebhook runs a source on a real versitygw, POSTs 1,000 events for a
// new object to its webhook (opt) and returns how many listings followed
// and how long the POSTs took.
func floodWebhook(t *testing.T, opt ingest.WebhookOptions) (int64, time.Duration) {
	b := newS3Bucket(t)
	p, _, _, _ := openS3Pipeline(t)
	cfg := b.config()
	cfg.PollInterval = time.Hour
	lists := &listCounter{}
	cfg.Observer = lists
	src := newSource(t, cfg, p)
	hook := httptest.NewServer(src.Webhook(opt))
	defer hook.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); src.Ready() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no listing: %v", src.Ready())
		}
	}
	files, err := gen.Generate(gen.Options{Domain: "flood.example", Days: 1, Seed: 5, Start: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	key := randomKey()
	b.put(t, key, files[0].Data)

	before := lists.pages.Load()
	start := time.Now()
	const posts, workers = 1000, 8
	var wg sync.WaitGroup
	var failed atomic.Int64
	jobs := make(chan struct{})
	for range workers {
		wg.Go(func() {
			for range jobs {
				resp, err := hook.Client().Post(hook.URL, "application/json", bytes.NewReader([]byte(eventBody(b.name, key))))
				if err != nil || resp.StatusCode != http.StatusNoContent {
					failed.Add(1)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	tick := time.NewTicker(2 * time.Millisecond) // paces the load; a slow machine only spreads it
	for range posts {
		<-tick.C
		jobs <- struct{}{}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d POSTs failed", n, posts)
	}
	for deadline := time.Now().Add(15 * time.Second); len(b.keys(t, "processed/")) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("object not fetched 15 s after %d events", posts)
		}
	}
	// The listing that may still come after this count only lowers it.
	return lists.pages.Load() - before, elapsed
}

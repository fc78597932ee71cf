package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/gen"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

// poisonDomain is the policy domain of the poison reports: the store fails
// every write of one, as ClickHouse fails a report it chokes on, while it
// answers pings and stores every other report.
const poisonDomain = "poison.example"

// poisonStore fails the aggregate reports for poisonDomain with a plain
// (retryable) error and passes every other call to its Store; it answers
// pings while up is true.
type poisonStore struct {
	ingest.Store
	mu     sync.Mutex
	writes map[string]int // poison write attempts by report ID
	down   bool
}

func newPoisonStore(st ingest.Store) *poisonStore {
	return &poisonStore{Store: st, writes: map[string]int{}}
}

var errPoison = errors.New("code: 999, message: the server chokes on this report")

func (s *poisonStore) WriteAggregate(ctx context.Context, h *aggregate.Header, m store.InputMeta, next func() (*store.Row, error)) (store.WriteResult, error) {
	if h.Domain == poisonDomain {
		s.mu.Lock()
		s.writes[h.ReportID]++
		s.mu.Unlock()
		return store.WriteResult{}, errPoison
	}
	return s.Store.WriteAggregate(ctx, h, m, next)
}

// poisonWrites is the number of poison writes tried.
func (s *poisonStore) poisonWrites() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, w := range s.writes {
		n += w
	}
	return n
}

func (s *poisonStore) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errStoreDown
	}
	if p, ok := s.Store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

// aggStore is an in-memory store of aggregate reports, each key once.
type aggStore struct {
	ingest.Store // failure and TLS reports: not used by these tests
	mu           sync.Mutex
	keys         map[string]bool
	inputs       []store.InputRow
}

func newAggStore() *aggStore { return &aggStore{keys: map[string]bool{}} }

func (s *aggStore) WriteAggregate(_ context.Context, h *aggregate.Header, _ store.InputMeta, next func() (*store.Row, error)) (store.WriteResult, error) {
	res := store.WriteResult{ReportKey: aggregate.Key(h), Status: store.StatusStored}
	for {
		r, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, err
		}
		res.Records++
		res.Messages += r.Record.Count
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[res.ReportKey] {
		res.Status = store.StatusDuplicate
	}
	s.keys[res.ReportKey] = true
	return res, nil
}

func (s *aggStore) LogInput(_ context.Context, in store.InputRow) error {
	s.mu.Lock()
	s.inputs = append(s.inputs, in)
	s.mu.Unlock()
	return nil
}

// memAttempts is an AttemptLog in memory: an attempt begun and never
// ended is one the process died with.
type memAttempts struct {
	mu            sync.Mutex
	begins, ends  map[string]int
	inHand, peaks int // attempts begun and not ended, now and at most
}

func newMemAttempts() *memAttempts {
	return &memAttempts{begins: map[string]int{}, ends: map[string]int{}}
}

func (a *memAttempts) BeginAttempt(_ context.Context, source, id string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := source + " " + id
	n := a.begins[k] - a.ends[k]
	a.begins[k]++
	a.inHand++
	a.peaks = max(a.peaks, a.inHand)
	return n, nil
}

func (a *memAttempts) EndAttempt(_ context.Context, source, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ends[source+" "+id]++
	a.inHand--
	return nil
}

// died makes every attempt of inputs whose id contains part look begun
// and never ended n times: the process died with it in hand n times.
func (a *memAttempts) died(source, id string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.begins[source+" "+id] += n
}

// open returns the number of attempts begun and not ended of ids
// containing part.
func (a *memAttempts) open(part string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for k, b := range a.begins {
		if strings.Contains(k, part) {
			n += b - a.ends[k]
		}
	}
	return n
}

// fastRetry retries within milliseconds and sets an input aside after 5
// errors, whenever they came.
var fastRetry = ingest.RetryPolicy{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond, Span: -1}

// dropOld writes the files into dir with an old modification time: they
// are settled at once.
func dropOld(t *testing.T, dir string, files ...gen.File) {
	t.Helper()
	old := time.Now().Add(-time.Minute)
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// poisonAndGood returns n poison report files (named so that they come
// first in name order) and m good ones.
func poisonAndGood(t *testing.T, n, m int) (poison, good []gen.File) {
	t.Helper()
	pf, err := gen.Generate(gen.Options{Domain: poisonDomain, Days: 2, Seed: 31})
	if err != nil {
		t.Fatal(err)
	}
	gf, err := gen.Generate(gen.Options{Domain: "good.example", Days: 2, Seed: 32})
	if err != nil {
		t.Fatal(err)
	}
	if len(pf) < n || len(gf) < m {
		t.Fatalf("generator gave %d and %d files, want %d and %d", len(pf), len(gf), n, m)
	}
	for i := range pf[:n] {
		pf[i].Name = fmt.Sprintf("a-poison-%d-%s", i, pf[i].Name)
	}
	for i := range gf[:m] {
		gf[i].Name = fmt.Sprintf("b-good-%d-%s", i, gf[i].Name)
	}
	return pf[:n], gf[:m]
}

// TestSpoolPoisonFilesDoNotHoldBackGoodOnes drops four files whose
// reports the store fails forever (while it answers pings) in front of
// good ones: the first pass stores and moves every good file although the
// four failed first, and Run then retries each poison file with its own
// backoff until it is set aside to invalid/ as retries_exhausted with its
// .reason, after exactly Attempts tries.
func TestSpoolPoisonFilesDoNotHoldBackGoodOnes(t *testing.T) {
	dir := t.TempDir()
	poison, good := poisonAndGood(t, 4, 3)
	dropOld(t, dir, append(append([]gen.File{}, poison...), good...)...)
	st := newPoisonStore(newAggStore())
	src := ingest.NewSpoolSource(ingest.SpoolConfig{Path: dir, PollInterval: time.Hour, Retry: fastRetry},
		ingest.New(st, ingest.Options{Source: "spool"}), testLogger())

	var outs []ingest.Outcome
	err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, o) })
	if !errors.Is(err, ingest.ErrSpoolFilesLeft) || !strings.Contains(err.Error(), "4 met an error and 0 were not tried") {
		t.Fatalf("first pass: %v, want ErrSpoolFilesLeft: 4 met an error and 0 were not tried", err)
	}
	if len(outs) != 7 {
		t.Fatalf("first pass: %d outcomes, want all 7 files tried", len(outs))
	}
	for i, o := range outs {
		if ok := o.Status == ingest.Error; i >= 4 {
			if ok = o.Status == ingest.Stored || o.Status == ingest.Duplicate; !ok {
				t.Errorf("first pass: %s: %s (%s), want stored", filepath.Base(o.Input), o.Status, o.Reason)
			}
		} else if !ok {
			t.Errorf("first pass: %s: %s (%s), want error", filepath.Base(o.Input), o.Status, o.Reason)
		}
	}
	if got := names(t, filepath.Join(dir, ingest.SpoolProcessedDir)); len(got) != 3 {
		t.Errorf("processed/ after the first pass holds %v, want the 3 good files", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	waitUntil(t, "poison files set aside", 20*time.Second, func() bool {
		return len(names(t, filepath.Join(dir, ingest.SpoolInvalidDir))) == 8
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("spool folder still holds %v", got)
	}
	for _, f := range poison {
		reason, err := os.ReadFile(filepath.Join(dir, ingest.SpoolInvalidDir, f.Name+".reason"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(reason), "reason_code: retries_exhausted\n") || !strings.Contains(string(reason), "failed 5 times") {
			t.Errorf("%s.reason:\n%s\nwant retries_exhausted after 5 failures", f.Name, reason)
		}
	}
	if n := st.poisonWrites(); n != 4*ingest.DefaultRetryAttempts {
		t.Errorf("poison reports written %d times, want %d (4 files, %d tries each)", n,
			4*ingest.DefaultRetryAttempts, ingest.DefaultRetryAttempts)
	}
}

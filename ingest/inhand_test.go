package ingest_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

// gateStore lets the writes of its first free inputs through (by the
// number their names begin with, backlogFiles), then holds every writer
// until together writers wait at once (as a group commit gathers them), and
// asks pending, at each write, whether the write's input is still
// unacknowledged. Which writes go free does not depend on the order in
// which concurrent writers arrive.
type gateStore struct {
	ingest.Store
	t        *testing.T
	free     int
	together int
	pending  func(input string) bool

	mu      sync.Mutex
	waiting int
	open    chan struct{}
	early   []string // inputs acknowledged before their write returned
}

func newGateStore(t *testing.T, st ingest.Store, free, together int, pending func(string) bool) *gateStore {
	return &gateStore{Store: st, t: t, free: free, together: together, pending: pending, open: make(chan struct{})}
}

// inputNumber is the number backlogFiles put at the start of an input's
// file or object name.
func inputNumber(t *testing.T, input string) int {
	base := input[strings.LastIndex(input, "/")+1:]
	n, err := strconv.Atoi(base[:2])
	if err != nil {
		t.Errorf("input %q: no number at the start of its name", input) // a writer's goroutine: no Fatal
	}
	return n
}

func (g *gateStore) WriteAggregate(ctx context.Context, h *aggregate.Header, m store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	gated := inputNumber(g.t, m.InputName) >= g.free
	if gated {
		g.mu.Lock()
		if g.waiting++; g.waiting == g.together {
			close(g.open)
		}
		g.mu.Unlock()
		select {
		case <-g.open:
		case <-time.After(30 * time.Second):
			g.t.Errorf("%s: fewer than %d writers in hand at once after 30 s", m.InputName, g.together)
		}
	}
	res, err := g.Store.WriteAggregate(ctx, h, m, next)
	if !g.pending(m.InputName) {
		g.mu.Lock()
		g.early = append(g.early, m.InputName)
		g.mu.Unlock()
	}
	return res, err
}

// backlogFiles returns n distinct generated report files.
func backlogFiles(t *testing.T, n int) []gen.File {
	t.Helper()
	files, err := gen.Generate(gen.Options{Domain: "backlog.example", Days: 6, Seed: 41})
	if err != nil {
		t.Fatal(err)
	}
	var out []gen.File
	for _, f := range files {
		if !f.Reports[0].Duplicate && len(out) < n {
			f.Name = fmt.Sprintf("%02d-%s", len(out), f.Name)
			out = append(out, f)
		}
	}
	if len(out) < n {
		t.Fatalf("generator gave %d files, want %d", len(out), n)
	}
	return out
}

// TestSpoolBacklogIsInHandTogetherAndEachFileMovedAfterItsWrite drops a
// backlog of report files: once the first ones stored, the source has
// several in hand at once (their writers wait together, as for a group
// commit), every file is still in the folder while its reports are
// written, and each ends in processed/, with outcomes told in name order.
func TestSpoolBacklogIsInHandTogetherAndEachFileMovedAfterItsWrite(t *testing.T) {
	dir := t.TempDir()
	files := backlogFiles(t, 16)
	dropOld(t, dir, files...)
	g := newGateStore(t, newAggStore(), 3, 4, func(input string) bool {
		_, err := os.Stat(input)
		return err == nil
	})
	src := ingest.NewSpoolSource(ingest.SpoolConfig{Path: dir, PollInterval: time.Hour, Concurrency: 32},
		ingest.New(g, ingest.Options{Source: "spool"}), testLogger())
	var outs []string
	err := src.Once(context.Background(), func(o ingest.Outcome) {
		outs = append(outs, o.Input[len(dir)+1:]+":"+string(o.Status))
	})
	if err != nil {
		t.Fatalf("Once: %v", err)
	}
	var want []string
	for _, f := range files {
		want = append(want, f.Name+":stored")
	}
	if strings.Join(outs, " ") != strings.Join(want, " ") {
		t.Errorf("outcomes\n%v\nwant\n%v", outs, want)
	}
	if len(g.early) > 0 {
		t.Errorf("moved before their reports were written: %v", g.early)
	}
	if got := names(t, dir+"/"+ingest.SpoolProcessedDir); len(got) != len(files) {
		t.Errorf("processed/ holds %d files, want %d", len(got), len(files))
	}
}

// TestSpoolConcurrencyOneKeepsOneFileInHand: with concurrency 1 the
// writers never overlap.
func TestSpoolConcurrencyOneKeepsOneFileInHand(t *testing.T) {
	dir := t.TempDir()
	dropOld(t, dir, backlogFiles(t, 8)...)
	var mu sync.Mutex
	in, most := 0, 0
	st := &overlapStore{Store: newAggStore(), enter: func(d int) {
		mu.Lock()
		in += d
		most = max(most, in)
		mu.Unlock()
	}}
	src := ingest.NewSpoolSource(ingest.SpoolConfig{Path: dir, Concurrency: 1},
		ingest.New(st, ingest.Options{Source: "spool"}), testLogger())
	if err := src.Once(context.Background(), nil); err != nil {
		t.Fatalf("Once: %v", err)
	}
	if most != 1 {
		t.Errorf("%d writers at once, want 1", most)
	}
}

// overlapStore tells enter of each writer coming in (+1) and leaving (-1).
type overlapStore struct {
	ingest.Store
	enter func(int)
}

func (s *overlapStore) WriteAggregate(ctx context.Context, h *aggregate.Header, m store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	s.enter(1)
	defer s.enter(-1)
	return s.Store.WriteAggregate(ctx, h, m, next)
}

// TestS3BacklogIsInHandTogetherAndEachObjectMovedAfterItsWrite puts a
// backlog of report objects in a versitygw bucket: once the first ones
// stored, the source has several in hand at once, every object is still
// pending while its reports are written, and each ends under processed/,
// with outcomes told in key order.
func TestS3BacklogIsInHandTogetherAndEachObjectMovedAfterItsWrite(t *testing.T) {
	b := newS3Bucket(t)
	files := backlogFiles(t, 16)
	want := map[string]string{}
	var order []string
	for _, f := range files {
		b.put(t, "incoming/"+f.Name, f.Data)
		want[f.Name] = "processed/"
		order = append(order, "s3://"+b.name+"/incoming/"+f.Name+":stored")
	}
	g := newGateStore(t, newAggStore(), 3, 4, func(input string) bool {
		key := strings.TrimPrefix(input[:strings.LastIndex(input, "#")], "s3://"+b.name+"/")
		_, err := b.c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(b.name), Key: aws.String(key)})
		return err == nil
	})
	cfg := b.config()
	cfg.Concurrency = 32
	src := newSource(t, cfg, ingest.New(g, ingest.Options{Source: "s3"}))
	var outs []string
	for _, o := range once(t, src) {
		outs = append(outs, o.Input[:strings.LastIndex(o.Input, "#")]+":"+string(o.Status))
	}
	if strings.Join(outs, " ") != strings.Join(order, " ") {
		t.Errorf("outcomes\n%v\nwant\n%v", outs, order)
	}
	if len(g.early) > 0 {
		t.Errorf("moved before their reports were written: %v", g.early)
	}
	assertPlaces(t, b, want)
}

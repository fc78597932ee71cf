package compat

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/store"
)

// Group commit (store/group.go) writes many small reports with one
// statement per table, checks their duplicates in one query and holds one
// group claim: its statements, recorded on 18.16 while reports arrive
// together (each twice), replayed on the 26.x engine leave the same tables.
func TestGroupCommitReplayedOn26LeavesTheSameTables(t *testing.T) {
	dsn := testenv.ClickHouse(t)
	e := testenv.CHDB(t)
	ctx := context.Background()
	rec := &writesRecorder{}
	st, err := store.Open(ctx, dsn, store.Options{Logger: slog.New(slog.DiscardHandler), BatchRows: writesBatchRows,
		WrapConn: rec.wrap, Group: &store.GroupOptions{}})
	if err != nil {
		t.Fatalf("store.Open(%s): %v", dsn, err)
	}
	defer st.Close()
	admin := openConn(t, dsn)

	files, err := gen.Generate(gen.Options{Domain: "example.com", Days: 3, Seed: 31, Start: time.Now().UTC().AddDate(0, 0, -9)})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("the generator made %d reports; want several to group", len(files))
	}
	p := ingest.New(st, ingest.Options{Source: "file", Privacy: ingest.Privacy{Key: []byte("k")}})
	var mu sync.Mutex
	statuses := map[ingest.Status]int{}
	var wg sync.WaitGroup
	for copy := range 2 {
		for _, f := range files {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := p.Process(ctx, fmt.Sprintf("%d/%s", copy, f.Name), bytes.NewReader(f.Data))
				mu.Lock()
				statuses[o.Status]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	unique := 0
	for _, f := range files {
		for _, r := range f.Reports {
			if !r.Duplicate {
				unique++
			}
		}
	}
	if statuses[ingest.Stored] != unique || statuses[ingest.Duplicate] != 2*len(files)-unique {
		t.Fatalf("statuses %v; want %d stored and %d duplicate", statuses, unique, 2*len(files)-unique)
	}

	stmts := rec.statements()
	if !slices.ContainsFunc(stmts, func(s recordedStmt) bool {
		return strings.HasPrefix(strings.TrimSpace(s.sql), "CREATE TABLE dmarcd_claim_group")
	}) {
		t.Fatal("no group claim was recorded: the reports were not committed as a group")
	}
	stats, diffs := replay(e, st.Database(), stmts, 0)
	for _, d := range diffs {
		t.Errorf("replayed on %s: %v", e.Version(), d)
	}
	if len(rec.other) > 0 {
		t.Errorf("calls the recorder does not replay: %q", rec.other)
	}
	compareTables(t, "after group commits", admin, e)
	t.Logf("%d reports twice; %d statements replayed on %s (%d Exec, %d queries, %d batches of %d rows)",
		len(files), len(stmts), e.Version(), stats.exec, stats.query, stats.batch, stats.rows)
}

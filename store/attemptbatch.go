package store

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

// coalesceTimeout bounds one batch of a coalescer: an INSERT or SELECT
// made for concurrent callers.
const coalesceTimeout = 30 * time.Second

// coalescer gathers the requests of concurrent callers into batches: the
// first caller starts a batch at once; those that come while it runs wait
// and go together in the next. A source with many inputs in hand (the
// spool and S3 sources, IMAP chunks, `dmarcd ingest` of a folder) so
// records their attempts and their rows of inputs with one INSERT (and
// one SELECT) per batch rather than per input, as the group commit does
// for their reports (group.go): each INSERT makes a part.
//
// Its do answers a batch's requests in order, or fails them all. A batch runs
// under the first caller's context without its cancellation, bounded by
// coalesceTimeout: a caller always learns whether its row was
// written, so that an attempt is in hand exactly when its begin row is.
type coalescer[Q, A any] struct {
	mu   sync.Mutex
	busy bool
	reqs []Q
	outs []chan coalesced[A]
}

// coalesced is one caller's answer.
type coalesced[A any] struct {
	a   A
	err error
}

// run queues q and returns its answer once its batch ran; do runs the
// batches that this call leads.
func (c *coalescer[Q, A]) run(ctx context.Context, q Q, do func(context.Context, []Q) ([]A, error)) (A, error) {
	out := make(chan coalesced[A], 1)
	c.mu.Lock()
	c.reqs = append(c.reqs, q)
	c.outs = append(c.outs, out)
	lead := !c.busy
	c.busy = true
	c.mu.Unlock()
	if lead {
		go c.batches(context.WithoutCancel(ctx), do)
	}
	r := <-out
	return r.a, r.err
}

// batches runs the queued requests, batch after batch, until none is left.
func (c *coalescer[Q, A]) batches(ctx context.Context, do func(context.Context, []Q) ([]A, error)) {
	for {
		c.mu.Lock()
		reqs, outs := c.reqs, c.outs
		c.reqs, c.outs = nil, nil
		if len(reqs) == 0 {
			c.busy = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		qctx, cancel := context.WithTimeout(ctx, coalesceTimeout)
		answers, err := do(qctx, reqs)
		cancel()
		for i, out := range outs {
			var r coalesced[A]
			if r.err = err; err == nil && i < len(answers) {
				r.a = answers[i]
			}
			out <- r
		}
	}
}

// attemptRow is one row of input_attempts.
type attemptRow struct {
	time    time.Time
	key     attemptKey
	attempt string
	event   string
}

// writeAttemptRows inserts rows in one INSERT.
func (s *Store) writeAttemptRows(ctx context.Context, rows []attemptRow) ([]struct{}, error) {
	vals := make([][]any, len(rows))
	for i, r := range rows {
		vals[i] = []any{r.time, r.key.source, r.key.id, s.attempts.instance, r.attempt, r.event}
	}
	return s.insertRows(attemptsInsert)(ctx, vals)
}

// insertRows returns a coalescer's batch function that inserts its rows
// (the values of a row in the order of insert's columns) in one INSERT.
func (s *Store) insertRows(insert string) func(context.Context, [][]any) ([]struct{}, error) {
	return func(ctx context.Context, rows [][]any) ([]struct{}, error) {
		b, err := s.conn.PrepareBatch(ctx, insert)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if err := b.Append(r...); err != nil {
				b.Abort()
				return nil, err
			}
		}
		return nil, b.Send()
	}
}

// unfinishedQuery asks how many attempts at key began and never ended,
// leaving out those of instance and those whose newest row is not older
// than before.
type unfinishedQuery struct {
	key      attemptKey
	instance string
	before   time.Time
}

// unfinished counts an input's earlier attempts that began and never
// ended: all of them, and those of them that were alone (AloneAttempt).
type unfinished struct{ all, alone int }

// countUnfinished answers the queries in one SELECT over their sources
// and inputs; the oldest before of the batch bounds them all (an attempt
// that turned stale meanwhile is counted a moment later).
func (s *Store) countUnfinished(ctx context.Context, qs []unfinishedQuery) ([]unfinished, error) {
	sources, ids := map[string]bool{}, map[string]bool{}
	before := qs[0].before
	for _, q := range qs {
		sources[q.key.source], ids[q.key.id] = true, true
		if q.before.Before(before) {
			before = q.before
		}
	}
	// IN (SELECT arrayJoin(...)) builds a set from the array on every
	// supported version (inputs_done.go).
	rows, err := s.conn.Query(ctx, `SELECT source, input_id, count(), sum(alone) FROM (
			SELECT source, input_id, attempt, max(event = 'begin') AS began, max(event = 'end') AS ended,
				max(event = 'alone') AS alone, max(time) AS newest, any(instance) AS inst
			FROM input_attempts
			WHERE source IN (SELECT arrayJoin(?)) AND input_id IN (SELECT arrayJoin(?))
			GROUP BY source, input_id, attempt)
		WHERE began = 1 AND ended = 0 AND inst != ? AND newest < toDateTime(?)
		GROUP BY source, input_id`,
		slices.Collect(maps.Keys(sources)), slices.Collect(maps.Keys(ids)), qs[0].instance, unixSeconds(before))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n := map[attemptKey]unfinished{}
	for rows.Next() {
		var k attemptKey
		var all, alone uint64
		if err := rows.Scan(&k.source, &k.id, &all, &alone); err != nil {
			return nil, err
		}
		n[k] = unfinished{all: int(all), alone: int(alone)}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]unfinished, len(qs))
	for i, q := range qs {
		out[i] = n[q.key]
	}
	return out, nil
}

// BeginAttempts is BeginAttempt for each of ids (a chunk of mails), called
// at once so that their rows share INSERTs and SELECTs (coalescer):
// unfinished[i] is the count of ids[i]. err is the first error; the other
// inputs' attempts and counts stand.
func (s *Store) BeginAttempts(ctx context.Context, source string, ids []string) (unfinished []int, err error) {
	unfinished = make([]int, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { unfinished[i], errs[i] = s.BeginAttempt(ctx, source, id) })
	}
	wg.Wait()
	return unfinished, firstError(errs)
}

// EndAttempts is EndAttempt for each of ids, called at once so that their
// rows share INSERTs (coalescer). It returns the first error.
func (s *Store) EndAttempts(ctx context.Context, source string, ids []string) error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { errs[i] = s.EndAttempt(ctx, source, id) })
	}
	wg.Wait()
	return firstError(errs)
}

// firstError is the first non-nil error of errs, or nil.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

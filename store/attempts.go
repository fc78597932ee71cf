package store

// Attempts in hand: which inputs a source was processing when its process
// died.
//
// An input that gets the process killed (out of memory, a crash) before the
// source moves it is fetched again after every restart, and kills it again:
// the mail behind it never flows. A source therefore records in the
// input_attempts table (migration 0014) that it is about to process an input
// (BeginAttempt), and that the attempt ended (EndAttempt), whatever its
// outcome. BeginAttempt returns how many earlier attempts at the input began
// and never ended: the source sets the input aside once that count reaches
// its limit. The table is shared by every instance on the same ClickHouse
// (one server or a cluster), so an input that killed one instance is known
// to the others.
//
// Instances that are alive are told from dead ones by heartbeats: while a
// store has attempts in hand it writes an 'alive' row for each every
// attemptBeat, and an attempt of another instance counts as dead only when
// its newest row is older than attemptStale. An input that two instances of
// a shared source process at the same moment is therefore not counted, and
// an attempt of a dead instance counts from attemptStale after its last
// heartbeat. The attempts of this store's own instance (the process that
// asks) never count: it is alive.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

const (
	// attemptBeat is how often a store writes an 'alive' row for each
	// attempt it has in hand.
	attemptBeat = 10 * time.Second
	// attemptStale is the age of its newest row after which an attempt of
	// another instance that never ended counts as dead: three missed
	// heartbeats.
	attemptStale = 3 * attemptBeat
	// maxAttemptID bounds an input ID (and a source name) as stored: a
	// longer one is stored as "sha256:" and its hash, so that the query
	// that counts attempts stays small whatever a sender names its object.
	maxAttemptID = 1024
	// attemptFlushTimeout bounds Close's writing of the 'end' rows of the
	// attempts still in hand.
	attemptFlushTimeout = 5 * time.Second
)

// Events of input_attempts.
const (
	attemptBegin = "begin"
	attemptAlive = "alive"
	attemptEnd   = "end"
	// attemptAlone marks an attempt in hand as processed with nothing else
	// in hand in its process (AloneAttempt): a death then is its own.
	attemptAlone = "alone"
)

// EnvAttemptBeat overrides attemptBeat (and attemptStale, three beats) for a
// process: a Go duration of at least 1s (the table's times are seconds).
// For the crash-loop tests, which would otherwise wait 30 s per death; every
// instance sharing a store must use the same value.
const EnvAttemptBeat = "DMARCD_ATTEMPT_BEAT"

// attemptKey is an input of a source, as stored (attemptID).
type attemptKey struct{ source, id string }

// attempt is one attempt in hand, or one whose 'end' row is still to write.
type attempt struct {
	key attemptKey
	id  string
}

// attempts is a store's state of its attempts in hand.
type attempts struct {
	instance string        // this store's instance: host/pid/random
	beat     time.Duration // attemptBeat (tests shorten it before the first attempt)
	stale    time.Duration // attemptStale

	mu      sync.Mutex
	clock   func() time.Time        // the time of rows and ages (tests move it)
	inHand  map[attemptKey][]string // attempt IDs, oldest first
	pending []attempt               // ended, 'end' row not written yet
	started bool                    // the heartbeat runs
	closed  bool
	stop    chan struct{}
	done    chan struct{}

	rows   coalescer[attemptRow, struct{}]        // begin and end rows (attemptbatch.go)
	counts coalescer[unfinishedQuery, unfinished] // BeginAttempt's and AloneAttempt's counts
}

func newAttempts() *attempts {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	beat, stale := attemptBeat, attemptStale
	if d, err := time.ParseDuration(os.Getenv(EnvAttemptBeat)); err == nil && d >= time.Second {
		beat, stale = d, 3*d
	}
	return &attempts{
		instance: host + "/" + strconv.Itoa(os.Getpid()) + "/" + randomHex(4),
		clock:    time.Now,
		beat:     beat,
		stale:    stale,
		inHand:   map[attemptKey][]string{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// now is the time of the store's attempt rows, in UTC.
func (a *attempts) now() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.clock().UTC()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// attemptID is an input ID (or source name) as stored: itself, or when
// longer than maxAttemptID, "sha256:" and the hex of its SHA-256.
func attemptID(s string) string {
	if len(s) <= maxAttemptID {
		return s
	}
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// Instance is the ID under which this store records its attempts
// (host/pid/random, new at each Open).
func (s *Store) Instance() string { return s.attempts.instance }

// BeginAttempt records that source is about to process input id and returns
// how many earlier attempts of it began and never ended (the process died
// with it in hand). Attempts of this store's instance, and attempts of other
// instances that still beat (alive: the input is in hand there now), do not
// count; an attempt of a dead instance counts attemptStale (30 s) after its
// last heartbeat.
//
// One INSERT and one SELECT, each shared with the calls made at the same
// time (coalescer). When the INSERT fails nothing is in hand and
// the error is returned; when only the SELECT fails the attempt is in hand
// (EndAttempt ends it) and the error is returned with a count of 0.
func (s *Store) BeginAttempt(ctx context.Context, source, id string) (unfinished int, err error) {
	a := s.attempts
	key := attemptKey{source: attemptID(source), id: attemptID(id)}
	aid := randomHex(8)
	now := a.now()
	_, err = a.rows.run(ctx, attemptRow{time: now, key: key, attempt: aid, event: attemptBegin}, s.writeAttemptRows)
	if err != nil {
		return 0, fmt.Errorf("recording the attempt at %s input %s: %w", source, quoteField(id), err)
	}
	a.mu.Lock()
	a.inHand[key] = append(a.inHand[key], aid)
	if !a.started && !a.closed {
		a.started = true
		go s.beatAttempts()
	}
	a.mu.Unlock()

	n, err := a.counts.run(ctx, unfinishedQuery{key: key, instance: a.instance, before: now.Add(-a.stale)}, s.countUnfinished)
	if err != nil {
		return 0, fmt.Errorf("counting the unfinished attempts at %s input %s: %w", source, quoteField(id), err)
	}
	return n.all, nil
}

// AloneAttempt records that the newest attempt in hand at source's input id
// is processed with nothing else in hand in this process (an 'alone' row),
// and returns how many earlier attempts of it that were alone began and
// never ended, counted as BeginAttempt counts. A process that dies with
// several inputs in hand cannot tell which one killed it; one that dies
// with one input alone can: the sources (ingest.RetryPolicy) set an input
// aside by the deaths it had alone. Without an attempt in hand it returns
// an error.
func (s *Store) AloneAttempt(ctx context.Context, source, id string) (unfinishedAlone int, err error) {
	a := s.attempts
	key := attemptKey{source: attemptID(source), id: attemptID(id)}
	a.mu.Lock()
	ids := a.inHand[key]
	a.mu.Unlock()
	if len(ids) == 0 {
		return 0, fmt.Errorf("marking the attempt at %s input %s alone: no attempt in hand", source, quoteField(id))
	}
	now := a.now()
	_, err = a.rows.run(ctx, attemptRow{time: now, key: key, attempt: ids[len(ids)-1], event: attemptAlone}, s.writeAttemptRows)
	if err != nil {
		return 0, fmt.Errorf("marking the attempt at %s input %s alone: %w", source, quoteField(id), err)
	}
	n, err := a.counts.run(ctx, unfinishedQuery{key: key, instance: a.instance, before: now.Add(-a.stale)}, s.countUnfinished)
	if err != nil {
		return 0, fmt.Errorf("counting the unfinished attempts alone at %s input %s: %w", source, quoteField(id), err)
	}
	return n.alone, nil
}

// EndAttempt records that the attempt ended (committed, set aside, or failed
// with an error): the oldest attempt in hand at source's input id. Without
// one (BeginAttempt failed, or was not called) it does nothing. When the
// INSERT fails the error is returned and the 'end' row is written again
// with the next heartbeat, or at Close.
func (s *Store) EndAttempt(ctx context.Context, source, id string) error {
	a := s.attempts
	key := attemptKey{source: attemptID(source), id: attemptID(id)}
	a.mu.Lock()
	ids := a.inHand[key]
	if len(ids) == 0 {
		a.mu.Unlock()
		return nil
	}
	aid := ids[0]
	if len(ids) == 1 {
		delete(a.inHand, key)
	} else {
		a.inHand[key] = ids[1:]
	}
	a.mu.Unlock()

	_, err := a.rows.run(ctx, attemptRow{time: a.now(), key: key, attempt: aid, event: attemptEnd}, s.writeAttemptRows)
	if err != nil {
		a.mu.Lock()
		a.pending = append(a.pending, attempt{key: key, id: aid})
		a.mu.Unlock()
		return fmt.Errorf("recording the end of the attempt at %s input %s: %w", source, quoteField(id), err)
	}
	return nil
}

// beatAttempts writes the heartbeats of the attempts in hand every beat
// until closeAttempts.
func (s *Store) beatAttempts() {
	a := s.attempts
	defer close(a.done)
	t := time.NewTicker(a.beat)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), a.beat)
			if err := s.writeBeats(ctx, false); err != nil {
				s.log.Warn("writing the heartbeats of the inputs in hand", "err", err)
			}
			cancel()
		}
	}
}

// writeBeats writes in one INSERT the 'end' rows still pending and, for
// each attempt in hand, an 'alive' row, or with end an 'end' row (Close: the
// process did not die with them).
func (s *Store) writeBeats(ctx context.Context, end bool) error {
	a := s.attempts
	now := a.now()
	a.mu.Lock()
	pending := a.pending
	a.pending = nil
	var alive []attempt
	for key, ids := range a.inHand {
		for _, id := range ids {
			alive = append(alive, attempt{key: key, id: id})
		}
	}
	if end {
		pending = append(pending, alive...)
		alive = nil
		clear(a.inHand)
	}
	a.mu.Unlock()
	if len(pending)+len(alive) == 0 {
		return nil
	}
	err := s.insertAttemptRows(ctx, now, pending, alive)
	if err != nil {
		a.mu.Lock()
		a.pending = append(a.pending, pending...)
		a.mu.Unlock()
	}
	return err
}

// insertAttemptRows writes 'end' rows for ended and 'alive' rows for alive,
// in one INSERT.
func (s *Store) insertAttemptRows(ctx context.Context, now time.Time, ended, alive []attempt) error {
	rows := make([]attemptRow, 0, len(ended)+len(alive))
	for _, r := range ended {
		rows = append(rows, attemptRow{time: now, key: r.key, attempt: r.id, event: attemptEnd})
	}
	for _, r := range alive {
		rows = append(rows, attemptRow{time: now, key: r.key, attempt: r.id, event: attemptAlive})
	}
	_, err := s.writeAttemptRows(ctx, rows)
	return err
}

// closeAttempts stops the heartbeats and ends the attempts still in hand:
// a store closed with inputs in hand did not die with them.
func (s *Store) closeAttempts() {
	a := s.attempts
	a.mu.Lock()
	started := a.started
	already := a.closed
	a.closed = true
	a.mu.Unlock()
	if already {
		return
	}
	close(a.stop)
	if started {
		<-a.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), attemptFlushTimeout)
	defer cancel()
	if err := s.writeBeats(ctx, true); err != nil {
		s.log.Warn("recording the end of the attempts in hand at close", "err", err)
	}
}

// attemptsInsert is the INSERT of rows of input_attempts.
const attemptsInsert = "INSERT INTO input_attempts (time, source, input_id, instance, attempt, event)"

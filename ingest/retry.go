package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dmarcd/dmarcd/parse"
)

// Defaults of RetryPolicy.
const (
	DefaultRetryMin      = time.Second      // first delay before an input that ended `error` is tried again
	DefaultRetryMax      = 5 * time.Minute  // longest delay between two tries of one input
	DefaultRetryAttempts = 5                // errors of one input, while the store works, before it is set aside
	DefaultRetrySpan     = 10 * time.Minute // and the time they must span at least
	DefaultRetryEntries  = 10000            // inputs whose errors are remembered at once
	DefaultRetryDeaths   = 2                // deaths of the process with an input alone in hand before it is set aside unread
)

// storeProbeTimeout bounds the store probe made after an input's error.
const storeProbeTimeout = 5 * time.Second

// RetryPolicy says how a source keeps one bad input from holding back the
// others. Zero fields take the defaults above.
//
// An input whose outcome is `error` is tried again after its own delay:
// Min, doubling at each error up to Max, drawn from the upper half (jitter);
// other inputs are processed meanwhile. When the store is down (it does not
// answer a probe), an error says nothing about the input: it is not
// counted, and a run of errors ends the pass as before. When the store
// answers, the error is charged to the input; an input charged Attempts
// times over at least Span, while the store accepted other inputs of the
// same source since its first error, is set aside as invalid with reason
// code retries_exhausted. A store that accepts nothing at all is down,
// whatever its probe says: no input is set aside then.
//
// Deaths: with an AttemptLog, an input whose earlier attempts did not end
// (the process died with it in hand) is a suspect: it is processed with
// nothing else in hand in the process (every source sharing the attempt
// log waits), and once the process died Deaths times with it in hand
// alone, it is set aside unread as retries_exhausted. A death with several
// inputs in hand is charged to none of them: it only makes each a suspect.
type RetryPolicy struct {
	Min, Max time.Duration
	Attempts int
	Span     time.Duration // a negative Span: no minimum

	// Entries bounds the memory of inputs' errors: when it is full, the
	// entry whose last error is oldest is forgotten (that input starts
	// again from its first delay).
	Entries int
	Deaths  int
}

func (r RetryPolicy) withDefaults() RetryPolicy {
	if r.Min <= 0 {
		r.Min = DefaultRetryMin
	}
	if r.Max <= 0 {
		r.Max = DefaultRetryMax
	}
	r.Max = max(r.Max, r.Min)
	if r.Attempts <= 0 {
		r.Attempts = DefaultRetryAttempts
	}
	if r.Span < 0 {
		r.Span = 0
	} else if r.Span == 0 {
		r.Span = DefaultRetrySpan
	}
	if r.Entries <= 0 {
		r.Entries = DefaultRetryEntries
	}
	if r.Deaths <= 0 {
		r.Deaths = DefaultRetryDeaths
	}
	return r
}

// AttemptLog records, where every instance and every later start can see
// it, which inputs a source has in hand: an input that was in hand when
// the process died (killed out of memory, crashed) is found unfinished at
// its next attempt. *store.Store implements it in ClickHouse.
type AttemptLog interface {
	// BeginAttempt records that source is about to process input id and
	// returns how many earlier attempts of it began and never ended.
	BeginAttempt(ctx context.Context, source, id string) (unfinished int, err error)
	// EndAttempt records that the attempt ended (committed, set aside, or
	// failed with an error: the process lived).
	EndAttempt(ctx context.Context, source, id string) error
	// AloneAttempt records that the attempt in hand at input id is
	// processed with nothing else in hand in the process, and returns how
	// many earlier attempts of it that were alone began and never ended.
	AloneAttempt(ctx context.Context, source, id string) (unfinishedAlone int, err error)
}

// AttemptBatchLog is an AttemptLog that also records the attempts of
// several inputs at once (a chunk of mails): *store.Store implements it,
// its rows of calls made together sharing INSERTs and SELECTs.
type AttemptBatchLog interface {
	AttemptLog
	// BeginAttempts is BeginAttempt for each of ids: unfinished[i] is
	// the count of ids[i].
	BeginAttempts(ctx context.Context, source string, ids []string) (unfinished []int, err error)
	// EndAttempts is EndAttempt for each of ids.
	EndAttempts(ctx context.Context, source string, ids []string) error
}

// AttemptLogOf returns the pipeline's store as an AttemptLog when it is
// one, else nil (no crash-loop protection).
func AttemptLogOf(p *Pipeline) AttemptLog {
	if p == nil {
		return nil
	}
	if a, ok := p.store.(AttemptLog); ok {
		return a
	}
	return nil
}

// retryEntry is what is remembered of one input's errors.
type retryEntry struct {
	failures    int
	first, last time.Time // its first and last error
	delay       time.Duration
	due         time.Time // not tried again before
}

// retryBook remembers the inputs that ended `error` while the store
// answered, each with its own backoff; at most pol.Entries of them.
type retryBook struct {
	pol RetryPolicy
	mu  sync.Mutex
	m   map[string]*retryEntry
}

func newRetryBook(pol RetryPolicy) *retryBook {
	return &retryBook{pol: pol, m: map[string]*retryEntry{}}
}

// due tells whether input id may be tried at now.
func (b *retryBook) due(id string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.m[id]
	return e == nil || !now.Before(e.due)
}

// fail charges an error to input id at now and returns its entry after it.
func (b *retryBook) fail(id string, now time.Time) retryEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.m[id]
	if e == nil {
		if len(b.m) >= b.pol.Entries {
			b.evictOldest()
		}
		e = &retryEntry{first: now}
		b.m[id] = e
	}
	e.failures++
	e.last = now
	if e.delay == 0 {
		e.delay = b.pol.Min
	} else {
		e.delay = min(2*e.delay, b.pol.Max)
	}
	e.due = now.Add(e.delay/2 + rand.N(e.delay/2+1))
	return *e
}

func (b *retryBook) evictOldest() {
	var oldest string
	var at time.Time
	for id, e := range b.m {
		if oldest == "" || e.last.Before(at) {
			oldest, at = id, e.last
		}
	}
	delete(b.m, oldest)
}

// forget drops input id: it succeeded, was set aside or is gone.
func (b *retryBook) forget(id string) {
	b.mu.Lock()
	delete(b.m, id)
	b.mu.Unlock()
}

// nextDue returns how long until the first remembered input is due again,
// at least half of Min (one due already is retried soon, not at once); ok
// is false when none is remembered.
func (b *retryBook) nextDue(now time.Time) (d time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.m {
		w := max(b.pol.Min/2, e.due.Sub(now))
		if !ok || w < d {
			d, ok = w, true
		}
	}
	return d, ok
}

// retain forgets the inputs not in present: gone from the source (moved by
// another instance, deleted, rewritten).
func (b *retryBook) retain(present map[string]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.m {
		if !present[id] {
			delete(b.m, id)
		}
	}
}

// len is the number of inputs remembered.
func (b *retryBook) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// inputGuard is what a source shares to keep a bad input from holding back
// the others: the per-input backoff, the store probe that tells a poison
// input from a store that is down, and the attempt log against crash loops.
type inputGuard struct {
	source   string // the source's name, in the attempt log
	p        *Pipeline
	log      *slog.Logger
	pol      RetryPolicy
	book     *retryBook
	attempts AttemptLog                  // nil: no crash-loop protection
	gate     *aloneGate                  // shared by the sources of attempts
	ready    func(context.Context) error // the store probe; nil: the store's Ping, if it has one

	mu        sync.Mutex
	lastWrite time.Time // when an input of this source last ended stored or duplicate
}

// storePinger is a store that can be asked whether it answers
// (*store.Store).
type storePinger interface {
	Ping(ctx context.Context) error
}

func newInputGuard(source string, p *Pipeline, log *slog.Logger, pol RetryPolicy, attempts AttemptLog,
	ready func(context.Context) error) *inputGuard {
	pol = pol.withDefaults()
	g := &inputGuard{source: source, p: p, log: log, pol: pol, book: newRetryBook(pol), attempts: attempts, ready: ready}
	if attempts != nil {
		g.gate = gateOf(attempts)
	}
	if g.ready == nil && p != nil {
		if pg, ok := p.store.(storePinger); ok {
			g.ready = pg.Ping
		}
	}
	return g
}

// due tells whether input id may be tried now (it is not waiting out its
// backoff).
func (g *inputGuard) due(id string) bool { return g.book.due(id, time.Now()) }

// nextDue returns how long until an input waiting out its backoff is due,
// and whether there is one.
func (g *inputGuard) nextDue() (time.Duration, bool) { return g.book.nextDue(time.Now()) }

// retain forgets the errors of inputs not in present (a full listing of
// the source), so that a gone input is not waited for.
func (g *inputGuard) retain(present map[string]bool) { g.book.retain(present) }

// storeUp tells whether the store answers its probe. Without a probe it is
// taken as down: errors then end passes, as they always did.
func (g *inputGuard) storeUp(ctx context.Context) bool {
	if g.ready == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
	defer cancel()
	return g.ready(ctx) == nil
}

// verdict is what became of an input's error.
type verdict int

const (
	final        verdict = iota // not an error: stored, duplicate or invalid
	storeDown                   // the store is down: the error says nothing of the input
	inputRetried                // charged to the input; tried again after its delay
	inputAside                  // charged too often: the outcome is now invalid, retries_exhausted
)

// settle records a final outcome (stored, duplicate, invalid) of input id,
// or judges an error: it returns the outcome to act on and, for an error,
// the verdict. An input set aside is logged in the inputs table and told
// to the Observer with its new outcome.
func (g *inputGuard) settle(ctx context.Context, id string, out Outcome) (Outcome, verdict) {
	now := time.Now()
	switch out.Status {
	case Stored, Duplicate:
		g.mu.Lock()
		g.lastWrite = now
		g.mu.Unlock()
		g.book.forget(id)
		return out, final
	case Error:
	default:
		g.book.forget(id)
		return out, final
	}
	if !g.storeUp(ctx) {
		return out, storeDown
	}
	e := g.book.fail(id, now)
	g.mu.Lock()
	proven := g.lastWrite.After(e.first)
	g.mu.Unlock()
	if e.failures < g.pol.Attempts || now.Sub(e.first) < g.pol.Span || !proven {
		g.log.Warn("input failed while the store answers; retrying it later, the others go on", "input", out.Input,
			"failures", e.failures, "in", e.due.Sub(now).Round(time.Millisecond), "reason_code", out.ReasonCode,
			"reason", out.Reason)
		return out, inputRetried
	}
	g.book.forget(id)
	aside := out
	aside.Status, aside.ReasonCode = Invalid, string(parse.RetriesExhausted)
	aside.Reason = fmt.Sprintf("failed %d times in %v while the store accepted other inputs; last: %s",
		e.failures, now.Sub(e.first).Round(time.Second), out.Reason)
	g.record(ctx, aside)
	return aside, inputAside
}

// record logs an outcome the source decided on (not the pipeline) in the
// inputs table and tells the Observer.
func (g *inputGuard) record(ctx context.Context, out Outcome) {
	if g.p == nil {
		return
	}
	g.p.logInput(ctx, out)
	if g.p.opt.Observer != nil {
		g.p.opt.Observer.Input(g.p.opt.Source, out, 0)
	}
}

// begin records that input id is in hand and returns how many earlier
// attempts of it never ended (the process died). Without an attempt log,
// or when the log fails (the input is then processed: its store is likely
// failing too, and the outcome will say so), it returns 0.
func (g *inputGuard) begin(ctx context.Context, id string) int {
	if g.attempts == nil {
		return 0
	}
	n, err := g.attempts.BeginAttempt(ctx, g.source, id)
	if err != nil {
		g.log.Warn("could not record the attempt of an input; processing it anyway", "input", id, "err", err)
		return 0
	}
	return n
}

// end records that the attempt of input id ended, even when ctx is done:
// the process lives.
func (g *inputGuard) end(ctx context.Context, id string) {
	if g.attempts == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeProbeTimeout)
	defer cancel()
	if err := g.attempts.EndAttempt(ctx, g.source, id); err != nil {
		g.log.Warn("could not record the end of an input's attempt", "input", id, "err", err)
	}
}

// batches tells whether the attempt log records several inputs at once
// (AttemptBatchLog).
func (g *inputGuard) batches() bool {
	_, ok := g.attempts.(AttemptBatchLog)
	return ok
}

// beginAll is begin for each of ids, at once when the attempt log can
// (AttemptBatchLog): unfinished[i] is the count of ids[i].
func (g *inputGuard) beginAll(ctx context.Context, ids []string) []int {
	b, ok := g.attempts.(AttemptBatchLog)
	if !ok || len(ids) < 2 {
		unfinished := make([]int, len(ids))
		for i, id := range ids {
			unfinished[i] = g.begin(ctx, id)
		}
		return unfinished
	}
	unfinished, err := b.BeginAttempts(ctx, g.source, ids)
	if err != nil {
		g.log.Warn("could not record the attempts of inputs; processing them anyway", "inputs", len(ids), "first", ids[0], "err", err)
		return make([]int, len(ids))
	}
	return unfinished
}

// endAll is end for each of ids, at once when the attempt log can.
func (g *inputGuard) endAll(ctx context.Context, ids []string) {
	b, ok := g.attempts.(AttemptBatchLog)
	if !ok || len(ids) < 2 {
		for _, id := range ids {
			g.end(ctx, id)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeProbeTimeout)
	defer cancel()
	if err := b.EndAttempts(ctx, g.source, ids); err != nil {
		g.log.Warn("could not record the end of inputs' attempts", "inputs", len(ids), "first", ids[0], "err", err)
	}
}

// deadly tells whether an input whose earlier attempts alone did not end
// unfinishedAlone times is to be set aside unread.
func (g *inputGuard) deadly(unfinishedAlone int) bool { return unfinishedAlone >= g.pol.Deaths }

// died returns the outcome of an input set aside unread because the
// process died with it alone in hand unfinishedAlone times, and records it.
func (g *inputGuard) died(ctx context.Context, name string, size int64, unfinishedAlone int) Outcome {
	out := Outcome{Input: name, Kind: "none", Status: Invalid, Size: size, ReportIDs: []string{}, ReportKeys: []string{},
		ReasonCode: string(parse.RetriesExhausted),
		Reason:     fmt.Sprintf("was alone in hand when the process died %d times; set aside unread", unfinishedAlone)}
	g.log.Error("input set aside unread: the process died with it alone in hand", "input", name, "deaths", unfinishedAlone)
	g.record(ctx, out)
	return out
}

// held is an input a source holds in hand (take): its deaths alone to
// judge (deadly), and whether it holds the process alone.
type held struct {
	unfinishedAlone int
	alone           bool
}

// take records that input id is in hand, once no suspect waits to be
// alone. An input without unfinished earlier attempts is in hand with the
// others, or alone (marked so) when nothing else is in hand then; a suspect (some did not end) waits until nothing else is in
// hand, is marked alone (AloneAttempt) and holds the process alone until
// release. Its unfinishedAlone counts only the deaths it had alone.
func (g *inputGuard) take(ctx context.Context, id string) held {
	if g.attempts == nil {
		return held{}
	}
	g.gate.enter()
	if g.begin(ctx, id) == 0 {
		if g.gate.tryAloneFrom() {
			return g.markAlone(ctx, id)
		}
		return held{}
	}
	return g.takeAlone(ctx, id)
}

// markAlone marks the attempt of input id, which holds the gate alone, as
// alone and returns its deaths alone. When the mark fails the input is
// processed alone with none counted.
func (g *inputGuard) markAlone(ctx context.Context, id string) held {
	m, err := g.attempts.AloneAttempt(ctx, g.source, id)
	if err != nil {
		g.log.Warn("could not mark the attempt of an input as alone; processing it alone anyway", "input", id, "err", err)
		m = 0
	}
	return held{unfinishedAlone: m, alone: true}
}

// takeAlone turns the attempt of suspect id, in hand with a unit of the
// gate, into one alone: it gives the unit back, waits until nothing else
// is in hand, marks the attempt alone and returns its deaths alone. When
// the mark fails the input is processed alone with none counted.
func (g *inputGuard) takeAlone(ctx context.Context, id string) held {
	g.gate.leave()
	g.gate.beAlone()
	h := g.markAlone(ctx, id)
	g.log.Info("input in hand when the process died; processing it alone", "input", id, "deaths_alone", h.unfinishedAlone)
	return h
}

// release records that the attempt of input id ended (end) and lets the
// others in: h is what take returned.
func (g *inputGuard) release(ctx context.Context, id string, h held) {
	if g.attempts == nil {
		return
	}
	g.end(ctx, id)
	g.gate.done(h.alone)
}

// aloneGate lets the inputs of every source that shares an attempt log (the
// process's store) be in hand together, or one suspect alone: a suspect
// that waits holds back the inputs not in hand yet until those in hand
// ended, then is in hand alone. Counts are of units: an input, or an IMAP
// chunk.
type aloneGate struct {
	mu      sync.Mutex
	cond    sync.Cond
	held    int  // units in hand with others
	waiting int  // suspects waiting to be alone
	alone   bool // a suspect is in hand alone
}

// gates holds the aloneGate of each attempt log (a comparable value: a
// pointer).
var gates sync.Map

// gateOf returns the gate shared by the sources of attempts.
func gateOf(attempts AttemptLog) *aloneGate {
	g := &aloneGate{}
	g.cond.L = &g.mu
	v, _ := gates.LoadOrStore(attempts, g)
	return v.(*aloneGate)
}

// open tells whether units may come in hand now: no suspect waits or is
// alone. The caller holds mu.
func (g *aloneGate) open() bool { return g.waiting == 0 && !g.alone }

// enter waits until a unit may be in hand and holds it.
func (g *aloneGate) enter() {
	g.mu.Lock()
	for !g.open() {
		g.cond.Wait()
	}
	g.held++
	g.mu.Unlock()
}

// tryEnter holds a unit if it may be in hand now, and tells whether it
// did: a caller that holds units itself (an IMAP pass with chunks in hand)
// drains them before it waits (enter), or a suspect would wait for it.
func (g *aloneGate) tryEnter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.open() {
		return false
	}
	g.held++
	return true
}

// leave gives back a unit.
func (g *aloneGate) leave() {
	g.mu.Lock()
	g.held--
	g.cond.Broadcast()
	g.mu.Unlock()
}

// tryAloneFrom turns the unit of a holder into the gate alone when
// nothing else is in hand nor waits, and tells whether it did: an input
// that comes alone is in hand alone (its death is its own) and the others
// wait for it.
func (g *aloneGate) tryAloneFrom() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held != 1 || !g.open() {
		return false
	}
	g.held--
	g.alone = true
	return true
}

// beAlone waits until nothing else is in hand and holds the gate alone.
func (g *aloneGate) beAlone() {
	g.mu.Lock()
	g.waiting++
	for g.held > 0 || g.alone {
		g.cond.Wait()
	}
	g.waiting--
	g.alone = true
	g.mu.Unlock()
}

// done gives back what a holder holds: the gate alone, or a unit.
func (g *aloneGate) done(alone bool) {
	if !alone {
		g.leave()
		return
	}
	g.mu.Lock()
	g.alone = false
	g.cond.Broadcast()
	g.mu.Unlock()
}

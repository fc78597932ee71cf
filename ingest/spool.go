package ingest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// Subfolders of a spool folder where files go once their outcome is final.
const (
	SpoolProcessedDir = "processed" // every report in the file committed (stored or duplicate)
	SpoolInvalidDir   = "invalid"   // nothing usable in it; NAME.reason beside it says why
)

// Defaults of SpoolConfig.
const (
	DefaultSpoolPollInterval = 10 * time.Second
	DefaultSpoolSettle       = 2 * time.Second
	DefaultSpoolConcurrency  = 32
)

// Timing of SpoolSource.Run after inputs that met an error while the store
// was down: the folder is retried with exponential backoff and jitter.
const (
	spoolRetryMin = time.Second
	spoolRetryMax = time.Minute
)

// ErrSpoolFilesLeft is returned (wrapped) by SpoolSource.Once when some
// files could not be processed now (status error, e.g. ClickHouse
// unreachable): they stay in the spool folder to be retried.
var ErrSpoolFilesLeft = errors.New("spool: files left in the folder after errors")

// Why a listed file is not read (see openSpoolFile).
var (
	errSpoolNotRegular = errors.New("not a regular file")
	errSpoolChanged    = errors.New("changed since listed")
)

// spoolBeforeOpen, when set (tests), is called with a file's path between
// the listing and the open.
var spoolBeforeOpen func(path string)

// SpoolConfig configures a SpoolSource. Zero values take the defaults above.
type SpoolConfig struct {
	Name         string        // source name (label in logs)
	Path         string        // the spool folder; created when missing
	PollInterval time.Duration // rescan this often even without a file system event; default 10s
	// Settle: a file is read only once it has not changed for this long
	// (its modification time is Settle old, or its size and modification
	// time stayed the same for Settle); default 2s.
	Settle time.Duration
	// Grace is how long the files in hand may still take to commit after
	// Run's ctx is done; default DefaultGrace. Then their processing is
	// cancelled and the files stay for the next start.
	Grace time.Duration
	// Concurrency is how many files are in hand at once (default
	// DefaultSpoolConcurrency): processed concurrently, so that the store
	// commits their small reports together (store's group commit), each
	// moved once its own reports committed. At most 32 MiB of files are in
	// hand; a larger one alone. A file in hand when the process died is
	// then processed alone (RetryPolicy): a death among others is charged
	// to none.
	Concurrency int
	// StoreReady, when set, tells whether the store answers; else the
	// pipeline's store is pinged, if it can be. After a file's error it
	// tells a store that is down from a file that fails (RetryPolicy).
	StoreReady func(context.Context) error
	// Retry says how files that end `error` are retried and when they are
	// set aside (retries_exhausted); zero values take the defaults.
	Retry RetryPolicy
	// Attempts, when set, records each file in hand, so that one that was
	// in hand when the process died Retry.Deaths times is set aside unread.
	Attempts AttemptLog
}

// SpoolSource ingests the files dropped into a folder: report mails (.eml),
// bare reports (XML, gzip, zip, JSON), recognised by their bytes whatever
// their names.
//
// A file must be complete when it is read. The safe convention is to write
// it elsewhere on the same file system (or under a name starting with ".",
// which the source ignores) and rename it into the folder: a rename is
// atomic. A file written in place is read only after it has not changed for
// Settle, so a writer that pauses longer than that mid-file must rename.
// Subfolders, names starting with "." and anything but regular files are
// ignored.
//
// A file whose reports all committed (stored or duplicate) is moved to
// processed/, one with nothing usable to invalid/ with NAME.reason beside it
// (status, reason code, reason). A name already taken there gets a suffix
// (.1, .2, ...): nothing is overwritten, nothing is deleted. A file that
// met an error (the store is down) stays where it is and is retried with
// backoff. A file that keeps failing while the store works is tried again
// with its own backoff while the others go on, then set aside to invalid/
// as retries_exhausted (see RetryPolicy). A crash between the commit and
// the move leaves the file in the folder; the next pass finds its reports
// already stored (duplicate) and moves it.
//
// A file is opened without following a symbolic link and without blocking
// on a FIFO, and read only if the opened descriptor is a regular file, the
// one listed: anything swapped in after the listing is left where it is,
// unread, with a warning.
//
// One SpoolSource owns its folder: do not run two on the same path, nor
// Run and Once at the same time.
type SpoolSource struct {
	cfg SpoolConfig
	p   *Pipeline
	log *slog.Logger

	mu       sync.Mutex
	readyErr error

	seen  map[string]seenFile // files not yet settled
	guard *inputGuard

	moving sync.Mutex // one move at a time: uniqueName, then the rename
}

// seenFile is what a pass saw of a file that was not settled yet.
type seenFile struct {
	size  int64
	mtime time.Time
	since time.Time // when this size and mtime were first seen
}

// NewSpoolSource returns a source reading the files dropped into cfg.Path.
func NewSpoolSource(cfg SpoolConfig, p *Pipeline, log *slog.Logger) *SpoolSource {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultSpoolPollInterval
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSpoolSettle
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Name == "" {
		cfg.Name = "spool:" + cfg.Path
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultSpoolConcurrency
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("source", cfg.Name)
	return &SpoolSource{cfg: cfg, p: p, log: log,
		readyErr: errors.New("not started"), seen: map[string]seenFile{},
		guard: newInputGuard(cfg.Name, p, log, cfg.Retry, cfg.Attempts, cfg.StoreReady)}
}

// Name is the source's name.
func (s *SpoolSource) Name() string { return s.cfg.Name }

// Ready returns nil while Run can read the folder, else why not.
func (s *SpoolSource) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyErr
}

func (s *SpoolSource) setReady(err error) {
	s.mu.Lock()
	s.readyErr = err
	s.mu.Unlock()
}

// Run processes the files in the folder, then every file dropped into it
// (told by fsnotify, and by a rescan every PollInterval in case events are
// lost or unsupported, e.g. on NFS), until ctx is done; it then lets the
// files in hand commit within Grace and returns nil. It returns an error
// only when the folder cannot be set up.
func (s *SpoolSource) Run(ctx context.Context) error {
	defer s.setReady(errors.New("stopped"))
	if err := s.prepare(); err != nil {
		s.setReady(err)
		return err
	}
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		s.log.Warn("spool: no file system events; polling only", "every", s.cfg.PollInterval, "err", err)
	} else {
		defer w.Close()
		if err := w.Add(s.cfg.Path); err != nil {
			s.log.Warn("spool: no file system events; polling only", "every", s.cfg.PollInterval, "err", err)
		} else {
			events, watchErrs = w.Events, w.Errors
		}
	}
	s.log.Info("spool watching", "path", s.cfg.Path, "events", events != nil, "poll_interval", s.cfg.PollInterval, "settle", s.cfg.Settle)
	retry := backoff{min: spoolRetryMin, max: spoolRetryMax}
	for {
		res := s.pass(ctx, nil)
		if ctx.Err() != nil {
			return nil
		}
		wait := s.cfg.PollInterval
		if res.pending > 0 {
			wait = min(wait, res.nextSettle)
		}
		if res.storeDown {
			// Hold off whatever events say: the store is down.
			d := retry.next()
			s.log.Warn("spool files left after errors; retrying later", "errors", res.errors,
				"untried", res.untried, "first", res.firstError, "in", d.Round(time.Millisecond))
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		retry.reset()
		if d, ok := s.guard.nextDue(); ok {
			wait = min(wait, d) // a file that failed is due again
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		case _, ok := <-events:
			if !ok {
				events = nil
			}
			drain(events)
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
			} else {
				s.log.Warn("spool: file system events", "err", err) // e.g. queue overflow: the pass rescans
			}
		}
		timer.Stop()
	}
}

// drain takes the events already queued: one pass handles them all.
func drain(events <-chan fsnotify.Event) {
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// Once processes every file in the folder now, waiting for those still
// being written to settle, and returns. fn, if not nil, is called with
// each file's Outcome (Input is the file's path). When some files met an
// error and stay in the folder, Once returns ErrSpoolFilesLeft (wrapped).
func (s *SpoolSource) Once(ctx context.Context, fn func(Outcome)) error {
	if err := s.prepare(); err != nil {
		return err
	}
	for {
		res := s.pass(ctx, fn)
		if err := ctx.Err(); err != nil {
			return err
		}
		if res.errors+res.untried > 0 {
			return fmt.Errorf("spool source %s: %w: %d met an error and %d were not tried after it (first: %s)",
				s.cfg.Name, ErrSpoolFilesLeft, res.errors, res.untried, res.firstError)
		}
		if res.readErr != nil {
			return fmt.Errorf("spool source %s: %w", s.cfg.Name, res.readErr)
		}
		if res.pending == 0 {
			return nil
		}
		if !sleep(ctx, res.nextSettle) {
			return ctx.Err()
		}
	}
}

// prepare creates the folder and its processed/ and invalid/ subfolders.
func (s *SpoolSource) prepare() error {
	if s.cfg.Path == "" {
		return errors.New("spool: no path configured")
	}
	for _, d := range []string{s.cfg.Path, filepath.Join(s.cfg.Path, SpoolProcessedDir), filepath.Join(s.cfg.Path, SpoolInvalidDir)} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	return nil
}

// spoolPass is what one pass over the folder left behind.
type spoolPass struct {
	pending    int           // files not settled yet
	nextSettle time.Duration // when the first of them will be
	untried    int           // files not read: the pass ended after errors, or they wait out their backoff
	readErr    error         // the folder could not be read
	passTally                // what the outcomes of its files said
}

// pass processes the settled files of the folder once, in name order,
// but for those waiting out their backoff: up to Concurrency at once (see
// InHand), each moved as soon as its own outcome is final, their outcomes
// told to fn in name order. After maxErrorsPass errors in a row while the
// store is down it starts no more files.
func (s *SpoolSource) pass(ctx context.Context, fn func(Outcome)) (res spoolPass) {
	entries, err := os.ReadDir(s.cfg.Path)
	if err != nil {
		s.setReady(fmt.Errorf("reading spool folder: %w", err))
		s.log.Error("spool: cannot read the folder", "err", err)
		res.readErr = err
		return res
	}
	s.setReady(nil)
	present, ids := map[string]bool{}, map[string]bool{}
	h := newInHand[spoolResult](s.cfg.Concurrency)
	stopped := false
	take := func(r spoolResult) {
		if !r.found {
			return
		}
		if fn != nil {
			fn(r.out)
		}
		if took(&res.passTally, h, r.out, r.v) {
			stopped = true
		}
	}
	for i, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		fi, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		for !stopped && h.Full(fi.Size()) {
			take(h.Next())
		}
		if stopped {
			for _, rest := range entries[i:] {
				if !strings.HasPrefix(rest.Name(), ".") && rest.Type().IsRegular() {
					res.untried++
				}
			}
			break
		}
		present[name] = true
		ids[spoolID(name, fi)] = true
		if ok, wait := s.settled(name, fi, time.Now()); !ok {
			if res.pending == 0 || wait < res.nextSettle {
				res.nextSettle = wait
			}
			res.pending++
			continue
		}
		if !s.guard.due(spoolID(name, fi)) {
			res.untried++
			continue
		}
		h.Start(fi.Size(), func() spoolResult {
			out, found, v := s.processFile(ctx, name, fi)
			return spoolResult{out: out, found: found, v: v}
		})
	}
	for h.Len() > 0 {
		take(h.Next())
	}
	if ctx.Err() != nil {
		return res
	}
	for name := range s.seen {
		if !present[name] {
			delete(s.seen, name)
		}
	}
	if !stopped {
		s.guard.retain(ids) // the whole folder was listed: forget the files gone
	}
	return res
}

// spoolResult is what became of one file of a pass (see processFile).
type spoolResult struct {
	out   Outcome
	found bool
	v     verdict
}

// settled reports whether the file has stopped changing, and if not, how
// long until it may have.
func (s *SpoolSource) settled(name string, fi fs.FileInfo, now time.Time) (bool, time.Duration) {
	settle := s.cfg.Settle
	age := now.Sub(fi.ModTime())
	if age >= settle {
		delete(s.seen, name)
		return true, 0
	}
	sf, ok := s.seen[name]
	if !ok || sf.size != fi.Size() || !sf.mtime.Equal(fi.ModTime()) {
		s.seen[name] = seenFile{size: fi.Size(), mtime: fi.ModTime(), since: now}
		return false, min(settle-age, settle)
	}
	// A modification time in the future (another clock) settles by our own.
	stable := now.Sub(sf.since)
	if stable >= settle {
		delete(s.seen, name)
		return true, 0
	}
	return false, min(settle-age, settle-stable)
}

// spoolID is a file's identity for its retries and attempts: its name,
// size and modification time (a file written anew is a new input).
func spoolID(name string, fi fs.FileInfo) string {
	return fmt.Sprintf("%s;size=%d;mtime=%d", name, fi.Size(), fi.ModTime().UnixNano())
}

// processFile hands one file, as listed, to the pipeline and moves it by
// its outcome. found is false if the file was not read: it vanished,
// changed, or is not a regular file any more. v says what an error was.
func (s *SpoolSource) processFile(ctx context.Context, name string, listed fs.FileInfo) (out Outcome, found bool, v verdict) {
	path := filepath.Join(s.cfg.Path, name)
	id := spoolID(name, listed)
	if spoolBeforeOpen != nil {
		spoolBeforeOpen(path)
	}
	f, err := openSpoolFile(path, listed)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return out, false, final
	case errors.Is(err, errSpoolChanged):
		s.log.Info("spool file changed since listed; left for the next pass", "file", valid.Printable(name), "err", err)
		return out, false, final
	case errors.Is(err, errSpoolNotRegular):
		s.log.Warn("spool entry is not a regular file (swapped after listing?); left unread", "file", valid.Printable(name), "err", err)
		return out, false, final
	case err != nil:
		out = Outcome{Input: path, Kind: "none", Status: Error, ReportIDs: []string{}, ReportKeys: []string{},
			ReasonCode: string(parse.InputUnreadable), Reason: err.Error()}
	default:
		h := s.guard.take(ctx, id)
		defer s.guard.release(ctx, id, h) // after the move
		out = s.read(ctx, path, f, listed, h.unfinishedAlone)
	}
	out, v = s.guard.settle(ctx, id, out)
	var dest string
	switch out.Status {
	case Stored, Duplicate:
		dest, err = s.moveTo(name, SpoolProcessedDir, "")
	case Invalid:
		reason := fmt.Sprintf("status: %s\nreason_code: %s\nreason: %s\nsha256: %s\nsize: %d\ntime: %s\n",
			out.Status, out.ReasonCode, out.Reason, out.SHA256, out.Size, time.Now().UTC().Format(time.RFC3339))
		dest, err = s.moveTo(name, SpoolInvalidDir, reason)
	default:
		s.log.Warn("spool file left in the folder", "file", name, "reason_code", out.ReasonCode, "reason", out.Reason)
		return out, true, v
	}
	if err != nil {
		// The outcome is committed; the next pass finds it duplicate (or
		// invalid again) and tries the move again.
		s.log.Error("spool: moving the file", "file", name, "err", err)
		return out, true, v
	}
	s.log.Info("spool file", "file", name, "status", out.Status, "reports", out.Reports, "records", out.Records,
		"reason_code", out.ReasonCode, "reason", out.Reason, "moved_to", dest)
	return out, true, v
}

// read hands the opened file to the pipeline and closes it; a file that
// was alone in hand at too many deaths of the process (unfinishedAlone) is
// set aside unread.
func (s *SpoolSource) read(ctx context.Context, path string, f *os.File, listed fs.FileInfo, unfinishedAlone int) Outcome {
	defer f.Close()
	if s.guard.deadly(unfinishedAlone) {
		return s.guard.died(ctx, path, listed.Size(), unfinishedAlone)
	}
	// Once ctx is done no new file is opened, but the one in hand may
	// still commit within Grace.
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(s.cfg.Grace, cancel) })
	defer stop()
	return s.p.Process(pctx, path, f)
}

// moveTo moves the file into the subfolder under a name not taken yet, with
// the reason (if any) written beside it first: a crash between the two
// leaves the file to be processed again, never a file without its reason.
func (s *SpoolSource) moveTo(name, sub, reason string) (string, error) {
	s.moving.Lock()
	defer s.moving.Unlock()
	dir := filepath.Join(s.cfg.Path, sub)
	dest := uniqueName(dir, name)
	if reason != "" {
		tmp := filepath.Join(dir, "."+dest+".reason.tmp")
		if err := os.WriteFile(tmp, []byte(reason), 0o640); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, filepath.Join(dir, dest+".reason")); err != nil {
			os.Remove(tmp)
			return "", err
		}
	}
	if err := os.Rename(filepath.Join(s.cfg.Path, name), filepath.Join(dir, dest)); err != nil {
		return "", err
	}
	return filepath.Join(sub, dest), nil
}

// uniqueName returns name, or name.1, name.2, ... : the first for which
// neither it nor its .reason exists in dir.
func uniqueName(dir, name string) string {
	cand := name
	for i := 1; ; i++ {
		if !exists(filepath.Join(dir, cand)) && !exists(filepath.Join(dir, cand+".reason")) {
			return cand
		}
		cand = fmt.Sprintf("%s.%d", name, i)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

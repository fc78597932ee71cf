package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/lib/metrics"
	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
	"github.com/dmarcd/dmarcd/parse/valid"
	"github.com/dmarcd/dmarcd/store"
)

func runIngest(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "ingest")
	asJSON := fs.Bool("json", false, "print one JSON object per input")
	source := fs.String("source", "file", "source name stored with each input")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file (for performance work)")
	textfile := fs.String("metrics-textfile", "", "write the run's Prometheus metrics to this file at the end (node_exporter textfile collector)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(e.stderr, "dmarcd ingest: --cpuprofile:", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(e.stderr, "dmarcd ingest: --cpuprofile:", err)
			return exitUsage
		}
		defer pprof.StopCPUProfile()
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "usage: dmarcd ingest [--json] PATH...  (PATH: file, folder, mbox, Maildir, or - for stdin)")
		return exitUsage
	}
	cfg, err := e.config()
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd:", err)
		return exitUsage
	}
	log := e.logger(cfg)
	var st ingest.Store
	s, err := store.Open(ctx, cfg.ClickHouse.DSN, wire.StoreOptions(cfg, log))
	if err != nil {
		// Keep going: every input is still parsed, and those that hold a
		// report end "error" (retry later) rather than vanish.
		log.Error("clickhouse unavailable", "err", err)
		st = unavailableStore{err: err}
	} else {
		defer s.Close()
		st = s
	}
	key, err := cfg.PrivacyKey()
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd:", err)
		return exitUsage
	}
	if len(cfg.OwnedDomains) == 0 {
		log.Warn("owned_domains is empty: reports for every policy domain are stored; anyone can send reports to a published rua address, so list your domains (dmarcd serve requires them, or [\"*\"])")
	}
	m := metrics.New(version, cfg.OwnedDomains)
	if *textfile != "" {
		defer func() {
			if err := prometheus.WriteToTextfile(*textfile, m.Registry); err != nil {
				fmt.Fprintln(e.stderr, "dmarcd ingest: --metrics-textfile:", err)
			}
		}()
	}
	p := ingest.New(st, wire.PipelineOptions(cfg, wire.Pipeline{Source: *source, Key: key,
		Verifier: wire.ReportVerifier(cfg, log), Observer: wire.Observer(m), Logger: log}))

	// Mailbox and bucket URLs are sources of their own: their mails and
	// objects are acknowledged (moved) after commit, as the daemon does.
	if u := fs.Arg(0); fs.NArg() == 1 && (strings.HasPrefix(u, "imap://") || strings.HasPrefix(u, "imaps://")) {
		return runIngestIMAP(ctx, e, p, cfg, u, *asJSON)
	} else if fs.NArg() == 1 && strings.HasPrefix(u, "s3://") {
		return runIngestS3(ctx, e, p, cfg, u, *asJSON)
	}
	rep := newReporter(e, *asJSON)
	gate := ingest.NewGate(ingestReaders())
	walkErr := walkPaths(ctx, fs.Args(), wire.LimitsFrom(cfg).Extract.MaxMessageBytes, inHandOf(cfg.Limits), rep, func(in ingest.Input) ingest.Outcome {
		return processInput(ctx, p, in, gate)
	})
	if walkErr != nil && !errors.Is(walkErr, context.Canceled) {
		rep.prog.clear()
		fmt.Fprintln(e.stderr, "dmarcd ingest:", walkErr)
		return exitFail
	}
	rep.finish("inputs")
	if rep.tally[ingest.Error] > 0 || ctx.Err() != nil {
		return exitFail
	}
	return exitOK
}

// walkPaths gives each input found under paths to process and its outcome
// to rep, in the order of the inputs. A path that cannot be read (a typo,
// no permission) is an input of its own that ends invalid with
// input_unreadable, and the other paths are still walked.
//
// The inputs in hand (inHand, ingest.InHand) are processed at once, so
// that the store commits the small reports of a folder in groups
// (store.GroupOptions); process bounds how many of them are read at once.
func walkPaths(ctx context.Context, paths []string, maxMessage int64, hand inHand, rep *reporter, process func(ingest.Input) ingest.Outcome) error {
	h := ingest.NewInHand[ingest.Outcome](hand.inputs, hand.bytes)
	var werr error
	report := func(out ingest.Outcome) {
		if werr == nil {
			werr = rep.add(out)
		}
	}
	start := func(size int64, work func() ingest.Outcome) {
		for h.Full(size) || h.Ready() {
			report(h.Next())
		}
		h.Start(size, work)
	}
	err := func() error {
		for _, path := range paths {
			if path != "-" {
				if _, err := os.Stat(path); err != nil {
					start(0, func() ingest.Outcome { return unreadable(path, err) })
					continue
				}
			}
			for in, err := range ingest.FileInputs(ctx, []string{path}, maxMessage) {
				if err != nil {
					return err
				}
				start(in.Size, func() ingest.Outcome { return process(in) })
			}
		}
		return nil
	}()
	for h.Len() > 0 {
		report(h.Next())
	}
	if werr != nil {
		return werr
	}
	return err
}

// inHand bounds what `dmarcd ingest` has in hand at once: inputs being
// read or waiting for the commit of their group. A waiting input holds its
// records and a goroutine, no turn of the read gate (ingestReaders).
type inHand struct {
	inputs int   // how many
	bytes  int64 // their sizes summed (Input.Size); one larger input is taken alone
}

// Defaults of inHand (limits.ingest_inputs_in_hand, ingest_bytes_in_hand):
// about one full group of small reports (store.DefaultGroupMaxRecords
// records, store.DefaultGroupMaxBytes bytes), so that the next group is
// read while one commits.
const (
	defaultInputsInHand = 2048
	defaultBytesInHand  = 32 << 20
)

// inHandOf is the inHand of the configured limits.
func inHandOf(l config.Limits) inHand {
	h := inHand{inputs: l.IngestInputsInHand, bytes: int64(l.IngestBytesInHand)}
	if h.inputs <= 0 {
		h.inputs = defaultInputsInHand
	}
	if h.bytes <= 0 {
		h.bytes = defaultBytesInHand
	}
	return h
}

// ingestReaders is how many inputs `dmarcd ingest` reads and parses at
// once (ingest.Gate): two per CPU, so that reading one input's file
// overlaps parsing another's.
func ingestReaders() int { return 2 * runtime.GOMAXPROCS(0) }

// unreadable is the outcome of a path that cannot be opened: invalid, with
// input_unreadable and the system's reason (which names the path).
func unreadable(path string, err error) ingest.Outcome {
	return ingest.Outcome{Input: path, Kind: "none", Status: ingest.Invalid, ReportIDs: []string{}, ReportKeys: []string{},
		ReasonCode: string(parse.InputUnreadable), Reason: err.Error()}
}

// reporter prints one line (or one JSON object) per Outcome, a progress
// counter on a terminal, and a summary line: for files, mailboxes and
// buckets alike.
type reporter struct {
	e        *env
	asJSON   bool
	enc      *json.Encoder
	tally    map[ingest.Status]int
	records  int    // of the inputs that ended stored
	messages uint64 // of the inputs that ended stored
	dupRecs  int    // of the inputs that ended duplicate
	dupMsgs  uint64
	prog     *progress
	start    time.Time
	err      error // the first write error
}

func newReporter(e *env, asJSON bool) *reporter {
	return &reporter{e: e, asJSON: asJSON, enc: json.NewEncoder(e.stdout), tally: map[ingest.Status]int{},
		prog: newProgress(e.stderr), start: time.Now()}
}

// add accounts for one outcome and prints it; it returns the first error
// writing output.
func (r *reporter) add(out ingest.Outcome) error {
	r.tally[out.Status]++
	switch out.Status {
	case ingest.Stored:
		r.records += out.Records
		r.messages += out.Messages
	case ingest.Duplicate:
		r.dupRecs += out.Records
		r.dupMsgs += out.Messages
	}
	r.prog.update(r.tally)
	if r.err != nil {
		return r.err
	}
	if r.asJSON {
		r.err = r.enc.Encode(out)
		return r.err
	}
	r.prog.clear()
	_, r.err = fmt.Fprintln(r.e.stdout, humanLine(out))
	return r.err
}

// finish clears the progress line and prints the summary (not with --json):
// the records and messages of the inputs stored, which is what the store
// gained and what summary and readiness count, and apart from them those
// of the inputs that were already stored (duplicate deliveries).
func (r *reporter) finish(unit string) {
	r.prog.clear()
	if r.asJSON {
		return
	}
	t := r.tally
	fmt.Fprintf(r.e.stdout, "%d %s in %s: %d stored, %d duplicate, %d invalid, %d error; stored %d records, %d messages",
		t[ingest.Stored]+t[ingest.Duplicate]+t[ingest.Invalid]+t[ingest.Error], unit,
		time.Since(r.start).Round(time.Millisecond), t[ingest.Stored], t[ingest.Duplicate],
		t[ingest.Invalid], t[ingest.Error], r.records, r.messages)
	if t[ingest.Duplicate] > 0 {
		fmt.Fprintf(r.e.stdout, " (duplicates not counted again: %d records, %d messages)", r.dupRecs, r.dupMsgs)
	}
	fmt.Fprintln(r.e.stdout)
}

// processInput opens in and processes it with a turn of gate while it is
// read (Pipeline.ProcessGated).
func processInput(ctx context.Context, p *ingest.Pipeline, in ingest.Input, gate *ingest.Gate) ingest.Outcome {
	rc, err := in.Open()
	if err != nil {
		out := ingest.Outcome{Input: in.Name, Kind: "none", Status: ingest.Error, ReportIDs: []string{},
			ReportKeys: []string{}, ReasonCode: string(parse.InputUnreadable), Reason: err.Error()}
		if c := parse.CodeOf(err); c != "" {
			out.Status, out.ReasonCode = ingest.Invalid, string(c)
		}
		return out
	}
	defer rc.Close()
	return p.ProcessGated(ctx, in.Name, rc, gate)
}

func humanLine(o ingest.Outcome) string {
	// Names, reasons and details come from the input (a file name, an S3
	// key, a report-id quoted in a reason): escaped so that no control
	// sequence reaches the terminal.
	name, reason := valid.Printable(o.Input), valid.Printable(o.Reason)
	switch o.Status {
	case ingest.Stored, ingest.Duplicate:
		s := fmt.Sprintf("%-9s %s: %s, %d report(s), %d records, %d messages", o.Status, name, o.Kind, o.Reports, o.Records, o.Messages)
		if o.Reason != "" {
			s += " (also set aside: " + reason + ")"
		}
		if len(o.Lenient) > 0 {
			s += fmt.Sprintf(" (read leniently: %s", valid.Printable(o.Lenient[0]))
			if len(o.Lenient) > 1 {
				s += fmt.Sprintf("; %d more in --json", len(o.Lenient)-1)
			}
			s += ")"
		}
		if o.Auth == enrich.AuthFail {
			s += "; mail failed authentication (" + valid.Printable(o.AuthDetail) + "): left out of readiness"
		}
		return s
	default:
		return fmt.Sprintf("%-9s %s: %s: %s", o.Status, name, o.ReasonCode, reason)
	}
}

// unavailableStore fails every write: used when ClickHouse cannot be reached
// at start, so inputs end "error" and can be retried.
type unavailableStore struct{ err error }

func (u unavailableStore) WriteAggregate(_ context.Context, _ *aggregate.Header, _ store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	for { // read to the end so a broken report is still reported invalid
		if _, err := next(); err != nil {
			break
		}
	}
	return store.WriteResult{}, fmt.Errorf("clickhouse unavailable: %w", u.err)
}

func (u unavailableStore) WriteFailure(context.Context, string, *enrich.FailureReport, store.InputMeta) (store.WriteResult, error) {
	return store.WriteResult{}, fmt.Errorf("clickhouse unavailable: %w", u.err)
}

func (u unavailableStore) WriteTLSRPT(context.Context, *tlsrpt.Report, store.InputMeta) (store.WriteResult, error) {
	return store.WriteResult{}, fmt.Errorf("clickhouse unavailable: %w", u.err)
}

func (u unavailableStore) LogInput(context.Context, store.InputRow) error { return u.err }

// progress draws a one-line counter on a terminal's stderr for long runs.
type progress struct {
	w     io.Writer
	tty   bool
	last  time.Time
	start time.Time
	drawn bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(t map[ingest.Status]int) {
	if !p.tty || time.Since(p.start) < 2*time.Second || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.drawn = true
	fmt.Fprintf(p.w, "\r%d stored, %d duplicate, %d invalid, %d error ...", t[ingest.Stored], t[ingest.Duplicate], t[ingest.Invalid], t[ingest.Error])
}

func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// Package ingest moves reports from their sources into the store: it reads an
// input (a file, a mail from a mailbox or a bucket), finds the reports in it
// (parse/extract), parses them, enriches them (package enrich: alignment,
// the authenticity of the report's mail), writes them exactly once (through
// the Store interface) and says what became of the input, so the source can
// acknowledge it only after the commit.
package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/parse/extract"
	"github.com/dmarcd/dmarcd/parse/failure"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
	"github.com/dmarcd/dmarcd/parse/valid"
	"github.com/dmarcd/dmarcd/store"
)

// Store is what the pipeline needs of the storage stage.
type Store interface {
	WriteAggregate(ctx context.Context, h *aggregate.Header, meta store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error)
	WriteFailure(ctx context.Context, key string, r *enrich.FailureReport, meta store.InputMeta) (store.WriteResult, error)
	WriteTLSRPT(ctx context.Context, r *tlsrpt.Report, meta store.InputMeta) (store.WriteResult, error)
	LogInput(ctx context.Context, in store.InputRow) error
}

// Privacy says what of a failure report reaches the store. Failure reports
// carry personal data: by default every local part of every address is
// replaced by a keyed hash token (one address, one token), subjects are kept
// and bodies are dropped.
type Privacy struct {
	Key            []byte // per-installation secret for the address tokens; required
	RedactSubjects bool
	KeepBodies     bool
}

// Observer is told what the pipeline did, for metrics. Calls come from the
// goroutine that called Process; implementations must be cheap and safe for
// concurrent use.
type Observer interface {
	// Input is called once per input with its outcome and how long it took.
	Input(source string, o Outcome, took time.Duration)
	// FailureStored is called for each failure report stored now (not for a duplicate).
	FailureStored(r *failure.Report)
	// TLSRPTStored is called for each TLS report stored now (not for a duplicate).
	TLSRPTStored(r *tlsrpt.Report)
	// Stage is called once per report found with the time spent parsing it
	// ("parse": decompression and parsing, which stream together) and
	// storing it ("store": the store's checks and writes).
	Stage(kind, stage string, took time.Duration)
}

// SourceObserver is an Observer that declares the series of a source
// before its first input: New calls Source with Options.Source, so that
// counters exist from the start (a counter born at its first increment is
// invisible to rate() and increase()).
type SourceObserver interface {
	Observer
	Source(source string)
}

// stageClock splits a report's time between parsing and storing: the
// aggregate parser runs inside the store's write (records stream), so the
// time spent in the decoder is summed and subtracted.
type stageClock struct {
	start time.Time
	parse time.Duration
}

func newStageClock() *stageClock { return &stageClock{start: time.Now()} }

// timeParse runs f and counts its time as parsing.
func (c *stageClock) timeParse(f func()) {
	t := time.Now()
	f()
	c.parse += time.Since(t)
}

func (p *Pipeline) observeStages(kind string, c *stageClock) {
	if p.opt.Observer == nil {
		return
	}
	total := time.Since(c.start)
	p.opt.Observer.Stage(kind, "parse", c.parse)
	p.opt.Observer.Stage(kind, "store", max(0, total-c.parse))
}

// Options configure a Pipeline.
type Options struct {
	Source       string // "file", "imap", "s3", "spool": stored with every input
	Extract      extract.Limits
	Aggregate    aggregate.Limits
	TLSRPT       tlsrpt.Limits // zero fields: the TLS parser's defaults
	OwnedDomains []string      // when set, reports for other policy domains are invalid (foreign_domain)
	Privacy      Privacy
	Observer     Observer // optional
	// Verifier authenticates the mail that carried each report on arrival
	// (enrich/mailauth.go); nil stores every report as "unverified".
	Verifier *enrich.Verifier
	Logger   *slog.Logger
	// MaxHashAhead is the largest input hashed before it is parsed, so that
	// its report rows carry its SHA-256 (see Process); DefaultMaxHashAhead
	// when zero. A larger one is read once: its rows have no input_sha256
	// (the inputs table has it, with the input's name).
	MaxHashAhead int64
}

// Pipeline processes inputs one at a time; it is safe for concurrent use if
// the Store is.
type Pipeline struct {
	opt   Options
	store Store
	owned map[string]bool
	log   *slog.Logger
}

// New returns a Pipeline writing to st.
func New(st Store, opt Options) *Pipeline {
	p := &Pipeline{opt: opt, store: st, log: opt.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if opt.Extract == (extract.Limits{}) {
		p.opt.Extract = extract.DefaultLimits()
	}
	if so, ok := opt.Observer.(SourceObserver); ok {
		so.Source(opt.Source)
	}
	if len(opt.OwnedDomains) > 0 {
		p.owned = map[string]bool{}
		for _, d := range opt.OwnedDomains {
			p.owned[align.Normalize(d)] = true
		}
	}
	return p
}

// payloadResult is the fate of one report found in an input.
type payloadResult struct {
	kind     string
	status   Status
	code     parse.Code
	reason   string
	reportID string
	key      string
	records  int
	messages uint64
	auth     enrich.Auth
	// invalidRecords counts the report's records set aside (Record.Invalid),
	// firstInvalid is the reason of the first of them.
	invalidRecords int
	firstInvalid   string
	// lenient: what of this payload was read leniently (Outcome.Lenient).
	lenient []string
}

// DefaultMaxHashAhead is Options.MaxHashAhead when zero: 64 MiB, the
// largest mail extract reads by default (MaxMessageBytes).
const DefaultMaxHashAhead = extract.DefaultMaxMessageBytes

// Hashed is the SHA-256 (hex) and size of a whole input, computed before it
// is parsed; the zero value when unknown.
type Hashed struct {
	SHA256 string
	Size   int64
}

// HashAhead reads r to its end, at most MaxHashAhead bytes, and returns its
// hash: the zero Hashed when r is longer. Memory stays flat (the hash
// streams). A source that can read an input twice (an S3 object, an IMAP
// mail) hashes it so, then hands the second read to ProcessHashed.
func (p *Pipeline) HashAhead(r io.Reader) (Hashed, error) {
	max := p.maxHashAhead()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, max+1))
	if err != nil || n > max {
		return Hashed{}, err
	}
	return Hashed{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

func (p *Pipeline) maxHashAhead() int64 {
	if p.opt.MaxHashAhead > 0 {
		return p.opt.MaxHashAhead
	}
	return DefaultMaxHashAhead
}

// hashSeekable hashes an input that can be read again (a file, a mail in
// memory: an io.Seeker that seeks) and is at most MaxHashAhead bytes long,
// and puts it back where it was; the zero Hashed for any other.
func (p *Pipeline) hashSeekable(r io.Reader) (Hashed, error) {
	s, ok := r.(io.ReadSeeker)
	if !ok {
		return Hashed{}, nil
	}
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return Hashed{}, nil // a pipe, a terminal: read once
	}
	end, err := s.Seek(0, io.SeekEnd)
	if err == nil && end-start <= p.maxHashAhead() {
		if _, err = s.Seek(start, io.SeekStart); err == nil {
			var h Hashed
			if h, err = p.HashAhead(s); err == nil && h.Size == end-start {
				_, err = s.Seek(start, io.SeekStart)
				return h, err
			}
		}
	}
	if _, serr := s.Seek(start, io.SeekStart); serr != nil && err == nil {
		err = serr
	}
	return Hashed{}, err
}

// Process reads one input and returns its Outcome. It never panics on bad
// input and never returns an error: the Outcome says it.
//
// The report rows written carry the input's name and, when it is known
// before parsing, its SHA-256 (input_sha256): an input that can be read
// twice (r is an io.ReadSeeker: a file, a mail in memory) of at most
// MaxHashAhead bytes is hashed first, then parsed. For any other,
// ProcessHashed takes the hash of a first read.
//
// Reading stops once the input is judged: when it is invalid (not a report,
// over a limit, corrupt) or could not be processed now, the rest is never
// read, so an 8 GiB file or an endless pipe costs what the walk read. Its
// SHA256 and Size then cover only the bytes read, the reason says so and
// ReadPartially is set, unless the input was hashed whole first. After a
// stored or duplicate input at most trailingBytes more are read (white
// space or padding after the last report) so that the hash is usually
// that of the whole input.
func (p *Pipeline) Process(ctx context.Context, name string, r io.Reader) Outcome {
	return p.ProcessGated(ctx, name, r, nil)
}

// ProcessGated is Process holding a turn of g while it reads and parses
// the input, and leaving it while the store writes a report of it (a group
// commit waits for other reports: store.GroupOptions) or logs the input,
// so that a caller with many inputs in hand has few of them read at once
// and reads the next ones while the store commits the previous ones. A
// nil g bounds nothing.
func (p *Pipeline) ProcessGated(ctx context.Context, name string, r io.Reader, g *Gate) Outcome {
	t := &turn{g: g}
	defer t.leave()
	t.enter(ctx)
	ahead, err := p.hashSeekable(r)
	if err != nil {
		out := Outcome{Input: name, Kind: "none", Status: Error, ReportIDs: []string{}, ReportKeys: []string{},
			ReasonCode: string(parse.InputUnreadable), Reason: fmt.Sprintf("hashing the input before parsing it: %v", err)}
		t.leave()
		p.logInput(ctx, out)
		if p.opt.Observer != nil {
			p.opt.Observer.Input(p.opt.Source, out, 0)
		}
		return out
	}
	return p.processHashed(ctx, name, ahead, r, t)
}

// ProcessHashed is Process for an input whose hash ahead is known (the zero
// Hashed when it is not): its report rows carry ahead.SHA256, and so do the
// Outcome and the inputs table. Should the bytes parsed hash otherwise (the
// input changed between its reads), a warning says so and the Outcome has
// the hash of what was parsed.
func (p *Pipeline) ProcessHashed(ctx context.Context, name string, ahead Hashed, r io.Reader) Outcome {
	return p.processHashed(ctx, name, ahead, r, &turn{})
}

func (p *Pipeline) processHashed(ctx context.Context, name string, ahead Hashed, r io.Reader, t *turn) Outcome {
	start := time.Now()
	in := input{name: name, sha256: ahead.SHA256, turn: t}
	h := newAsyncHash(sha256.New()) // off this goroutine: it parses
	src := io.TeeReader(r, h)
	var tee *enrich.MailTee
	if p.opt.Verifier != nil {
		// The mail is authenticated as it streams past (no copy of it).
		tee = p.opt.Verifier.Tee(ctx, p.opt.Extract.MaxMessageBytes)
		defer tee.Close()
		src = io.TeeReader(src, tee)
	}
	cr := &countingReader{r: src}
	results, walkErr := p.reports(ctx, name, in, tee, cr)
	newOutcome := func(walkErr error) Outcome {
		o := Outcome{Input: name, Kind: "none", ReportIDs: []string{}, ReportKeys: []string{}}
		o.summarize(results, walkErr)
		return o
	}
	out := newOutcome(walkErr)
	t.enter(ctx)
	partial, readErr := finishReading(cr, out.Status)
	if readErr != nil && (out.Status == Stored || out.Status == Duplicate) {
		// Not read to its end: a retry must see it again.
		out = newOutcome(parse.Wrap(parse.InputUnreadable, readErr, "reading input"))
	}
	out.SHA256, out.Size = hex.EncodeToString(h.Sum(nil)), cr.n
	switch {
	case ahead.SHA256 != "" && (partial || out.SHA256 == ahead.SHA256):
		out.SHA256, out.Size = ahead.SHA256, ahead.Size // the whole input's
	case ahead.SHA256 != "" && readErr == nil:
		p.log.Warn("input changed between its hash and its parse: its report rows have the first hash", "input", valid.Printable(name),
			"sha256_ahead", ahead.SHA256, "sha256_parsed", out.SHA256)
		fallthrough
	case partial:
		out.ReadPartially = partial
		if !partial {
			break
		}
		note := fmt.Sprintf("sha256 and size of the first %d bytes read", cr.n)
		if out.Reason == "" {
			out.Reason = note
		} else {
			out.Reason += " (" + note + ")"
		}
	}
	t.leave()
	p.logInput(ctx, out)
	if p.opt.Observer != nil {
		p.opt.Observer.Input(p.opt.Source, out, time.Since(start))
	}
	return out
}

// reports pulls the reports of one input from r in order and takes each
// through parsing, enrichment and the store before the next is looked for.
// It stops at the first that cannot be handled now (status Error: the
// input is retried whole) without reading further. walkErr is why the
// input held no report (extract.Reader.Next's error), nil when it held one.
func (p *Pipeline) reports(ctx context.Context, name string, in input, tee *enrich.MailTee, r io.Reader) (results []payloadResult, walkErr error) {
	x := extract.NewReader(r, p.opt.Extract)
	defer x.Close()
	in.payloads = &payloads{x: x}
	for {
		in.turn.enter(ctx)
		pl, err := in.payloads.next()
		if err == io.EOF {
			return results, nil
		}
		if err != nil {
			return results, err
		}
		res := p.payload(ctx, in, pl, p.authOf(name, tee, pl))
		results = append(results, res)
		if res.status == Error {
			return results, nil
		}
	}
}

// trailingBytes is how much Process reads past the last report of a stored
// or duplicate input, for its hash: trailing white space, a mail's epilogue.
const trailingBytes = 1 << 20

// finishReading reads what is left of a judged input: nothing when it is
// invalid or in error (one byte, to tell whether it was read to its end), at
// most trailingBytes when it was stored. partial reports whether bytes were
// left unread.
func finishReading(cr *countingReader, st Status) (partial bool, err error) {
	left := int64(0)
	if st == Stored || st == Duplicate {
		left = trailingBytes
	}
	n, err := io.Copy(io.Discard, io.LimitReader(cr, left+1))
	if err != nil {
		return true, err
	}
	return n > left, nil
}

func (o *Outcome) summarize(results []payloadResult, walkErr error) {
	var stored, dup, errs int
	var firstInvalid, firstError, firstBadRecords *payloadResult
	for i := range results {
		r := &results[i]
		for _, n := range r.lenient { // repairs are cumulative over an input's payloads
			if len(o.Lenient) < maxLenientNotes && !slices.Contains(o.Lenient, n) {
				o.Lenient = append(o.Lenient, n)
			}
		}
		if o.Kind == "none" || (o.Kind != "aggregate" && r.status != Invalid) {
			o.Kind = r.kind
		}
		switch r.status {
		case Stored, Duplicate:
			if o.Auth == "" {
				o.Auth, o.AuthDetail = r.auth.Result, r.auth.Detail
			}
			if r.status == Stored {
				stored++
			} else {
				dup++
			}
			o.Reports++
			o.Records += r.records
			o.Messages += r.messages
			o.ReportIDs = append(o.ReportIDs, r.reportID)
			o.ReportKeys = append(o.ReportKeys, r.key)
			o.InvalidRecords += r.invalidRecords
			if r.invalidRecords > 0 && firstBadRecords == nil {
				firstBadRecords = r
			}
		case Error:
			errs++
			if firstError == nil {
				firstError = r
			}
		case Invalid:
			if firstInvalid == nil {
				firstInvalid = r
			}
		}
	}
	switch {
	case errs > 0:
		o.Status, o.ReasonCode, o.Reason = Error, string(firstError.code), firstError.reason
	case walkErr != nil && parse.CodeOf(walkErr) == parse.InputUnreadable:
		o.Status, o.ReasonCode, o.Reason = Error, string(parse.InputUnreadable), walkErr.Error()
	case stored > 0:
		o.Status = Stored
	case dup > 0:
		o.Status = Duplicate
	case firstInvalid != nil:
		o.Status, o.ReasonCode, o.Reason = Invalid, string(firstInvalid.code), firstInvalid.reason
	default:
		o.Status, o.ReasonCode = Invalid, string(parse.NotAReport)
		o.Reason = "no report found"
		if walkErr != nil {
			if c := parse.CodeOf(walkErr); c != "" {
				o.ReasonCode = string(c)
			}
			o.Reason = walkErr.Error()
		}
	}
	if o.Status == Stored || o.Status == Duplicate {
		// A partly invalid input is still accounted for: say what was set aside.
		switch {
		case firstInvalid != nil:
			o.ReasonCode, o.Reason = string(firstInvalid.code), firstInvalid.reason
		case firstBadRecords != nil:
			o.ReasonCode = string(parse.InvalidValue)
			o.Reason = fmt.Sprintf("%d of %d records unusable, set aside (stored with their record_error): report %s, first: %s",
				o.InvalidRecords, o.Records, valid.Quote(firstBadRecords.reportID, 64), firstBadRecords.firstInvalid)
		}
	}
}

// authOf is the authentication of the mail that carried pl: the input
// itself when it is a mail (verified once per input).
func (p *Pipeline) authOf(name string, tee *enrich.MailTee, pl *extract.Payload) enrich.Auth {
	switch {
	case pl.Mail == nil:
		return enrich.Auth{Result: enrich.AuthUnverified, Detail: "bare file: no mail to verify"}
	case tee == nil:
		return enrich.Auth{Result: enrich.AuthUnverified, Detail: "not checked (report_auth disabled)"}
	}
	first := !tee.HasResult()
	a := tee.Result()
	if first && a.Result == enrich.AuthFail {
		p.log.Warn("report mail failed authentication: its reports are left out of readiness verdicts", "input", name, "auth", a.Detail)
	}
	return a
}

// input is the input a payload came from: its names, for the provenance
// of its report rows, and how it is being read.
type input struct {
	name     string // as in the Outcome and the inputs table
	sha256   string // of the whole input, hex; "" when not known before parsing
	turn     *turn  // held while the input is read (ProcessGated)
	payloads *payloads
}

// payloads yields the payloads of an input, one of them pulled ahead
// when told.
type payloads struct {
	x      *extract.Reader
	pulled bool
	pl     *extract.Payload
	err    error
}

// next is the payload pulled ahead, else the next one of x.
func (ps *payloads) next() (*extract.Payload, error) {
	if ps.pulled {
		ps.pulled = false
		return ps.pl, ps.err
	}
	return ps.x.Next()
}

// waitStore is called once payload pl was read to its end, before the
// store commits it and the input waits: it pulls the next payload ahead,
// so that an input of one report ends its walk and lets go of the walk's
// buffers now (nearly every input; one of many reports holds the start of
// the next meanwhile), drops pl's reader (no longer valid) and leaves the
// turn of the read gate.
func (in input) waitStore(pl *extract.Payload) {
	if ps := in.payloads; ps != nil && !ps.pulled {
		ps.pl, ps.err = ps.x.Next()
		ps.pulled = true
	}
	pl.R = nil
	in.turn.leave()
}

// maxPartBytes bounds input_part (extract's Where: the MIME part, archive
// member and file names a payload was found under).
const maxPartBytes = 1024

// meta is the InputMeta of a report of pl found in in.
func (p *Pipeline) meta(in input, pl *extract.Payload, auth enrich.Auth) store.InputMeta {
	return store.InputMeta{Source: p.opt.Source, InputName: in.name, InputPart: valid.Truncate(pl.Where, maxPartBytes),
		InputSHA256: in.sha256, AuthResult: auth.Result, AuthDetail: auth.Detail}
}

func (p *Pipeline) payload(ctx context.Context, in input, pl *extract.Payload, auth enrich.Auth) payloadResult {
	where := pl.Where
	var res payloadResult
	switch pl.Kind {
	case extract.Aggregate:
		res = p.aggregate(ctx, in, pl, auth)
		if res.status == Invalid && where != "" {
			res.reason = where + ": " + res.reason
		}
	case extract.Failure:
		res = p.failure(ctx, in, pl, auth)
		if res.status != Stored && res.status != Duplicate && where != "" {
			res.reason = where + ": " + res.reason
		}
	case extract.TLSRPT:
		res = p.tlsrpt(ctx, in, pl, auth)
		if res.status != Stored && res.status != Duplicate && where != "" {
			res.reason = where + ": " + res.reason
		}
	default:
		return payloadResult{kind: "none", status: Invalid, code: parse.NotAReport,
			reason: fmt.Sprintf("%sunknown payload kind %q", prefix(where), pl.Kind)}
	}
	res.lenient = slices.Concat(pl.Repairs, res.lenient)
	return res
}

func prefix(where string) string {
	if where == "" {
		return ""
	}
	return where + ": "
}

func (p *Pipeline) aggregate(ctx context.Context, in input, pl *extract.Payload, auth enrich.Auth) payloadResult {
	res := payloadResult{kind: "aggregate"}
	clock := newStageClock()
	dec := aggregate.NewDecoder(pl.R, p.opt.Aggregate)
	var hdr *aggregate.Header
	var err error
	clock.timeParse(func() { hdr, err = dec.Header() })
	if err != nil {
		return invalid(res, err)
	}
	res.reportID = hdr.ReportID
	res.key = aggregate.Key(hdr)
	if p.owned != nil && !p.owned[hdr.Domain] {
		res.status, res.code = Invalid, parse.ForeignDomain
		res.reason = fmt.Sprintf("report %s: policy domain %q is not one of the owned domains", hdr.ReportID, hdr.Domain)
		return res
	}
	enr := enrich.Aggregate(hdr)
	var parseErr error
	var renamed []aggregate.Rename
	// done lets go of the decoder (its buffers) once the report was read:
	// the store may keep the input waiting for its group.
	done := func() {
		renamed, dec = dec.Renamed(), nil
	}
	next := func() (*enrich.Record, error) {
		var rec *aggregate.Record
		var err error
		if dec == nil {
			return nil, io.EOF
		}
		clock.timeParse(func() { rec, err = dec.Next() })
		if err != nil {
			done()
			in.waitStore(pl)
			if err != io.EOF {
				parseErr = err
			}
			return nil, err
		}
		if rec.Invalid != "" {
			if res.invalidRecords++; res.invalidRecords == 1 {
				res.firstInvalid = valid.Truncate(valid.Printable(rec.Invalid), 256)
			}
		}
		return enr.Record(rec), nil
	}
	res.auth = enrich.ReporterAuth(auth, hdr.Email)
	meta := p.meta(in, pl, res.auth)
	wr, err := p.store.WriteAggregate(ctx, hdr, meta, next)
	p.observeStages("aggregate", clock)
	if dec != nil {
		done()
	}
	for _, r := range renamed {
		res.lenient = append(res.lenient, fmt.Sprintf("report %s: <%s> read as <%s>", valid.Quote(hdr.ReportID, 64), r.Name, r.As))
	}
	if parseErr != nil {
		return invalid(res, fmt.Errorf("report %s: %w", hdr.ReportID, parseErr))
	}
	return stored(res, res.key, wr, err)
}

func (p *Pipeline) failure(ctx context.Context, in input, pl *extract.Payload, auth enrich.Auth) payloadResult {
	res := payloadResult{kind: "failure", auth: auth}
	clock := newStageClock()
	var r *failure.Report
	var err error
	clock.timeParse(func() {
		// The failure parser's own size limit (15 MiB), or max_message_bytes if lower.
		maxBytes := int64(failure.DefaultMaxBytes)
		if m := p.opt.Extract.MaxMessageBytes; m > 0 && m < maxBytes {
			maxBytes = m
		}
		r, err = failure.Parse(pl.R, failure.Options{MaxBytes: maxBytes, KeepBody: p.opt.Privacy.KeepBodies})
	})
	if err != nil {
		return invalidCode(res, err, parse.MIMESyntax)
	}
	key := failure.Key(r) // before redaction: the identity does not depend on the key
	if len(p.opt.Privacy.Key) == 0 {
		res.status, res.code = Error, parse.StoreUnavailable
		res.reason = "failure report: no redaction key configured (privacy.key_file); refusing to store personal data unredacted"
		return res
	}
	failure.Redact(r, p.opt.Privacy.Key, p.opt.Privacy.RedactSubjects, p.opt.Privacy.KeepBodies)
	if p.owned != nil && !p.ownsAny(r.ReportedDomain, r.Original.FromDomain) {
		res.status, res.code = Invalid, parse.ForeignDomain
		res.reason = fmt.Sprintf("failure report for %q: not one of the owned domains", firstOr(r.ReportedDomain, r.Original.FromDomain))
		return res
	}
	// The mail's and the attachment's names may carry an address too.
	meta := p.meta(in, pl, auth)
	meta.InputName = failure.RedactAddresses(meta.InputName, p.opt.Privacy.Key)
	meta.InputPart = failure.RedactAddresses(meta.InputPart, p.opt.Privacy.Key)
	in.waitStore(pl)
	wr, err := p.store.WriteFailure(ctx, key, enrich.Failure(r), meta)
	p.observeStages("failure", clock)
	if err == nil && wr.Status == store.StatusStored && p.opt.Observer != nil {
		p.opt.Observer.FailureStored(r)
	}
	return stored(res, key, wr, err)
}

func (p *Pipeline) tlsrpt(ctx context.Context, in input, pl *extract.Payload, auth enrich.Auth) payloadResult {
	res := payloadResult{kind: "tlsrpt", auth: auth}
	clock := newStageClock()
	var r *tlsrpt.Report
	var err error
	clock.timeParse(func() { r, err = tlsrpt.ParseLimits(pl.R, p.opt.TLSRPT) })
	if err != nil {
		return invalidCode(res, err, parse.JSONSyntax)
	}
	res.reportID = r.ReportID
	if p.owned != nil {
		var domains []string
		for _, pol := range r.Policies {
			domains = append(domains, pol.Domain)
		}
		if len(domains) > 0 && !p.ownsAny(domains, "") {
			res.status, res.code = Invalid, parse.ForeignDomain
			res.reason = fmt.Sprintf("TLS report %s for %q: not one of the owned domains", r.ReportID, domains[0])
			return res
		}
	}
	in.waitStore(pl)
	wr, err := p.store.WriteTLSRPT(ctx, r, p.meta(in, pl, auth))
	p.observeStages("tlsrpt", clock)
	if err == nil && wr.Status == store.StatusStored && p.opt.Observer != nil {
		p.opt.Observer.TLSRPTStored(r)
	}
	return stored(res, tlsrpt.Key(r), wr, err)
}

func (p *Pipeline) ownsAny(domains []string, also string) bool {
	for _, d := range append(domains, also) {
		d = align.Normalize(d)
		if d == "" {
			continue
		}
		// A failure report is about a From domain that may be a subdomain
		// of an owned domain.
		for o := range p.owned {
			if d == o || strings.HasSuffix(d, "."+o) {
				return true
			}
		}
	}
	return false
}

func firstOr(l []string, alt string) string {
	if len(l) > 0 {
		return l[0]
	}
	return alt
}

func stored(res payloadResult, key string, wr store.WriteResult, err error) payloadResult {
	res.key = key
	if err != nil {
		res.status, res.code = Error, parse.StoreUnavailable
		if parse.CodeOf(err) == parse.StoreRefused {
			// ClickHouse refused the report itself (a value too large, a
			// type error): a retry would fail the same way.
			res.status, res.code = Invalid, parse.StoreRefused
		}
		res.reason = fmt.Sprintf("%s report: storing: %v", res.kind, err)
		return res
	}
	if wr.ReportKey != "" {
		res.key = wr.ReportKey
	}
	res.records, res.messages = wr.Records, wr.Messages
	res.status = Stored
	if wr.Status == store.StatusDuplicate {
		res.status = Duplicate
	}
	return res
}

func invalidCode(res payloadResult, err error, def parse.Code) payloadResult {
	res.status = Invalid
	res.code = parse.CodeOf(err)
	if res.code == "" {
		res.code = def
	}
	res.reason = err.Error()
	return res
}

func invalid(res payloadResult, err error) payloadResult {
	return invalidCode(res, err, parse.XMLSyntax)
}

func (p *Pipeline) logInput(ctx context.Context, o Outcome) {
	if p.store == nil {
		return
	}
	name, reason := o.Input, o.Reason
	if o.Kind == "failure" && len(p.opt.Privacy.Key) > 0 {
		// Failure-report mails are often named after the failed message
		// ("... (mail-from=someone@example.com) ..."): keep no local part.
		name = failure.RedactAddresses(name, p.opt.Privacy.Key)
		reason = failure.RedactAddresses(reason, p.opt.Privacy.Key)
	}
	err := p.store.LogInput(ctx, store.InputRow{Time: time.Now().UTC(), Source: p.opt.Source, Name: name,
		SHA256: o.SHA256, Size: o.Size, Kind: o.Kind, Status: string(o.Status), ReasonCode: o.ReasonCode,
		Reason: reason, ReportKeys: o.ReportKeys})
	if err != nil {
		p.log.Warn("could not log input", "input", o.Input, "err", err)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

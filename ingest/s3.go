package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/failure"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// S3 source modes, S3Config.Mode.
const (
	// S3ModeMove acknowledges an object by moving it (CopyObject, then
	// DeleteObject) under ProcessedPrefix or InvalidPrefix. The listing then
	// holds only what is pending.
	S3ModeMove = "move"
	// S3ModeLeave leaves objects where they are, for readers that may not
	// write or delete: an object is done when the inputs table holds a
	// finished row for its name, s3://bucket/key#etag.
	S3ModeLeave = "leave"
)

// Defaults of S3Config.
const (
	DefaultS3ProcessedPrefix = "processed/"
	DefaultS3InvalidPrefix   = "invalid/"
	DefaultS3PollInterval    = time.Minute
	DefaultS3Concurrency     = 32
)

// Timing and sizes of the S3 source.
const (
	s3RetryMin      = time.Second     // first delay after a failed pass
	s3RetryMax      = 5 * time.Minute // longest delay
	s3MaxPass       = 10000           // pending objects handled in one pass before listing again
	s3MaxReasonMeta = 1024            // bytes of the reason kept in object metadata
	s3MetaReason    = "dmarcd-reason"
	s3MetaCode      = "dmarcd-reason-code"
)

// ErrS3Credentials is returned (wrapped) when the S3 server rejected the
// credentials or denied the operation (InvalidAccessKeyId,
// SignatureDoesNotMatch, AccessDenied, an expired token), or when the AWS
// chain found no credentials at all.
var ErrS3Credentials = errors.New("s3: credentials missing, rejected or not allowed")

// ErrS3ObjectsLeft is returned (wrapped) by Once when some objects could not
// be processed now (status error, e.g. ClickHouse unreachable): they stay
// pending to be retried.
var ErrS3ObjectsLeft = errors.New("s3: objects left pending after errors")

// errS3Config marks a configuration error.
var errS3Config = errors.New("s3: bad configuration")

// S3Observer is told what an S3Source sees, for metrics. Implementations
// must be cheap and safe for concurrent use.
type S3Observer interface {
	Listed(n int)  // a listing page returned n objects
	Fetched()      // an object was downloaded
	Backlog(n int) // n objects are pending (at least: a pass stops counting at 10,000)
}

// S3ErrorObserver is an S3Observer that is also told of failed passes: a
// listing, download or move that met an S3 error (endpoint unreachable,
// credentials rejected, bucket missing). Run retries those with backoff and
// does not return them, so this is where they can be counted. Objects left
// pending because the store failed are not passes that failed: the pipeline
// Observer sees them as inputs with status error. The S3Source calls Error
// when its Observer implements this interface.
type S3ErrorObserver interface {
	S3Observer
	Error()
}

// S3Config configures an S3Source. Zero values take the defaults above.
type S3Config struct {
	Name      string `yaml:"name"`
	Bucket    string `yaml:"bucket"`
	Prefix    string `yaml:"prefix"` // where SES writes, e.g. "incoming/"
	Region    string `yaml:"region"`
	Endpoint  string `yaml:"endpoint"` // S3-compatible server URL; empty for AWS
	PathStyle bool   `yaml:"path_style"`
	// Mode is S3ModeMove (default) or S3ModeLeave.
	Mode            string `yaml:"mode"`
	ProcessedPrefix string `yaml:"processed_prefix"` // default "processed/"
	InvalidPrefix   string `yaml:"invalid_prefix"`   // default "invalid/"
	// MaxObjectBytes: a larger object is not downloaded but set aside as
	// invalid too_large. 0: no limit here (the pipeline's extract limit
	// still applies).
	MaxObjectBytes int64         `yaml:"max_object_bytes"`
	PollInterval   time.Duration `yaml:"poll_interval"` // default 1m
	// Concurrency is how many objects are in hand at once (default
	// DefaultS3Concurrency): downloaded and processed concurrently, so
	// that the store commits their small reports together (store's group
	// commit), each acknowledged once its own reports committed. At most
	// 32 MiB of objects (by listed size) are in hand; a larger one alone.
	// An object in hand when the process died is then processed alone
	// (RetryPolicy): a death among others is charged to none.
	Concurrency int `yaml:"concurrency"`
	// Shared says that several instances read this bucket and prefix: each
	// pass begins at a random pending object (and wraps around) instead of
	// the first key, so that they mostly take different objects (see
	// IMAPConfig.Shared).
	Shared   bool       `yaml:"shared"`
	Observer S3Observer `yaml:"-"` // optional
	// StoreReady, when set, tells whether the store answers; else the
	// pipeline's store is pinged, if it can be. After an object's error it
	// tells a store that is down from an object that fails (RetryPolicy).
	StoreReady func(context.Context) error `yaml:"-"`
	// Retry says how objects that end `error` are retried and when they
	// are set aside (retries_exhausted); zero values take the defaults.
	Retry RetryPolicy `yaml:"-"`
	// Attempts, when set, records each object in hand, so that one that
	// was in hand when the process died Retry.Deaths times is set aside
	// unread.
	Attempts AttemptLog `yaml:"-"`
}

// inputStatusLookup is what leave mode needs of the store (*store.Store has
// it): which of a page's objects are finished.
type inputStatusLookup interface {
	InputStatuses(ctx context.Context, names []string) (map[string]string, error)
}

// S3Source reads DMARC reports from an S3 bucket: the raw mails that an
// Amazon SES receipt rule writes there, or report files (.xml, .xml.gz,
// .zip, TLS-RPT .json.gz) copied in. Objects are recognised by content, never
// by key. Each object is handed to the Pipeline and acknowledged only after
// its outcome is final:
//
//   - mode move (default): an object whose reports are all committed (stored
//     or duplicate) is moved to ProcessedPrefix, one with nothing usable to
//     InvalidPrefix with the reason in its metadata (x-amz-meta-dmarcd-reason,
//     -dmarcd-reason-code); a move is CopyObject then DeleteObject. A crash
//     between the two leaves a copy under the destination and the original
//     pending: the next pass processes it again, finds its reports already
//     stored (duplicate) and moves it again, overwriting the copy.
//   - mode leave: objects stay; an object is done when the inputs table has
//     a stored, duplicate or invalid row named s3://bucket/key#etag (looked
//     up once per listing page). A changed object (new ETag) is new.
//
// Objects that met an error (store unavailable) stay pending and are
// retried with backoff. An object that keeps failing while the store works
// is retried with its own backoff while the others go on, then set aside
// as invalid retries_exhausted (see RetryPolicy). SES keys are random, so a listing cannot resume
// after the last key seen: every pass lists the whole prefix.
//
// Do not call Run and Once at the same time on one S3Source.
type S3Source struct {
	cfg    S3Config
	p      *Pipeline
	log    *slog.Logger
	client *s3.Client
	lookup inputStatusLookup // mode leave
	where  string            // s3://bucket/prefix (at endpoint), for messages
	wake   chan struct{}
	guard  *inputGuard

	mu      sync.Mutex
	listed  bool  // a list call has completed
	listErr error // its error
}

// NewS3Source returns a source reading cfg's bucket into p. Credentials come
// from the standard AWS chain (environment, shared config and profile, web
// identity, container and instance roles).
func NewS3Source(cfg S3Config, p *Pipeline, log *slog.Logger) (*S3Source, error) {
	if cfg.Mode == "" {
		cfg.Mode = S3ModeMove
	}
	if cfg.ProcessedPrefix == "" {
		cfg.ProcessedPrefix = DefaultS3ProcessedPrefix
	}
	if cfg.InvalidPrefix == "" {
		cfg.InvalidPrefix = DefaultS3InvalidPrefix
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultS3PollInterval
	}
	if cfg.Name == "" {
		cfg.Name = "s3://" + cfg.Bucket + "/" + cfg.Prefix
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultS3Concurrency
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("source", cfg.Name)
	s := &S3Source{cfg: cfg, p: p, log: log, wake: make(chan struct{}, 1),
		guard: newInputGuard(cfg.Name, p, log, cfg.Retry, cfg.Attempts, cfg.StoreReady)}
	s.where = "s3://" + cfg.Bucket + "/" + cfg.Prefix
	if cfg.Endpoint != "" {
		s.where += " at " + cfg.Endpoint
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("s3 source %s: %w", cfg.Name, err)
	}
	if cfg.Mode == S3ModeLeave {
		l, ok := p.store.(inputStatusLookup)
		if !ok {
			return nil, fmt.Errorf("s3 source %s: %w: mode %q needs a store that can look up finished inputs (ClickHouse)",
				cfg.Name, errS3Config, S3ModeLeave)
		}
		s.lookup = l
	}

	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	hc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = time.Minute
			// Each object in hand may hold a connection: keep them for
			// the next objects rather than dial anew.
			t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, 2*cfg.Concurrency)
			t.MaxIdleConns = max(t.MaxIdleConns, 2*cfg.Concurrency)
		})
	opts = append(opts, awsconfig.WithHTTPClient(hc))
	acfg, err := awsconfig.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 source %s: loading AWS configuration: %w", cfg.Name, err)
	}
	if acfg.Region == "" {
		acfg.Region = "us-east-1" // S3-compatible servers mostly expect it
	}
	s.client = s3.NewFromConfig(acfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			// S3-compatible servers differ in the checksums they know:
			// send and check them only where the API requires.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		o.UsePathStyle = cfg.PathStyle
	})
	return s, nil
}

func (s *S3Source) check() error {
	c := s.cfg
	if c.Bucket == "" {
		return fmt.Errorf("%w: bucket is required", errS3Config)
	}
	if c.Mode != S3ModeMove && c.Mode != S3ModeLeave {
		return fmt.Errorf("%w: mode %q: want %q or %q", errS3Config, c.Mode, S3ModeMove, S3ModeLeave)
	}
	if c.Mode == S3ModeMove {
		if c.ProcessedPrefix == c.InvalidPrefix {
			return fmt.Errorf("%w: processed_prefix and invalid_prefix are both %q", errS3Config, c.ProcessedPrefix)
		}
		for _, p := range []string{c.ProcessedPrefix, c.InvalidPrefix} {
			if strings.HasPrefix(c.Prefix, p) {
				return fmt.Errorf("%w: prefix %q lies under %q, where acknowledged objects go", errS3Config, c.Prefix, p)
			}
		}
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: endpoint %q: want an http:// or https:// URL", errS3Config, c.Endpoint)
		}
		if u.Scheme == "http" {
			if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
				s.log.Warn("s3: endpoint without TLS: credentials are signed, but objects travel in clear", "endpoint", c.Endpoint)
			}
		}
	}
	return nil
}

// Ready returns nil when the last list call succeeded, and its error
// otherwise (also before the first one).
func (s *S3Source) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.listed {
		return fmt.Errorf("s3 source %s: bucket not listed yet", s.cfg.Name)
	}
	return s.listErr
}

func (s *S3Source) setListed(err error) {
	s.mu.Lock()
	s.listed, s.listErr = true, err
	s.mu.Unlock()
}

// Notify makes a running Run list the bucket now rather than at the next
// poll: for bucket event notifications. It never blocks.
func (s *S3Source) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run processes what is pending, then polls every PollInterval (or sooner
// after Notify, or when an object that failed is due again) until ctx is
// done; it then returns nil. A failed pass (the endpoint unreachable,
// credentials rejected, the store down) is retried with exponential
// backoff and jitter, up to 5 minutes apart.
func (s *S3Source) Run(ctx context.Context) error {
	retry := backoff{min: s3RetryMin, max: s3RetryMax}
	for {
		res, err := s.passes(ctx, nil)
		if ctx.Err() != nil {
			return nil
		}
		wait := s.cfg.PollInterval
		switch {
		case err != nil:
			wait = retry.next()
			s.log.Error("s3 pass failed; retrying", "err", err, "in", wait.Round(time.Millisecond))
		case res.storeDown:
			wait = min(wait, retry.next())
			s.log.Warn("s3 objects left pending after errors; retrying", "errors", res.errors,
				"untried", res.untried, "first", res.firstError, "in", wait.Round(time.Millisecond))
		default:
			retry.reset()
			if d, ok := s.guard.nextDue(); ok {
				wait = min(wait, d) // an object that failed is due again
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// Once processes the objects pending now and returns. fn, if not nil, is
// called with each object's Outcome; the input name is s3://bucket/key#etag.
// When some objects met an error and stay pending, Once returns
// ErrS3ObjectsLeft (wrapped).
func (s *S3Source) Once(ctx context.Context, fn func(Outcome)) error {
	res, err := s.passes(ctx, fn)
	if err != nil {
		return fmt.Errorf("s3 source %s: %w", s.cfg.Name, err)
	}
	if res.errors+res.untried > 0 {
		return fmt.Errorf("s3 source %s: %w: %d in %s met an error and %d were not tried after it (first: %s)",
			s.cfg.Name, ErrS3ObjectsLeft, res.errors, s.where, res.untried, res.firstError)
	}
	return nil
}

// s3Object is a listed object.
type s3Object struct {
	key, etag string // etag without quotes
	size      int64
}

// passes runs passes until one ends with nothing more to list, made no
// progress, or met errors.
func (s *S3Source) passes(ctx context.Context, fn func(Outcome)) (passResult, error) {
	for {
		res, more, done, err := s.pass(ctx, fn)
		if err != nil && ctx.Err() == nil {
			if o, ok := s.cfg.Observer.(S3ErrorObserver); ok {
				o.Error()
			}
		}
		if err != nil || res.errors > 0 || !more || done == 0 {
			return res, err
		}
	}
}

// pass lists up to s3MaxPass pending objects and processes them, but for
// those waiting out their backoff: up to Concurrency at once (see InHand),
// each acknowledged as soon as its own outcome is final, their outcomes
// told to fn in listing order. more says the listing stopped early; done
// counts objects acknowledged. After maxErrorsPass errors in a row while
// the store is down, or an S3 failure, it starts no more objects.
func (s *S3Source) pass(ctx context.Context, fn func(Outcome)) (res passResult, more bool, done int, err error) {
	pending, more, err := s.list(ctx)
	if err != nil {
		return res, false, 0, err
	}
	s.backlog(len(pending))
	if !more {
		present := make(map[string]bool, len(pending))
		for _, obj := range pending {
			present[s.inputName(obj)] = true
		}
		s.guard.retain(present) // forget the objects gone
	}
	due := pending[:0]
	for _, obj := range pending {
		if s.guard.due(s.inputName(obj)) {
			due = append(due, obj)
		}
	}
	res.untried = len(pending) - len(due) // waiting out their backoff
	pending = due
	if len(pending) == 0 {
		return res, false, 0, nil
	}
	if s.cfg.Shared {
		pending = rotate(pending)
	}
	s.log.Debug("s3 pass", "pending", len(pending), "more", more)
	h := newInHand[s3Result](s.cfg.Concurrency)
	handled, stop := 0, false
	take := func(r s3Result) {
		handled++
		if r.err != nil {
			if err == nil {
				err = r.err
			}
			stop = true
			return
		}
		s.backlog(res.untried + len(pending) - handled)
		if !r.found {
			return
		}
		if fn != nil {
			fn(r.out)
		}
		if r.out.Status != Error {
			done++
		} else {
			s.log.Warn("s3 object left pending", "key", r.obj.key, "reason_code", r.out.ReasonCode, "reason", r.out.Reason)
		}
		if took(&res.passTally, h, r.out, r.v) {
			stop = true
		}
	}
	started := 0
	for _, obj := range pending {
		for !stop && h.Full(obj.size) {
			take(h.Next())
		}
		if stop || ctx.Err() != nil {
			break
		}
		h.Start(obj.size, func() s3Result {
			out, found, v, err := s.process(ctx, obj)
			return s3Result{obj: obj, out: out, found: found, v: v, err: err}
		})
		started++
	}
	for h.Len() > 0 {
		take(h.Next())
	}
	switch {
	case err != nil:
	case stop:
		res.untried += len(pending) - started
	case started < len(pending):
		err = ctx.Err() // no object is begun once ctx is done
	}
	return res, more, done, err
}

// s3Result is what became of one object of a pass (see process).
type s3Result struct {
	obj   s3Object
	out   Outcome
	found bool
	v     verdict
	err   error
}

func (s *S3Source) backlog(n int) {
	if s.cfg.Observer != nil {
		s.cfg.Observer.Backlog(n)
	}
}

// list returns the pending objects under the prefix, in key order, at most
// s3MaxPass of them; more says the listing stopped there. In mode move
// everything listed outside the processed and invalid prefixes is pending;
// in mode leave, what the inputs table does not hold as finished (one
// lookup per page of up to 1,000 keys).
func (s *S3Source) list(ctx context.Context) (pending []s3Object, more bool, err error) {
	pg := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket:       aws.String(s.cfg.Bucket),
		Prefix:       aws.String(s.cfg.Prefix),
		EncodingType: types.EncodingTypeUrl, // keys with control characters survive XML
	})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			err = s.apiError("listing", s.cfg.Prefix, err)
			s.setListed(err)
			return nil, false, err
		}
		s.setListed(nil)
		if s.cfg.Observer != nil {
			s.cfg.Observer.Listed(len(page.Contents))
		}
		objs := make([]s3Object, 0, len(page.Contents))
		for _, o := range page.Contents {
			key, err := listedKey(page.EncodingType, aws.ToString(o.Key))
			if err != nil {
				s.log.Warn("s3 listing names a key that is not URL-encoded; skipped", "key", valid.Printable(aws.ToString(o.Key)), "err", err)
				continue
			}
			size := aws.ToInt64(o.Size)
			if strings.HasPrefix(key, s.cfg.ProcessedPrefix) || strings.HasPrefix(key, s.cfg.InvalidPrefix) {
				continue
			}
			if strings.HasSuffix(key, "/") && size == 0 {
				continue // a "folder" made by a console
			}
			objs = append(objs, s3Object{key: key, etag: strings.Trim(aws.ToString(o.ETag), `"`), size: size})
		}
		if s.lookup != nil && len(objs) > 0 {
			if objs, err = s.notDone(ctx, objs); err != nil {
				return nil, false, err
			}
		}
		pending = append(pending, objs...)
		if len(pending) >= s3MaxPass {
			return pending, true, nil
		}
	}
	return pending, false, nil
}

// listedKey is the key of a listing entry: URL-decoded when the server
// honoured EncodingType url (an XML 1.0 document cannot carry most control
// characters, which S3 allows in keys), as it is otherwise.
func listedKey(enc types.EncodingType, key string) (string, error) {
	if enc != types.EncodingTypeUrl {
		return key, nil
	}
	return url.QueryUnescape(key)
}

// notDone drops the objects that the inputs table holds as finished.
func (s *S3Source) notDone(ctx context.Context, objs []s3Object) ([]s3Object, error) {
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		n := s.inputName(o)
		names = append(names, n)
		// The pipeline logs a failure report's name with its addresses
		// redacted: ask for that form too.
		if r := s.redacted(n); r != n {
			names = append(names, r)
		}
	}
	st, err := s.lookup.InputStatuses(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("looking up finished objects: %w", err)
	}
	out := objs[:0]
	for _, o := range objs {
		n := s.inputName(o)
		if st[n] == "" && st[s.redacted(n)] == "" {
			out = append(out, o)
		}
	}
	return out, nil
}

func (s *S3Source) redacted(name string) string {
	if len(s.p.opt.Privacy.Key) == 0 || !strings.Contains(name, "@") {
		return name
	}
	return failure.RedactAddresses(name, s.p.opt.Privacy.Key)
}

// inputName names an object in outcomes and the inputs table:
// s3://bucket/key#etag. The ETag makes a rewritten object a new input.
func (s *S3Source) inputName(o s3Object) string {
	return "s3://" + s.cfg.Bucket + "/" + o.key + "#" + o.etag
}

// process hands one object to the pipeline and acknowledges it (mode move).
// An object over MaxObjectBytes is not downloaded, nor one that was alone
// in hand at Retry.Deaths deaths of the process (RetryPolicy). found is false when the object
// vanished or changed since it was listed (another reader took it, or it
// was rewritten: the next pass sees the new one). v says what an error
// was. err is an S3 failure that ends the pass.
func (s *S3Source) process(ctx context.Context, obj s3Object) (out Outcome, found bool, v verdict, err error) {
	name := s.inputName(obj)
	if max := s.cfg.MaxObjectBytes; max > 0 && obj.size > max {
		out = Outcome{Input: name, Kind: "none", Status: Invalid, Size: obj.size,
			ReasonCode: string(parse.TooLarge), ReportIDs: []string{}, ReportKeys: []string{},
			Reason: fmt.Sprintf("object of %d bytes is over the limit of %d bytes (max_object_bytes); not downloaded", obj.size, max)}
		s.p.logInput(ctx, out)
		found, err = s.acknowledge(ctx, obj, out, nil)
		return out, found, final, err
	}
	h := s.guard.take(ctx, name)
	defer s.guard.release(ctx, name, h) // after the move
	var get *s3.GetObjectOutput
	if s.guard.deadly(h.unfinishedAlone) {
		out = s.guard.died(ctx, name, obj.size, h.unfinishedAlone)
	} else {
		var ahead Hashed
		if obj.size <= s.p.maxHashAhead() {
			// A first read hashes the object, so that its report rows carry
			// the hash (Pipeline.ProcessHashed); memory stays flat.
			if get, err = s.get(ctx, obj); err != nil || get == nil {
				return out, false, final, err
			}
			ahead, err = s.p.HashAhead(get.Body)
			get.Body.Close()
			if err != nil {
				return out, false, final, s.apiError("fetching", obj.key, err)
			}
		}
		if get, err = s.get(ctx, obj); err != nil || get == nil {
			return out, false, final, err
		}
		if s.cfg.Observer != nil {
			s.cfg.Observer.Fetched()
		}
		out = s.p.ProcessHashed(ctx, name, ahead, get.Body)
		get.Body.Close()
	}
	out, v = s.guard.settle(ctx, name, out)
	found, err = s.acknowledge(ctx, obj, out, get)
	return out, found, v, err
}

// get starts the download of the object as listed (If-Match its ETag); nil
// and no error when it is gone or changed since (logged).
func (s *S3Source) get(ctx context.Context, obj s3Object) (*s3.GetObjectOutput, error) {
	get, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket:  aws.String(s.cfg.Bucket),
		Key:     aws.String(obj.key),
		IfMatch: aws.String(`"` + obj.etag + `"`),
	})
	if err != nil {
		if gone(err) {
			s.log.Info("s3 object gone or changed since listed; skipped", "key", obj.key, "err", err)
			return nil, nil
		}
		return nil, s.apiError("fetching", obj.key, err)
	}
	return get, nil
}

// acknowledge moves the object in mode move after a final outcome; in mode
// leave the pipeline's row in the inputs table is the acknowledgement.
func (s *S3Source) acknowledge(ctx context.Context, obj s3Object, out Outcome, get *s3.GetObjectOutput) (found bool, err error) {
	var dest string
	switch out.Status {
	case Stored, Duplicate:
		dest = s.cfg.ProcessedPrefix
	case Invalid:
		dest = s.cfg.InvalidPrefix
	default:
		return true, nil // stays pending
	}
	if s.cfg.Mode == S3ModeLeave {
		s.log.Info("s3 object", "key", obj.key, "status", out.Status, "reports", out.Reports, "records", out.Records,
			"reason_code", out.ReasonCode, "reason", out.Reason)
		return true, nil
	}
	dst := dest + strings.TrimPrefix(obj.key, s.cfg.Prefix)
	in := &s3.CopyObjectInput{
		Bucket:            aws.String(s.cfg.Bucket),
		Key:               aws.String(dst),
		CopySource:        aws.String(copySource(s.cfg.Bucket, obj.key)),
		CopySourceIfMatch: aws.String(`"` + obj.etag + `"`),
	}
	if out.Status == Invalid {
		meta := map[string]string{}
		if get != nil {
			for k, v := range get.Metadata {
				meta[k] = v
			}
			in.ContentType = get.ContentType
		}
		reason := out.Reason
		if out.Kind == "failure" {
			reason = s.redacted(reason)
		}
		meta[s3MetaReason] = metaValue(reason, s3MaxReasonMeta)
		meta[s3MetaCode] = metaValue(out.ReasonCode, 64)
		in.Metadata = meta
		in.MetadataDirective = types.MetadataDirectiveReplace
	}
	if _, err := s.client.CopyObject(ctx, in); err != nil {
		if gone(err) {
			s.log.Info("s3 object gone or changed before its move; skipped", "key", obj.key, "err", err)
			return false, nil
		}
		return false, s.apiError("copying to "+dst+" from", obj.key, err)
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(obj.key),
	}); err != nil && !gone(err) {
		return false, s.apiError("deleting (after copying it to "+dst+")", obj.key, err)
	}
	s.log.Info("s3 object", "key", obj.key, "status", out.Status, "reports", out.Reports, "records", out.Records,
		"reason_code", out.ReasonCode, "reason", out.Reason, "moved_to", dst)
	return true, nil
}

// copySource is CopyObject's x-amz-copy-source: bucket/key with every byte
// of the key percent-encoded but the unreserved characters of RFC 3986
// section 2.3 and the '/' between segments. url.PathEscape is not enough:
// it leaves '+' (which S3 decodes as a space), '&', '=', ';', ':', '@', '$'
// and ',' alone, so CopyObject reads another key than the one listed.
func copySource(bucket, key string) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(bucket)+1+3*len(key))
	b = append(b, bucket...)
	b = append(b, '/')
	for i := 0; i < len(key); i++ {
		c := key[i]
		if unreserved(c) || c == '/' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}

// unreserved tells the characters RFC 3986 section 2.3 leaves unencoded.
func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// metaValue makes s fit an HTTP header (printable ASCII, other bytes become
// "?") of at most max bytes.
func metaValue(s string, max int) string {
	b := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(b) < max; i++ {
		c := s[i]
		switch {
		case c == '\t' || c == '\n' || c == '\r':
			c = ' '
		case c < 0x20 || c > 0x7e:
			c = '?'
		}
		b = append(b, c)
	}
	return strings.TrimSpace(string(b))
}

// gone tells the errors that say an object vanished or changed since it was
// listed: NoSuchKey, 404, 412 PreconditionFailed.
func gone(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "PreconditionFailed":
			return true
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound, http.StatusPreconditionFailed:
			return !isNoSuchBucket(err)
		}
	}
	return false
}

func isNoSuchBucket(err error) bool {
	var nsb *types.NoSuchBucket
	if errors.As(err, &nsb) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket"
}

// apiError words an S3 error so that its reader knows what to fix.
func (s *S3Source) apiError(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	at := ""
	if s.cfg.Endpoint != "" {
		at = " at " + s.cfg.Endpoint
	}
	what := fmt.Sprintf("%s s3://%s/%s%s", op, s.cfg.Bucket, key, at)
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken",
			"InvalidToken", "TokenRefreshRequired", "InvalidClientTokenId", "AllAccessDisabled",
			"XAdminUserNotFound": // versitygw: unknown access key
			return fmt.Errorf("%s: %w: %s: %s (check the credentials of the AWS chain and the IAM policy; see docs/s3.md)",
				what, ErrS3Credentials, ae.ErrorCode(), ae.ErrorMessage())
		case "NoSuchBucket":
			return fmt.Errorf("%s: bucket %q does not exist: %s", what, s.cfg.Bucket, ae.ErrorMessage())
		}
	}
	if msg := err.Error(); strings.Contains(msg, "failed to retrieve credentials") ||
		strings.Contains(msg, "failed to refresh cached credentials") {
		return fmt.Errorf("%s: %w: the AWS chain found none (environment, shared config, web identity, instance role): %v",
			what, ErrS3Credentials, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

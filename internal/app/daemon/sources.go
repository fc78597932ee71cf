package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
)

// newSource builds the source of sc for cfg: buildSource with what the
// daemon adds: an imap source's backlog gauge and store probe, an s3
// source's metrics (dmarcd_s3_*{source="s3:NAME"}).
func (d *Daemon) newSource(cfg config.Config, sc config.Source, p *ingest.Pipeline, onConnErr func()) (Source, error) {
	var ex s3Extras
	if sc.Type == config.SourceIMAP {
		ex.imapBacklog = d.metrics.IMAPBacklog(sc.Label())
		if d.ping != nil {
			ex.storeReady = d.ping.ping // mails left after store errors are retried once it answers
		}
	}
	if sc.Type == config.SourceS3 {
		m, err := d.metrics.S3()
		if err != nil {
			return nil, err
		}
		ex = s3Extras{observer: m.Observer(sc.Label())}
	}
	return buildSourceWith(cfg, sc, p, d.log, onConnErr, ex)
}

// s3Extras are the settings of a source that come from the running daemon
// rather than from the configuration.
type s3Extras struct {
	observer    ingest.S3Observer
	imapBacklog func(int) // an imap source's backlog gauge
	storeReady  func(context.Context) error
}

// buildSource makes the source of one configuration entry of cfg. With a
// nil pipeline (Check) it only tells whether this build can make it.
func buildSource(cfg config.Config, sc config.Source, p *ingest.Pipeline, log *slog.Logger, onConnErr func()) (Source, error) {
	return buildSourceWith(cfg, sc, p, log, onConnErr, s3Extras{})
}

// buildSourceWith makes the source of sc from its options (wire) and ex.
func buildSourceWith(cfg config.Config, sc config.Source, p *ingest.Pipeline, log *slog.Logger, onConnErr func(), ex s3Extras) (Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	label := sc.Label()
	switch sc.Type {
	case config.SourceSpool:
		c := wire.SpoolConfig(sc)
		c.Attempts = ingest.AttemptLogOf(p)
		return ingest.NewSpoolSource(c, p, log), nil
	case config.SourceIMAP:
		st := &connState{err: errNotConnected}
		log = slog.New(&connWatch{Handler: log.Handler(), st: st, onErr: onConnErr})
		c := wire.IMAPConfig(cfg, sc) // a mail over max_message_bytes is not downloaded (RFC822.SIZE)
		c.Backlog, c.StoreReady, c.Attempts = ex.imapBacklog, ex.storeReady, ingest.AttemptLogOf(p)
		src := ingest.NewIMAPSource(c, p, log)
		return &imapSource{IMAPSource: src, name: label, st: st}, nil
	case config.SourceS3:
		if p == nil {
			return nil, nil // NewS3Source needs the pipeline's store for mode leave
		}
		c := wire.S3Config(cfg, sc) // an object over max_message_bytes is set aside unread
		c.Observer, c.Attempts = ex.observer, ingest.AttemptLogOf(p)
		src, err := ingest.NewS3Source(c, p, log)
		if err != nil {
			return nil, err
		}
		return &s3Source{S3Source: src, name: label, hook: src.WebhookHandler()}, nil
	}
	return nil, fmt.Errorf("source type %q is not available in this build", sc.Type)
}

// s3Source is an S3Source with a name. Its readiness is the S3Source's own
// (Ready: the last listing succeeded); its WebhookHandler is served at
// /hooks/s3/NAME while it runs (see Daemon.Handler).
type s3Source struct {
	*ingest.S3Source
	name string
	hook http.Handler
}

var _ Readier = (*s3Source)(nil)

func (s *s3Source) Name() string { return s.name }

// imapSource is an IMAPSource with a name and a readiness.
type imapSource struct {
	*ingest.IMAPSource
	name string
	st   *connState
}

func (s *imapSource) Name() string { return s.name }

// Ready is the IMAPSource's own when it has one; else whether its last
// connection succeeded, as its log says.
func (s *imapSource) Ready() error {
	if r, ok := any(s.IMAPSource).(Readier); ok {
		return r.Ready()
	}
	return s.st.get()
}

var errNotConnected = fmt.Errorf("not connected yet")

// connState is whether an IMAP source is connected.
type connState struct {
	mu  sync.Mutex
	err error
}

func (c *connState) set(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

func (c *connState) get() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// connWatch learns an IMAP source's connection state from its log records
// ("imap connected", "imap connection failed; reconnecting", "imap source
// stopped: not retrying"), then passes them on.
//
// TODO(imap): replace with a Ready() error method on ingest.IMAPSource
// (imapSource.Ready already prefers one); the messages are a contract
// until then.
type connWatch struct {
	slog.Handler
	st    *connState
	onErr func()
}

// Enabled lets every record of Info and above reach Handle, which passes on
// only those the wrapped handler wants.
func (h *connWatch) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.Handler.Enabled(ctx, l)
}

func (h *connWatch) Handle(ctx context.Context, r slog.Record) error {
	switch r.Message {
	case "imap connected":
		h.st.set(nil)
	case "imap connection failed; reconnecting", "imap source stopped: not retrying":
		err := fmt.Errorf("%s", r.Message)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				err = fmt.Errorf("%s: %v", r.Message, a.Value.Any())
				return false
			}
			return true
		})
		h.st.set(err)
		if h.onErr != nil {
			h.onErr()
		}
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *connWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &connWatch{Handler: h.Handler.WithAttrs(as), st: h.st, onErr: h.onErr}
}

func (h *connWatch) WithGroup(name string) slog.Handler {
	return &connWatch{Handler: h.Handler.WithGroup(name), st: h.st, onErr: h.onErr}
}

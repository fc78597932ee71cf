package ingest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/dmarcd/dmarcd/internal/lib/oauth"
	"github.com/dmarcd/dmarcd/parse"
)

// IMAP transport security, IMAPConfig.TLS.
const (
	IMAPTLSImplicit = "implicit" // TLS from the first byte (RFC 8314), port 993
	IMAPTLSStartTLS = "starttls" // STARTTLS on a plain connection (RFC 3501 §6.2.1), port 143
	IMAPTLSNone     = "none"     // no TLS at all: only to a loopback address (tests)
)

// Defaults of IMAPConfig.
const (
	DefaultIMAPMailbox          = "INBOX"
	DefaultIMAPProcessedMailbox = "dmarcd/processed"
	DefaultIMAPInvalidMailbox   = "dmarcd/invalid"
	DefaultIMAPPollInterval     = time.Minute
)

// ErrIMAPAuth is returned (wrapped) by Run and Once when the server rejected
// the credentials: NO to LOGIN without [UNAVAILABLE] or another code that
// says the failure is temporary. Retrying would not help; the configuration
// must be fixed.
var ErrIMAPAuth = errors.New("imap: credentials rejected")

// ErrIMAPMailsLeft is returned (wrapped) by Once when some mails could not be
// processed now (status error, e.g. ClickHouse unreachable): they stay in the
// mailbox to be retried.
var ErrIMAPMailsLeft = errors.New("imap: mails left in the mailbox after errors")

// errIMAPConfig marks a configuration error: Run does not retry it.
var errIMAPConfig = errors.New("imap: bad configuration")

// IMAPConfig configures an IMAPSource. Zero values take the defaults above.
type IMAPConfig struct {
	Name               string // source name (label in logs and metrics)
	Address            string // host:port
	TLS                string // IMAPTLSImplicit (default), IMAPTLSStartTLS or IMAPTLSNone
	CAFile             string // PEM certificates to trust besides the system's; verification is on by default
	InsecureSkipVerify bool   // do not verify the server certificate (logged loudly at every connection)
	Username, Password string
	// OAuth, when set, logs in with an OAuth 2.0 access token (SASL XOAUTH2
	// or OAUTHBEARER) instead of Password.
	OAuth *oauth.Config
	// Mailbox is where reports arrive; default INBOX. In it and in the
	// folders below, a "/" is replaced by the server's hierarchy delimiter,
	// and the personal namespace prefix (e.g. "INBOX.") is put in front when
	// the server has one.
	Mailbox string
	// Folders where mails are moved, created when missing.
	ProcessedMailbox string // every report in it committed; default "dmarcd/processed"
	InvalidMailbox   string // nothing usable in it; default "dmarcd/invalid"
	// MaxMessageBytes: a larger message (by its RFC822.SIZE) is not
	// downloaded but moved to the invalid folder as too_large. 0: no limit
	// here (the pipeline's extract limit still applies).
	MaxMessageBytes int64
	PollInterval    time.Duration // when the server does not offer IDLE; default 1m
	// Backlog, when set, is told how many mails wait in the mailbox: at each
	// pass and after each mail (for the dmarcd_imap_backlog_messages gauge).
	Backlog func(n int)
	// Concurrency is how many mails form a chunk (default
	// DefaultIMAPConcurrency): they are fetched together, processed in
	// parallel, so that the store commits their reports together (group
	// commit), and acknowledged together once each outcome is final. While
	// a chunk waits for its commit the next one is fetched and processed:
	// a backlog has up to twice Concurrency mails in hand. Mails over 8 MiB
	// are processed one at a time, streaming.
	Concurrency int
	// Shared says that several instances read this mailbox: each pass
	// begins at a random mail (and wraps around) instead of the lowest
	// UID, so that instances working through one backlog mostly take
	// different mails; a mail the other instance moved meanwhile is found
	// missing at its fetch and skipped. Alone, an instance goes in UID
	// order.
	Shared bool
	// StoreReady, when set, tells whether the store answers. After mails met
	// store errors (ClickHouse down), Run asks it every StoreProbeInterval
	// and retries them as soon as it answers again, instead of waiting for
	// the next step of the retry backoff.
	StoreReady func(context.Context) error
	// Grace is how long Run lets the mail in hand commit and be moved after
	// its context is done, before it closes the connection; default DefaultGrace.
	// Mails not begun stay in the mailbox for the next start.
	Grace time.Duration
	// Retry says how mails that end `error` are retried and when they are
	// set aside (retries_exhausted); zero values take the defaults. The
	// store probe that tells a store that is down from a mail that fails
	// is StoreReady, else the pipeline's store's Ping if it has one.
	Retry RetryPolicy
	// Attempts, when set, records each mail in hand, so that one that was
	// in hand when the process died Retry.Deaths times is set aside unread.
	Attempts AttemptLog
}

// IMAPSource reads DMARC report mails from an IMAP mailbox (RFC 9051, RFC
// 3501), hands each to the Pipeline, and acknowledges it only after the
// outcome is final: a mail whose reports are all committed (stored or
// duplicate) is moved to the processed folder, one with nothing usable to the
// invalid folder, and one that met an error (store unavailable) stays in the
// mailbox to be retried. Mails are read with BODY.PEEK, so nothing is marked
// seen, and nothing is ever deleted: moves use UID MOVE (RFC 6851), or COPY,
// STORE \Deleted and UID EXPUNGE (RFC 4315) where MOVE is missing.
//
// A crash between the commit and the move leaves the mail in the mailbox; the
// next run finds its reports already stored (duplicate) and moves it.
//
// One IMAPSource runs one connection: do not call Run and Once at the same
// time on it.
type IMAPSource struct {
	cfg     IMAPConfig
	p       *Pipeline
	log     *slog.Logger
	newMail chan struct{} // a unilateral EXISTS arrived
	tokens  *oauth.Tokens // when cfg.OAuth is set
	guard   *inputGuard

	mu    sync.Mutex
	ready error // nil while Run has a working session
}

// errIMAPNotConnected is Ready's answer before the first session.
var errIMAPNotConnected = errors.New("imap: not connected yet")

// Ready returns nil while Run holds a logged-in session with the mailbox
// selected, else why not (the last connection error).
func (s *IMAPSource) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

func (s *IMAPSource) setReady(err error) {
	s.mu.Lock()
	s.ready = err
	s.mu.Unlock()
}

// NewIMAPSource returns a source reading cfg's mailbox into p.
func NewIMAPSource(cfg IMAPConfig, p *Pipeline, log *slog.Logger) *IMAPSource {
	if cfg.TLS == "" {
		cfg.TLS = IMAPTLSImplicit
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = DefaultIMAPMailbox
	}
	if cfg.ProcessedMailbox == "" {
		cfg.ProcessedMailbox = DefaultIMAPProcessedMailbox
	}
	if cfg.InvalidMailbox == "" {
		cfg.InvalidMailbox = DefaultIMAPInvalidMailbox
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultIMAPPollInterval
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultIMAPConcurrency
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Username + "@" + cfg.Address
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("source", cfg.Name)
	s := &IMAPSource{cfg: cfg, p: p, log: log, newMail: make(chan struct{}, 1),
		ready: errIMAPNotConnected, guard: newInputGuard(cfg.Name, p, log, cfg.Retry, cfg.Attempts, cfg.StoreReady)}
	if cfg.OAuth != nil {
		s.tokens = oauth.NewTokens(*cfg.OAuth)
	}
	return s
}

// DefaultGrace is the default of IMAPConfig.Grace and SpoolConfig.Grace:
// how long a source lets the input in hand commit after it is told to stop.
const DefaultGrace = 8 * time.Second

// graceContext returns a context that ends d after ctx does (or when cancel
// is called): work in hand may finish, within a bound.
func graceContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var t *time.Timer
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		t = time.AfterFunc(d, cancel)
		mu.Unlock()
	})
	return work, func() {
		stop()
		mu.Lock()
		if t != nil {
			t.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// Timing of Run.
const (
	reconnectMin  = time.Second     // first reconnection delay
	reconnectMax  = 5 * time.Minute // longest reconnection delay
	retryMin      = 5 * time.Second // first delay before retrying mails that met an error
	retryMax      = 5 * time.Minute
	idleRestart   = 25 * time.Minute // IDLE is re-issued before the 29-minute limit (RFC 2177)
	healthyAfter  = time.Minute      // a session this long resets the reconnection backoff
	maxErrorsPass = 3                // consecutive errors that end a pass (the store is likely down)
)

// StoreProbeInterval is how often Run asks IMAPConfig.StoreReady whether the
// store is back, while mails wait to be retried after store errors.
var StoreProbeInterval = 2 * time.Second

// Run connects, processes the backlog, then waits for new mail with IDLE
// (RFC 2177), or by polling every PollInterval when the server lacks it, and
// processes each new mail, until ctx is done; it then returns nil. It
// reconnects with exponential backoff and jitter after connection errors.
// Mails that met an error are retried with backoff. A rejected credential
// (ErrIMAPAuth) or a bad configuration ends Run with that error.
func (s *IMAPSource) Run(ctx context.Context) error {
	reconnect := backoff{min: reconnectMin, max: reconnectMax}
	for {
		start := time.Now()
		err := s.session(ctx)
		if ctx.Err() != nil {
			s.setReady(errors.New("imap: source stopped"))
			return nil
		}
		s.setReady(fmt.Errorf("imap: %w", err))
		if errors.Is(err, ErrIMAPAuth) || errors.Is(err, errIMAPConfig) {
			s.log.Error("imap source stopped: not retrying", "err", err)
			return fmt.Errorf("imap source %s: %w", s.cfg.Name, err)
		}
		if time.Since(start) >= healthyAfter {
			reconnect.reset()
		}
		d := reconnect.next()
		s.log.Warn("imap connection failed; reconnecting", "err", err, "in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// Once processes the mails in the mailbox now and returns. fn, if not nil,
// is called with each mail's Outcome; the input name is
// "imap://user@host:port/Mailbox;UID=n". When some mails met an error and
// stay in the mailbox, Once returns ErrIMAPMailsLeft (wrapped).
//
// Unlike Run, Once accepts a Mailbox that is the InvalidMailbox, to
// reprocess the mails set aside after an upgrade: those that now hold a
// report move to the processed folder, and the others stay where they are.
func (s *IMAPSource) Once(ctx context.Context, fn func(Outcome)) error {
	c, done, err := s.connect(ctx, true)
	if err != nil {
		return fmt.Errorf("imap source %s: %w", s.cfg.Name, err)
	}
	defer done()
	res, err := s.pass(ctx, ctx, c, fn)
	if err != nil {
		return fmt.Errorf("imap source %s: %w", s.cfg.Name, err)
	}
	if err := c.Logout().Wait(); err != nil {
		s.log.Debug("imap logout", "err", err)
	}
	if res.errors+res.untried > 0 {
		return fmt.Errorf("imap source %s: %w: %d in %s met an error and %d were not tried after it (first: %s)",
			s.cfg.Name, ErrIMAPMailsLeft, res.errors, s.cfg.Mailbox, res.untried, res.firstError)
	}
	return nil
}

// conn is a logged-in connection with the mailbox selected.
//
// UIDs are only used within the session that found them; what outlives it
// (a mail's retries and attempts) is keyed by UIDVALIDITY and UID together
// (mailID), so a UIDVALIDITY change (RFC 9051 §2.3.1.1) between sessions
// needs no handling: the next pass simply sees the mails again as new.
type conn struct {
	*imapclient.Client
	mailbox            string // cfg.Mailbox as the server spells it
	processed, invalid string // folder names as the server spells them
	uidValidity        uint32
}

// session runs one connection: a pass over the backlog, then waits for new
// mail and passes again, until the connection fails or ctx is done.
//
// When ctx is done, the mail in hand may still commit and be moved within
// Grace (the connection and the pipeline run on work, which ends Grace after
// ctx); no new mail is begun.
func (s *IMAPSource) session(ctx context.Context) error {
	work, cancel := graceContext(ctx, s.cfg.Grace)
	defer cancel()
	c, done, err := s.connect(work, false)
	if err != nil {
		return err
	}
	defer done()
	s.setReady(nil)
	caps := c.Caps()
	idle := caps.Has(imap.CapIdle)
	s.log.Info("imap connected", "mailbox", s.cfg.Mailbox, "uidvalidity", c.uidValidity,
		"idle", idle, "move", caps.Has(imap.CapMove), "uidplus", caps.Has(imap.CapUIDPlus))
	if !caps.Has(imap.CapMove) && !caps.Has(imap.CapUIDPlus) {
		s.log.Warn("imap server offers neither MOVE nor UIDPLUS: acknowledged mails are copied and marked \\Deleted in the mailbox, never expunged")
	}
	retry := backoff{min: retryMin, max: retryMax}
	for {
		res, err := s.pass(ctx, work, c, nil)
		if err != nil {
			return err
		}
		wait := idleRestart
		if !idle {
			wait = s.cfg.PollInterval
		}
		var back <-chan struct{}
		stopProbe := func() {}
		if res.storeDown {
			d := retry.next()
			s.log.Warn("imap mails left in the mailbox after errors; retrying later", "errors", res.errors,
				"untried", res.untried, "first", res.firstError, "in", d.Round(time.Millisecond))
			wait = min(wait, d)
			if s.cfg.StoreReady != nil {
				back, stopProbe = s.probeStore(ctx)
			}
		} else {
			retry.reset()
		}
		if d, ok := s.guard.nextDue(); ok {
			wait = min(wait, d) // a mail that failed is due again
		}
		err = s.wait(ctx, c, idle, wait, back)
		stopProbe()
		if err != nil {
			return err
		}
	}
}

// probeStore asks StoreReady every StoreProbeInterval; the channel is
// closed when the store answers after it failed at least once (a store that
// answers from the first probe on is left to the retry backoff: its errors
// may be of another kind, e.g. a full disk). stop ends the probing.
func (s *IMAPSource) probeStore(ctx context.Context) (back <-chan struct{}, stop func()) {
	ch := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(StoreProbeInterval)
		defer t.Stop()
		failed := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := s.cfg.StoreReady(ctx); err != nil {
				failed = true
				continue
			}
			if failed {
				s.log.Info("imap: the store answers again; retrying the mails left in the mailbox")
				close(ch)
				return
			}
		}
	}()
	return ch, cancel
}

// wait returns when new mail may have arrived, after d, when back is closed
// (the store is back), or when ctx is done.
func (s *IMAPSource) wait(ctx context.Context, c *conn, idle bool, d time.Duration, back <-chan struct{}) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	if !idle {
		select {
		case <-back:
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Closed():
			return errors.New("connection closed")
		}
		return nil
	}
	cmd, err := c.Idle()
	if err != nil {
		return fmt.Errorf("IDLE: %w", err)
	}
	select {
	case <-s.newMail:
	case <-back:
	case <-timer.C:
	case <-ctx.Done():
	case <-c.Closed():
		cmd.Close()
		return errors.New("connection closed while idling")
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("ending IDLE: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("IDLE: %w", err)
	}
	return ctx.Err()
}

// connect dials, logs in, finds or creates the folders and selects the
// mailbox. done closes the connection. once allows the mailbox to be the
// invalid folder (see Once).
func (s *IMAPSource) connect(ctx context.Context, once bool) (c *conn, done func(), err error) {
	cl, err := s.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	// The client is not context-aware: closing the connection ends whatever
	// command waits when ctx is done.
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	closeConn := func() {
		stop()
		cl.Close()
	}
	defer func() {
		if err != nil {
			closeConn()
			if ctx.Err() != nil {
				err = ctx.Err()
			}
		}
	}()
	if err := cl.WaitGreeting(); err != nil {
		return nil, nil, fmt.Errorf("greeting from %s: %w", s.cfg.Address, err)
	}
	if err := s.login(ctx, cl); err != nil {
		return nil, nil, err
	}
	c = &conn{Client: cl}
	if c.mailbox, c.processed, c.invalid, err = s.folders(cl, once); err != nil {
		return nil, nil, err
	}
	sel, err := cl.Select(c.mailbox, nil).Wait()
	if err != nil {
		return nil, nil, fmt.Errorf("selecting %s: %w", c.mailbox, err)
	}
	c.uidValidity = sel.UIDValidity
	return c, closeConn, nil
}

func (s *IMAPSource) dial(ctx context.Context) (*imapclient.Client, error) {
	host, _, err := net.SplitHostPort(s.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: address %q: %v", errIMAPConfig, s.cfg.Address, err)
	}
	opts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case s.newMail <- struct{}{}:
					default:
					}
				}
			},
		},
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	switch s.cfg.TLS {
	case IMAPTLSNone:
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("%w: tls %q is only allowed to a loopback address, not %s", errIMAPConfig, IMAPTLSNone, host)
		}
		nc, err := d.DialContext(ctx, "tcp", s.cfg.Address)
		if err != nil {
			return nil, err
		}
		return imapclient.New(nc, opts), nil
	case IMAPTLSImplicit, IMAPTLSStartTLS:
	default:
		return nil, fmt.Errorf("%w: tls %q: want %q, %q or %q", errIMAPConfig, s.cfg.TLS,
			IMAPTLSImplicit, IMAPTLSStartTLS, IMAPTLSNone)
	}
	tc, err := s.tlsConfig(host)
	if err != nil {
		return nil, err
	}
	if s.cfg.TLS == IMAPTLSImplicit {
		tc.NextProtos = []string{"imap"}
		nc, err := (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", s.cfg.Address)
		if err != nil {
			return nil, s.tlsError(err)
		}
		return imapclient.New(nc, opts), nil
	}
	nc, err := d.DialContext(ctx, "tcp", s.cfg.Address)
	if err != nil {
		return nil, err
	}
	opts.TLSConfig = tc
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	cl, err := imapclient.NewStartTLS(nc, opts)
	if err != nil {
		nc.Close()
		return nil, s.tlsError(err)
	}
	return cl, nil
}

// tlsError explains a certificate the server presented that does not
// verify. It is not a rejected credential: nothing was sent yet.
func (s *IMAPSource) tlsError(err error) error {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		hint := "set ca_file to the certificate of the CA that signed it"
		if s.cfg.CAFile != "" {
			hint = "ca_file " + s.cfg.CAFile + " does not hold the CA that signed it"
		}
		return fmt.Errorf("TLS: the certificate of %s does not verify (%s): %w", s.cfg.Address, hint, err)
	}
	return fmt.Errorf("TLS with %s: %w", s.cfg.Address, err)
}

func (s *IMAPSource) tlsConfig(host string) (*tls.Config, error) {
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if s.cfg.InsecureSkipVerify {
		s.log.Warn("imap: NOT VERIFYING the server's TLS certificate (insecure_skip_verify): anyone on the path can read the password",
			"address", s.cfg.Address)
		tc.InsecureSkipVerify = true
	}
	if s.cfg.CAFile != "" {
		pem, err := os.ReadFile(s.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: ca_file: %v", errIMAPConfig, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: ca_file %s: no PEM certificate in it", errIMAPConfig, s.cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// login logs in with the password (LOGIN), or with an OAuth access token
// (AUTHENTICATE XOAUTH2 or OAUTHBEARER).
func (s *IMAPSource) login(ctx context.Context, cl *imapclient.Client) error {
	if s.cfg.OAuth == nil {
		if err := cl.Login(s.cfg.Username, s.cfg.Password).Wait(); err != nil {
			return s.loginError(err, "LOGIN", nil)
		}
		return nil
	}
	if s.cfg.Username == "" {
		return fmt.Errorf("%w: oauth needs the username of the mailbox", errIMAPConfig)
	}
	tok, fresh, err := s.tokens.Token(ctx)
	if err != nil {
		if errors.Is(err, oauth.ErrConfig) {
			return fmt.Errorf("%w: %w", errIMAPConfig, err)
		}
		if errors.Is(err, oauth.ErrRejected) {
			return fmt.Errorf("%w: the authorization server refused a token for %q: %v; fix the oauth settings (not retrying)",
				ErrIMAPAuth, s.cfg.Username, err)
		}
		return err
	}
	sc, challenge := s.cfg.OAuth.SASLClient(s.cfg.Username, tok, s.cfg.Address)
	mech := "AUTHENTICATE " + strings.ToUpper(s.cfg.OAuth.SASLMechanism())
	if err := cl.Authenticate(sc); err != nil {
		err = s.loginError(err, mech, challenge())
		if errors.Is(err, ErrIMAPAuth) && !fresh {
			// The server may have revoked a token we cached: try once
			// more with a new one before giving up.
			s.tokens.Forget()
			return fmt.Errorf("login: %s: the server refused a cached access token; getting a new one: %v", mech, err)
		}
		return err
	}
	return nil
}

// loginError tells a rejected credential (ErrIMAPAuth) from a temporary
// failure: a NO with [UNAVAILABLE] (RFC 5530: e.g. Dovecot's passdb or token
// check is down), [SERVERBUG], [INUSE] or [LIMIT], or a lost connection.
// Any other NO (with [AUTHENTICATIONFAILED], [AUTHORIZATIONFAILED],
// [EXPIRED] or no code) or BAD is a rejected credential. challenge is the
// error a SASL OAuth server sent before its NO (JSON), if any.
func (s *IMAPSource) loginError(err error, mech string, challenge []byte) error {
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return fmt.Errorf("login: %s: %w", mech, err)
	}
	switch ie.Code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeServerBug, imap.ResponseCodeInUse, imap.ResponseCodeLimit:
		return fmt.Errorf("login: %s: temporary failure: %w", mech, err)
	}
	detail := ""
	if len(challenge) > 0 {
		detail = fmt.Sprintf(" (server said %s)", strings.TrimSpace(string(challenge)))
	}
	what := "fix the username or password"
	if s.cfg.OAuth != nil {
		what = "fix the username or the oauth settings"
	}
	return fmt.Errorf("%w: %s refused the %s of %q: %v%s; %s (not retrying)",
		ErrIMAPAuth, s.cfg.Address, mech, s.cfg.Username, err, detail, what)
}

// folders returns the names of the mailbox and of the processed and
// invalid folders as the server spells them, creating the folders when
// missing. With once, the mailbox may be the invalid folder.
func (s *IMAPSource) folders(c *imapclient.Client, once bool) (mailbox, processed, invalid string, err error) {
	if s.cfg.ProcessedMailbox == s.cfg.InvalidMailbox || s.cfg.ProcessedMailbox == s.cfg.Mailbox || !once && s.cfg.InvalidMailbox == s.cfg.Mailbox {
		return "", "", "", fmt.Errorf("%w: mailbox %q, processed %q and invalid %q must differ", errIMAPConfig,
			s.cfg.Mailbox, s.cfg.ProcessedMailbox, s.cfg.InvalidMailbox)
	}
	// LIST "" "" returns the hierarchy delimiter (RFC 9051 §6.3.9).
	l, err := c.List("", "", nil).Collect()
	if err != nil {
		return "", "", "", fmt.Errorf("LIST: %w", err)
	}
	delim := '/'
	if len(l) > 0 && l[0].Delim != 0 {
		delim = l[0].Delim
	}
	prefix := ""
	if c.Caps().Has(imap.CapNamespace) {
		if ns, err := c.Namespace().Wait(); err == nil && len(ns.Personal) > 0 {
			prefix = ns.Personal[0].Prefix
		}
	}
	name := func(n string) string {
		if delim != '/' {
			n = strings.ReplaceAll(n, "/", string(delim))
		}
		if prefix != "" && !strings.HasPrefix(n, prefix) && !strings.EqualFold(n, "INBOX") {
			n = prefix + n
		}
		return n
	}
	mailbox, processed, invalid = name(s.cfg.Mailbox), name(s.cfg.ProcessedMailbox), name(s.cfg.InvalidMailbox)
	for _, f := range []string{processed, invalid} {
		if f == mailbox {
			continue
		}
		if err := s.ensureFolder(c, f); err != nil {
			return "", "", "", err
		}
	}
	return mailbox, processed, invalid, nil
}

func (s *IMAPSource) ensureFolder(c *imapclient.Client, name string) error {
	l, err := c.List("", name, nil).Collect()
	if err != nil {
		return fmt.Errorf("LIST %s: %w", name, err)
	}
	for _, m := range l {
		if m.Mailbox == name && !slices.Contains(m.Attrs, imap.MailboxAttrNoSelect) {
			return nil
		}
	}
	if err := c.Create(name, nil).Wait(); err != nil {
		var ie *imap.Error
		if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAlreadyExists {
			return fmt.Errorf("creating folder %s: %w", name, err)
		}
	}
	s.log.Info("imap folder created", "folder", name)
	if err := c.Subscribe(name).Wait(); err != nil {
		s.log.Debug("imap subscribe", "folder", name, "err", err)
	}
	return nil
}

// passResult counts the inputs of a pass that stay where they are (the
// mails of an IMAP mailbox, the objects of an S3 bucket).
type passResult struct {
	untried   int // inputs not read: the pass ended after errors, or they wait out their backoff
	passTally     // what the outcomes of its inputs said (errors, the first, store down)
}

// Mails are processed in chunks: up to Concurrency mails, read whole into
// memory with one UID FETCH and processed at once, then acknowledged with
// one UID MOVE per folder; while one chunk waits for its commit the next is
// fetched and processed (handChunks). A mail over streamAlone bytes
// (RFC822.SIZE) is a chunk of its own and streams from the server as it is
// processed; the chunks in hand hold at most chunkBytes of mail together.
const (
	streamAlone = 8 << 20
	chunkBytes  = 32 << 20
)

// DefaultIMAPConcurrency is the default of IMAPConfig.Concurrency.
const DefaultIMAPConcurrency = 32

// mailResult is the outcome of one mail of a chunk.
type mailResult struct {
	uid   imap.UID
	out   Outcome
	found bool // false: expunged by someone else meanwhile
}

// pass processes every mail in the mailbox once, in chunks in UID order
// (see chunk), but for those waiting out their own backoff after an error
// (RetryPolicy). It returns an error when the connection or the server
// failed (mails not yet acknowledged stay in the mailbox); mails whose
// Outcome is an error are counted, and after maxErrorsPass of them in a row
// while the store is down the pass ends early. No chunk is begun once ctx
// is done; a chunk begun is processed and moved under work.
func (s *IMAPSource) pass(ctx, work context.Context, c *conn, fn func(Outcome)) (res passResult, err error) {
	select { // this pass sees whatever EXISTS announced so far
	case <-s.newMail:
	default:
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	if err != nil {
		return res, fmt.Errorf("UID SEARCH: %w", err)
	}
	uids := sd.AllUIDs()
	backlog := func(n int) {
		if s.cfg.Backlog != nil {
			s.cfg.Backlog(n)
		}
	}
	backlog(len(uids))
	present := make(map[string]bool, len(uids))
	for _, uid := range uids {
		present[s.mailID(c, uid)] = true
	}
	s.guard.retain(present)
	var due []imap.UID
	for _, uid := range uids {
		if s.guard.due(s.mailID(c, uid)) {
			due = append(due, uid)
		}
	}
	res.untried = len(uids) - len(due) // waiting out their backoff
	if len(due) == 0 {
		return res, nil
	}
	uids = due
	slices.Sort(uids)
	if s.cfg.Shared {
		uids = rotate(uids)
	}
	sizes, err := s.sizes(c, uids)
	if err != nil {
		return res, err
	}
	s.log.Debug("imap pass", "mails", len(uids), "waiting", res.untried)
	q := &chunkQueue{s: s, ctx: ctx, work: work, c: c, sizes: sizes, fn: fn, res: &res}
	defer q.abandon()
	for next := 0; next < len(uids); {
		if err := ctx.Err(); err != nil {
			if derr := q.drain(); derr != nil {
				return res, derr
			}
			return res, err
		}
		chunk := s.chunk(uids[next:], sizes)
		if len(q.flights) > 0 && !q.mayOverlap(chunk) {
			// Finish the oldest chunk in hand before looking again.
			if err := q.finishOldest(); err != nil {
				return res, err
			}
		} else {
			next += len(chunk)
			if err := q.start(chunk); err != nil {
				return res, err
			}
			if len(chunk) == 1 { // processed already: acknowledge it now
				if err := q.finishOldest(); err != nil {
					return res, err
				}
			}
		}
		backlog(res.untried + len(uids) - next + q.inHand())
		if q.consecutive >= maxErrorsPass {
			if err := q.drain(); err != nil {
				return res, err
			}
			res.untried += len(uids) - next
			backlog(res.untried)
			return res, nil
		}
	}
	if err := q.drain(); err != nil {
		return res, err
	}
	backlog(res.untried)
	return res, nil
}

// mailID is a mail's identity for its retries and attempts: the IMAP URL
// of RFC 5092 with the mailbox's UIDVALIDITY,
// imap://user@host:port/Mailbox;UIDVALIDITY=v;UID=n.
func (s *IMAPSource) mailID(c *conn, uid imap.UID) string {
	u := url.URL{Scheme: "imap", User: url.User(s.cfg.Username), Host: s.cfg.Address}
	return fmt.Sprintf("%s/%s;UIDVALIDITY=%d;UID=%d", u.String(), url.PathEscape(s.cfg.Mailbox), c.uidValidity, uid)
}

// chunkQueue holds the chunks of a pass that are in hand, oldest first:
// fetched, their mails being processed (each waits for its group commit,
// store/group.go) or waiting to be acknowledged. While the oldest commits,
// the next chunk is fetched and begins, so a backlog keeps the store's
// group commit fed and the connection busy (see handChunks). Only the pass's
// goroutine uses the connection and the guard; a chunk's mails are
// processed on goroutines of their own.
type chunkQueue struct {
	s           *IMAPSource
	ctx, work   context.Context // as for pass
	c           *conn
	sizes       map[imap.UID]int64
	fn          func(Outcome)
	res         *passResult
	flights     []*flight
	consecutive int // store errors in a row (see maxErrorsPass)
}

// flight is one chunk in hand.
type flight struct {
	alone, begun []imap.UID // see beginChunk
	aside        []mailResult
	holds, solo  bool             // holds the guard's gate: a unit, or alone (a suspect; see beginChunk)
	pos          map[imap.UID]int // a mail's place in the chunk
	bytes        int64            // RFC822.SIZE of its mails
	results      []mailResult     // set before done is closed
	done         chan struct{}    // every mail of run has its outcome
}

// handChunks is how many chunks a pass holds in hand at most: one
// committing while the next is fetched and parsed.
const handChunks = 2

// mayOverlap tells whether chunk may begin while the chunks in hand are
// unfinished: chunks of several mails (one alone streams from the server
// and holds the connection), while no mail met a store error in a row (so
// the pass stops where a pass of one chunk at a time would), none of those
// in hand puts off mails to be processed alone, and all of them together
// hold at most chunkBytes.
func (q *chunkQueue) mayOverlap(chunk []imap.UID) bool {
	if len(q.flights) >= handChunks || len(chunk) < 2 || q.consecutive > 0 {
		return false
	}
	total := q.s.bytesOf(chunk, q.sizes)
	for _, f := range q.flights {
		if len(f.alone) > 0 || len(f.pos) < 2 {
			return false
		}
		total += f.bytes
	}
	return total <= chunkBytes
}

// inHand is the number of mails of the chunks in hand.
func (q *chunkQueue) inHand() int {
	n := 0
	for _, f := range q.flights {
		n += len(f.pos)
	}
	return n
}

// start records the mails of chunk as in hand, fetches them and begins
// their processing (see beginChunk and processChunk); a chunk of one mail
// is processed before start returns.
func (q *chunkQueue) start(chunk []imap.UID) error {
	s := q.s
	f := &flight{pos: make(map[imap.UID]int, len(chunk)), bytes: s.bytesOf(chunk, q.sizes), done: make(chan struct{})}
	for i, uid := range chunk {
		f.pos[uid] = i
	}
	if err := q.enter(); err != nil {
		return err
	}
	f.holds = s.guard.gate != nil
	var run []imap.UID
	run, f.alone, f.aside, f.begun, f.solo = s.beginChunk(q.work, q.c, chunk, q.sizes)
	q.flights = append(q.flights, f)
	process, err := s.processChunk(q.work, q.c, run, q.sizes)
	if err != nil {
		close(f.done)
		return err
	}
	go func() {
		f.results = process()
		close(f.done)
	}()
	return nil
}

// enter holds a unit of the guard's gate for a chunk about to begin. When a
// suspect waits to be alone, the chunks in hand are finished first: the
// suspect waits for them, and only this pass finishes them.
func (q *chunkQueue) enter() error {
	gate := q.s.guard.gate
	if gate == nil || gate.tryEnter() {
		return nil
	}
	if err := q.drain(); err != nil {
		return err
	}
	gate.enter()
	return nil
}

// release ends the attempts of the mails of f and gives back its hold of
// the guard's gate; it does nothing the second time.
func (q *chunkQueue) release(f *flight) {
	q.s.endAttempts(q.work, q.c, f.begun)
	f.begun = nil
	if f.holds {
		f.holds = false
		q.s.guard.gate.done(f.solo)
	}
}

// finishOldest waits for the oldest chunk in hand and acknowledges its
// mails: those whose reports all committed go to the processed folder,
// those with nothing usable, or set aside (retries_exhausted), to the
// invalid folder; those whose outcome is an error stay, and add to
// consecutive while the store is down. Then the mails it put off are
// processed, each alone (see beginChunk).
func (q *chunkQueue) finishOldest() error {
	f := q.flights[0]
	<-f.done
	q.flights = q.flights[1:]
	endAll := func() { q.release(f) }
	defer endAll()
	results := f.results
	if len(f.aside) > 0 {
		results = append(results, f.aside...)
		slices.SortFunc(results, func(a, b mailResult) int { return f.pos[a.uid] - f.pos[b.uid] })
	}
	if err := q.acknowledge(results); err != nil {
		return err
	}
	endAll()
	for _, uid := range f.alone {
		if q.consecutive >= maxErrorsPass || q.ctx.Err() != nil {
			q.res.untried++
			continue
		}
		if err := q.start([]imap.UID{uid}); err != nil {
			return err
		}
		if err := q.finishOldest(); err != nil {
			return err
		}
	}
	return nil
}

// acknowledge settles the outcome of each mail of a chunk (see finishOldest)
// and moves the mails, one UID MOVE per folder.
func (q *chunkQueue) acknowledge(results []mailResult) error {
	s, work, c, res := q.s, q.work, q.c, q.res
	var processed, invalid []imap.UID
	for i := range results {
		m := &results[i]
		if !m.found {
			continue
		}
		var v verdict
		m.out, v = s.guard.settle(work, s.mailID(c, m.uid), m.out)
		if q.fn != nil {
			q.fn(m.out)
		}
		switch m.out.Status {
		case Stored, Duplicate:
			processed = append(processed, m.uid)
		case Invalid:
			invalid = append(invalid, m.uid)
		default:
			res.errors++
			if res.firstError == "" {
				res.firstError = m.out.Reason
			}
			s.log.Warn("imap mail left in the mailbox", "uid", m.uid, "reason_code", m.out.ReasonCode, "reason", m.out.Reason)
			if v == storeDown {
				res.storeDown = true
				q.consecutive++
			}
			continue
		}
		q.consecutive = 0
	}
	if err := s.moveAll(c, processed, c.processed); err != nil {
		return err
	}
	if c.invalid == c.mailbox {
		for _, uid := range invalid {
			s.log.Info("imap mail left in the invalid folder", "uid", uid)
		}
	} else if err := s.moveAll(c, invalid, c.invalid); err != nil {
		return err
	}
	for _, m := range results {
		if !m.found || m.out.Status == Error {
			continue
		}
		dest := c.processed
		if m.out.Status == Invalid {
			if dest = c.invalid; dest == c.mailbox {
				continue
			}
		}
		s.log.Info("imap mail", "uid", m.uid, "status", m.out.Status, "reports", m.out.Reports, "records", m.out.Records,
			"reason_code", m.out.ReasonCode, "reason", m.out.Reason, "moved_to", dest)
	}
	return nil
}

// drain finishes every chunk in hand, oldest first.
func (q *chunkQueue) drain() error {
	for len(q.flights) > 0 {
		if err := q.finishOldest(); err != nil {
			return err
		}
	}
	return nil
}

// abandon waits for the chunks still in hand after an error (the
// connection failed: their mails stay in the mailbox) and ends their
// attempts.
func (q *chunkQueue) abandon() {
	for _, f := range q.flights {
		<-f.done
		q.release(f)
	}
	q.flights = nil
}

// endAttempts records that the attempts of the mails ended.
func (s *IMAPSource) endAttempts(ctx context.Context, c *conn, uids []imap.UID) {
	if len(uids) == 0 || s.guard.attempts == nil {
		return
	}
	ids := make([]string, len(uids))
	for i, uid := range uids {
		ids[i] = s.mailID(c, uid)
	}
	s.guard.endAll(ctx, ids)
}

// bytesOf is the RFC822.SIZE of the mails together.
func (s *IMAPSource) bytesOf(uids []imap.UID, sizes map[imap.UID]int64) int64 {
	var n int64
	for _, uid := range uids {
		n += sizes[uid]
	}
	return n
}

// beginChunk records the mails of a chunk as in hand (IMAPConfig.Attempts)
// and sorts them: run is to be processed now; alone, the suspects (mails
// in hand when the process died), which in a chunk of several are put off
// to be processed one at a time after it, each with nothing else in hand
// (see RetryPolicy). A chunk of one suspect, begun with no other chunk of
// the pass in hand, becomes solo: it waits until nothing else is in hand
// in the process and holds it alone (inputGuard.takeAlone); aside then
// holds its result when it was alone in hand at Retry.Deaths earlier
// deaths of the process or more (set aside unread). begun are the mails
// whose attempt is to be ended.
func (s *IMAPSource) beginChunk(ctx context.Context, c *conn, chunk []imap.UID, sizes map[imap.UID]int64) (run, alone []imap.UID, aside []mailResult, begun []imap.UID, solo bool) {
	if s.guard.attempts == nil {
		return chunk, nil, nil, nil, false
	}
	var known []imap.UID
	var ids []string
	for _, uid := range chunk {
		if _, ok := sizes[uid]; !ok { // expunged meanwhile: found missing
			run = append(run, uid)
			continue
		}
		known = append(known, uid)
		ids = append(ids, s.mailID(c, uid))
	}
	// With an attempt log that records a chunk at once, every mail is
	// begun together; with another, one by one, and a mail put off is
	// ended before the next is begun.
	batch := s.guard.batches() && len(ids) > 1
	var unfinished []int
	if batch {
		unfinished = s.guard.beginAll(ctx, ids)
	}
	var ended []string
	for i, uid := range known {
		var n int
		if batch {
			n = unfinished[i]
		} else {
			n = s.guard.begin(ctx, ids[i])
		}
		switch {
		case n > 0 && len(chunk) == 1:
			solo = true
			begun = append(begun, uid)
			if h := s.guard.takeAlone(ctx, ids[i]); s.guard.deadly(h.unfinishedAlone) {
				aside = append(aside, mailResult{uid: uid, found: true, out: s.guard.died(ctx, s.inputName(uid), sizes[uid], h.unfinishedAlone)})
			} else {
				run = append(run, uid)
			}
		case n > 0:
			if batch {
				ended = append(ended, ids[i])
			} else {
				s.guard.end(ctx, ids[i])
			}
			alone = append(alone, uid)
		case len(chunk) == 1 && s.guard.gate.tryAloneFrom():
			solo = true
			run = append(run, uid)
			begun = append(begun, uid)
			s.guard.markAlone(ctx, ids[i])
		default:
			run = append(run, uid)
			begun = append(begun, uid)
		}
	}
	s.guard.endAll(ctx, ended)
	slices.SortFunc(run, func(a, b imap.UID) int { return slices.Index(chunk, a) - slices.Index(chunk, b) })
	return run, alone, aside, begun, solo
}

// rotate returns the items beginning at a random one and wrapping around:
// where several instances share a source (Shared), each pass of each
// begins somewhere else.
func rotate[T any](items []T) []T {
	if len(items) < 2 {
		return items
	}
	off := rand.IntN(len(items))
	return slices.Concat(items[off:], items[:off])
}

// chunk returns the mails of the next chunk: the first of uids, and those
// after it while there are fewer than Concurrency, none is over streamAlone
// bytes and the chunk stays within chunkBytes. Mails expunged meanwhile (no
// size) go along and are found missing.
func (s *IMAPSource) chunk(uids []imap.UID, sizes map[imap.UID]int64) []imap.UID {
	n := max(1, s.cfg.Concurrency)
	var total int64
	for i, uid := range uids {
		size := sizes[uid]
		if i > 0 && (i >= n || size > streamAlone || total+size > chunkBytes) {
			return uids[:i]
		}
		total += size
		if size > streamAlone {
			return uids[:i+1]
		}
	}
	return uids
}

// processChunk processes the mails of a chunk: one alone streams from the
// server before processChunk returns; several are read into memory with
// one UID FETCH, and process processes them at once, each on a goroutine
// of its own, without the connection. Results are in the order of uids.
func (s *IMAPSource) processChunk(ctx context.Context, c *conn, uids []imap.UID, sizes map[imap.UID]int64) (process func() []mailResult, err error) {
	results := make([]mailResult, len(uids))
	for i, uid := range uids {
		results[i].uid = uid
	}
	done := func() []mailResult { return results }
	if len(uids) == 1 {
		size, ok := sizes[uids[0]]
		if !ok {
			return done, nil
		}
		out, found, err := s.process(ctx, c, uids[0], size)
		results[0].out, results[0].found = out, found
		return done, err
	}
	bodies := map[imap.UID][]byte{}
	var fetch []imap.UID
	for i, uid := range uids {
		size, ok := sizes[uid]
		if !ok {
			continue
		}
		if out, big := s.tooLarge(ctx, uid, size); big {
			results[i].out, results[i].found = out, true
			continue
		}
		fetch = append(fetch, uid)
	}
	if len(fetch) > 0 {
		cmd := c.Fetch(imap.UIDSetNum(fetch...), &imap.FetchOptions{UID: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			var uid imap.UID
			var body []byte
			var rerr error
			gone := false
			for item := msg.Next(); item != nil; item = msg.Next() {
				switch it := item.(type) {
				case imapclient.FetchItemDataUID:
					uid = it.UID
				case imapclient.FetchItemDataBodySection:
					if it.Literal == nil {
						// BODY[] NIL: expunged by another client (another
						// instance moved it) between SEARCH and FETCH.
						gone = true
						continue
					}
					body, rerr = io.ReadAll(it.Literal)
				}
			}
			if rerr != nil {
				cmd.Close()
				return nil, fmt.Errorf("UID FETCH: reading UID %d: %w", uid, rerr)
			}
			if uid != 0 && !gone {
				if body == nil {
					body = []byte{}
				}
				bodies[uid] = body
			}
		}
		// Close reads what is left of the response; an error means some
		// mail was not read whole, except [EXPUNGEISSUED]: some mail was
		// expunged by another client (another instance moved it) and is
		// found missing; the others were read whole.
		if err := cmd.Close(); expungeIssued(err) {
			s.log.Debug("imap: some mails were expunged by another client meanwhile", "err", err)
		} else if err != nil {
			return nil, fmt.Errorf("UID FETCH: %w", err)
		}
	}
	return func() []mailResult {
		var wg sync.WaitGroup
		for i := range results {
			body, ok := bodies[results[i].uid]
			if !ok {
				continue
			}
			wg.Go(func() {
				results[i].out = s.p.Process(ctx, s.inputName(results[i].uid), bytes.NewReader(body))
				results[i].found = true
			})
		}
		wg.Wait()
		return results
	}, nil
}

// sizes returns the RFC822.SIZE of each of the mails.
func (s *IMAPSource) sizes(c *conn, uids []imap.UID) (map[imap.UID]int64, error) {
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if expungeIssued(err) {
		// Another client (another instance) expunged some: they have no
		// size and are found missing.
		s.log.Debug("imap: some mails were expunged by another client meanwhile", "err", err)
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("UID FETCH RFC822.SIZE: %w", err)
	}
	m := make(map[imap.UID]int64, len(msgs))
	for _, msg := range msgs {
		m[msg.UID] = msg.RFC822Size
	}
	return m, nil
}

// process hands one mail to the pipeline, streaming it from the server. A
// mail over MaxMessageBytes is not downloaded. found is false if the mail
// vanished meanwhile.
func (s *IMAPSource) process(ctx context.Context, c *conn, uid imap.UID, size int64) (out Outcome, found bool, err error) {
	name := s.inputName(uid)
	if out, big := s.tooLarge(ctx, uid, size); big {
		return out, true, nil
	}
	var ahead Hashed
	if size <= s.p.maxHashAhead() {
		// A first read hashes the mail, so that its report rows carry the
		// hash (Pipeline.ProcessHashed); memory stays flat.
		body, err := s.openBody(c, uid)
		if err != nil || body == nil {
			return out, false, err
		}
		var herr error
		ahead, herr = s.p.HashAhead(body.r)
		if err := body.Close(); err != nil {
			return out, false, err
		}
		if herr != nil {
			return out, false, fmt.Errorf("UID FETCH %d: reading the mail: %w", uid, herr)
		}
	}
	body, err := s.openBody(c, uid)
	if err != nil || body == nil {
		return out, false, err
	}
	out = s.p.ProcessHashed(ctx, name, ahead, body.r)
	if err := body.Close(); err != nil {
		return out, false, err
	}
	return out, true, nil
}

// mailBody is the body of one mail as its UID FETCH streams it: read r,
// then Close.
type mailBody struct {
	uid imap.UID
	cmd *imapclient.FetchCommand
	r   io.Reader
}

// openBody fetches the body of the mail (BODY.PEEK[]) for the caller to
// read; nil when the mail is gone (expunged by another client).
func (s *IMAPSource) openBody(c *conn, uid imap.UID) (*mailBody, error) {
	cmd := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	msg := cmd.Next()
	if msg == nil {
		if err := cmd.Close(); err != nil && !expungeIssued(err) {
			return nil, fmt.Errorf("UID FETCH %d: %w", uid, err)
		}
		return nil, nil
	}
	var body io.Reader
	for item := msg.Next(); item != nil; item = msg.Next() {
		if b, ok := item.(imapclient.FetchItemDataBodySection); ok {
			body = b.Literal
			break
		}
	}
	if body == nil {
		body = strings.NewReader("")
	}
	return &mailBody{uid: uid, cmd: cmd, r: body}, nil
}

// Close reads what is left of the response. Its error means the mail was
// not read whole, whatever was made of what was read.
func (b *mailBody) Close() error {
	if err := b.cmd.Close(); err != nil {
		return fmt.Errorf("UID FETCH %d: %w", b.uid, err)
	}
	return nil
}

// tooLarge tells whether the mail is over MaxMessageBytes, and if so logs
// and returns its invalid Outcome: it is not downloaded.
func (s *IMAPSource) tooLarge(ctx context.Context, uid imap.UID, size int64) (Outcome, bool) {
	max := s.cfg.MaxMessageBytes
	if max <= 0 || size <= max {
		return Outcome{}, false
	}
	out := Outcome{Input: s.inputName(uid), Kind: "none", Status: Invalid, Size: size,
		ReasonCode: string(parse.TooLarge), ReportIDs: []string{}, ReportKeys: []string{},
		Reason: fmt.Sprintf("message of %d bytes is over the limit of %d bytes (max_message_bytes); not downloaded", size, max)}
	s.p.logInput(ctx, out)
	return out, true
}

// moveAll moves the mails to the folder with one command (see move).
func (s *IMAPSource) moveAll(c *conn, uids []imap.UID, folder string) error {
	if len(uids) == 0 {
		return nil
	}
	return s.move(c, uids, folder)
}

// move moves the mail to the folder: UID MOVE (RFC 6851), or the library's
// fallback where MOVE is missing: UID COPY, UID STORE +FLAGS.SILENT \Deleted
// and UID EXPUNGE (RFC 4315). Without UIDPLUS either, a plain EXPUNGE would
// also remove every other mail someone marked \Deleted, so the mail is only
// copied and marked \Deleted (later passes skip it) and never expunged.
func (s *IMAPSource) move(c *conn, uids []imap.UID, folder string) error {
	set := imap.UIDSetNum(uids...)
	do := func() error {
		caps := c.Caps()
		if caps.Has(imap.CapMove) || caps.Has(imap.CapUIDPlus) {
			_, err := c.Move(set, folder).Wait()
			return err
		}
		if _, err := c.Copy(set, folder).Wait(); err != nil {
			return err
		}
		return c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
			Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	}
	err := do()
	if expungeIssued(err) {
		if len(uids) == 1 {
			s.log.Info("imap mail already moved by another client (another instance?)", "uid", uids[0], "folder", folder)
			return nil
		}
		return s.moveLeft(c, uids, folder, err)
	}
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeTryCreate {
		// The folder was deleted while we ran: create it again.
		if err := s.ensureFolder(c.Client, folder); err != nil {
			return err
		}
		err = do()
	}
	if err != nil {
		return fmt.Errorf("moving UID %s to %s: %w", set, folder, err)
	}
	return nil
}

// responseCodeExpungeIssued (RFC 5530): someone else expunged some of the
// mails of a command.
const responseCodeExpungeIssued imap.ResponseCode = "EXPUNGEISSUED"

// expungeIssued tells a NO [EXPUNGEISSUED]: some of the mails were expunged
// by another client, e.g. another dmarcd instance that moved them. Dovecot
// answers so to a UID MOVE, COPY or FETCH of such mails; other servers
// answer OK and leave them out.
func expungeIssued(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Code == responseCodeExpungeIssued
}

// moveLeft handles a move that met NO [EXPUNGEISSUED] (first): another
// instance moved some of the mails first. Those still in the mailbox (UID
// SEARCH) are moved one by one; a mail gone meanwhile is not an error.
func (s *IMAPSource) moveLeft(c *conn, uids []imap.UID, folder string, first error) error {
	sd, err := c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(uids...)},
		NotFlag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	if err != nil {
		return fmt.Errorf("UID SEARCH after moving UID %s to %s met %v: %w", imap.UIDSetNum(uids...), folder, first, err)
	}
	left := sd.AllUIDs()
	s.log.Info("imap mails already moved by another client (another instance?)", "mails", len(uids)-len(left),
		"of", len(uids), "folder", folder)
	for _, uid := range left {
		if err := s.move(c, []imap.UID{uid}, folder); err != nil {
			return err
		}
	}
	return nil
}

// inputName names a mail in logs, outcomes and the inputs table, after the
// IMAP URL form of RFC 5092: imap://user@host:port/Mailbox;UID=n.
func (s *IMAPSource) inputName(uid imap.UID) string {
	u := url.URL{Scheme: "imap", User: url.User(s.cfg.Username), Host: s.cfg.Address}
	return fmt.Sprintf("%s/%s;UID=%d", u.String(), url.PathEscape(s.cfg.Mailbox), uid)
}

// backoff is an exponential delay with jitter: each next is twice the last,
// up to max, and then drawn uniformly from its upper half.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d; it returns false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

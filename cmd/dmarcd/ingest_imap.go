package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/lib/oauth"
)

// Environment of `dmarcd ingest imap://...`: the secret never comes from
// the URL or a flag, where ps and shell histories would show it.
const (
	envIMAPPassword     = "DMARCD_IMAP_PASSWORD"      // the password
	envIMAPPasswordFile = "DMARCD_IMAP_PASSWORD_FILE" // or a file holding it (trailing newline ignored)
	envIMAPTokenFile    = "DMARCD_IMAP_TOKEN_FILE"    // or an OAuth access token file, with ?auth=xoauth2 or oauthbearer
	envIMAPCAFile       = "DMARCD_IMAP_CA_FILE"       // PEM certificates to trust besides the system's
)

const ingestIMAPUsage = `usage: dmarcd ingest [--json] imaps://USER@HOST[:PORT]/FOLDER[?QUERY]
       dmarcd ingest [--json] imap://USER@HOST[:PORT]/FOLDER[?QUERY]   (STARTTLS)
  imaps:// uses implicit TLS (port 993 by default), imap:// STARTTLS (port 143);
  the certificate is verified against the system's roots and ` + envIMAPCAFile + `.
  FOLDER defaults to INBOX; "/" in folder names stands for the server's delimiter.
  Query: processed=FOLDER (default dmarcd/processed), invalid=FOLDER (default
  dmarcd/invalid), auth=password|xoauth2|oauthbearer, tls=none (imap:// to a
  loopback address only). FOLDER may be the invalid folder: mails that now hold
  a report move to the processed folder, the others stay.
  Secret: ` + envIMAPPassword + ` or ` + envIMAPPasswordFile + `, or with auth=xoauth2|oauthbearer
  an access token file in ` + envIMAPTokenFile + ` (read again at each login).`

// runIngestIMAP processes the backlog of one mailbox once
// (imaps://user@host/Folder), with the daemon's acknowledgement rules: a
// mail whose reports all committed moves to the processed folder, one with
// nothing usable to the invalid folder, one that met an error stays. It
// prints one line (or JSON Outcome) per mail. Exit status: 0 when no mail
// is left after an error, 1 when some are or the server could not be
// used (connection, TLS, rejected credentials), 2 for usage errors.
func runIngestIMAP(ctx context.Context, e *env, p *ingest.Pipeline, cfg config.Config, rawURL string, asJSON bool) int {
	ic, err := imapConfigFromURL(rawURL, os.Getenv)
	if err != nil {
		fmt.Fprintf(e.stderr, "dmarcd ingest: %v\n%s\n", err, ingestIMAPUsage)
		return exitUsage
	}
	ic.MaxMessageBytes = wire.MaxMessageBytes(cfg)
	ic.Attempts = ingest.AttemptLogOf(p) // a mail that killed earlier runs is set aside unread
	log := e.logger(cfg)
	// Each mail gets its line on stdout: the source's per-mail log lines
	// would only repeat them.
	srcLog := slog.New(minLevel{log.Handler(), slog.LevelWarn})
	src := ingest.NewIMAPSource(ic, p, srcLog)

	rep := newReporter(e, asJSON)
	err = src.Once(ctx, func(out ingest.Outcome) { rep.add(out) })
	rep.finish("mails")
	switch {
	case err == nil && rep.err == nil && ctx.Err() == nil:
		return exitOK
	case errors.Is(err, ingest.ErrIMAPAuth):
		fmt.Fprintf(e.stderr, "dmarcd ingest: login refused: %v\n", err)
	case err != nil && !errors.Is(err, context.Canceled):
		fmt.Fprintf(e.stderr, "dmarcd ingest: %v\n", err)
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) && ic.CAFile == "" {
			fmt.Fprintf(e.stderr, "dmarcd ingest: to trust the server's CA, set %s to its certificate (PEM)\n", envIMAPCAFile)
		}
	case rep.err != nil:
		fmt.Fprintf(e.stderr, "dmarcd ingest: %v\n", rep.err)
	}
	return exitFail
}

// imapConfigFromURL reads an IMAP URL (after RFC 5092, without its
// ;AUTH= and ;UIDVALIDITY parts) and the secret from the environment.
func imapConfigFromURL(raw string, getenv func(string) string) (ingest.IMAPConfig, error) {
	var ic ingest.IMAPConfig
	u, err := url.Parse(raw)
	if err != nil {
		return ic, fmt.Errorf("imap URL: %v", err)
	}
	port := "993"
	switch u.Scheme {
	case "imaps":
		ic.TLS = ingest.IMAPTLSImplicit
	case "imap":
		ic.TLS, port = ingest.IMAPTLSStartTLS, "143"
	default:
		return ic, fmt.Errorf("imap URL %q: scheme %q, want imaps or imap", raw, u.Scheme)
	}
	if u.User == nil || u.User.Username() == "" {
		return ic, fmt.Errorf("imap URL %q names no user (imaps://USER@HOST/FOLDER)", raw)
	}
	if _, set := u.User.Password(); set {
		return ic, fmt.Errorf("imap URL: put the password in %s or %s, not in the URL, where ps and shell histories show it",
			envIMAPPassword, envIMAPPasswordFile)
	}
	ic.Username = u.User.Username()
	if u.Hostname() == "" {
		return ic, fmt.Errorf("imap URL %q names no host", raw)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	ic.Address = net.JoinHostPort(u.Hostname(), port)
	ic.Name = ic.Username + "@" + ic.Address
	ic.Mailbox = strings.Trim(u.Path, "/")
	q := u.Query()
	for k := range q {
		switch k {
		case "processed", "invalid", "auth", "tls":
		default:
			return ic, fmt.Errorf("imap URL: unknown parameter %q (want processed, invalid, auth or tls)", k)
		}
	}
	ic.ProcessedMailbox, ic.InvalidMailbox = q.Get("processed"), q.Get("invalid")
	switch t := q.Get("tls"); t {
	case "":
	case ingest.IMAPTLSNone:
		if u.Scheme != "imap" {
			return ic, errors.New("imap URL: tls=none goes with imap://, not imaps://")
		}
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return ic, fmt.Errorf("imap URL: tls=none is only allowed to a loopback address, not %s", u.Hostname())
		}
		ic.TLS = ingest.IMAPTLSNone
	default:
		return ic, fmt.Errorf("imap URL: tls=%q: only tls=none (to a loopback address) may be set", t)
	}
	ic.CAFile = getenv(envIMAPCAFile)

	switch auth := strings.ToLower(q.Get("auth")); auth {
	case "", "password", "login", "plain":
		ic.Password = getenv(envIMAPPassword)
		if f := getenv(envIMAPPasswordFile); f != "" {
			if ic.Password != "" {
				return ic, fmt.Errorf("%s and %s are both set: set one", envIMAPPassword, envIMAPPasswordFile)
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return ic, fmt.Errorf("%s: %v", envIMAPPasswordFile, err)
			}
			ic.Password = strings.TrimRight(string(b), "\r\n")
		}
		if ic.Password == "" {
			return ic, fmt.Errorf("no password: set %s or %s (a file holding it)", envIMAPPassword, envIMAPPasswordFile)
		}
	case oauth.XOAUTH2, oauth.OAUTHBEARER:
		f := getenv(envIMAPTokenFile)
		if f == "" {
			return ic, fmt.Errorf("auth=%s: no token: set %s to a file holding the access token", auth, envIMAPTokenFile)
		}
		ic.OAuth = &oauth.Config{Mechanism: auth, TokenFile: f}
	default:
		return ic, fmt.Errorf("imap URL: auth=%q: want password, xoauth2 or oauthbearer", auth)
	}
	return ic, nil
}

// minLevel is a slog.Handler that drops records below its level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

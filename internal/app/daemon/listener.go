package daemon

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"

	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
)

// Limits of the HTTP listener: what one client can hold of the daemon.
// Anyone who reaches http.listen is a client, so each is a bound enforced
// while reading, not a hope.
const (
	// defaultReadHeaderTimeout bounds the time to send a request's header
	// (10 s): a client that trickles it is cut off.
	defaultReadHeaderTimeout = 10 * time.Second
	// defaultReadTimeout bounds the time to send a whole request, body
	// included (20 s): a webhook body of 1 MiB needs far less.
	defaultReadTimeout = 20 * time.Second
	// defaultWriteTimeout bounds the time from the end of a request's
	// header to the end of its response (30 s): a /metrics scrape or a
	// /readyz ping of ClickHouse fits; a client that does not read its
	// response is cut off.
	defaultWriteTimeout = 30 * time.Second
	// defaultIdleTimeout closes a keep-alive connection that sends no next
	// request for 60 s.
	defaultIdleTimeout = 60 * time.Second
	// defaultMaxHeaderBytes bounds a request's header (16 KiB); a larger
	// one gets 431.
	defaultMaxHeaderBytes = 16 << 10
)

// httpLimits are the bounds of the listener; zero values take the defaults
// above and wire.DefaultHTTPMaxConnections.
type httpLimits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// MaxConnections bounds the connections open at once (http.max_connections):
	// more wait in the kernel's accept queue until one closes.
	MaxConnections int
}

func (l httpLimits) withDefaults() httpLimits {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.ReadHeaderTimeout, defaultReadHeaderTimeout)
	def(&l.ReadTimeout, defaultReadTimeout)
	def(&l.WriteTimeout, defaultWriteTimeout)
	def(&l.IdleTimeout, defaultIdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = wire.DefaultHTTPMaxConnections
	}
	return l
}

// newHTTPServer returns the server of Run's listener ln and the listener
// to Serve: ln bounded to http.max_connections connections at once, each
// bounded in time and header size (httpLimits). With s3 sources and no
// http.webhook_secret it warns that their webhooks are off.
func (d *Daemon) newHTTPServer(cfg config.Config, ln net.Listener) (*http.Server, net.Listener) {
	if cfg.HTTP.WebhookSecret == "" {
		for _, sc := range cfg.Sources {
			if sc.Type == config.SourceS3 {
				d.log.Warn("http: the s3 webhooks /hooks/s3/NAME are off (404): set http.webhook_secret " +
					"(or DMARCD_HTTP_WEBHOOK_SECRET) and send it from the S3 server (docs/s3.md); the sources still poll")
				break
			}
		}
	}
	return serverFor(d.Handler(), ln, httpLimits{MaxConnections: cfg.HTTP.MaxConnections})
}

// serverFor builds an http.Server for h with the limits lim, and wraps ln
// so that at most lim.MaxConnections connections are open at once.
func serverFor(h http.Handler, ln net.Listener, lim httpLimits) (*http.Server, net.Listener) {
	lim = lim.withDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
	}
	return srv, netutil.LimitListener(ln, lim.MaxConnections)
}

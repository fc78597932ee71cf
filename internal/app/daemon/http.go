package daemon

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// Handler serves /metrics (Prometheus text format), /healthz (200 while the
// process runs), /readyz (200 when ClickHouse answers a ping and every
// source is connected; 503 with one line per thing not ready otherwise) and
// /hooks/s3/NAME, where an S3-compatible server POSTs the bucket event
// notifications of the s3 source NAME (ingest.S3Source.Webhook) with the
// shared secret http.webhook_secret (webhookAuth). Only the webhooks take a
// request body (up to 1 MiB, ingest.DefaultWebhookMaxBodyBytes); the other
// paths refuse one with 413. The secret is read from the configuration in
// force when Handler is called (Run: the start).
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/hooks/s3/{name}", webhookAuth(d.cfg.HTTP.WebhookSecret, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := d.s3Hook(r.PathValue("name"))
		if h == nil {
			http.Error(w, "no s3 source named "+valid.Quote(r.PathValue("name"), 64)+" is running", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})))
	mux.Handle("/metrics", noBody(promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{Registry: d.metrics.Registry})))
	mux.Handle("/healthz", noBody(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})))
	mux.Handle("/readyz", noBody(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		problems := d.notReady(r)
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(problems, "\n"))
			return
		}
		fmt.Fprintln(w, "ok")
	})))
	mux.Handle("/", noBody(http.NotFoundHandler()))
	return mux
}

// noBody refuses a request that carries a body (a Content-Length above 0,
// or chunked) with 413 and closes the connection, unread: the paths it
// wraps take none.
func noBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			w.Header().Set("Connection", "close")
			http.Error(w, r.URL.Path+" takes no request body", http.StatusRequestEntityTooLarge)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// webhookAuth lets through to h only the requests that carry secret: in an
// Authorization header with the Bearer scheme (RFC 6750 section 2.1; what
// MinIO's webhook target sends from its auth_token) or, for servers that
// cannot add a header (versitygw), as the query parameter token (RFC 6750
// section 2.3: weaker, the URL shows in the server's configuration and
// logs). Without either: 401 with a WWW-Authenticate challenge (RFC 6750
// section 3); with a wrong one: 403; both close the connection, and neither
// reads the body nor reaches h, so they cost no listing. The comparison
// takes the same time whatever the guess (SHA-256 of both, then
// subtle.ConstantTimeCompare). An empty secret turns the webhooks off
// (404, saying how to turn them on).
func webhookAuth(secret string, h http.Handler) http.Handler {
	want := sha256.Sum256([]byte(secret))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if secret == "" {
			http.Error(w, "the s3 webhooks are off: set http.webhook_secret (docs/s3.md)", http.StatusNotFound)
			return
		}
		got, ok := bearer(r)
		if !ok {
			w.Header().Set("Connection", "close")
			w.Header().Set("WWW-Authenticate", `Bearer realm="dmarcd"`)
			http.Error(w, "send the webhook secret: Authorization: Bearer SECRET, or ?token=SECRET", http.StatusUnauthorized)
			return
		}
		if g := sha256.Sum256([]byte(got)); subtle.ConstantTimeCompare(g[:], want[:]) != 1 {
			w.Header().Set("Connection", "close")
			http.Error(w, "wrong webhook secret", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bearer returns the token of r's Authorization header (scheme Bearer,
// matched without regard to case: RFC 9110 section 11.1), else of its
// query parameter token.
func bearer(r *http.Request) (string, bool) {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok), true
		}
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		return tok, true
	}
	return "", false
}

// notReady lists what is not ready, one line each.
func (d *Daemon) notReady(r *http.Request) []string {
	var out []string
	d.mu.Lock() // a reload may replace ping
	ping := d.ping
	d.mu.Unlock()
	if ping == nil {
		out = append(out, "daemon: not started")
	} else if err := ping.ping(r.Context()); err != nil {
		out = append(out, "clickhouse: "+err.Error())
	}
	var srcs []string
	for label, s := range d.snapshot() {
		if err := s.ready(); err != nil {
			srcs = append(srcs, "source "+label+": "+err.Error())
		}
	}
	slices.Sort(srcs)
	return append(out, srcs...)
}

// s3Hook returns the webhook of the running s3 source named name, or nil.
// The running sources are the mapping: a reload that stops, replaces or
// adds a source changes it under d.mu, so an event always reaches the
// source instance that runs now (one arriving while its source restarts
// gets 404; the poll picks its object up).
func (d *Daemon) s3Hook(name string) http.Handler {
	label := config.Source{Type: config.SourceS3, Name: name}.Label()
	d.mu.Lock()
	r := d.running[label]
	d.mu.Unlock()
	if r == nil {
		return nil
	}
	if s, ok := r.src.(*s3Source); ok {
		return s.hook
	}
	return nil
}

package daemon

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dmarcd/dmarcd/internal/config"
)

// Handler serves /metrics (Prometheus text format), /healthz (200 while the
// process runs), /readyz (200 when ClickHouse answers a ping and every
// source is connected; 503 with one line per thing not ready otherwise) and
// /hooks/s3/NAME, where an S3-compatible server POSTs the bucket event
// notifications of the s3 source NAME (ingest.S3Source.WebhookHandler).
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hooks/s3/{name}", func(w http.ResponseWriter, r *http.Request) {
		h := d.s3Hook(r.PathValue("name"))
		if h == nil {
			http.Error(w, "no s3 source named "+r.PathValue("name")+" is running", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})
	mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{Registry: d.metrics.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		problems := d.notReady(r)
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(problems, "\n"))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
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

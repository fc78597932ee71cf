package daemon

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics (Prometheus text format), /healthz (200 while the
// process runs) and /readyz (200 when ClickHouse answers a ping and every
// source is connected; 503 with one line per thing not ready otherwise).
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
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

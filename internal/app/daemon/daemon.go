// Package daemon runs dmarcd as a service (`dmarcd serve`): every configured
// source in its own goroutine, restarted with backoff when it fails, all
// feeding one ClickHouse store through one pipeline per source; an HTTP
// listener with /metrics, /healthz and /readyz; configuration reload that
// restarts only the sources whose settings changed; and a graceful stop
// that lets the inputs in hand commit within a grace period.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/dmarcd/dmarcd/internal/product/gauges"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/lib/metrics"
)

// Source is what the daemon supervises: Run works until ctx is done and
// then returns nil; an error return makes the daemon restart it with
// backoff (except ErrPermanent and ingest.ErrIMAPAuth).
type Source interface {
	Name() string
	Run(ctx context.Context) error
}

// Readier is a Source that can tell whether it is connected: nil when it
// is, else what is wrong. A Source without it is ready while Run runs.
type Readier interface {
	Ready() error
}

// ErrPermanent, wrapped in an error returned by a Source's Run, says that
// retrying cannot help (the configuration must be fixed): the source is
// not restarted until a reload changes it.
var ErrPermanent = errors.New("permanent failure")

// Timing of source restarts.
const (
	restartMin   = time.Second
	restartMax   = 5 * time.Minute
	healthyAfter = time.Minute // a run this long resets the restart backoff
)

// Options configure a Daemon.
type Options struct {
	Version string       // for dmarcd_build_info
	Logger  *slog.Logger // nil: discard
	// Level, when set, is the level of Logger's handler: Reload sets it
	// from log.level.
	Level *slog.LevelVar
}

// Daemon is the running service. Create it with New, run it with Run.
type Daemon struct {
	opt     Options
	log     *slog.Logger
	metrics *metrics.Metrics
	errs    *prometheus.CounterVec

	reloadMu sync.Mutex // one Start or Reload at a time
	cfg      config.Config
	store    *lazyStore
	ctx      context.Context // Run's: sources are started under it

	periodic  *periodic // check and attribution jobs; replaced under reloadMu
	periodicM *periodicMetrics

	mu      sync.Mutex // guards running and ping
	running map[string]*running
	ping    *pinger
}

// running is one supervised source.
type running struct {
	cfg    config.Source
	src    Source
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	active  bool  // Run is running
	lastErr error // why Run last returned
	stopped bool  // not restarted: ErrPermanent or credentials rejected
}

// New checks that every configured source can be built and returns a
// Daemon ready to Run.
func New(cfg config.Config, opt Options) (*Daemon, error) {
	if err := Check(cfg); err != nil {
		return nil, err
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{opt: opt, log: opt.Logger, cfg: cfg, running: map[string]*running{},
		metrics: metrics.New(opt.Version, cfg.OwnedDomains)}
	d.errs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmarcd_source_errors_total",
		Help: "Failures of a source: its connection failed or its run ended with an error (it is then restarted with backoff).",
	}, []string{"source"})
	d.metrics.Registry.MustRegister(d.errs, &upCollector{d: d, desc: prometheus.NewDesc("dmarcd_source_up",
		"1 when the source is connected and running, 0 otherwise.", []string{"source"}, nil)})
	d.periodicM = newPeriodicMetrics(d.metrics.Registry)
	return d, nil
}

// Metrics returns the daemon's metrics (its Registry is what /metrics serves).
func (d *Daemon) Metrics() *metrics.Metrics { return d.metrics }

// Check returns config.Problems for what the daemon cannot run with:
// an empty owned_domains (config.RequireOwnedDomains: the daemon reads a
// published rua address, which anyone can send reports to; ["*"] accepts
// every domain on purpose), and sources this build cannot run.
func Check(cfg config.Config) error {
	var ps config.Problems
	if err := cfg.RequireOwnedDomains(); err != nil {
		ps = append(ps, err.(config.Problems)...)
	}
	for _, sc := range cfg.Sources {
		if _, err := buildSource(cfg, sc, nil, nil, nil); err != nil {
			ps = append(ps, config.Problem{Key: "sources[" + sc.Name + "].type", Msg: err.Error()})
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Run serves HTTP on http.listen, runs every source until ctx is done, then
// stops fetching, waits up to shutdown_grace for the inputs in hand to
// commit, and returns. It returns an error only when it cannot start (the
// listen address is taken).
func (d *Daemon) Run(ctx context.Context) error {
	d.reloadMu.Lock()
	cfg := d.cfg
	var ln net.Listener
	if cfg.HTTP.Listen != "" {
		var err error
		if ln, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			d.reloadMu.Unlock()
			return fmt.Errorf("http.listen: %w", err)
		}
	}
	srcCtx, stopSources := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSources()
	d.ctx = srcCtx
	d.store = newLazyStore(cfg, d.log)
	d.mu.Lock()
	d.ping = newPinger(cfg.ClickHouse.DSN)
	d.mu.Unlock()
	var srv *http.Server
	if ln != nil {
		srv, ln = d.newHTTPServer(cfg, ln)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("http server", "err", err)
			}
		}()
		d.log.Info("http listening", "addr", ln.Addr().String(), "paths", "/metrics /healthz /readyz")
	}
	// Report-time gauges: computed from ClickHouse over complete report
	// windows, registered once (a reload does not change them).
	g := gauges.New(gauges.Reader{Q: d.store}, time.Duration(cfg.Gauges.Interval), cfg.Gauges.LagDays, d.log)
	g.SetDomains(d.metrics.Domains()) // owned domains only: forged ones cannot push them out
	if err := d.metrics.Registry.Register(g); err != nil {
		d.log.Warn("gauges not registered", "err", err)
	} else {
		go g.Run(srcCtx)
	}
	d.periodic = newPeriodic(cfg, d.store, d.periodicM, d.log)
	d.periodic.start(srcCtx)
	err := d.startSources(cfg)
	d.reloadMu.Unlock()
	if err != nil {
		d.log.Error("starting sources", "err", err)
	}
	d.log.Info("dmarcd serving", "version", d.opt.Version, "sources", len(cfg.Sources))

	<-ctx.Done()
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.periodic.cancel() // waited for below, while the sources stop
	grace := time.Duration(d.cfg.ShutdownGrace)
	d.log.Info("stopping: no new inputs; waiting for the inputs in hand to commit", "grace", grace)
	left := d.stopSources(nil, grace)
	if len(left) > 0 {
		d.log.Warn("stopping: sources still busy after the grace period; their inputs stay for the next start", "sources", left)
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		srv.Shutdown(sctx)
		cancel()
	}
	d.ping.close()
	d.periodic.stop()
	if len(left) == 0 {
		d.store.close()
	}
	d.log.Info("stopped")
	return nil
}

// Reload applies a new configuration: sources removed or changed are
// stopped (after the inputs in hand commit), new or changed ones started;
// a change of clickhouse, limits, owned_domains or privacy restarts every
// source with new pipelines; a change of check, attribution, dns or
// clickhouse restarts the periodic jobs. http.listen, log.format and the
// metric labels of owned_domains change only at the next start. cfg must be
// valid; on error nothing changed.
func (d *Daemon) Reload(cfg config.Config) error {
	if err := Check(cfg); err != nil {
		return err
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.ctx == nil || d.ctx.Err() != nil {
		return errors.New("daemon is not running")
	}
	old := d.cfg
	if cfg.HTTP.Listen != old.HTTP.Listen {
		d.log.Warn("reload: http.listen changes at the next start", "listening", old.HTTP.Listen, "configured", cfg.HTTP.Listen)
	}
	if cfg.Log.Format != old.Log.Format {
		d.log.Warn("reload: log.format changes at the next start")
	}
	if d.opt.Level != nil {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(cfg.Log.Level)); err == nil {
			d.opt.Level.Set(lvl)
		}
	}
	global := !reflect.DeepEqual(pipelineSettings(old), pipelineSettings(cfg))
	var stop []string
	d.mu.Lock()
	for label, r := range d.running {
		if global || !slices.ContainsFunc(cfg.Sources, r.cfg.Equal) {
			stop = append(stop, label)
		}
	}
	d.mu.Unlock()
	if len(stop) > 0 {
		d.log.Info("reload: stopping sources", "sources", stop)
		d.stopSources(stop, 0)
	}
	restartPeriodic := !reflect.DeepEqual(periodicSettings(old), periodicSettings(cfg))
	if restartPeriodic {
		d.periodic.stop()
	}
	if old.ClickHouse != cfg.ClickHouse {
		d.store.close()
		d.store = newLazyStore(cfg, d.log)
		d.mu.Lock()
		d.ping.close()
		d.ping = newPinger(cfg.ClickHouse.DSN)
		d.mu.Unlock()
	}
	d.cfg = cfg
	if restartPeriodic {
		d.periodic = newPeriodic(cfg, d.store, d.periodicM, d.log)
		d.periodic.start(d.ctx)
	}
	err := d.startSources(cfg)
	d.log.Info("reload: configuration applied", "sources", len(cfg.Sources), "restarted", len(stop))
	return err
}

// pipelineSettings is what every source's pipeline depends on.
func pipelineSettings(c config.Config) any {
	return []any{c.ClickHouse, c.OwnedDomains, c.Limits, c.Privacy, c.ReportAuth}
}

// startSources starts every source of cfg not running yet. Callers hold
// reloadMu.
func (d *Daemon) startSources(cfg config.Config) error {
	var errs []error
	var key []byte
	var verifier *enrich.Verifier // one for all sources: they share its DNS cache
	verifierBuilt := false
	for _, sc := range cfg.Sources {
		label := sc.Label()
		d.mu.Lock()
		_, ok := d.running[label]
		d.mu.Unlock()
		if ok {
			continue
		}
		if key == nil {
			k, err := cfg.PrivacyKey()
			if err != nil {
				return err
			}
			key = k
		}
		if !verifierBuilt {
			verifier, verifierBuilt = wire.ReportVerifier(cfg, d.log), true
		}
		p := d.pipeline(cfg, label, key, verifier)
		r := &running{cfg: sc, done: make(chan struct{})}
		src, err := d.newSource(cfg, sc, p, func() { d.errs.WithLabelValues(label).Inc() })
		if err != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", label, err))
			continue
		}
		r.src = src
		ctx, cancel := context.WithCancel(d.ctx)
		r.cancel = cancel
		d.mu.Lock()
		d.running[label] = r
		d.mu.Unlock()
		d.errs.WithLabelValues(label).Add(0)
		go d.supervise(ctx, label, r)
	}
	return errors.Join(errs...)
}

// stopSources stops the sources named (all when names is nil) and waits
// for them: at most grace when it is positive. It returns those still
// busy.
func (d *Daemon) stopSources(names []string, grace time.Duration) (left []string) {
	d.mu.Lock()
	var rs []*running
	var labels []string
	for label, r := range d.running {
		if names == nil || slices.Contains(names, label) {
			r.cancel()
			rs = append(rs, r)
			labels = append(labels, label)
			delete(d.running, label)
		}
	}
	d.mu.Unlock()
	var deadline <-chan time.Time
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		deadline = t.C
	}
	for i, r := range rs {
		select {
		case <-r.done:
		case <-deadline:
			for j := i; j < len(rs); j++ {
				select {
				case <-rs[j].done:
				default:
					left = append(left, labels[j])
				}
			}
			return left
		}
	}
	return nil
}

// supervise runs the source until ctx is done, restarting it with
// exponential backoff and jitter when Run returns an error.
func (d *Daemon) supervise(ctx context.Context, label string, r *running) {
	defer close(r.done)
	log := d.log.With("source", label)
	delay := time.Duration(0)
	for {
		start := time.Now()
		r.set(true, nil, false)
		err := r.src.Run(ctx)
		if ctx.Err() != nil {
			r.set(false, nil, false)
			return
		}
		if err == nil {
			err = errors.New("stopped by itself")
		}
		d.errs.WithLabelValues(label).Inc()
		if errors.Is(err, ErrPermanent) || errors.Is(err, ingest.ErrIMAPAuth) {
			r.set(false, err, true)
			log.Error("SOURCE STOPPED: not retrying until the configuration changes (fix it, then SIGHUP)", "err", err)
			return
		}
		r.set(false, err, false)
		if time.Since(start) >= healthyAfter {
			delay = 0
		}
		delay = min(max(2*delay, restartMin), restartMax)
		wait := delay/2 + rand.N(delay/2+1)
		log.Error("source failed; restarting", "err", err, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (r *running) set(active bool, err error, stopped bool) {
	r.mu.Lock()
	r.active, r.lastErr, r.stopped = active, err, stopped
	r.mu.Unlock()
}

// ready returns nil when the source runs and is connected.
func (r *running) ready() error {
	r.mu.Lock()
	active, lastErr, stopped := r.active, r.lastErr, r.stopped
	r.mu.Unlock()
	switch {
	case stopped:
		return fmt.Errorf("stopped: %v", lastErr)
	case !active && lastErr != nil:
		return fmt.Errorf("restarting after: %v", lastErr)
	case !active:
		return errors.New("not running")
	}
	if rd, ok := r.src.(Readier); ok {
		return rd.Ready()
	}
	return nil
}

// snapshot returns the running sources by label.
func (d *Daemon) snapshot() map[string]*running {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string]*running, len(d.running))
	for k, v := range d.running {
		m[k] = v
	}
	return m
}

// pipeline builds the pipeline of one source.
func (d *Daemon) pipeline(cfg config.Config, label string, key []byte, verifier *enrich.Verifier) *ingest.Pipeline {
	return ingest.New(d.store, wire.PipelineOptions(cfg, wire.Pipeline{Source: label, Key: key, Verifier: verifier,
		Observer: wire.Observer(d.metrics), Logger: d.log.With("source", label)}))
}

// upCollector exports dmarcd_source_up from the sources' readiness at each
// scrape.
type upCollector struct {
	d    *Daemon
	desc *prometheus.Desc
}

func (c *upCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *upCollector) Collect(ch chan<- prometheus.Metric) {
	for label, r := range c.d.snapshot() {
		v := 0.0
		if r.ready() == nil {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, label)
	}
}

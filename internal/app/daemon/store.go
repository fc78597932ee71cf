package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
	"github.com/dmarcd/dmarcd/store"
)

// reopenEvery bounds how often a store that could not be opened is tried
// again.
const reopenEvery = 2 * time.Second

// lazyStore is the store of every pipeline: opened at the first write and
// again after a failed open, so that the daemon starts (and stays up) while
// ClickHouse is down; the inputs meanwhile end "error" and are retried by
// their sources.
type lazyStore struct {
	dsn  string
	opts store.Options
	log  *slog.Logger

	mu      sync.Mutex
	st      *store.Store
	lastTry time.Time
	lastErr error
	closed  bool
}

func newLazyStore(cfg config.Config, log *slog.Logger) *lazyStore {
	return &lazyStore{dsn: cfg.ClickHouse.DSN, opts: wire.StoreOptions(cfg, log), log: log}
}

func (l *lazyStore) get(ctx context.Context) (*store.Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		return l.st, nil
	}
	if l.closed {
		return nil, fmt.Errorf("store closed")
	}
	if !l.lastTry.IsZero() && time.Since(l.lastTry) < reopenEvery {
		return nil, l.lastErr
	}
	l.lastTry = time.Now()
	st, err := store.Open(ctx, l.dsn, l.opts)
	if err != nil {
		l.lastErr = fmt.Errorf("clickhouse unavailable: %w", err)
		l.log.Warn("clickhouse unavailable", "err", err)
		return nil, l.lastErr
	}
	l.log.Info("clickhouse store open", "database", st.Database())
	if gaps, err := st.RollupGaps(ctx); err != nil {
		l.log.Warn("checking the rollups", "err", err)
	} else if len(gaps) > 0 {
		l.log.Warn("months of records without rollups, or with rollups of an older version: the dashboards show nothing or too few sources for them until `dmarcd rollup rebuild` runs (with no writer at work)",
			"missing", strings.Join(gaps, " "))
	}
	l.st = st
	return st, nil
}

func (l *lazyStore) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.st != nil {
		l.st.Close()
		l.st = nil
	}
}

// WriteAggregate implements ingest.Store.
func (l *lazyStore) WriteAggregate(ctx context.Context, h *aggregate.Header, meta store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	st, err := l.get(ctx)
	if err != nil {
		for { // read to the end so a broken report is still reported invalid
			if _, e := next(); e != nil {
				break
			}
		}
		return store.WriteResult{}, err
	}
	return st.WriteAggregate(ctx, h, meta, next)
}

// WriteFailure implements ingest.Store.
func (l *lazyStore) WriteFailure(ctx context.Context, key string, r *enrich.FailureReport, meta store.InputMeta) (store.WriteResult, error) {
	st, err := l.get(ctx)
	if err != nil {
		return store.WriteResult{}, err
	}
	return st.WriteFailure(ctx, key, r, meta)
}

// WriteTLSRPT implements ingest.Store.
func (l *lazyStore) WriteTLSRPT(ctx context.Context, r *tlsrpt.Report, meta store.InputMeta) (store.WriteResult, error) {
	st, err := l.get(ctx)
	if err != nil {
		return store.WriteResult{}, err
	}
	return st.WriteTLSRPT(ctx, r, meta)
}

// LogInput implements ingest.Store.
func (l *lazyStore) LogInput(ctx context.Context, in store.InputRow) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.LogInput(ctx, in)
}

// InputStatuses lets an S3 source in mode leave find its finished objects.
func (l *lazyStore) InputStatuses(ctx context.Context, names []string) (map[string]string, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return st.InputStatuses(ctx, names)
}

// pinger asks ClickHouse whether it answers, for /readyz. It has its own
// connection: the store may not be open yet.
type pinger struct {
	mu   sync.Mutex
	conn clickhouse.Conn
	err  error
}

func newPinger(dsn string) *pinger {
	p := &pinger{}
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		p.err = err
		return p
	}
	opt.Auth.Database = "default" // the database may not exist before the first write
	if opt.DialTimeout == 0 || opt.DialTimeout > 2*time.Second {
		opt.DialTimeout = 2 * time.Second
	}
	p.conn, p.err = clickhouse.Open(opt)
	return p
}

func (p *pinger) ping(ctx context.Context) error {
	p.mu.Lock()
	conn, err := p.conn, p.err
	p.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

func (p *pinger) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
		p.err = fmt.Errorf("closed")
	}
}

// Query and QueryRow make lazyStore a chsql.Querier: the readers
// (gauges.Reader) open the store on first use.
func (l *lazyStore) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return st.Query(ctx, query, args...)
}

func (l *lazyStore) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	st, err := l.get(ctx)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRow(ctx, query, args...)
}

// errRow is the row of a statement that could not run: every call returns
// err.
type errRow struct{ err error }

func (r errRow) Err() error           { return r.err }
func (r errRow) Scan(...any) error    { return r.err }
func (r errRow) ScanStruct(any) error { return r.err }

// Ping tells the sources whether the store answers, after an input's
// error: a store down ends their passes, while an input that fails alone
// is retried on its own (ingest.RetryPolicy).
func (l *lazyStore) Ping(ctx context.Context) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.Ping(ctx)
}

// BeginAttempt implements ingest.AttemptLog: the sources record the inputs
// in hand, so that one that kills the process is set aside after restarts.
func (l *lazyStore) BeginAttempt(ctx context.Context, source, id string) (int, error) {
	st, err := l.get(ctx)
	if err != nil {
		return 0, err
	}
	return st.BeginAttempt(ctx, source, id)
}

// AloneAttempt implements ingest.AttemptLog.
func (l *lazyStore) AloneAttempt(ctx context.Context, source, id string) (int, error) {
	st, err := l.get(ctx)
	if err != nil {
		return 0, err
	}
	return st.AloneAttempt(ctx, source, id)
}

// EndAttempt implements ingest.AttemptLog.
func (l *lazyStore) EndAttempt(ctx context.Context, source, id string) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.EndAttempt(ctx, source, id)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/product/summary"
	"github.com/dmarcd/dmarcd/store"
)

// openStore opens the configured store. A read-only command (summary,
// readiness, check) opens it ReadOnly: it creates nothing. An error names
// the DSN tried, where it came from and how to set it.
func openStore(ctx context.Context, e *env, readOnly bool) (*store.Store, config.Config, int) {
	cfg, err := e.config()
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd:", err)
		return nil, cfg, exitUsage
	}
	opts := wire.StoreOptions(cfg, e.logger(cfg))
	opts.ReadOnly = readOnly
	s, err := store.Open(ctx, cfg.ClickHouse.DSN, opts)
	if err != nil {
		fmt.Fprintln(e.stderr, storeError(e, cfg, err))
		return nil, cfg, exitFail
	}
	return s, cfg, exitOK
}

// storeError says what failed opening the store, which DSN was tried
// (without its password), where that DSN came from, and what to do.
func storeError(e *env, cfg config.Config, err error) string {
	dsn := redactDSN(cfg.ClickHouse.DSN)
	from := "from clickhouse.dsn in " + e.configPath
	switch {
	case os.Getenv("DMARCD_CLICKHOUSE_DSN") != "":
		from = "from DMARCD_CLICKHOUSE_DSN"
	case os.Getenv("DMARCD_CLICKHOUSE_DSN_FILE") != "" || cfg.ClickHouse.DSNFile != "":
		from = "from the DSN file"
	case e.configPath == "" || cfg.ClickHouse.DSN == store.DefaultDSN:
		from = "the default"
	}
	msg := fmt.Sprintf("dmarcd: ClickHouse at %s (%s): %v", dsn, from, err)
	if errors.Is(err, store.ErrNoDatabase) || errors.Is(err, store.ErrSchemaBehind) {
		return msg
	}
	return msg + "\n  set DMARCD_CLICKHOUSE_DSN=clickhouse://USER:PASSWORD@HOST:9000/DATABASE (native protocol), or clickhouse.dsn in the file named by --config, to a server that answers"
}

// redactDSN is dsn with its password replaced, for messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(an unparsable DSN)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

func runMigrate(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "migrate")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	s, _, code := openStore(ctx, e, false) // Open runs the migrations
	if s == nil {
		return code
	}
	defer s.Close()
	fmt.Fprintln(e.stdout, "migrations applied")
	gaps, err := s.RollupGaps(ctx)
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd migrate: checking the rollups:", err)
		return exitFail
	}
	if len(gaps) > 0 {
		fmt.Fprintf(e.stdout, "months of records without rollups, or with rollups of an older version (%s): the dashboards show nothing or too few sources for them; run `dmarcd rollup rebuild` once, with no writer at work\n",
			strings.Join(gaps, " "))
	}
	return exitOK
}

func runPrune(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "prune")
	older := fs.String("older-than", "", "drop monthly partitions whose reports all began before now minus this (e.g. 400d); default: the retention key")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	s, cfg, code := openStore(ctx, e, false)
	if s == nil {
		return code
	}
	defer s.Close()
	d := time.Duration(cfg.Retention)
	if *older != "" {
		var err error
		if d, err = config.ParseDuration(*older); err != nil {
			fmt.Fprintln(e.stderr, "dmarcd prune: --older-than:", err)
			return exitUsage
		}
	}
	if d <= 0 {
		fmt.Fprintln(e.stderr, "dmarcd prune: give --older-than (e.g. 400d) or set retention in the configuration")
		return exitUsage
	}
	dropped, err := s.Prune(ctx, d)
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd prune:", err)
		return exitFail
	}
	fmt.Fprintf(e.stdout, "dropped %d partition(s): %s\n", len(dropped), strings.Join(dropped, " "))
	return exitOK
}

func runSummary(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "summary")
	days := fs.Int("days", defaultDays, "look at reports that began in the last N days")
	all := fs.Bool("all", false, "every report, whatever its date")
	asJSON := fs.Bool("json", false, "JSON output")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	s, _, code := openStore(ctx, e, true)
	if s == nil {
		return code
	}
	defer s.Close()
	since := time.Now().UTC().AddDate(0, 0, -*days)
	if *all {
		since = time.Unix(0, 0).UTC()
	}
	sum, err := summary.Read(ctx, s, since)
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd summary:", err)
		return exitFail
	}
	if *asJSON {
		_ = json.NewEncoder(e.stdout).Encode(sum)
		return exitOK
	}
	printSummary(e, sum)
	return exitOK
}

func pct(n, d uint64) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(d))
}

func printSummary(e *env, sum []summary.DomainSummary) {
	if len(sum) == 0 {
		fmt.Fprintln(e.stdout, "no reports in that period")
		return
	}
	for _, d := range sum {
		fmt.Fprintf(e.stdout, "%s\n", d.Domain)
		fmt.Fprintf(e.stdout, "  messages            %d\n", d.Messages)
		fmt.Fprintf(e.stdout, "  DMARC pass          %s (as published)\n", pct(d.DMARCPass, d.Messages))
		fmt.Fprintf(e.stdout, "  DKIM aligned        relaxed %s, strict %s\n", pct(d.DKIMRelaxed, d.Messages), pct(d.DKIMStrict, d.Messages))
		fmt.Fprintf(e.stdout, "  SPF aligned         relaxed %s, strict %s\n", pct(d.SPFRelaxed, d.Messages), pct(d.SPFStrict, d.Messages))
		fmt.Fprintf(e.stdout, "  p=quarantine/reject would act on %d messages (%s)\n", d.WouldQuarantineOrReject, pct(d.WouldQuarantineOrReject, d.Messages))
		if len(d.TopFailing) > 0 {
			fmt.Fprintln(e.stdout, "  top failing sources:")
			for _, s := range d.TopFailing {
				fmt.Fprintf(e.stdout, "    %-40s %d\n", s.SourceIP, s.Messages)
			}
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/dmarcd/dmarcd/internal/app/daemon"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/lib/metrics"
)

// defaultServeConfig is read by `dmarcd serve` when no --config (or
// DMARCD_CONFIG) names a file and it exists.
const defaultServeConfig = "/etc/dmarcd/dmarcd.yaml"

// runServe runs the daemon until SIGTERM or SIGINT; SIGHUP reloads the
// configuration.
func runServe(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "serve")
	check := fs.Bool("check-config", false, "validate the configuration, print every problem (exit 2) or ok (exit 0) after any warnings, and exit")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(e.stderr, "usage: dmarcd serve [--config FILE] [--check-config]")
		return exitUsage
	}
	path := &e.configPath // --config before or after "serve", or DMARCD_CONFIG
	if *path == "" {
		if _, err := os.Stat(defaultServeConfig); err == nil {
			*path = defaultServeConfig
		}
	}
	if *check && *path == "" {
		fmt.Fprintln(e.stderr, noConfigFile)
	}
	cfg, problems := loadServeConfig(*path)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(e.stderr, p)
		}
		if *check {
			fmt.Fprintf(e.stderr, "%d problem(s) in %s\n", len(problems), orDefaults(*path))
		}
		return exitUsage
	}
	if *check {
		for _, w := range cfg.Warnings() {
			fmt.Fprintln(e.stderr, "warning:", w)
		}
		fmt.Fprintln(e.stdout, "ok")
		return exitOK
	}

	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	if cfg.Log.Format == "json" {
		log = slog.New(slog.NewJSONHandler(e.stderr, opts))
	} else {
		log = slog.New(slog.NewTextHandler(e.stderr, opts))
	}
	d, err := daemon.New(cfg, daemon.Options{Version: version, Logger: log, Level: level})
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd serve:", err)
		return exitUsage
	}
	log.Info("configuration loaded", "file", orDefaults(*path))
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}
	if cfg.AcceptsAllDomains() {
		log.Warn(fmt.Sprintf(`owned_domains is ["*"]: reports for every policy domain are stored; metrics label only the first `+
			`%d domains seen, the rest as "other" (list your domains to keep forged ones out)`, metrics.MaxDomains))
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			cfg, problems := loadServeConfig(*path)
			if len(problems) > 0 {
				for _, p := range problems {
					log.Error("reload: keeping the running configuration", "problem", p)
				}
				continue
			}
			log.Info("reload: SIGHUP", "file", orDefaults(*path))
			if err := d.Reload(cfg); err != nil {
				log.Error("reload", "err", err)
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		log.Error("dmarcd serve", "err", err)
		return exitFail
	}
	return exitOK
}

// loadServeConfig loads and checks the configuration, returning every
// problem found.
func loadServeConfig(path string) (config.Config, []string) {
	cfg, err := wire.LoadConfig(path)
	if err == nil {
		err = daemon.Check(cfg)
	}
	if err == nil {
		return cfg, nil
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		return cfg, []string{err.Error()}
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Error()
	}
	return cfg, out
}

// noConfigFile is what --check-config says when no file was named or
// found: only the defaults and the environment were checked.
const noConfigFile = "no configuration file: checked the defaults and the environment only (name one with --config or DMARCD_CONFIG; " + defaultServeConfig + " does not exist)"

func orDefaults(path string) string {
	if path == "" {
		return "(defaults and environment only)"
	}
	return path
}

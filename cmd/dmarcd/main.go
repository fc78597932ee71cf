// Command dmarcd ingests DMARC aggregate reports (and, as they land, failure
// and SMTP TLS reports) into ClickHouse, exactly once, with alignment
// recomputed under relaxed and strict rules.
//
// Usage:
//
//	dmarcd ingest [--json] PATH...   store the reports found in files, folders, mboxes, Maildirs or - (stdin)
//	dmarcd parse [--json|--csv] PATH... print parsed reports without storing them
//	dmarcd migrate                   create the database and apply schema migrations
//	dmarcd prune --older-than 400d   drop whole monthly partitions older than the cutoff
//	dmarcd summary [--days 30]       per-domain summary: volume, pass rates, what enforcement would block
//	dmarcd readiness [DOMAIN...]     is p=quarantine/reject, adkim=s/aspf=s safe? which sources to fix first
//	dmarcd check DOMAIN...           DNS posture: DMARC, SPF lookups, DKIM keys of seen selectors, rua authorisation
//	dmarcd serve [--check-config]    the daemon: IMAP, spool and S3 sources, /metrics /healthz /readyz; SIGHUP reloads
//	dmarcd version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/dmarcd/dmarcd/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exit codes
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, env *env, args []string) int
}

// env is what every subcommand gets: where to write, the config path.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	configPath     string
}

func (e *env) config() (config.Config, error) { return config.Load(e.configPath) }

func (e *env) logger(c config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}

func commands() []command {
	return []command{
		{"ingest", "ingest [--json] PATH...", runIngest},
		{"parse", "parse [--json|--csv] PATH...", runParse},
		{"migrate", "migrate", runMigrate},
		{"prune", "prune --older-than 400d", runPrune},
		{"rollup", "rollup rebuild [--partition YYYYMM]...", runRollup},
		{"summary", "summary [--days N] [--json]", runSummary},
		{"readiness", "readiness [--days N] [--json] [--senders FILE] [DOMAIN...]", runReadiness},
		{"check", "check [--resolver HOST:PORT] [--timeout 3s] [--json] [--no-store] DOMAIN...", runCheck},
		{"serve", "serve [--config FILE] [--check-config]", runServe},
		{"version", "version", func(_ context.Context, e *env, _ []string) int {
			fmt.Fprintln(e.stdout, "dmarcd", version)
			return exitOK
		}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}))
}

func run(ctx context.Context, args []string, e *env) int {
	fs := flag.NewFlagSet("dmarcd", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&e.configPath, "config", os.Getenv("DMARCD_CONFIG"), "configuration file (YAML); env DMARCD_CONFIG")
	fs.Usage = func() { usage(e.stderr, fs) }
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		usage(e.stderr, fs)
		return exitUsage
	}
	name := fs.Arg(0)
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, e, fs.Args()[1:])
		}
	}
	fmt.Fprintf(e.stderr, "dmarcd: unknown command %q\n", name)
	usage(e.stderr, fs)
	return exitUsage
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: dmarcd [--config FILE] COMMAND [ARGS]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintln(w, "  dmarcd", c.usage)
	}
	fmt.Fprintln(w, "\nglobal flags:")
	fs.PrintDefaults()
}

// subFlags returns a FlagSet for a subcommand that prints errors to stderr.
func subFlags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("dmarcd "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

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
//	dmarcd rollup rebuild            recompute the dashboards' rollup tables from the stored records
//	dmarcd serve [--check-config]    the daemon: IMAP, spool and S3 sources, /metrics /healthz /readyz; SIGHUP reloads
//	dmarcd version                   print the version (also --version)
//	dmarcd help [COMMAND]            usage of dmarcd or of one command (also --help, -h)
//
// Flags may come before or after the arguments ("--" ends the flags);
// --config FILE is accepted before the command and by every command that
// reads the configuration.
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
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exit codes
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// command is one subcommand: its synopsis, what it does, an example, and
// whether it reads the configuration (and so accepts --config).
type command struct {
	name     string
	usage    string // the synopsis after "dmarcd "
	summary  string // one line: what it does
	example  string // one or more command lines, each starting with "dmarcd "
	noConfig bool   // reads no configuration: no --config flag
	run      func(ctx context.Context, env *env, args []string) int
}

// env is what every subcommand gets: where to write, the config path.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	configPath     string
}

func (e *env) config() (config.Config, error) { return wire.LoadConfig(e.configPath) }

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
		{name: "ingest", usage: "ingest [--json] [--source NAME] PATH...|imap://...|s3://...",
			summary: "store the reports found in files, folders, mboxes, Maildirs, - (stdin), a mailbox or a bucket",
			example: "dmarcd ingest --json ~/Maildir/.DMARC", run: runIngest},
		{name: "parse", usage: "parse [--json|--csv] PATH...",
			summary: "print the aggregate reports found in PATH without storing them (JSON schema: docs/parse-json.md)",
			example: "dmarcd parse --csv report.xml.gz > records.csv", run: runParse},
		{name: "migrate", usage: "migrate",
			summary: "create the database and apply the schema migrations", example: "dmarcd migrate", run: runMigrate},
		{name: "prune", usage: "prune [--older-than 400d]",
			summary: "drop whole monthly partitions older than the cutoff", example: "dmarcd prune --older-than 400d", run: runPrune},
		{name: "rollup", usage: "rollup rebuild [--partition YYYYMM]...",
			summary: "recompute the dashboards' rollup tables from the stored records",
			example: "dmarcd rollup rebuild --partition 202501", run: runRollup},
		{name: "summary", usage: "summary [--days N|--all] [--json]",
			summary: "per policy domain: volume, pass rates, what enforcement would act on",
			example: "dmarcd summary --days 7", run: runSummary},
		{name: "readiness", usage: "readiness [--days N] [--json] [--senders FILE] [--include-failed-auth] [DOMAIN...]",
			summary: "is p=quarantine/reject or strict alignment safe? which sources to fix first (docs/readiness.md)",
			example: "dmarcd readiness example.com --days 7", run: runReadiness},
		{name: "check", usage: "check [--resolver HOST:PORT] [--timeout 3s] [--json] [--no-store] DOMAIN...",
			summary: "DNS posture: DMARC, SPF lookups, DKIM keys of the selectors seen, rua authorisation (docs/check.md)",
			example: "dmarcd check example.com", run: runCheck},
		{name: "serve", usage: "serve [--config FILE] [--check-config]",
			summary: "the daemon: IMAP, spool and S3 sources, /metrics /healthz /readyz; SIGHUP reloads",
			example: "dmarcd serve --config /etc/dmarcd/dmarcd.yaml --check-config", run: runServe},
		{name: "version", usage: "version", summary: "print the version", example: "dmarcd version", noConfig: true, run: runVersion},
		{name: "help", usage: "help [COMMAND]", summary: "print the usage of dmarcd or of one command",
			example: "dmarcd help readiness", noConfig: true, run: runHelp},
	}
}

// lookup returns the command called name.
func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}))
}

// run parses the global flags (they end at the command's name) and runs the
// command. --help and --version print on stdout and exit 0.
func run(ctx context.Context, args []string, e *env) int {
	fs := flag.NewFlagSet("dmarcd", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {}
	fs.StringVar(&e.configPath, "config", os.Getenv("DMARCD_CONFIG"), "configuration file (YAML); env DMARCD_CONFIG")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(e.stdout, fs)
			return exitOK
		}
		fmt.Fprintln(e.stderr, "usage: dmarcd [--config FILE] COMMAND [ARGS]; dmarcd help lists the commands")
		return exitUsage
	}
	if *showVersion {
		return runVersion(ctx, e, nil)
	}
	if fs.NArg() == 0 {
		usage(e.stderr, fs)
		return exitUsage
	}
	name := fs.Arg(0)
	if c, ok := lookup(name); ok {
		return c.run(ctx, e, fs.Args()[1:])
	}
	fmt.Fprintf(e.stderr, "dmarcd: unknown command %q; dmarcd help lists the commands\n", name)
	return exitUsage
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: dmarcd [--config FILE] COMMAND [ARGS]\n\ncommands:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nglobal flags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nFlags may come before or after the arguments. dmarcd help COMMAND (or dmarcd COMMAND --help) shows a command's flags and an example.")
}

// runVersion prints "dmarcd VERSION".
func runVersion(_ context.Context, e *env, args []string) int {
	fs := subFlags(e, "version")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintln(e.stdout, "dmarcd", version)
	return exitOK
}

// runHelp is `dmarcd help [COMMAND]`: the usage of dmarcd, or the --help
// of one command, on stdout.
func runHelp(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "help")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	args = fs.Args()
	if len(args) == 0 {
		fs := flag.NewFlagSet("dmarcd", flag.ContinueOnError)
		fs.String("config", "", "configuration file (YAML); env DMARCD_CONFIG")
		fs.Bool("version", false, "print the version and exit")
		usage(e.stdout, fs)
		return exitOK
	}
	c, ok := lookup(args[0])
	if !ok || len(args) > 1 {
		fmt.Fprintf(e.stderr, "dmarcd help: no command %q; dmarcd help lists the commands\n", strings.Join(args, " "))
		return exitUsage
	}
	return c.run(ctx, e, []string{"--help"})
}

// flags is a subcommand's flag set: the standard flag package, with flags
// accepted after the arguments too, --config on every command that reads
// the configuration, and a --help on stdout.
type flags struct {
	*flag.FlagSet
	cmd command
	e   *env
}

// subFlags returns the flag set of the named command (for "rollup
// rebuild", of rollup). Errors go to stderr, --help to stdout.
func subFlags(e *env, name string) *flags {
	c, _ := lookup(strings.Fields(name)[0])
	fs := flag.NewFlagSet("dmarcd "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {} // parseFlags prints the help or the error's hint
	if !c.noConfig {
		help := "configuration file (YAML); env DMARCD_CONFIG; also accepted before the command"
		if c.name == "serve" {
			help += "; default " + defaultServeConfig + " if it exists"
		}
		fs.StringVar(&e.configPath, "config", e.configPath, help)
	}
	return &flags{FlagSet: fs, cmd: c, e: e}
}

// parseFlags parses args, flags before or after the arguments. It returns
// (exit code, false) when the command should end now: after --help
// (printed on stdout, exit 0) or a bad flag (exit 2).
func parseFlags(fs *flags, args []string) (int, bool) {
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.help(fs.e.stdout)
			return exitOK, false
		}
		fmt.Fprintf(fs.e.stderr, "usage: dmarcd %s\n(dmarcd %s --help lists the flags)\n", fs.cmd.usage, fs.cmd.name)
		return exitUsage, false
	}
	return 0, true
}

// parse is flag.FlagSet.Parse with the flags allowed anywhere: each
// argument that is not a flag is set aside and parsing goes on after it,
// until "--" (everything after it is an argument). Afterwards Args() are
// the arguments in their order.
func (fs *flags) parse(args []string) error {
	var pos []string
	for {
		if err := fs.FlagSet.Parse(args); err != nil {
			return err
		}
		rest := fs.FlagSet.Args()
		used := len(args) - len(rest)
		if used > 0 && args[used-1] == "--" && (used < 2 || !fs.takesValue(args[used-2])) {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	return fs.FlagSet.Parse(append([]string{"--"}, pos...))
}

// takesValue reports whether arg is a flag of fs that takes the next
// argument as its value (not a boolean flag, no "=").
func (fs *flags) takesValue(arg string) bool {
	if len(arg) < 2 || arg[0] != '-' || strings.Contains(arg, "=") {
		return false
	}
	f := fs.Lookup(strings.TrimLeft(arg, "-"))
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// help prints the command's usage, what it does, its flags and an example.
func (fs *flags) help(w io.Writer) {
	c := fs.cmd
	fmt.Fprintf(w, "usage: dmarcd %s\n\n%s.\n", c.usage, upperFirst(c.summary))
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags (before or after the arguments):")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(fs.e.stderr)
	}
	fmt.Fprintf(w, "\nexample:\n  %s\n", c.example)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

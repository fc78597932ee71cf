package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// unreachableDSN is a ClickHouse DSN nothing answers on (port 1 is
// refused at once).
const unreachableDSN = "clickhouse://127.0.0.1:1/dmarc"

// TestHelpAndVersionPrintOnStdoutAndExitZero pins the CLI conventions:
// --help, -h and help print the usage on stdout with every command, exit 0;
// --version and version print the version.
func TestHelpAndVersionPrintOnStdoutAndExitZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, errOut, code := runCmd(t, args...)
		if code != exitOK || errOut != "" || !strings.HasPrefix(out, "usage: dmarcd") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want the usage on stdout, exit 0", args, code, firstLine(out), errOut)
		}
		for _, c := range commands() {
			if !strings.Contains(out, "\n  "+c.name+" ") {
				t.Errorf("%v: command %s not listed:\n%s", args, c.name, out)
			}
		}
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, _, code := runCmd(t, args...)
		if code != exitOK || out != "dmarcd "+version+"\n" {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
	if _, errOut, code := runCmd(t); code != exitUsage || !strings.Contains(errOut, "usage:") {
		t.Errorf("no command: exit %d, stderr %q; want the usage on stderr, exit 2", code, errOut)
	}
}

// TestEveryCommandHasHelpWithItsFlagsAndAnExample: `dmarcd help CMD` and
// `dmarcd CMD --help` print the same help on stdout, exit 0: the synopsis,
// every flag (--config for each command that reads the configuration) and
// an example.
func TestEveryCommandHasHelpWithItsFlagsAndAnExample(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", unreachableDSN)
	for _, c := range commands() {
		help, errOut, code := runCmd(t, "help", c.name)
		if code != exitOK || errOut != "" {
			t.Errorf("help %s: exit %d, stderr %q", c.name, code, errOut)
			continue
		}
		if c.name != "help" {
			own, _, code := runCmd(t, c.name, "--help")
			if code != exitOK || own != help {
				t.Errorf("%s --help: exit %d, differs from help %s:\n%s", c.name, code, c.name, own)
			}
		}
		if !strings.HasPrefix(help, "usage: dmarcd "+c.name) || !strings.Contains(help, "\nexample:\n  dmarcd "+c.name) {
			t.Errorf("help %s: want the synopsis and an example:\n%s", c.name, help)
		}
		if !c.noConfig && !strings.Contains(help, "  -config string") {
			t.Errorf("help %s: no --config:\n%s", c.name, help)
		}
		for _, flag := range regexp.MustCompile(`\[--([a-z-]+)`).FindAllStringSubmatch(c.usage, -1) {
			if !strings.Contains(help, "  -"+flag[1]) {
				t.Errorf("help %s: flag --%s of the synopsis not described:\n%s", c.name, flag[1], help)
			}
		}
	}
}

// TestFlagsWorkBeforeAndAfterTheArguments: a flag after the arguments is a
// flag, not an argument and not silently ignored; "--" ends the flags; "-"
// (standard input) is an argument.
func TestFlagsWorkBeforeAndAfterTheArguments(t *testing.T) {
	cases := []struct {
		args []string
		days int
		json bool
		pos  []string
	}{
		{[]string{"example.com", "--days", "7"}, 7, false, []string{"example.com"}},
		{[]string{"--days", "7", "example.com", "--json", "example.org"}, 7, true, []string{"example.com", "example.org"}},
		{[]string{"a", "--days=3", "-", "--", "--json", "b"}, 3, false, []string{"a", "-", "--json", "b"}},
		{[]string{"--days", "--"}, 0, false, nil}, // "--" as a flag's value is not the end of the flags
	}
	for _, c := range cases {
		fs := subFlags(&env{stdout: io.Discard, stderr: io.Discard}, "readiness")
		days := fs.Int("days", 30, "")
		asJSON := fs.Bool("json", false, "")
		err := fs.parse(c.args)
		if c.days == 0 {
			if err == nil {
				t.Errorf("%q: want an error for --days --", c.args)
			}
			continue
		}
		if err != nil || *days != c.days || *asJSON != c.json || !slices.Equal(fs.Args(), c.pos) {
			t.Errorf("%q: err %v, days %d, json %v, args %q; want %d %v %q", c.args, err, *days, *asJSON, fs.Args(), c.days, c.json, c.pos)
		}
	}

	// The commands themselves: readiness reads --days after its domain
	// (0 is refused before any store is opened), ingest reads --json after
	// its path, parse reads --csv after its path.
	t.Setenv("DMARCD_CLICKHOUSE_DSN", unreachableDSN)
	if _, errOut, code := runCmd(t, "readiness", "example.com", "--days", "0"); code != exitUsage || !strings.Contains(errOut, "--days must be positive") {
		t.Errorf("readiness example.com --days 0: exit %d, %q; want --days read", code, errOut)
	}
	gz := filepath.Join(corpus.Dir(t), "domainaware__parsedmarc/aggregate/nice-input.xml.gz")
	out, errOut, _ := runCmd(t, "ingest", gz, "--json")
	var o outcome
	if err := json.Unmarshal([]byte(out), &o); err != nil || o.Input != gz || strings.Count(out, "\n") != 1 {
		t.Errorf("ingest FILE --json: want one JSON line for FILE, got %q (stderr %q)", out, errOut)
	}
	out, _, code := runCmd(t, "parse", gz, "--csv")
	if code != exitOK || !strings.HasPrefix(out, "input,report_key,") {
		t.Errorf("parse FILE --csv: exit %d, %q", code, firstLine(out))
	}
}

// TestConfigIsAcceptedByEveryCommandThatReadsIt: --config after the
// command name is read (here a file that does not exist: exit 2 naming it),
// never "flag provided but not defined".
func TestConfigIsAcceptedByEveryCommandThatReadsIt(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	args := map[string][]string{"ingest": {"x.xml"}, "parse": {"x.xml"}, "rollup": {"rebuild"}, "check": {"example.com"}}
	for _, c := range commands() {
		if c.noConfig {
			continue
		}
		a := append(append([]string{c.name}, args[c.name]...), "--config", missing)
		_, errOut, code := runCmd(t, a...)
		if code != exitUsage || !strings.Contains(errOut, missing) || strings.Contains(errOut, "not defined") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 naming %s", a, code, errOut, missing)
		}
	}
}

// TestIngestJSONOnAMissingPathPrintsInputUnreadable: a path that does not
// exist is an input of its own, status invalid with reason_code
// input_unreadable, in the JSON stream like any other; the next path is
// still read.
func TestIngestJSONOnAMissingPathPrintsInputUnreadable(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", unreachableDSN)
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-file.eml")
	note := filepath.Join(dir, "note.txt")
	if err := os.WriteFile(note, []byte("not a report\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCmd(t, "ingest", "--json", missing, note)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines (the missing path, then the note), got %q; stderr %q", out, errOut)
	}
	var o outcome
	if err := json.Unmarshal([]byte(lines[0]), &o); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	if o.Input != missing || o.Status != "invalid" || o.ReasonCode != "input_unreadable" || !strings.Contains(o.Reason, "no such file") {
		t.Errorf("missing path: %+v", o)
	}
	if code != exitOK {
		t.Errorf("exit %d: an invalid input is accounted for, not a failure of the run", code)
	}
}

// TestAReadOnlyCommandNamesTheDSNAndHowToSetIt: with nothing listening,
// summary says which DSN it tried (its password hidden), where the DSN
// came from and how to set DMARCD_CLICKHOUSE_DSN; not "creating database".
func TestAReadOnlyCommandNamesTheDSNAndHowToSetIt(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "clickhouse://reader:s3cret@127.0.0.1:1/dmarc")
	for _, cmd := range []string{"summary", "readiness"} {
		_, errOut, code := runCmd(t, cmd)
		if code != exitFail {
			t.Errorf("%s: exit %d", cmd, code)
		}
		for _, want := range []string{"clickhouse://reader:xxxxx@127.0.0.1:1/dmarc", "from DMARCD_CLICKHOUSE_DSN", "set DMARCD_CLICKHOUSE_DSN="} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", cmd, want, errOut)
			}
		}
		if strings.Contains(errOut, "s3cret") || strings.Contains(errOut, "creating database") {
			t.Errorf("%s: stderr shows the password or talks of creating:\n%s", cmd, errOut)
		}
	}
}

// TestAReadCreatesNothing: summary and readiness on a DSN whose database
// does not exist say so and leave the server as it was; after migrate
// they answer.
func TestAReadCreatesNothing(t *testing.T) {
	dsn := testenv.ClickHouse(t)
	t.Setenv("DMARCD_CLICKHOUSE_DSN", dsn)
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := opts.Auth.Database
	opts.Auth.Database = "default"
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exists := func() bool {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	for _, cmd := range []string{"summary", "readiness"} {
		_, errOut, code := runCmd(t, cmd)
		if code != exitFail || !strings.Contains(errOut, "database "+db+" does not exist") {
			t.Errorf("%s: exit %d, stderr %q; want it to say the database does not exist", cmd, code, errOut)
		}
	}
	if exists() {
		t.Fatalf("database %s created by a read", db)
	}
	if _, errOut, code := runCmd(t, "migrate"); code != exitOK {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	if out, errOut, code := runCmd(t, "summary"); code != exitOK || !strings.Contains(out, "no reports") {
		t.Errorf("summary after migrate: exit %d, %q %q", code, out, errOut)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

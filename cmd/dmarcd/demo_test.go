package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// TestREADMEWalkthroughIsWhatMakeDemoPrints runs what scripts/demo.sh runs
// (the same generated set, ingest, then readiness for example.com with the
// demo's known-sources file) and holds the README to it: the ingest summary
// line shows the generator's totals (duplicates apart), no log line comes
// between the sections at the demo's log level, and the walkthrough's
// messages, what-if and source rows are the figures readiness prints.
func TestREADMEWalkthroughIsWhatMakeDemoPrints(t *testing.T) {
	script, err := os.ReadFile("../../scripts/demo.sh")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(script)), "\n")
	if !strings.Contains(lines[len(lines)-1], "bin/dmarcd readiness example.com --senders") || !strings.Contains(string(script), "DMARCD_LOG_LEVEL=warn") {
		t.Fatalf("scripts/demo.sh must end with readiness for example.com and keep INFO logs out of its sections; it ends %q", lines[len(lines)-1])
	}

	// bin/dmarcd-gen -out DIR -days 14 -seed 1 -domain example.com
	dir := t.TempDir()
	files, err := gen.Generate(gen.Options{Domain: "example.com", Days: 14, Seed: 1, Scale: 1,
		Start: time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -14)})
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.WriteDir(dir, files); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "MANIFEST.tsv")); err != nil {
		t.Fatal(err)
	}
	truth := gen.Summarize(files)

	t.Setenv("DMARCD_CLICKHOUSE_DSN", testenv.ClickHouse(t))
	t.Setenv("DMARCD_LOG_LEVEL", "warn")
	t.Setenv("DMARCD_OWNED_DOMAINS", "example.com,example.org")
	t.Setenv("DMARCD_CONFIG", "")
	out, errOut, code := runCmd(t, "ingest", dir)
	if code != exitOK || errOut != "" {
		t.Fatalf("ingest: exit %d, stderr (between the demo's sections) %q", code, errOut)
	}
	sum := lastLine(out)
	want := regexp.MustCompile(`; stored (\d+) records, (\d+) messages \(duplicates not counted again: (\d+) records, (\d+) messages\)`)
	got := want.FindStringSubmatch(sum)
	inReadme := want.FindStringSubmatch(strings.Join(strings.Fields(string(readme)), " "))
	if got == nil || inReadme == nil || strings.Join(got[1:], " ") != strings.Join(inReadme[1:], " ") {
		t.Errorf("ingest summary %q; README's example line %q", sum, inReadme)
	}
	if got != nil && (got[1] != fmt.Sprint(truth.Records) || got[2] != fmt.Sprint(truth.Messages)) {
		t.Errorf("ingest stored %s records, %s messages; the generator wrote %d, %d (without duplicates)", got[1], got[2], truth.Records, truth.Messages)
	}

	out, errOut, code = runCmd(t, "readiness", "example.com", "--senders", "../../scripts/demo-known-sources.yaml")
	if code != exitOK || errOut != "" {
		t.Fatalf("readiness: exit %d, stderr %q", code, errOut)
	}
	block := string(readme)
	i := strings.Index(block, "$ dmarcd readiness example.com --senders scripts/demo-known-sources.yaml\n")
	if i < 0 {
		t.Fatal("README has no walkthrough block of `dmarcd readiness example.com --senders scripts/demo-known-sources.yaml`")
	}
	block = block[i:]
	block = block[:strings.Index(block, "```")]
	if w, g := figures(block), figures(out); strings.Join(w, "\n") != strings.Join(g, "\n") {
		t.Errorf("README walkthrough figures differ from what make demo prints:\nREADME:\n%s\nprinted:\n%s\nfull output:\n%s",
			strings.Join(w, "\n"), strings.Join(g, "\n"), out)
	}
}

// figures are the walkthrough's figures in readiness output, whatever its
// layout (lines may wrap, columns move): the messages line, each what-if,
// and each source row's class, From and messages (its example IPs of equal
// rank may come in any order).
func figures(s string) []string {
	var l []string
	flat := strings.Join(strings.Fields(s), " ")
	for _, re := range []string{
		`messages \d+: aligned \d+ \([0-9.]+%\), forwarded \d+, misaligned \d+, unauthenticated \d+`,
		`what if [^:]+: rejected \d+, quarantined \d+ \(legitimate \d+, forwarded \d+, unauthenticated \d+\)`,
		`what if [^:]+: \d+ messages passing today would fail`,
	} {
		l = append(l, regexp.MustCompile(re).FindAllString(flat, -1)...)
	}
	cols := regexp.MustCompile(`\s{2,}`)
	row := regexp.MustCompile(`^(aligned|misaligned|forwarded|unauthenticated)`)
	domain := regexp.MustCompile(`^[a-z0-9-]+(\.[a-z0-9-]+)+$`)
	number := regexp.MustCompile(`^\d+$`)
	for _, line := range strings.Split(s, "\n") {
		f := cols.Split(strings.TrimSpace(line), -1)
		if !row.MatchString(f[0]) || len(f) < 3 {
			continue
		}
		from, msgs := "", ""
		for _, c := range f[1:] {
			if from == "" && msgs == "" && domain.MatchString(c) {
				from = c
			} else if number.MatchString(c) {
				msgs = c
				break
			}
		}
		l = append(l, f[0]+" | "+from+" | "+msgs)
	}
	return l
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

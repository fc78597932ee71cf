// Command dmarcd-gen writes a realistic, deterministic set of DMARC aggregate
// report mails and files (see package internal/testkit/gen) into a folder, with a
// MANIFEST.tsv, and prints a one-line summary.
//
//	dmarcd-gen -out DIR [-days 14] [-seed 1] [-domain example.com] [-scale 1] [-start 2025-03-03]
//	dmarcd-gen -large N -out FILE [-seed 1]    one N-record aggregate report (benchmarks)
//
// Without -start the set ends yesterday (UTC), so dashboards show it as
// recent; give -start for byte-identical output on every run.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/gen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dmarcd-gen:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("dmarcd-gen", flag.ContinueOnError)
	out := fs.String("out", "", "folder to write the set into (required)")
	days := fs.Int("days", 14, "number of report days")
	seed := fs.Int64("seed", 1, "random seed: the same seed and options give the same files")
	domain := fs.String("domain", "example.com", "policy domain")
	scale := fs.Int("scale", 1, "multiplies message and record counts")
	start := fs.String("start", "", "first day, YYYY-MM-DD (UTC); default: the set ends yesterday")
	large := fs.Int("large", 0, "write one aggregate report with this many records to the file -out instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *large > 0 {
		return writeLarge(*out, *large, *seed)
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("-out is required and there are no arguments")
	}
	var first time.Time
	if *start != "" {
		t, err := time.Parse(time.DateOnly, *start)
		if err != nil {
			return fmt.Errorf("-start %q: want YYYY-MM-DD", *start)
		}
		first = t
	} else {
		first = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -*days)
	}
	files, err := gen.Generate(gen.Options{Domain: *domain, Days: *days, Seed: *seed, Start: first, Scale: *scale})
	if err != nil {
		return err
	}
	if err := gen.WriteDir(*out, files); err != nil {
		return err
	}
	t := gen.Summarize(files)
	dups := 0
	for _, f := range files {
		for _, r := range f.Reports {
			if r.Duplicate {
				dups++
			}
		}
	}
	var doms []string
	for d, dt := range t.PerDomain {
		doms = append(doms, fmt.Sprintf("%s=%d/%d", d, dt.DMARCPassRelaxed, dt.Messages))
	}
	sort.Strings(doms)
	fmt.Printf("wrote %d files to %s: %d reports (%d duplicate deliveries), %d records, %d messages, from %s, dmarc pass %s\n",
		len(files), *out, t.Reports, dups, t.Records, t.Messages, first.Format(time.DateOnly), strings.Join(doms, " "))
	return nil
}

func writeLarge(path string, records int, seed int64) error {
	if path == "" {
		return fmt.Errorf("-large needs -out FILE")
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := gen.WriteLargeReport(w, records, seed); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

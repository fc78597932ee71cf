package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dmarcd/dmarcd/internal/readiness"
	"github.com/dmarcd/dmarcd/store"
)

// runReadiness is `dmarcd readiness [--days 30] [--json] [--senders FILE]
// [DOMAIN...]`: per policy domain, what p=quarantine / p=reject and strict
// alignment would do to the mail of the window, every source classified, the
// fixes, a verdict and the next safe step (docs/readiness.md).
func runReadiness(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "readiness")
	days := fs.Int("days", 30, "look at reports that began in the last N days")
	asJSON := fs.Bool("json", false, "JSON output: one array of domain verdicts")
	sendersFile := fs.String("senders", "", "YAML file of known senders that extends the built-in list (see docs/readiness.md)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *days <= 0 {
		fmt.Fprintln(e.stderr, "dmarcd readiness: --days must be positive")
		return exitUsage
	}
	senders, err := readiness.LoadSenders(*sendersFile)
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd readiness:", err)
		return exitUsage
	}
	var want []string
	for _, d := range fs.Args() {
		want = append(want, strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), "."))
	}
	s, _, code := openStore(ctx, e)
	if s == nil {
		return code
	}
	defer s.Close()
	until := time.Now().UTC().Add(time.Hour)
	since := until.Add(-time.Hour).AddDate(0, 0, -*days)
	verdicts, err := readinessVerdicts(ctx, s, since, until, senders, want)
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd readiness:", err)
		return exitFail
	}
	if *asJSON {
		if verdicts == nil {
			verdicts = []readiness.Domain{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(verdicts)
		return exitOK
	}
	if len(verdicts) == 0 {
		fmt.Fprintf(e.stdout, "no reports in the last %d days\n", *days)
		return exitOK
	}
	for i, d := range verdicts {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		printReadiness(e, d, *days)
	}
	return exitOK
}

// readinessVerdicts reads the window and evaluates it; want limits the
// policy domains (none: all).
func readinessVerdicts(ctx context.Context, s *store.Store, since, until time.Time, senders *readiness.Senders, want []string) ([]readiness.Domain, error) {
	rows, err := s.ReadinessSources(ctx, since, until)
	if err != nil {
		return nil, err
	}
	pols, err := s.ReadinessPolicies(ctx, since, until)
	if err != nil {
		return nil, err
	}
	if len(want) > 0 {
		rows = slices.DeleteFunc(rows, func(r store.ReadinessSource) bool { return !slices.Contains(want, r.PolicyDomain) })
	}
	return readiness.Evaluate(rows, pols, senders), nil
}

func printReadiness(e *env, d readiness.Domain, days int) {
	w := e.stdout
	fmt.Fprintf(w, "%s  (%s)  last %d days\n", d.Domain, d.Policy, days)
	fmt.Fprintf(w, "  verdict   %s\n", d.Verdict)
	fmt.Fprintf(w, "  next      %s\n", d.Next)
	fmt.Fprintf(w, "  messages  %d: aligned %d (%s), forwarded %d, misaligned %d, unauthenticated %d\n",
		d.Messages, d.Aligned, pct(d.Aligned, d.Messages), d.Forwarded, d.Misaligned, d.Unauthenticated)
	for _, ev := range d.Evidence[1:] {
		fmt.Fprintf(w, "  - %s\n", ev)
	}
	for _, im := range d.WhatIf {
		fmt.Fprintf(w, "  what if %s: rejected %.0f, quarantined %.0f (legitimate %.0f, forwarded %.0f, unauthenticated %.0f)\n",
			im.Policy, im.Rejected, im.Quarantined, im.Legitimate, im.Forwarded, im.Unauthenticated)
	}
	for _, st := range d.Strict {
		fmt.Fprintf(w, "  what if %s: %d messages passing today would fail\n", st.Change, st.Lost)
		for _, x := range st.Sources {
			fmt.Fprintf(w, "      %s\n", x)
		}
		for _, n := range st.Notes {
			fmt.Fprintf(w, "      note: %s\n", n)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CLASS\tFROM\tMESSAGES\tIPS\tDAYS\tSOURCE\tFIX / WHY")
	var noise, noiseMsgs, noiseIPs uint64
	for _, s := range d.Sources {
		class := s.Class
		if s.Class == store.ClassMisaligned && !s.Legitimate {
			noise, noiseMsgs, noiseIPs = noise+1, noiseMsgs+s.Messages, noiseIPs+s.SourceIPs
			if noise > 3 {
				continue
			}
			class = "misaligned (noise)"
		}
		detail := s.Why
		if len(s.Fixes) > 0 {
			detail = strings.Join(s.Fixes, "; or ")
		}
		if detail == "" && len(s.TopIPs) > 0 {
			detail = "e.g. " + strings.Join(s.TopIPs[:min(3, len(s.TopIPs))], ", ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\t%s\n", class, s.HeaderFrom, s.Messages, s.SourceIPs, s.Days, s.Name(), detail)
	}
	if noise > 3 {
		fmt.Fprintf(tw, "  misaligned (noise)\t\t%d\t%d\t\t%d one-off identities in all\tlikely spam authenticating its own domain (--json lists them)\n", noiseMsgs, noiseIPs, noise)
	}
	tw.Flush()
}

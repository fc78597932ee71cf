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
// [--include-failed-auth] [DOMAIN...]`: per policy domain, what p=quarantine / p=reject and strict
// alignment would do to the mail of the window, every source classified, the
// fixes, a verdict and the next safe step (docs/readiness.md). Records of
// reports whose mail failed authentication are left out unless
// --include-failed-auth; how much of the evidence is unverified is shown.
func runReadiness(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "readiness")
	days := fs.Int("days", 30, "look at reports that began in the last N days")
	asJSON := fs.Bool("json", false, "JSON output: one array of domain verdicts")
	sendersFile := fs.String("senders", "", "YAML file of known senders that extends the built-in list (see docs/readiness.md)")
	includeFailed := fs.Bool("include-failed-auth", false, "count the records of reports whose mail failed authentication (likely forged; left out by default)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *days <= 0 {
		fmt.Fprintln(e.stderr, "dmarcd readiness: --days must be positive")
		return exitUsage
	}
	known := *sendersFile
	if cfg, err := e.config(); err == nil && known == "" {
		known = cfg.Attribution.KnownSources // a bad configuration is reported by openStore
	}
	senders, err := readiness.LoadSenders(known)
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd readiness:", err)
		return exitUsage
	}
	var want []string
	for _, d := range fs.Args() {
		want = append(want, strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), "."))
	}
	s, _, code := openStore(ctx, e, true)
	if s == nil {
		return code
	}
	defer s.Close()
	until := time.Now().UTC().Add(time.Hour)
	since := until.Add(-time.Hour).AddDate(0, 0, -*days)
	verdicts, err := readinessVerdicts(ctx, s, since, until, senders, want, store.ReadinessOptions{IncludeFailedAuth: *includeFailed})
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
	annotateTopIPs(ctx, s, verdicts)
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
func readinessVerdicts(ctx context.Context, s *store.Store, since, until time.Time, senders *readiness.Senders, want []string, o store.ReadinessOptions) ([]readiness.Domain, error) {
	rows, err := s.ReadinessSourcesWith(ctx, since, until, o)
	if err != nil {
		return nil, err
	}
	failed, err := s.ReadinessFailedAuthReports(ctx, since, until)
	if err != nil {
		return nil, err
	}
	pols, err := s.ReadinessPolicies(ctx, since, until)
	if err != nil {
		return nil, err
	}
	if len(want) > 0 {
		rows = slices.DeleteFunc(rows, func(r store.ReadinessSource) bool { return !slices.Contains(want, r.PolicyDomain) })
		failed = slices.DeleteFunc(failed, func(r store.ReadinessFailedAuth) bool { return !slices.Contains(want, r.PolicyDomain) })
	}
	return readiness.EvaluateTrust(rows, pols, senders, readiness.Trust{FailedAuth: failed, Included: o.IncludeFailedAuth}), nil
}

func printReadiness(e *env, d readiness.Domain, days int) {
	w := e.stdout
	fmt.Fprintf(w, "%s  (%s)  last %d days\n", d.Domain, d.Policy, days)
	fmt.Fprintf(w, "  verdict   %s\n", d.Verdict)
	fmt.Fprintf(w, "  next      %s\n", d.Next)
	fmt.Fprintf(w, "  messages  %d: aligned %d (%s), forwarded %d, misaligned %d, unauthenticated %d\n",
		d.Messages, d.Aligned, pct(d.Aligned, d.Messages), d.Forwarded, d.Misaligned, d.Unauthenticated)
	trust := fmt.Sprintf("%s of messages from unverified reports", pct(d.Unverified, d.Messages))
	if f := d.FailedAuth; f.Reports > 0 && f.Included {
		trust += fmt.Sprintf("; %d messages from %d report(s) that failed authentication included", f.Messages, f.Reports)
	} else if f.Reports > 0 {
		trust += fmt.Sprintf("; %d messages from %d report(s) that failed authentication left out", f.Messages, f.Reports)
	}
	fmt.Fprintf(w, "  reports   %s\n", trust)
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
	fmt.Fprintln(tw, "  CLASS\tFROM\tMESSAGES\tUNVERIFIED\tIPS\tDAYS\tSOURCE\tFIX / WHY")
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
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%d\t%d\t%s\t%s\n", class, s.HeaderFrom, s.Messages, pct(s.Unverified, s.Messages), s.SourceIPs, s.Days, s.Name(), detail)
	}
	if noise > 3 {
		fmt.Fprintf(tw, "  misaligned (noise)\t\t%d\t\t%d\t\t%d one-off identities in all\tlikely spam authenticating its own domain (--json lists them)\n", noiseMsgs, noiseIPs, noise)
	}
	tw.Flush()
}

// annotateTopIPs adds to the top IPs of the terminal output what
// attribution found: "54.240.0.1 (a1.smtp-out.amazonses.com, US, AS14618
// AMAZON-02, Amazon SES)". Best effort: without attribution they stay bare.
func annotateTopIPs(ctx context.Context, s *store.Store, verdicts []readiness.Domain) {
	var ips []string
	for _, d := range verdicts {
		for _, src := range d.Sources {
			ips = append(ips, src.TopIPs...)
		}
	}
	info, err := s.AttributionsOf(ctx, ips)
	if err != nil || len(info) == 0 {
		return
	}
	for _, d := range verdicts {
		for _, src := range d.Sources {
			for i, ip := range src.TopIPs {
				a, ok := info[ip]
				if !ok {
					continue
				}
				var l []string
				if a.PTRConfirmed {
					l = append(l, a.PTR)
				}
				if a.Country != "" {
					l = append(l, a.Country)
				}
				if a.ASN != 0 {
					l = append(l, strings.TrimSpace(fmt.Sprintf("AS%d %s", a.ASN, a.ASOrg)))
				}
				if a.KnownSource != "" {
					l = append(l, a.KnownSource)
				}
				if len(l) > 0 {
					src.TopIPs[i] = ip + " (" + strings.Join(l, ", ") + ")"
				}
			}
		}
	}
}

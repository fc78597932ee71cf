package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dmarcd/dmarcd/internal/product/attrib"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/parse/valid"
	"github.com/dmarcd/dmarcd/store"
)

// defaultDays is the window of `dmarcd readiness` and `dmarcd summary`
// (--days): the reports that began in the last 30 days.
const defaultDays = 30

// runReadiness is `dmarcd readiness [--days 30] [--json] [--senders FILE]
// [--include-failed-auth] [DOMAIN...]`: per policy domain, what p=quarantine / p=reject and strict
// alignment would do to the mail of the window, every source classified, the
// fixes, a verdict and the next safe step (docs/readiness.md). Records of
// reports whose mail failed authentication are left out unless
// --include-failed-auth; how much of the evidence is unverified is shown.
func runReadiness(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "readiness")
	days := fs.Int("days", defaultDays, "look at reports that began in the last N days")
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
	verdicts, err := readinessVerdicts(ctx, s, since, until, senders, want, readiness.Options{IncludeFailedAuth: *includeFailed})
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
func readinessVerdicts(ctx context.Context, s *store.Store, since, until time.Time, senders *readiness.Senders, want []string, o readiness.Options) ([]readiness.Domain, error) {
	rows, err := readiness.ReadSources(ctx, s, since, until, o)
	if err != nil {
		return nil, err
	}
	failed, err := readiness.ReadFailedAuth(ctx, s, since, until)
	if err != nil {
		return nil, err
	}
	unverified, err := readiness.ReadUnverified(ctx, s, since, until)
	if err != nil {
		return nil, err
	}
	pols, err := readiness.ReadPolicies(ctx, s, since, until)
	if err != nil {
		return nil, err
	}
	if len(want) > 0 {
		rows = slices.DeleteFunc(rows, func(r readiness.SourceRow) bool { return !slices.Contains(want, r.PolicyDomain) })
		failed = slices.DeleteFunc(failed, func(r readiness.FailedAuthRow) bool { return !slices.Contains(want, r.PolicyDomain) })
	}
	return readiness.EvaluateTrust(rows, pols, senders, readiness.Trust{FailedAuth: failed, Included: o.IncludeFailedAuth, Unverified: unverified}), nil
}

// readinessWidth is the widest line of readiness's terminal output.
const readinessWidth = 100

// printReadiness writes one domain's verdict for a terminal, every line at
// most readinessWidth columns: labelled paragraphs wrapped with a hanging
// indent, then the sources, one aligned row each with their name and fix
// on the lines below. It says what --json says, in the same words.
func printReadiness(e *env, d readiness.Domain, days int) {
	w := e.stdout
	if head := fmt.Sprintf("%s  (%s)  last %d days", valid.Printable(d.Domain), d.Policy, days); utf8.RuneCountInString(head) <= readinessWidth {
		fmt.Fprintln(w, head)
	} else {
		para(w, "", head, 2)
	}
	field := func(label, text string) { para(w, fmt.Sprintf("  %-10s", label), text, 12) }
	field("verdict", d.Verdict)
	field("next", d.Next)
	field("messages", fmt.Sprintf("%d: aligned %d (%s), forwarded %d, misaligned %d, unauthenticated %d",
		d.Messages, d.Aligned, pct(d.Aligned, d.Messages), d.Forwarded, d.Misaligned, d.Unauthenticated))
	trust := fmt.Sprintf("%s of messages from unverified reports", pct(d.Unverified, d.Messages))
	if f := d.FailedAuth; f.Reports > 0 && f.Included {
		trust += fmt.Sprintf("; %d messages from %d report(s) that failed authentication included", f.Messages, f.Reports)
	} else if f.Reports > 0 {
		trust += fmt.Sprintf("; %d messages from %d report(s) that failed authentication left out", f.Messages, f.Reports)
	}
	field("reports", trust)
	for i, sc := range d.Scopes {
		label := ""
		if i == 0 {
			label = "by tag"
		}
		field(label, scopeLine(sc))
	}
	for _, ev := range d.Evidence[1:] {
		para(w, "  - ", valid.Printable(ev), 4)
	}
	for _, im := range d.WhatIf {
		para(w, "  ", fmt.Sprintf("what if %s: rejected %.0f, quarantined %.0f (legitimate %.0f, forwarded %.0f, unauthenticated %.0f)",
			im.Policy, im.Rejected, im.Quarantined, im.Legitimate, im.Forwarded, im.Unauthenticated), 4)
	}
	for _, st := range d.Strict {
		para(w, "  ", fmt.Sprintf("what if %s: %d messages passing today would fail", st.Change, st.Lost), 4)
		for _, x := range st.Sources {
			para(w, "      ", valid.Printable(x), 8)
		}
		for _, n := range st.Notes {
			para(w, "      note: ", n, 12)
		}
	}
	printSources(w, d)
}

// scopeLine is one tag's verdict: the mail it governs, what that mail
// supports, what the record does to it today.
func scopeLine(sc readiness.Scope) string {
	ready := "not ready for enforcement"
	if sc.Ready != readiness.LevelNone {
		ready = "ready for " + sc.Tag + "=" + sc.Ready
	}
	froms := strings.Join(sc.HeaderFroms, ", ")
	if len(sc.HeaderFroms) > 3 {
		froms = fmt.Sprintf("%d domains", len(sc.HeaderFroms))
	}
	if sc.Messages == 0 {
		return sc.Name() + ": no mail in the window"
	}
	return fmt.Sprintf("%s: %s (%d messages): %s; enforcing it would hit %s of the legitimate mail, %.0f messages hit today",
		sc.Name(), valid.Printable(froms), sc.Messages, ready, percentOf(sc.AtRisk), sc.InForce.Legitimate)
}

func percentOf(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }

// Columns of the sources table, numbers right-aligned.
var sourceColumns = []struct {
	name  string
	right bool
}{{"CLASS", false}, {"FROM", false}, {"MESSAGES", true}, {"UNVERIFIED", true}, {"IPS", true}, {"DAYS", true}}

// maxFromWidth cuts long header_from names in the table (--json has them
// whole): a forged From can be 253 bytes.
const maxFromWidth = 32

// printSources writes the sources: an aligned row of counts each, then the
// source's name and its fix (or why, or example IPs) wrapped below. At most
// three one-off identities are listed; the rest are summed in one row.
func printSources(w io.Writer, d readiness.Domain) {
	var rows [][]string
	var details [][2]string // source, detail
	var noise, noiseMsgs, noiseIPs uint64
	for _, s := range d.Sources {
		class := s.Class
		if s.Class == readiness.ClassMisaligned && !s.Legitimate {
			noise, noiseMsgs, noiseIPs = noise+1, noiseMsgs+s.Messages, noiseIPs+s.SourceIPs
			if noise > 3 {
				continue
			}
			class = "misaligned (noise)"
		}
		detail := s.Why
		if len(s.Fixes) > 0 {
			detail = "fix: " + strings.Join(s.Fixes, "; or ")
		}
		if detail == "" && len(s.TopIPs) > 0 {
			detail = "e.g. " + strings.Join(s.TopIPs[:min(3, len(s.TopIPs))], ", ")
		}
		rows = append(rows, []string{class, cut(valid.Printable(s.HeaderFrom), maxFromWidth), strconv.FormatUint(s.Messages, 10),
			pct(s.Unverified, s.Messages), strconv.FormatUint(s.SourceIPs, 10), strconv.FormatUint(s.Days, 10)})
		details = append(details, [2]string{valid.Printable(s.Name()), valid.Printable(detail)})
	}
	if noise > 3 {
		rows = append(rows, []string{"misaligned (noise)", "-", strconv.FormatUint(noiseMsgs, 10), "-", strconv.FormatUint(noiseIPs, 10), "-"})
		details = append(details, [2]string{fmt.Sprintf("%d one-off identities in all", noise), "likely spam authenticating its own domain (--json lists them)"})
	}
	widths := make([]int, len(sourceColumns))
	for i, c := range sourceColumns {
		widths[i] = len(c.name)
		for _, r := range rows {
			widths[i] = max(widths[i], utf8.RuneCountInString(r[i]))
		}
	}
	header := make([]string, len(sourceColumns))
	for i, c := range sourceColumns {
		header[i] = c.name
	}
	fmt.Fprintln(w, tableRow(widths, header))
	for i, r := range rows {
		fmt.Fprintln(w, tableRow(widths, r))
		para(w, "      source: ", details[i][0], 14)
		if details[i][1] != "" {
			para(w, "      ", details[i][1], 8)
		}
	}
}

// tableRow lays out cells in columns of widths, two spaces apart, after a
// two-space indent; numeric columns are right-aligned.
func tableRow(widths []int, cells []string) string {
	var b strings.Builder
	b.WriteString("  ")
	for i, c := range cells {
		if i > 0 {
			b.WriteString("  ")
		}
		pad := strings.Repeat(" ", max(0, widths[i]-utf8.RuneCountInString(c)))
		if sourceColumns[i].right {
			b.WriteString(pad + c)
		} else if i < len(cells)-1 {
			b.WriteString(c + pad)
		} else {
			b.WriteString(c)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// cut shortens s to n runes, ending in "…" when cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// para writes text after prefix, wrapped at readinessWidth on spaces, the
// following lines indented by indent columns. A word longer than a line is
// broken.
func para(w io.Writer, prefix, text string, indent int) {
	line := prefix
	width := utf8.RuneCountInString(prefix)
	start := true // nothing after the prefix yet
	flush := func() {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		line, width, start = strings.Repeat(" ", indent), indent, true
	}
	for _, word := range strings.Fields(text) {
		for {
			n := utf8.RuneCountInString(word)
			sep := 1
			if start {
				sep = 0
			}
			if width+sep+n <= readinessWidth {
				if !start {
					line += " "
				}
				line, width, start = line+word, width+sep+n, false
				break
			}
			if !start {
				flush()
				continue
			}
			room := readinessWidth - width // a word longer than a whole line
			r := []rune(word)
			line += string(r[:room])
			word = string(r[room:])
			flush()
		}
	}
	if !start || width > indent {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
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
	info, err := attrib.AttributionsOf(ctx, s, ips)
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

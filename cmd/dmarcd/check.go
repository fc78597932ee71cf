package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dmarcd/dmarcd/internal/app/daemon"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/store"
)

// runCheck is `dmarcd check [--resolver HOST:PORT] [--json] [--no-store]
// DOMAIN...`: the DNS posture of each domain (docs/check.md). It exits 1
// when any finding is an error.
func runCheck(ctx context.Context, e *env, args []string) int {
	fs := subFlags(e, "check")
	server := fs.String("resolver", "", "recursive DNS server HOST:PORT (default: the first nameserver of /etc/resolv.conf)")
	timeout := fs.Duration("timeout", dnscheck.DefaultTimeout, "timeout of each DNS query")
	asJSON := fs.Bool("json", false, "JSON output: one array of domain reports")
	noStore := fs.Bool("no-store", false, "do not read the stored reports (skips DKIM selector and parked-domain checks)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "usage: dmarcd check [--resolver HOST:PORT] [--json] [--no-store] DOMAIN...")
		return exitUsage
	}
	r, err := dnscheck.NewResolver(*server, *timeout)
	if err != nil {
		fmt.Fprintln(e.stderr, "dmarcd check:", err)
		return exitUsage
	}
	var st *store.Store
	note := "--no-store"
	if !*noStore {
		cfg, err := e.config()
		if err != nil {
			fmt.Fprintln(e.stderr, "dmarcd:", err)
			return exitUsage
		}
		st, note = checkStore(ctx, e, cfg)
		if st != nil {
			defer st.Close()
		}
	}
	reports := []*dnscheck.Report{}
	code := exitOK
	for _, d := range fs.Args() {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		opts := dnscheck.Options{Resolver: r, StoreNote: note}
		if st != nil {
			if err := daemon.CheckInputs(ctx, st, d, &opts); err != nil {
				opts.StoreNote = err.Error()
			}
		}
		rep := dnscheck.Check(ctx, d, opts)
		if rep.Errors() > 0 {
			code = exitFail
		}
		reports = append(reports, rep)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(reports)
		return code
	}
	for i, rep := range reports {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		printCheck(e, rep)
	}
	return code
}

// checkStore opens the configured store, read-only, if it is reachable;
// otherwise it returns why not (naming the DSN tried), and the checks that
// need it are skipped.
func checkStore(ctx context.Context, e *env, cfg config.Config) (*store.Store, string) {
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := store.Open(octx, cfg.ClickHouse.DSN, wire.ReadStoreOptions(cfg, e.logger(cfg)))
	if err != nil {
		return nil, strings.TrimPrefix(strings.ReplaceAll(storeError(e, cfg, err), "\n ", ";"), "dmarcd: ")
	}
	return st, ""
}

func printCheck(e *env, rep *dnscheck.Report) {
	w := e.stdout
	fmt.Fprintf(w, "%s  (organizational domain %s)\n", rep.Domain, rep.OrgDomain)
	if rep.DMARCRecord != "" {
		fmt.Fprintf(w, "  DMARC  %s: %s\n", rep.DMARCName, rep.DMARCRecord)
	}
	if rep.SPFRecord != "" {
		fmt.Fprintf(w, "  SPF    %s (%d lookups)\n", rep.SPFRecord, rep.SPFLookups)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  SEVERITY\tCHECK\tSUBJECT\tFINDING\tFIX")
	for _, sev := range []dnscheck.Severity{dnscheck.SevError, dnscheck.SevWarning, dnscheck.SevInfo} {
		for _, f := range rep.Findings {
			if f.Severity == sev {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.Severity, f.Check, f.Subject, f.Message, f.Fix)
			}
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "  %d errors\n", rep.Errors())
}

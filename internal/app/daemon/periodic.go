package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dmarcd/dmarcd/internal/lib/chsql"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/product/attrib"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck/checkdb"
)

// The daemon's periodic jobs, off the ingest path: each runs at start and
// then every interval in its own goroutine; a run that fails (ClickHouse
// down, no resolver) is logged and counted, and the next interval tries
// again.
const (
	jobCheck       = "check"       // dmarcd check of every domain; record changes into dns_records
	jobAttribution = "attribution" // attrib.Run: reverse DNS and SPF term of new source IPs
)

// Statuses of a periodic run (label status of dmarcd_periodic_runs_total).
const (
	runOK       = "ok"
	runDNSError = "dns_error" // some records could not be read (SERVFAIL, timeout): the rest was stored
	runError    = "error"     // the run failed (ClickHouse, resolver configuration)
)

// checkDomainsLookback is how far back the policy domains of the stored
// reports are taken when check.domains is empty.
const checkDomainsLookback = 30 * 24 * time.Hour

// maxCheckDomains bounds the domains one periodic check reads when they come
// from stored reports (owned_domains ["*"] and no check.domains).
const maxCheckDomains = 50

// periodicMetrics are registered once; the jobs come and go with reloads.
type periodicMetrics struct {
	runs       *prometheus.CounterVec
	last       *prometheus.GaugeVec
	changes    *prometheus.CounterVec
	attributed prometheus.Counter
}

func newPeriodicMetrics(reg prometheus.Registerer) *periodicMetrics {
	m := &periodicMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dmarcd_periodic_runs_total",
			Help: "Runs of the daemon's periodic jobs (check, attribution) by outcome: ok, dns_error (some DNS records could not be read), error.",
		}, []string{"job", "status"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dmarcd_periodic_last_success_timestamp_seconds",
			Help: "Unix time of the end of the last run of a periodic job that stored its results (status ok or dns_error).",
		}, []string{"job"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dmarcd_dns_record_changes_total",
			Help: "Changes of DNS records found by the periodic check and stored in dns_records, by check (dmarc, spf, dkim, report_auth); first sightings are not changes.",
		}, []string{"check"}),
		attributed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dmarcd_attributed_ips_total",
			Help: "Source IPs attributed (and stored in source_attribution) by the periodic attribution.",
		}),
	}
	reg.MustRegister(m.runs, m.last, m.changes, m.attributed)
	for _, job := range []string{jobCheck, jobAttribution} {
		for _, st := range []string{runOK, runDNSError, runError} {
			m.runs.WithLabelValues(job, st)
		}
	}
	return m
}

// periodicSettings is what the jobs depend on: a reload that changes it
// restarts them.
func periodicSettings(c config.Config) any {
	return []any{c.Check, c.Attribution, c.DNS, c.ClickHouse}
}

// periodic is the running set of jobs of one configuration.
type periodic struct {
	cfg config.Config
	st  *lazyStore
	m   *periodicMetrics
	log *slog.Logger
	now func() time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

func newPeriodic(cfg config.Config, st *lazyStore, m *periodicMetrics, log *slog.Logger) *periodic {
	return &periodic{cfg: cfg, st: st, m: m, log: log.With("component", "periodic"), now: time.Now}
}

// start runs the jobs whose interval is set until stop or ctx is done.
func (p *periodic) start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	jobs := 0
	finished := make(chan struct{})
	for _, j := range []struct {
		name  string
		every config.Duration
		run   func(context.Context) (string, error)
	}{{jobCheck, p.cfg.Check.Interval, p.checkOnce}, {jobAttribution, p.cfg.Attribution.Interval, p.attributeOnce}} {
		if j.every <= 0 {
			continue
		}
		jobs++
		go func() {
			defer func() { finished <- struct{}{} }()
			p.loop(ctx, j.name, time.Duration(j.every), j.run)
		}()
	}
	go func() {
		for range jobs {
			<-finished
		}
		close(p.done)
	}()
}

// periodicStopWait bounds how long stop waits for a run in progress.
const periodicStopWait = 5 * time.Second

// stop stops the jobs and waits for them, at most periodicStopWait.
// ClickHouse calls end with the context; a DNS query does not (miekg/dns
// obeys only deadlines) and ends within dns.timeout, after which the run,
// its context done, stores nothing.
func (p *periodic) stop() {
	if p == nil || p.cancel == nil {
		return
	}
	p.cancel()
	t := time.NewTimer(periodicStopWait)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.log.Warn("periodic jobs still finishing a DNS query; not waiting for them", "waited", periodicStopWait)
	}
}

// loop runs job now and then every interval until ctx is done.
func (p *periodic) loop(ctx context.Context, job string, every time.Duration, run func(context.Context) (string, error)) {
	p.log.Info("periodic job started", "job", job, "interval", every)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p.runOnce(ctx, job, run)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runOnce runs job once and counts its outcome (not when ctx ended it).
func (p *periodic) runOnce(ctx context.Context, job string, run func(context.Context) (string, error)) string {
	start := time.Now()
	status, err := run(ctx)
	if ctx.Err() != nil {
		return ""
	}
	p.m.runs.WithLabelValues(job, status).Inc()
	if status != runError {
		p.m.last.WithLabelValues(job).Set(float64(time.Now().Unix()))
	}
	if err != nil {
		p.log.Warn("periodic job failed; retrying at the next interval", "job", job, "status", status, "err", err)
	} else {
		p.log.Debug("periodic job done", "job", job, "took", time.Since(start).Round(time.Millisecond))
	}
	return status
}

func (p *periodic) resolver() (*dnscheck.Resolver, error) {
	r, err := dnscheck.NewResolver(p.cfg.DNS.Resolver, time.Duration(p.cfg.DNS.Timeout))
	if err != nil {
		return nil, fmt.Errorf("dns.resolver: %w", err)
	}
	return r, nil
}

// attributeOnce attributes the source IPs without attribution yet (most
// messages first, at most attribution.max_ips_per_run), with the GeoIP
// databases and known sources of the configuration, opened for the run
// (so that an updated database is used from the next run on).
func (p *periodic) attributeOnce(ctx context.Context) (string, error) {
	st, err := p.st.get(ctx)
	if err != nil {
		return runError, err
	}
	r, err := p.resolver()
	if err != nil {
		return runError, err
	}
	a := p.cfg.Attribution
	e, err := attrib.Open(attrib.Options{GeoCountryDB: a.GeoIPCountryDB, GeoASNDB: a.GeoIPASNDB, KnownSources: a.KnownSources})
	if err != nil {
		return runError, fmt.Errorf("attribution: %w", err)
	}
	defer e.Close()
	n, err := attrib.RunWith(ctx, st, r, a.MaxIPsPerRun, e)
	p.m.attributed.Add(float64(n))
	if err != nil {
		return runError, fmt.Errorf("attribution: %w", err)
	}
	if n > 0 {
		p.log.Info("attributed source IPs", "ips", n)
	}
	return runOK, nil
}

// checkOnce checks every domain and stores the records that changed.
func (p *periodic) checkOnce(ctx context.Context) (string, error) {
	st, err := p.st.get(ctx)
	if err != nil {
		return runError, err
	}
	r, err := p.resolver()
	if err != nil {
		return runError, err
	}
	domains := p.cfg.Check.Domains
	if len(domains) == 0 {
		domains = p.cfg.Owned()
	}
	if len(domains) == 0 {
		// owned_domains: ["*"]: the stored policy domains, of which anyone
		// can forge any number: a bounded few per run.
		if domains, err = checkdb.RecentPolicyDomains(ctx, st, p.now().Add(-checkDomainsLookback)); err != nil {
			return runError, err
		}
		if len(domains) > maxCheckDomains {
			p.log.Warn("periodic check: more recent policy domains than it reads per run; set check.domains or owned_domains",
				"domains", len(domains), "checked", maxCheckDomains)
			domains = domains[:maxCheckDomains]
		}
	}
	status := runOK
	var errs []error
	for _, d := range domains {
		if ctx.Err() != nil {
			return runError, ctx.Err()
		}
		unreadable, err := p.checkDomain(ctx, st, r, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(unreadable) > 0 {
			status = runDNSError
			p.log.Warn("check: DNS records could not be read; they are compared at the next run", "domain", d, "records", unreadable)
		}
	}
	if len(errs) > 0 {
		return runError, errors.Join(errs...)
	}
	return status, nil
}

// checkDomain runs dmarcd check on domain and stores the records whose name
// or value differs from the last stored row (all of them the first time).
// It returns the records it could not read.
func (p *periodic) checkDomain(ctx context.Context, st checkdb.DB, r *dnscheck.Resolver, domain string) ([]string, error) {
	domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	opts := dnscheck.Options{Resolver: r}
	if err := CheckInputs(ctx, st, domain, &opts); err != nil {
		opts.StoreNote = err.Error()
	}
	rep := dnscheck.Check(ctx, domain, opts)
	latest, err := checkdb.LatestDNSRecords(ctx, st, domain)
	if err != nil {
		return nil, err
	}
	rows, unreadable := recordChanges(rep, latest, p.now().UTC())
	if err := checkdb.WriteDNSRecords(ctx, st, rows); err != nil {
		return unreadable, err
	}
	for _, row := range rows {
		if row.Initial {
			p.log.Info("DNS record first stored", "domain", domain, "kind", row.Kind, "name", row.Name, "value", row.Value)
			continue
		}
		check, _, _ := strings.Cut(row.Kind, ":")
		p.m.changes.WithLabelValues(check).Inc()
		p.log.Info("DNS record changed", "domain", domain, "kind", row.Kind, "name", row.Name, "change", row.Change)
	}
	return unreadable, nil
}

// CheckInputs fills the DKIM selectors and traffic of domain from the
// stored reports: what `dmarcd check` and the periodic check read. The
// selectors are those of reports whose mail authenticated, at most
// o.MaxSelectors (dnscheck.DefaultMaxSelectors) on the most messages
// (checkdb.CheckSelectorsOf): a forged report cannot choose what is queried.
func CheckInputs(ctx context.Context, st chsql.Querier, domain string, o *dnscheck.Options) error {
	limit := o.MaxSelectors
	if limit <= 0 {
		limit = dnscheck.DefaultMaxSelectors
	}
	sels, err := checkdb.CheckSelectorsOf(ctx, st, domain, limit)
	if err != nil {
		return err
	}
	for _, s := range sels {
		o.Selectors = append(o.Selectors, dnscheck.Selector{Domain: s.Domain, Selector: s.Selector, Messages: s.Messages, Passed: s.Passed})
	}
	m, a, err := checkdb.DomainTraffic(ctx, st, domain)
	if err != nil {
		return err
	}
	o.Traffic = &dnscheck.Traffic{Messages: m, Authenticated: a}
	return nil
}

// recordChanges returns the rows to store for the records of rep: those
// never stored for (domain, kind), and those whose name or value differs
// from the latest stored row. Records that could not be read are returned
// by kind and compared at the next run.
func recordChanges(rep *dnscheck.Report, latest map[string]checkdb.DNSRecord, now time.Time) (rows []checkdb.DNSRecord, unreadable []string) {
	seen := map[string]bool{}
	for _, o := range rep.Records {
		if seen[o.Kind] {
			continue
		}
		seen[o.Kind] = true
		if o.Err != "" {
			unreadable = append(unreadable, o.Kind)
			continue
		}
		prev, stored := latest[o.Kind]
		if stored && prev.Name == o.Name && prev.Value == o.Value {
			continue
		}
		row := checkdb.DNSRecord{Domain: rep.Domain, Kind: o.Kind, Name: o.Name, Value: o.Value,
			Previous: prev.Value, Initial: !stored, CheckedAt: now}
		row.Change = describeChange(o.Kind, prev, o, stored)
		row.Findings, row.Errors, row.Warnings = findingsOf(rep, o)
		rows = append(rows, row)
	}
	return rows, unreadable
}

// findingsOf summarises the error and warning findings of rep about the
// record o, one per line.
func findingsOf(rep *dnscheck.Report, o dnscheck.Observation) (string, uint32, uint32) {
	check, _, _ := strings.Cut(o.Kind, ":")
	var lines []string
	var errs, warns uint32
	for _, f := range rep.Findings {
		if f.Severity == dnscheck.SevInfo {
			continue
		}
		var ok bool
		switch check {
		case "dmarc", "spf":
			ok = f.Check == check
		case "dkim":
			ok = f.Check == "dkim" && f.Subject == o.Name
		case "report_auth":
			ok = (f.Check == "rua" || f.Check == "ruf") && f.Subject == o.Name
		}
		if !ok {
			continue
		}
		if f.Severity == dnscheck.SevError {
			errs++
		} else {
			warns++
		}
		lines = append(lines, string(f.Severity)+": "+f.Message)
	}
	return strings.Join(lines, "\n"), errs, warns
}

// describeChange says what changed between the stored row prev and the
// record o, in words: for DMARC and DKIM records the tags ("p=none →
// p=quarantine"), for SPF the terms ("~all → -all, added
// include:amazonses.com").
func describeChange(kind string, prev checkdb.DNSRecord, o dnscheck.Observation, stored bool) string {
	check, _, _ := strings.Cut(kind, ":")
	switch {
	case !stored && o.Value == "":
		return "none published"
	case !stored:
		return "first seen: " + o.Value
	case prev.Value == "" && o.Value != "":
		return "published: " + o.Value
	case prev.Value != "" && o.Value == "":
		return "removed (was: " + prev.Value + ")"
	}
	var parts []string
	switch check {
	case "dmarc", "report_auth":
		parts = diffTags(prev.Value, o.Value, false)
	case "dkim":
		parts = diffTags(prev.Value, o.Value, true)
	case "spf":
		parts = diffSPF(prev.Value, o.Value)
	}
	if prev.Name != o.Name {
		parts = append(parts, "now found at "+o.Name+" (was "+prev.Name+")")
	}
	if len(parts) == 0 {
		return "rewritten: " + o.Value // same tags or terms, other spacing or order
	}
	return strings.Join(parts, ", ")
}

// tagList splits a tag=value record (DMARC, RFC 9989 §4.7; DKIM key,
// RFC 6376 §3.6.1) into names in order and values by lower-case name.
func tagList(rec string) ([]string, map[string]string) {
	var names []string
	vals := map[string]string{}
	for _, part := range strings.Split(rec, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" {
			continue
		}
		if _, dup := vals[k]; !dup {
			names = append(names, k)
		}
		vals[k] = strings.TrimSpace(v)
	}
	return names, vals
}

// diffTags lists the tags changed ("p=none → p=quarantine"), added and
// removed. With key, a changed p= is "new key" (or "key revoked").
func diffTags(old, cur string, key bool) []string {
	oldNames, oldVals := tagList(old)
	curNames, curVals := tagList(cur)
	var parts []string
	for _, k := range curNames {
		v := curVals[k]
		ov, had := oldVals[k]
		switch {
		case key && k == "p" && had && ov != v && v == "":
			parts = append(parts, "key revoked (empty p=)")
		case key && k == "p" && had && ov != v:
			parts = append(parts, "new key")
		case had && ov != v:
			parts = append(parts, k+"="+ov+" → "+k+"="+v)
		case !had:
			parts = append(parts, "added "+k+"="+v)
		}
	}
	for _, k := range oldNames {
		if _, has := curVals[k]; !has {
			parts = append(parts, "removed "+k+"="+oldVals[k])
		}
	}
	return parts
}

// diffSPF lists the terms of an SPF record that changed: the all term and
// modifiers (redirect=, exp=) paired by name ("~all → -all"), other terms
// added or removed.
func diffSPF(old, cur string) []string {
	key := func(term string) string {
		t := strings.ToLower(term)
		if i := strings.IndexByte(t, '='); i > 0 && !strings.ContainsAny(t[:i], ":/") {
			return t[:i] + "=" // a modifier
		}
		if strings.TrimLeft(t, "+-~?") == "all" {
			return "all"
		}
		return ""
	}
	oldTerms, curTerms := strings.Fields(old), strings.Fields(cur)
	var parts []string
	paired := map[string]bool{}
	for _, c := range curTerms {
		k := key(c)
		if k == "" {
			continue
		}
		for _, o := range oldTerms {
			if key(o) == k && !strings.EqualFold(o, c) {
				parts = append(parts, o+" → "+c)
				paired[strings.ToLower(o)], paired[strings.ToLower(c)] = true, true
			}
		}
	}
	has := func(l []string, t string) bool {
		return slices.ContainsFunc(l, func(x string) bool { return strings.EqualFold(x, t) })
	}
	for _, c := range curTerms {
		if !has(oldTerms, c) && !paired[strings.ToLower(c)] {
			parts = append(parts, "added "+c)
		}
	}
	for _, o := range oldTerms {
		if !has(curTerms, o) && !paired[strings.ToLower(o)] {
			parts = append(parts, "removed "+o)
		}
	}
	return parts
}

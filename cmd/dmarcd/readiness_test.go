package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/store"
)

// readinessStore opens a fresh store and points the command at it.
func readinessStore(t *testing.T) *store.Store {
	t.Helper()
	dsn := testenv.ClickHouse(t)
	t.Setenv("DMARCD_CLICKHOUSE_DSN", dsn)
	s, err := store.Open(context.Background(), dsn, store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runReadinessJSON runs `dmarcd readiness --json ARGS` and decodes it.
func runReadinessJSON(t *testing.T, args ...string) []readiness.Domain {
	t.Helper()
	var o, e bytes.Buffer
	code := runReadiness(context.Background(), &env{stdout: &o, stderr: &e, stdin: strings.NewReader("")}, append([]string{"--json"}, args...))
	if code != exitOK {
		t.Fatalf("readiness: exit %d: %s", code, e.String())
	}
	var out []readiness.Domain
	if err := json.Unmarshal(o.Bytes(), &out); err != nil {
		t.Fatalf("readiness --json: %v\n%s", err, o.String())
	}
	return out
}

// policy is a published policy for a scenario report: "p=none; sp=none".
type policy string

func (p policy) header(org, id, domain string, begin time.Time) (*aggregate.Header, align.Mode, align.Mode) {
	h := &aggregate.Header{Schema: aggregate.SchemaRFC7489, OrgName: org, Email: "dmarc@" + org, ReportID: id,
		Begin: begin, End: begin.Add(24*time.Hour - time.Second), Domain: domain, Errors: []string{}}
	for _, tag := range strings.Split(string(p), ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(tag), "=")
		o := aggregate.Opt{Value: v, Set: true}
		switch k {
		case "p":
			h.P = o
		case "sp":
			h.SP = o
		case "np":
			h.NP = o
		case "pct":
			h.Pct = o
		case "t":
			h.Testing = o
		case "adkim":
			h.ADKIM = o
		case "aspf":
			h.ASPF = o
		}
	}
	return h, align.ParseMode(h.ADKIM.Value), align.ParseMode(h.ASPF.Value)
}

// rec is one scenario record: dkim "d/selector/result", spf "domain/result".
type rec struct {
	ip, from  string
	count     uint64
	dkim, spf []string
	reasons   []string
}

// writeDays stores, for each of the last n days, one report of the
// policy domain with the records, as a receiver would send it.
func writeDays(t *testing.T, s *store.Store, domain string, p policy, n int, recs ...rec) {
	t.Helper()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for day := 1; day <= n; day++ {
		h, adkim, aspf := p.header("google.com", fmt.Sprintf("%s-%d", domain, day), domain, today.AddDate(0, 0, -day))
		var rows []*enrich.Record
		for i, r := range recs {
			ar := &aggregate.Record{Index: i, SourceIP: r.ip, Count: r.count, Disposition: "none", HeaderFrom: r.from}
			for _, d := range r.dkim {
				f := strings.Split(d, "/")
				ar.DKIM = append(ar.DKIM, aggregate.DKIMResult{Domain: f[0], Selector: f[1], Result: f[2]})
			}
			for _, x := range r.spf {
				f := strings.Split(x, "/")
				ar.SPF = append(ar.SPF, aggregate.SPFResult{Domain: f[0], Scope: "mfrom", Result: f[1]})
			}
			for _, x := range r.reasons {
				ar.Reasons = append(ar.Reasons, aggregate.Reason{Type: x})
			}
			rows = append(rows, enrich.AggregateWith(adkim, aspf).Record(ar))
		}
		next := func() (*enrich.Record, error) {
			if len(rows) == 0 {
				return nil, io.EOF
			}
			r := rows[0]
			rows = rows[1:]
			return r, nil
		}
		if _, err := s.WriteAggregate(context.Background(), h, store.InputMeta{Source: "test"}, next); err != nil {
			t.Fatal(err)
		}
	}
}

// The scenario's senders.
var (
	sesAligned = rec{ip: "54.240.0.1", from: "example.com", count: 100,
		dkim: []string{"example.com/sesselectora/pass", "amazonses.com/x/pass"}, spf: []string{"mail.example.com/pass"}}
	sesAligned2 = rec{ip: "54.240.0.2", from: "example.com", count: 50,
		dkim: []string{"example.com/sesselectorb/pass", "amazonses.com/x/pass"}, spf: []string{"mail.example.com/pass"}}
	workspace = rec{ip: "209.85.128.1", from: "example.com", count: 40,
		dkim: []string{"example.com/google/pass"}, spf: []string{"example.com/pass"}}
	espUnaligned = rec{ip: "198.2.128.1", from: "example.com", count: 30,
		dkim: []string{"esp-mailer.net/em1/pass"}, spf: []string{"bounces.esp-mailer.net/pass"}}
	sesBare = rec{ip: "54.240.0.3", from: "example.com", count: 20,
		dkim: []string{"amazonses.com/x/pass"}, spf: []string{"amazonses.com/pass"}}
	forwarded = rec{ip: "128.32.0.1", from: "example.com", count: 5,
		dkim: []string{"example.com/sesselectora/fail"}, spf: []string{"mail.example.com/fail"}, reasons: []string{"forwarded"}}
	listBroken = rec{ip: "128.32.0.2", from: "example.com", count: 4,
		dkim: []string{"example.com/sesselectora/fail", "lists.example.edu/list/pass"}, spf: []string{"lists.example.edu/pass"}}
	spoof = rec{ip: "203.0.113.7", from: "example.com", count: 7,
		dkim: []string{"example.com/default/fail"}, spf: []string{"example.com/softfail"}}
	spoofNoAuth = rec{ip: "203.0.113.8", from: "example.com", count: 3, spf: []string{"junk.example/none"}}
)

func only(t *testing.T, ds []readiness.Domain) readiness.Domain {
	t.Helper()
	if len(ds) != 1 {
		t.Fatalf("got %d domains, want 1: %+v", len(ds), ds)
	}
	return ds[0]
}

func TestReadinessAllAlignedIsReadyForReject(t *testing.T) {
	s := readinessStore(t)
	writeDays(t, s, "example.com", "p=none", 3, sesAligned, sesAligned2, workspace)
	d := only(t, runReadinessJSON(t))
	if d.Ready != readiness.LevelReject || d.Messages != 3*190 || d.Aligned != d.Messages {
		t.Errorf("ready %q, %d messages, %d aligned; want reject, 570, 570\n%s", d.Ready, d.Messages, d.Aligned, d.Verdict)
	}
	if !strings.HasPrefix(d.Next, "p=quarantine with pct=25") {
		t.Errorf("next %q: from p=none the safe step is p=quarantine staged", d.Next)
	}
	for _, im := range d.WhatIf {
		if im.Rejected+im.Quarantined != 0 {
			t.Errorf("%s would act on %v messages, want none", im.Policy, im.Rejected+im.Quarantined)
		}
	}
	// SES with two selectors: normal, and said so.
	var ses *readiness.Source
	for i := range d.Sources {
		if d.Sources[i].Sender == "Amazon SES" {
			ses = &d.Sources[i]
		}
	}
	if ses == nil || !strings.Contains(strings.Join(ses.Notes, "\n"), "2 DKIM selectors seen for example.com") {
		t.Errorf("SES source %+v: want it named, with the selector rotation note", ses)
	}
}

func TestReadinessMisalignedESPIsNotReadyAndNamesTheFix(t *testing.T) {
	s := readinessStore(t)
	writeDays(t, s, "example.com", "p=none", 3, sesAligned, workspace, espUnaligned, spoof)
	d := only(t, runReadinessJSON(t, "example.com"))
	if d.Ready != readiness.LevelNone || d.Misaligned != 90 || !strings.Contains(d.Verdict, "esp-mailer.net") {
		t.Fatalf("ready %q misaligned %d verdict %q: want not ready, 90, naming esp-mailer.net", d.Ready, d.Misaligned, d.Verdict)
	}
	src := d.Sources[0]
	if src.Class != "misaligned" || !src.Legitimate || len(src.Fixes) != 2 ||
		src.Fixes[0] != "sign with d=example.com (or another domain of example.com) instead of d=esp-mailer.net" ||
		!strings.HasPrefix(src.Fixes[1], "set a custom MAIL FROM on a subdomain of example.com") {
		t.Errorf("first source %+v: want the ESP with its DKIM and SPF fixes", src)
	}
	if im := d.WhatIf[1]; im.Legitimate != 90 || im.Unauthenticated != 21 || im.Rejected != 111 {
		t.Errorf("what if p=reject: %+v; want 90 legitimate, 21 unauthenticated rejected", im)
	}
	// An unknown domain filters everything out.
	if ds := runReadinessJSON(t, "other.example"); len(ds) != 0 {
		t.Errorf("DOMAIN filter: got %d domains", len(ds))
	}
}

func TestReadinessSESWithoutCustomMailFromNamesTheSPFFix(t *testing.T) {
	s := readinessStore(t)
	writeDays(t, s, "example.com", "p=none", 2, sesAligned, sesBare)
	d := only(t, runReadinessJSON(t))
	src := d.Sources[0]
	if src.Sender != "Amazon SES" || !src.Legitimate || d.Ready != readiness.LevelNone {
		t.Fatalf("source %+v, ready %q: want SES, legitimate, not ready", src, d.Ready)
	}
	all := strings.Join(src.Fixes, "\n")
	if !strings.Contains(all, "custom MAIL FROM domain in SES on a subdomain of example.com") || !strings.Contains(all, "Easy DKIM") {
		t.Errorf("fixes %q: want the SES custom MAIL FROM and Easy DKIM fixes", src.Fixes)
	}
}

func TestReadinessForwardedMailDoesNotBlock(t *testing.T) {
	s := readinessStore(t)
	writeDays(t, s, "example.com", "p=quarantine", 3, sesAligned, forwarded, listBroken, spoof)
	d := only(t, runReadinessJSON(t))
	if d.Forwarded != 27 || d.Unauthenticated != 21 || d.Misaligned != 0 || d.Ready != readiness.LevelReject {
		t.Errorf("forwarded %d unauthenticated %d misaligned %d ready %q: want 27 21 0 reject", d.Forwarded, d.Unauthenticated, d.Misaligned, d.Ready)
	}
	if !strings.HasPrefix(d.Next, "p=reject with pct=25") {
		t.Errorf("next %q: from p=quarantine the step is p=reject staged", d.Next)
	}
}

func TestReadinessSpoofingOnlyIsReady(t *testing.T) {
	s := readinessStore(t)
	oneOff := rec{ip: "203.0.113.9", from: "example.com", count: 2, spf: []string{"junk-sender.example/pass"}}
	writeDays(t, s, "example.com", "p=none", 1, spoof, spoofNoAuth, oneOff)
	d := only(t, runReadinessJSON(t))
	if d.Ready != readiness.LevelReject || d.Unauthenticated != 12 || d.Aligned != 0 {
		t.Errorf("ready %q unauthenticated %d aligned %d: want reject, 12 (one-off SPF pass counts as spoofing), 0\n%+v", d.Ready, d.Unauthenticated, d.Aligned, d.Sources)
	}
}

func TestReadinessSubdomainFollowsSPWhenPublished(t *testing.T) {
	news := espUnaligned
	news.from, news.ip = "news.example.com", "198.2.128.2"
	t.Run("no sp: p applies", func(t *testing.T) {
		s := readinessStore(t)
		writeDays(t, s, "example.com", "p=none", 2, sesAligned, news)
		d := only(t, runReadinessJSON(t))
		if d.WhatIf[1].Legitimate != 60 || d.Ready != readiness.LevelNone {
			t.Errorf("what if p=reject hits %v legitimate, ready %q: want 60 from news.example.com, not ready", d.WhatIf[1].Legitimate, d.Ready)
		}
		if !strings.Contains(strings.Join(d.Evidence, "\n"), "news.example.com (60 messages) is under p=none (no sp)") {
			t.Errorf("evidence %q", d.Evidence)
		}
	})
	t.Run("sp=none: p does not reach it", func(t *testing.T) {
		s := readinessStore(t)
		writeDays(t, s, "example.com", "p=none; sp=none", 2, sesAligned, news)
		d := only(t, runReadinessJSON(t))
		if d.WhatIf[1].Legitimate != 0 || d.WhatIf[1].Policy != "p=reject; sp=none" {
			t.Errorf("what if %+v: sp=none keeps the subdomain's mail untouched", d.WhatIf[1])
		}
		// The verdict agrees with that what-if (issue 17 item 7): p's own
		// mail is ready, the subdomain under sp=none is not.
		if d.Ready != readiness.LevelReject || !strings.HasPrefix(d.Verdict, "ready for p=reject") ||
			!strings.Contains(d.Verdict, "sp (news.example.com): not ready") {
			t.Errorf("ready %q, verdict %q: want p ready for reject and news.example.com not ready under sp", d.Ready, d.Verdict)
		}
		if !strings.HasPrefix(d.Next, "p=quarantine with pct=25") || !strings.Contains(d.Next, "sp: keep sp=none and fix esp-mailer.net") {
			t.Errorf("next %q: want p moved on and sp kept at none until the ESP is fixed", d.Next)
		}
	})
}

func TestReadinessHonoursPctAndTesting(t *testing.T) {
	t.Run("pct=50", func(t *testing.T) {
		s := readinessStore(t)
		writeDays(t, s, "example.com", "p=quarantine; pct=50", 1, sesAligned, rec{ip: "203.0.113.1", from: "example.com", count: 100})
		d := only(t, runReadinessJSON(t))
		if im := d.WhatIf[1]; im.Rejected != 50 || im.Quarantined != 50 {
			t.Errorf("p=reject at pct=50: %+v, want 50 rejected and 50 quarantined", im)
		}
		if im := d.WhatIf[0]; im.Quarantined != 50 {
			t.Errorf("p=quarantine at pct=50: %+v, want 50 quarantined", im)
		}
		if !strings.HasPrefix(d.Next, "raise pct from 50 to 100") {
			t.Errorf("next %q", d.Next)
		}
	})
	t.Run("t=y", func(t *testing.T) {
		s := readinessStore(t)
		writeDays(t, s, "example.com", "p=reject; t=y", 1, sesAligned, rec{ip: "203.0.113.1", from: "example.com", count: 100})
		d := only(t, runReadinessJSON(t))
		if im := d.WhatIf[1]; im.Rejected != 0 || im.Quarantined != 100 || im.Policy != "p=reject; t=y" {
			t.Errorf("p=reject with t=y: %+v, want all 100 quarantined", im)
		}
		if d.Next != "remove t=y once the numbers stay clean" {
			t.Errorf("next %q", d.Next)
		}
	})
}

// TestReadinessOnGeneratedSet runs the generator's realistic set through the
// ingest pipeline: the newsletter ESP blocks readiness, the forwarder is
// forwarded, news.example.com is seen, SES's strict notes are given.
func TestReadinessOnGeneratedSet(t *testing.T) {
	s := readinessStore(t)
	files, err := gen.Generate(gen.Options{Days: 7, Start: time.Now().UTC().AddDate(0, 0, -9)})
	if err != nil {
		t.Fatal(err)
	}
	p := ingest.New(s, ingest.Options{})
	for _, f := range files {
		p.Process(context.Background(), f.Name, bytes.NewReader(f.Data))
	}
	d := only(t, runReadinessJSON(t))
	truth := gen.Summarize(files)
	if d.Messages != truth.Messages {
		t.Errorf("%d messages, generator says %d", d.Messages, truth.Messages)
	}
	if d.Ready != readiness.LevelNone || !strings.Contains(d.Verdict, "esp-mailer.net") || d.Forwarded == 0 {
		t.Errorf("verdict %q (forwarded %d): want not ready because of esp-mailer.net", d.Verdict, d.Forwarded)
	}
	var strictNote bool
	for _, st := range d.Strict {
		if st.Change == "adkim=s; aspf=s" && st.Lost == truth.PerDomain["news.example.com"].Messages {
			strictNote = strings.Contains(strings.Join(st.Notes, "\n"), "SES signs with the parent domain")
		}
	}
	if !strictNote {
		t.Errorf("strict: %+v; want news.example.com lost under both strict, with the SES note", d.Strict)
	}
	// Why the evidence is unverified, in ingest's own words (issue 17
	// item 8): every unverified message has its reason.
	var why uint64
	for _, u := range d.UnverifiedWhy {
		why += u.Messages
		if u.Why == "" || u.Do == "" {
			t.Errorf("reason %+v without its explanation", u)
		}
	}
	if d.Unverified == 0 || why != d.Unverified {
		t.Errorf("%d unverified messages, %d explained: %+v", d.Unverified, why, d.UnverifiedWhy)
	}
	if len(d.UnverifiedWhy) != 2 || d.UnverifiedWhy[0].Reason != readiness.UnverifiedDisabled || d.UnverifiedWhy[1].Reason != readiness.UnverifiedNoMail {
		t.Errorf("unverified: %+v; want the mails unchecked (report_auth disabled in this test), then the bare files", d.UnverifiedWhy)
	}
	// The terminal table names the same things.
	var o, e bytes.Buffer
	if code := runReadiness(context.Background(), &env{stdout: &o, stderr: &e}, nil); code != exitOK {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	for _, want := range []string{"example.com  (p=none", "not ready", "esp-mailer.net", "forwarded", "unauthenticated", "what if p=reject"} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, o.String())
		}
	}
	if testing.Verbose() {
		os.Stdout.WriteString(o.String())
	}
}

func TestReadinessSendersFileExtendsBuiltins(t *testing.T) {
	s := readinessStore(t)
	writeDays(t, s, "example.com", "p=none", 2, sesAligned, espUnaligned)
	path := filepath.Join(t.TempDir(), "senders.yaml")
	os.WriteFile(path, []byte("senders:\n  - id: esp\n    name: Our newsletter ESP\n    dkim_domains: [esp-mailer.net]\n    fix_dkim: \"ask the ESP for custom DKIM on {domain}\"\n"), 0o644)
	d := only(t, runReadinessJSON(t, "--senders", path))
	if src := d.Sources[0]; src.Sender != "Our newsletter ESP" || src.Fixes[0] != "ask the ESP for custom DKIM on example.com" {
		t.Errorf("source %+v: want the file's sender and fix", src)
	}
	os.WriteFile(path, []byte("senders:\n  - id: esp\n    name: x\n    bogus: 1\n"), 0o644)
	var o, e bytes.Buffer
	if code := runReadiness(context.Background(), &env{stdout: &o, stderr: &e}, []string{"--senders", path}); code != exitUsage || !strings.Contains(e.String(), "bogus") {
		t.Errorf("bad senders file: exit %d, %q", code, e.String())
	}
}

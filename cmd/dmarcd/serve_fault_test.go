package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// The fault tests of `dmarcd serve` (issue 4): kill -9 at random moments,
// several sources in one process, Dovecot restarted and ClickHouse
// unreachable mid-run. Each ends with exact ClickHouse totals and every
// input in exactly one final folder.

// Folder names of the default processed_mailbox and invalid_mailbox on
// Dovecot, whose hierarchy delimiter is ".".
const (
	processedBox = "dmarcd.processed"
	invalidBox   = "dmarcd.invalid"
)

// input is one mail or spool file of a fault test.
type input struct {
	name string
	data []byte
}

// invalidMails have no report in them: they end in the invalid folder.
var invalidMails = []input{
	{"newsletter.eml", []byte("From: news@shop.example\r\nTo: dmarc@example.com\r\nSubject: Our spring sale\r\n" +
		"Message-ID: <n1@shop.example>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nEverything is 20% off this week.\r\n")},
	{"html-only.eml", []byte("From: ceo@example.com\r\nTo: dmarc@example.com\r\nSubject: hello\r\n" +
		"Message-ID: <h1@example.com>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hi!</p></body></html>\r\n")},
	{"truncated-gzip.eml", []byte("From: noreply-dmarc-support@google.com\r\nTo: dmarc@example.com\r\n" +
		"Subject: Report domain: example.com Submitter: google.com Report-ID: 123\r\n" +
		"Message-ID: <t1@google.com>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: application/gzip; name=\"google.com!example.com!1!2.xml.gz\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nH4sIAAAAAAAAA7Wt\r\n")},
}

// faultMails returns the inputs of a backlog. fixed are the corpus's
// aggregate, failure and TLS report mails, its malformed mails and
// invalidMails; generated are the generator's report mails for days days,
// bare its bare reports (.xml.gz, .zip, for a spool folder), and truth
// sums the generator's reports, each once.
func faultMails(t *testing.T, days int, seed int64) (fixed, generated, bare []input, truth gen.Truth) {
	t.Helper()
	for _, folder := range []string{"email", "forensic", "smtp_tls", "malformed"} {
		paths, err := filepath.Glob(filepath.Join(testenv.CorpusDir(t), "*", folder, "*.eml"))
		if err != nil || len(paths) == 0 {
			t.Fatalf("no corpus mails */%s/*.eml: %v", folder, err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			fixed = append(fixed, input{filepath.Base(p), b})
		}
	}
	fixed = append(fixed, invalidMails...)
	files, err := gen.Generate(gen.Options{Days: days, Seed: seed, Domain: fmt.Sprintf("fault%d.example", seed)})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f.Name, ".eml") {
			generated = append(generated, input{f.Name, f.Data})
		} else {
			bare = append(bare, input{f.Name, f.Data})
		}
	}
	return fixed, generated, bare, gen.Summarize(files)
}

// totals are what ClickHouse holds after a run.
type totals struct {
	Reports, ReportKeys, Records, Messages uint64 // aggregate
	Failure, FailureKeys                   uint64
	TLS, TLSKeys, TLSPolicies              uint64
}

func readTotals(t *testing.T, dsn string) totals {
	t.Helper()
	c := conn(t, dsn)
	ctx := context.Background()
	var x totals
	for _, q := range []struct {
		sql  string
		dest []any
	}{
		{"SELECT count(), uniqExact(report_key) FROM aggregate_reports", []any{&x.Reports, &x.ReportKeys}},
		{"SELECT count(), sum(message_count) FROM aggregate_records", []any{&x.Records, &x.Messages}},
		{"SELECT count(), uniqExact(report_key) FROM failure_reports", []any{&x.Failure, &x.FailureKeys}},
		{"SELECT count(), uniqExact(report_key) FROM tlsrpt_reports", []any{&x.TLS, &x.TLSKeys}},
		{"SELECT count() FROM tlsrpt_policies", []any{&x.TLSPolicies}},
	} {
		if err := c.QueryRow(ctx, q.sql).Scan(q.dest...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return x
}

// reference ingests the mails and spool files once with `dmarcd ingest`
// into a database of its own and adds the generator's truth (its reports
// are not among the inputs given): the totals a correct run ends with, and
// how many of the mails and spool files given are invalid.
//
// The generator's reports are summed, not ingested, because `dmarcd
// ingest` commits input by input and a loaded machine takes a minute for
// a few hundred.
func reference(t *testing.T, bin string, mails, spool []input, truth gen.Truth) (want totals, invalidMails, invalidFiles int) {
	t.Helper()
	dir := t.TempDir()
	for i, m := range mails {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("m%04d-%s", i, m.name)), m.data, 0o644)
	}
	for i, f := range spool {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("s%04d-%s", i, f.name)), f.data, 0o644)
	}
	dsn := testenv.ClickHouse(t)
	outs, code := runJSON(t, bin, dsn, dir)
	if code != 0 || len(outs) != len(mails)+len(spool) {
		t.Fatalf("reference run: exit %d, %d outcomes for %d inputs", code, len(outs), len(mails)+len(spool))
	}
	for _, o := range outs {
		switch {
		case o.Status == "error":
			t.Fatalf("reference run: %s: error %s", o.Input, o.Reason)
		case o.Status != "invalid":
		case strings.HasPrefix(filepath.Base(o.Input), "m"):
			invalidMails++
		default:
			invalidFiles++
		}
	}
	want = readTotals(t, dsn)
	want.Reports += uint64(truth.Reports)
	want.ReportKeys += uint64(truth.Reports)
	want.Records += uint64(truth.Records)
	want.Messages += truth.Messages
	return want, invalidMails, invalidFiles
}

// checkTotals compares the daemon's database with the reference: every
// report once, no record twice.
func checkTotals(t *testing.T, dsn string, want totals) {
	t.Helper()
	got := readTotals(t, dsn)
	if got != want {
		t.Errorf("ClickHouse holds %+v\nwant (reference run)  %+v", got, want)
	}
	if got.Reports != got.ReportKeys || got.Failure != got.FailureKeys || got.TLS != got.TLSKeys {
		t.Errorf("a report is stored twice: %+v", got)
	}
}

// imapCounts logs in afresh (the server may have been restarted) and
// returns the number of mails in each mailbox, 0 for one that does not
// exist.
func imapCounts(addr, user, pass string, boxes ...string) (map[string]int, error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, b := range boxes {
		l, err := c.List("", b, nil).Collect()
		if err != nil {
			return nil, err
		}
		if len(l) == 0 {
			out[b] = 0
			continue
		}
		st, err := c.Status(b, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			return nil, err
		}
		out[b] = int(*st.NumMessages)
	}
	c.Logout().Wait()
	return out, nil
}

func mustCounts(t *testing.T, addr, user, pass string, boxes ...string) map[string]int {
	t.Helper()
	n, err := imapCounts(addr, user, pass, boxes...)
	if err != nil {
		t.Fatalf("IMAP: %v", err)
	}
	return n
}

// appendAll appends the mails to the mailbox over one connection.
func appendAll(t *testing.T, addr, user, pass, mailbox string, mails []input) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	if mailbox != "INBOX" {
		if err := c.Create(mailbox, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", mailbox, err)
		}
	}
	for _, m := range mails {
		cmd := c.Append(mailbox, int64(len(m.data)), nil)
		cmd.Write(m.data)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("APPEND %s: %v", m.name, err)
		}
	}
	c.Logout().Wait()
}

// dropAll renames the files into the spool folder.
func dropAll(t *testing.T, dir string, files []input) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		dropFile(t, dir, fmt.Sprintf("%04d-%s", i, f.name), f.data)
	}
}

// spoolCounts returns the files left in the spool folder and those in
// processed/ and invalid/ (not counting the .reason files).
func spoolCounts(t *testing.T, dir string) (left, processed, invalid int) {
	t.Helper()
	count := func(d string) int {
		n := 0
		if _, err := os.Stat(d); err != nil {
			return 0
		}
		for _, name := range regular(t, d) {
			if !strings.HasSuffix(name, ".reason") {
				n++
			}
		}
		return n
	}
	return count(dir), count(filepath.Join(dir, "processed")), count(filepath.Join(dir, "invalid"))
}

// checkFolders checks that every mail and spool file is in exactly one
// final folder, with the invalid ones in the invalid folder.
func checkFolders(t *testing.T, addr, user, pass, inbox, processed, invalid string, mails, invalidMails int) {
	t.Helper()
	n := mustCounts(t, addr, user, pass, inbox, processed, invalid)
	if n[inbox] != 0 || n[processed] != mails-invalidMails || n[invalid] != invalidMails {
		t.Errorf("%s %d, %s %d, %s %d; want 0, %d, %d", inbox, n[inbox], processed, n[processed],
			invalid, n[invalid], mails-invalidMails, invalidMails)
	}
}

func checkSpool(t *testing.T, dir string, files, invalidFiles int) {
	t.Helper()
	left, processed, invalid := spoolCounts(t, dir)
	if left != 0 || processed != files-invalidFiles || invalid != invalidFiles {
		t.Errorf("spool: %d left, %d processed, %d invalid; want 0, %d, %d", left, processed, invalid,
			files-invalidFiles, invalidFiles)
	}
	if reasons := len(regular(t, filepath.Join(dir, "invalid"))) - invalid; reasons != invalid {
		t.Errorf("spool invalid/ holds %d .reason files for %d files", reasons, invalid)
	}
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "dmarcd.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeKill9DuringBacklog kills `dmarcd serve` with SIGKILL at random
// moments, at least 20 times while it works through a backlog of over 300
// mails and a spool folder, restarting it each time. A moment is an event,
// not a sleep (see killMoment), so that every life ends where it was meant
// to however slow the machine is. At the end ClickHouse
// holds what a clean `dmarcd ingest` of the same inputs holds, every mail is
// in exactly one of the processed and invalid folders and every file in
// exactly one of processed/ and invalid/.
func TestServeKill9DuringBacklog(t *testing.T) {
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	addr, user, pass := testenv.Dovecot(t)
	fixed, generated, bare, truth := faultMails(t, 80, 41)
	badFiles := []input{{"notes.txt", []byte("not a report\n")}, {"empty.xml.gz", nil}}
	want, invalidMails, invalidFiles := reference(t, bin, fixed, badFiles, truth)
	mails := slices.Concat(fixed, generated)
	rand.Shuffle(len(mails), func(i, j int) { mails[i], mails[j] = mails[j], mails[i] })
	spoolFiles := slices.Concat(bare, badFiles)
	if len(mails) < 300 {
		t.Fatalf("only %d mails in the backlog, want at least 300", len(mails))
	}

	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	phase := time.Now()
	appendAll(t, addr, user, pass, "INBOX", mails)
	dropAll(t, spool, spoolFiles)
	t.Logf("APPEND: %v", time.Since(phase).Round(time.Millisecond))
	httpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`http: {listen: %s}
owned_domains: ["*"]
sources:
  - {name: mailbox, type: imap, address: %s, tls: none, username: %s, poll_interval: 1s, concurrency: 4}
  - {name: drop, type: spool, path: %s, settle: 200ms, poll_interval: 1s}
`, httpAddr, addr, user, spool))
	// Chunks of 4 mails (two in hand): many moments within the backlog
	// for the 20 kills, each chunk still committed as one group.
	env := []string{"DMARCD_CLICKHOUSE_DSN=" + dsn, "DMARCD_SOURCES_MAILBOX_PASSWORD=" + pass}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 41))
	start := time.Now()
	kills, midRun := 0, 0
	left := len(mails)
	moments := map[string]int{}
	for midRun < 20 && kills < 80 {
		d := startServe(t, bin, cfg, httpAddr, env...)
		// A life's share of the mails still left keeps the INBOX from
		// emptying before 20 kills.
		moment := killMoment(t, rng, d, left, left/(20-midRun+2), func() (int, bool) {
			n, err := imapCounts(addr, user, pass, "INBOX")
			return n["INBOX"], err == nil
		})
		moments[moment]++
		d.cmd.Process.Kill()
		<-d.done
		kills++
		if left = mustCounts(t, addr, user, pass, "INBOX")["INBOX"]; left == 0 {
			break
		}
		midRun++
	}
	t.Logf("%d kills in %v (%v), %d with the INBOX not yet empty; %d of %d mails left",
		kills, time.Since(start).Round(time.Millisecond), moments, midRun, left, len(mails))
	if midRun < 20 {
		t.Errorf("only %d kills landed mid-backlog, want 20", midRun)
	}

	start = time.Now()
	d := startServe(t, bin, cfg, httpAddr, env...)
	waitDraining(t, "the INBOX and the spool folder to empty", 2*time.Minute, func() (int, bool) {
		l, _, _ := spoolCounts(t, spool)
		n, err := imapCounts(addr, user, pass, "INBOX")
		return n["INBOX"] + l, err == nil
	})
	d.waitReady(t, 200, 2*time.Minute)
	t.Logf("last run finished the backlog in %v", time.Since(start).Round(time.Millisecond))
	d.stop(t)

	checkFolders(t, addr, user, pass, "INBOX", processedBox, invalidBox, len(mails), invalidMails)
	checkSpool(t, spool, len(spoolFiles), invalidFiles)
	checkTotals(t, dsn, want)
}

// lifeBound fails a life of the daemon that reaches no kill moment: it is
// stuck, not slow (a life moves its first mail within seconds).
const lifeBound = 3 * time.Minute

// killMoment waits for a random moment of a daemon's life and names it: at
// once (mid start-up), when it logs that it serves (its sources starting),
// or, most often, when it has moved between 1 and share mails out of the
// INBOX (mid-fetch, mid-INSERT, between commit and MOVE, as the pipeline
// stands when the count is seen). before is the INBOX count at the start
// of the life, inbox counts the mails left. The daemon
// exiting on its own fails the test.
func killMoment(t *testing.T, rng *rand.Rand, d *daemonProc, before, share int, inbox func() (int, bool)) string {
	t.Helper()
	exited := func() bool {
		select {
		case <-d.done:
			t.Fatalf("dmarcd serve exited %d before it was killed", d.code)
		default:
		}
		return false
	}
	switch r := rng.IntN(4); r {
	case 0:
		return "at once"
	case 1:
		waitFor(t, "dmarcd serve to log that it serves", lifeBound, func() bool {
			return exited() || strings.Contains(d.log.String(), "dmarcd serving")
		})
		return "serving"
	}
	k := 1 + rng.IntN(max(share, 1))
	waitFor(t, fmt.Sprintf("dmarcd serve to move %d mails", k), lifeBound, func() bool {
		n, ok := inbox()
		return exited() || ok && (n <= before-k || n == 0)
	})
	return "after mails"
}

// waitDraining polls remaining every 100ms until it is 0. It fails only
// when the count has not gone down for stall: a loaded machine is slow, not
// stuck, so no deadline bounds the whole.
func waitDraining(t *testing.T, what string, stall time.Duration, remaining func() (int, bool)) {
	t.Helper()
	last, since := -1, time.Now()
	for {
		n, ok := remaining()
		if ok && n == 0 {
			return
		}
		if ok && (last < 0 || n < last) {
			last, since = n, time.Now()
		}
		if time.Since(since) > stall {
			t.Fatalf("waiting for %s: stuck at %d for %v", what, last, stall)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServeTwoMailboxesAndSpool runs two IMAP sources (two mailboxes of a
// Dovecot user, each with its own processed and invalid folders) and a
// spool folder in one process: all is ingested once and /metrics shows the
// three sources up.
func TestServeTwoMailboxesAndSpool(t *testing.T) {
	t.Parallel()
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	addr, user, pass := testenv.Dovecot(t)
	files, err := gen.Generate(gen.Options{Days: 12, Seed: 43, Domain: "two-mailboxes.example"})
	if err != nil {
		t.Fatal(err)
	}
	truth := gen.Summarize(files)
	var first, second, spoolFiles []input
	for i, f := range files {
		switch {
		case !strings.HasSuffix(f.Name, ".eml"):
			spoolFiles = append(spoolFiles, input{f.Name, f.Data})
		case i%2 == 0:
			first = append(first, input{f.Name, f.Data})
		default:
			second = append(second, input{f.Name, f.Data})
		}
	}
	first = append(first, invalidMails[0])
	second = append(second, invalidMails[1])
	spoolFiles = append(spoolFiles, input{"notes.txt", []byte("not a report\n")})

	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	appendAll(t, addr, user, pass, "INBOX", first)
	appendAll(t, addr, user, pass, "Reports", second)
	dropAll(t, spool, spoolFiles)
	httpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`http: {listen: %[1]s}
owned_domains: ["*"]
sources:
  - {name: first, type: imap, address: %[2]s, tls: none, username: %[3]s, poll_interval: 1s}
  - name: second
    type: imap
    address: %[2]s
    tls: none
    username: %[3]s
    mailbox: Reports
    processed_mailbox: reports/processed
    invalid_mailbox: reports/invalid
    poll_interval: 1s
  - {name: drop, type: spool, path: %[4]s, settle: 200ms, poll_interval: 1s}
`, httpAddr, addr, user, spool))
	start := time.Now()
	d := startServe(t, bin, cfg, httpAddr, "DMARCD_CLICKHOUSE_DSN="+dsn,
		"DMARCD_SOURCES_FIRST_PASSWORD="+pass, "DMARCD_SOURCES_SECOND_PASSWORD="+pass)
	waitDraining(t, "both mailboxes and the spool folder to empty", 2*time.Minute, func() (int, bool) {
		l, _, _ := spoolCounts(t, spool)
		n, err := imapCounts(addr, user, pass, "INBOX", "Reports")
		return n["INBOX"] + n["Reports"] + l, err == nil
	})
	t.Logf("%d + %d mails and %d files ingested in %v", len(first), len(second), len(spoolFiles),
		time.Since(start).Round(time.Millisecond))
	d.waitReady(t, 200, 30*time.Second)
	_, metrics := d.get("/metrics")
	for _, s := range []string{"imap:first", "imap:second", "spool:drop"} {
		if want := fmt.Sprintf(`dmarcd_source_up{source=%q} 1`, s); !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if n := strings.Count(metrics, "dmarcd_source_up{"); n != 3 {
		t.Errorf("/metrics has %d dmarcd_source_up series, want 3", n)
	}
	d.stop(t)

	checkFolders(t, addr, user, pass, "INBOX", processedBox, invalidBox, len(first), 1)
	checkFolders(t, addr, user, pass, "Reports", "reports.processed", "reports.invalid", len(second), 1)
	checkSpool(t, spool, len(spoolFiles), 1)
	got := readTotals(t, dsn)
	if got.Reports != uint64(truth.Reports) || got.Records != uint64(truth.Records) || got.Messages != truth.Messages {
		t.Errorf("ClickHouse holds %d reports, %d records, %d messages; want %d, %d, %d",
			got.Reports, got.Records, got.Messages, truth.Reports, truth.Records, truth.Messages)
	}
}

// TestServeSurvivesDovecotRestartAndClickHouseOutage restarts Dovecot while
// the daemon works through a backlog, then makes ClickHouse unreachable for
// 30 seconds (a relay that drops every connection and refuses new ones)
// while more mail arrives: /readyz goes 503 and then 200 each time, and at
// the end nothing is lost or doubled.
func TestServeSurvivesDovecotRestartAndClickHouseOutage(t *testing.T) {
	t.Parallel()
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	dov := testenv.StartDovecot(t, testenv.DovecotOptions{})
	addr, user, pass := dov.Addr, dov.User, dov.Password
	fixed, generated, bare, truth := faultMails(t, 25, 47)
	want, invalidMails, invalidFiles := reference(t, bin, fixed, nil, truth)
	mails := slices.Concat(fixed, generated)
	rand.Shuffle(len(mails), func(i, j int) { mails[i], mails[j] = mails[j], mails[i] })
	half := len(mails) / 2

	// The daemon reaches ClickHouse through a relay the test can cut.
	chAddr, db, ok := strings.Cut(strings.TrimPrefix(dsn, "clickhouse://"), "/")
	if !ok {
		t.Fatalf("DSN %q", dsn)
	}
	relay := newCutRelay(t, chAddr)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	appendAll(t, addr, user, pass, "INBOX", mails[:half])
	httpAddr := freeAddr(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`http: {listen: %s}
clickhouse: {dsn: "clickhouse://%s/%s?dial_timeout=1s"}
owned_domains: ["*"]
sources:
  - {name: mailbox, type: imap, address: %s, tls: none, username: %s, poll_interval: 1s}
  - {name: drop, type: spool, path: %s, settle: 200ms, poll_interval: 1s}
`, httpAddr, relay.addr, db, addr, user, spool))
	d := startServe(t, bin, cfg, httpAddr, "DMARCD_SOURCES_MAILBOX_PASSWORD="+pass)
	d.waitReady(t, 200, 30*time.Second)

	// Dovecot killed once the daemon is mid-backlog.
	waitFor(t, "the first mails to be processed", 60*time.Second, func() bool {
		n, err := imapCounts(addr, user, pass, processedBox)
		return err == nil && n[processedBox] >= 10
	})
	start := time.Now()
	dov.Stop()
	body := d.waitReady(t, 503, 30*time.Second)
	t.Logf("Dovecot stopped: 503 after %v: %q", time.Since(start).Round(time.Millisecond), strings.TrimSpace(body))
	if !strings.Contains(body, "imap:mailbox") {
		t.Errorf("/readyz body %q does not name imap:mailbox", body)
	}
	dov.Start()
	start = time.Now()
	d.waitReady(t, 200, 60*time.Second)
	t.Logf("Dovecot restarted: 200 again after %v", time.Since(start).Round(time.Millisecond))

	// ClickHouse unreachable for 30 s while the rest of the backlog and
	// the spool files arrive.
	appendAll(t, addr, user, pass, "INBOX", mails[half:])
	dropAll(t, spool, bare)
	start = time.Now()
	relay.target("127.0.0.1:1")
	body = d.waitReady(t, 503, 30*time.Second)
	t.Logf("ClickHouse cut: 503 after %v: %q", time.Since(start).Round(time.Millisecond), strings.TrimSpace(body))
	if !strings.Contains(body, "clickhouse:") {
		t.Errorf("/readyz body %q does not name clickhouse", body)
	}
	inbox := mustCounts(t, addr, user, pass, "INBOX")["INBOX"]
	if inbox == 0 {
		t.Errorf("the INBOX is empty right after ClickHouse was cut: the outage did not land mid-backlog")
	}
	for time.Since(start) < 30*time.Second {
		if code, _ := d.get("/readyz"); code == 200 {
			t.Fatalf("/readyz 200 %v after ClickHouse was cut", time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := mustCounts(t, addr, user, pass, "INBOX")["INBOX"]; n > inbox {
		t.Errorf("the INBOX grew from %d to %d mails during the outage", inbox, n)
	} else if n == 0 {
		t.Errorf("the INBOX emptied while ClickHouse was unreachable")
	}
	relay.target(chAddr)
	start = time.Now()
	d.waitReady(t, 200, 60*time.Second)
	t.Logf("ClickHouse back: 200 again after %v", time.Since(start).Round(time.Millisecond))
	waitDraining(t, "the INBOX and the spool folder to empty", 2*time.Minute, func() (int, bool) {
		l, _, _ := spoolCounts(t, spool)
		n, err := imapCounts(addr, user, pass, "INBOX")
		return n["INBOX"] + l, err == nil
	})
	t.Logf("backlog done %v after ClickHouse came back", time.Since(start).Round(time.Millisecond))
	d.stop(t)

	checkFolders(t, addr, user, pass, "INBOX", processedBox, invalidBox, len(mails), invalidMails)
	checkSpool(t, spool, len(bare), invalidFiles)
	checkTotals(t, dsn, want)
}

// cutRelay forwards loopback TCP connections to a target; changing the
// target also drops the connections open through it, so that pooled
// client connections see the outage too.
type cutRelay struct {
	addr  string
	mu    sync.Mutex
	to    string
	conns map[net.Conn]bool
}

func newCutRelay(t *testing.T, to string) *cutRelay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &cutRelay{addr: l.Addr().String(), to: to, conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		l.Close()
		r.target("127.0.0.1:1")
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *cutRelay) target(to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.to = to
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}

// track registers open connections; false when the target changed since to
// was read.
func (r *cutRelay) track(to string, cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.to != to {
		return false
	}
	for _, c := range cs {
		r.conns[c] = true
	}
	return true
}

func (r *cutRelay) untrack(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		delete(r.conns, c)
	}
}

func (r *cutRelay) serve(c net.Conn) {
	defer c.Close()
	r.mu.Lock()
	to := r.to
	r.mu.Unlock()
	s, err := net.DialTimeout("tcp", to, time.Second)
	if err != nil {
		return
	}
	defer s.Close()
	if !r.track(to, c, s) {
		return
	}
	defer r.untrack(c, s)
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
}

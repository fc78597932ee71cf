package ingest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/failure"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
	"github.com/dmarcd/dmarcd/store"
)

// The test Dovecot (scripts/dovecot.sh) uses maildir's "." hierarchy
// delimiter, so the default folders "dmarcd/processed" and "dmarcd/invalid"
// are spelled like this on it.
const (
	dovecotProcessed = "dmarcd.processed"
	dovecotInvalid   = "dmarcd.invalid"
)

// imapMail is one mail to APPEND, with where it came from.
type imapMail struct {
	name string
	data []byte
}

// newsletter and htmlOnly are mails with no report in them.
var (
	newsletter = imapMail{"newsletter", []byte("From: news@shop.example\r\nTo: dmarc@example.com\r\n" +
		"Subject: Our spring sale\r\nMessage-ID: <n1@shop.example>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nEverything is 20% off this week.\r\n")}
	htmlOnly = imapMail{"html-only", []byte("From: ceo@example.com\r\nTo: dmarc@example.com\r\n" +
		"Subject: hello\r\nMessage-ID: <h1@example.com>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hi!</p></body></html>\r\n")}
)

// corpusMails returns the corpus mails in the folders named (email:
// aggregate reports, forensic: failure reports, smtp_tls: TLS reports).
func corpusMails(t *testing.T, folders ...string) []imapMail {
	t.Helper()
	if len(folders) == 0 {
		folders = []string{"email"}
	}
	var paths []string
	for _, f := range folders {
		p, err := filepath.Glob(filepath.Join(testenv.CorpusDir(t), "*", f, "*.eml"))
		if err != nil || len(p) == 0 {
			t.Fatalf("no corpus mails */%s/*.eml: %v", f, err)
		}
		paths = append(paths, p...)
	}
	var out []imapMail
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, imapMail{p, b})
	}
	return out
}

// generatedMails returns the generator's report mails (not its bare report
// files) and their truth.
func generatedMails(t *testing.T) ([]imapMail, gen.Truth) {
	t.Helper()
	files, err := gen.Generate(gen.Options{Days: 7, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var mails []imapMail
	var emls []gen.File
	for _, f := range files {
		if strings.HasSuffix(f.Name, ".eml") {
			mails = append(mails, imapMail{f.Name, f.Data})
			emls = append(emls, f)
		}
	}
	return mails, gen.Summarize(emls)
}

// imapTestClient logs in to the test server as the test harness, to put
// mails in and look at the folders.
func imapTestClient(t *testing.T, addr, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

func appendMails(t *testing.T, c *imapclient.Client, mailbox string, mails ...imapMail) {
	t.Helper()
	for _, m := range mails {
		cmd := c.Append(mailbox, int64(len(m.data)), nil)
		if _, err := cmd.Write(m.data); err != nil {
			t.Fatalf("APPEND %s: %v", m.name, err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatalf("APPEND %s: %v", m.name, err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("APPEND %s: %v", m.name, err)
		}
	}
}

// count returns the number of mails in the mailbox, 0 if it does not exist.
func count(t *testing.T, c *imapclient.Client, mailbox string) int {
	t.Helper()
	l, err := c.List("", mailbox, nil).Collect()
	if err != nil {
		t.Fatalf("LIST %s: %v", mailbox, err)
	}
	if len(l) == 0 {
		return 0
	}
	st, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS %s: %v", mailbox, err)
	}
	return int(*st.NumMessages)
}

func imapSource(addr, user, pass string, p *ingest.Pipeline) *ingest.IMAPSource {
	return ingest.NewIMAPSource(ingest.IMAPConfig{Name: "test", Address: addr, TLS: ingest.IMAPTLSNone,
		Username: user, Password: pass, PollInterval: time.Second}, p, testLogger())
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: testLogLevel}))
}

// TestIMAPBacklogIsIngestedExactlyOnce puts the corpus report mails
// (aggregate, failure and TLS reports), the generator's report mails and
// two mails without reports into a real Dovecot INBOX: one Once moves every
// mail to exactly one of the processed and invalid folders, leaves the
// INBOX empty, stores the failure and TLS reports as such, and ClickHouse
// holds each distinct aggregate report once with the generator's exact
// totals. The same mails delivered again are all duplicates and change
// nothing.
func TestIMAPBacklogIsIngestedExactlyOnce(t *testing.T) {
	t.Parallel()
	addr, user, pass := testenv.Dovecot(t)
	corpus := corpusMails(t)
	failureAndTLS := corpusMails(t, "forensic", "smtp_tls")
	generated, truth := generatedMails(t)
	st, ch := openStore(t)
	c := imapTestClient(t, addr, user, pass)

	mails := append(append(append(append([]imapMail{}, corpus...), failureAndTLS...), generated...), newsletter, htmlOnly)
	isGenerated := map[string]bool{}
	for _, m := range generated {
		isGenerated[m.name] = true
	}
	wantKind := map[string]string{} // corpus failure and TLS report mails
	for _, m := range failureAndTLS {
		wantKind[m.name] = "failure"
		if filepath.Base(filepath.Dir(m.name)) == "smtp_tls" {
			wantKind[m.name] = "tlsrpt"
		}
	}
	p := ingest.New(st, ingest.Options{Source: "imap", Privacy: ingest.Privacy{Key: []byte("imap-test-key-0123456789")}})
	src := imapSource(addr, user, pass, p)

	type seen struct {
		records  int
		messages uint64
	}
	run := func(round int) (stored, dup, invalid int, keys, genKeys map[string]seen, kinds map[string]int) {
		t.Helper()
		appendMails(t, c, "INBOX", mails...)
		keys, genKeys, kinds = map[string]seen{}, map[string]seen{}, map[string]int{}
		var outs []ingest.Outcome
		start := time.Now()
		if err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, o) }); err != nil {
			t.Fatalf("round %d: Once: %v", round, err)
		}
		t.Logf("round %d: %d mails in %v", round, len(outs), time.Since(start).Round(time.Millisecond))
		if len(outs) != len(mails) {
			t.Fatalf("round %d: %d outcomes for %d mails", round, len(outs), len(mails))
		}
		for i, o := range outs {
			// UIDs follow APPEND order: outcome i is mail i.
			m := mails[i]
			if !strings.HasPrefix(o.Input, "imap://"+user+"@"+addr+"/INBOX;UID=") {
				t.Errorf("input name %q, want imap://%s@%s/INBOX;UID=n", o.Input, user, addr)
			}
			if k := wantKind[m.name]; k != "" && (o.Kind != k || o.Status != ingest.Stored && o.Status != ingest.Duplicate) {
				t.Errorf("round %d: %s: %s %s (%s: %s), want a %s report stored or duplicate",
					round, m.name, o.Kind, o.Status, o.ReasonCode, o.Reason, k)
			}
			switch o.Status {
			case ingest.Stored, ingest.Duplicate:
				if o.Status == ingest.Stored {
					stored++
				} else {
					dup++
				}
				kinds[o.Kind]++
				if o.Kind != "aggregate" {
					break
				}
				for _, k := range o.ReportKeys {
					keys[k] = seen{o.Records, o.Messages}
					if isGenerated[m.name] {
						genKeys[k] = seen{o.Records, o.Messages}
					}
				}
			case ingest.Invalid:
				invalid++
				if m.name != newsletter.name && m.name != htmlOnly.name {
					t.Errorf("round %d: %s: invalid (%s: %s)", round, m.name, o.ReasonCode, o.Reason)
				}
			default:
				t.Errorf("round %d: %s: %s (%s: %s)", round, m.name, o.Status, o.ReasonCode, o.Reason)
			}
		}
		return
	}

	stored, dup, invalid, keys, genKeys, kinds := run(1)
	if kinds["failure"] != 7 || kinds["tlsrpt"] != 4 {
		t.Errorf("mails stored or duplicate by kind: %v; want 7 failure and 4 tlsrpt (the corpus's)", kinds)
	}
	var failures, tlsReports uint64
	if err := ch.QueryRow(context.Background(), "SELECT count() FROM failure_reports").Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueryRow(context.Background(), "SELECT count() FROM tlsrpt_reports").Scan(&tlsReports); err != nil {
		t.Fatal(err)
	}
	// The two LinkedIn mails (LF and CRLF) are one failure report.
	if failures != 6 || tlsReports != 4 {
		t.Errorf("ClickHouse holds %d failure reports and %d TLS reports, want 6 and 4", failures, tlsReports)
	}
	if n := count(t, c, "INBOX"); n != 0 {
		t.Errorf("%d mails left in INBOX, want 0", n)
	}
	if n := count(t, c, dovecotProcessed); n != stored+dup {
		t.Errorf("%s holds %d mails, want %d (stored %d + duplicate %d)", dovecotProcessed, n, stored+dup, stored, dup)
	}
	if n := count(t, c, dovecotInvalid); n != invalid || invalid != 2 {
		t.Errorf("%s holds %d mails, %d outcomes invalid; want 2 (the newsletter and the HTML-only mail)", dovecotInvalid, n, invalid)
	}
	var genRecords int
	var genMessages uint64
	for _, s := range genKeys {
		genRecords += s.records
		genMessages += s.messages
	}
	if len(genKeys) != truth.Reports || genRecords != truth.Records || genMessages != truth.Messages {
		t.Errorf("generated mails: %d reports, %d records, %d messages stored; the generator says %d, %d, %d",
			len(genKeys), genRecords, genMessages, truth.Reports, truth.Records, truth.Messages)
	}
	reports, records, messages := aggregateCounts(t, ch)
	var wantRecords int
	var wantMessages uint64
	for _, s := range keys {
		wantRecords += s.records
		wantMessages += s.messages
	}
	if reports != uint64(len(keys)) || records != uint64(wantRecords) || messages != wantMessages {
		t.Fatalf("ClickHouse holds %d reports, %d records, %d messages; want %d, %d, %d",
			reports, records, messages, len(keys), wantRecords, wantMessages)
	}

	// The same mails again: every report is a duplicate, nothing changes.
	stored2, dup2, invalid2, keys2, _, _ := run(2)
	if stored2 != 0 || dup2 != stored+dup || invalid2 != invalid || len(keys2) != len(keys) {
		t.Errorf("second delivery: %d stored, %d duplicate, %d invalid, %d keys; want 0, %d, %d, %d",
			stored2, dup2, invalid2, len(keys2), stored+dup, invalid, len(keys))
	}
	if n := count(t, c, "INBOX"); n != 0 {
		t.Errorf("after the second delivery %d mails left in INBOX, want 0", n)
	}
	if n := count(t, c, dovecotProcessed) + count(t, c, dovecotInvalid); n != 2*len(mails) {
		t.Errorf("processed + invalid hold %d mails, want %d", n, 2*len(mails))
	}
	r2, rec2, msg2 := aggregateCounts(t, ch)
	if r2 != reports || rec2 != records || msg2 != messages {
		t.Errorf("after the second delivery ClickHouse holds %d reports, %d records, %d messages; want %d, %d, %d",
			r2, rec2, msg2, reports, records, messages)
	}
	t.Logf("%d mails: %d stored, %d duplicate, %d invalid; %d reports, %d records, %d messages",
		len(mails), stored, dup, invalid, reports, records, messages)
}

// TestIMAPRunIngestsMailAppendedWhileIdling runs the source in the
// background: it ingests the backlog, then a mail appended while it idles
// reaches the processed folder within seconds; cancelling the context ends
// Run with nil.
func TestIMAPRunIngestsMailAppendedWhileIdling(t *testing.T) {
	addr, user, pass := testenv.Dovecot(t)
	generated, _ := generatedMails(t)
	st, ch := openStore(t)
	c := imapTestClient(t, addr, user, pass)
	appendMails(t, c, "INBOX", generated[0])

	// No polling: only IDLE can announce the new mail in time.
	src := ingest.NewIMAPSource(ingest.IMAPConfig{Name: "test", Address: addr, TLS: ingest.IMAPTLSNone,
		Username: user, Password: pass, PollInterval: time.Hour}, ingest.New(st, ingest.Options{Source: "imap"}), testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
	}()

	waitUntil(t, "backlog mail processed", 10*time.Second, func() bool { return count(t, c, dovecotProcessed) == 1 })
	time.Sleep(300 * time.Millisecond) // let it enter IDLE
	appendMails(t, c, "INBOX", generated[1])
	// An hour between polls: only IDLE gets the mail in within the bound,
	// which a loaded machine may need most of.
	took := waitUntil(t, "mail appended while idling processed", 30*time.Second, func() bool {
		return count(t, c, dovecotProcessed) == 2 && count(t, c, "INBOX") == 0
	})
	t.Logf("mail appended while idling was processed after %v", took.Round(time.Millisecond))
	if reports, _, _ := aggregateCounts(t, ch); reports != 2 {
		t.Errorf("ClickHouse holds %d reports, want 2", reports)
	}
}

// failingStore is a store whose ClickHouse is unreachable. The tests that
// use it hold aggregate report mails and mails without a report only: the
// embedded nil Store stands for the methods they never reach.
type failingStore struct{ ingest.Store }

var errStoreDown = errors.New("dial tcp 127.0.0.1:9000: connect: connection refused")

func (failingStore) WriteAggregate(context.Context, *aggregate.Header, store.InputMeta, func() (*enrich.Record, error)) (store.WriteResult, error) {
	return store.WriteResult{}, errStoreDown
}

func (failingStore) LogInput(context.Context, store.InputRow) error { return errStoreDown }

// TestIMAPStoreErrorLeavesMailsInInbox: when the store fails, report mails
// stay in the INBOX to be retried and Once says so; a mail without a report
// still goes to the invalid folder; after three errors in a row the pass
// stops instead of downloading every mail.
func TestIMAPStoreErrorLeavesMailsInInbox(t *testing.T) {
	generated, _ := generatedMails(t)
	addr, user, pass := testenv.Dovecot(t)
	c := imapTestClient(t, addr, user, pass)
	appendMails(t, c, "INBOX", generated[0], newsletter, generated[1], generated[2], generated[3], generated[4])

	// One mail at a time, so that the pass's stop is exact.
	src := ingest.NewIMAPSource(ingest.IMAPConfig{Name: "test", Address: addr, TLS: ingest.IMAPTLSNone,
		Username: user, Password: pass, Concurrency: 1}, ingest.New(failingStore{}, ingest.Options{Source: "imap"}), testLogger())
	var outs []ingest.Outcome
	err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, o) })
	if !errors.Is(err, ingest.ErrIMAPMailsLeft) || !strings.Contains(err.Error(), "4 in INBOX met an error and 1 were not tried") {
		t.Fatalf("Once returned %v, want ErrIMAPMailsLeft saying 4 met an error and 1 was not tried", err)
	}
	var statuses []string
	for _, o := range outs {
		statuses = append(statuses, string(o.Status)+"/"+o.ReasonCode)
	}
	// The newsletter breaks the run of errors; the last mail is not read.
	want := []string{"error/store_unavailable", "invalid/not_a_report",
		"error/store_unavailable", "error/store_unavailable", "error/store_unavailable"}
	if fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Errorf("outcomes %v, want %v (the pass stops after 3 errors in a row)", statuses, want)
	}
	if n := count(t, c, "INBOX"); n != 5 {
		t.Errorf("INBOX holds %d mails, want the 5 report mails", n)
	}
	if n := count(t, c, dovecotInvalid); n != 1 {
		t.Errorf("%s holds %d mails, want 1 (the newsletter)", dovecotInvalid, n)
	}
	if n := count(t, c, dovecotProcessed); n != 0 {
		t.Errorf("%s holds %d mails, want 0", dovecotProcessed, n)
	}
}

// TestIMAPStoreErrorsInChunks: with mails processed four at a time, a
// chunk's outcomes come in UID order, the newsletter still goes to the
// invalid folder in the middle of errors, and the pass stops after the chunk
// that brought the third error in a row.
func TestIMAPStoreErrorsInChunks(t *testing.T) {
	generated, _ := generatedMails(t)
	addr, user, pass := testenv.Dovecot(t)
	c := imapTestClient(t, addr, user, pass)
	appendMails(t, c, "INBOX", generated[0], newsletter, generated[1], generated[2], generated[3],
		generated[4], generated[5], generated[6], generated[7], generated[8])

	src := ingest.NewIMAPSource(ingest.IMAPConfig{Name: "test", Address: addr, TLS: ingest.IMAPTLSNone,
		Username: user, Password: pass, Concurrency: 4}, ingest.New(failingStore{}, ingest.Options{Source: "imap"}), testLogger())
	var outs []string
	err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, o.Input+" "+string(o.Status)) })
	if !errors.Is(err, ingest.ErrIMAPMailsLeft) || !strings.Contains(err.Error(), "7 in INBOX met an error and 2 were not tried") {
		t.Fatalf("Once returned %v, want ErrIMAPMailsLeft saying 7 met an error and 2 were not tried", err)
	}
	want := []string{"UID=1 error", "UID=2 invalid", "UID=3 error", "UID=4 error", "UID=5 error", "UID=6 error",
		"UID=7 error", "UID=8 error"}
	if len(outs) != len(want) {
		t.Fatalf("outcomes %q, want %d (two chunks of four)", outs, len(want))
	}
	for i, o := range outs {
		if !strings.HasSuffix(o, want[i]) {
			t.Errorf("outcome %d is %q, want one ending %q", i, o, want[i])
		}
	}
	if n := count(t, c, "INBOX"); n != 9 {
		t.Errorf("INBOX holds %d mails, want the 9 report mails", n)
	}
	if n := count(t, c, dovecotInvalid); n != 1 {
		t.Errorf("%s holds %d mails, want 1 (the newsletter)", dovecotInvalid, n)
	}
}

// switchStore is the real store, made unreachable while down is set.
type switchStore struct {
	ingest.Store
	down atomic.Bool
}

func (s *switchStore) WriteAggregate(ctx context.Context, h *aggregate.Header, m store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	if s.down.Load() {
		return store.WriteResult{}, errStoreDown
	}
	return s.Store.WriteAggregate(ctx, h, m, next)
}

func (s *switchStore) LogInput(ctx context.Context, in store.InputRow) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.Store.LogInput(ctx, in)
}

func (s *switchStore) ready(context.Context) error {
	if s.down.Load() {
		return errStoreDown
	}
	return nil
}

// TestIMAPRetriesAsSoonAsTheStoreIsBack: mails that met store errors are
// retried as soon as StoreReady answers again, not at the next step of the
// retry backoff, which after a few failed passes is 20 seconds or more.
func TestIMAPRetriesAsSoonAsTheStoreIsBack(t *testing.T) {
	generated, _ := generatedMails(t)
	addr, user, pass := testenv.Dovecot(t)
	c := imapTestClient(t, addr, user, pass)
	real, _ := openStore(t)
	st := &switchStore{Store: real}
	st.down.Store(true)
	appendMails(t, c, "INBOX", generated[:6]...)

	old := ingest.StoreProbeInterval
	ingest.StoreProbeInterval = 100 * time.Millisecond
	t.Cleanup(func() { ingest.StoreProbeInterval = old })
	var errs atomic.Int32
	obs := &countingObserver{onError: func() { errs.Add(1) }}
	src := ingest.NewIMAPSource(ingest.IMAPConfig{Name: "test", Address: addr, TLS: ingest.IMAPTLSNone,
		Username: user, Password: pass, PollInterval: time.Hour, StoreReady: st.ready},
		ingest.New(st, ingest.Options{Source: "imap", Observer: obs}), testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// Three failed passes (of a chunk of four mails each): the next step
	// of the backoff is 10-20 s.
	deadline := time.Now().Add(60 * time.Second)
	for errs.Load() < 3*4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := errs.Load(); n < 3*4 {
		t.Fatalf("%d mail errors after 60 s, want 3 failed passes of 4", n)
	}
	time.Sleep(5 * ingest.StoreProbeInterval) // the probe sees the store down
	st.down.Store(false)
	back := time.Now()
	for count(t, c, "INBOX") > 0 && time.Since(back) < 8*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	if n := count(t, c, "INBOX"); n > 0 {
		t.Fatalf("%d mails still in the INBOX %v after the store came back: the retry waited for the backoff", n,
			time.Since(back).Round(time.Millisecond))
	}
	t.Logf("INBOX emptied %v after the store came back", time.Since(back).Round(time.Millisecond))
	if n := count(t, c, dovecotProcessed); n != 6 {
		t.Errorf("%s holds %d mails, want 6", dovecotProcessed, n)
	}
}

// countingObserver calls onError for each input whose outcome is an error.
type countingObserver struct{ onError func() }

func (o *countingObserver) Input(_ string, out ingest.Outcome, _ time.Duration) {
	if out.Status == ingest.Error {
		o.onError()
	}
}
func (o *countingObserver) FailureStored(*failure.Report)       {}
func (o *countingObserver) TLSRPTStored(*tlsrpt.Report)         {}
func (o *countingObserver) Stage(string, string, time.Duration) {}

// TestIMAPTooLargeMailIsNotDownloaded: a mail over MaxMessageBytes (by its
// RFC822.SIZE) goes to the invalid folder as too_large without being read.
func TestIMAPTooLargeMailIsNotDownloaded(t *testing.T) {
	addr, user, pass := testenv.Dovecot(t)
	c := imapTestClient(t, addr, user, pass)
	big := imapMail{"big", append(bytes.Clone(newsletter.data), bytes.Repeat([]byte("0123456789abcdef\r\n"), 1000)...)}
	appendMails(t, c, "INBOX", big)

	src := ingest.NewIMAPSource(ingest.IMAPConfig{Address: addr, TLS: ingest.IMAPTLSNone, Username: user, Password: pass,
		MaxMessageBytes: 4096}, ingest.New(failingStore{}, ingest.Options{Source: "imap"}), testLogger())
	var outs []ingest.Outcome
	if err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, o) }); err != nil {
		t.Fatalf("Once: %v", err)
	}
	if len(outs) != 1 || outs[0].Status != ingest.Invalid || outs[0].ReasonCode != string(parse.TooLarge) || outs[0].SHA256 != "" {
		t.Fatalf("outcomes %+v, want one invalid too_large, not downloaded (no sha256)", outs)
	}
	if n := count(t, c, dovecotInvalid); n != 1 {
		t.Errorf("%s holds %d mails, want 1", dovecotInvalid, n)
	}
}

// TestIMAPWrongPasswordStopsRun: a rejected password ends Run promptly with
// ErrIMAPAuth instead of retrying forever. (Once shares the login code; it
// is not tried here because Dovecot delays the next login from an address
// after a failure by several seconds.)
func TestIMAPWrongPasswordStopsRun(t *testing.T) {
	addr, user, _ := testenv.Dovecot(t)
	src := imapSource(addr, user, "not-the-password", ingest.New(failingStore{}, ingest.Options{Source: "imap"}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := src.Run(ctx)
	if !errors.Is(err, ingest.ErrIMAPAuth) {
		t.Fatalf("Run returned %v after %v, want ErrIMAPAuth", err, time.Since(start))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v to give up, want a prompt return", d)
	}
	t.Logf("Run gave up after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), user) {
		t.Errorf("error %q does not name the user %q", err, user)
	}
}

// TestIMAPMovesWhereTheServerLacksMOVE: without MOVE the mail is copied,
// marked \Deleted and expunged by UID (UIDPLUS), which leaves a mail the
// user marked \Deleted alone; without UIDPLUS too it is only copied and
// marked \Deleted, never expunged. Either way a second pass finds nothing.
func TestIMAPMovesWhereTheServerLacksMOVE(t *testing.T) {
	for _, tc := range []struct {
		caps      string
		wantInbox int // the user's \Deleted mail, plus ours where nothing is expunged
	}{
		{"IMAP4rev1 IDLE UIDPLUS", 1},
		{"IMAP4rev1 IDLE", 3},
	} {
		t.Run(strings.ReplaceAll(tc.caps, " ", "_"), func(t *testing.T) {
			addr, user, pass := testenv.DovecotWith(t, testenv.DovecotOptions{IMAPCapability: tc.caps})
			c := imapTestClient(t, addr, user, pass)
			userDeleted := c.Append("INBOX", int64(len(htmlOnly.data)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDeleted}})
			userDeleted.Write(htmlOnly.data)
			if err := userDeleted.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := userDeleted.Wait(); err != nil {
				t.Fatal(err)
			}
			appendMails(t, c, "INBOX", newsletter, htmlOnly)

			src := imapSource(addr, user, pass, ingest.New(failingStore{}, ingest.Options{Source: "imap"}))
			for round, want := range []int{2, 0} {
				n := 0
				if err := src.Once(context.Background(), func(ingest.Outcome) { n++ }); err != nil {
					t.Fatalf("round %d: Once: %v", round+1, err)
				}
				if n != want {
					t.Errorf("round %d: %d mails processed, want %d", round+1, n, want)
				}
			}
			if n := count(t, c, dovecotInvalid); n != 2 {
				t.Errorf("%s holds %d mails, want 2", dovecotInvalid, n)
			}
			if n := count(t, c, "INBOX"); n != tc.wantInbox {
				t.Errorf("INBOX holds %d mails, want %d", n, tc.wantInbox)
			}
		})
	}
}

// testLogLevel: Warn keeps test output short; Info shows every mail.
var testLogLevel = slog.LevelWarn

// TestIMAPRunReconnectsAfterServerRestart: when the server goes away, Run
// keeps retrying with backoff, and once it is back it processes new mail
// again without being restarted.
func TestIMAPRunReconnectsAfterServerRestart(t *testing.T) {
	d := testenv.StartDovecot(t, testenv.DovecotOptions{})
	c := imapTestClient(t, d.Addr, d.User, d.Password)
	appendMails(t, c, "INBOX", newsletter)

	src := imapSource(d.Addr, d.User, d.Password, ingest.New(failingStore{}, ingest.Options{Source: "imap"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	}()
	waitUntil(t, "first mail set aside", 10*time.Second, func() bool { return count(t, c, dovecotInvalid) == 1 })

	d.Stop()
	time.Sleep(2 * time.Second) // Run notices, fails to reconnect, backs off
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while the server was down, want it to keep retrying", err)
	default:
	}
	d.Start()
	c = imapTestClient(t, d.Addr, d.User, d.Password)
	appendMails(t, c, "INBOX", htmlOnly)
	took := waitUntil(t, "mail after the restart set aside", 15*time.Second, func() bool {
		return count(t, c, dovecotInvalid) == 2 && count(t, c, "INBOX") == 0
	})
	t.Logf("mail after the restart processed %v after it was appended", took.Round(time.Millisecond))
}

// waitUntil polls cond until it holds and returns how long that took; the
// test fails after d.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, d)
	return 0
}

// TestIMAPTLSVerifiesTheServerCertificate: against a Dovecot with a
// self-signed certificate, implicit TLS and STARTTLS both refuse the
// connection by default with a certificate error that is not a rejected
// credential (no login was tried), and both work once the certificate is
// in CAFile, or with InsecureSkipVerify.
func TestIMAPTLSVerifiesTheServerCertificate(t *testing.T) {
	d := testenv.StartDovecot(t, testenv.DovecotOptions{TLS: true})
	c := imapTestClient(t, d.Addr, d.User, d.Password)
	for _, tc := range []struct {
		name, mode, addr string
	}{
		{"implicit", ingest.IMAPTLSImplicit, d.TLSAddr},
		{"starttls", ingest.IMAPTLSStartTLS, d.Addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := func(ca string, insecure bool) *ingest.IMAPSource {
				return ingest.NewIMAPSource(ingest.IMAPConfig{Address: tc.addr, TLS: tc.mode, CAFile: ca,
					InsecureSkipVerify: insecure, Username: d.User, Password: d.Password},
					ingest.New(failingStore{}, ingest.Options{Source: "imap"}), testLogger())
			}
			err := src("", false).Once(context.Background(), nil)
			var cve *tls.CertificateVerificationError
			if !errors.As(err, &cve) || errors.Is(err, ingest.ErrIMAPAuth) || !strings.Contains(err.Error(), "ca_file") {
				t.Fatalf("Once without the CA returned %v, want a certificate verification error naming ca_file, not ErrIMAPAuth", err)
			}
			t.Logf("without the CA: %v", err)
			for _, insecure := range []bool{false, true} {
				ca := d.CAFile
				if insecure {
					ca = ""
				}
				appendMails(t, c, "INBOX", newsletter)
				n := 0
				if err := src(ca, insecure).Once(context.Background(), func(ingest.Outcome) { n++ }); err != nil || n != 1 {
					t.Errorf("Once with ca_file %q, insecure_skip_verify %v: %v, %d mails; want nil, 1", ca, insecure, err, n)
				}
			}
		})
	}
}

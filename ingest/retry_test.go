package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

// poisonDomain is the policy domain of the poison reports: the store fails
// every write of one, as ClickHouse fails a report it chokes on, while it
// answers pings and stores every other report.
const poisonDomain = "poison.example"

// poisonStore fails the aggregate reports for poisonDomain with a plain
// (retryable) error and passes every other call to its Store; it answers
// pings while up is true.
type poisonStore struct {
	ingest.Store
	mu     sync.Mutex
	writes map[string]int // poison write attempts by report ID
	down   bool
}

func newPoisonStore(st ingest.Store) *poisonStore {
	return &poisonStore{Store: st, writes: map[string]int{}}
}

var errPoison = errors.New("code: 999, message: the server chokes on this report")

func (s *poisonStore) WriteAggregate(ctx context.Context, h *aggregate.Header, m store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	if h.Domain == poisonDomain {
		s.mu.Lock()
		s.writes[h.ReportID]++
		s.mu.Unlock()
		return store.WriteResult{}, errPoison
	}
	return s.Store.WriteAggregate(ctx, h, m, next)
}

// poisonWrites is the number of poison writes tried.
func (s *poisonStore) poisonWrites() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, w := range s.writes {
		n += w
	}
	return n
}

func (s *poisonStore) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errStoreDown
	}
	if p, ok := s.Store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

// aggStore is an in-memory store of aggregate reports, each key once.
type aggStore struct {
	ingest.Store // failure and TLS reports: not used by these tests
	mu           sync.Mutex
	keys         map[string]bool
	inputs       []store.InputRow
}

func newAggStore() *aggStore { return &aggStore{keys: map[string]bool{}} }

func (s *aggStore) WriteAggregate(_ context.Context, h *aggregate.Header, _ store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	res, err := readReport(h, next)
	if err != nil {
		return res, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys[res.ReportKey] {
		res.Status = store.StatusDuplicate
	}
	s.keys[res.ReportKey] = true
	return res, nil
}

func (s *aggStore) LogInput(_ context.Context, in store.InputRow) error {
	s.mu.Lock()
	s.inputs = append(s.inputs, in)
	s.mu.Unlock()
	return nil
}

// memAttempts is an AttemptLog in memory: an attempt begun and never
// ended is one the process died with.
type memAttempts struct {
	mu           sync.Mutex
	begins, ends map[string]int
	inHand       int            // attempts begun and not ended
	others       map[string]int // by id: attempts of other inputs in hand at its last begin
	deaths       map[string]int // by part of the id: earlier deaths alone to count at the first begin
	groupDeaths  map[string]int // by part of the id: earlier deaths with others in hand
	alone        map[string]int // by source and id: deaths alone
	aloneMarks   map[string]int // by id: attempts marked alone
}

func newMemAttempts() *memAttempts {
	return &memAttempts{begins: map[string]int{}, ends: map[string]int{}, others: map[string]int{}, deaths: map[string]int{},
		groupDeaths: map[string]int{}, alone: map[string]int{}, aloneMarks: map[string]int{}}
}

func (a *memAttempts) BeginAttempt(_ context.Context, source, id string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for part, n := range a.deaths {
		if strings.Contains(id, part) {
			a.begins[source+" "+id] += n
			a.alone[source+" "+id] += n
			delete(a.deaths, part)
		}
	}
	for part, n := range a.groupDeaths {
		if strings.Contains(id, part) {
			a.begins[source+" "+id] += n
			delete(a.groupDeaths, part)
		}
	}
	k := source + " " + id
	n := a.begins[k] - a.ends[k]
	a.begins[k]++
	a.others[id] = a.inHand
	a.inHand++
	return n, nil
}

func (a *memAttempts) AloneAttempt(_ context.Context, source, id string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.aloneMarks[id]++
	return a.alone[source+" "+id], nil
}

func (a *memAttempts) EndAttempt(_ context.Context, source, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ends[source+" "+id]++
	a.inHand--
	return nil
}

// dieOn makes the input whose id contains part look as if the process had
// died n times with it alone in hand.
func (a *memAttempts) dieOn(part string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deaths[part] = n
}

// dieInGroupOn makes the input whose id contains part look as if the
// process had died n times with it in hand among others.
func (a *memAttempts) dieInGroupOn(part string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.groupDeaths[part] = n
}

// markedAlone returns how many attempts of the input whose id ends with
// suffix were marked alone.
func (a *memAttempts) markedAlone(suffix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for id, m := range a.aloneMarks {
		if strings.HasSuffix(id, suffix) {
			n += m
		}
	}
	return n
}

// inHandAt returns how many other attempts were in hand when the input
// whose id ends with suffix was last begun.
func (a *memAttempts) inHandAt(suffix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, n := range a.others {
		if strings.HasSuffix(id, suffix) {
			return n
		}
	}
	return -1
}

// fastRetry retries within milliseconds and sets an input aside after 5
// errors, whenever they came.
var fastRetry = ingest.RetryPolicy{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond, Span: -1}

// dropOld writes the files into dir with an old modification time: they
// are settled at once.
func dropOld(t *testing.T, dir string, files ...gen.File) {
	t.Helper()
	old := time.Now().Add(-time.Minute)
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// poisonAndGood returns n poison report files (named so that they come
// first in name order) and m good ones.
func poisonAndGood(t *testing.T, n, m int) (poison, good []gen.File) {
	t.Helper()
	pf, err := gen.Generate(gen.Options{Domain: poisonDomain, Days: 2, Seed: 31})
	if err != nil {
		t.Fatal(err)
	}
	gf, err := gen.Generate(gen.Options{Domain: "good.example", Days: 2, Seed: 32})
	if err != nil {
		t.Fatal(err)
	}
	if len(pf) < n || len(gf) < m {
		t.Fatalf("generator gave %d and %d files, want %d and %d", len(pf), len(gf), n, m)
	}
	for i := range pf[:n] {
		pf[i].Name = fmt.Sprintf("a-poison-%d-%s", i, pf[i].Name)
	}
	for i := range gf[:m] {
		gf[i].Name = fmt.Sprintf("b-good-%d-%s", i, gf[i].Name)
	}
	return pf[:n], gf[:m]
}

// TestSpoolPoisonFilesDoNotHoldBackGoodOnes drops four files whose
// reports the store fails forever (while it answers pings) in front of
// good ones: the first pass stores and moves every good file although the
// four failed first, and Run then retries each poison file with its own
// backoff until it is set aside to invalid/ as retries_exhausted with its
// .reason, after exactly Attempts tries.
func TestSpoolPoisonFilesDoNotHoldBackGoodOnes(t *testing.T) {
	dir := t.TempDir()
	poison, good := poisonAndGood(t, 4, 3)
	dropOld(t, dir, append(append([]gen.File{}, poison...), good...)...)
	st := newPoisonStore(newAggStore())
	src := ingest.NewSpoolSource(ingest.SpoolConfig{Path: dir, PollInterval: time.Hour, Retry: fastRetry},
		ingest.New(st, ingest.Options{Source: "spool"}), testLogger())

	var outs []ingest.Outcome
	err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, o) })
	if !errors.Is(err, ingest.ErrSpoolFilesLeft) || !strings.Contains(err.Error(), "4 met an error and 0 were not tried") {
		t.Fatalf("first pass: %v, want ErrSpoolFilesLeft: 4 met an error and 0 were not tried", err)
	}
	if len(outs) != 7 {
		t.Fatalf("first pass: %d outcomes, want all 7 files tried", len(outs))
	}
	for i, o := range outs {
		if ok := o.Status == ingest.Error; i >= 4 {
			if ok = o.Status == ingest.Stored || o.Status == ingest.Duplicate; !ok {
				t.Errorf("first pass: %s: %s (%s), want stored", filepath.Base(o.Input), o.Status, o.Reason)
			}
		} else if !ok {
			t.Errorf("first pass: %s: %s (%s), want error", filepath.Base(o.Input), o.Status, o.Reason)
		}
	}
	if got := names(t, filepath.Join(dir, ingest.SpoolProcessedDir)); len(got) != 3 {
		t.Errorf("processed/ after the first pass holds %v, want the 3 good files", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	waitUntil(t, "poison files set aside", 20*time.Second, func() bool {
		return len(names(t, filepath.Join(dir, ingest.SpoolInvalidDir))) == 8
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("spool folder still holds %v", got)
	}
	for _, f := range poison {
		reason, err := os.ReadFile(filepath.Join(dir, ingest.SpoolInvalidDir, f.Name+".reason"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(reason), "reason_code: retries_exhausted\n") || !strings.Contains(string(reason), "failed 5 times") {
			t.Errorf("%s.reason:\n%s\nwant retries_exhausted after 5 failures", f.Name, reason)
		}
	}
	if n := st.poisonWrites(); n != 4*ingest.DefaultRetryAttempts {
		t.Errorf("poison reports written %d times, want %d (4 files, %d tries each)", n,
			4*ingest.DefaultRetryAttempts, ingest.DefaultRetryAttempts)
	}
}

// poisonMails returns n poison report mails and m good ones.
func poisonMails(t *testing.T, n, m int) (poison, good []imapMail) {
	t.Helper()
	p, g := generatedMailsFor(t, poisonDomain, 31), generatedMailsFor(t, "good.example", 32)
	if len(p) < n || len(g) < m {
		t.Fatalf("generator gave %d and %d mails, want %d and %d", len(p), len(g), n, m)
	}
	return p[:n], g[:m]
}

// generatedMailsFor returns the generator's report mails for domain.
func generatedMailsFor(t *testing.T, domain string, seed int64) []imapMail {
	t.Helper()
	files, err := gen.Generate(gen.Options{Domain: domain, Days: 3, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	var mails []imapMail
	for _, f := range files {
		if strings.HasSuffix(f.Name, ".eml") && !f.Reports[0].Duplicate {
			mails = append(mails, imapMail{f.Name, f.Data})
		}
	}
	return mails
}

// TestIMAPPoisonMailsDoNotHoldBackGoodOnes puts four mails whose reports
// the store fails forever (while ClickHouse answers pings and stores every
// other report) in front of two good ones in a real Dovecot INBOX: the
// first pass stores the good mails in ClickHouse and moves them although
// the four failed first (before, three errors in a row ended every pass),
// and Run then retries each poison mail with its own backoff until it goes
// to the invalid folder as retries_exhausted, logged so in ClickHouse.
func TestIMAPPoisonMailsDoNotHoldBackGoodOnes(t *testing.T) {
	poison, good := poisonMails(t, 4, 2)
	addr, user, pass := testenv.Dovecot(t)
	c := imapTestClient(t, addr, user, pass)
	appendMails(t, c, "INBOX", append(append([]imapMail{}, poison...), good...)...)
	real, ch := openStore(t)
	st := newPoisonStore(real)
	src := ingest.NewIMAPSource(ingest.IMAPConfig{Name: "test", Address: addr, TLS: ingest.IMAPTLSNone,
		Username: user, Password: pass, PollInterval: time.Hour, Retry: fastRetry},
		ingest.New(st, ingest.Options{Source: "imap"}), testLogger())

	var outs []string
	err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, string(o.Status)) })
	if !errors.Is(err, ingest.ErrIMAPMailsLeft) || !strings.Contains(err.Error(), "4 in INBOX met an error and 0 were not tried") {
		t.Fatalf("first pass: %v, want ErrIMAPMailsLeft: 4 met an error and 0 were not tried", err)
	}
	if fmt.Sprint(outs) != "[error error error error stored stored]" {
		t.Errorf("first pass outcomes %v, want 4 errors then the 2 good mails stored", outs)
	}
	if n := count(t, c, dovecotProcessed); n != 2 {
		t.Errorf("%s holds %d mails after the first pass, want the 2 good ones", dovecotProcessed, n)
	}
	if reports, _, _ := aggregateCounts(t, ch); reports != 2 {
		t.Errorf("ClickHouse holds %d reports after the first pass, want 2", reports)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	waitUntil(t, "poison mails set aside", 30*time.Second, func() bool { return count(t, c, dovecotInvalid) == 4 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := count(t, c, "INBOX"); n != 0 {
		t.Errorf("INBOX still holds %d mails", n)
	}
	var exhausted uint64
	if err := ch.QueryRow(context.Background(), "SELECT uniqExact(name) FROM inputs WHERE status = 'invalid' AND reason_code = 'retries_exhausted'").Scan(&exhausted); err != nil {
		t.Fatal(err)
	}
	if exhausted != 4 {
		t.Errorf("inputs table: %d mails invalid retries_exhausted, want 4", exhausted)
	}
	if n := st.poisonWrites(); n != 4*ingest.DefaultRetryAttempts {
		t.Errorf("poison reports written %d times, want %d", n, 4*ingest.DefaultRetryAttempts)
	}
}

// TestIMAPMailInHandAtDeathsIsSetAsideOrProcessedAlone: with an attempt
// log, a mail that was alone in hand when the process died twice is put
// off from its chunk, then set aside unread to the invalid folder as
// retries_exhausted; one that was in hand at one death is processed alone
// after its chunk (a killer takes no other mail along); the others of the
// chunk are processed together; every attempt begun is ended.
func TestIMAPMailInHandAtDeathsIsSetAsideOrProcessedAlone(t *testing.T) {
	_, good := poisonMails(t, 0, 4)
	addr, user, pass := testenv.Dovecot(t)
	c := imapTestClient(t, addr, user, pass)
	appendMails(t, c, "INBOX", good...)
	att := newMemAttempts()
	att.dieOn(";UID=2", 2)
	att.dieOn(";UID=3", 1)
	src := ingest.NewIMAPSource(ingest.IMAPConfig{Name: "test", Address: addr, TLS: ingest.IMAPTLSNone,
		Username: user, Password: pass, Concurrency: 4, Attempts: att},
		ingest.New(newAggStore(), ingest.Options{Source: "imap"}), testLogger())
	var outs []string
	if err := src.Once(context.Background(), func(o ingest.Outcome) {
		outs = append(outs, fmt.Sprintf("%s %s/%s read=%t", o.Input[strings.LastIndexByte(o.Input, ';')+1:], o.Status,
			o.ReasonCode, o.SHA256 != ""))
	}); err != nil {
		t.Fatalf("Once: %v", err)
	}
	want := "[UID=1 stored/ read=true UID=4 stored/ read=true UID=2 invalid/retries_exhausted read=false UID=3 stored/ read=true]"
	if fmt.Sprint(outs) != want {
		t.Errorf("outcomes\n%v, want\n%s", outs, want)
	}
	if n := att.inHandAt(";UID=3"); n != 0 {
		t.Errorf("the mail in hand at one death was processed with %d others in hand, want alone", n)
	}
	if n := att.inHandAt(";UID=4"); n != 1 {
		t.Errorf("UID 4 was begun with %d others in hand, want 1 (UID 1 of its chunk)", n)
	}
	if n := att.markedAlone(";UID=2") + att.markedAlone(";UID=3"); n != 2 {
		t.Errorf("%d attempts of the suspects marked alone, want 2", n)
	}
	if att.inHand != 0 {
		t.Errorf("%d attempts left in hand, want every one ended", att.inHand)
	}
	if n := count(t, c, dovecotInvalid); n != 1 {
		t.Errorf("%s holds %d mails, want 1", dovecotInvalid, n)
	}
	if n := count(t, c, dovecotProcessed); n != 3 {
		t.Errorf("%s holds %d mails, want 3", dovecotProcessed, n)
	}
}

// TestSpoolFileInHandAtDeathsIsSetAsideUnread: a spool file that was alone
// in hand when the process died twice goes to invalid/ unread, with a
// reason that says so; the next file is stored.
func TestSpoolFileInHandAtDeathsIsSetAsideUnread(t *testing.T) {
	dir := t.TempDir()
	_, good := poisonAndGood(t, 0, 2)
	dropOld(t, dir, good...)
	att := newMemAttempts()
	att.dieOn(good[0].Name+";", 2)
	src := ingest.NewSpoolSource(ingest.SpoolConfig{Path: dir, Attempts: att},
		ingest.New(newAggStore(), ingest.Options{Source: "spool"}), testLogger())
	var outs []ingest.Outcome
	if err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, o) }); err != nil {
		t.Fatalf("Once: %v", err)
	}
	if len(outs) != 2 || outs[0].Status != ingest.Invalid || outs[0].ReasonCode != "retries_exhausted" || outs[0].SHA256 != "" ||
		outs[1].Status != ingest.Stored {
		t.Fatalf("outcomes %+v, want the first set aside unread (retries_exhausted), the second stored", outs)
	}
	reason, err := os.ReadFile(filepath.Join(dir, ingest.SpoolInvalidDir, good[0].Name+".reason"))
	if err != nil || !strings.Contains(string(reason), "was alone in hand when the process died 2 times") {
		t.Errorf("%s.reason: %q, %v", good[0].Name, reason, err)
	}
	if att.inHand != 0 {
		t.Errorf("%d attempts left in hand, want every one ended", att.inHand)
	}
}

// TestS3PoisonObjectsDoNotHoldBackGoodOnes puts four objects whose reports
// the store fails forever (while ClickHouse answers pings and stores every
// other report) in front of two good ones in a versitygw bucket: the first
// pass stores the good ones and moves them to processed/ although the four
// failed first (before, three errors in a row ended every pass), and Run
// then retries each poison object with its own backoff until it is moved
// to invalid/ with reason code retries_exhausted in its metadata. An
// object that was in hand when the process died twice is set aside unread.
func TestS3PoisonObjectsDoNotHoldBackGoodOnes(t *testing.T) {
	b := newS3Bucket(t)
	poison, good := poisonAndGood(t, 4, 3)
	want := map[string]string{}
	for _, f := range poison {
		b.put(t, "incoming/"+f.Name, f.Data)
		want[f.Name] = "invalid/"
	}
	for _, f := range good {
		b.put(t, "incoming/"+f.Name, f.Data)
		want[f.Name] = "processed/"
	}
	want[good[2].Name] = "invalid/" // the killer
	real, ch := openStore(t)
	st := newPoisonStore(real)
	att := newMemAttempts()
	att.dieOn("/incoming/"+good[2].Name+"#", 2)
	obs := &counter{}
	cfg := b.config()
	cfg.Retry, cfg.Attempts, cfg.Observer, cfg.PollInterval = fastRetry, att, obs, time.Hour
	src := newSource(t, cfg, ingest.New(st, ingest.Options{Source: "s3"}))

	var outs []string
	err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, string(o.Status)+"/"+o.ReasonCode) })
	if !errors.Is(err, ingest.ErrS3ObjectsLeft) || !strings.Contains(err.Error(), "4 in s3://") ||
		!strings.Contains(err.Error(), "met an error and 0 were not tried") {
		t.Fatalf("first pass: %v, want ErrS3ObjectsLeft: 4 met an error and 0 were not tried", err)
	}
	if fmt.Sprint(outs) != "[error/store_unavailable error/store_unavailable error/store_unavailable error/store_unavailable stored/ stored/ invalid/retries_exhausted]" {
		t.Errorf("first pass outcomes %v, want 4 errors, 2 stored, the killer set aside", outs)
	}
	if n := obs.fetched.Load(); n != 6 {
		t.Errorf("%d objects downloaded, want 6 (not the killer)", n)
	}
	if reports, _, _ := aggregateCounts(t, ch); reports != 2 {
		t.Errorf("ClickHouse holds %d reports after the first pass, want 2", reports)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	// Moved: copied to invalid/ and deleted from incoming/ (a copy seen
	// before its delete must not end the wait).
	waitUntil(t, "poison objects set aside", 30*time.Second, func() bool {
		return len(b.keys(t, "invalid/")) == 5 && len(b.keys(t, "incoming/")) == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	assertPlaces(t, b, want)
	for _, f := range poison {
		h, err := b.c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(b.name), Key: aws.String("invalid/" + f.Name)})
		if err != nil {
			t.Fatal(err)
		}
		if code := h.Metadata["dmarcd-reason-code"]; code != "retries_exhausted" {
			t.Errorf("invalid/%s: reason code %q, want retries_exhausted", f.Name, code)
		}
	}
	if n := st.poisonWrites(); n != 4*ingest.DefaultRetryAttempts {
		t.Errorf("poison reports written %d times, want %d", n, 4*ingest.DefaultRetryAttempts)
	}
	if att.inHand != 0 {
		t.Errorf("%d attempts left in hand, want every one ended", att.inHand)
	}
}

// The ClickHouse store is the sources' attempt log and store probe.
var (
	_ ingest.AttemptLog = (*store.Store)(nil)
	_ interface {
		Ping(context.Context) error
	} = (*store.Store)(nil)
)

// TestAnInputInHandAmongOthersAtEveryDeathIsProcessedAloneAndStored: a
// spool file that was in hand, with others, at more deaths than
// Retry.Deaths is only a suspect: it is read with nothing else in hand,
// marked alone, and stored; so is an S3 or IMAP input (same guard).
func TestAnInputInHandAmongOthersAtEveryDeathIsProcessedAloneAndStored(t *testing.T) {
	dir := t.TempDir()
	_, good := poisonAndGood(t, 0, 6)
	dropOld(t, dir, good...)
	att := newMemAttempts()
	att.dieInGroupOn(good[2].Name+";", 5)
	src := ingest.NewSpoolSource(ingest.SpoolConfig{Path: dir, Attempts: att, Concurrency: 32},
		ingest.New(newAggStore(), ingest.Options{Source: "spool"}), testLogger())
	var outs []ingest.Outcome
	if err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, o) }); err != nil {
		t.Fatalf("Once: %v", err)
	}
	if len(outs) != len(good) {
		t.Fatalf("%d outcomes, want %d", len(outs), len(good))
	}
	for _, o := range outs {
		if o.Status != ingest.Stored {
			t.Errorf("%s: %s/%s, want stored", filepath.Base(o.Input), o.Status, o.ReasonCode)
		}
	}
	att.mu.Lock()
	marks := 0
	for id, m := range att.aloneMarks {
		if strings.HasPrefix(id, good[2].Name+";") {
			marks += m
		}
	}
	att.mu.Unlock()
	if marks != 1 {
		t.Errorf("the suspect was marked alone %d times, want 1", marks)
	}
	if att.inHand != 0 {
		t.Errorf("%d attempts left in hand, want every one ended", att.inHand)
	}
}

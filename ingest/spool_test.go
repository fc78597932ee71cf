package ingest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// spoolDomain is the generator's policy domain in the spool tests: no
// corpus report is for it, so ClickHouse totals for it are the generator's.
const spoolDomain = "dmarcd-spool.example"

// names lists the regular files in dir, without those starting with ".".
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// corpusSpoolFiles returns the corpus's aggregate reports and report mails,
// named after their repository so that equal names do not collide.
func corpusSpoolFiles(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, pattern := range []string{"*/aggregate/*", "*/email/*.eml"} {
		paths, err := filepath.Glob(filepath.Join(testenv.CorpusDir(t), pattern))
		if err != nil || len(paths) == 0 {
			t.Fatalf("no corpus files %s: %v", pattern, err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(testenv.CorpusDir(t), p)
			out[strings.NewReplacer("/", "_", "!", "_").Replace(rel)] = b
		}
	}
	return out
}

// TestSpoolRunIngestsDroppedFilesOnceAndNeverHalfWritten runs a spool
// source and drops into its folder generated reports (some renamed in, some
// written in place in two chunks with a pause shorter than the settle time,
// some written at once), corpus reports, a mail with no report, an empty
// file and a hidden file. Every file but the hidden one ends in processed/
// or invalid/ (with its .reason), no generated report is read half (it
// would be invalid), a name dropped twice gets a suffix, and ClickHouse
// holds the generator's exact totals.
func TestSpoolRunIngestsDroppedFilesOnceAndNeverHalfWritten(t *testing.T) {
	st, ch := openStore(t)
	files, err := gen.Generate(gen.Options{Domain: spoolDomain, Days: 3, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	truth := gen.Summarize(files)
	corpus := corpusSpoolFiles(t)

	dir := filepath.Join(t.TempDir(), "spool")
	staging := t.TempDir() // same file system: rename is atomic
	// Settle is well above the writers' 300 ms pause: on a loaded machine a
	// goroutine's sleep may end hundreds of milliseconds late.
	src := ingest.NewSpoolSource(ingest.SpoolConfig{Name: "test", Path: dir, Settle: 2 * time.Second,
		PollInterval: 5 * time.Second}, ingest.New(st, ingest.Options{Source: "spool"}), testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for src.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", src.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(dir, ".partial.eml"), []byte("not yet"), 0o644); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	slow := 0
	for i, f := range files {
		path := filepath.Join(dir, f.Name)
		switch i % 3 {
		case 0: // the convention: write elsewhere, rename in
			tmp := filepath.Join(staging, f.Name)
			if err := os.WriteFile(tmp, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		case 1: // in place, slowly: the first half, a pause, the rest
			if slow++; slow > 8 {
				os.WriteFile(path, f.Data, 0o644)
				continue
			}
			wg.Add(1)
			go func(data []byte) {
				defer wg.Done()
				w, err := os.Create(path)
				if err != nil {
					t.Error(err)
					return
				}
				defer w.Close()
				w.Write(data[:len(data)/2])
				time.Sleep(300 * time.Millisecond)
				w.Write(data[len(data)/2:])
			}(f.Data)
		default:
			if err := os.WriteFile(path, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, data := range corpus {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "newsletter.eml"), []byte(newsletter.data), 0o644)
	os.WriteFile(filepath.Join(dir, "empty.xml"), nil, 0o644)
	wg.Wait()
	dropped := len(files) + len(corpus) + 2

	waitEmpty := func() {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for len(names(t, dir)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("files still in the spool folder after 60s: %v", names(t, dir))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitEmpty()
	processed, invalid := names(t, filepath.Join(dir, "processed")), names(t, filepath.Join(dir, "invalid"))
	reasons := 0
	invalidSet := map[string]bool{}
	for _, n := range invalid {
		if strings.HasSuffix(n, ".reason") {
			reasons++
		} else {
			invalidSet[n] = true
		}
	}
	if len(processed)+len(invalidSet) != dropped {
		t.Errorf("%d processed + %d invalid, want the %d files dropped", len(processed), len(invalidSet), dropped)
	}
	if reasons != len(invalidSet) {
		t.Errorf("%d .reason files for %d invalid files", reasons, len(invalidSet))
	}
	for _, f := range files {
		if invalidSet[f.Name] {
			b, _ := os.ReadFile(filepath.Join(dir, "invalid", f.Name+".reason"))
			t.Errorf("generated %s ended invalid (read half-written?): %s", f.Name, b)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "invalid", "newsletter.eml.reason")); err != nil || !strings.Contains(string(b), "reason_code: not_a_report") {
		t.Errorf("newsletter.eml.reason: %q, %v; want reason_code: not_a_report", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".partial.eml")); err != nil {
		t.Errorf("the hidden file must be left alone: %v", err)
	}

	// The same name again: a duplicate, moved beside the first under a suffix.
	if err := os.WriteFile(filepath.Join(dir, files[0].Name), files[0].Data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(dir, files[0].Name), time.Now().Add(-time.Minute), time.Now().Add(-time.Minute))
	waitEmpty()
	if _, err := os.Stat(filepath.Join(dir, "processed", files[0].Name+".1")); err != nil {
		t.Errorf("a second %s must land as %s.1: %v", files[0].Name, files[0].Name, err)
	}

	var reports, records, messages uint64
	if err := ch.QueryRow(context.Background(), "SELECT count() FROM aggregate_reports WHERE policy_domain = ?", spoolDomain).Scan(&reports); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueryRow(context.Background(), "SELECT count(), sum(message_count) FROM aggregate_records WHERE policy_domain = ?", spoolDomain).Scan(&records, &messages); err != nil {
		t.Fatal(err)
	}
	if reports != uint64(truth.Reports) || records != uint64(truth.Records) || messages != truth.Messages {
		t.Errorf("ClickHouse holds %d reports, %d records, %d messages for %s; want %d, %d, %d",
			reports, records, messages, spoolDomain, truth.Reports, truth.Records, truth.Messages)
	}
}

// TestSpoolStoreUnreachableLeavesFilesInPlace: with the store's connection
// gone, report files stay in the folder to be retried and Once says so,
// while a file with no report still goes to invalid/.
func TestSpoolStoreUnreachableLeavesFilesInPlace(t *testing.T) {
	st, _ := openStore(t)
	st.Close() // ClickHouse unreachable from here on
	files, err := gen.Generate(gen.Options{Domain: spoolDomain, Days: 1, Seed: 12})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	old := time.Now().Add(-time.Minute)
	for _, f := range files[:2] {
		os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644)
		os.Chtimes(filepath.Join(dir, f.Name), old, old)
	}
	os.WriteFile(filepath.Join(dir, "newsletter.eml"), newsletter.data, 0o644)
	os.Chtimes(filepath.Join(dir, "newsletter.eml"), old, old)

	src := ingest.NewSpoolSource(ingest.SpoolConfig{Path: dir}, ingest.New(st, ingest.Options{Source: "spool"}), testLogger())
	var outs []ingest.Outcome
	err = src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, o) })
	if !errors.Is(err, ingest.ErrSpoolFilesLeft) {
		t.Fatalf("Once: %v, want ErrSpoolFilesLeft", err)
	}
	if got := names(t, dir); len(got) != 2 || got[0] != files[0].Name && got[1] != files[0].Name {
		t.Errorf("spool folder holds %v, want the 2 report files", got)
	}
	if got := names(t, filepath.Join(dir, "invalid")); len(got) != 2 {
		t.Errorf("invalid/ holds %v, want newsletter.eml and its .reason", got)
	}
	for _, o := range outs {
		if strings.HasSuffix(o.Input, ".eml") && o.Input != filepath.Join(dir, "newsletter.eml") && o.Status != ingest.Error {
			t.Errorf("%s: status %s, want error", o.Input, o.Status)
		}
	}
}

// swapAfterListing makes the spool source find, when it opens the file
// named name, what swap put in its place after the listing.
func swapAfterListing(t *testing.T, name string, swap func(path string)) {
	t.Helper()
	t.Cleanup(ingest.SetSpoolBeforeOpen(func(path string) {
		if filepath.Base(path) == name {
			if err := os.Remove(path); err != nil {
				t.Error(err)
			}
			swap(path)
		}
	}))
}

// TestSpoolFileSwappedForSymlinkAfterListingIsNotRead: a file replaced,
// between the listing and the open, by a symbolic link to a private file
// of the daemon's user is left where it is, unread: no outcome, nothing in
// invalid/ (before, the private file's hash and size went into its
// .reason), and the files around it are processed.
func TestSpoolFileSwappedForSymlinkAfterListingIsNotRead(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "private.key")
	secretData := []byte("-----BEGIN PRIVATE KEY-----\nnot a report\n")
	if err := os.WriteFile(secret, secretData, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(secretData)
	files := []gen.File{{Name: "1-newsletter.eml", Data: newsletter.data}, {Name: "2-bait.eml", Data: newsletter.data},
		{Name: "3-newsletter.eml", Data: newsletter.data}}
	dropOld(t, dir, files...)
	swapAfterListing(t, "2-bait.eml", func(path string) {
		if err := os.Symlink(secret, path); err != nil {
			t.Fatal(err)
		}
	})

	src := ingest.NewSpoolSource(ingest.SpoolConfig{Path: dir}, ingest.New(newAggStore(), ingest.Options{Source: "spool"}), testLogger())
	var outs []string
	if err := src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, filepath.Base(o.Input)) }); err != nil {
		t.Fatalf("Once: %v", err)
	}
	if fmt.Sprint(outs) != "[1-newsletter.eml 3-newsletter.eml]" {
		t.Errorf("outcomes for %v, want the two newsletters only", outs)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "2-bait.eml")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link is not left in place: %v, %v", fi, err)
	}
	reasons, _ := filepath.Glob(filepath.Join(dir, ingest.SpoolInvalidDir, "*.reason"))
	for _, r := range reasons {
		b, _ := os.ReadFile(r)
		if strings.Contains(string(b), hex.EncodeToString(sum[:])) {
			t.Errorf("%s holds the hash of the private file:\n%s", r, b)
		}
	}
	if got := names(t, filepath.Join(dir, ingest.SpoolInvalidDir)); len(got) != 4 {
		t.Errorf("invalid/ holds %v, want the two newsletters and their reasons", got)
	}
}

// TestSpoolFileSwappedForFIFOAfterListingDoesNotHang: a file replaced by
// a FIFO between the listing and the open is left in place unread, and the
// pass goes on (before, the open blocked for ever, with /readyz ok).
func TestSpoolFileSwappedForFIFOAfterListingDoesNotHang(t *testing.T) {
	dir := t.TempDir()
	dropOld(t, dir, gen.File{Name: "1-bait.eml", Data: newsletter.data}, gen.File{Name: "2-newsletter.eml", Data: newsletter.data})
	swapAfterListing(t, "1-bait.eml", func(path string) {
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	src := ingest.NewSpoolSource(ingest.SpoolConfig{Path: dir}, ingest.New(newAggStore(), ingest.Options{Source: "spool"}), testLogger())
	var outs []string
	done := make(chan error, 1)
	go func() {
		done <- src.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, filepath.Base(o.Input)) })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Once: %v", err)
		}
	case <-time.After(30 * time.Second):
		// Unblock the open so that the test can end.
		if f, err := os.OpenFile(filepath.Join(dir, "1-bait.eml"), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("Once still blocked after 30 s: the FIFO was opened for reading")
	}
	if fmt.Sprint(outs) != "[2-newsletter.eml]" {
		t.Errorf("outcomes for %v, want the newsletter only", outs)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "1-bait.eml")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO is not left in place: %v, %v", fi, err)
	}
}

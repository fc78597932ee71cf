package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// The several-instances tests (issue 8): two `dmarcd serve` processes share
// one source and one ClickHouse database. Both see the same mails or
// objects, often fetch the same ones at the same moment, and race to move
// them; the claims of the store make each report stored once, and each
// input ends in exactly one final place.

// inputCounts sums dmarcd_inputs_total of a source by status.
func inputCounts(metrics, source string) map[string]float64 {
	out := map[string]float64{}
	re := regexp.MustCompile(`(?m)^dmarcd_inputs_total\{([^}]*)\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(metrics, -1) {
		if !strings.Contains(m[1], `source="`+source+`"`) {
			continue
		}
		st := regexp.MustCompile(`status="([^"]*)"`).FindStringSubmatch(m[1])
		if st == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		out[st[1]] += v
	}
	return out
}

// checkSharedLogs fails on what must not happen when two instances share a
// source: a connection or pass error (the other instance's moves must not
// look like failures) and an input left pending after an error.
func checkSharedLogs(t *testing.T, name string, d *daemonProc) {
	t.Helper()
	for _, line := range strings.Split(d.log.String(), "\n") {
		for _, bad := range []string{"level=ERROR", "imap connection failed", "imap mail left in the mailbox",
			"s3 pass failed", "s3 object left pending", "panic"} {
			if strings.Contains(line, bad) {
				t.Errorf("%s logged: %s", name, line)
			}
		}
	}
}

// taken counts the log lines of d that say another instance took an input
// first.
func taken(d *daemonProc, what string) int {
	return strings.Count(d.log.String(), what)
}

// TestServeTwoInstancesShareMailbox runs two `dmarcd serve` processes on
// one Dovecot mailbox and one ClickHouse database: a backlog of corpus,
// generated and invalid mails, and more mails appended while both run. At
// the end every mail is in exactly one of the processed and invalid
// folders, the INBOX is empty, ClickHouse holds what one clean ingest
// holds (each report once), and neither instance logged an error.
func TestServeTwoInstancesShareMailbox(t *testing.T) {
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	addr, user, pass := testenv.Dovecot(t)
	// The corpus and invalid mails, and generated report mails (not the
	// generator's bare files: a mailbox holds mails).
	fixed, _, _, _ := faultMails(t, 1, 53)
	files, err := gen.Generate(gen.Options{Days: 42, Seed: 53, Domain: "shared-mailbox.example"})
	if err != nil {
		t.Fatal(err)
	}
	var generated []input
	files = slices.DeleteFunc(files, func(f gen.File) bool { return !strings.HasSuffix(f.Name, ".eml") })
	for _, f := range files {
		generated = append(generated, input{f.Name, f.Data})
	}
	want, invalidMails, _ := reference(t, bin, fixed, nil, gen.Summarize(files))
	mails := slices.Concat(fixed, generated)
	rand.Shuffle(len(mails), func(i, j int) { mails[i], mails[j] = mails[j], mails[i] })
	if len(mails) < 150 {
		t.Fatalf("only %d mails, want at least 150", len(mails))
	}
	backlog := len(mails) * 2 / 3

	appendAll(t, addr, user, pass, "INBOX", mails[:backlog])
	var ds [2]*daemonProc
	for i := range ds {
		httpAddr := freeAddr(t)
		cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`http: {listen: %s}
log: {level: debug}
owned_domains: ["*"]
sources:
  - {name: mailbox, type: imap, address: %s, tls: none, username: %s, poll_interval: 1s, shared: true}
`, httpAddr, addr, user))
		ds[i] = startServe(t, bin, cfg, httpAddr, "DMARCD_CLICKHOUSE_DSN="+dsn, "DMARCD_SOURCES_MAILBOX_PASSWORD="+pass)
	}
	start := time.Now()
	// More mail while both work through the backlog, in small batches.
	for rest := mails[backlog:]; len(rest) > 0; {
		n := min(len(rest), 10)
		time.Sleep(300 * time.Millisecond)
		appendAll(t, addr, user, pass, "INBOX", rest[:n])
		rest = rest[n:]
	}
	waitDraining(t, "the INBOX to empty", 2*time.Minute, func() (int, bool) {
		n, err := imapCounts(addr, user, pass, "INBOX")
		return n["INBOX"], err == nil
	})
	t.Logf("%d mails (%d appended while running) ingested by two instances in %v", len(mails),
		len(mails)-backlog, time.Since(start).Round(time.Millisecond))

	total := map[string]float64{}
	for i, d := range ds {
		d.waitReady(t, 200, 30*time.Second)
		_, metrics := d.get("/metrics")
		n := inputCounts(metrics, "imap:mailbox")
		for k, v := range n {
			total[k] += v
		}
		t.Logf("instance %d: inputs %v; moves that found mails moved by the other instance: %d", i+1, n, taken(d, "already moved by another"))
		if n["error"] != 0 {
			t.Errorf("instance %d: %v inputs with status error", i+1, n["error"])
		}
	}
	// Each mail was processed at least once; a mail both fetched counts
	// twice (once as duplicate, or invalid twice).
	done := total["stored"] + total["duplicate"] + total["invalid"]
	if done < float64(len(mails)) {
		t.Errorf("the two instances counted %v inputs for %d mails", done, len(mails))
	}
	t.Logf("mails processed by both instances (duplicated work): %v of %d", done-float64(len(mails)), len(mails))
	for i, d := range ds {
		d.stop(t)
		checkSharedLogs(t, fmt.Sprintf("instance %d", i+1), d)
	}
	// Every mail in exactly one of the folders: by content, as UIDs
	// change with each move. When both instances move one mail at the same
	// instant, Dovecot (maildir: copy, then expunge) keeps both copies in
	// that folder: counted, not an error (docs/cluster.md); shared: true
	// makes it rare.
	n := mustCounts(t, addr, user, pass, "INBOX", processedBox, invalidBox)
	if n["INBOX"] != 0 {
		t.Errorf("INBOX holds %d mails, want 0", n["INBOX"])
	}
	sent := map[[32]byte]int{}
	for _, m := range mails {
		sent[digest(m.data)]++
	}
	got := map[string]map[[32]byte]int{
		processedBox: mailDigests(t, addr, user, pass, processedBox),
		invalidBox:   mailDigests(t, addr, user, pass, invalidBox),
	}
	extra, invalidGot := 0, 0
	for h, k := range sent {
		p, i := got[processedBox][h], got[invalidBox][h]
		if p < k && i < k || p > 0 && i > 0 {
			t.Errorf("a mail appended %d times is %d times in %s and %d times in %s", k, p, processedBox, i, invalidBox)
		} else {
			extra += p + i - k
			invalidGot += min(i, k)
		}
		delete(got[processedBox], h)
		delete(got[invalidBox], h)
	}
	if invalidGot != invalidMails {
		t.Errorf("%d of the mails are in %s, want the %d invalid ones", invalidGot, invalidBox, invalidMails)
	}
	for box, left := range got {
		if len(left) > 0 {
			t.Errorf("%s holds %d mails never appended", box, len(left))
		}
	}
	t.Logf("%d extra copies from moves of one mail by both instances at the same instant (%s %d, %s %d, for %d mails)",
		extra, processedBox, n[processedBox], invalidBox, n[invalidBox], len(mails))
	checkTotals(t, dsn, want)
}

// digest is the SHA-256 of a mail with its line ends made LF.
func digest(mail []byte) [32]byte {
	return sha256.Sum256(bytes.ReplaceAll(mail, []byte("\r\n"), []byte("\n")))
}

// mailDigests returns the SHA-256 of each mail in the mailbox (the
// message as appended), with how many copies it holds.
func mailDigests(t *testing.T, addr, user, pass, mailbox string) map[[32]byte]int {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("SELECT %s: %v", mailbox, err)
	}
	out := map[[32]byte]int{}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatalf("FETCH %s: %v", mailbox, err)
	}
	for _, m := range msgs {
		for _, b := range m.BodySection {
			out[digest(b.Bytes)]++
		}
	}
	c.Logout().Wait()
	return out
}

// settled reports whether an s3 instance (source s3:ses) has finished every
// object it downloaded: each was moved, found gone before its move, or
// left pending (which checkSharedLogs reports).
func settled(d *daemonProc) bool {
	code, metrics := d.get("/metrics")
	if code != 200 {
		return false
	}
	fetched := s3MetricValue(metrics, `dmarcd_s3_objects_fetched_total{source="s3:ses"}`)
	log := d.log.String()
	ended := strings.Count(log, `msg="s3 object" `) + strings.Count(log, "gone or changed before its move") +
		strings.Count(log, "s3 object left pending")
	return fetched >= 0 && float64(ended) >= fetched
}

// TestServeTwoInstancesShareBucket runs two `dmarcd serve` processes on one
// S3 bucket prefix (mode move) and one ClickHouse database: every object
// ends in exactly one of processed/ and invalid/, ClickHouse holds each
// report once, and an object the other instance took first (NoSuchKey or a
// failed precondition on GET, COPY or DELETE) is neither an error nor
// invalid.
func TestServeTwoInstancesShareBucket(t *testing.T) {
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	fixed, generated, bare, truth := faultMails(t, 40, 59)
	badFiles := []input{{"notes.txt", []byte("not a report\n")}, {"empty.xml.gz", nil}}
	want, invalidMails, invalidFiles := reference(t, bin, fixed, badFiles, truth)
	objects := slices.Concat(fixed, generated, bare, badFiles)
	rand.Shuffle(len(objects), func(i, j int) { objects[i], objects[j] = objects[j], objects[i] })
	if len(objects) < 150 {
		t.Fatalf("only %d objects, want at least 150", len(objects))
	}
	backlog := len(objects) * 2 / 3

	endpoint, access, secret := testenv.S3(t)
	c := s3TestClient(endpoint, access, secret)
	const bucket = "shared"
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	uploaded := map[string]string{} // key below incoming/ -> input name
	for _, o := range objects[:backlog] {
		uploaded[s3Put(t, c, bucket, "incoming/", o.data)] = o.name
	}
	var ds [2]*daemonProc
	for i := range ds {
		httpAddr := freeAddr(t)
		cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`http: {listen: %s}
log: {level: debug}
clickhouse: {dsn: %q}
owned_domains: ["*"]
sources:
  - {name: ses, type: s3, bucket: %s, prefix: incoming/, endpoint: %s, path_style: true, mode: move, poll_interval: 1s, shared: true}
`, httpAddr, dsn, bucket, endpoint))
		ds[i] = startServe(t, bin, cfg, httpAddr, s3Env(access, secret)...)
	}
	start := time.Now()
	for _, o := range objects[backlog:] {
		uploaded[s3Put(t, c, bucket, "incoming/", o.data)] = o.name
		time.Sleep(20 * time.Millisecond)
	}
	waitDraining(t, "incoming/ to empty", 2*time.Minute, func() (int, bool) {
		return len(listKeys(t, c, bucket, "incoming/")), true
	})
	t.Logf("%d objects (%d uploaded while running) ingested by two instances in %v", len(objects),
		len(objects)-backlog, time.Since(start).Round(time.Millisecond))
	// incoming/ empty, an instance may still hold an object the other
	// moved (its duplicate outcome, its failed COPY to come): stopping it
	// then would leave the object pending with a warning.
	for i, d := range ds {
		waitFor(t, fmt.Sprintf("instance %d to finish every object it downloaded", i+1), 2*time.Minute,
			func() bool { return settled(d) })
	}

	for i, d := range ds {
		d.waitReady(t, 200, 30*time.Second)
		_, metrics := d.get("/metrics")
		n := inputCounts(metrics, "s3:ses")
		t.Logf("instance %d: inputs %v; objects fetched %v; objects the other instance took first: %d", i+1, n,
			s3MetricValue(metrics, `dmarcd_s3_objects_fetched_total{source="s3:ses"}`),
			taken(d, "gone or changed"))
		if v := s3MetricValue(metrics, `dmarcd_s3_errors_total{source="s3:ses"}`); v != 0 {
			t.Errorf("instance %d: dmarcd_s3_errors_total %v, want 0", i+1, v)
		}
		if n["error"] != 0 {
			t.Errorf("instance %d: %v inputs with status error", i+1, n["error"])
		}
	}
	for i, d := range ds {
		d.stop(t)
		checkSharedLogs(t, fmt.Sprintf("instance %d", i+1), d)
	}

	// Every object in exactly one final place.
	place := map[string]string{}
	invalid := 0
	for _, p := range []string{"processed/", "invalid/"} {
		for _, k := range listKeys(t, c, bucket, p) {
			rel := strings.TrimPrefix(k, p)
			if place[rel] != "" {
				t.Errorf("%s (%s) is in %s and %s", rel, uploaded[rel], place[rel], p)
			}
			place[rel] = p
			if uploaded[rel] == "" {
				t.Errorf("%s%s was never uploaded", p, rel)
			}
			if p == "invalid/" {
				invalid++
			}
		}
	}
	for rel, name := range uploaded {
		if place[rel] == "" {
			t.Errorf("%s (%s) is nowhere", rel, name)
		}
	}
	if invalid != invalidMails+invalidFiles {
		t.Errorf("%d objects in invalid/, want %d", invalid, invalidMails+invalidFiles)
	}
	checkTotals(t, dsn, want)
}

package ingest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/store"
)

var testPrivacy = ingest.Privacy{Key: []byte("test-key-0123456789abcdef")}

// s3Bucket is a fresh bucket on a versitygw server of this test.
type s3Bucket struct {
	endpoint, access, secret string
	name                     string
	c                        *s3.Client
}

// newS3Bucket starts a server, points the AWS chain of this process at it
// (environment variables, as a user would) and creates a bucket.
func newS3Bucket(t testing.TB) *s3Bucket {
	t.Helper()
	endpoint, access, secret := testenv.S3(t)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	b := &s3Bucket{endpoint: endpoint, access: access, secret: secret, name: "dmarc-reports",
		c: s3Client(endpoint, access, secret)}
	if _, err := b.c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(b.name)}); err != nil {
		t.Fatalf("creating bucket: %v", err)
	}
	return b
}

func s3Client(endpoint, access, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(access, secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func (b *s3Bucket) config() ingest.S3Config {
	return ingest.S3Config{Name: "test", Bucket: b.name, Prefix: "incoming/", Endpoint: b.endpoint, PathStyle: true}
}

// put stores data under key and returns its ETag (unquoted).
func (b *s3Bucket) put(t testing.TB, key string, data []byte) string {
	t.Helper()
	out, err := b.c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(b.name),
		Key: aws.String(key), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return strings.Trim(aws.ToString(out.ETag), `"`)
}

// keys lists the keys under prefix.
func (b *s3Bucket) keys(t testing.TB, prefix string) []string {
	t.Helper()
	var keys []string
	pg := s3.NewListObjectsV2Paginator(b.c, &s3.ListObjectsV2Input{Bucket: aws.String(b.name), Prefix: aws.String(prefix),
		EncodingType: types.EncodingTypeUrl})
	for pg.HasMorePages() {
		page, err := pg.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if page.EncodingType == types.EncodingTypeUrl {
				if k, err = url.QueryUnescape(k); err != nil {
					t.Fatalf("listing %s: %v", prefix, err)
				}
			}
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// randomKey looks like the keys an SES receipt rule writes.
func randomKey() string {
	var b [20]byte
	rand.Read(b[:])
	return "incoming/" + hex.EncodeToString(b[:])
}

func openS3Pipeline(t testing.TB) (*ingest.Pipeline, *store.Store, clickhouse.Conn, string) {
	t.Helper()
	st, conn := openStore(t)
	p := ingest.New(st, ingest.Options{Source: "s3", Privacy: testPrivacy})
	return p, st, conn, st.Database()
}

func newSource(t testing.TB, cfg ingest.S3Config, p *ingest.Pipeline) *ingest.S3Source {
	t.Helper()
	s, err := ingest.NewS3Source(cfg, p, nil)
	if err != nil {
		t.Fatalf("NewS3Source: %v", err)
	}
	return s
}

func once(t testing.TB, s *ingest.S3Source) []ingest.Outcome {
	t.Helper()
	var outs []ingest.Outcome
	if err := s.Once(context.Background(), func(o ingest.Outcome) { outs = append(outs, o) }); err != nil {
		t.Fatalf("Once: %v", err)
	}
	return outs
}

// keyOf returns the object key of an outcome's input name s3://bucket/key#etag.
func keyOf(t testing.TB, bucket, input string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(input, "s3://"+bucket+"/")
	i := strings.LastIndexByte(rest, '#')
	if !ok || i < 0 {
		t.Fatalf("input name %q is not s3://%s/key#etag", input, bucket)
	}
	return rest[:i]
}

type counter struct{ listed, fetched, backlog atomic.Int64 }

func (c *counter) Listed(n int)  { c.listed.Add(int64(n)) }
func (c *counter) Fetched()      { c.fetched.Add(1) }
func (c *counter) Backlog(n int) { c.backlog.Store(int64(n)) }

// TestS3CorpusAndGeneratedReportsStoredOnceEachObjectInOnePlace uploads every
// corpus file (aggregate files and mails, failure and TLS reports, malformed
// files) and a generated set under random keys, ingests the bucket once, and
// finds exact totals in ClickHouse and every object in exactly one of
// processed/ and invalid/, invalid ones with their reason in metadata.
func TestS3CorpusAndGeneratedReportsStoredOnceEachObjectInOnePlace(t *testing.T) {
	dir := corpus.Dir(t)
	entries := corpus.Manifest(t)
	b := newS3Bucket(t)
	p, _, conn, _ := openS3Pipeline(t)

	typeOf := map[string]corpus.Entry{} // object key -> corpus entry
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		k := randomKey()
		b.put(t, k, data)
		typeOf[k] = e
	}
	files, err := gen.Generate(gen.Options{Domain: "gen.example", Days: 5, Seed: 11, Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	genKeys := map[string]bool{}
	for _, f := range files {
		k := randomKey()
		b.put(t, k, f.Data)
		genKeys[k] = true
	}
	junk := randomKey()
	b.put(t, junk, []byte("From: a@b.example\r\nSubject: hi\r\n\r\nnot a report\r\n"))
	b.put(t, "incoming/folder/", nil) // a console's folder marker: not an input
	uploaded := len(typeOf) + len(genKeys) + 1

	obs := &counter{}
	cfg := b.config()
	cfg.Observer = obs
	src := newSource(t, cfg, p)
	if err := src.Ready(); err == nil {
		t.Error("Ready before the first listing: nil, want an error")
	}
	start := time.Now()
	outs := once(t, src)
	t.Logf("%d objects ingested in %s", len(outs), time.Since(start).Round(time.Millisecond))
	if err := src.Ready(); err != nil {
		t.Errorf("Ready after a good listing: %v", err)
	}
	if len(outs) != uploaded {
		t.Fatalf("%d outcomes for %d objects", len(outs), uploaded)
	}
	if obs.fetched.Load() != int64(uploaded) || obs.listed.Load() < int64(uploaded) || obs.backlog.Load() != 0 {
		t.Errorf("observer: listed %d fetched %d backlog %d", obs.listed.Load(), obs.fetched.Load(), obs.backlog.Load())
	}

	unique := map[string][2]uint64{} // report key -> records, messages
	wantPlace := map[string]string{} // key relative to incoming/ -> processed/ or invalid/
	kinds := map[string]int{}
	for _, o := range outs {
		k := keyOf(t, b.name, o.Input)
		rel := strings.TrimPrefix(k, "incoming/")
		switch o.Status {
		case ingest.Stored, ingest.Duplicate:
			wantPlace[rel] = "processed/"
		case ingest.Invalid:
			wantPlace[rel] = "invalid/"
		default:
			t.Errorf("%s: %s %s: %s", k, o.Status, o.ReasonCode, o.Reason)
		}
		kinds[o.Kind]++
		if o.Kind == "aggregate" && (o.Status == ingest.Stored || o.Status == ingest.Duplicate) {
			unique[o.ReportKeys[0]] = [2]uint64{uint64(o.Records), o.Messages}
		}
		e, isCorpus := typeOf[k]
		switch {
		case k == junk:
			if o.Status != ingest.Invalid || o.ReasonCode != "not_a_report" {
				t.Errorf("junk mail: %s %s", o.Status, o.ReasonCode)
			}
		case genKeys[k]:
			if o.Kind != "aggregate" || (o.Status != ingest.Stored && o.Status != ingest.Duplicate) {
				t.Errorf("generated %s: %s %s %s", k, o.Kind, o.Status, o.Reason)
			}
		case !isCorpus:
			t.Errorf("outcome for an object not uploaded: %s", o.Input)
		case e.Type == "aggregate" || e.Type == "email":
			if o.Kind != "aggregate" || (o.Status != ingest.Stored && o.Status != ingest.Duplicate) {
				t.Errorf("%s: %s %s (%s)", e.Path, o.Kind, o.Status, o.Reason)
			} else if e.Known && (o.Records != e.Records || o.Messages != e.CountSum) {
				t.Errorf("%s: %d records / %d messages, MANIFEST says %d / %d", e.Path, o.Records, o.Messages, e.Records, e.CountSum)
			}
		case e.Type == "malformed":
			if o.Status != ingest.Invalid || o.ReasonCode == "" {
				t.Errorf("%s: %s %q, want invalid with a reason", e.Path, o.Status, o.ReasonCode)
			}
		case e.Type == "forensic" || e.Type == "smtp_tls":
			want := map[string]string{"forensic": "failure", "smtp_tls": "tlsrpt"}[e.Type]
			if o.Kind != want || (o.Status != ingest.Stored && o.Status != ingest.Duplicate) {
				t.Errorf("%s: kind %s status %s (%s), want %s", e.Path, o.Kind, o.Status, o.Reason, want)
			}
		}
	}
	truth := gen.Summarize(files)
	var corpusRecords, corpusMessages uint64
	for _, u := range unique {
		corpusRecords += u[0]
		corpusMessages += u[1]
	}
	reports, records, messages := s3Counts(t, conn)
	if reports != uint64(len(unique)) || records != corpusRecords || messages != corpusMessages {
		t.Errorf("ClickHouse holds %d reports, %d records, %d messages; the outcomes name %d distinct reports, %d records, %d messages",
			reports, records, messages, len(unique), corpusRecords, corpusMessages)
	}
	var genReports, genRecords, genMessages uint64
	q := "SELECT count(), sum(message_count) FROM aggregate_records WHERE policy_domain = 'gen.example'"
	if err := conn.QueryRow(context.Background(), q).Scan(&genRecords, &genMessages); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM aggregate_reports WHERE policy_domain = 'gen.example'").Scan(&genReports); err != nil {
		t.Fatal(err)
	}
	if genReports != uint64(truth.Reports) || genRecords != uint64(truth.Records) || genMessages != truth.Messages {
		t.Errorf("generated set: %d reports, %d records, %d messages; want %d, %d, %d",
			genReports, genRecords, genMessages, truth.Reports, truth.Records, truth.Messages)
	}
	var failures, tlsReports uint64
	conn.QueryRow(context.Background(), "SELECT count() FROM failure_reports").Scan(&failures)
	conn.QueryRow(context.Background(), "SELECT count() FROM tlsrpt_reports").Scan(&tlsReports)
	if failures != 6 || tlsReports < 8 || kinds["failure"] < 7 || kinds["tlsrpt"] < 9 {
		t.Errorf("%d failure and %d TLS reports stored, kinds %v", failures, tlsReports, kinds)
	}

	assertPlaces(t, b, wantPlace)
	// Every invalid object says why in its metadata.
	for rel, place := range wantPlace {
		if place != "invalid/" {
			continue
		}
		h, err := b.c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(b.name), Key: aws.String("invalid/" + rel)})
		if err != nil {
			t.Fatal(err)
		}
		if h.Metadata["dmarcd-reason"] == "" || h.Metadata["dmarcd-reason-code"] == "" || len(h.Metadata["dmarcd-reason"]) > 1024 {
			t.Errorf("invalid/%s: metadata %v", rel, h.Metadata)
		}
	}
	var invalidRows uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM inputs WHERE source = 's3' AND status = 'invalid' AND reason != ''").Scan(&invalidRows); err != nil {
		t.Fatal(err)
	}
	if want := countPlace(wantPlace, "invalid/"); invalidRows != uint64(want) {
		t.Errorf("%d invalid rows with a reason in inputs, want %d", invalidRows, want)
	}

	// Nothing is pending any more.
	if again := once(t, src); len(again) != 0 {
		t.Errorf("second pass: %d outcomes, want none", len(again))
	}
}

// s3Counts reads the exactly-once truth the way a user would: without FINAL.
func s3Counts(t *testing.T, conn clickhouse.Conn) (reports, records, messages uint64) {
	t.Helper()
	ctx := context.Background()
	if err := conn.QueryRow(ctx, "SELECT count() FROM aggregate_reports").Scan(&reports); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(), sum(message_count) FROM aggregate_records").Scan(&records, &messages); err != nil {
		t.Fatal(err)
	}
	return
}

func countPlace(m map[string]string, place string) int {
	n := 0
	for _, p := range m {
		if p == place {
			n++
		}
	}
	return n
}

// assertPlaces checks that incoming/ is empty (but for folder markers) and
// that each object is in the place wanted, and only there.
func assertPlaces(t *testing.T, b *s3Bucket, want map[string]string) {
	t.Helper()
	for _, k := range b.keys(t, "incoming/") {
		if !strings.HasSuffix(k, "/") {
			t.Errorf("still pending: %s", k)
		}
	}
	got := map[string]string{}
	for _, place := range []string{"processed/", "invalid/"} {
		for _, k := range b.keys(t, place) {
			rel := strings.TrimPrefix(k, place)
			if prev, ok := got[rel]; ok {
				t.Errorf("%s is in both %s and %s", rel, prev, place)
			}
			got[rel] = place
		}
	}
	for rel, place := range want {
		if got[rel] != place {
			t.Errorf("%s: in %q, want %s", rel, got[rel], place)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d objects acknowledged, want %d", len(got), len(want))
	}
}

// TestS3CrashBetweenCopyAndDeleteIsRepairedByNextPass leaves an object both
// copied to processed/ and pending, as a crash between CopyObject and
// DeleteObject does: the next pass finds its report already stored and moves
// it again, so it ends once in processed/ and the report once in ClickHouse.
func TestS3CrashBetweenCopyAndDeleteIsRepairedByNextPass(t *testing.T) {
	b := newS3Bucket(t)
	p, _, conn, _ := openS3Pipeline(t)
	files, err := gen.Generate(gen.Options{Domain: "gen.example", Days: 1, Seed: 5, Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	src := newSource(t, b.config(), p)
	key := "incoming/crash-me"
	b.put(t, key, files[0].Data)
	if outs := once(t, src); len(outs) != 1 || outs[0].Status != ingest.Stored {
		t.Fatalf("first pass: %+v", outs)
	}
	// The crash: the copy exists, the original was not deleted.
	b.put(t, key, files[0].Data)
	outs := once(t, src)
	if len(outs) != 1 || outs[0].Status != ingest.Duplicate {
		t.Fatalf("pass after the crash: %+v, want one duplicate", outs)
	}
	assertPlaces(t, b, map[string]string{"crash-me": "processed/"})
	reports, records, messages := s3Counts(t, conn)
	if tr := gen.Summarize(files[:1]); reports != uint64(tr.Reports) || records != uint64(tr.Records) || messages != tr.Messages {
		t.Errorf("ClickHouse holds %d/%d/%d, want %d/%d/%d", reports, records, messages, tr.Reports, tr.Records, tr.Messages)
	}
}

// TestS3OversizedObjectSetAsideUnread sets an object over MaxObjectBytes
// aside as too_large without downloading it.
func TestS3OversizedObjectSetAsideUnread(t *testing.T) {
	b := newS3Bucket(t)
	p, _, _, _ := openS3Pipeline(t)
	b.put(t, "incoming/big", bytes.Repeat([]byte("x"), 5000))
	obs := &counter{}
	cfg := b.config()
	cfg.MaxObjectBytes, cfg.Observer = 4096, obs
	outs := once(t, newSource(t, cfg, p))
	if len(outs) != 1 || outs[0].Status != ingest.Invalid || outs[0].ReasonCode != "too_large" || outs[0].Size != 5000 {
		t.Fatalf("outcomes %+v", outs)
	}
	if obs.fetched.Load() != 0 {
		t.Errorf("%d objects downloaded, want none", obs.fetched.Load())
	}
	assertPlaces(t, b, map[string]string{"big": "invalid/"})
}

// TestS3LeaveModeSkipsFinishedObjects reads a bucket without writing to it:
// objects stay, a second pass re-ingests nothing, and a rewritten object (new
// ETag) is read again.
func TestS3LeaveModeSkipsFinishedObjects(t *testing.T) {
	b := newS3Bucket(t)
	p, _, conn, _ := openS3Pipeline(t)
	files, err := gen.Generate(gen.Options{Domain: "gen.example", Days: 3, Seed: 9, Start: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range files {
		k := randomKey()
		b.put(t, k, f.Data)
		keys = append(keys, k)
	}
	b.put(t, "incoming/junk", []byte("hello"))
	cfg := b.config()
	cfg.Mode = ingest.S3ModeLeave
	src := newSource(t, cfg, p)
	outs := once(t, src)
	if len(outs) != len(files)+1 {
		t.Fatalf("%d outcomes for %d objects", len(outs), len(files)+1)
	}
	if got := b.keys(t, ""); len(got) != len(files)+1 {
		t.Fatalf("leave mode changed the bucket: %d keys, want %d", len(got), len(files)+1)
	}
	if again := once(t, src); len(again) != 0 {
		t.Fatalf("second pass re-ingested %d objects", len(again))
	}
	// A restart (a new source) does not re-ingest either.
	if again := once(t, newSource(t, cfg, p)); len(again) != 0 {
		t.Fatalf("pass after a restart re-ingested %d objects", len(again))
	}
	b.put(t, "incoming/junk", []byte("hello again"))
	again := once(t, src)
	if len(again) != 1 || !strings.HasPrefix(again[0].Input, "s3://"+b.name+"/incoming/junk#") {
		t.Fatalf("after rewriting one object: %+v", again)
	}
	reports, records, messages := s3Counts(t, conn)
	if tr := gen.Summarize(files); reports != uint64(tr.Reports) || records != uint64(tr.Records) || messages != tr.Messages {
		t.Errorf("ClickHouse holds %d/%d/%d, want %d/%d/%d", reports, records, messages, tr.Reports, tr.Records, tr.Messages)
	}
}

// TestS3UnreachableWrongCredentialsAndStoreDown: every failure says what is
// wrong, Ready reports it, and no object moves.
func TestS3UnreachableWrongCredentialsAndStoreDown(t *testing.T) {
	b := newS3Bucket(t)
	p, _, _, _ := openS3Pipeline(t)
	files, err := gen.Generate(gen.Options{Domain: "gen.example", Days: 1, Seed: 2, Start: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b.put(t, randomKey(), f.Data)
	}
	before := b.keys(t, "")
	ctx := context.Background()

	t.Run("wrong credentials", func(t *testing.T) {
		t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
		src := newSource(t, b.config(), p)
		err := src.Once(ctx, nil)
		if !errors.Is(err, ingest.ErrS3Credentials) || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
			t.Errorf("Once: %v, want ErrS3Credentials naming SignatureDoesNotMatch", err)
		}
		if r := src.Ready(); r == nil {
			t.Error("Ready: nil after a rejected listing")
		}
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN")
		err = newSource(t, b.config(), p).Once(ctx, nil)
		if !errors.Is(err, ingest.ErrS3Credentials) {
			t.Errorf("unknown access key: %v, want ErrS3Credentials", err)
		}
		t.Log(err)
	})
	t.Run("unreachable endpoint", func(t *testing.T) {
		cfg := b.config()
		cfg.Endpoint = "http://127.0.0.1:1"
		src := newSource(t, cfg, p)
		err := src.Once(ctx, nil)
		if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("Once: %v, want connection refused naming the endpoint", err)
		}
		// Run keeps retrying with backoff and returns nil when stopped.
		rctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer cancel()
		if err := src.Run(rctx); err != nil {
			t.Errorf("Run: %v, want nil when its context ends", err)
		}
		if r := src.Ready(); r == nil || !strings.Contains(r.Error(), "connection refused") {
			t.Errorf("Ready: %v", r)
		}
	})
	t.Run("store down", func(t *testing.T) {
		// The real failure: the database vanishes under the store.
		dsn := testenv.ClickHouse(t)
		st, err := store.Open(ctx, dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		opt, _ := clickhouse.ParseDSN(dsn)
		c, err := clickhouse.Open(opt)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Exec(ctx, "DROP DATABASE "+st.Database()); err != nil {
			t.Fatal(err)
		}
		p := ingest.New(st, ingest.Options{Source: "s3", Privacy: testPrivacy})
		src := newSource(t, b.config(), p)
		var outs []ingest.Outcome
		err = src.Once(ctx, func(o ingest.Outcome) { outs = append(outs, o) })
		if !errors.Is(err, ingest.ErrS3ObjectsLeft) {
			t.Errorf("Once: %v, want ErrS3ObjectsLeft", err)
		}
		if len(outs) != 3 || outs[0].Status != ingest.Error || outs[0].ReasonCode != "store_unavailable" {
			t.Errorf("outcomes: %+v, want 3 errors then a stop", outs)
		}
		if r := src.Ready(); r != nil {
			t.Errorf("Ready with S3 reachable: %v", r)
		}
	})
	if after := b.keys(t, ""); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("objects moved after failures:\nbefore %v\nafter  %v", before, after)
	}
}

// TestS3WebhookEventTriggersFetchBeforeThePoll runs the source with an hour
// between polls; versitygw's event notification for a new object makes it
// fetch the object within seconds.
func TestS3WebhookEventTriggersFetchBeforeThePoll(t *testing.T) {
	var handler atomic.Pointer[http.Handler]
	events := make(chan struct{}, 100)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := handler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			select {
			case events <- struct{}{}:
			default:
			}
			return
		}
		w.WriteHeader(http.StatusNoContent) // versitygw's test event at start
	}))
	defer hook.Close()
	endpoint, access, secret := testenv.S3WithWebhook(t, hook.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	b := &s3Bucket{endpoint: endpoint, access: access, secret: secret, name: "hooked", c: s3Client(endpoint, access, secret)}
	if _, err := b.c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(b.name)}); err != nil {
		t.Fatal(err)
	}
	p, _, _, _ := openS3Pipeline(t)
	cfg := b.config()
	cfg.PollInterval = time.Hour
	src := newSource(t, cfg, p)
	h := src.WebhookHandler()
	handler.Store(&h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	// Wait for the first (empty) pass, then drop a report in.
	for deadline := time.Now().Add(10 * time.Second); src.Ready() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no listing: %v", src.Ready())
		}
	}
	files, err := gen.Generate(gen.Options{Domain: "gen.example", Days: 1, Seed: 4, Start: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	b.put(t, "incoming/pushed", files[0].Data)
	start := time.Now()
	for len(b.keys(t, "processed/")) == 0 {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("object not fetched 15 s after its upload (events seen: %d)", len(events))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("fetched and moved %s after the upload", time.Since(start).Round(time.Millisecond))

	// Not an event: 400; wrong method: 405.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader("{")))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("bad JSON: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
}

// TestS3ConfigurationErrors rejects settings that would lose or loop objects.
func TestS3ConfigurationErrors(t *testing.T) {
	p := ingest.New(nil, ingest.Options{})
	for _, c := range []ingest.S3Config{
		{},
		{Bucket: "b", Mode: "copy"},
		{Bucket: "b", ProcessedPrefix: "x/", InvalidPrefix: "x/"},
		{Bucket: "b", Prefix: "processed/in/"},
		{Bucket: "b", Endpoint: "ftp://x"},
		{Bucket: "b", Mode: ingest.S3ModeLeave}, // the store cannot tell finished inputs
	} {
		if _, err := ingest.NewS3Source(c, p, nil); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}

// BenchmarkS3LeaveModePoll measures a poll in leave mode over a prefix of
// 10,000 finished objects: the listing (10 pages) and one inputs lookup per
// page.
func BenchmarkS3LeaveModePoll(b *testing.B) {
	const n = 10000
	bk := newS3Bucket(b)
	p, _, conn, _ := openS3Pipeline(b)
	ctx := context.Background()
	names := make([]string, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	start := time.Now()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				k := randomKey()
				out, err := bk.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bk.name), Key: aws.String(k),
					Body: strings.NewReader(fmt.Sprintf("object %d", i))})
				if err != nil {
					b.Error(err)
					return
				}
				names[i] = "s3://" + bk.name + "/" + k + "#" + strings.Trim(aws.ToString(out.ETag), `"`)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("uploaded %d objects in %s", n, time.Since(start).Round(time.Millisecond))
	// Record them finished, as earlier passes would have.
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO inputs (time, source, name, sha256, size, kind, status, reason_code, reason, report_keys)")
	if err != nil {
		b.Fatal(err)
	}
	for _, nm := range names {
		if err := batch.Append(time.Now().UTC(), "s3", nm, "", int64(10), "none", "invalid", "not_a_report", "no report found", []string{}); err != nil {
			b.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		b.Fatal(err)
	}
	cfg := bk.config()
	cfg.Mode = ingest.S3ModeLeave
	// A benchmark that calls Run runs once: the upload above is not repeated.
	b.Run("poll", func(b *testing.B) {
		obs := &counter{}
		cfg.Observer = obs
		src := newSource(b, cfg, p)
		for b.Loop() {
			var got int
			if err := src.Once(ctx, func(ingest.Outcome) { got++ }); err != nil {
				b.Fatal(err)
			}
			if got != 0 {
				b.Fatalf("%d objects re-ingested", got)
			}
		}
		b.ReportMetric(float64(obs.listed.Load())/float64(b.N), "objects/poll")
	})
	// The listing alone, for comparison: what the lookups add is the difference.
	b.Run("list-only", func(b *testing.B) {
		for b.Loop() {
			pg := s3.NewListObjectsV2Paginator(bk.c, &s3.ListObjectsV2Input{Bucket: aws.String(bk.name), Prefix: aws.String("incoming/")})
			for pg.HasMorePages() {
				if _, err := pg.NextPage(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

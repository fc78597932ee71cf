package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// s3Totals are the ClickHouse totals that an ingest of the same objects must
// reproduce exactly.
type s3Totals struct {
	reports, records, messages, failures, tlsReports uint64
}

func readS3Totals(t *testing.T, c clickhouse.Conn, where string) s3Totals {
	t.Helper()
	var x s3Totals
	ctx := context.Background()
	for _, q := range []struct {
		sql  string
		dest []any
	}{
		{"SELECT count() FROM aggregate_reports" + where, []any{&x.reports}},
		{"SELECT count(), sum(message_count) FROM aggregate_records" + where, []any{&x.records, &x.messages}},
		{"SELECT count() FROM failure_reports", []any{&x.failures}},
		{"SELECT count() FROM tlsrpt_reports", []any{&x.tlsReports}},
	} {
		if err := c.QueryRow(ctx, q.sql).Scan(q.dest...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return x
}

// s3Put uploads data under a random key below prefix, as an SES receipt
// rule does, and returns the key without the prefix.
func s3Put(t *testing.T, c *s3.Client, bucket, prefix string, data []byte) string {
	t.Helper()
	var b [16]byte
	rand.Read(b[:])
	rel := hex.EncodeToString(b[:])
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket),
		Key: aws.String(prefix + rel), Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("put %s%s: %v", prefix, rel, err)
	}
	return rel
}

// s3Env is the environment that points the AWS chain of a dmarcd process at
// the test server only.
func s3Env(access, secret string) []string {
	return []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull, "AWS_EC2_METADATA_DISABLED=true"}
}

// s3MetricValue returns the value of the series named exactly series (name
// and labels as /metrics prints them), or -1.
func s3MetricValue(metrics, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestServeS3 runs `dmarcd serve` with an s3 source on a real versitygw that
// posts its bucket events to the daemon's /hooks/s3/ses:
//
//   - the corpus (aggregate files and mails, failure and TLS reports,
//     malformed files), a generated set and a junk mail uploaded under
//     incoming/ all end in exactly one of processed/ and invalid/, with
//     ClickHouse totals equal to a file ingest of the same corpus and to the
//     generator's; /metrics counts the objects (dmarcd_s3_*) and their
//     outcomes (dmarcd_inputs_total{source="s3:ses"});
//   - with an hour between polls, an object uploaded later is ingested
//     within seconds through versitygw's event, also after a reload replaced
//     the source;
//   - a second daemon with a wrong secret key answers /readyz 503 naming its
//     source and moves nothing.
func TestServeS3(t *testing.T) {
	t.Parallel()
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	entries := corpus.Manifest(t)
	dir := corpus.Dir(t)
	var paths []string
	for _, e := range entries {
		paths = append(paths, filepath.Join(dir, e.Path))
	}

	// What a file ingest of the corpus stores: the reference totals.
	var want s3Totals
	t.Run("reference", func(t *testing.T) {
		ref := testenv.ClickHouse(t)
		if _, code := runJSON(t, bin, ref, paths...); code != 0 {
			t.Fatalf("dmarcd ingest of the corpus exited %d", code)
		}
		want = readS3Totals(t, conn(t, ref), "")
	})
	if t.Failed() {
		t.FailNow()
	}

	// versitygw checks its webhook URL at start: answer there until the
	// daemon takes the address over.
	httpAddr := freeAddr(t)
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	placeholder := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})}
	go placeholder.Serve(ln)
	// versitygw cannot add a header to its events: the secret goes in the URL.
	const hookSecret = "serve-s3-webhook-secret-0123456789"
	endpoint, access, secret := testenv.S3WithWebhook(t, "http://"+httpAddr+"/hooks/s3/ses?token="+hookSecret)
	c := s3TestClient(endpoint, access, secret)
	ctx := context.Background()
	const bucket = "ses-inbound"
	for _, b := range []string{bucket, "locked"} {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	uploaded := map[string]string{} // key below incoming/ -> what
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		uploaded[s3Put(t, c, bucket, "incoming/", data)] = entries[i].Type
	}
	files, err := gen.Generate(gen.Options{Domain: "serve-s3.example", Days: 3, Seed: 41, Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		uploaded[s3Put(t, c, bucket, "incoming/", f.Data)] = "generated"
	}
	uploaded[s3Put(t, c, bucket, "incoming/", []byte("From: shop@example.net\r\nSubject: sale\r\n\r\nnot a report\r\n"))] = "junk"
	placeholder.Close()

	cfgDir := t.TempDir()
	cfgPath := filepath.Join(cfgDir, "dmarcd.yaml")
	cfg := fmt.Sprintf(`http: {listen: %s, webhook_secret: %s}
clickhouse: {dsn: %q}
owned_domains: ["*"]
sources:
  - name: ses
    type: s3
    bucket: %s
    prefix: incoming/
    endpoint: %s
    path_style: true
    mode: move
    poll_interval: 1h
`, httpAddr, hookSecret, dsn, bucket, endpoint)
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	start := time.Now()
	d := startServe(t, bin, cfgPath, httpAddr, s3Env(access, secret)...)
	waitDraining(t, "incoming/ to empty", 2*time.Minute, func() (int, bool) {
		return len(listKeys(t, c, bucket, "incoming/")), true
	})
	t.Logf("%d objects ingested %v after the daemon started", len(uploaded), time.Since(start).Round(time.Millisecond))
	d.waitReady(t, 200, 5*time.Second)

	// Every object in exactly one final place.
	place := map[string]string{}
	for _, p := range []string{"processed/", "invalid/"} {
		for _, k := range listKeys(t, c, bucket, p) {
			rel := strings.TrimPrefix(k, p)
			if place[rel] != "" {
				t.Errorf("%s is in %s and %s", rel, place[rel], p)
			}
			place[rel] = p
			if uploaded[rel] == "" {
				t.Errorf("%s%s was never uploaded", p, rel)
			}
		}
	}
	invalid := 0
	for rel, what := range uploaded {
		switch p := place[rel]; {
		case p == "":
			t.Errorf("%s (%s) is nowhere", rel, what)
		case p == "invalid/":
			invalid++
			if what != "malformed" && what != "junk" {
				t.Errorf("%s (%s) set aside as invalid", rel, what)
			}
		case what == "malformed" || what == "junk":
			t.Errorf("%s (%s) in processed/", rel, what)
		}
	}

	// ClickHouse: the corpus as a file ingest stores it, plus the generated
	// set exactly.
	ch := conn(t, dsn)
	truth := gen.Summarize(files)
	gotGen := readS3Totals(t, ch, " WHERE policy_domain = 'serve-s3.example'")
	if gotGen.reports != uint64(truth.Reports) || gotGen.records != uint64(truth.Records) || gotGen.messages != truth.Messages {
		t.Errorf("generated set: %d reports, %d records, %d messages; want %d, %d, %d",
			gotGen.reports, gotGen.records, gotGen.messages, truth.Reports, truth.Records, truth.Messages)
	}
	got := readS3Totals(t, ch, " WHERE policy_domain != 'serve-s3.example'")
	if got != want {
		t.Errorf("corpus through S3: %+v; a file ingest of it stores %+v", got, want)
	}
	t.Logf("corpus %+v; %d objects in invalid/", got, invalid)

	_, metrics := d.get("/metrics")
	if v := s3MetricValue(metrics, `dmarcd_s3_objects_listed_total{source="s3:ses"}`); v < float64(len(uploaded)) {
		t.Errorf("dmarcd_s3_objects_listed_total %v, want at least %d", v, len(uploaded))
	}
	if v := s3MetricValue(metrics, `dmarcd_s3_objects_fetched_total{source="s3:ses"}`); v != float64(len(uploaded)) {
		t.Errorf("dmarcd_s3_objects_fetched_total %v, want %d", v, len(uploaded))
	}
	for series, want := range map[string]float64{
		`dmarcd_s3_backlog_objects{source="s3:ses"}`: 0,
		`dmarcd_s3_errors_total{source="s3:ses"}`:    0,
		`dmarcd_source_up{source="s3:ses"}`:          1,
	} {
		if v := s3MetricValue(metrics, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	// Stored and rejected objects by reason_code are dmarcd_inputs_total's.
	var inputs, rejected float64
	for _, m := range regexp.MustCompile(`(?m)^dmarcd_inputs_total\{([^}]*source="s3:ses"[^}]*)\} (\S+)$`).FindAllStringSubmatch(metrics, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		inputs += v
		if strings.Contains(m[1], `status="invalid"`) {
			rejected += v
		}
	}
	if inputs != float64(len(uploaded)) || rejected != float64(invalid) {
		t.Errorf("dmarcd_inputs_total{source=\"s3:ses\"} sums to %v, %v of them invalid; want one per object (%d), %d invalid",
			inputs, rejected, len(uploaded), invalid)
	}
	if v := s3MetricValue(metrics, `dmarcd_inputs_total{kind="none",reason_code="not_a_report",source="s3:ses",status="invalid"}`); v < 1 {
		t.Errorf("the junk mail is not counted as invalid not_a_report: %v", v)
	}

	// Webhook: with an hour between polls only versitygw's event can make
	// the source fetch a new object now.
	late, err := gen.Generate(gen.Options{Domain: "late.example", Days: 2, Seed: 43, Start: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	pushed := func(data []byte) time.Duration {
		t.Helper()
		rel := s3Put(t, c, bucket, "incoming/", data)
		start := time.Now()
		waitFor(t, "the pushed object in processed/", 10*time.Second, func() bool {
			for _, k := range listKeys(t, c, bucket, "processed/") {
				if k == "processed/"+rel {
					return true
				}
			}
			return false
		})
		return time.Since(start)
	}
	t.Logf("object uploaded after start ingested %v after its upload", pushed(late[0].Data).Round(time.Millisecond))
	for path, want := range map[string]int{
		"/hooks/s3/nosuch?token=" + hookSecret: http.StatusNotFound,
		"/hooks/s3/ses?token=" + hookSecret:    http.StatusMethodNotAllowed,
		"/hooks/s3/ses":                        http.StatusUnauthorized,
		"/hooks/s3/ses?token=wrong":            http.StatusForbidden,
	} {
		if code, _ := d.get(path); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}

	// A reload that changes the source replaces it: the hook must reach the
	// new one.
	os.WriteFile(cfgPath, []byte(strings.Replace(cfg, "poll_interval: 1h", "poll_interval: 2h", 1)), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", 10*time.Second, func() bool {
		return strings.Contains(d.log.String(), "reload: configuration applied")
	})
	d.waitReady(t, 200, 10*time.Second) // the new source has listed
	t.Logf("after a reload, object ingested %v after its upload", pushed(late[1].Data).Round(time.Millisecond))
	d.stop(t)

	t.Run("wrong credentials", func(t *testing.T) {
		var keys []string
		for _, f := range files[:3] {
			keys = append(keys, "incoming/"+s3Put(t, c, "locked", "incoming/", f.Data))
		}
		addr := freeAddr(t)
		path := filepath.Join(cfgDir, "locked.yaml")
		os.WriteFile(path, []byte(fmt.Sprintf(`http: {listen: %s}
clickhouse: {dsn: %q}
owned_domains: ["*"]
sources:
  - {name: locked, type: s3, bucket: locked, prefix: incoming/, endpoint: %s, path_style: true, poll_interval: 1s}
`, addr, dsn, endpoint)), 0o600)
		bad := startServe(t, bin, path, addr, s3Env(access, "not-the-secret")...)
		var body string
		waitFor(t, "/readyz to report the rejected credentials", 10*time.Second, func() bool {
			var code int
			code, body = bad.get("/readyz")
			return code == http.StatusServiceUnavailable && strings.Contains(body, "SignatureDoesNotMatch")
		})
		t.Logf("/readyz 503: %s", strings.TrimSpace(body))
		if !strings.Contains(body, "source s3:locked") {
			t.Errorf("/readyz body %q does not name the source", body)
		}
		waitFor(t, "a retry (dmarcd_s3_errors_total 2)", 10*time.Second, func() bool {
			_, m := bad.get("/metrics")
			return s3MetricValue(m, `dmarcd_s3_errors_total{source="s3:locked"}`) >= 2
		})
		if got := listKeys(t, c, "locked", ""); strings.Join(got, " ") != strings.Join(slices.Sorted(slices.Values(keys)), " ") {
			t.Errorf("bucket holds %v, want the uploads untouched: %v", got, keys)
		}
		bad.stop(t)
	})
}

package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/app/wire"
	"github.com/dmarcd/dmarcd/internal/lib/config"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

const testHookSecret = "test-webhook-secret-0123456789abcdef"

// serveTest serves h on 127.0.0.1:0 with the limits lim until the test
// ends and returns the address.
func serveTest(t *testing.T, h http.Handler, lim httpLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, lln := serverFor(h, ln, lim)
	go srv.Serve(lln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// hookOnlySource is the webhook of an S3 source that is not running (no
// server needed): what /hooks/s3/NAME hands a request to.
func hookOnlySource(t *testing.T) *ingest.S3Source {
	t.Helper()
	src, err := ingest.NewS3Source(ingest.S3Config{Bucket: "b", Prefix: "incoming/"}, ingest.New(nil, ingest.Options{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// waitClosed reads c until the server closes it and returns how long that
// took; it fails the test if c is still open after limit.
func waitClosed(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

// TestATrickledWebhookBodyIsCutOffAfterTheReadTimeout is the attack of a
// client that sends an authenticated webhook request's body one byte every
// 20 ms (on main it held its connection for over 65 s): the connection is
// closed once the read timeout (300 ms here, 20 s by default) has passed.
func TestATrickledWebhookBodyIsCutOffAfterTheReadTimeout(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	addr := serveTest(t, webhookAuth(testHookSecret, hookOnlySource(t).WebhookHandler()), httpLimits{ReadTimeout: readTimeout})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /hooks/s3/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100000\r\n\r\n{", testHookSecret)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	took := waitClosed(t, c, 30*time.Second)
	t.Logf("trickled body cut off after %v (read timeout %v)", took.Round(time.Millisecond), readTimeout)
	if took < readTimeout/2 {
		t.Errorf("closed after %v, before the read timeout of %v: not the timeout", took, readTimeout)
	}
}

// TestAWebhookBodyOverTheLimitGets413AndOtherPathsTakeNoBody: an
// authenticated webhook request of 2 MiB gets 413, declared or chunked; a
// body sent to /healthz or /metrics gets 413 too, unread; an
// unauthenticated 2 MiB request gets 401 before its body is read.
func TestAWebhookBodyOverTheLimitGets413AndOtherPathsTakeNoBody(t *testing.T) {
	cfg := wire.DefaultConfig()
	cfg.OwnedDomains = []string{"*"}
	cfg.HTTP.WebhookSecret = testHookSecret
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/s3/x", webhookAuth(testHookSecret, hookOnlySource(t).WebhookHandler()))
	mux.Handle("/", d.Handler())
	addr := serveTest(t, mux, httpLimits{})
	big := bytes.Repeat([]byte(" "), 2<<20)
	post := func(path string, body io.Reader, auth bool, chunked bool) int {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+addr+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if chunked {
			req.ContentLength = -1
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+testHookSecret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// the server may close while the body is still being sent
			// after its answer; the answer is what counts
			t.Logf("POST %s: %v", path, err)
			return 0
		}
		defer resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		path          string
		auth, chunked bool
		want          int
	}{
		{"/hooks/s3/x", true, false, http.StatusRequestEntityTooLarge},
		{"/hooks/s3/x", true, true, http.StatusRequestEntityTooLarge},
		{"/hooks/s3/x", false, false, http.StatusUnauthorized},
		{"/healthz", false, false, http.StatusRequestEntityTooLarge},
		{"/metrics", false, true, http.StatusRequestEntityTooLarge},
	} {
		if got := post(tc.path, bytes.NewReader(big), tc.auth, tc.chunked); got != tc.want {
			t.Errorf("POST %s of 2 MiB (auth %v, chunked %v): %d, want %d", tc.path, tc.auth, tc.chunked, got, tc.want)
		}
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz without a body: %v %v", resp, err)
	}
}

// TestIdleKeepAliveConnectionsAreClosedAfterTheIdleTimeout is the attack of
// a client that opens connections, makes one request on each and keeps
// them (on main 10,000 of them held 344 MB): 200 such connections are all
// closed by the server once idle for the idle timeout (200 ms here, 60 s by
// default), and the goroutines that served them are gone.
func TestIdleKeepAliveConnectionsAreClosedAfterTheIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	cfg := wire.DefaultConfig()
	cfg.OwnedDomains = []string{"*"}
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	addr := serveTest(t, d.Handler(), httpLimits{IdleTimeout: idle})
	const n = 200
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz on connection %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
		conns[i] = c
	}
	var wg sync.WaitGroup
	var longest atomic.Int64
	for _, c := range conns {
		wg.Go(func() {
			took := waitClosed(t, c, 30*time.Second)
			for {
				l := longest.Load()
				if int64(took) <= l || longest.CompareAndSwap(l, int64(took)) {
					break
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d idle connections all closed by the server within %v (idle timeout %v)",
		n, time.Duration(longest.Load()).Round(time.Millisecond), idle)
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine()-base > 10; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines more than before the connections, after they were closed", runtime.NumGoroutine()-base)
		}
	}
}

// TestConnectionsBeyondMaxConnectionsWaitUntilOneCloses: with 4
// connections open (max_connections 4 here, 256 by default), a fifth is not
// served (its request gets no answer for as long as it is watched, 500 ms)
// until one of the four closes; then it is.
func TestConnectionsBeyondMaxConnectionsWaitUntilOneCloses(t *testing.T) {
	cfg := wire.DefaultConfig()
	cfg.OwnedDomains = []string{"*"}
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTest(t, d.Handler(), httpLimits{MaxConnections: 4})
	get := func(c net.Conn, r *bufio.Reader) (*http.Response, error) {
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(r, nil)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	var open []net.Conn
	for i := range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := get(c, bufio.NewReader(c)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		open = append(open, c)
	}
	fifth, err := net.Dial("tcp", addr) // the kernel completes the handshake
	if err != nil {
		t.Fatal(err)
	}
	defer fifth.Close()
	r := bufio.NewReader(fifth)
	fifth.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if resp, err := get(fifth, r); err == nil {
		t.Fatalf("a fifth connection was served while 4 were open: %s", resp.Status)
	}
	open[0].Close()
	fifth.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the fifth connection after one of the four closed: %v %v", resp, err)
	}
}

// TestWebhookWithoutOrWithAWrongSecretIsRefusedAndReachesNoSource: no
// secret sent gets 401 with a Bearer challenge, a wrong one 403 (header or
// query), and neither reaches the source's handler, so neither can cost a
// listing; the right one, as a Bearer header (scheme in any case) or
// ?token=, does. Without a configured secret the webhooks are off (404).
func TestWebhookWithoutOrWithAWrongSecretIsRefusedAndReachesNoSource(t *testing.T) {
	var reached atomic.Int64
	h := webhookAuth(testHookSecret, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, tc := range []struct {
		name, auth, query string
		want              int
	}{
		{"nothing", "", "", http.StatusUnauthorized},
		{"another scheme", "Basic " + testHookSecret, "", http.StatusUnauthorized},
		{"wrong bearer", "Bearer " + testHookSecret + "x", "", http.StatusForbidden},
		{"wrong token", "", "token=" + testHookSecret[:20], http.StatusForbidden},
		{"empty bearer", "Bearer ", "", http.StatusForbidden},
	} {
		req := httptest.NewRequest("POST", "/hooks/s3/ses?"+tc.query, strings.NewReader("{}"))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, rec.Code, tc.want)
		}
		if tc.want == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
		if rec.Header().Get("Connection") != "close" {
			t.Errorf("%s: the connection is kept", tc.name)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("%d refused requests reached the source", n)
	}
	for _, tc := range []struct{ auth, query string }{
		{"Bearer " + testHookSecret, ""}, {"bearer " + testHookSecret, ""}, {"", "token=" + testHookSecret},
	} {
		req := httptest.NewRequest("POST", "/hooks/s3/ses?"+tc.query, strings.NewReader("{}"))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			t.Errorf("%q %q: %d, want the source's 204", tc.auth, tc.query, rec.Code)
		}
	}
	if n := reached.Load(); n != 3 {
		t.Errorf("%d accepted requests reached the source, want 3", n)
	}
	off := webhookAuth("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	rec := httptest.NewRecorder()
	off.ServeHTTP(rec, httptest.NewRequest("POST", "/hooks/s3/ses?token=", nil))
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "http.webhook_secret") || reached.Load() != 3 {
		t.Errorf("no secret configured: %d %q, want 404 saying how to turn the webhooks on", rec.Code, rec.Body)
	}
}

// listCounter is a reverse proxy in front of an S3 server that counts its
// ListObjectsV2 requests.
type listCounter struct {
	target atomic.Pointer[url.URL]
	lists  atomic.Int64
}

func (l *listCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" {
		l.lists.Add(1)
	}
	(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(l.target.Load())
		pr.Out.Host = pr.In.Host // the signature covers Host
	}}).ServeHTTP(w, r)
}

// TestDaemonWebhookOnVersitygwAuthenticatesAndCoalescesEvents runs the
// daemon with an s3 source (an hour between polls) on a real versitygw,
// through a proxy that counts its listings, and versitygw's events posted
// to /hooks/s3/ses?token=SECRET:
//
//   - POSTs without or with a wrong secret get 401 and 403;
//   - versitygw's own event for a new object gets it fetched within
//     seconds;
//   - 1,000 authenticated POSTs (Authorization: Bearer), one every 2 ms, cost
//     at most one listing per second while they arrive plus two (on main
//     every event between two passes cost one: 20,000 POSTs, 545 listings;
//     the same flood without coalescing, 697 listings in 2.2 s).
func TestDaemonWebhookOnVersitygwAuthenticatesAndCoalescesEvents(t *testing.T) {
	dsn := testenv.ClickHouse(t)
	var handler atomic.Pointer[http.Handler]
	addr := serveTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := handler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent) // versitygw's test event at its start
	}), httpLimits{})
	endpoint, access, secret := testenv.S3WithWebhook(t, "http://"+addr+"/hooks/s3/ses?token="+testHookSecret)
	proxy := &listCounter{}
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy.target.Store(u)
	ps := httptest.NewServer(proxy)
	defer ps.Close()
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1",
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	t.Setenv("DMARCD_PRIVACY_KEY", "00112233445566778899aabbccddeeff")
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(access, secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired})
	ctx := context.Background()
	const bucket = "hooked"
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	put := func(key string, data []byte) {
		t.Helper()
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
	}
	processed := func(key string) bool {
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("processed/" + key)})
		return err == nil
	}

	cfg := wire.DefaultConfig()
	cfg.ClickHouse.DSN = dsn
	cfg.OwnedDomains = []string{"*"}
	cfg.HTTP.Listen = ""
	cfg.HTTP.WebhookSecret = testHookSecret
	cfg.Sources = []config.Source{{Name: "ses", Type: config.SourceS3, Bucket: bucket, Prefix: "incoming/",
		Endpoint: ps.URL, PathStyle: true, Mode: "move", ProcessedPrefix: "processed/", InvalidPrefix: "invalid/",
		PollInterval: config.Duration(time.Hour)}}
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := d.Handler()
	handler.Store(&h)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- d.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := readyz(t, d); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			code, body := readyz(t, d)
			t.Fatalf("/readyz %d: %s", code, body)
		}
	}

	files, err := gen.Generate(gen.Options{Domain: "hook.example", Days: 2, Seed: 7, Start: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	hookURL := "http://" + addr + "/hooks/s3/ses"
	event := func(key string) string {
		return fmt.Sprintf(`{"Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":%q},"object":{"key":%q}}}]}`, bucket, key)
	}
	post := func(auth, query, body string) int {
		req, _ := http.NewRequest("POST", hookURL+query, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 50 {
		if got := post("", "", event("incoming/x")); got != http.StatusUnauthorized {
			t.Fatalf("POST %d without a secret: %d, want 401", i, got)
		}
		if got := post("Bearer wrong-secret-0123456789", "", event("incoming/x")); got != http.StatusForbidden {
			t.Fatalf("POST %d with a wrong secret: %d, want 403", i, got)
		}
	}

	// versitygw's event (?token=) for a new object.
	start := time.Now()
	put("incoming/first", files[0].Data)
	for !processed("first") {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("object not fetched 20 s after its upload; the poll is an hour away")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("versitygw's event: object fetched and moved %v after its upload", time.Since(start).Round(time.Millisecond))

	// The flood.
	put("incoming/second", files[1].Data)
	before := proxy.lists.Load()
	start = time.Now()
	const posts, workers = 1000, 8
	var failed atomic.Int64
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range jobs {
				if post("Bearer "+testHookSecret, "", event("incoming/second")) != http.StatusNoContent {
					failed.Add(1)
				}
			}
		})
	}
	tick := time.NewTicker(2 * time.Millisecond) // spreads the events over many passes; a slow machine only spreads them more
	for range posts {
		<-tick.C
		jobs <- struct{}{}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d authenticated POSTs not answered 204", n, posts)
	}
	for deadline := time.Now().Add(20 * time.Second); !processed("second"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("second object not fetched after 1,000 events")
		}
	}
	got := proxy.lists.Load() - before
	bound := 2 + int64(elapsed/ingest.DefaultWebhookMinInterval)
	t.Logf("%d authenticated events in %v: %d listings (bound %d)", posts, elapsed.Round(time.Millisecond), got, bound)
	if got > bound {
		t.Errorf("%d events in %v caused %d listings; want at most %d", posts, elapsed, got, bound)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/dmarcd/dmarcd/internal/testkit/gen"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// testPrivacyKey keeps the tests from creating a key file in $HOME.
const testPrivacyKey = "DMARCD_PRIVACY_KEY=00112233445566778899aabbccddeeff"

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemonProc is a running `dmarcd serve`.
type daemonProc struct {
	cmd  *exec.Cmd
	http string
	log  *syncBuffer
	done chan struct{}
	code int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startServe(t *testing.T, bin, config, httpAddr string, env ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{http: httpAddr, log: &syncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(bin, "serve", "--config", config)
	// The config file names the ClickHouse: an inherited DMARCD_CLICKHOUSE_DSN
	// (make test exports one for its shared server) would override it.
	d.cmd.Env = append(append(environWithout("DMARCD_CLICKHOUSE_DSN"), testPrivacyKey), env...)
	d.cmd.Stderr = d.log
	d.cmd.Stdout = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.cmd.Wait()
		d.code = d.cmd.ProcessState.ExitCode()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("dmarcd serve log:\n%s", d.log.String())
		}
	})
	return d
}

func (d *daemonProc) get(path string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + d.http + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond every 100ms until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *daemonProc) waitReady(t *testing.T, want int, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := d.get("/readyz")
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for /readyz %d; last answer %d %q", timeout, want, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *daemonProc) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("dmarcd serve still running 10s after SIGTERM")
	}
	if d.code != 0 {
		t.Errorf("dmarcd serve exited %d after SIGTERM, want 0", d.code)
	}
	return time.Since(start)
}

// regular lists the files of dir not starting with ".".
func regular(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// dropFile writes data elsewhere and renames it into dir, as the spool
// convention says.
func dropFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func mailboxSize(t *testing.T, c *imapclient.Client, mailbox string) int {
	t.Helper()
	st, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return -1
	}
	return int(*st.NumMessages)
}

// TestServeCheckConfigPrintsEveryProblem: --check-config names each of
// three problems with its key and exits 2; a good file prints ok.
func TestServeCheckConfigPrintsEveryProblem(t *testing.T) {
	bin := buildDmarcd(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`http:
  listen: everywhere
owned_domains: ["*"]
sources:
  - name: drop
    type: spool
    settle: 1s
  - name: mail
    type: imap
    address: imap.example.com:993
    username: dmarc
    password_file: /run/secrets/missing
    colour: blue
`), 0o600)
	out, err := exec.Command(bin, "serve", "--check-config", "--config", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2; output:\n%s", err, out)
	}
	for _, want := range []string{"config http.listen:", "config sources[drop].path: missing",
		"config sources[mail].colour: unknown key", "config sources[mail].password_file:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("owned_domains: [\"*\"]\nsources:\n  - {name: drop, type: spool, path: "+dir+"}\n"), 0o600)
	out, err = exec.Command(bin, "serve", "--check-config", "--config", good).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("good config: %v, %q; want exit 0 and ok", err, out)
	}
}

// TestServeEndToEnd runs `dmarcd serve` with a spool folder and a real
// Dovecot mailbox: files dropped and mails appended are ingested exactly
// once (ClickHouse totals are the generator's), /metrics counts them by
// source, SIGHUP adds a second spool folder, SIGTERM exits 0 within 10s.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	imapAddr, user, pass := testenv.Dovecot(t)
	files, err := gen.Generate(gen.Options{Days: 4, Seed: 21, Domain: "serve-test.example"})
	if err != nil {
		t.Fatal(err)
	}
	truth := gen.Summarize(files)

	dir := t.TempDir()
	spool, spool2 := filepath.Join(dir, "spool"), filepath.Join(dir, "spool2")
	httpAddr := freeAddr(t)
	cfgPath := filepath.Join(dir, "dmarcd.yaml")
	cfg := fmt.Sprintf(`http: {listen: %s}
log: {level: info}
owned_domains: ["*"]
sources:
  - name: drop
    type: spool
    path: %s
    settle: 300ms
    poll_interval: 1s
  - name: mailbox
    type: imap
    address: %s
    tls: none
    username: %s
    poll_interval: 1s
`, httpAddr, spool, imapAddr, user)
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	d := startServe(t, bin, cfgPath, httpAddr, "DMARCD_CLICKHOUSE_DSN="+dsn, "DMARCD_SOURCES_MAILBOX_PASSWORD="+pass)
	start := time.Now()
	d.waitReady(t, 200, 30*time.Second)
	t.Logf("ready after %v", time.Since(start).Round(time.Millisecond))

	c, err := imapclient.DialInsecure(imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	mails := 0
	for i, f := range files {
		if i%2 == 0 && strings.HasSuffix(f.Name, ".eml") {
			cmd := c.Append("INBOX", int64(len(f.Data)), nil)
			cmd.Write(f.Data)
			cmd.Close()
			if _, err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			mails++
			continue
		}
		dropFile(t, spool, f.Name, f.Data)
	}
	dropFile(t, spool, "newsletter.eml", []byte("From: a@shop.example\r\nSubject: sale\r\nContent-Type: text/html\r\n\r\n<p>Sale!</p>\r\n"))
	start = time.Now()
	waitDraining(t, "the spool folder and the INBOX to empty", 2*time.Minute, func() (int, bool) {
		return len(regular(t, spool)) + mailboxSize(t, c, "INBOX"), true
	})
	t.Logf("%d files and %d mails ingested in %v", len(files)-mails+1, mails, time.Since(start).Round(time.Millisecond))
	if n := mailboxSize(t, c, "dmarcd.processed"); n != mails {
		t.Errorf("dmarcd.processed holds %d mails, want %d", n, mails)
	}
	if n := len(regular(t, filepath.Join(spool, "invalid"))); n != 2 {
		t.Errorf("spool invalid/ holds %d files, want newsletter.eml and its .reason", n)
	}
	ch := conn(t, dsn)
	var reports, records, messages uint64
	ch.QueryRow(context.Background(), "SELECT count() FROM aggregate_reports").Scan(&reports)
	ch.QueryRow(context.Background(), "SELECT count(), sum(message_count) FROM aggregate_records").Scan(&records, &messages)
	if reports != uint64(truth.Reports) || records != uint64(truth.Records) || messages != truth.Messages {
		t.Errorf("ClickHouse holds %d reports, %d records, %d messages; want %d, %d, %d",
			reports, records, messages, truth.Reports, truth.Records, truth.Messages)
	}
	_, metrics := d.get("/metrics")
	for _, want := range []string{`dmarcd_inputs_total{kind="aggregate",reason_code="",source="spool:drop",status="stored"}`,
		`dmarcd_inputs_total{kind="aggregate",reason_code="",source="imap:mailbox",status="stored"}`,
		`dmarcd_source_up{source="imap:mailbox"} 1`, `dmarcd_imap_backlog_messages{source="imap:mailbox"} 0`, `dmarcd_source_up{source="spool:drop"} 1`,
		`dmarcd_source_errors_total{source="spool:drop"} 0`, "dmarcd_clickhouse_up 1",
		"dmarc_gauges_last_update_timestamp_seconds "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// SIGHUP with a second spool folder: it starts, the others keep running.
	os.WriteFile(cfgPath, []byte(cfg+fmt.Sprintf("  - {name: drop2, type: spool, path: %s, settle: 300ms}\n", spool2)), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "spool:drop2 to be up", 10*time.Second, func() bool {
		_, m := d.get("/metrics")
		return strings.Contains(m, `dmarcd_source_up{source="spool:drop2"} 1`)
	})
	dropFile(t, spool2, files[0].Name, files[0].Data)
	waitFor(t, "spool2 to empty", 20*time.Second, func() bool {
		return len(regular(t, filepath.Join(spool2, "processed"))) == 1
	})
	if strings.Count(d.log.String(), "imap connected") != 1 {
		t.Errorf("the reload restarted the unchanged IMAP source")
	}
	d.waitReady(t, 200, 5*time.Second)

	took := d.stop(t)
	t.Logf("SIGTERM to exit: %v", took.Round(time.Millisecond))
}

// TestServeReadyzFollowsClickHouse stops the daemon's ClickHouse (a server
// of its own, through a loopback relay so that a restart on another port
// does not matter): /readyz goes 503 naming clickhouse, a dropped file stays
// in the spool folder; after ClickHouse is back /readyz goes 200 and the
// file is ingested.
func TestServeReadyzFollowsClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ClickHouse server")
	}
	t.Parallel()
	bin := buildDmarcd(t)
	chDir := t.TempDir()
	chAddr := startClickHouse(t, chDir)
	t.Cleanup(func() { exec.Command("bash", clickhouseScript(t), "stop", chDir).Run() })
	relay := newCutRelay(t, chAddr)

	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	httpAddr := freeAddr(t)
	cfgPath := filepath.Join(dir, "dmarcd.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`http: {listen: %s}
clickhouse: {dsn: "clickhouse://%s/dmarc_readyz?dial_timeout=1s"}
owned_domains: ["*"]
sources:
  - {name: drop, type: spool, path: %s, settle: 200ms, poll_interval: 1s}
`, httpAddr, relay.addr, spool)), 0o600)
	d := startServe(t, bin, cfgPath, httpAddr)
	d.waitReady(t, 200, 30*time.Second)

	start := time.Now()
	if out, err := exec.Command("bash", clickhouseScript(t), "stop", chDir).CombinedOutput(); err != nil {
		t.Fatalf("stopping clickhouse: %v: %s", err, out)
	}
	// Its port is free now and another test's server may take it: point the
	// relay at a closed port, so "down" stays down until the restart below.
	relay.target("127.0.0.1:1")
	body := d.waitReady(t, 503, 15*time.Second)
	t.Logf("503 %v after stopping ClickHouse: %q", time.Since(start).Round(time.Millisecond), strings.TrimSpace(body))
	if !strings.Contains(body, "clickhouse:") {
		t.Errorf("/readyz body %q does not name clickhouse", body)
	}
	files, err := gen.Generate(gen.Options{Days: 1, Seed: 31})
	if err != nil {
		t.Fatal(err)
	}
	dropFile(t, spool, files[0].Name, files[0].Data)
	time.Sleep(1500 * time.Millisecond)
	if got := regular(t, spool); len(got) != 1 {
		t.Errorf("with ClickHouse down the spool folder holds %v, want the file left in place", got)
	}

	start = time.Now()
	relay.target(startClickHouse(t, chDir))
	d.waitReady(t, 200, 30*time.Second)
	t.Logf("200 again %v after restarting ClickHouse", time.Since(start).Round(time.Millisecond))
	waitFor(t, "the file to be ingested after ClickHouse is back", 70*time.Second, func() bool {
		return len(regular(t, filepath.Join(spool, "processed"))) == 1
	})
	t.Logf("file ingested %v after restarting ClickHouse", time.Since(start).Round(time.Millisecond))
	d.stop(t)
}

func clickhouseScript(t *testing.T) string {
	root := testenv.ModuleRoot()
	if root == "" {
		t.Fatal("module root not found")
	}
	return filepath.Join(root, "scripts", "clickhouse.sh")
}

// startClickHouse starts a ClickHouse of this test in dir and returns its
// native address.
func startClickHouse(t *testing.T, dir string) string {
	t.Helper()
	testenv.StartsServer(t, "a ClickHouse server")
	cmd := exec.Command("bash", clickhouseScript(t), "start", dir)
	cmd.Env = append(os.Environ(), fmt.Sprintf("CLICKHOUSE_OWNER_PID=%d", os.Getpid()))
	out, err := cmd.Output()
	if err != nil {
		msg := fmt.Sprintf("clickhouse.sh start: %v", err)
		if testenv.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), testenv.EnvClickHouseAddr+"="); ok {
			return v
		}
	}
	t.Fatalf("clickhouse.sh start printed no address: %q", out)
	return ""
}

// environWithout returns the environment less the named variables.
func environWithout(names ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		drop := false
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				drop = true
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

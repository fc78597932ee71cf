package hostile

import (
	"context"
	"fmt"
	"io"
	"net"
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

	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// The mailboxes of dmarcd serve's defaults as the test Dovecot spells
// them (its hierarchy separator is ".").
const (
	processedBox = "dmarcd.processed"
	invalidBox   = "dmarcd.invalid"
)

// TestAttacksThroughIMAPEndInTheInvalidMailboxAndGoodMailIsStored
// appends every answered attack as a mail (bare files as attachments) to a
// Dovecot INBOX, then a good report mail, and runs `dmarcd serve` with that
// IMAP source: the INBOX must empty, every attack must end in the invalid
// mailbox, the good mail in the processed one with its report in
// ClickHouse, no row of an attack stored, and the daemon under
// maxRSSTransport (it reads every attack in one process; its rusage is an
// upper bound here, the larger of the test's peak and its own: see timed).
func TestAttacksThroughIMAPEndInTheInvalidMailboxAndGoodMailIsStored(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dmarcd serve against Dovecot and ClickHouse")
	}
	addr, user, pass := testenv.Dovecot(t)
	dsn := testenv.ClickHouse(t)
	bin := buildDmarcd(t)
	dir := t.TempDir()

	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	var attacks []string
	for _, a := range All() {
		if a.Pending != "" || a.Stdin {
			continue // a pending attack may be stored or retried: it would never leave the INBOX
		}
		appendFile(t, c, writeAttack(t, dir, a, true))
		attacks = append(attacks, a.Name)
	}
	good := filepath.Join(dir, "good.eml")
	if err := os.WriteFile(good, GoodMail("good-imap"), 0o644); err != nil {
		t.Fatal(err)
	}
	appendFile(t, c, good)

	httpAddr := freeAddr(t)
	cfg := filepath.Join(dir, "dmarcd.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`http: {listen: %s}
owned_domains: [%s]
sources:
  - name: mailbox
    type: imap
    address: %s
    tls: none
    username: %s
    poll_interval: 1s
`, httpAddr, GoodDomain, addr, user)), 0o600)
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Env = append(childEnv(dsn), "DMARCD_SOURCES_MAILBOX_PASSWORD="+pass)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("dmarcd serve log:\n%s", cut(log.String(), 20000))
		}
	}()

	deadline := time.Now().Add(2 * time.Minute)
	for mailboxSize(c, "INBOX") != 0 || mailboxSize(c, processedBox)+mailboxSize(c, invalidBox) != len(attacks)+1 {
		select {
		case err := <-done:
			t.Fatalf("dmarcd serve exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("INBOX still holds %d mails after 2 minutes", mailboxSize(c, "INBOX"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("dmarcd serve still running 30 s after SIGTERM")
	}
	u := usageOf(cmd.ProcessState, took)
	t.Logf("%d attack mails and a good one through IMAP: %s", len(attacks), u)
	if n := mailboxSize(c, invalidBox); n != len(attacks) {
		t.Errorf("%s holds %d mails, want the %d attacks", invalidBox, n, len(attacks))
	}
	if n := mailboxSize(c, processedBox); n != 1 {
		t.Errorf("%s holds %d mails, want the good one", processedBox, n)
	}
	if u.maxRSS > maxRSSTransport {
		t.Errorf("dmarcd serve peaked at %.1f MB RSS, over %d MB", float64(u.maxRSS)/1e6, maxRSSTransport>>20)
	}
	ch := connect(t, dsn)
	var ids []string
	rows, err := ch.Query(context.Background(), "SELECT substring(report_id, 1, 80) FROM aggregate_reports "+
		"UNION ALL SELECT substring(report_id, 1, 80) FROM tlsrpt_reports UNION ALL SELECT 'failure' FROM failure_reports")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	if len(ids) != 1 || ids[0] != "good-imap" {
		t.Errorf("ClickHouse holds reports %q, want only good-imap", ids)
	}
}

// appendFile appends the mail in file to the INBOX, streamed.
func appendFile(t *testing.T, c *imapclient.Client, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	cmd := c.Append("INBOX", st.Size(), nil)
	if _, err := io.Copy(cmd, f); err != nil {
		t.Fatalf("APPEND %s: %v", file, err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("APPEND %s: %v", file, err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("APPEND %s: %v", file, err)
	}
}

func mailboxSize(c *imapclient.Client, mailbox string) int {
	st, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0
	}
	return int(*st.NumMessages)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

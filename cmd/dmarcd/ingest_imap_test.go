package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/lib/oauth"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// runIMAP runs `dmarcd ingest ARGS...` with the environment given, and
// returns stdout, stderr and the exit status.
func runIMAP(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"ingest"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func imapHarness(t *testing.T, d *testenv.DovecotServer) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(d.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(d.User, d.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

func imapAppend(t *testing.T, c *imapclient.Client, data []byte) {
	t.Helper()
	cmd := c.Append("INBOX", int64(len(data)), nil)
	cmd.Write(data)
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func imapCount(t *testing.T, c *imapclient.Client, mailbox string) int {
	t.Helper()
	st, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS %s: %v", mailbox, err)
	}
	return int(*st.NumMessages)
}

// TestIngestIMAPProcessesTheMailboxOnce runs `dmarcd ingest --json
// imaps://...` against a Dovecot with a self-signed certificate (trusted by
// DMARCD_IMAP_CA_FILE, the password from DMARCD_IMAP_PASSWORD_FILE) holding
// corpus aggregate, failure and TLS report mails and a newsletter: one JSON
// line per mail, the report mails in the processed folder, the newsletter in
// the invalid one, exit 0. Reprocessing the invalid folder with imap://
// (STARTTLS) leaves the newsletter there. Without the CA file it exits 1
// with a certificate error.
func TestIngestIMAPProcessesTheMailboxOnce(t *testing.T) {
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	d := testenv.StartDovecot(t, testenv.DovecotOptions{TLS: true})
	c := imapHarness(t, d)
	corpus := testenv.CorpusDir(t)
	var paths []string
	for _, pat := range []string{"mjl-__mox/email/*.eml", "mjl-__mox/smtp_tls/*.eml", "stalwartlabs__mail-auth/forensic/*.eml"} {
		p, _ := filepath.Glob(filepath.Join(corpus, pat))
		paths = append(paths, p...)
	}
	if len(paths) < 3 {
		t.Fatalf("corpus mails: %v", paths)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		imapAppend(t, c, b)
	}
	imapAppend(t, c, []byte("From: news@shop.example\r\nSubject: Sale\r\nContent-Type: text/plain\r\n\r\n20% off.\r\n"))
	pwFile := filepath.Join(t.TempDir(), "password")
	os.WriteFile(pwFile, []byte(d.Password+"\n"), 0o600)
	env := []string{"DMARCD_CLICKHOUSE_DSN=" + dsn, "DMARCD_PRIVACY_KEY=00112233445566778899aabbccddeeff",
		"DMARCD_IMAP_PASSWORD=", "DMARCD_IMAP_PASSWORD_FILE=" + pwFile}

	_, stderr, code := runIMAP(t, bin, env, "--json", "imaps://"+d.User+"@"+d.TLSAddr+"/INBOX")
	if code != 1 || !strings.Contains(stderr, "certificate") || !strings.Contains(stderr, "DMARCD_IMAP_CA_FILE") && !strings.Contains(stderr, "ca_file") {
		t.Errorf("without the CA: exit %d, stderr %q; want 1 and a certificate error", code, stderr)
	}
	t.Logf("without the CA: exit %d: %s", code, strings.TrimSpace(stderr))

	env = append(env, "DMARCD_IMAP_CA_FILE="+d.CAFile)
	stdout, stderr, code := runIMAP(t, bin, env, "--json", "imaps://"+d.User+"@"+d.TLSAddr+"/INBOX")
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != len(paths)+1 {
		t.Fatalf("%d lines for %d mails:\n%s", len(lines), len(paths)+1, stdout)
	}
	kinds := map[string]int{}
	for _, l := range lines {
		var o outcome
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if !strings.HasPrefix(o.Input, "imap://"+d.User+"@"+d.TLSAddr+"/INBOX;UID=") {
			t.Errorf("input %q", o.Input)
		}
		kinds[o.Kind+"/"+o.Status]++
	}
	if kinds["none/invalid"] != 1 || kinds["tlsrpt/stored"] != 1 || kinds["failure/stored"] != 1 || kinds["aggregate/stored"] != len(paths)-2 {
		t.Errorf("outcomes by kind/status %v; want %d aggregate, 1 failure, 1 tlsrpt stored and 1 invalid", kinds, len(paths)-2)
	}
	if n := imapCount(t, c, "INBOX"); n != 0 {
		t.Errorf("INBOX holds %d mails, want 0", n)
	}
	if p, i := imapCount(t, c, "dmarcd.processed"), imapCount(t, c, "dmarcd.invalid"); p != len(paths) || i != 1 {
		t.Errorf("processed %d, invalid %d; want %d and 1", p, i, len(paths))
	}

	// Reprocess the invalid folder over STARTTLS, with readable lines: the
	// newsletter is still not a report and stays.
	env = append(env, "DMARCD_IMAP_PASSWORD_FILE=", "DMARCD_IMAP_PASSWORD="+d.Password)
	stdout, stderr, code = runIMAP(t, bin, env, "imap://"+d.User+"@"+d.Addr+"/dmarcd/invalid")
	if code != 0 || !strings.Contains(stdout, "invalid   imap://") || !strings.Contains(stdout, "not_a_report") ||
		!strings.Contains(stdout, "1 mails in") {
		t.Errorf("reprocessing the invalid folder: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if i := imapCount(t, c, "dmarcd.invalid"); i != 1 {
		t.Errorf("invalid folder holds %d mails after reprocessing, want 1", i)
	}
}

// TestIngestIMAPWrongPasswordExits1: a rejected password ends the command
// with exit 1 and a message saying so; a missing one is a usage error.
// (A Dovecot of its own: it delays logins after a failed one.)
func TestIngestIMAPWrongPasswordExits1(t *testing.T) {
	bin := buildDmarcd(t)
	dsn := testenv.ClickHouse(t)
	d := testenv.StartDovecot(t, testenv.DovecotOptions{})
	url := "imap://" + d.User + "@" + d.Addr + "/INBOX?tls=none"
	env := []string{"DMARCD_CLICKHOUSE_DSN=" + dsn, "DMARCD_IMAP_PASSWORD_FILE="}

	_, stderr, code := runIMAP(t, bin, append(env, "DMARCD_IMAP_PASSWORD=wrong"), "--json", url)
	if code != 1 || !strings.Contains(stderr, "login refused") || !strings.Contains(stderr, "AUTHENTICATIONFAILED") ||
		!strings.Contains(stderr, d.User) {
		t.Errorf("wrong password: exit %d, stderr %q; want 1 and a message that the login was refused", code, stderr)
	}
	t.Logf("wrong password: exit %d: %s", code, strings.TrimSpace(stderr))
	_, stderr, code = runIMAP(t, bin, append(env, "DMARCD_IMAP_PASSWORD="), "--json", url)
	if code != 2 || !strings.Contains(stderr, "DMARCD_IMAP_PASSWORD") {
		t.Errorf("no password: exit %d, stderr %q; want 2 naming DMARCD_IMAP_PASSWORD", code, stderr)
	}
}

// TestIMAPConfigFromURL pins how the URL and the environment make the
// source's configuration.
func TestIMAPConfigFromURL(t *testing.T) {
	envs := map[string]string{"DMARCD_IMAP_PASSWORD": "pw", "DMARCD_IMAP_CA_FILE": "/etc/ca.pem"}
	getenv := func(k string) string { return envs[k] }
	for _, tc := range []struct {
		url  string
		want ingest.IMAPConfig // zero Name: compared field by field below
		err  string
	}{
		{url: "imaps://dmarc@mail.example.com/INBOX", want: ingest.IMAPConfig{Address: "mail.example.com:993",
			TLS: ingest.IMAPTLSImplicit, Username: "dmarc", Password: "pw", Mailbox: "INBOX", CAFile: "/etc/ca.pem"}},
		{url: "imap://rua%40example.com@mail.example.com:1143/Reports/DMARC?processed=Done&invalid=Junk",
			want: ingest.IMAPConfig{Address: "mail.example.com:1143", TLS: ingest.IMAPTLSStartTLS, Username: "rua@example.com",
				Password: "pw", Mailbox: "Reports/DMARC", ProcessedMailbox: "Done", InvalidMailbox: "Junk", CAFile: "/etc/ca.pem"}},
		{url: "imap://u@127.0.0.1:143/?tls=none", want: ingest.IMAPConfig{Address: "127.0.0.1:143",
			TLS: ingest.IMAPTLSNone, Username: "u", Password: "pw", CAFile: "/etc/ca.pem"}},
		{url: "imap://u@mail.example.com/?tls=none", err: "loopback"},
		{url: "imaps://u:secret@mail.example.com/", err: "not in the URL"},
		{url: "imaps://mail.example.com/", err: "no user"},
		{url: "pop3://u@mail.example.com/", err: "scheme"},
		{url: "imaps://u@mail.example.com/?folder=x", err: "unknown parameter"},
		{url: "imaps://u@mail.example.com/?auth=xoauth2", err: "DMARCD_IMAP_TOKEN_FILE"},
	} {
		got, err := imapConfigFromURL(tc.url, getenv)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one saying %q", tc.url, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		got.Name = ""
		if got.Address != tc.want.Address || got.TLS != tc.want.TLS || got.Username != tc.want.Username ||
			got.Password != tc.want.Password || got.Mailbox != tc.want.Mailbox || got.CAFile != tc.want.CAFile ||
			got.ProcessedMailbox != tc.want.ProcessedMailbox || got.InvalidMailbox != tc.want.InvalidMailbox {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.url, got, tc.want)
		}
	}
	envs["DMARCD_IMAP_TOKEN_FILE"] = "/run/token"
	got, err := imapConfigFromURL("imaps://u@mail.example.com/?auth=oauthbearer", getenv)
	if err != nil || got.OAuth == nil || got.OAuth.Mechanism != oauth.OAUTHBEARER || got.OAuth.TokenFile != "/run/token" {
		t.Errorf("auth=oauthbearer: %+v, %v", got.OAuth, err)
	}
}

package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Environment variables printed by scripts/dovecot.sh start.
const (
	EnvIMAPAddr     = "DMARCD_TEST_IMAP_ADDR"
	EnvIMAPUser     = "DMARCD_TEST_IMAP_USER"
	EnvIMAPPassword = "DMARCD_TEST_IMAP_PASSWORD"
	EnvIMAPSAddr    = "DMARCD_TEST_IMAPS_ADDR" // with DovecotOptions.TLS
)

// Dovecot starts a Dovecot IMAP server of its own for this test
// (scripts/dovecot.sh, plain IMAP on 127.0.0.1, a fresh empty mailbox) and
// returns its address (host:port) and the credentials of its one user. The
// server is stopped when the test ends; its folder (config, mail, logs) is
// removed unless the test failed.
//
// When Dovecot cannot be started the test fails if CI is "true" and is
// skipped with the reason otherwise. With -short (make test-unit) it is
// skipped.
func Dovecot(t testing.TB) (addr, user, pass string) {
	t.Helper()
	d := StartDovecot(t, DovecotOptions{})
	return d.Addr, d.User, d.Password
}

// DovecotWith is Dovecot with options.
func DovecotWith(t testing.TB, opt DovecotOptions) (addr, user, pass string) {
	t.Helper()
	d := StartDovecot(t, opt)
	return d.Addr, d.User, d.Password
}

// DovecotOptions change the test server.
type DovecotOptions struct {
	// IMAPCapability, when set, replaces the capability list the server
	// announces after login (Dovecot's imap_capability), e.g. "IMAP4rev1
	// IDLE" to test a client's fallbacks for servers without MOVE and
	// UIDPLUS. Dovecot still accepts the commands it does not announce.
	IMAPCapability string

	// TLS gives the server a self-signed certificate for 127.0.0.1 made up
	// for the test: STARTTLS on Addr and implicit TLS on TLSAddr. CAFile is
	// the certificate to trust. Plaintext logins on Addr stay allowed.
	TLS bool

	// OAuth2IntrospectionURL, when set, makes the server accept XOAUTH2 and
	// OAUTHBEARER logins whose token it checks by POSTing it to this URL
	// (Dovecot's oauth2 passdb, introspection_mode = post): a 200 answer
	// {"active": true, "username": USER} logs USER in, {"active": false}
	// rejects the token, any other status is a temporary failure that
	// Dovecot answers with NO [UNAVAILABLE]. Password logins keep working.
	OAuth2IntrospectionURL string
}

// DovecotServer is a running test server, for tests that stop and restart
// it (fault tests).
type DovecotServer struct {
	Addr, User, Password string
	Dir                  string // config, mail/, log/dovecot.log
	TLSAddr              string // implicit TLS (with DovecotOptions.TLS)
	CAFile               string // the server's self-signed certificate (with DovecotOptions.TLS)

	t   testing.TB
	sh  string
	env []string
}

// StartDovecot is Dovecot returning the server, so that the test can Stop
// and Start it.
func StartDovecot(t testing.TB, opt DovecotOptions) *DovecotServer {
	t.Helper()
	skipShort(t, "a Dovecot server")
	sh, err := scriptPath("dovecot.sh")
	if err != nil {
		unavailable(t, "dovecot: "+err.Error())
	}
	dir, err := os.MkdirTemp("", "dmarcd-test-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	d := &DovecotServer{Dir: dir, t: t, sh: sh,
		env: append(os.Environ(), "DOVECOT_IMAP_CAPABILITY="+opt.IMAPCapability,
			"DOVECOT_OAUTH2_INTROSPECTION_URL="+opt.OAuth2IntrospectionURL)}
	if opt.TLS {
		cert, key, err := selfSignedCert(dir)
		if err != nil {
			os.RemoveAll(dir)
			t.Fatalf("dovecot: certificate: %v", err)
		}
		d.CAFile = cert
		d.env = append(d.env, "DOVECOT_SSL_CERT="+cert, "DOVECOT_SSL_KEY="+key)
	}
	if err := d.start(); err != nil {
		d.stop()
		os.RemoveAll(dir)
		unavailable(t, "dovecot: "+err.Error()+"; install dovecot-imapd (apt-get install dovecot-imapd)")
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Log(err)
		}
		if t.Failed() {
			t.Logf("dovecot: keeping %s (config, mail, log/dovecot.log) of the failed test", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return d
}

// Stop kills the server at once, like a crash; the mail stays.
func (d *DovecotServer) Stop() {
	d.t.Helper()
	if err := d.stop(); err != nil {
		d.t.Fatal(err)
	}
}

// Start starts the server again after Stop: same mail and credentials, and
// the same address unless its port was taken meanwhile (it fails the test
// then).
func (d *DovecotServer) Start() {
	d.t.Helper()
	addr := d.Addr
	if err := d.start(); err != nil {
		d.t.Fatal("dovecot: " + err.Error())
	}
	if d.Addr != addr {
		d.t.Fatalf("dovecot: restarted on %s, not on %s (port taken meanwhile)", d.Addr, addr)
	}
}

func (d *DovecotServer) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // includes an apt-get install
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", d.sh, "start", d.Dir)
	cmd.Stderr = &stderr
	cmd.Env = d.env
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s start: %v: %s", d.sh, err, strings.TrimSpace(stderr.String()))
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case EnvIMAPAddr:
			d.Addr = v
		case EnvIMAPUser:
			d.User = v
		case EnvIMAPPassword:
			d.Password = v
		case EnvIMAPSAddr:
			d.TLSAddr = v
		}
	}
	if d.Addr == "" || d.User == "" || d.Password == "" {
		return fmt.Errorf("%s start printed no address or credentials: %q", d.sh, out)
	}
	return nil
}

func (d *DovecotServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "bash", d.sh, "stop", d.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("dovecot: %s stop %s: %v: %s", d.sh, d.Dir, err, out)
	}
	return nil
}

// selfSignedCert writes a self-signed ECDSA certificate for 127.0.0.1 and
// localhost, valid for a day, and its key into dir/tls.
func selfSignedCert(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "dmarcd test dovecot"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o755); err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	// Readable by all: it is a throw-away test key, and Dovecot's
	// processes may run as other users.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// scriptPath returns <module root>/scripts/name.
func scriptPath(name string) (string, error) {
	root := ModuleRoot()
	if root == "" {
		return "", fmt.Errorf("module root (go.mod) not found, so scripts/%s is not either", name)
	}
	p := filepath.Join(root, "scripts", name)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

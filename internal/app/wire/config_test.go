package wire

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/ingest"
)

// The tests of this file load configurations over Defaults: what each key
// defaults to, as the components declare it.

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dmarcd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadAppliesFileOverDefaultsAndEnvironmentOverFile(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "clickhouse://env:9000/x")
	c, err := LoadConfig(write(t, "clickhouse:\n  dsn: clickhouse://file:9000/y\nretention: 400d\nlimits:\n  max_member_bytes: 20MiB\nowned_domains: [example.com]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClickHouse.DSN != "clickhouse://env:9000/x" {
		t.Errorf("dsn %q: the environment must win", c.ClickHouse.DSN)
	}
	if time.Duration(c.Retention) != 400*24*time.Hour || c.Limits.MaxMemberBytes != 20<<20 || c.Limits.MaxZipMembers != 64 {
		t.Errorf("got %+v", c)
	}
}

func TestReportAuthIsOnByDefaultAndOverridable(t *testing.T) {
	c, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if ra := c.ReportAuth; !ra.Enabled || time.Duration(ra.DNSTimeout) != 2*time.Second || ra.Resolver != "" {
		t.Errorf("default report_auth %+v, want enabled, 2s, system resolver", ra)
	}
	c, err = LoadConfig(write(t, "report_auth:\n  dns_timeout: 500ms\n  resolver: 127.0.0.1:5353\n"))
	if err != nil || time.Duration(c.ReportAuth.DNSTimeout) != 500*time.Millisecond || c.ReportAuth.Resolver != "127.0.0.1:5353" || !c.ReportAuth.Enabled {
		t.Errorf("from file: %+v, %v", c.ReportAuth, err)
	}
	t.Setenv("DMARCD_REPORT_AUTH_ENABLED", "false")
	t.Setenv("DMARCD_REPORT_AUTH_DNS_TIMEOUT", "1s")
	c, err = LoadConfig("")
	if err != nil || c.ReportAuth.Enabled || time.Duration(c.ReportAuth.DNSTimeout) != time.Second {
		t.Errorf("from the environment: %+v, %v", c.ReportAuth, err)
	}
	t.Setenv("DMARCD_REPORT_AUTH_ENABLED", "")
	t.Setenv("DMARCD_REPORT_AUTH_DNS_TIMEOUT", "")
	for body, want := range map[string]string{
		"report_auth:\n  dns_timeout: 0\n":         "report_auth.dns_timeout",
		"report_auth:\n  resolver: http://x:53/\n": "report_auth.resolver",
	} {
		if _, err := LoadConfig(write(t, body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %q", body, err, want)
		}
	}
}

// TestHTTPWebhookSecretFromFileOrEnvironmentAndMaxConnectionsDefault: the
// secret is read from webhook_secret_file, DMARCD_HTTP_WEBHOOK_SECRET wins
// over the file, and max_connections defaults to 256.
func TestHTTPWebhookSecretFromFileOrEnvironmentAndMaxConnectionsDefault(t *testing.T) {
	f := filepath.Join(t.TempDir(), "hook")
	os.WriteFile(f, []byte("0123456789abcdef0123\n"), 0o600)
	c, err := LoadConfig(write(t, "http: {webhook_secret_file: "+f+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.WebhookSecret != "0123456789abcdef0123" || c.HTTP.MaxConnections != DefaultHTTPMaxConnections {
		t.Errorf("secret %q, max_connections %d: want the file's and %d", c.HTTP.WebhookSecret, c.HTTP.MaxConnections, DefaultHTTPMaxConnections)
	}
	t.Setenv("DMARCD_HTTP_WEBHOOK_SECRET", "from-the-environment")
	if c, err = LoadConfig(write(t, "http: {webhook_secret_file: "+f+"}\n")); err != nil || c.HTTP.WebhookSecret != "from-the-environment" {
		t.Errorf("secret %q (%v): DMARCD_HTTP_WEBHOOK_SECRET must win", c.HTTP.WebhookSecret, err)
	}
}

func TestPeriodicKeysLoadFromFileAndEnvironment(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
	t.Setenv("DMARCD_ATTRIBUTION_INTERVAL", "1h")
	t.Setenv("DMARCD_DNS_RESOLVER", "127.0.0.1:5353")
	c, err := LoadConfig(write(t, "check:\n  interval: 6h\n  domains: [example.com, example.org.]\nattribution:\n  interval: 2h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Check.Interval) != 6*time.Hour || len(c.Check.Domains) != 2 {
		t.Errorf("check = %+v", c.Check)
	}
	if time.Duration(c.Attribution.Interval) != time.Hour || c.Attribution.MaxIPsPerRun != DefaultAttributionMaxIPs {
		t.Errorf("attribution = %+v: the environment must win, max_ips_per_run default", c.Attribution)
	}
	if c.DNS.Resolver != "127.0.0.1:5353" || time.Duration(c.DNS.Timeout) != 3*time.Second {
		t.Errorf("dns = %+v", c.DNS)
	}
	d := DefaultConfig()
	if d.Check.Interval != 0 || d.Attribution.Interval != 0 {
		t.Errorf("periodic jobs must be off by default: %+v %+v", d.Check, d.Attribution)
	}
}

func TestSourcesDecodeWithDefaultsAndEnvironmentByName(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)
	t.Setenv("DMARCD_SOURCES_REPORTS_PASSWORD", "from-env")
	t.Setenv("DMARCD_SOURCES_DROP_BOX_SETTLE", "5s")
	t.Setenv("DMARCD_HTTP_LISTEN", "127.0.0.1:9999")
	c, err := LoadConfig(write(t, `
http: {listen: 127.0.0.1:1}
sources:
  - name: reports
    type: imap
    address: imap.example.com:993
    username: dmarc@example.com
    password_file: /nonexistent
  - name: other
    type: imap
    address: 127.0.0.1:143
    tls: none
    username: u
    password_file: `+pwFile+`
  - name: drop-box
    type: spool
    path: /var/spool/dmarcd
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "127.0.0.1:9999" {
		t.Errorf("http.listen %q: DMARCD_HTTP_LISTEN must win", c.HTTP.Listen)
	}
	r, o, s := c.Sources[0], c.Sources[1], c.Sources[2]
	if r.Password != "from-env" || o.Password != "from-file" {
		t.Errorf("passwords %q, %q: want the environment's (over password_file) and the file's", r.Password, o.Password)
	}
	if r.TLS != "implicit" || r.Mailbox != "INBOX" || r.ProcessedMailbox != "dmarcd/processed" || time.Duration(r.PollInterval) != time.Minute {
		t.Errorf("imap defaults not applied: %+v", r)
	}
	if time.Duration(s.Settle) != 5*time.Second || time.Duration(s.PollInterval) != ingest.DefaultSpoolPollInterval {
		t.Errorf("spool: settle %v (want 5s from DMARCD_SOURCES_DROP_BOX_SETTLE), poll %v", time.Duration(s.Settle), time.Duration(s.PollInterval))
	}
	if r.Label() != "imap:reports" {
		t.Errorf("label %q", r.Label())
	}
}

// TestExampleFileIsValidAndHoldsTheDefaults: docs/dmarcd.example.yaml
// loads, and what it sets is the defaults.
func TestExampleFileIsValidAndHoldsTheDefaults(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
	c, err := LoadConfig(filepath.Join("..", "..", "..", "docs", "dmarcd.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.OwnedDomains) == 0 && len(c.Sources) == 0 {
		c.OwnedDomains, c.Sources = nil, nil // [] in the file
	}
	if d := DefaultConfig(); !reflect.DeepEqual(c, d) {
		t.Errorf("example file:\n%+v\ndefaults:\n%+v", c, d)
	}
}

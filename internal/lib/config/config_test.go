package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

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
	c, err := Load(write(t, "clickhouse:\n  dsn: clickhouse://file:9000/y\nretention: 400d\nlimits:\n  max_member_bytes: 20MiB\nowned_domains: [example.com]\n"))
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

func TestLoadNamesTheBadKey(t *testing.T) {
	for body, want := range map[string]string{
		"limits:\n  max_zip_members: 0\n":     "limits.max_zip_members",
		"limits:\n  max_member_bytes: lots\n": "not a size",
		"retention: forever\n":                "not a duration",
		"clickhous:\n  dsn: x\n":              "clickhous",
		"clickhouse:\n  dsn: http://x\n":      "clickhouse.dsn",
		"log:\n  level: loud\n":               "log.level",
		"clickhouse:\n  batch_rows: 5\n":      "clickhouse.batch_rows",
		"clickhouse:\n  cluster: a-b\n":       "clickhouse.cluster",
	} {
		t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
		_, err := Load(write(t, body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %q", body, err, want)
		}
	}
}

func TestPrivacyKeyIsCreatedOnceAndKept(t *testing.T) {
	t.Setenv("DMARCD_PRIVACY_KEY", "")
	c := Default()
	c.Privacy.KeyFile = filepath.Join(t.TempDir(), "sub", "redaction.key")
	k1, err := c.PrivacyKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := c.PrivacyKey()
	if err != nil || string(k1) != string(k2) || len(k1) != 32 {
		t.Fatalf("key not stable: %x %x %v", k1, k2, err)
	}
	if st, _ := os.Stat(c.Privacy.KeyFile); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
}

func TestReportAuthIsOnByDefaultAndOverridable(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if ra := c.ReportAuth; !ra.Enabled || time.Duration(ra.DNSTimeout) != 2*time.Second || ra.Resolver != "" {
		t.Errorf("default report_auth %+v, want enabled, 2s, system resolver", ra)
	}
	c, err = Load(write(t, "report_auth:\n  dns_timeout: 500ms\n  resolver: 127.0.0.1:5353\n"))
	if err != nil || time.Duration(c.ReportAuth.DNSTimeout) != 500*time.Millisecond || c.ReportAuth.Resolver != "127.0.0.1:5353" || !c.ReportAuth.Enabled {
		t.Errorf("from file: %+v, %v", c.ReportAuth, err)
	}
	t.Setenv("DMARCD_REPORT_AUTH_ENABLED", "false")
	t.Setenv("DMARCD_REPORT_AUTH_DNS_TIMEOUT", "1s")
	c, err = Load("")
	if err != nil || c.ReportAuth.Enabled || time.Duration(c.ReportAuth.DNSTimeout) != time.Second {
		t.Errorf("from the environment: %+v, %v", c.ReportAuth, err)
	}
	t.Setenv("DMARCD_REPORT_AUTH_ENABLED", "")
	t.Setenv("DMARCD_REPORT_AUTH_DNS_TIMEOUT", "")
	for body, want := range map[string]string{
		"report_auth:\n  dns_timeout: 0\n":         "report_auth.dns_timeout",
		"report_auth:\n  resolver: http://x:53/\n": "report_auth.resolver",
	} {
		if _, err := Load(write(t, body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %q", body, err, want)
		}
	}
}

func TestClusterComesFromFileOrEnvironment(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
	t.Setenv("DMARCD_CLICKHOUSE_CLUSTER", "")
	c, err := Load(write(t, "clickhouse:\n  cluster: dmarcd\n"))
	if err != nil || c.ClickHouse.Cluster != "dmarcd" {
		t.Fatalf("cluster %q, err %v; want dmarcd", c.ClickHouse.Cluster, err)
	}
	t.Setenv("DMARCD_CLICKHOUSE_CLUSTER", "prod_2x2")
	c, err = Load(write(t, "clickhouse:\n  cluster: dmarcd\n"))
	if err != nil || c.ClickHouse.Cluster != "prod_2x2" {
		t.Errorf("cluster %q, err %v; want the environment's prod_2x2", c.ClickHouse.Cluster, err)
	}
}

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

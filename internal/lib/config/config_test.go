package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testDefaults are valid defaults for the tests of this package, which check
// how keys are read, overridden and validated. What each key defaults to is
// the components' to say; internal/app/wire's tests check it.
var testDefaults = Defaults{
	Config: Config{
		ClickHouse:    ClickHouse{DSN: "clickhouse://127.0.0.1:9000/test", BatchRows: 1000, PartsPerSecond: 10},
		Gauges:        Gauges{Interval: Duration(time.Minute), LagDays: 1},
		ReportAuth:    ReportAuth{Enabled: true, DNSTimeout: Duration(time.Second)},
		Attribution:   Attribution{MaxIPsPerRun: 10},
		DNS:           DNS{Timeout: Duration(time.Second)},
		Limits:        Limits{MaxMessageBytes: 1 << 20, MaxMemberBytes: 1 << 20, MaxTotalBytes: 1 << 20, MaxZipMembers: 2, MaxDepth: 2, MaxXMLDepth: 2, MaxRecords: 10},
		Log:           Log{Level: "warn", Format: "json"},
		HTTP:          HTTP{Listen: "127.0.0.1:0", MaxConnections: 1},
		ShutdownGrace: Duration(time.Second),
	},
	IMAP: Source{TLS: "starttls", Mailbox: "Reports", ProcessedMailbox: "Reports/done", InvalidMailbox: "Reports/bad",
		PollInterval: Duration(time.Second), Concurrency: 1},
	Spool: Source{PollInterval: Duration(time.Second), Settle: Duration(time.Second)},
	S3:    Source{Mode: "leave", ProcessedPrefix: "done/", InvalidPrefix: "bad/", PollInterval: Duration(time.Second)},
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dmarcd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadNamesTheBadKey(t *testing.T) {
	for body, want := range map[string]string{
		"limits:\n  max_zip_members: 0\n":      "limits.max_zip_members",
		"limits:\n  max_member_bytes: lots\n":  "not a size",
		"retention: forever\n":                 "not a duration",
		"clickhous:\n  dsn: x\n":               "clickhous",
		"clickhouse:\n  dsn: http://x\n":       "clickhouse.dsn",
		"log:\n  level: loud\n":                "log.level",
		"clickhouse:\n  batch_rows: 5\n":       "clickhouse.batch_rows",
		"clickhouse:\n  parts_per_second: 0\n": "clickhouse.parts_per_second",
		"clickhouse:\n  cluster: a-b\n":        "clickhouse.cluster",
	} {
		t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
		_, err := Load(write(t, body), testDefaults)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %q", body, err, want)
		}
	}
}

func TestPrivacyKeyIsCreatedOnceAndKept(t *testing.T) {
	t.Setenv("DMARCD_PRIVACY_KEY", "")
	c := testDefaults.Config
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

func TestClusterComesFromFileOrEnvironment(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
	t.Setenv("DMARCD_CLICKHOUSE_CLUSTER", "")
	c, err := Load(write(t, "clickhouse:\n  cluster: dmarcd\n"), testDefaults)
	if err != nil || c.ClickHouse.Cluster != "dmarcd" {
		t.Fatalf("cluster %q, err %v; want dmarcd", c.ClickHouse.Cluster, err)
	}
	t.Setenv("DMARCD_CLICKHOUSE_CLUSTER", "prod_2x2")
	c, err = Load(write(t, "clickhouse:\n  cluster: dmarcd\n"), testDefaults)
	if err != nil || c.ClickHouse.Cluster != "prod_2x2" {
		t.Errorf("cluster %q, err %v; want the environment's prod_2x2", c.ClickHouse.Cluster, err)
	}
}

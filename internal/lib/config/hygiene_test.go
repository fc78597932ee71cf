package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOwnedDomainsAreDomainsOrOnlyAStar(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
	for body, want := range map[string]string{
		"owned_domains: [\"*\", example.com]\n":    `"*" (every domain) must be the only entry`,
		"owned_domains: [\"exa mple.com\"]\n":      "owned_domains[0]",
		"owned_domains: [example.com, \"a..b\"]\n": "owned_domains[1]",
	} {
		if _, err := Load(write(t, body), testDefaults); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one saying %q", body, err, want)
		}
	}
	c, err := Load(write(t, "owned_domains: [\"*\"]\n"), testDefaults)
	if err != nil || !c.AcceptsAllDomains() || c.Owned() != nil || c.RequireOwnedDomains() != nil {
		t.Errorf(`["*"]: err %v, all %v, owned %v, require %v`, err, c.AcceptsAllDomains(), c.Owned(), c.RequireOwnedDomains())
	}
	c, err = Load(write(t, "owned_domains: [Example.COM.]\n"), testDefaults)
	if err != nil || c.AcceptsAllDomains() || len(c.Owned()) != 1 || c.Owned()[0] != "example.com" {
		t.Errorf("[Example.COM.]: err %v, owned %v, want [example.com]", err, c.Owned())
	}
}

func TestAnEmptyOwnedDomainsIsRefusedForTheDaemonWithTheReason(t *testing.T) {
	c := testDefaults.Config
	err := c.RequireOwnedDomains()
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Key != "owned_domains" ||
		!strings.Contains(err.Error(), "anyone can send reports") || !strings.Contains(err.Error(), `["*"]`) {
		t.Errorf("empty owned_domains: %v, want a problem naming the key, why, and the \"*\" escape", err)
	}
}

func TestAnUnparseableDSNIsAProblem(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "clickhouse://u:secretpw@127.0.0.1:9000/db?dial_timeout=forever")
	_, err := Load("", testDefaults)
	if err == nil || !strings.Contains(err.Error(), "clickhouse.dsn") || !strings.Contains(err.Error(), "cannot be parsed") {
		t.Fatalf("error %v, want clickhouse.dsn cannot be parsed", err)
	}
	if strings.Contains(err.Error(), "secretpw") {
		t.Errorf("the error repeats the password: %v", err)
	}
}

func TestWarningsNameInsecureAndPlaintextRemoteConnections(t *testing.T) {
	for _, c := range []struct {
		dsn  string
		want []string
	}{
		{"clickhouse://127.0.0.1:9000/dmarc", nil},
		{"clickhouse://localhost:9000,[::1]:9000/dmarc", nil},
		{"clickhouse://ch.example.net:9440/dmarc?secure=true", nil},
		{"clickhouse://ch.example.net:9000/dmarc", []string{"plaintext connection (no secure=true) to ch.example.net"}},
		{"clickhouse://127.0.0.1:9000,10.0.0.2:9000/dmarc", []string{"to 10.0.0.2,"}},
		{"clickhouse://ch.example.net:9440/dmarc?secure=true&skip_verify=true", []string{"skip_verify=true"}},
	} {
		cfg := testDefaults.Config
		cfg.ClickHouse.DSN = c.dsn
		w := cfg.Warnings()
		if len(w) != len(c.want) {
			t.Errorf("%s: warnings %q, want %d", c.dsn, w, len(c.want))
			continue
		}
		for i, want := range c.want {
			if !strings.Contains(w[i]+",", want) {
				t.Errorf("%s: warning %q, want one saying %q", c.dsn, w[i], want)
			}
		}
	}
	cfg := testDefaults.Config
	cfg.Sources = []Source{{Name: "reports", Type: SourceIMAP, InsecureSkipVerify: true}}
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0], "sources[reports].insecure_skip_verify") {
		t.Errorf("IMAP source without verification: warnings %q", w)
	}
}

func TestPrivacyKeyHasNoDefaultWithoutAHome(t *testing.T) {
	t.Setenv("DMARCD_PRIVACY_KEY", "")
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "")
	_, err := testDefaults.Config.PrivacyKey()
	if !errors.Is(err, ErrNoStateDir) {
		t.Fatalf("no HOME, XDG_STATE_HOME nor key_file: %v, want ErrNoStateDir", err)
	}
	for _, want := range []string{"privacy.key_file", "XDG_STATE_HOME", "DMARCD_PRIVACY_KEY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not name %s", err, want)
		}
	}
}

// TestPrivacyKeyRefusesAPlantedKey: a key in a folder others can write to
// (the attack: /tmp/dmarcd made 0777 with a known key inside), a key file
// others can write, or one owned by another user, is refused and not used.
func TestPrivacyKeyRefusesAPlantedKey(t *testing.T) {
	t.Setenv("DMARCD_PRIVACY_KEY", "")
	const planted = "00112233445566778899aabbccddeeff\n"
	plant := func(dirMode, fileMode os.FileMode) string {
		dir := filepath.Join(t.TempDir(), "dmarcd")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "redaction.key")
		if err := os.WriteFile(p, []byte(planted), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, fileMode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, dirMode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]string{
		"folder 0777":       plant(0o777, 0o600),
		"folder 1777 (tmp)": plant(0o1777, 0o600),
		"folder 0770":       plant(0o770, 0o600),
		"file 0666":         plant(0o700, 0o666),
		"file 0620":         plant(0o700, 0o620),
		"no file, 0777 dir": filepath.Join(filepath.Dir(plant(0o777, 0o600)), "other.key"),
	}
	if os.Geteuid() == 0 {
		other := plant(0o700, 0o600)
		if err := os.Chown(other, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		cases["file of another user"] = other
	}
	for name, p := range cases {
		c := testDefaults.Config
		c.Privacy.KeyFile = p
		k, err := c.PrivacyKey()
		if err == nil || !strings.Contains(err.Error(), "privacy.key_file") || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("%s: key %x, error %v; want a refusal naming privacy.key_file", name, k, err)
		}
	}
	c := testDefaults.Config
	c.Privacy.KeyFile = plant(0o750, 0o640)
	if k, err := c.PrivacyKey(); err != nil || len(k) != 16 {
		t.Errorf("a key in a folder only we can write: %x, %v", k, err)
	}
}

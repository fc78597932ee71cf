package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runServeOut(t *testing.T, configPath string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runServe(context.Background(), &env{stdout: &out, stderr: &errb, configPath: configPath}, args)
	return code, out.String(), errb.String()
}

// TestServeCheckConfigSaysWhatItChecked: without a file it says so; an
// empty owned_domains and an unparseable DSN are problems (exit 2); a
// plaintext DSN to a remote host and skip_verify are warnings (exit 0, ok).
func TestServeCheckConfigSaysWhatItChecked(t *testing.T) {
	if _, err := os.Stat(defaultServeConfig); err == nil {
		t.Fatalf("%s exists on this machine: the test needs it absent", defaultServeConfig)
	}
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
	t.Setenv("DMARCD_OWNED_DOMAINS", "")
	code, out, errs := runServeOut(t, "", "--check-config")
	if code != exitUsage || !strings.Contains(errs, "no configuration file: checked the defaults and the environment only") ||
		!strings.Contains(errs, "config owned_domains: is empty") || out != "" {
		t.Errorf("no file: exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
	t.Setenv("DMARCD_OWNED_DOMAINS", "example.com")
	if code, out, errs := runServeOut(t, "", "--check-config"); code != exitOK || out != "ok\n" || !strings.Contains(errs, "no configuration file") {
		t.Errorf("no file, owned_domains from the environment: exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}

	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "dmarcd.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := write("owned_domains: [example.com]\nclickhouse: {dsn: \"clickhouse://127.0.0.1:9000/dmarc?dial_timeout=soon\"}\n")
	if code, _, errs := runServeOut(t, p, "--check-config"); code != exitUsage || !strings.Contains(errs, "config clickhouse.dsn:") || strings.Contains(errs, "no configuration file") {
		t.Errorf("unparseable DSN: exit %d, stderr:\n%s", code, errs)
	}
	p = write("owned_domains: [example.com]\nclickhouse: {dsn: \"clickhouse://dmarcd:pw@ch.example.net:9000/dmarc?skip_verify=true\"}\n")
	code, out, errs = runServeOut(t, p, "--check-config")
	if code != exitOK || out != "ok\n" || !strings.Contains(errs, "warning: clickhouse.dsn: skip_verify=true") ||
		!strings.Contains(errs, "warning: clickhouse.dsn: plaintext connection (no secure=true) to ch.example.net") {
		t.Errorf("remote plaintext DSN: exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
}

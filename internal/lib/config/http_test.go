package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTTPWebhookSecretFromFileOrEnvironmentAndMaxConnectionsDefault: the
// secret is read from webhook_secret_file, DMARCD_HTTP_WEBHOOK_SECRET wins
// over the file, and max_connections defaults to 256.
func TestHTTPWebhookSecretFromFileOrEnvironmentAndMaxConnectionsDefault(t *testing.T) {
	f := filepath.Join(t.TempDir(), "hook")
	os.WriteFile(f, []byte("0123456789abcdef0123\n"), 0o600)
	c, err := Load(write(t, "http: {webhook_secret_file: "+f+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.WebhookSecret != "0123456789abcdef0123" || c.HTTP.MaxConnections != DefaultHTTPMaxConnections {
		t.Errorf("secret %q, max_connections %d: want the file's and %d", c.HTTP.WebhookSecret, c.HTTP.MaxConnections, DefaultHTTPMaxConnections)
	}
	t.Setenv("DMARCD_HTTP_WEBHOOK_SECRET", "from-the-environment")
	if c, err = Load(write(t, "http: {webhook_secret_file: "+f+"}\n")); err != nil || c.HTTP.WebhookSecret != "from-the-environment" {
		t.Errorf("secret %q (%v): DMARCD_HTTP_WEBHOOK_SECRET must win", c.HTTP.WebhookSecret, err)
	}
}

// TestHTTPKeysRefusedWithTheirNameAndTheSecretNeverQuoted: a short secret,
// one with characters that do not fit a URL, a missing secret file and a
// max_connections of 0 are each named; the secret itself is not echoed.
func TestHTTPKeysRefusedWithTheirNameAndTheSecretNeverQuoted(t *testing.T) {
	for _, tc := range []struct{ yaml, key string }{
		{"http: {webhook_secret: short-secret}", "http.webhook_secret"},
		{"http: {webhook_secret: 'long enough but with spaces&more'}", "http.webhook_secret"},
		{"http: {webhook_secret_file: /nonexistent/hook}", "http.webhook_secret_file"},
		{"http: {max_connections: 0}", "http.max_connections"},
	} {
		_, err := Load(write(t, tc.yaml+"\n"))
		var ps Problems
		if !errors.As(err, &ps) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v, want a problem naming %s", tc.yaml, err, tc.key)
			continue
		}
		if strings.Contains(err.Error(), "short-secret") || strings.Contains(err.Error(), "spaces&more") {
			t.Errorf("%s: the message quotes the secret: %v", tc.yaml, err)
		}
	}
}

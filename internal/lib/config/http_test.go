package config

import (
	"errors"
	"strings"
	"testing"
)

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
		_, err := Load(write(t, tc.yaml+"\n"), testDefaults)
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

package config

import (
	"strings"
	"testing"
)

func TestPeriodicKeysNameTheBadKey(t *testing.T) {
	for body, want := range map[string]string{
		"check:\n  interval: 10ms\n":              "check.interval",
		"attribution:\n  interval: -1h\n":         "attribution.interval",
		"check:\n  domains: [\"exa mple.com\"]\n": "check.domains",
		"attribution:\n  max_ips_per_run: 0\n":    "attribution.max_ips_per_run",
		"dns:\n  resolver: \"127.0.0.1:\"\n":      "dns.resolver",
		"dns:\n  timeout: 0\n":                    "dns.timeout",
		"check:\n  intervall: 1h\n":               "check.intervall",
	} {
		t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
		_, err := Load(write(t, body), testDefaults)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %q", body, err, want)
		}
	}
}

package config

import (
	"strings"
	"testing"
	"time"
)

func TestPeriodicKeysLoadFromFileAndEnvironment(t *testing.T) {
	t.Setenv("DMARCD_CLICKHOUSE_DSN", "")
	t.Setenv("DMARCD_ATTRIBUTION_INTERVAL", "1h")
	t.Setenv("DMARCD_DNS_RESOLVER", "127.0.0.1:5353")
	c, err := Load(write(t, "check:\n  interval: 6h\n  domains: [example.com, example.org.]\nattribution:\n  interval: 2h\n"))
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
	d := Default()
	if d.Check.Interval != 0 || d.Attribution.Interval != 0 {
		t.Errorf("periodic jobs must be off by default: %+v %+v", d.Check, d.Attribution)
	}
}

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
		_, err := Load(write(t, body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %q", body, err, want)
		}
	}
}

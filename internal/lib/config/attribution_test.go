package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAttributionFilesFromFileAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"country.mmdb", "asn.mmdb", "known.yaml", "env-known.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("DMARCD_ATTRIBUTION_KNOWN_SOURCES", filepath.Join(dir, "env-known.yaml"))
	c, err := Load(write(t, "attribution:\n  geoip_country_db: "+filepath.Join(dir, "country.mmdb")+
		"\n  geoip_asn_db: "+filepath.Join(dir, "asn.mmdb")+"\n  known_sources: "+filepath.Join(dir, "known.yaml")+"\n"), testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Attribution
	if a.GeoIPCountryDB != filepath.Join(dir, "country.mmdb") || a.GeoIPASNDB != filepath.Join(dir, "asn.mmdb") ||
		a.KnownSources != filepath.Join(dir, "env-known.yaml") {
		t.Errorf("attribution = %+v; want the file's databases and the environment's known sources", a)
	}
}

func TestAttributionFilesMustExist(t *testing.T) {
	_, err := Load(write(t, "attribution:\n  geoip_asn_db: /nonexistent/GeoLite2-ASN.mmdb\n  known_sources: /\n"), testDefaults)
	if err == nil || !strings.Contains(err.Error(), "attribution.geoip_asn_db") || !strings.Contains(err.Error(), "GeoLite2-ASN.mmdb") ||
		!strings.Contains(err.Error(), "attribution.known_sources") {
		t.Errorf("error %v; want one naming attribution.geoip_asn_db and attribution.known_sources", err)
	}
}

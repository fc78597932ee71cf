package config

import "os"

// validateAttributionFiles checks that the files named by attribution.*
// exist and are regular files; their contents are checked when they are
// opened (internal/product/attrib.Open), with errors naming the file.
func (c Config) validateAttributionFiles(ps *Problems) {
	for _, kv := range []struct{ key, path string }{
		{"attribution.geoip_country_db", c.Attribution.GeoIPCountryDB},
		{"attribution.geoip_asn_db", c.Attribution.GeoIPASNDB},
		{"attribution.known_sources", c.Attribution.KnownSources},
	} {
		if kv.path == "" {
			continue
		}
		fi, err := os.Stat(kv.path)
		switch {
		case err != nil:
			ps.add(kv.key, "%v", err)
		case !fi.Mode().IsRegular():
			ps.add(kv.key, "%s is not a regular file", kv.path)
		}
	}
}

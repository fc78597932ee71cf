package attrib

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Geo looks up the country and the autonomous system of an IP in
// MaxMind-format databases the operator supplies (GeoLite2/GeoIP2 Country
// or City, GeoLite2/GeoIP2 ASN, or one database with both layouts' fields).
// dmarcd ships and downloads none. Safe for concurrent use.
type Geo struct {
	readers []*maxminddb.Reader // country first, then ASN (one when both paths are the same)
}

// geoRecord holds the fields dmarcd reads, from any of the layouts.
type geoRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	ASN   uint32 `maxminddb:"autonomous_system_number"`
	ASOrg string `maxminddb:"autonomous_system_organization"`
}

// GeoInfo is what Geo knows of an IP; zero values are unknown.
type GeoInfo struct {
	Country string // ISO 3166-1 alpha-2, e.g. "US"
	ASN     uint32
	ASOrg   string
}

// OpenGeo opens the databases at countryPath and asnPath; either may be ""
// and both may name the same file. Both "" is a nil *Geo, which knows
// nothing. A file that is not a MaxMind database is an error naming it.
func OpenGeo(countryPath, asnPath string) (*Geo, error) {
	g := &Geo{}
	for _, p := range []string{countryPath, asnPath} {
		if p == "" || (p == countryPath && p == asnPath && len(g.readers) == 1) {
			continue
		}
		r, err := maxminddb.Open(p)
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("attrib: GeoIP database %s: %w (want a MaxMind .mmdb file, e.g. GeoLite2-Country.mmdb)", p, err)
		}
		g.readers = append(g.readers, r)
	}
	if len(g.readers) == 0 {
		return nil, nil
	}
	return g, nil
}

// Lookup returns what the databases say of ip: the first non-empty value
// of each field, the country database first. A country database without an
// entry for the IP's own country gives its registered country.
func (g *Geo) Lookup(ip netip.Addr) (GeoInfo, error) {
	var info GeoInfo
	if g == nil {
		return info, nil
	}
	var errs []error
	for _, r := range g.readers {
		var rec geoRecord
		if err := r.Lookup(ip.Unmap()).Decode(&rec); err != nil {
			errs = append(errs, fmt.Errorf("GeoIP lookup of %s in a %s database: %w", ip, r.Metadata.DatabaseType, err))
			continue
		}
		if info.Country == "" {
			info.Country = rec.Country.ISOCode
		}
		if info.Country == "" {
			info.Country = rec.RegisteredCountry.ISOCode
		}
		if info.ASN == 0 {
			info.ASN, info.ASOrg = rec.ASN, rec.ASOrg
		}
	}
	return info, errors.Join(errs...)
}

// Close closes the databases.
func (g *Geo) Close() error {
	if g == nil {
		return nil
	}
	var errs []error
	for _, r := range g.readers {
		errs = append(errs, r.Close())
	}
	g.readers = nil
	return errors.Join(errs...)
}

package attrib

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

// writeMMDB builds a MaxMind database of type dbType in dir with one record
// per network, as GeoLite2 lays them out.
func writeMMDB(t *testing.T, dir, dbType string, records map[string]mmdbtype.Map) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range records {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatalf("insert %s: %v", cidr, err)
		}
	}
	path := filepath.Join(dir, dbType+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

func country(iso string) mmdbtype.Map {
	return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(iso), "names": mmdbtype.Map{"en": mmdbtype.String(iso + " land")}}}
}

func asn(n uint32, org string) mmdbtype.Map {
	return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(n), "autonomous_system_organization": mmdbtype.String(org)}
}

// geoDBs writes a GeoLite2-Country and a GeoLite2-ASN database.
func geoDBs(t *testing.T) (countryDB, asnDB string) {
	dir := t.TempDir()
	onlyRegistered := mmdbtype.Map{"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("IE")}}
	countryDB = writeMMDB(t, dir, "GeoLite2-Country", map[string]mmdbtype.Map{
		"54.240.0.0/18":  country("US"),
		"192.0.2.0/24":   country("DE"),
		"2001:db8::/32":  country("NL"),
		"203.0.113.0/24": onlyRegistered,
	})
	asnDB = writeMMDB(t, dir, "GeoLite2-ASN", map[string]mmdbtype.Map{
		"54.240.0.0/18": asn(14618, "AMAZON-AES"),
		"2001:db8::/32": asn(64500, "Example IPv6 Net"),
	})
	return countryDB, asnDB
}

func TestGeoReadsCountryAndASNDatabases(t *testing.T) {
	countryDB, asnDB := geoDBs(t)
	g, err := OpenGeo(countryDB, asnDB)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, c := range []struct {
		ip   string
		want GeoInfo
	}{
		{"54.240.0.1", GeoInfo{"US", 14618, "AMAZON-AES"}},
		{"::ffff:54.240.0.1", GeoInfo{"US", 14618, "AMAZON-AES"}},
		{"192.0.2.7", GeoInfo{Country: "DE"}},
		{"2001:db8::25", GeoInfo{"NL", 64500, "Example IPv6 Net"}},
		{"203.0.113.9", GeoInfo{Country: "IE"}}, // registered country only
		{"198.51.100.1", GeoInfo{}},
	} {
		got, err := g.Lookup(netip.MustParseAddr(c.ip))
		if err != nil || got != c.want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", c.ip, got, err, c.want)
		}
	}
}

func TestGeoReadsOneDatabaseWithBothLayouts(t *testing.T) {
	both := country("US")
	for k, v := range asn(14618, "AMAZON-AES") {
		both[k] = v
	}
	p := writeMMDB(t, t.TempDir(), "GeoIP2-Enterprise", map[string]mmdbtype.Map{"54.240.0.0/18": both})
	for _, paths := range [][2]string{{p, ""}, {"", p}, {p, p}} {
		g, err := OpenGeo(paths[0], paths[1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := g.Lookup(netip.MustParseAddr("54.240.9.9"))
		if want := (GeoInfo{"US", 14618, "AMAZON-AES"}); err != nil || got != want {
			t.Errorf("%q: Lookup = %+v, %v; want %+v", paths, got, err, want)
		}
		if n := len(g.readers); n != 1 {
			t.Errorf("%q: %d readers open, want 1", paths, n)
		}
		g.Close()
	}
}

func TestOpenGeoNamesAFileThatIsNotADatabase(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "GeoLite2-ASN.mmdb")
	if err := os.WriteFile(bad, []byte("<html>not a database</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenGeo("", bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("OpenGeo(bad) error %v, want one naming %s", err, bad)
	}
	if g, err := OpenGeo("", ""); g != nil || err != nil {
		t.Errorf("OpenGeo of nothing = %v, %v; want nil, nil", g, err)
	}
}

// knownFile writes an operator's known-sources file.
func knownFile(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "known-sources.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const operatorKnown = `senders:
  - id: office
    name: Office relay
    cidrs: [192.0.2.0/25, "2001:db8:1::7"]
    authorised: true
  - id: newsletters
    name: Newsletter vendor
    ptr_suffixes: [out.vendor.example]
    authorised: true
  - id: crm
    name: Old CRM
    spf_includes: [spf.crm.example]
    authorised: false
  - id: amazon-ses
    name: Amazon SES
    cidrs: [54.240.0.0/18]
    dkim_domains: [amazonses.com]
    authorised: true
`

func TestKnownMatchesCIDRConfirmedPTRAndSPFInclude(t *testing.T) {
	k, err := LoadKnown(knownFile(t, operatorKnown))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ip, ptr   string
		confirmed bool
		includes  []string
		want      string
	}{
		{"192.0.2.10", "", false, nil, "Office relay (authorised)"},
		{"192.0.2.200", "", false, nil, ""}, // outside the /25
		{"2001:db8:1::7", "", false, nil, "Office relay (authorised)"},
		{"::ffff:192.0.2.1", "", false, nil, "Office relay (authorised)"},
		{"198.51.100.1", "mta1.out.vendor.example", true, nil, "Newsletter vendor (authorised)"},
		{"198.51.100.1", "mta1.out.vendor.example", false, nil, ""}, // unconfirmed: the IP owner's claim
		{"198.51.100.1", "evilout.vendor.example", true, nil, ""},
		{"198.51.100.2", "", false, []string{"_spf.example.com", "spf.crm.example"}, "Old CRM (not authorised)"},
		{"54.240.7.7", "", false, nil, "Amazon SES (authorised)"},
		// built in, not overridden: Google's SPF include and PTR
		{"209.85.1.1", "", false, []string{"_spf.google.com"}, "Google Workspace"},
		{"209.85.1.2", "mail-x.google.com", true, nil, "Google Workspace"},
		{"198.51.100.3", "mail.example.com", true, []string{"_spf.example.com"}, ""},
	} {
		got := ""
		if x := k.Match(netip.MustParseAddr(c.ip), c.ptr, c.confirmed, c.includes); x != nil {
			got = x.Label()
		}
		if got != c.want {
			t.Errorf("Match(%s, %q, %v, %v) = %q, want %q", c.ip, c.ptr, c.confirmed, c.includes, got, c.want)
		}
	}
}

func TestLoadKnownNamesTheFileAndEntry(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"senders:\n  - id: x\n    name: X\n    cidrs: [192.0.2.0/33]\n", `sender "x": cidrs[0]`},
		{"senders:\n  - id: x\n    name: X\n    cidrs: [mail.example.com]\n", `"mail.example.com" is not a CIDR prefix`},
		{"senders:\n  - id: x\n    name: X\n    ptr_suffixes: [x.example]\n    authorised: true\n    not_mine: true\n", "contradict"},
		{"senders:\n  - id: x\n    name: X\n", "needs dkim_domains, mail_from_domains, spf_includes, cidrs or ptr_suffixes"},
		{"senders:\n  - id: x\n    name: X\n    cidr: [192.0.2.0/24]\n", "field cidr not found"},
	} {
		p := knownFile(t, c.text)
		_, err := LoadKnown(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadKnown(%q): error %v, want one naming the file and %q", c.text, err, c.want)
		}
	}
}

func TestSPFIncludesFollowsTheAuthorisingPath(t *testing.T) {
	srv := zonesNested(t)
	a := New(resolver(t, srv), time.Millisecond)
	ctx := context.Background()
	for _, c := range []struct {
		ip   string
		mech string
		want string
	}{
		{"54.240.0.9", "include:_spf.example.org", "_spf.example.org amazonses.com"},
		{"198.51.100.5", "include:_spf.example.org", "_spf.example.org crm.example.net"},
		{"192.0.2.5", "ip4:192.0.2.0/24", ""},
		{"203.0.113.5", "", ""},
	} {
		got, err := a.Attribute(ctx, netip.MustParseAddr(c.ip), []string{"example.org"})
		if err != nil {
			t.Fatal(err)
		}
		if got.SPFMechanism != c.mech || strings.Join(got.SPFIncludes, " ") != c.want {
			t.Errorf("%s: mechanism %q, includes %q; want %q, %q", c.ip, got.SPFMechanism, got.SPFIncludes, c.mech, c.want)
		}
	}
}

// zonesNested: example.org authorises SES and a CRM through its own
// _spf include; the CRM's record fails everything but its /24 first.
func zonesNested(t *testing.T) *dnstest.Server {
	return dnstest.Start(t,
		`example.org. TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.example.org -all"`,
		`_spf.example.org. TXT "v=spf1 include:spf.nomatch.example include:amazonses.com include:crm.example.net -all"`,
		`spf.nomatch.example. TXT "v=spf1 ip4:10.0.0.0/8 -all"`,
		`amazonses.com. TXT "v=spf1 ip4:54.240.0.0/18 -all"`,
		`crm.example.net. TXT "v=spf1 ip4:198.51.100.0/24 -all"`,
	)
}

// openStore opens a fresh store on the test ClickHouse.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), testenv.ClickHouse(t), store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// storeRecords stores one report of example.com with one record per IP.
func storeRecords(t *testing.T, st *store.Store, ips ...string) {
	t.Helper()
	begin := time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)
	h := &aggregate.Header{Schema: aggregate.SchemaRFC7489, Version: "1.0", OrgName: "google.com", Email: "x@google.com",
		ReportID: "r-" + strings.Join(ips, ","), Begin: begin, End: begin.Add(24*time.Hour - time.Second), Domain: "example.com"}
	i := 0
	next := func() (*enrich.Record, error) {
		if i == len(ips) {
			return nil, io.EOF
		}
		i++
		return &enrich.Record{Record: &aggregate.Record{Index: i - 1, SourceIP: ips[i-1], Count: uint64(10 * i), Disposition: "none", HeaderFrom: "example.com"}}, nil
	}
	if _, err := st.WriteAggregate(context.Background(), h, store.InputMeta{}, next); err != nil {
		t.Fatal(err)
	}
}

func TestRunWithStoresGeoAndKnownSourceAndRefreshFollowsTheFile(t *testing.T) {
	srv := zones(t)
	st := openStore(t)
	storeRecords(t, st, "54.240.0.1", "203.0.113.9", "192.0.2.77")
	countryDB, asnDB := geoDBs(t)
	known := knownFile(t, operatorKnown)
	e, err := Open(Options{GeoCountryDB: countryDB, GeoASNDB: asnDB, KnownSources: known})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	if n, err := RunWith(ctx, st, resolver(t, srv), 100, e); err != nil || n != 3 {
		t.Fatalf("RunWith = %d, %v; want 3", n, err)
	}
	byIP := func() map[string]SourceAttribution {
		l, err := SourceAttributions(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]SourceAttribution{}
		for _, a := range l {
			m[a.IP] = a
		}
		return m
	}
	got := byIP()
	for ip, w := range map[string]SourceAttribution{
		"54.240.0.1":  {Country: "US", ASN: 14618, ASOrg: "AMAZON-AES", KnownSource: "Amazon SES", KnownAuthorised: true, SPFIncludes: []string{"amazonses.com"}},
		"192.0.2.77":  {Country: "DE", KnownSource: "Office relay", KnownAuthorised: true},
		"203.0.113.9": {Country: "IE"},
	} {
		g := got[ip]
		if g.Country != w.Country || g.ASN != w.ASN || g.ASOrg != w.ASOrg || g.KnownSource != w.KnownSource ||
			g.KnownAuthorised != w.KnownAuthorised || strings.Join(g.SPFIncludes, " ") != strings.Join(w.SPFIncludes, " ") {
			t.Errorf("%s stored as %+v, want %+v", ip, g, w)
		}
	}

	// Nothing changed: Refresh rewrites nothing.
	if n, err := Refresh(ctx, st, e); err != nil || n != 0 {
		t.Errorf("Refresh with the same files = %d, %v; want 0", n, err)
	}
	// Without the operator's file, SES is still known (built in, by its
	// SPF include and confirmed PTR) but no longer authorised, and the
	// office relay is unknown.
	builtin, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := Refresh(ctx, st, builtin); err != nil || n != 2 {
		t.Fatalf("Refresh with the built-in senders = %d, %v; want 2 rows rewritten", n, err)
	}
	got = byIP()
	if g := got["54.240.0.1"]; g.KnownSource != "Amazon SES" || g.KnownAuthorised || g.Country != "US" || g.PTR != "a1.smtp-out.amazonses.com" || !g.PTRConfirmed {
		t.Errorf("54.240.0.1 after refresh: %+v", g)
	}
	if g := got["192.0.2.77"]; g.KnownSource != "" || g.SPFMechanism != "ip4:192.0.2.0/24" {
		t.Errorf("192.0.2.77 after refresh: %+v", g)
	}
	if n, err := RunWith(ctx, st, resolver(t, srv), 100, builtin); err != nil || n != 0 {
		t.Errorf("RunWith after refresh = %d, %v; want 0 (every IP attributed)", n, err)
	}
}

func TestExampleKnownSourcesFileLoads(t *testing.T) {
	k, err := LoadKnown(filepath.Join(testenv.ModuleRoot(), "docs", "known-sources.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if x := k.Match(netip.MustParseAddr("192.0.2.3"), "", false, nil); x == nil || x.Label() != "Office relay (authorised)" {
		t.Errorf("192.0.2.3 matched %+v, want the example's office relay", x)
	}
}

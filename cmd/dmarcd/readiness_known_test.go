package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/dmarcd/dmarcd/internal/product/attrib"
	"github.com/dmarcd/dmarcd/internal/product/dnscheck"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
)

// An operator's known-sources file: SES by its CIDR, and an office relay
// whose mail passes neither SPF nor DKIM.
const knownSourcesFile = `senders:
  - id: amazon-ses
    name: Amazon SES
    cidrs: [54.240.0.0/18]
    dkim_domains: [amazonses.com]
    mail_from_domains: [amazonses.com]
    authorised: true
  - id: office
    name: Office relay
    cidrs: [192.0.2.0/25]
    authorised: true
`

// asnDB writes a GeoLite2-ASN-layout database for SES's network.
func asnDB(t *testing.T) string {
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-ASN", RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	_, n, _ := net.ParseCIDR("54.240.0.0/18")
	if err := tree.Insert(n, mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(14618),
		"autonomous_system_organization": mmdbtype.String("AMAZON-AES")}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "GeoLite2-ASN.mmdb")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadinessNamesKnownSourcesFromAttribution(t *testing.T) {
	s := readinessStore(t)
	office := rec{ip: "192.0.2.10", from: "example.com", count: 25, spf: []string{"example.com/fail"}}
	writeDays(t, s, "example.com", "p=none", 3, sesAligned, sesBare, office, spoofNoAuth)

	known := filepath.Join(t.TempDir(), "known-sources.yaml")
	if err := os.WriteFile(known, []byte(knownSourcesFile), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DMARCD_ATTRIBUTION_KNOWN_SOURCES", known)
	srv := dnstest.Start(t, `example.com. TXT "v=spf1 include:amazonses.com -all"`, `amazonses.com. TXT "v=spf1 ip4:54.240.0.0/18 -all"`)
	r, err := dnscheck.NewResolver(srv.Addr, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	e, err := attrib.Open(attrib.Options{KnownSources: known, GeoASNDB: asnDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n, err := attrib.RunWith(context.Background(), s, r, 100, e); err != nil || n != 4 {
		t.Fatalf("attribution: %d, %v; want 4 IPs", n, err)
	}

	d := only(t, runReadinessJSON(t))
	byName := map[string]readiness.Source{}
	for _, src := range d.Sources {
		byName[src.Name()] = src
	}
	ses, ok := byName["Amazon SES (authorised; amazonses.com)"]
	if !ok || ses.KnownSource != "Amazon SES" || !ses.Legitimate {
		t.Errorf("sources %v: want the bare SES sender named %q, legitimate", keys(byName), "Amazon SES (authorised; amazonses.com)")
	}
	relay, ok := byName["Office relay (authorised)"]
	if !ok || relay.Class != "unauthenticated" || !relay.Legitimate || len(relay.Fixes) == 0 {
		t.Errorf("sources %v: want the office relay named, unauthenticated but legitimate, with fixes (got %+v)", keys(byName), relay)
	}
	// The relay's mail is what enforcement would hurt, with SES's bare mail;
	// the spoofer stays unauthenticated.
	if d.Misaligned != 3*(20+25) || d.Unauthenticated != 3*3 || !strings.Contains(d.Verdict, "Office relay (authorised)") {
		t.Errorf("misaligned %d, unauthenticated %d, verdict %q; want %d, %d, naming the relay", d.Misaligned, d.Unauthenticated, d.Verdict, 3*45, 9)
	}

	// The terminal output names them too, and the top IPs carry the AS.
	var o, stderr bytes.Buffer
	if code := runReadiness(context.Background(), &env{stdout: &o, stderr: &stderr}, nil); code != exitOK {
		t.Fatalf("readiness: exit %d: %s", code, stderr.String())
	}
	out := o.String()
	for _, want := range []string{"Office relay (authorised)", "Amazon SES (authorised; amazonses.com)", "54.240.0.1 (AS14618 AMAZON-AES, Amazon SES)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Without the known-sources file, the relay is spoofing to readiness
	// (unnamed), and SES is known by its DKIM domain only.
	t.Setenv("DMARCD_ATTRIBUTION_KNOWN_SOURCES", "")
	if _, err := attrib.Refresh(context.Background(), s, nil); err != nil {
		t.Fatal(err)
	}
	d = only(t, runReadinessJSON(t))
	for _, src := range d.Sources {
		if strings.Contains(src.Name(), "Office relay") || src.Authorised != nil {
			t.Errorf("without the file: source %q authorised %v", src.Name(), src.Authorised)
		}
	}
	if d.Unauthenticated != 3*(25+3) {
		t.Errorf("without the file: %d unauthenticated, want %d", d.Unauthenticated, 3*28)
	}
}

func keys(m map[string]readiness.Source) []string {
	var l []string
	for k := range m {
		l = append(l, k)
	}
	return l
}

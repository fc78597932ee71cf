package metrics

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// TestForgedDomainsCannotPushAnOwnedDomainOut: 60 forged policy domains
// with huge counts, and one owned domain with a few sessions: the owned
// domain (and its subdomain) stays its own series, the forged ones are one
// "other" series.
func TestForgedDomainsCannotPushAnOwnedDomainOut(t *testing.T) {
	m := New("test", []string{"example.com"})
	for i := range 60 {
		m.TLSRPTStored([]TLSPolicy{{Domain: fmt.Sprintf("forged%02d.example.net", i), Successful: 1 << 40}})
	}
	m.TLSRPTStored([]TLSPolicy{{Domain: "example.com", Successful: 7}, {Domain: "mail.example.com", Successful: 3}})
	if v := testutil.ToFloat64(m.tlsOK.WithLabelValues("example.com")); v != 10 {
		t.Errorf("example.com successful sessions %v, want 10 (its subdomain included)", v)
	}
	if n := testutil.CollectAndCount(m.tlsOK); n != 2 {
		t.Errorf("%d series, want 2: example.com and other", n)
	}
}

// TestEveryDomainAcceptedKeepsTheFirstDomainsAndNeverAHostileName: with
// owned_domains ["*"], the first MaxDomains valid names seen keep a series;
// a name that is not a DNS name (control bytes, invalid UTF-8, longer than
// MaxLabelBytes) never becomes a label value.
func TestEveryDomainAcceptedKeepsTheFirstDomainsAndNeverAHostileName(t *testing.T) {
	d := NewDomains([]string{"*"})
	if d.HasOwned() {
		t.Fatal(`["*"] counted as an owned domain`)
	}
	for _, bad := range []string{"a\x1b[31mb.example", "\xff\xfe.example", strings.Repeat("a", 60) + ".example", "other", "x y.example"} {
		if got := d.Label(bad); got != Other {
			t.Errorf("Label(%q) = %q, want other", bad, got)
		}
	}
	for i := range MaxDomains + 10 {
		want := fmt.Sprintf("d%02d.example", i)
		if i >= MaxDomains {
			want = Other
		}
		if got := d.Label(fmt.Sprintf("D%02d.Example.", i)); got != want {
			t.Fatalf("domain %d: label %q, want %q", i, got, want)
		}
	}
	if got := d.Label("d00.example"); got != "d00.example" {
		t.Errorf("a domain seen first keeps its label: %q", got)
	}
}

// TestALabelValueFromAReportIsShortAndPrintable: an 8 MiB org name costs
// MaxLabelBytes, and what Prometheus would refuse (invalid UTF-8) or a
// terminal would obey (escape sequences, bidi overrides) is escaped.
func TestALabelValueFromAReportIsShortAndPrintable(t *testing.T) {
	huge := strings.Repeat("Ω", 4<<20)
	for _, in := range []string{huge, "\xff\xfe\x1b]0;pwned\x07", "evil\u202egoogle.com"} {
		v := LabelValue(in)
		if len(v) > MaxLabelBytes || !utf8.ValidString(v) || strings.ContainsAny(v, "\x1b\x07\u202e") {
			t.Errorf("LabelValue(%.20q…) = %q (%d bytes)", in, v, len(v))
		}
	}
	if v := LabelValue("google.com"); v != "google.com" {
		t.Errorf("a plain value changed: %q", v)
	}
}

// TestAHostileFailureReportDomainKeepsTheScrapeSmall: a failure report
// naming an 8 MiB From domain (every domain accepted) adds an "other"
// series, and the whole scrape stays small.
func TestAHostileFailureReportDomainKeepsTheScrapeSmall(t *testing.T) {
	m := New("test", nil)
	m.FailureStored(strings.Repeat("a", 8<<20)+".example", []string{"dmarc"})
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() > 64<<10 {
		t.Errorf("scrape is %d bytes, want under 64 KiB", b.Len())
	}
	if v := testutil.ToFloat64(m.failures.WithLabelValues(Other, "dmarc")); v != 1 {
		t.Errorf("the hostile domain must count as other: %v", v)
	}
}

package aggregate

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

func TestKeyIsTheHashOfTheNormalisedIdentity(t *testing.T) {
	h := &Header{
		OrgName:  " Google.com ",
		ReportID: " 11038226378739404135\n",
		Domain:   "Example.COM.",
		Begin:    time.Unix(1718236800, 0).UTC(),
		End:      time.Unix(1718323199, 0).UTC(),
	}
	sum := sha256.Sum256([]byte("google.com\x0011038226378739404135\x00example.com\x001718236800\x001718323199"))
	if got, want := Key(h), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("Key = %s, want %s", got, want)
	}
}

func TestKeyIgnoresWhatDoesNotIdentifyAReport(t *testing.T) {
	a := &Header{OrgName: "google.com", ReportID: "1", Domain: "example.com", Begin: time.Unix(1, 0), End: time.Unix(2, 0)}
	b := *a
	b.OrgName, b.Domain, b.ReportID = "GOOGLE.COM", "example.com.", " 1 "
	b.Email, b.Version, b.P = "other@x", "1.0", Opt{"reject", true}
	b.Begin, b.End = a.Begin.In(time.FixedZone("x", 3600)), a.End.In(time.FixedZone("y", -3600))
	if Key(a) != Key(&b) {
		t.Fatal("equivalent headers have different keys")
	}
}

func TestKeyFallsBackToTheEmailDomain(t *testing.T) {
	a := &Header{Email: "noreply-dmarc@Mail.Example.NET", ReportID: "1", Domain: "example.com"}
	b := &Header{OrgName: "mail.example.net", ReportID: "1", Domain: "example.com"}
	if Key(a) != Key(b) {
		t.Fatal("empty org_name does not fall back to the email domain")
	}
}

func TestKeyFieldsDoNotRunTogether(t *testing.T) {
	a := &Header{OrgName: "ab", ReportID: "c", Domain: "d"}
	b := &Header{OrgName: "a", ReportID: "bc", Domain: "d"}
	if Key(a) == Key(b) {
		t.Fatal("field boundary lost")
	}
	for _, k := range []string{Key(a), Key(b)} {
		if len(k) != 64 {
			t.Fatalf("key %q is not hex SHA-256", k)
		}
	}
}

package valid

import (
	"strings"
	"testing"
	"time"
)

func TestDomainAcceptsRealNamesAndRefusesHostileOnes(t *testing.T) {
	for _, d := range []string{"example.com", "mail.example.co.uk", "_dmarc.example.com", "xn--bcher-kva.example",
		"a-b.c", "s1._domainkey.example.com", "localhost", strings.Repeat("a", 63) + ".com"} {
		if err := Domain(d); err != nil {
			t.Errorf("Domain(%q) = %v, want nil", d, err)
		}
	}
	for _, d := range []string{"", "!x' OR 1=1 --", "exa mple.com", "a\nb.com", "a\x00b", "example..com", ".example.com",
		"example.com.", "ex\"ample.com", "bücher.example", strings.Repeat("a", 64) + ".com",
		strings.Repeat("abc.", 64) + "com", strings.Repeat("x", 1<<20)} {
		err := Domain(d)
		if err == nil {
			t.Errorf("Domain(%q) = nil, want an error", Truncate(d, 80))
			continue
		}
		if len(err.Error()) > 200 {
			t.Errorf("Domain error is %d bytes long: a hostile value must be cut short", len(err.Error()))
		}
		if strings.ContainsAny(err.Error(), "\x00\n") {
			t.Errorf("Domain error %q carries a control character", err)
		}
	}
}

func TestWindowRefusesWrappingDatesAndReversedRanges(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	if err := Window("date_range", day(2026, 12, 1), day(2026, 12, 2), now); err != nil {
		t.Fatalf("a plain day: %v", err)
	}
	for name, c := range map[string][2]time.Time{
		"2107 (wraps modulo 2^32 in a DateTime)": {day(2107, 1, 1), day(2107, 1, 2)},
		"1970":                                   {time.Unix(0, 0), time.Unix(86400, 0)},
		"end before begin":                       {day(2026, 12, 2), day(2026, 12, 1)},
		"a month ahead":                          {day(2027, 1, 6), day(2027, 1, 7)},
	} {
		if err := Window("date_range", c[0], c[1], now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAddCountDetectsOverflow(t *testing.T) {
	if _, ok := AddCount(^uint64(0), 1); ok {
		t.Fatal("max+1 did not overflow")
	}
	if s, ok := AddCount(40, 2); !ok || s != 42 {
		t.Fatalf("40+2 = %d, %v", s, ok)
	}
}

func TestPrintableEscapesWhatSteersATerminal(t *testing.T) {
	for in, want := range map[string]string{
		"plain report-id 42": "plain report-id 42",
		"\x1b]0;pwned\x07":   `\x1b]0;pwned\x07`,
		"a\nb\rc\x00":        `a\x0ab\x0dc\x00`,
		"evil\u202eexe.txt":  `evil\u202eexe.txt`,
		"bad utf8 \xff":      `bad utf8 \xff`,
		"Grüße":              "Grüße",
		`back\slash`:         `back\\slash`,
		"\u009b31m":          `\x9b31m`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCSVCellDefusesFormulas(t *testing.T) {
	for in, want := range map[string]string{
		`=HYPERLINK("http://x","y")`: `'=HYPERLINK("http://x","y")`,
		"+1":                         "'+1",
		"-2+3":                       "'-2+3",
		"@SUM(A1)":                   "'@SUM(A1)",
		"example.com":                "example.com",
		"":                           "",
	} {
		if got := CSVCell(in); got != want {
			t.Errorf("CSVCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuoteCutsLongValues(t *testing.T) {
	q := Quote(strings.Repeat("é", 1000), 10)
	if len(q) > 40 || !strings.Contains(q, "(2000 bytes)") {
		t.Fatalf("Quote = %q", q)
	}
}

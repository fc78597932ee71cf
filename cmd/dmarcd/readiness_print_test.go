package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dmarcd/dmarcd/internal/product/readiness"
)

// printedDomains are verdicts with every part the terminal output has: two
// scopes, subdomains, unverified reasons, fixes, more than three one-off
// identities, a forged From of 200 bytes, an IPv6 top IP.
func printedDomains(t *testing.T) []readiness.Domain {
	t.Helper()
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + ".example.com"
	rows := []readiness.SourceRow{
		{HeaderFrom: "example.com", Class: readiness.ClassAligned, Messages: 1363, SourceIPs: 10, Days: 14,
			DKIMPass: []string{"amazonses.com", "example.com"}, SPFPass: []string{"mail.example.com"}, TopIPs: []string{"54.240.53.71", "2600:1f18::1"}},
		{HeaderFrom: "example.com", Class: readiness.ClassMisaligned, Messages: 192, SourceIPs: 3, Days: 14,
			DKIMPass: []string{"esp-mailer.net"}, SPFPass: []string{"bounces.esp-mailer.net"}},
		{HeaderFrom: "news.example.com", Class: readiness.ClassAligned, Messages: 191, SourceIPs: 6, Days: 2,
			DKIMPass: []string{"news.example.com"}, SPFPass: []string{"mail.news.example.com"}},
		{HeaderFrom: "news.example.com", Class: readiness.ClassMisaligned, Messages: 40, SourceIPs: 2, Days: 3,
			DKIMPass: []string{"newsletter-tool.example"}},
		{HeaderFrom: long, Class: readiness.ClassUnauthenticated, Messages: 9, SourceIPs: 9, Days: 1},
	}
	for i, d := range []string{"spam1.example", "spam2.example", "spam3.example", "spam4.example", "spam5.example"} {
		rows = append(rows, readiness.SourceRow{HeaderFrom: "example.com", Class: readiness.ClassMisaligned, Messages: uint64(i + 1), SourceIPs: 1, Days: 1, DKIMPass: []string{d}})
	}
	for i := range rows {
		rows[i].PolicyDomain = "example.com"
		rows[i].Unverified = rows[i].Messages / 2
	}
	p, sp := "none", "none"
	return readiness.EvaluateTrust(rows, []readiness.PublishedPolicy{{Domain: "example.com", P: &p, SP: &sp}}, nil, readiness.Trust{
		Unverified: []readiness.UnverifiedRow{
			{PolicyDomain: "example.com", Reason: readiness.UnverifiedUnsigned, Reports: 40, Messages: 800},
			{PolicyDomain: "example.com", Reason: readiness.UnverifiedNoMail, Reports: 3, Messages: 100},
		}})
}

// words is s without its white space: wrapping may break a line at a space
// or inside a word longer than a line.
func words(s string) string { return strings.Join(strings.Fields(s), "") }

// TestReadinessTerminalOutputFits100ColumnsAndSaysWhatJSONSays prints
// verdicts as the terminal gets them: no line is wider than 100 columns,
// every row of the sources table has its numbers under their headers, and
// the verdict, the next step, each tag's and each subdomain's verdict and
// each reason for unverified reports are there in --json's words.
func TestReadinessTerminalOutputFits100ColumnsAndSaysWhatJSONSays(t *testing.T) {
	ds := printedDomains(t)
	var o bytes.Buffer
	printReadiness(&env{stdout: &o}, ds[0], 30)
	out := o.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var header string
	rowsSeen := 0
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > readinessWidth {
			t.Errorf("%d columns: %q", n, l)
		}
		if strings.HasPrefix(l, "  CLASS ") {
			header = l
			continue
		}
		if header == "" || strings.HasPrefix(l, "      ") {
			continue
		}
		rowsSeen++
		r := []rune(l) // columns, not bytes: a cut From ends in "…"
		for _, col := range []string{"MESSAGES", "UNVERIFIED", "IPS", "DAYS"} {
			end := strings.Index(header, col) + len(col) // the header is ASCII
			if end > len(r) || r[end-1] == ' ' || end < len(r) && r[end] != ' ' {
				t.Errorf("row not aligned under %s:\n%s\n%s", col, header, l)
			}
		}
	}
	if rowsSeen != 9 { // 5 sources, 3 one-off identities, their sum
		t.Errorf("%d table rows, want 9:\n%s", rowsSeen, out)
	}
	d, flat := ds[0], words(out)
	want := []string{d.Verdict, d.Next}
	for _, sc := range d.Scopes {
		want = append(want, sc.Name()+": "+strings.Join(sc.HeaderFroms, ", "))
		if sc.Ready == readiness.LevelNone {
			want = append(want, "not ready for enforcement")
		} else {
			want = append(want, "ready for "+sc.Tag+"="+sc.Ready)
		}
	}
	for _, sd := range d.Subdomains {
		if sd.HeaderFrom != d.Domain {
			want = append(want, "is under "+sd.Policy+": "+sd.Next)
		}
	}
	for _, u := range d.UnverifiedWhy {
		want = append(want, u.Why, u.Do)
	}
	if len(d.UnverifiedWhy) != 2 || len(d.Scopes) != 2 {
		t.Fatalf("scenario: %d reasons, %d scopes", len(d.UnverifiedWhy), len(d.Scopes))
	}
	for _, w := range want {
		if !strings.Contains(flat, words(w)) {
			t.Errorf("terminal output lacks %q:\n%s", w, out)
		}
	}
	if !strings.Contains(out, "ready for p=reject") == (d.Ready == readiness.LevelReject) {
		t.Errorf("ready %q but the output says otherwise:\n%s", d.Ready, out)
	}
	if testing.Verbose() {
		t.Log("\n" + out)
	}
}

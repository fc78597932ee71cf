package failure

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	addrRe = regexp.MustCompile(`([A-Za-z0-9!#$%&'*+/=?^_{|}~.-]+)@[A-Za-z0-9][A-Za-z0-9-]*(\.[A-Za-z0-9-]+)*`)
	keyRe  = regexp.MustCompile(`^[a-z][a-z.-]*$`)
)

// localParts returns the local parts of the addresses in s, skipping
// Message-ID fields (kept as the original's identity), and for a
// "key=local" match such as smtp.mailfrom=user also the part after the key.
func localParts(s string, into map[string]bool) {
	inMsgID := false
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if line != "" && line[0] != ' ' && line[0] != '\t' {
			inMsgID = strings.HasPrefix(strings.ToLower(line), "message-id:")
		}
		if inMsgID {
			continue
		}
		for _, m := range addrRe.FindAllStringSubmatch(line, -1) {
			l := strings.TrimLeft(m[1], ".")
			if k, v, ok := strings.Cut(l, "="); ok && keyRe.MatchString(k) {
				l = v // smtp.mailfrom=user@...; empty for header.i=@domain
			}
			if l != "" {
				into[l] = true
			}
		}
	}
}

// TestRedactLeavesNoLocalPart proves that after Redact no local part of an
// address in a corpus failure report (its body, its Subject, and the decoded
// feedback fields) is left anywhere in the Report.
func TestRedactLeavesNoLocalPart(t *testing.T) {
	for _, row := range forensicManifest(t) {
		t.Run(row.path, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(corpusDir(t), row.path))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Parse(bytes.NewReader(raw), Options{KeepBody: true})
			if err != nil {
				t.Fatal(err)
			}

			locals := map[string]bool{}
			// The report email's own header names its sender and recipient,
			// which the Report does not hold; of it only Subject is stored.
			head, body, _ := strings.Cut(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n\n")
			localParts(body, locals)
			localParts(rep.ReportSubject, locals)
			_ = head
			// The feedback part may be base64 (Netease): take its decoded address fields too.
			for _, s := range append(append([]string{rep.OriginalMailFrom, rep.DKIMIdentity}, rep.OriginalRcptTo...), rep.AuthenticationResults...) {
				localParts(s, locals)
			}
			if len(locals) == 0 {
				t.Fatal("no addresses found: the test proves nothing")
			}

			Redact(rep, []byte("test key"), true, true)
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(rep); err != nil {
				t.Fatal(err)
			}
			hay := strings.ReplaceAll(buf.String(), Redacted, "") + string(rep.Original.Body)
			var checked []string
			for l := range locals {
				if len(l) < minThroughout {
					continue
				}
				checked = append(checked, l)
				if i := strings.Index(hay, l); i >= 0 {
					lo, hi := max(0, i-60), min(len(hay), i+len(l)+60)
					t.Errorf("local part %q left after Redact: ...%s...", l, hay[lo:hi])
				}
			}
			t.Logf("local parts checked: %q", checked)
		})
	}
}

func TestRedactTokensAreKeyedAndStable(t *testing.T) {
	rep := &Report{
		OriginalMailFrom:      "Alice.Smith@example.org",
		OriginalRcptTo:        []string{"bob@example.net"},
		AuthenticationResults: []string{"r.example; spf=fail smtp.mailfrom=alice.smith@example.org; dmarc=fail header.from=example.org"},
		DKIMIdentity:          "alice.smith@example.org",
		ReportSubject:         "FW: hi bob",
		Original: Original{
			Subject: "hi bob",
			Headers: []Header{
				{"From", `"alice.smith" <alice.smith@example.org>`},
				{"Message-ID", "<id1@example.org>"},
				{"Subject", "hi bob"},
			},
			Body: []byte("secret"),
		},
	}
	Redact(rep, []byte("k1"), false, false)
	tok := rep.OriginalMailFrom[:strings.IndexByte(rep.OriginalMailFrom, '@')]
	if len(tok) != 16 || strings.Contains(rep.OriginalMailFrom, "lice") {
		t.Fatalf("mail from %q", rep.OriginalMailFrom)
	}
	if rep.DKIMIdentity != tok+"@example.org" || !strings.Contains(rep.AuthenticationResults[0], "smtp.mailfrom="+tok+"@example.org;") {
		t.Errorf("same address, different tokens: %q %q", rep.DKIMIdentity, rep.AuthenticationResults[0])
	}
	if want := `"` + tok + `" <` + tok + `@example.org>`; rep.Original.Headers[0].Value != want {
		t.Errorf("From %q, want %q", rep.Original.Headers[0].Value, want)
	}
	if rep.Original.Headers[1].Value != "<id1@example.org>" {
		t.Errorf("Message-ID changed: %q", rep.Original.Headers[1].Value)
	}
	if rep.Original.Subject != "hi bob" || rep.Original.Body != nil {
		t.Errorf("subject %q kept, body %q dropped?", rep.Original.Subject, rep.Original.Body)
	}

	other := &Report{OriginalMailFrom: "alice.smith@example.org", ReportSubject: "s", Original: Original{Subject: "s", Headers: []Header{{"Subject", "s"}}}}
	Redact(other, []byte("k2"), true, false)
	if strings.HasPrefix(other.OriginalMailFrom, tok) {
		t.Error("a different key gives the same token")
	}
	if other.ReportSubject != Redacted || other.Original.Subject != Redacted || other.Original.Headers[0].Value != Redacted {
		t.Errorf("subjects not redacted: %+v", other)
	}
}

func TestFindAddrs(t *testing.T) {
	cases := map[string][]string{
		"a@b.c":                                  {"a"},
		"smtp.mailfrom=user@example.com":         {"user"},
		"envelope-from=<x.y@e.com>; for z@e.com": {"x.y", "z"},
		"bounces+1-c=163.com@email.example.com":  {"bounces+1-c=163.com"},
		`"john doe"@example.com`:                 {`"john doe"`},
		"header.i=@example.org":                  nil,
		"@ example.org, a@":                      nil,
		"x@[192.0.2.1]":                          {"x"},
	}
	for in, want := range cases {
		var got []string
		for _, sp := range findAddrs(in) {
			got = append(got, in[sp.local:sp.at])
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("findAddrs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactReplacesDisplayNameRepeatingLocalPart(t *testing.T) {
	rep := &Report{Original: Original{Headers: []Header{
		{"To", `"u+x" <u+x@example.com>, "Peter.Pan" <peter.pan@example.com>`},
		{"Cc", `"john doe"@example.com`},
	}}}
	Redact(rep, []byte("k"), false, false)
	for _, h := range rep.Original.Headers {
		for _, l := range []string{"u+x", "Peter", "peter", "john doe"} {
			if strings.Contains(h.Value, l) {
				t.Errorf("%s: %q left in %q", h.Name, l, h.Value)
			}
		}
		if !strings.Contains(h.Value, "@example.com") {
			t.Errorf("%s: domain lost in %q", h.Name, h.Value)
		}
	}
}

package readiness

import (
	"strings"
	"testing"
)

// Scenario senders whose class and legitimacy are known by construction.
var (
	ownAligned = SourceRow{HeaderFrom: "example.com", Class: ClassAligned, Messages: 100, Days: 5,
		DKIMPass: []string{"example.com"}, SPFPass: []string{"example.com"}, PassRR: 100, PassSR: 100, PassRS: 100, PassSS: 100}
	ownESP = SourceRow{HeaderFrom: "example.com", Class: ClassMisaligned, Messages: 30, Days: 3,
		DKIMPass: []string{"esp-mailer.net"}, SPFPass: []string{"bounces.esp-mailer.net"}}
	ownESPOne = SourceRow{HeaderFrom: "example.com", Class: ClassMisaligned, Messages: 1, Days: 2,
		DKIMPass: []string{"esp-mailer.net"}}
	spoof = SourceRow{HeaderFrom: "example.com", Class: ClassUnauthenticated, Messages: 7, Days: 1}
	// news.example.com exists: its own DKIM key passed.
	subAligned = SourceRow{HeaderFrom: "news.example.com", Class: ClassAligned, Messages: 50, Days: 5,
		DKIMPass: []string{"news.example.com"}, PassRR: 50, PassSR: 50, PassRS: 50, PassSS: 50}
	subESP = SourceRow{HeaderFrom: "news.example.com", Class: ClassMisaligned, Messages: 20, Days: 3,
		DKIMPass: []string{"esp-mailer.net"}, SPFPass: []string{"bounces.esp-mailer.net"}}
	// promo.example.com is not shown to exist: np may apply to it.
	ghostAligned = SourceRow{HeaderFrom: "promo.example.com", Class: ClassAligned, Messages: 40, Days: 5,
		DKIMPass: []string{"example.com"}, PassRR: 40, PassRS: 40}
	ghostESP = SourceRow{HeaderFrom: "promo.example.com", Class: ClassMisaligned, Messages: 10, Days: 3,
		DKIMPass: []string{"esp-mailer.net"}}
)

func rows(l ...SourceRow) []SourceRow {
	out := make([]SourceRow, len(l))
	for i, r := range l {
		r.PolicyDomain = "example.com"
		out[i] = r
	}
	return out
}

// record parses "p=none; sp=none" into a stored policy.
func record(s string) PublishedPolicy {
	p := PublishedPolicy{Domain: "example.com"}
	for _, tag := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(tag), "=")
		v2 := v
		switch k {
		case "p":
			p.P = &v2
		case "sp":
			p.SP = &v2
		case "np":
			p.NP = &v2
		case "pct":
			p.Pct = &v2
		case "t":
			p.Testing = &v2
		}
	}
	return p
}

// TestVerdictFollowsThePolicyThatAppliesToEachMessage builds policy
// combinations whose right answer is known by construction: which tag
// (p, sp, np) governs each header_from, what pct and t=y do, the level each
// tag's mail supports and the next step. The verdict must agree with the
// what-if it prints (p=reject hits no legitimate mail ⇔ ready for reject,
// when nothing but p changes).
func TestVerdictFollowsThePolicyThatAppliesToEachMessage(t *testing.T) {
	for _, c := range []struct {
		name, policy string
		rows         []SourceRow
		ready        string            // p's
		scopes       map[string]string // tag → ready
		subs         map[string]string // header_from → policy it is under
		rejectLegit  float64           // what if p=reject: legitimate messages hit
		inForceLegit float64           // p's scope today
		next         []string          // substrings of Next, in order
		verdict      []string
	}{
		{
			name: "sp=none keeps an unready subdomain out of p's verdict", policy: "p=none; sp=none",
			rows: rows(ownAligned, spoof, subAligned, subESP), ready: LevelReject,
			scopes:      map[string]string{"p": LevelReject, "sp": LevelNone},
			subs:        map[string]string{"news.example.com": "sp=none", "example.com": "p=none"},
			rejectLegit: 0,
			next:        []string{"p=quarantine with pct=25", "sp: keep sp=none and fix esp-mailer.net"},
			verdict:     []string{"ready for p=reject: no legitimate mail under p (example.com itself)", "sp (news.example.com): not ready"},
		},
		{
			name: "without sp the subdomain follows p and holds it back", policy: "p=none",
			rows: rows(ownAligned, spoof, subAligned, subESP), ready: LevelNone,
			scopes:      map[string]string{"p": LevelNone},
			subs:        map[string]string{"news.example.com": "p=none (no sp)"},
			rejectLegit: 20,
			next:        []string{"publish sp=none to hold back news.example.com (not ready), then p=quarantine with pct=25"},
			verdict:     []string{"not ready: enforcing p would hit 11.8% of the legitimate mail under p (example.com and its subdomains)"},
		},
		{
			name: "sp=reject already in force on a clean subdomain, p not ready", policy: "p=none; sp=reject",
			rows: rows(ownAligned, ownESP, subAligned), ready: LevelNone,
			scopes:      map[string]string{"p": LevelNone, "sp": LevelReject},
			subs:        map[string]string{"news.example.com": "sp=reject"},
			rejectLegit: 30,
			next:        []string{"keep p=none and fix esp-mailer.net", "sp: sp=reject is in force"},
		},
		{
			name: "np=reject may hit a subdomain not shown to exist", policy: "p=none; sp=none; np=reject",
			rows: rows(ownAligned, subAligned, ghostAligned, ghostESP), ready: LevelReject,
			scopes:      map[string]string{"p": LevelReject, "sp": LevelNone, "np": LevelNone},
			subs:        map[string]string{"promo.example.com": "sp=none or np=reject", "news.example.com": "sp=none"},
			rejectLegit: 10, // the strictest of sp and np applies to promo's mail
			next:        []string{"p=quarantine with pct=25", "np: np=reject already hits 10 legitimate messages"},
		},
		{
			name: "np absent: a subdomain of unknown existence is under sp", policy: "p=reject; sp=none",
			rows: rows(ownAligned, ghostAligned, ghostESP), ready: LevelReject,
			scopes:       map[string]string{"p": LevelReject, "sp": LevelNone},
			subs:         map[string]string{"promo.example.com": "sp=none"},
			rejectLegit:  0,
			inForceLegit: 0,
			next:         []string{"p=reject is in force", "sp: keep sp=none and fix esp-mailer.net"},
		},
		{
			name: "t=y holds p=reject at quarantine, which is all the mail supports", policy: "p=reject; t=y",
			rows: rows(ownAligned, ownAligned, ownESPOne), ready: LevelQuarantine,
			scopes:       map[string]string{"p": LevelQuarantine},
			rejectLegit:  1, // t=y: quarantined, still hit
			inForceLegit: 1,
			next:         []string{"keep t=y until esp-mailer.net is fixed: without it p=reject would hit 1 legitimate messages"},
			verdict:      []string{"ready for p=quarantine; p=reject would block 0.5%"},
		},
		{
			name: "t=y on a ready domain is removed", policy: "p=reject; t=y",
			rows: rows(ownAligned, spoof), ready: LevelReject,
			scopes: map[string]string{"p": LevelReject},
			next:   []string{"remove t=y once the numbers stay clean"},
		},
		{
			name: "pct below 100 is raised first", policy: "p=quarantine; pct=50",
			rows: rows(ownAligned, spoof), ready: LevelReject,
			scopes: map[string]string{"p": LevelReject},
			next:   []string{"raise pct from 50 to 100 at p=quarantine"},
		},
		{
			name: "p=reject stronger than the mail supports says what it hits now", policy: "p=reject",
			rows: rows(ownAligned, ownESP), ready: LevelNone,
			scopes:       map[string]string{"p": LevelNone},
			rejectLegit:  30,
			inForceLegit: 30,
			next:         []string{"p=reject already hits 30 legitimate messages: fix esp-mailer.net", "or step back to p=none"},
		},
		{
			name: "both tags ready step up together", policy: "p=quarantine; sp=none",
			rows: rows(ownAligned, subAligned), ready: LevelReject,
			scopes: map[string]string{"p": LevelReject, "sp": LevelReject},
			next:   []string{"p=reject with pct=25", "sp: sp=quarantine with pct=25"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			ds := Evaluate(c.rows, []PublishedPolicy{record(c.policy)}, nil)
			if len(ds) != 1 {
				t.Fatalf("%d domains", len(ds))
			}
			d := ds[0]
			if d.Ready != c.ready {
				t.Errorf("ready %q, want %q; verdict %q", d.Ready, c.ready, d.Verdict)
			}
			got := map[string]string{}
			for _, sc := range d.Scopes {
				got[sc.Tag] = sc.Ready
			}
			if len(got) != len(c.scopes) {
				t.Errorf("scopes %v, want %v", got, c.scopes)
			}
			for tag, want := range c.scopes {
				if got[tag] != want {
					t.Errorf("scope %s ready %q, want %q (scopes %+v)", tag, got[tag], want, d.Scopes)
				}
			}
			for h, want := range c.subs {
				found := false
				for _, sd := range d.Subdomains {
					if sd.HeaderFrom == h {
						found = true
						if sd.Policy != want {
							t.Errorf("%s under %q, want %q", h, sd.Policy, want)
						}
					}
				}
				if !found {
					t.Errorf("no subdomain %s in %+v", h, d.Subdomains)
				}
			}
			if im := d.WhatIf[1]; im.Legitimate != c.rejectLegit {
				t.Errorf("%s hits %v legitimate, want %v", im.Policy, im.Legitimate, c.rejectLegit)
			}
			if !d.Policy.Testing && d.Policy.Pct == 100 && (d.WhatIf[1].Legitimate == 0) != (d.Ready == LevelReject) && d.Policy.NP == "" {
				t.Errorf("verdict %q disagrees with its what-if %+v", d.Verdict, d.WhatIf[1])
			}
			if d.Scopes[0].InForce.Legitimate != c.inForceLegit {
				t.Errorf("p in force hits %v legitimate, want %v", d.Scopes[0].InForce.Legitimate, c.inForceLegit)
			}
			at := 0
			for _, w := range c.next {
				i := strings.Index(d.Next[at:], w)
				if i < 0 {
					t.Errorf("next %q lacks %q (in order)", d.Next, w)
					break
				}
				at += i + len(w)
			}
			for _, w := range c.verdict {
				if !strings.Contains(d.Verdict, w) {
					t.Errorf("verdict %q lacks %q", d.Verdict, w)
				}
			}
		})
	}
}

// TestASourceIsNamedOnlyOnEvidenceOfItsIPs: Amazon SES's DKIM signature on
// mail that no SPF record let through (a forwarder delivered it) proves SES
// signed it, not that the forwarder's IPs are SES's; with an SPF pass (SES
// sent it, through its own or a custom MAIL FROM) or a known source by IP
// the source is named.
func TestASourceIsNamedOnlyOnEvidenceOfItsIPs(t *testing.T) {
	relayed := SourceRow{HeaderFrom: "example.com", Class: ClassAligned, Messages: 30, Days: 13,
		DKIMPass: []string{"amazonses.com", "example.com"}, TopIPs: []string{"128.32.164.116"}}
	direct := relayed
	direct.SPFPass = []string{"mail.example.com"}
	byIP := relayed
	byIP.KnownSource = "Amazon SES"
	for _, c := range []struct {
		name     string
		row      SourceRow
		sender   string
		signedBy string
	}{
		{"DKIM of SES only: relayed", relayed, "", "Amazon SES"},
		{"DKIM of SES and an SPF pass: sent by SES", direct, "Amazon SES", ""},
		{"known source by IP", byIP, "Amazon SES", ""},
	} {
		s := source(c.row, BuiltinSenders())
		if s.Sender != c.sender || s.SignedBy != c.signedBy {
			t.Errorf("%s: sender %q signed by %q, want %q, %q", c.name, s.Sender, s.SignedBy, c.sender, c.signedBy)
		}
		if name := s.Name(); (c.sender == "") != strings.HasPrefix(name, "relayed Amazon SES mail") {
			t.Errorf("%s: shown as %q", c.name, name)
		}
	}
}

// TestUnverifiedEvidenceSaysWhyAndWhatToDo: the reasons the store gives
// for unverified reports reach the verdict's evidence, each with what to
// do; a demo's unsigned mails say so.
func TestUnverifiedEvidenceSaysWhyAndWhatToDo(t *testing.T) {
	r := ownAligned
	r.PolicyDomain, r.Unverified = "example.com", 100
	ds := EvaluateTrust([]SourceRow{r}, nil, nil, Trust{Unverified: []UnverifiedRow{
		{PolicyDomain: "example.com", Reason: UnverifiedUnsigned, Reports: 4, Messages: 100}}})
	d := ds[0]
	if len(d.UnverifiedWhy) != 1 || d.UnverifiedWhy[0].Do == "" {
		t.Fatalf("unverified why %+v", d.UnverifiedWhy)
	}
	ev := strings.Join(d.Evidence, "\n")
	for _, w := range []string{"100 messages in 4 report(s)", "no DKIM signature", "make demo's are"} {
		if !strings.Contains(ev, w) {
			t.Errorf("evidence lacks %q:\n%s", w, ev)
		}
	}
	for _, reason := range UnverifiedReasons {
		if x := unverifiedTexts[reason]; x[0] == "" || x[1] == "" {
			t.Errorf("reason %q has no explanation", reason)
		}
	}
	if len(unverifiedTexts) != len(UnverifiedReasons) {
		t.Errorf("%d reasons explained, want %d", len(unverifiedTexts), len(UnverifiedReasons))
	}
}

package readiness

import (
	"fmt"
	"sort"
	"strings"
)

// Policy tags of a DMARC record that choose the level applied to a message
// (RFC 9989 §4.7, §4.10.1; RFC 7489 §6.3).
const (
	TagP  = "p"  // the policy domain's own mail; its subdomains' when sp is absent
	TagSP = "sp" // mail from existing subdomains of the policy domain
	TagNP = "np" // mail from non-existent subdomains (RFC 9989); absent: sp, then p
)

// Scope is the mail one published tag governs, with its own verdict: the
// level it supports and the next step for that tag. p is always a scope; sp
// and np only when published (absent, their mail follows sp or p and counts
// in that scope).
//
// A subdomain is under np only if it does not exist in DNS (NXDOMAIN, RFC
// 8020), which reports do not say. A subdomain is taken to exist when a
// DKIM pass or an SPF pass names it or a name under it (its key or SPF
// record is published there); otherwise, when np is published, either tag
// may apply and its mail counts in both scopes (the worst case for each).
type Scope struct {
	Tag         string   `json:"tag"`   // TagP, TagSP or TagNP
	Level       string   `json:"level"` // the published level of the tag
	HeaderFroms []string `json:"header_froms"`
	Messages    uint64   `json:"messages"`
	Aligned     uint64   `json:"aligned"`
	Forwarded   uint64   `json:"forwarded"`
	// Misaligned is the legitimate misaligned mail: what enforcing this tag
	// would hurt.
	Misaligned      uint64 `json:"misaligned"`
	Unauthenticated uint64 `json:"unauthenticated"`
	// AtRisk is Misaligned's share of the scope's legitimate mail (aligned,
	// forwarded and legitimate misaligned).
	AtRisk float64 `json:"at_risk"`
	// InForce is what the published record does to this mail today, with
	// its pct and t=y.
	InForce Impact `json:"in_force"`
	// Ready is the strongest level the evidence supports for the tag at
	// full enforcement (pct=100, no t=y): reject when no legitimate mail
	// fails, quarantine when at most QuarantineThreshold of it would,
	// else none.
	Ready string `json:"ready"`
	// Blocking names the legitimate sources of the scope that fail DMARC.
	Blocking []string `json:"blocking,omitempty"`
	Next     string   `json:"next"`
}

// Name is the scope as a record tag with its level: "sp=none".
func (sc Scope) Name() string { return sc.Tag + "=" + sc.Level }

// tagLevel is the published level of tag under p.
func tagLevel(p Policy, tag string) string {
	switch tag {
	case TagSP:
		return p.SP
	case TagNP:
		return p.NP
	}
	return p.P
}

// governing returns the tags whose level may apply to mail from headerFrom
// under the record of domain: p for the domain itself; for a subdomain sp
// (else p) when it exists or np is absent, and np when np is published and
// the subdomain is not shown to exist (RFC 9989 §4.10.1).
func governing(p Policy, domain, headerFrom string, exists bool) []string {
	if headerFrom == domain {
		return []string{TagP}
	}
	spOrP := TagP
	if p.SP != "" {
		spOrP = TagSP
	}
	if p.NP == "" {
		return []string{spOrP}
	}
	if exists {
		return []string{spOrP}
	}
	return []string{spOrP, TagNP}
}

// applied is the level applied to mail from headerFrom: the level of its
// governing tag, the strictest when it may be either of two.
func applied(p Policy, domain, headerFrom string, exists bool) string {
	lvl := LevelNone
	for _, t := range governing(p, domain, headerFrom, exists) {
		if l := tagLevel(p, t); rank(l) > rank(lvl) {
			lvl = l
		}
	}
	return lvl
}

// rank orders levels: none < quarantine < reject.
func rank(l string) int {
	switch l {
	case LevelQuarantine:
		return 1
	case LevelReject:
		return 2
	}
	return 0
}

var levels = []string{LevelNone, LevelQuarantine, LevelReject}

// existing returns the header_from domains of rows shown to exist: a DKIM
// or SPF pass for the domain or a name under it.
func existing(rows []SourceRow) map[string]bool {
	out := map[string]bool{}
	for _, r := range rows {
		for _, d := range append(append([]string{}, r.DKIMPass...), r.SPFPass...) {
			if d == r.HeaderFrom || strings.HasSuffix(d, "."+r.HeaderFrom) {
				out[r.HeaderFrom] = true
			}
		}
	}
	return out
}

// readyFor is the level legitimate mail supports at full enforcement.
func readyFor(misaligned, legit uint64) (string, float64) {
	atRisk := share(misaligned, legit)
	switch {
	case misaligned == 0:
		return LevelReject, 0
	case atRisk <= QuarantineThreshold:
		return LevelQuarantine, atRisk
	}
	return LevelNone, atRisk
}

// tally counts the sources whose header_from keep selects into a scope.
func tally(sc *Scope, srcs []Source, p Policy, keep func(headerFrom string) bool) {
	for _, s := range srcs {
		if !keep(s.HeaderFrom) {
			continue
		}
		if !containsStr(sc.HeaderFroms, s.HeaderFrom) {
			sc.HeaderFroms = append(sc.HeaderFroms, s.HeaderFrom)
		}
		sc.Messages += s.Messages
		switch bucket(s) {
		case ClassAligned:
			sc.Aligned += s.Messages
			continue
		case ClassForwarded:
			sc.Forwarded += s.Messages
		case ClassMisaligned:
			sc.Misaligned += s.Messages
			sc.Blocking = appendOnce(sc.Blocking, s.Name())
		default:
			sc.Unauthenticated += s.Messages
		}
		addImpact(&sc.InForce, s, sc.Level, p)
	}
	sort.Strings(sc.HeaderFroms)
	sc.Ready, sc.AtRisk = readyFor(sc.Misaligned, sc.Aligned+sc.Forwarded+sc.Misaligned)
	if sc.HeaderFroms == nil {
		sc.HeaderFroms = []string{}
	}
}

// addImpact adds what level (with p's pct and t=y) does to failing source s.
func addImpact(im *Impact, s Source, level string, p Policy) {
	rej, quar := apply(level, p.Pct, p.Testing, float64(s.Messages))
	im.Rejected += rej
	im.Quarantined += quar
	switch bucket(s) {
	case ClassMisaligned:
		im.Legitimate += rej + quar
	case ClassForwarded:
		im.Forwarded += rej + quar
	default:
		im.Unauthenticated += rej + quar
	}
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// scopes builds the scope of each published tag and its verdict.
func scopes(d *Domain, exists map[string]bool) []Scope {
	p := d.Policy
	tags := []string{TagP}
	if p.SP != "" {
		tags = append(tags, TagSP)
	}
	if p.NP != "" {
		tags = append(tags, TagNP)
	}
	var out []Scope
	for _, tag := range tags {
		sc := Scope{Tag: tag, Level: tagLevel(p, tag)}
		sc.InForce.Policy = "in force: " + p.String()
		tally(&sc, d.Sources, p, func(h string) bool {
			return containsStr(governing(p, d.Domain, h, exists[h]), tag)
		})
		out = append(out, sc)
	}
	for i := range out {
		out[i].Next = scopeNext(d, &out[i])
	}
	return out
}

// scopeNext is the next safe step for one tag: one level at a time, staged
// with pct or t=y, never beyond what its mail supports; a level stronger
// than the evidence supports is named with the legitimate mail it hits.
func scopeNext(d *Domain, sc *Scope) string {
	p := d.Policy
	tag, cur := sc.Tag, sc.Level
	fix := "fix " + strings.Join(sc.Blocking, ", ")
	stage := "pct=25 (or t=y where receivers support RFC 9989)"
	effective := rank(cur) // t=y applies one level less (RFC 9989 §4.7)
	if p.Testing && effective > 0 {
		effective--
	}
	switch {
	case sc.Messages == 0:
		return fmt.Sprintf("no mail under %s in the window: nothing to judge", sc.Name())
	case rank(sc.Ready) < effective:
		return fmt.Sprintf("%s already hits %.0f legitimate messages: %s now, or step back to %s=%s", sc.Name(),
			sc.InForce.Legitimate, fix, tag, sc.Ready)
	case rank(sc.Ready) < rank(cur): // t=y holds it at the supported level
		return fmt.Sprintf("keep t=y until %s is fixed: without it %s would hit %d legitimate messages", strings.Join(sc.Blocking, ", "), sc.Name(), sc.Misaligned)
	case p.Testing && cur != LevelNone:
		return "remove t=y once the numbers stay clean"
	case p.Pct < 100 && cur != LevelNone:
		return fmt.Sprintf("raise pct from %d to %d at %s", p.Pct, min(100, 2*max(p.Pct, 25)), sc.Name())
	case rank(sc.Ready) > rank(cur):
		return tag + "=" + levels[rank(cur)+1] + " with " + stage
	case cur == LevelNone:
		return "keep " + sc.Name() + " and " + fix
	case cur == LevelQuarantine:
		return "stay at " + sc.Name() + " until " + strings.Join(sc.Blocking, ", ") + " is fixed, then " + tag + "=reject"
	}
	if tag != TagP {
		return sc.Name() + " is in force"
	}
	for _, st := range d.Strict { // at p=reject, 100%: stricter alignment is what remains
		if st.Lost == 0 {
			return "p=reject is in force; " + st.Change + " would lose no mail"
		}
	}
	return "p=reject is in force; keep relaxed alignment (strict would fail legitimate mail, see above)"
}

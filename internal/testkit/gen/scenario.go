// Package gen generates realistic, deterministic sets of DMARC aggregate
// reports (RFC 7489 Appendix C) as real receivers deliver them: Google's
// top-level application/zip mails, Microsoft's multipart mails with an HTML
// preview and a gzip attachment, Yahoo's and Mail.ru's gzip attachments,
// Amazon SES's application/octet-stream attachment, a few bare .xml.gz and
// .zip files, and reports that Google delivers twice in different containers.
//
// The scenario is one domain that publishes "v=DMARC1; p=none" and sends
// through Amazon SES (MAIL FROM mail.<domain>, DKIM d=<domain>), Google
// Workspace, a misconfigured newsletter service, a forwarder and mailing list,
// and is spoofed from everywhere; a subdomain news.<domain> sends on some days.
// Every record carries what the generator intended (aligned or not, relaxed and
// strict), so tests can compare what an ingester stored with the truth.
//
// The same Options always produce byte-identical files.
package gen

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Options select the generated set. Zero values take defaults.
type Options struct {
	Domain string    // policy domain; default "example.com"
	Days   int       // number of report days; default 14
	Seed   int64     // the same seed gives the same files
	Start  time.Time // first UTC day (truncated to midnight UTC); default 2025-03-03
	Scale  int       // multiplies message counts and record counts; default 1
}

// File is one generated file: a mail (.eml) or a bare report (.xml.gz, .zip).
type File struct {
	Name    string
	Data    []byte
	Reports []ReportTruth
}

// ReportTruth describes one aggregate report in a File.
type ReportTruth struct {
	Reporter     string // org_name as written in the report
	ReportID     string
	PolicyDomain string
	Records      int
	Messages     uint64 // sum of row/count
	// Duplicate is true if this report also appears in an earlier file
	// (Google re-sends some reports, in another container).
	Duplicate bool

	Begin, End time.Time // date_range as written (UTC)
	// PerDomain is keyed by header_from domain.
	PerDomain map[string]DomainTruth
}

// Truth sums unique reports (a duplicate is counted once).
type Truth struct {
	Reports   int
	Records   int
	Messages  uint64
	PerDomain map[string]DomainTruth // keyed by header_from domain
}

// DomainTruth counts messages by what the generator intended for each source,
// not by what a report says: DMARCPassRelaxed is an aligned pass of DKIM or SPF
// under relaxed alignment (the published policy), the others count messages
// with a passing DKIM signature / SPF result whose domain aligns with
// header_from under the named mode (RFC 7489 §3.1).
type DomainTruth struct {
	Messages           uint64
	DMARCPassRelaxed   uint64
	DKIMAlignedStrict  uint64
	SPFAlignedStrict   uint64
	DKIMAlignedRelaxed uint64
	SPFAlignedRelaxed  uint64
}

func (d *DomainTruth) add(o DomainTruth) {
	d.Messages += o.Messages
	d.DMARCPassRelaxed += o.DMARCPassRelaxed
	d.DKIMAlignedStrict += o.DKIMAlignedStrict
	d.SPFAlignedStrict += o.SPFAlignedStrict
	d.DKIMAlignedRelaxed += o.DKIMAlignedRelaxed
	d.SPFAlignedRelaxed += o.SPFAlignedRelaxed
}

// ErrOptions is returned (wrapped) for invalid Options.
var ErrOptions = errors.New("gen: invalid options")

// DefaultStart is the first day when Options.Start is zero (a Monday).
var DefaultStart = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

// maxScale bounds Scale so address pools fit their prefixes.
const maxScale = 1000

func (o Options) normalize() (Options, error) {
	if o.Domain == "" {
		o.Domain = "example.com"
	}
	o.Domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o.Domain)), ".")
	if err := checkDomain(o.Domain); err != nil {
		return o, err
	}
	if o.Days == 0 {
		o.Days = 14
	}
	if o.Days < 0 || o.Days > 3660 {
		return o, fmt.Errorf("%w: days %d: want 1..3660", ErrOptions, o.Days)
	}
	if o.Scale == 0 {
		o.Scale = 1
	}
	if o.Scale < 0 || o.Scale > maxScale {
		return o, fmt.Errorf("%w: scale %d: want 1..%d", ErrOptions, o.Scale, maxScale)
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	o.Start = o.Start.UTC().Truncate(24 * time.Hour)
	return o, nil
}

func checkDomain(d string) error {
	labels := strings.Split(d, ".")
	if len(d) > 200 || len(labels) < 2 {
		return fmt.Errorf("%w: domain %q: want a registered domain such as example.com", ErrOptions, d)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%w: domain %q: bad label %q", ErrOptions, d, l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%w: domain %q: bad character %q", ErrOptions, d, c)
			}
		}
	}
	if ps, _ := publicsuffix.PublicSuffix(d); ps == d {
		return fmt.Errorf("%w: domain %q is a public suffix", ErrOptions, d)
	}
	return nil
}

// Fixed third parties of the scenario.
const (
	espDomain     = "esp-mailer.net"
	espBounce     = "bounces.esp-mailer.net"
	listDomain    = "lists.uni-example.edu"
	sesDKIMDomain = "amazonses.com"
)

// Amazon SES signs every message a second time with d=amazonses.com; these are
// its public us-east-1 selectors.
var sesSelectors = []string{"a66wkfbz3zwxdt2n5p6d7lj2ja7sdwuc", "6gbrjpgwjskckoa6a5zn6fwqkn67xbtw"}

type dkimAuth struct{ domain, selector, result string }

type spfAuth struct{ domain, result string }

type reason struct{ typ, comment string }

// intent is what the generator knows about a message's alignment.
type intent struct{ dkimR, dkimS, spfR, spfS bool }

// variant is one way a source's mail looks to a receiver.
type variant struct {
	id         string
	headerFrom string
	mailFrom   string // RFC5321.MailFrom domain
	dkim       []dkimAuth
	spf        []spfAuth
	reasons    []reason
	intent     intent
}

func (v variant) dmarcPass() bool { return v.intent.dkimR || v.intent.spfR }

// record is one <record> of a report.
type record struct {
	ip         netip.Addr
	count      uint64
	envelopeTo string
	variant
}

// report is one aggregate report before it is written.
type report struct {
	rep          *reporter
	id           string
	begin, end   time.Time
	sent         time.Time
	records      []record
	bare         bool // delivered as a bare file, not a mail
	dupOf        *report
	dupContainer string // "gzip-mail" or "bare-zip"
}

func (r *report) truth(dup bool) ReportTruth {
	t := ReportTruth{
		Reporter:     r.rep.org,
		ReportID:     r.id,
		PolicyDomain: r.rep.g.domain,
		Records:      len(r.records),
		Duplicate:    dup,
		Begin:        r.begin,
		End:          r.end,
		PerDomain:    map[string]DomainTruth{},
	}
	for _, rec := range r.records {
		t.Messages += rec.count
		d := t.PerDomain[rec.headerFrom]
		c := rec.count
		d.Messages += c
		if rec.dmarcPass() {
			d.DMARCPassRelaxed += c
		}
		if rec.intent.dkimS {
			d.DKIMAlignedStrict += c
		}
		if rec.intent.spfS {
			d.SPFAlignedStrict += c
		}
		if rec.intent.dkimR {
			d.DKIMAlignedRelaxed += c
		}
		if rec.intent.spfR {
			d.SPFAlignedRelaxed += c
		}
		t.PerDomain[rec.headerFrom] = d
	}
	return t
}

type reporterKind int

const (
	kindGoogle reporterKind = iota
	kindOutlook
	kindEnterprise
	kindYahoo
	kindMailRu
	kindSES
)

// reporter is a receiver that sends aggregate reports.
type reporter struct {
	g      *generator
	kind   reporterKind
	org    string  // org_name
	share  float64 // fraction of all mail it receives
	active float64 // probability it sends a report on a given day
	// sees multiplies a source's share for this receiver (by source name).
	sees map[string]float64
	ids  map[string]bool
}

// source is a sender of mail with the domain in From.
type source struct {
	name   string
	pool   []netip.Addr // nil: a fresh address per record (spoofers)
	maxIPs int          // addresses per report at Scale 1
	// volume is messages per day at Scale 1 over all receivers.
	volume func(day time.Time, burst float64) float64
	pick   func(r *rand.Rand) variant
	split  bool // an address's mail may show up as several variants
}

type generator struct {
	opt      Options
	domain   string
	r        *rand.Rand
	sesSel   []string // the domain's SES Easy DKIM selectors
	sources  []*source
	reporter []*reporter
}

// Generate produces the files of a report set in delivery order. The result
// depends only on opt.
func Generate(opt Options) ([]File, error) {
	opt, err := opt.normalize()
	if err != nil {
		return nil, err
	}
	g := &generator{
		opt:    opt,
		domain: opt.Domain,
		r:      rand.New(rand.NewPCG(uint64(opt.Seed), 0x646d61726364)),
	}
	g.setup()
	var reports []*report
	for day := range opt.Days {
		reports = append(reports, g.day(opt.Start.AddDate(0, 0, day), day)...)
	}
	return g.files(reports)
}

func (g *generator) setup() {
	r := g.r
	for range 3 {
		g.sesSel = append(g.sesSel, randString(r, "abcdefghijklmnopqrstuvwxyz234567", 32))
	}
	s := g.opt.Scale
	d := g.domain
	sesPool := append(randAddrs(r, netip.MustParsePrefix("54.240.0.0/18"), 5*s), randAddrs(r, netip.MustParsePrefix("23.251.224.0/19"), 5*s)...)
	googlePool := randAddrs(r, netip.MustParsePrefix("209.85.128.0/17"), 4*s)
	googlePool = append(googlePool, randAddrs(r, netip.MustParsePrefix("2607:f8b0:4864:20::/64"), s)...)
	espPool := randAddrs(r, netip.MustParsePrefix("198.2.128.0/18"), 3*s)
	fwdPool := randAddrs(r, netip.MustParsePrefix("128.32.0.0/16"), 2*s)

	sesDKIM := func(r *rand.Rand, domain, result string) []dkimAuth {
		return []dkimAuth{
			{domain, g.sesSel[r.IntN(len(g.sesSel))], result},
			{sesDKIMDomain, sesSelectors[r.IntN(len(sesSelectors))], "pass"},
		}
	}
	weekday := func(day time.Time) bool { return day.Weekday() != time.Saturday && day.Weekday() != time.Sunday }

	g.sources = []*source{
		{
			// Amazon SES with a MAIL FROM subdomain: SPF aligns only relaxed,
			// DKIM d=<domain> aligns strict.
			name: "ses", pool: sesPool, maxIPs: 6,
			volume: func(day time.Time, _ float64) float64 {
				if weekday(day) {
					return 160
				}
				return 70
			},
			pick: func(r *rand.Rand) variant {
				return variant{id: "ses", headerFrom: d, mailFrom: "mail." + d,
					dkim: sesDKIM(r, d, "pass"), spf: []spfAuth{{"mail." + d, "pass"}},
					intent: intent{dkimR: true, dkimS: true, spfR: true}}
			},
		},
		{
			// Newsletter from news.<domain> through SES: SES signs with the
			// parent identity, so neither DKIM nor SPF aligns strictly.
			name: "news", pool: sesPool, maxIPs: 4,
			volume: func(day time.Time, _ float64) float64 {
				if day.Weekday() == time.Wednesday {
					return 150
				}
				return 0
			},
			pick: func(r *rand.Rand) variant {
				return variant{id: "news", headerFrom: "news." + d, mailFrom: "mail." + d,
					dkim: sesDKIM(r, d, "pass"), spf: []spfAuth{{"mail." + d, "pass"}},
					intent: intent{dkimR: true, spfR: true}}
			},
		},
		{
			name: "workspace", pool: googlePool, maxIPs: 4,
			volume: func(day time.Time, _ float64) float64 {
				if weekday(day) {
					return 45
				}
				return 8
			},
			pick: func(r *rand.Rand) variant {
				return variant{id: "workspace", headerFrom: d, mailFrom: d,
					dkim: []dkimAuth{{d, "google", "pass"}}, spf: []spfAuth{{d, "pass"}},
					intent: intent{true, true, true, true}}
			},
		},
		{
			// A newsletter service set up without custom DKIM or return path:
			// both pass, neither aligns, DMARC fails.
			name: "esp", pool: espPool, maxIPs: 3,
			volume: func(day time.Time, _ float64) float64 {
				if day.Weekday() == time.Tuesday || day.Weekday() == time.Friday {
					return 60
				}
				return 3
			},
			pick: func(r *rand.Rand) variant {
				return variant{id: "esp", headerFrom: d, mailFrom: espBounce,
					dkim: []dkimAuth{{espDomain, "em1", "pass"}}, spf: []spfAuth{{espBounce, "pass"}}}
			},
		},
		{
			// A university forwarder and mailing list: SPF never aligns,
			// DKIM survives plain forwarding but not list footers.
			name: "forwarder", pool: fwdPool, maxIPs: 2, split: true,
			volume: func(time.Time, float64) float64 { return 6 },
			pick: func(r *rand.Rand) variant {
				switch x := r.Float64(); {
				case x < 0.5:
					return variant{id: "fwd-intact", headerFrom: d, mailFrom: "mail." + d,
						dkim: sesDKIM(r, d, "pass"), spf: []spfAuth{{"mail." + d, "softfail"}},
						intent: intent{dkimR: true, dkimS: true}}
				case x < 0.75:
					return variant{id: "fwd-list", headerFrom: d, mailFrom: listDomain,
						dkim:    []dkimAuth{{d, g.sesSel[0], "fail"}, {listDomain, "list", "pass"}},
						spf:     []spfAuth{{listDomain, "pass"}},
						reasons: []reason{{"mailing_list", ""}}}
				default:
					return variant{id: "fwd-broken", headerFrom: d, mailFrom: "mail." + d,
						dkim:    []dkimAuth{{d, g.sesSel[0], "fail"}},
						spf:     []spfAuth{{"mail." + d, "fail"}},
						reasons: []reason{{"forwarded", ""}}}
				}
			},
		},
		{
			name: "spoof", maxIPs: 40,
			volume: func(_ time.Time, burst float64) float64 { return 4 + burst },
			pick:   func(r *rand.Rand) variant { return spoofVariant(r, d) },
		},
	}
	all := map[string]float64{"ses": 1, "news": 1, "workspace": 1, "esp": 1, "forwarder": 1, "spoof": 1}
	only := func(kv ...any) map[string]float64 {
		m := map[string]float64{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].(float64)
		}
		return m
	}
	g.reporter = []*reporter{
		{kind: kindGoogle, org: "google.com", share: 0.45, active: 1, sees: all},
		{kind: kindOutlook, org: "Outlook.com", share: 0.18, active: 0.9, sees: all},
		{kind: kindEnterprise, org: "Enterprise Outlook", share: 0.12, active: 0.5,
			sees: only("ses", 1.0, "workspace", 1.5, "esp", 0.5, "spoof", 0.5)},
		{kind: kindYahoo, org: "Yahoo", share: 0.12, active: 0.6,
			sees: only("ses", 1.0, "news", 1.3, "workspace", 0.3, "esp", 1.2, "spoof", 1.0)},
		{kind: kindMailRu, org: "Mail.Ru", share: 0.04, active: 0.3,
			sees: only("ses", 0.5, "news", 1.0, "spoof", 3.0)},
		{kind: kindSES, org: "AMAZON-SES", share: 0.04, active: 0.25,
			sees: only("ses", 1.0, "workspace", 1.0, "spoof", 1.0)},
	}
	for _, rp := range g.reporter {
		rp.g = g
		rp.ids = map[string]bool{}
	}
}

// spoofVariant is mail from someone else with the domain in From.
func spoofVariant(r *rand.Rand, d string) variant {
	v := variant{id: "spoof", headerFrom: d}
	junk := randString(r, "abcdefghijklmnopqrstuvwxyz", 5+r.IntN(6)) + []string{".ru", ".top", ".xyz", ".com", ".cn", ".info"}[r.IntN(6)]
	switch x := r.Float64(); {
	case x < 0.5:
		v.mailFrom = d
		v.spf = []spfAuth{{d, []string{"fail", "softfail"}[r.IntN(2)]}}
	case x < 0.8:
		v.mailFrom = junk
		v.spf = []spfAuth{{junk, []string{"none", "neutral", "pass"}[r.IntN(3)]}}
	default:
		v.mailFrom = d
		v.spf = []spfAuth{{d, "softfail"}}
		v.dkim = []dkimAuth{{d, "default", "fail"}}
	}
	if r.Float64() < 0.15 {
		v.dkim = append(v.dkim, dkimAuth{junk, "mail", "pass"})
	}
	return v
}

// day produces the reports covering one UTC day.
func (g *generator) day(day time.Time, index int) []*report {
	r := g.r
	burst := 0.0
	if r.Float64() < 0.2 {
		burst = 20 + 40*r.Float64()
	}
	var out []*report
	for i, rp := range g.reporter {
		// Every reporter shows up at least once in a set of ≥ 6 days.
		if r.Float64() >= rp.active && index != i {
			continue
		}
		rep := &report{rep: rp, begin: day}
		for _, src := range g.sources {
			mult, ok := rp.sees[src.name]
			if !ok {
				continue
			}
			base := src.volume(day, burst) * rp.share * mult * (0.7 + 0.6*r.Float64())
			rep.records = append(rep.records, g.records(rp, src, base)...)
		}
		if len(rep.records) == 0 {
			continue
		}
		r.Shuffle(len(rep.records), func(i, j int) { rep.records[i], rep.records[j] = rep.records[j], rep.records[i] })
		g.finish(rep)
		out = append(out, rep)
	}
	return out
}

// records makes the records of one source in one report: base messages at
// Scale 1, spread over a few addresses.
func (g *generator) records(rp *reporter, src *source, base float64) []record {
	r := g.r
	scale := g.opt.Scale
	total := int(math.Floor(base*float64(scale) + r.Float64()))
	if total <= 0 {
		return nil
	}
	var ips []netip.Addr
	if src.pool == nil {
		// A spoofer sends one to three messages.
		n := min(total, max(1, int(math.Ceil(base/2)))*scale)
		for range n {
			ips = append(ips, randGlobalAddr(r))
		}
	} else {
		n := min(max(1, int(math.Ceil(base/30))), src.maxIPs) * scale
		n = min(n, len(src.pool), total)
		for _, k := range r.Perm(len(src.pool))[:n] {
			ips = append(ips, src.pool[k])
		}
	}
	counts := splitCount(r, uint64(total), len(ips))
	var out []record
	for i, ip := range ips {
		parts := []uint64{counts[i]}
		if src.split && counts[i] >= 2 && r.IntN(2) == 0 {
			parts = splitCount(r, counts[i], 2)
		}
		var got []record
		for _, c := range parts {
			v := src.pick(r)
			if j := slices.IndexFunc(got, func(x record) bool { return x.id == v.id && v.id != "spoof" }); j >= 0 {
				got[j].count += c
				continue
			}
			got = append(got, record{ip: ip, count: c, variant: v, envelopeTo: rp.envelopeTo(r)})
		}
		out = append(out, got...)
	}
	return out
}

// envelopeTo is the recipient domain Outlook reports (RFC 7489 App. C
// identifiers/envelope_to); others leave it out.
func (rp *reporter) envelopeTo(r *rand.Rand) string {
	switch rp.kind {
	case kindOutlook:
		return []string{"outlook.com", "hotmail.com", "live.com", "hotmail.co.uk", "outlook.de", "msn.com"}[r.IntN(6)]
	case kindEnterprise:
		return []string{"contoso.com", "fabrikam.com", "northwindtraders.com", "adatum.com", "tailspintoys.com"}[r.IntN(5)]
	}
	return ""
}

// finish sets identity, end and sending time the way each receiver does.
func (g *generator) finish(rep *report) {
	r := g.r
	rp := rep.rep
	hours := func(lo, hi float64) time.Duration {
		return time.Duration((lo + (hi-lo)*r.Float64()) * float64(time.Hour)).Truncate(time.Second)
	}
	day := 24 * time.Hour
	for {
		switch rp.kind {
		case kindGoogle: // end inclusive: begin+86399
			rep.end = rep.begin.Add(day - time.Second)
			rep.sent = rep.begin.Add(day + hours(2, 11))
			rep.id = fmt.Sprint(r.Uint64()>>1 | 1<<62)
		case kindOutlook, kindEnterprise: // end exclusive: begin+86400
			rep.end = rep.begin.Add(day)
			rep.sent = rep.end.Add(hours(20, 32))
			rep.id = randString(r, "0123456789abcdef", 32)
		case kindYahoo:
			rep.end = rep.begin.Add(day - time.Second)
			gen := rep.end.Add(hours(1, 3))
			rep.sent = gen.Add(hours(2, 6))
			rep.id = fmt.Sprintf("%d.%06d", gen.Unix(), r.IntN(1000000))
		case kindMailRu:
			rep.end = rep.begin.Add(day)
			rep.sent = rep.end.Add(hours(7, 10))
			rep.id = fmt.Sprintf("%019d%d", r.Uint64()%1e19, rep.begin.Unix())
		case kindSES:
			rep.end = rep.begin.Add(day)
			rep.sent = rep.end.Add(hours(9, 11))
			rep.id = uuid(r)
		}
		if !rp.ids[rep.id] {
			rp.ids[rep.id] = true
			break
		}
	}
	rep.bare = r.Float64() < 0.06
}

// files turns reports into files, adds Google's second deliveries, and sorts
// everything by delivery time.
func (g *generator) files(reports []*report) ([]File, error) {
	r := g.r
	all := slices.Clone(reports)
	dups := 0
	for _, rep := range reports {
		if rep.rep.kind != kindGoogle || rep.bare {
			continue
		}
		// Google delivers some reports twice, the second time in another
		// container; make sure a set of a few days has at least one.
		if r.Float64() < 0.15 || (dups == 0 && !rep.begin.Before(g.opt.Start.AddDate(0, 0, 2))) {
			d := *rep
			d.dupOf = rep
			d.sent = rep.sent.Add(time.Duration(1+r.IntN(20)) * time.Hour)
			d.dupContainer = []string{"gzip-mail", "bare-zip"}[dups%2]
			all = append(all, &d)
			dups++
		}
	}
	slices.SortStableFunc(all, func(a, b *report) int { return a.sent.Compare(b.sent) })
	var out []File
	for i, rep := range all {
		f, err := g.render(rep, i+1)
		if err != nil {
			return nil, err
		}
		f.Reports = []ReportTruth{rep.truth(rep.dupOf != nil)}
		out = append(out, f)
	}
	return out, nil
}

// Summarize counts the unique reports of a set: a report that appears in
// several files (same reporter, report ID and policy domain) counts once.
func Summarize(files []File) Truth {
	t := Truth{PerDomain: map[string]DomainTruth{}}
	seen := map[[3]string]bool{}
	for _, f := range files {
		for _, rt := range f.Reports {
			k := [3]string{rt.Reporter, rt.ReportID, rt.PolicyDomain}
			if seen[k] {
				continue
			}
			seen[k] = true
			t.Reports++
			t.Records += rt.Records
			t.Messages += rt.Messages
			for dom, dt := range rt.PerDomain {
				x := t.PerDomain[dom]
				x.add(dt)
				t.PerDomain[dom] = x
			}
		}
	}
	return t
}

// WriteDir writes every file into dir (created if missing) and a MANIFEST.tsv
// with one line per file: name, reports, records, messages, duplicate
// ("true" if a report in the file appeared in an earlier file). Records and
// messages count every report in the file, duplicates included.
func WriteDir(dir string, files []File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var m bytes.Buffer
	m.WriteString("name\treports\trecords\tmessages\tduplicate\n")
	for _, f := range files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name == "MANIFEST.tsv" || strings.ContainsAny(f.Name, "\t\n") {
			return fmt.Errorf("gen: write %s: bad file name %q", dir, f.Name)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			return err
		}
		records, messages, dup := 0, uint64(0), false
		for _, rt := range f.Reports {
			records += rt.Records
			messages += rt.Messages
			dup = dup || rt.Duplicate
		}
		fmt.Fprintf(&m, "%s\t%d\t%d\t%d\t%t\n", f.Name, len(f.Reports), records, messages, dup)
	}
	return os.WriteFile(filepath.Join(dir, "MANIFEST.tsv"), m.Bytes(), 0o644)
}

// splitCount spreads total over n parts, each at least 1 (n ≤ total), with a
// skew like real traffic.
func splitCount(r *rand.Rand, total uint64, n int) []uint64 {
	out := make([]uint64, n)
	if n == 0 {
		return out
	}
	w := make([]float64, n)
	sum := 0.0
	for i := range w {
		w[i] = 0.2 + r.ExpFloat64()
		sum += w[i]
	}
	rest := total - uint64(n)
	var given uint64
	for i := range out {
		x := uint64(float64(rest) * w[i] / sum)
		out[i] = 1 + x
		given += x
	}
	out[r.IntN(n)] += rest - given
	return out
}

func randString(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func uuid(r *rand.Rand) string {
	h := randString(r, "0123456789abcdef", 32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-" + string("89ab"[r.IntN(4)]) + h[17:20] + "-" + h[20:]
}

// randAddrs picks n distinct host addresses in p (n far below its size).
func randAddrs(r *rand.Rand, p netip.Prefix, n int) []netip.Addr {
	base := p.Masked().Addr().AsSlice()
	bits := len(base)*8 - p.Bits()
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for len(out) < n {
		a := slices.Clone(base)
		// Randomise up to 24 host bits from the right; enough for any pool.
		for i := 0; i < min(bits, 24); i++ {
			if r.IntN(2) == 1 {
				a[len(a)-1-i/8] |= 1 << (i % 8)
			}
		}
		ip, _ := netip.AddrFromSlice(a)
		last := a[len(a)-1]
		if last == 0 || last == 255 || seen[ip] {
			continue
		}
		seen[ip] = true
		out = append(out, ip)
	}
	return out
}

var notGlobal = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("224.0.0.0/3"),
	// the legitimate senders' ranges
	netip.MustParsePrefix("54.240.0.0/18"), netip.MustParsePrefix("23.251.224.0/19"),
	netip.MustParsePrefix("209.85.128.0/17"), netip.MustParsePrefix("198.2.128.0/18"),
	netip.MustParsePrefix("128.32.0.0/16"),
}

// randGlobalAddr is a spoofer's address anywhere in the world: public IPv4,
// sometimes IPv6 in 2a00::/12 or 2400::/12.
func randGlobalAddr(r *rand.Rand) netip.Addr {
	if r.Float64() < 0.05 {
		p := []string{"2a00::/12", "2400::/12"}[r.IntN(2)]
		return randAddrs(r, netip.MustParsePrefix(p), 1)[0]
	}
	for {
		v := r.Uint32()
		ip := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		ok := byte(v) != 0 && byte(v) != 255
		for _, p := range notGlobal {
			if p.Contains(ip) {
				ok = false
				break
			}
		}
		if ok {
			return ip
		}
	}
}

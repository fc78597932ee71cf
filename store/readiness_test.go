package store

import (
	"context"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/align"
)

// authRow builds an enriched row the way ingest does: alignment recomputed
// from the auth results under the given modes. dkim is "d/selector/result",
// spf is "domain/result".
func authRow(ip string, count uint64, from string, dkim, spf, reasons []string, adkim, aspf align.Mode) *enrich.Record {
	rec := &aggregate.Record{SourceIP: ip, Count: count, Disposition: "none", HeaderFrom: from}
	for _, d := range dkim {
		f := strings.Split(d, "/")
		rec.DKIM = append(rec.DKIM, aggregate.DKIMResult{Domain: f[0], Selector: f[1], Result: f[2]})
	}
	for _, s := range spf {
		f := strings.Split(s, "/")
		rec.SPF = append(rec.SPF, aggregate.SPFResult{Domain: f[0], Scope: "mfrom", Result: f[1]})
	}
	for _, r := range reasons {
		rec.Reasons = append(rec.Reasons, aggregate.Reason{Type: r})
	}
	return enrich.AggregateWith(adkim, aspf).Record(rec)
}

// TestReadinessClassifiesEachKindOfSource pins the classification rules of
// ReadinessClass on one record of each kind, and the strict what-if columns.
func TestReadinessClassifiesEachKindOfSource(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	r, rl := align.Relaxed, align.Relaxed
	const sel = "abcdefgh"
	rows := []*enrich.Record{
		// SES with a mail. MAIL FROM: aligned; strict SPF would not align.
		authRow("54.240.0.1", 100, "example.com", []string{"example.com/" + sel + "/pass", "amazonses.com/x/pass"}, []string{"mail.example.com/pass"}, nil, r, rl),
		// SES for news.example.com signing with the parent: aligned relaxed only.
		authRow("54.240.0.2", 40, "news.example.com", []string{"example.com/" + sel + "/pass", "amazonses.com/x/pass"}, []string{"mail.example.com/pass"}, nil, r, rl),
		// An ESP without custom DKIM or return path.
		authRow("198.2.128.1", 30, "example.com", []string{"esp-mailer.net/em1/pass"}, []string{"bounces.esp-mailer.net/pass"}, nil, r, rl),
		// SES without a custom MAIL FROM and without Easy DKIM for the domain.
		authRow("54.240.0.3", 20, "example.com", []string{"amazonses.com/x/pass"}, []string{"amazonses.com/pass"}, nil, r, rl),
		// Forwarded: the receiver says so.
		authRow("128.32.0.1", 5, "example.com", []string{"example.com/" + sel + "/fail"}, []string{"mail.example.com/fail"}, []string{"forwarded"}, r, rl),
		// Forwarded: a known selector of the domain broken in transit, the
		// list's own identities passing.
		authRow("128.32.0.2", 4, "example.com", []string{"example.com/" + sel + "/fail", "lists.example.edu/list/pass"}, []string{"lists.example.edu/pass"}, nil, r, rl),
		// A spoofer with a made-up selector: not forwarding.
		authRow("203.0.113.9", 3, "example.com", []string{"example.com/default/fail"}, []string{"example.com/softfail"}, nil, r, rl),
		// A spoofer without any pass.
		authRow("203.0.113.10", 2, "example.com", nil, []string{"spoof.example/none"}, nil, r, rl),
	}
	want := map[string]string{
		"54.240.0.1": readiness.ClassAligned, "54.240.0.2": readiness.ClassAligned, "198.2.128.1": readiness.ClassMisaligned,
		"54.240.0.3": readiness.ClassMisaligned, "128.32.0.1": readiness.ClassForwarded, "128.32.0.2": readiness.ClassForwarded,
		"203.0.113.9": readiness.ClassUnauthenticated, "203.0.113.10": readiness.ClassUnauthenticated,
	}
	h := header("google.com", "r1", "example.com", jan2024)
	h.SP = aggregate.Opt{Value: "none", Set: true}
	write(t, s, h, rowsOf(rows...))
	// A report of the same domain outside the window must not count.
	write(t, s, header("google.com", "r0", "example.com", jan2024.AddDate(0, -2, 0)), rowsOf(
		authRow("192.0.2.1", 1000, "example.com", nil, nil, nil, r, rl)))

	since, until := jan2024.AddDate(0, 0, -1), jan2024.AddDate(0, 0, 1)
	ips, err := readiness.ReadIPs(ctx, s, since, until)
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) != len(want) {
		t.Errorf("got %d IP rows, want %d: %+v", len(ips), len(want), ips)
	}
	for _, ip := range ips {
		if want[ip.SourceIP] != ip.Class {
			t.Errorf("%s (%s): class %q, want %q", ip.SourceIP, ip.HeaderFrom, ip.Class, want[ip.SourceIP])
		}
	}

	srcs, err := readiness.ReadSources(ctx, s, since, until, readiness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ses, news *readiness.SourceRow
	for i := range srcs {
		x := &srcs[i]
		if x.Class == readiness.ClassAligned && x.HeaderFrom == "example.com" {
			ses = x
		}
		if x.HeaderFrom == "news.example.com" {
			news = x
		}
	}
	if ses == nil || news == nil {
		t.Fatalf("aligned SES sources missing: %+v", srcs)
	}
	if strings.Join(ses.DKIMPass, ",") != "amazonses.com,example.com" || strings.Join(ses.SPFPass, ",") != "mail.example.com" ||
		strings.Join(ses.Selectors, ",") != "amazonses.com/x,example.com/"+sel {
		t.Errorf("SES identities %v / %v selectors %v", ses.DKIMPass, ses.SPFPass, ses.Selectors)
	}
	// aspf=s loses nothing here (DKIM strict carries it); adkim=s aspf=s
	// neither. For news.example.com, adkim=s fails DKIM (d=example.com) and
	// only aspf=r SPF saves it; both strict fail all of it.
	if ses.PassRR != 100 || ses.PassSR != 100 || ses.PassRS != 100 || ses.PassSS != 100 {
		t.Errorf("SES pass columns %d %d %d %d, want 100 each", ses.PassRR, ses.PassSR, ses.PassRS, ses.PassSS)
	}
	if news.PassRR != 40 || news.PassSR != 40 || news.PassRS != 40 || news.PassSS != 0 {
		t.Errorf("news pass columns rr %d sr %d rs %d ss %d, want 40 40 40 0", news.PassRR, news.PassSR, news.PassRS, news.PassSS)
	}

	pols, err := readiness.ReadPolicies(ctx, s, since, until)
	if err != nil {
		t.Fatal(err)
	}
	if len(pols) != 1 || pols[0].P == nil || *pols[0].P != "none" || pols[0].SP == nil || *pols[0].SP != "none" || pols[0].NP != nil {
		t.Errorf("policies %+v", pols)
	}
}

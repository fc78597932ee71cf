package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/product/readiness"
	"github.com/dmarcd/dmarcd/internal/testkit/dnstest"
	"github.com/dmarcd/dmarcd/internal/testkit/signedmail"
)

// TestPipelineStoresAuthResult ingests report mails and a bare file through
// the pipeline into ClickHouse: each report row carries its mail's result.
func TestPipelineStoresAuthResult(t *testing.T) {
	srv := dnstest.Start(t,
		signedmail.KeyRecord(t, "sel1._domainkey.reporter.example."),
		signedmail.TXTRecord("_dmarc.reporter.example.", "v=DMARC1; p=reject"),
		signedmail.KeyRecord(t, "sel1._domainkey.other.example."))
	st, conn := openStore(t)
	p := ingest.New(st, ingest.Options{Source: "file", Verifier: signedmail.Verifier(t, srv)})
	ctx := context.Background()
	good := signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "good", 5)), "reporter.example", "sel1")
	forged := bytes.Replace(signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "forged", 7)), "reporter.example", "sel1"),
		[]byte("<count>7</count>"), []byte("<count>8</count>"), 1)
	// Signed and aligned, but the report names another reporter.
	other := signedmail.Sign(t, signedmail.ReportMail("dmarc@other.example", signedmail.ReportXML("bigmailer.example", "dmarc@bigmailer.example", "other", 3)), "other.example", "sel1")
	for _, c := range []struct {
		name, data, id, result, detail string
	}{
		{"good.eml", string(good), "good", enrich.AuthPass, "dkim=pass d=reporter.example s=sel1"},
		{"forged.eml", string(forged), "forged", enrich.AuthFail, "body hash did not verify"},
		{"other.eml", string(other), "other", enrich.AuthUnverified, "report email domain bigmailer.example is not of the From domain other.example"},
		{"bare.xml", signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "bare", 2), "bare", enrich.AuthUnverified, "bare file"},
		{"mbox.eml", "From MAILER-DAEMON Mon Jan  6 10:00:00 2025\n" + string(signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example",
			signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "mbox", 2)), "reporter.example", "sel1")), "mbox", enrich.AuthPass, "dkim=pass"},
	} {
		o := p.Process(ctx, c.name, strings.NewReader(c.data))
		if o.Status != ingest.Stored || o.Auth != c.result || !strings.Contains(o.AuthDetail, c.detail) {
			t.Errorf("%s: status %s auth %s %q, want stored, %s with %q (%s)", c.name, o.Status, o.Auth, o.AuthDetail, c.result, c.detail, o.Reason)
		}
		var got, detail string
		row := conn.QueryRow(ctx, "SELECT auth_result, auth_detail FROM aggregate_reports WHERE report_id = ?", c.id)
		if err := row.Scan(&got, &detail); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.result || detail != o.AuthDetail {
			t.Errorf("%s: stored %s %q, want %s %q", c.name, got, detail, c.result, o.AuthDetail)
		}
	}
	// A mail without a report: nothing stored, no auth, nothing left running.
	if o := p.Process(ctx, "hello.eml", bytes.NewReader(signedmail.Sign(t, []byte("From: dmarc@reporter.example\r\nSubject: hi\r\n\r\nhello\r\n"), "reporter.example", "sel1"))); o.Status != ingest.Invalid || o.Auth != "" {
		t.Errorf("mail without a report: %+v", o)
	}
	// Without a verifier everything is unverified.
	o := ingest.New(st, ingest.Options{Source: "file"}).Process(ctx, "good2.eml",
		bytes.NewReader(signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "good2", 1)), "reporter.example", "sel1")))
	if o.Status != ingest.Stored || o.Auth != enrich.AuthUnverified {
		t.Errorf("no verifier: %+v", o)
	}
}

// TestForgedReportIsLeftOutOfReadiness: a forged report among genuine ones
// (a big spoofed "aligned" source, to make the domain look ready) is left
// out of the verdict, and the verdict says so; asked for, it is counted.
func TestForgedReportIsLeftOutOfReadiness(t *testing.T) {
	srv := dnstest.Start(t,
		signedmail.KeyRecord(t, "sel1._domainkey.reporter.example."),
		signedmail.TXTRecord("_dmarc.reporter.example.", "v=DMARC1; p=reject"))
	st, _ := openStore(t)
	p := ingest.New(st, ingest.Options{Source: "file", Verifier: signedmail.Verifier(t, srv)})
	ctx := context.Background()
	for i := range 3 {
		xml := signedmail.ReportXML("reporter.example", "dmarc@reporter.example", fmt.Sprintf("genuine-%d", i), 10)
		msg := signedmail.Sign(t, signedmail.ReportMail("dmarc@reporter.example", xml), "reporter.example", "sel1")
		if o := p.Process(ctx, "genuine.eml", bytes.NewReader(msg)); o.Auth != enrich.AuthPass {
			t.Fatalf("genuine report: %+v", o)
		}
	}
	// The forger claims the same reporter, unsigned: the reporter's p=reject
	// makes it fail.
	forged := strings.Replace(signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "forged", 1000), "192.0.2.1", "203.0.113.66", 1)
	if o := p.Process(ctx, "forged.eml", bytes.NewReader(signedmail.ReportMail("dmarc@reporter.example", forged))); o.Status != ingest.Stored || o.Auth != enrich.AuthFail {
		t.Fatalf("forged report: %+v", o)
	}
	// And one from a bare file: unverified.
	if o := p.Process(ctx, "bare.xml", strings.NewReader(signedmail.ReportXML("reporter.example", "dmarc@reporter.example", "bare", 30))); o.Auth != enrich.AuthUnverified {
		t.Fatalf("bare report: %+v", o)
	}

	since, until := time.Now().AddDate(0, 0, -10), time.Now().Add(time.Hour)
	verdict := func(include bool) readiness.Domain {
		t.Helper()
		o := readiness.Options{IncludeFailedAuth: include}
		rows, err := readiness.ReadSources(ctx, st, since, until, o)
		if err != nil {
			t.Fatal(err)
		}
		failed, err := readiness.ReadFailedAuth(ctx, st, since, until)
		if err != nil {
			t.Fatal(err)
		}
		pols, err := readiness.ReadPolicies(ctx, st, since, until)
		if err != nil {
			t.Fatal(err)
		}
		ds := readiness.EvaluateTrust(rows, pols, nil, readiness.Trust{FailedAuth: failed, Included: include})
		if len(ds) != 1 {
			t.Fatalf("%d domains: %+v", len(ds), ds)
		}
		return ds[0]
	}
	d := verdict(false)
	if d.Messages != 60 || d.Unverified != 30 || d.UnverifiedShare != 0.5 {
		t.Errorf("messages %d, unverified %d (%v): want 60 (3×10 genuine + 30 bare), 30, 0.5", d.Messages, d.Unverified, d.UnverifiedShare)
	}
	if f := d.FailedAuth; f.Reports != 1 || f.Messages != 1000 || f.Included || len(f.Reporters) != 1 || f.Reporters[0] != "reporter.example" {
		t.Errorf("failed_auth %+v: want the forged report's 1000 messages, left out", f)
	}
	for _, s := range d.Sources {
		if strings.Contains(strings.Join(s.TopIPs, ","), "203.0.113.66") {
			t.Errorf("the forged source is in the verdict: %+v", s)
		}
	}
	ev := strings.Join(d.Evidence, "\n")
	for _, want := range []string{"left out: 1000 messages from 1 report(s) (claiming to be from reporter.example) whose mail failed authentication",
		"50.0% of the messages (30) come from reports whose mail could not be authenticated"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	d = verdict(true)
	if d.Messages != 1060 || !d.FailedAuth.Included || !strings.Contains(strings.Join(d.Evidence, "\n"), "included on request") {
		t.Errorf("--include-failed-auth: %d messages, failed_auth %+v, evidence %q", d.Messages, d.FailedAuth, d.Evidence)
	}
}

// Package storetest writes aggregate reports into a fresh store on the
// test ClickHouse, for the tests of the readers outside store
// (internal/product/*): the reports and records store's own tests build
// (store/store_test.go, store/readiness_test.go), for other packages.
package storetest

import (
	"context"
	"fmt"
	"github.com/dmarcd/dmarcd/enrich"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/align"
	"github.com/dmarcd/dmarcd/store"
)

// Jan2024 is the begin of the reports of most reader tests.
var Jan2024 = time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)

// Meta is the input of the reports Write stores.
var Meta = store.InputMeta{Source: "file", InputName: "test.xml", InputSHA256: strings.Repeat("ab", 32)}

// Open opens a store in a fresh database of the test server, closed when
// the test ends.
func Open(t testing.TB) *store.Store {
	t.Helper()
	dsn := testenv.ClickHouse(t)
	s, err := store.Open(context.Background(), dsn, store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("Open(%s): %v", dsn, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Header is the header of a report of org about domain for the day from
// begin, with p=none and relaxed alignment.
func Header(org, id, domain string, begin time.Time) *aggregate.Header {
	return &aggregate.Header{
		Schema:   aggregate.SchemaRFC7489,
		Version:  "1.0",
		OrgName:  org,
		Email:    "noreply-dmarc-support@" + org,
		ReportID: id,
		Begin:    begin.UTC(),
		End:      begin.Add(24*time.Hour - time.Second).UTC(),
		Domain:   domain,
		ADKIM:    aggregate.Opt{Value: "r", Set: true},
		ASPF:     aggregate.Opt{Value: "r", Set: true},
		P:        aggregate.Opt{Value: "none", Set: true},
		Pct:      aggregate.Opt{Value: "100", Set: true},
		Errors:   []string{},
	}
}

// GenRows yields n rows; record i has count i%7+1 and source IP
// 192.0.2.(i%250), and passes DMARC when i is even.
func GenRows(n int, domain string) func() (*enrich.Record, error) {
	ips := make([]string, 250)
	for i := range ips {
		ips[i] = fmt.Sprintf("192.0.2.%d", i)
	}
	i := 0
	return func() (*enrich.Record, error) {
		if i == n {
			return nil, io.EOF
		}
		pass := i%2 == 0
		evalDKIM := "fail"
		if pass {
			evalDKIM = "pass"
		}
		r := &enrich.Record{
			Record: &aggregate.Record{
				Index:        i,
				SourceIP:     ips[i%250],
				Count:        uint64(i%7 + 1),
				Disposition:  "none",
				EvalDKIM:     evalDKIM,
				EvalSPF:      "fail",
				HeaderFrom:   domain,
				EnvelopeFrom: aggregate.Opt{Value: "mail." + domain, Set: true},
				DKIM:         []aggregate.DKIMResult{{Domain: domain, Selector: "s1", Result: "pass"}, {Domain: "amazonses.com", Selector: "x", Result: "pass"}},
				SPF:          []aggregate.SPFResult{{Domain: "mail." + domain, Scope: "mfrom", Result: "pass"}},
			},
			HeaderFromOrg:      domain,
			DKIMAlignedRelaxed: pass,
			DKIMAlignedStrict:  pass,
			SPFAlignedRelaxed:  true,
			SPFAlignedStrict:   false,
			DMARCPass:          true,
		}
		r.DMARCPass = r.DKIMAlignedRelaxed || r.SPFAlignedRelaxed
		i++
		return r, nil
	}
}

// Rows yields rs.
func Rows(rs ...*enrich.Record) func() (*enrich.Record, error) {
	return func() (*enrich.Record, error) {
		if len(rs) == 0 {
			return nil, io.EOF
		}
		r := rs[0]
		rs = rs[1:]
		return r, nil
	}
}

// AuthRow is a record of count messages from ip with header_from from,
// its DKIM results given as "d/selector/result", its SPF (MAIL FROM)
// results as "domain/result", its policy override reasons by type, and its
// alignment evaluated under adkim and aspf.
func AuthRow(ip string, count uint64, from string, dkim, spf, reasons []string, adkim, aspf align.Mode) *enrich.Record {
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

// Write stores the report of h with the rows of next and Meta.
func Write(t testing.TB, s *store.Store, h *aggregate.Header, next func() (*enrich.Record, error)) store.WriteResult {
	t.Helper()
	res, err := s.WriteAggregate(context.Background(), h, Meta, next)
	if err != nil {
		t.Fatalf("WriteAggregate(%s): %v", h.ReportID, err)
	}
	return res
}

package ingest_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
)

// TestReportsForForeignDomainsAreSetAside: with owned_domains set, a report
// for another policy domain ends invalid with foreign_domain and nothing of
// it is stored; a report for an owned domain is stored.
func TestReportsForForeignDomainsAreSetAside(t *testing.T) {
	dir := corpus.Dir(t)
	st, conn := openStore(t)
	p := ingest.New(st, ingest.Options{Source: "file", OwnedDomains: []string{"Example.NET."}})

	foreign := processFile(t, p, filepath.Join(dir, "domainaware__parsedmarc/aggregate/nice-input.xml"), "nice-input.xml")
	if foreign.Status != ingest.Invalid || foreign.ReasonCode != "foreign_domain" || !strings.Contains(foreign.Reason, `"example.com"`) {
		t.Fatalf("report for example.com: %s %s %q, want invalid foreign_domain naming the domain", foreign.Status, foreign.ReasonCode, foreign.Reason)
	}
	owned := processFile(t, p, filepath.Join(dir, "ZeWaren__dmarc-report-milter/email/report-with-gz.eml"), "report-with-gz.eml")
	if owned.Status != ingest.Stored {
		t.Fatalf("report for example.net: %s %s %s", owned.Status, owned.ReasonCode, owned.Reason)
	}
	if reports, records, _ := aggregateCounts(t, conn); reports != 1 || records != 1 {
		t.Fatalf("%d reports, %d records stored; want only the example.net report", reports, records)
	}
}

package ingest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/store"
)

// lenientStore stores aggregate reports in memory (it reads every record).
type lenientStore struct {
	memStore
	records int
}

func (s *lenientStore) WriteAggregate(_ context.Context, h *aggregate.Header, _ store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	n := 0
	for {
		if _, err := next(); err != nil {
			break
		}
		n++
	}
	s.records += n
	return store.WriteResult{Status: store.StatusStored, ReportKey: aggregate.Key(h), Records: n}, nil
}

// misspeltReport writes <data_range> for <date_range>, as a real carrier's
// reports do.
const misspeltReport = `<?xml version="1.0"?>
<feedback><report_metadata><org_name>carrier.example</org_name><email>dmarc@carrier.example</email>
<report_id>jp-1</report_id><data_range><begin>1764979200</begin><end>1765065599</end></data_range></report_metadata>
<policy_published><domain>example.com</domain><p>none</p></policy_published>
<record><row><source_ip>192.0.2.1</source_ip><count>3</count><policy_evaluated><disposition>none</disposition>
<dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers>
<auth_results><dkim><domain>example.com</domain><result>pass</result></dkim></auth_results></record></feedback>`

// TestWhatWasReadLenientlyIsSaidInTheOutcome pins that a stored input says
// what of it was not read as sent: a MIME header line repaired (a stray
// unfolded name="..." line, as an Outlook-made report mail carries) and a
// misspelt element read as the container it is nearest to.
func TestWhatWasReadLenientlyIsSaidInTheOutcome(t *testing.T) {
	mail := strings.ReplaceAll(`From: dmarc@carrier.example
To: rua@example.com
Subject: Report Domain: example.com
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain

The report is attached.
--b1
Content-Type: text/xml;
name="jp-1.xml"
Content-Disposition: attachment

`+misspeltReport+`
--b1--
`, "\n", "\r\n")
	st := &lenientStore{}
	p := ingest.New(st, ingest.Options{Source: "file"})
	out := p.Process(context.Background(), "carrier.eml", strings.NewReader(mail))
	if out.Status != ingest.Stored || st.records != 1 {
		t.Fatalf("outcome %s %s %q, %d records: want stored, 1 record", out.Status, out.ReasonCode, out.Reason, st.records)
	}
	joined := strings.Join(out.Lenient, "\n")
	if !strings.Contains(joined, "<data_range> read as <date_range>") || !strings.Contains(joined, "continuation") {
		t.Fatalf("lenient %q: want the repaired header line and the misspelt element named", out.Lenient)
	}
	if len(out.Lenient) != 2 {
		t.Errorf("lenient %q: want 2 notes, each once", out.Lenient)
	}
}

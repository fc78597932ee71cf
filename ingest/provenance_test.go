package ingest_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/parse/aggregate"
	"github.com/dmarcd/dmarcd/parse/failure"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
	"github.com/dmarcd/dmarcd/store"
)

// metaStore stores every kind of report in memory and keeps the InputMeta
// each one was written with.
type metaStore struct {
	mu    sync.Mutex
	metas []store.InputMeta
}

func (s *metaStore) keep(m store.InputMeta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metas = append(s.metas, m)
}

func (s *metaStore) WriteAggregate(_ context.Context, h *aggregate.Header, m store.InputMeta, next func() (*store.Row, error)) (store.WriteResult, error) {
	res := store.WriteResult{ReportKey: aggregate.Key(h), Status: store.StatusStored}
	for {
		r, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, err
		}
		res.Records++
		res.Messages += r.Count
	}
	s.keep(m)
	return res, nil
}

func (s *metaStore) WriteFailure(_ context.Context, key string, r *failure.Report, m store.InputMeta) (store.WriteResult, error) {
	s.keep(m)
	return store.WriteResult{ReportKey: key, Status: store.StatusStored, Records: 1, Messages: 1}, nil
}

func (s *metaStore) WriteTLSRPT(_ context.Context, r *tlsrpt.Report, m store.InputMeta) (store.WriteResult, error) {
	s.keep(m)
	return store.WriteResult{ReportKey: tlsrpt.Key(r), Status: store.StatusStored}, nil
}

func (s *metaStore) LogInput(context.Context, store.InputRow) error { return nil }

// aggregateXML is a report of two records, the second with a source IP
// that is not an address.
const aggregateXML = `<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>r.example</org_name><email>d@r.example</email><report_id>set-aside-1</report_id>
    <date_range><begin>1772323200</begin><end>1772409599</end></date_range></report_metadata>
  <policy_published><domain>example.com</domain><p>none</p></policy_published>
  <record><row><source_ip>192.0.2.1</source_ip><count>3</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>
  <record><row><source_ip>not-an-ip</source_ip><count>2</count>
    <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>example.com</domain><result>fail</result></spf></auth_results></record>
</feedback>
`

// TestAStoredInputWithRecordsSetAsideSaysSo stores a report one of whose
// records is unusable: the outcome (the --json line) is stored, counts the
// record in invalid_records and names it with reason_code invalid_value.
func TestAStoredInputWithRecordsSetAsideSaysSo(t *testing.T) {
	p := ingest.New(&metaStore{}, ingest.Options{Source: "file"})
	out := p.Process(context.Background(), "r.xml", strings.NewReader(aggregateXML))
	if out.Status != ingest.Stored || out.Records != 2 || out.InvalidRecords != 1 || out.ReasonCode != "invalid_value" ||
		!strings.Contains(out.Reason, "1 of 2 records unusable") || !strings.Contains(out.Reason, "not-an-ip") {
		t.Fatalf("outcome %+v: want stored, 2 records, 1 set aside with reason_code invalid_value and its reason", out)
	}
	t.Logf("reason: %s", out.Reason)
	good := strings.Replace(aggregateXML, "not-an-ip", "192.0.2.2", 1)
	good = strings.Replace(good, "set-aside-1", "set-aside-2", 1)
	if out := p.Process(context.Background(), "g.xml", strings.NewReader(good)); out.InvalidRecords != 0 || out.ReasonCode != "" || out.Reason != "" {
		t.Errorf("a report without bad records: %+v", out)
	}
}

package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/aggregate"
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

func (s *metaStore) WriteAggregate(_ context.Context, h *aggregate.Header, m store.InputMeta, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	res, err := readReport(h, next)
	if err != nil {
		return res, err
	}
	s.keep(m)
	return res, nil
}

// readReport reads a report's records to their end, as a store does, and
// returns its WriteResult as stored.
func readReport(h *aggregate.Header, next func() (*enrich.Record, error)) (store.WriteResult, error) {
	res := store.WriteResult{ReportKey: aggregate.Key(h), Status: store.StatusStored}
	for {
		r, err := next()
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		res.Records++
		res.Messages += r.Count
	}
}

func (s *metaStore) WriteFailure(_ context.Context, key string, r *enrich.FailureReport, m store.InputMeta) (store.WriteResult, error) {
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

// aggregateMail is a report mail whose aggregate report is a base64 attachment.
func aggregateMail(xml string) string {
	return "From: reports@r.example\r\nTo: dmarc@example.com\r\nSubject: Report Domain: example.com\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n" +
		"--b\r\nContent-Type: text/xml; name=\"r.example!example.com!1772323200!1772409599.xml\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte(xml)) + "\r\n--b--\r\n"
}

// TestReportRowsNameTheirInputAndItsHash hands the pipeline inputs that can
// be read twice (a file, a mail in memory): each report is written with the
// input's name (as in the inputs table), the part it was found in, and the
// SHA-256 of the whole input, the Outcome's. An input read once (a pipe)
// has its name and part but no hash; ProcessHashed takes the hash of a
// first read.
func TestReportRowsNameTheirInputAndItsHash(t *testing.T) {
	mail := aggregateMail(aggregateXML)
	dir := t.TempDir()
	path := filepath.Join(dir, "bare.xml")
	if err := os.WriteFile(path, []byte(aggregateXML), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hexSum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

	for _, c := range []struct {
		name, data string
		r          io.Reader
		part       string
		hashed     bool
	}{
		{path, aggregateXML, f, "", true},
		{"imap://u@h/INBOX;UID=7", mail, strings.NewReader(mail), `part 2 "r.example!example.com!1772323200!1772409599.xml"`, true},
		{"-", mail, io.MultiReader(strings.NewReader(mail)), `part 2 "r.example!example.com!1772323200!1772409599.xml"`, false},
	} {
		st := &metaStore{}
		p := ingest.New(st, ingest.Options{Source: "file"})
		out := p.Process(context.Background(), c.name, c.r)
		if out.Status != ingest.Stored || out.SHA256 != hexSum(c.data) || len(st.metas) != 1 {
			t.Fatalf("%s: outcome %+v, %d writes: want stored once, sha256 of the whole input", c.name, out, len(st.metas))
		}
		m := st.metas[0]
		want := ""
		if c.hashed {
			want = out.SHA256
		}
		if m.InputName != c.name || m.InputPart != c.part || m.InputSHA256 != want {
			t.Errorf("%s: report written with input_name %q, input_part %q, input_sha256 %q; want %q, %q, %q",
				c.name, m.InputName, m.InputPart, m.InputSHA256, c.name, c.part, want)
		}
	}

	st := &metaStore{}
	p := ingest.New(st, ingest.Options{Source: "s3"})
	ahead, err := p.HashAhead(strings.NewReader(mail))
	if err != nil || ahead.SHA256 != hexSum(mail) || ahead.Size != int64(len(mail)) {
		t.Fatalf("HashAhead: %+v, %v", ahead, err)
	}
	out := p.ProcessHashed(context.Background(), "s3://b/k#e", ahead, io.MultiReader(strings.NewReader(mail)))
	if out.SHA256 != ahead.SHA256 || len(st.metas) != 1 || st.metas[0].InputSHA256 != ahead.SHA256 || st.metas[0].InputName != "s3://b/k#e" {
		t.Errorf("ProcessHashed: outcome sha256 %s, writes %+v; want %s in both", out.SHA256, st.metas, ahead.SHA256)
	}

	// Over MaxHashAhead: read once, no hash in the rows.
	st = &metaStore{}
	p = ingest.New(st, ingest.Options{Source: "file", MaxHashAhead: 100})
	if out := p.Process(context.Background(), "big.eml", strings.NewReader(mail)); out.Status != ingest.Stored || st.metas[0].InputSHA256 != "" {
		t.Errorf("an input over MaxHashAhead: %s, written with sha256 %q, want none", out.Status, st.metas[0].InputSHA256)
	}
}

// TestEveryReportRowLeadsToTheMailItCameFrom ingests the corpus report mails
// (aggregate, failure and TLS reports) from a Dovecot INBOX one at a time
// (Concurrency 1: each mail streams from the server, read twice: hashed,
// then parsed) and finds every report row naming its mail's IMAP URL and
// SHA-256, as the inputs table does.
func TestEveryReportRowLeadsToTheMailItCameFrom(t *testing.T) {
	addr, user, pass := testenv.Dovecot(t)
	st, conn := openStore(t)
	c := imapTestClient(t, addr, user, pass)
	appendMails(t, c, "INBOX", corpusMails(t, "email", "forensic", "smtp_tls")...)
	p := ingest.New(st, ingest.Options{Source: "imap", Privacy: ingest.Privacy{Key: []byte("imap-test-key-0123456789")}})
	src := ingest.NewIMAPSource(ingest.IMAPConfig{Name: "test", Address: addr, TLS: ingest.IMAPTLSNone,
		Username: user, Password: pass, PollInterval: time.Second, Concurrency: 1}, p, testLogger())
	if err := src.Once(context.Background(), func(ingest.Outcome) {}); err != nil {
		t.Fatalf("Once: %v", err)
	}
	assertProvenance(t, conn)
}

// TestHashAheadKeepsMemoryFlat hashes a 32 MiB input ahead, as the S3 and
// IMAP sources do before parsing: it allocates a copy buffer, not the input
// (bound: 1 MiB).
func TestHashAheadKeepsMemoryFlat(t *testing.T) {
	p := ingest.New(&metaStore{}, ingest.Options{Source: "s3"})
	const size = 32 << 20
	src := &countingSource{chunk: bytes.Repeat([]byte("x"), 64<<10), limit: size}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h, err := p.HashAhead(src)
	runtime.ReadMemStats(&after)
	if err != nil || h.Size != size {
		t.Fatalf("HashAhead: %+v, %v", h, err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("hashing %d MiB ahead allocated %d bytes", size>>20, alloc)
	if alloc > 1<<20 {
		t.Errorf("hashing %d MiB ahead allocated %d bytes, want under 1 MiB", size>>20, alloc)
	}
}

package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"github.com/dmarcd/dmarcd/enrich"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
	"github.com/dmarcd/dmarcd/parse/extract"
	"github.com/dmarcd/dmarcd/parse/failure"
	"github.com/dmarcd/dmarcd/parse/tlsrpt"
)

// redactKey is the HMAC key the failure tests redact with.
var redactKey = []byte("dmarcd store test redaction key")

// corpusFailure is one corpus failure report, redacted as dmarcd stores it.
type corpusFailure struct {
	path string // relative to the corpus
	raw  []byte
	key  string // failure.Key before redaction
	r    *failure.Report
}

// corpusFailures parses and redacts (default: subjects kept, no body) every
// corpus forensic file.
func corpusFailures(t testing.TB) []corpusFailure {
	t.Helper()
	dir := testenv.CorpusDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*", "forensic", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no forensic files in %s", dir)
	}
	var out []corpusFailure
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := failure.Parse(bytes.NewReader(raw), failure.Options{})
		if err != nil {
			t.Fatalf("%s: failure.Parse: %v", f, err)
		}
		key := failure.Key(r)
		failure.Redact(r, redactKey, false, false)
		rel, _ := filepath.Rel(dir, f)
		out = append(out, corpusFailure{path: rel, raw: raw, key: key, r: r})
	}
	return out
}

func writeFailure(t testing.TB, s *Store, c corpusFailure) WriteResult {
	t.Helper()
	res, err := s.WriteFailure(context.Background(), c.key, enrich.Failure(c.r), InputMeta{Source: "file", InputName: c.path})
	if err != nil {
		t.Fatalf("WriteFailure(%s): %v", c.path, err)
	}
	return res
}

func TestCorpusFailureReportsStoredExactlyOnce(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	reports := corpusFailures(t)

	seen := map[string]bool{}
	var wantIncidents uint64
	for _, c := range reports {
		res := writeFailure(t, s, c)
		want := StatusStored
		if seen[c.key] {
			// dmarc_ruf_report_linkedin.crlf.eml is the same report as
			// dmarc_ruf_report_linkedin.eml with CRLF line endings.
			want = StatusDuplicate
		} else {
			wantIncidents += max(c.r.Incidents, 1)
		}
		seen[c.key] = true
		if res.Status != want || res.ReportKey != c.key || res.Records != 1 || res.Messages != max(c.r.Incidents, 1) {
			t.Errorf("%s: first write %+v, want status %s, key %s, 1 record, %d messages", c.path, res, want, c.key, max(c.r.Incidents, 1))
		}
	}
	if len(seen) >= len(reports) || len(seen) < 2 {
		t.Errorf("%d corpus files gave %d keys; the two LinkedIn copies should share one", len(reports), len(seen))
	}
	for _, c := range reports {
		if res := writeFailure(t, s, c); res.Status != StatusDuplicate {
			t.Errorf("%s: second write: status %s, want duplicate", c.path, res.Status)
		}
	}
	check := func(when string) {
		t.Helper()
		if n := queryUint(t, s, "SELECT count() FROM failure_reports"); n != uint64(len(seen)) {
			t.Errorf("%s: %d rows, want %d", when, n, len(seen))
		}
		if n := queryUint(t, s, "SELECT uniqExact(report_key) FROM failure_reports"); n != uint64(len(seen)) {
			t.Errorf("%s: %d report keys, want %d", when, n, len(seen))
		}
		if n := queryUint(t, s, "SELECT sum(incidents) FROM failure_reports"); n != wantIncidents {
			t.Errorf("%s: sum(incidents) %d, want %d", when, n, wantIncidents)
		}
	}
	check("without FINAL")
	if err := s.conn.Exec(ctx, "OPTIMIZE TABLE failure_reports FINAL"); err != nil {
		t.Fatal(err)
	}
	check("after OPTIMIZE FINAL")
}

// rowStrings returns the first row of q with every column formatted as by
// toString, arrays joined with "|" (q selects the expressions).
func rowStrings(t testing.TB, s *Store, q string, args ...any) []string {
	t.Helper()
	rows := selectFormatted(t, s, q, args...)
	if len(rows) != 1 {
		t.Fatalf("%s %v: %d rows, want 1", q, args, len(rows))
	}
	return rows[0]
}

// selectFormatted runs q and formats every value of every row.
func selectFormatted(t testing.TB, s *Store, q string, args ...any) [][]string {
	t.Helper()
	rows, err := s.conn.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(types))
		for i, ct := range types {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = formatValue(reflect.ValueOf(v).Elem().Interface())
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// formatValue formats a scanned value: arrays joined with "|", times as
// Unix seconds.
func formatValue(v any) string {
	switch x := v.(type) {
	case []string:
		return strings.Join(x, "|")
	case time.Time:
		return strconv.FormatInt(x.Unix(), 10)
	}
	return fmt.Sprint(v)
}

func TestCorpusFailureReportsKeepTheirFields(t *testing.T) {
	s, _ := open(t, Options{})
	byName := map[string]corpusFailure{}
	for _, c := range corpusFailures(t) {
		writeFailure(t, s, c)
		byName[filepath.Base(c.path)] = c
	}
	cols := []string{"source_ip", "reported_domain", "policy_domain", "reporter", "arf", "incomplete",
		"arrival_date", "auth_failure", "delivery_result", "original_mail_from_domain", "dkim_domain",
		"identity_alignment", "original_from_domain", "original_from_org", "has_body", "body",
		"dkim_aligned_relaxed", "spf_aligned_relaxed", "feedback_type", "version"}
	// One report per receiver, values read in the raw files. The body is
	// empty: Redact drops it by default.
	want := map[string][]string{
		// LinkedIn: empty Original-Mail-From, Arrival-Date Tue, 30 Apr 2019 02:09:00 +0000.
		"dmarc_ruf_report_linkedin.eml": {"10.10.10.10", "example.com", "example.com", "linkedin.com", "1", "0",
			"1556590140", "dmarc", "delivered", "", "", "", "example.com", "example.com", "1", "",
			"0", "0", "auth-failure", "1.0"},
		// Netease: base64 feedback part, no Auth-Failure (incomplete); DKIM and
		// SPF pass for entrata.com, unaligned with cardinal.com; headers only.
		"[Netease DMARC Failure Report] Rent Reminder.eml": {"167.89.69.24", "cardinal.com", "cardinal.com", "163.com", "1", "1",
			"1538124522", "", "delivered", "email.entrata.com", "entrata.com", "spf|dkim", "cardinal.com", "cardinal.com", "0", "",
			"0", "0", "auth-failure", "1"},
		// Lua/1.0 generator: Arrival-Date Mon, 01 Oct 2018 11:20:27 +0200, Delivery-Result smg-policy-action.
		"DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml": {"10.10.10.10", "domain.de", "domain.de", "domain.de", "1", "0",
			"1538385627", "dmarc", "smg-policy-action", "domain.de", "", "", "domain.de", "domain.de", "1", "",
			"0", "0", "auth-failure", "1.0"},
		// NetEase/Coremail: two DKIM domains, both failed; SPF passed for neko.example.com, unaligned with example.net.
		"arf-19.eml": {"203.0.113.2", "example.net", "example.net", "126.example.com", "1", "1",
			"1430318085", "", "delivered", "neko.example.com", "ietf.org; example.net", "", "example.net", "example.net", "1", "",
			"0", "0", "auth-failure", "1"},
		// OpenDMARC: no Arrival-Date (stored at the report email's Date,
		// Tue,  5 Oct 2021 17:37:02 +1300), Source-IP with a comment.
		"004.eml": {"148.163.85.135", "interpublication.org", "interpublication.org", "box.mydomain.name", "1", "0",
			"1633408622", "dmarc", "", "interpublication.org", "", "", "interpublication.org", "interpublication.org", "0", "",
			"0", "0", "auth-failure", "1"},
		// Exim: no feedback part; what its text and header block say (the
		// arrival date is the notice's Date, Mon, 07 Apr 2025 23:16:09 +0200).
		"exim_plain_text_only_no_arf_part.eml": {"203.0.113.68", "example.com", "example.com", "node01.mailgate.example.net", "0", "1",
			"1744060569", "", "", "", "", "", "example.com", "example.com", "0", "",
			"0", "0", "", ""},
	}
	for name, w := range want {
		c, ok := byName[name]
		if !ok {
			t.Errorf("corpus file %s missing", name)
			continue
		}
		got := rowStrings(t, s, "SELECT "+strings.Join(cols, ", ")+" FROM failure_reports WHERE report_key = ?", c.key)
		for i, col := range cols {
			if got[i] != w[i] {
				t.Errorf("%s: %s = %q, want %q", name, col, got[i], w[i])
			}
		}
	}
	// Original-Mail-From sharepoint@domain.de, redacted: a token in its place.
	lua := byName["DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml"]
	got := rowStrings(t, s, "SELECT original_mail_from, original_from FROM failure_reports WHERE report_key = ?", lua.key)
	token := regexp.MustCompile(`^[A-Z2-7]{16}@domain\.de$`)
	if !token.MatchString(got[0]) || got[1] != got[0] {
		t.Errorf("redacted addresses: original_mail_from %q, original_from %q, want one token@domain.de", got[0], got[1])
	}
}

// addrRe finds addresses in raw text: an unquoted local part, '@', a domain.
var addrRe = regexp.MustCompile("([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+)@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+")

// keyLike is a "key=" prefix of a local part, as in mail-from=x@y or
// smtp.mailfrom=x@y: the local part is what follows it.
var keyLike = regexp.MustCompile(`^[A-Za-z][A-Za-z.-]*=`)

// localParts returns the local parts (at least 3 characters) of the addresses
// in a raw report email, in its bytes as they are and in every MIME part
// decoded (base64 and quoted-printable parts, nested messages), except in the
// report email's own From and To fields and in Message-ID fields (a message
// identifier is no address, and dmarcd keeps the original's as its
// identity). For each it tells whether it also occurs as a word of the text
// outside addresses and address fields, like "dmarc" in "Auth-Failure: dmarc" or "sharepoint" in
// "X-Mailer: Microsoft SharePoint Foundation 2010".
func localParts(t testing.TB, raw []byte) map[string]bool {
	t.Helper()
	texts := [][]byte{raw}
	texts = append(texts, decodedParts(raw, 0)...)
	locals := map[string]bool{}
	var rest strings.Builder // the text without addresses and skipped lines
	for i, text := range texts {
		inTopHeader := i == 0
		sc := bufio.NewScanner(bytes.NewReader(text))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.TrimSpace(line) == "" {
				inTopHeader = false
			}
			name, _, _ := strings.Cut(line, ":")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "message-id" || inTopHeader && (name == "from" || name == "to") {
				continue
			}
			for _, m := range addrRe.FindAllStringSubmatch(line, -1) {
				l := strings.Trim(m[1], ".")
				if k := keyLike.FindString(l); k != "" {
					l = l[len(k):]
				}
				if len(l) >= 3 {
					locals[l] = false
				}
			}
			if !addressFields[name] {
				rest.WriteString(addrRe.ReplaceAllString(line, " "))
				rest.WriteByte('\n')
			}
		}
	}
	for l := range locals {
		locals[l] = standaloneIndex(rest.String(), l) >= 0
	}
	return locals
}

// addressFields are fields whose display names may repeat a local part: a
// word there is no evidence that the local part is a plain word.
var addressFields = map[string]bool{"from": true, "to": true, "cc": true, "reply-to": true, "sender": true,
	"return-path": true, "delivered-to": true, "x-original-to": true, "original-rcpt-to": true,
	"original-mail-from": true}

// decodedParts returns the transfer-decoded bodies of the leaf parts of a
// message, descending into multiparts and message/rfc822 parts.
func decodedParts(raw []byte, depth int) [][]byte {
	if depth > 5 {
		return nil
	}
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil || err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil
	}
	var out [][]byte
	e.Walk(func(_ []int, p *message.Entity, err error) error {
		if err != nil || p.MultipartReader() != nil {
			return nil
		}
		b, err := io.ReadAll(p.Body)
		if err != nil {
			return nil
		}
		out = append(out, b)
		if mt, _, _ := p.Header.ContentType(); strings.HasPrefix(mt, "message/") || strings.Contains(mt, "rfc822") {
			out = append(out, decodedParts(b, depth+1)...)
		}
		return nil
	})
	return out
}

// standaloneIndex returns the index of the first occurrence of l in s, ignoring
// case, that is not within a longer run of local-part characters (a word
// such as "X-Sender-Warning" does not hold "sender"; "sender@x" and
// "Sender <" do), or -1.
func standaloneIndex(s, l string) int {
	low, l := strings.ToLower(s), strings.ToLower(l)
	inLocal := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 0x80 || strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0
	}
	for i := 0; ; {
		j := strings.Index(low[i:], l)
		if j < 0 {
			return -1
		}
		j += i
		end := j + len(l)
		if (j == 0 || !inLocal(low[j-1])) && (end == len(low) || !inLocal(low[end])) {
			return j
		}
		i = j + 1
	}
}

// With default redaction no local part of an original address is stored.
// Every column of every row is formatted as TSV; each local part of a report
// is looked for as "local@" in all rows, and as a stand-alone word (it may
// sit in a display name) in the report's own row, unless the report also
// uses it as a plain word (as "dmarc" in "Auth-Failure: dmarc").
func TestStoredFailureReportsHoldNoOriginalLocalPart(t *testing.T) {
	s, _ := open(t, Options{})
	reports := corpusFailures(t)
	for i, c := range reports {
		// The input name is the caller's (a spool file may be named after
		// the report's subject, with an address in it): a neutral one here.
		m := InputMeta{Source: "file", InputName: fmt.Sprintf("forensic-%d.eml", i)}
		if _, err := s.WriteFailure(context.Background(), c.key, enrich.Failure(c.r), m); err != nil {
			t.Fatal(err)
		}
	}
	tsv := func(q string, args ...any) string {
		var b strings.Builder
		for _, row := range selectFormatted(t, s, q, args...) {
			b.WriteString(strings.Join(row, "\t"))
			b.WriteByte('\n')
		}
		return b.String()
	}
	all := tsv("SELECT * FROM failure_reports")
	report := func(where, l, stored string, i int) {
		t.Helper()
		if i >= 0 {
			t.Errorf("%s: local part %q is stored: ...%s...", where, l, stored[max(0, i-60):min(len(stored), i+len(l)+60)])
		}
	}
	checked, words := 0, 0
	for _, c := range reports {
		own := tsv("SELECT * FROM failure_reports WHERE report_key = ?", c.key)
		locals := localParts(t, c.raw)
		names := make([]string, 0, len(locals))
		for l := range locals {
			names = append(names, l)
		}
		sort.Strings(names)
		for _, l := range names {
			checked++
			report(c.path+", any row", l, all, strings.Index(strings.ToLower(all), strings.ToLower(l)+"@"))
			if locals[l] {
				words++
				continue
			}
			report(c.path+", its row", l, own, standaloneIndex(own, l))
		}
	}
	if checked < 10 {
		t.Errorf("only %d local parts found in the corpus failure reports", checked)
	}
	t.Logf("%d local parts (%d also plain words of their report) looked for in %d bytes of stored rows", checked, words, len(all))
}

// corpusTLS is one corpus SMTP TLS report with its MANIFEST counts.
type corpusTLS struct {
	path             string
	r                *tlsrpt.Report
	policies, reqSum uint64 // MANIFEST records (policies) and count_sum (successful+failed)
	failures         int
}

// corpusTLSReports parses every corpus smtp_tls file: a bare JSON file, or
// an email whose payload parse/extract finds.
func corpusTLSReports(t testing.TB) []corpusTLS {
	t.Helper()
	dir := testenv.CorpusDir(t)
	f, err := os.Open(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusTLS
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 8 || c[2] != "smtp_tls" {
			continue
		}
		recs, err1 := strconv.ParseUint(c[6], 10, 64)
		sum, err2 := strconv.ParseUint(c[7], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("MANIFEST row %s: bad counts %q %q", c[0], c[6], c[7])
		}
		r := parseTLSFile(t, filepath.Join(dir, c[0]))
		ct := corpusTLS{path: c[0], r: r, policies: recs, reqSum: sum}
		for _, p := range r.Policies {
			ct.failures += len(p.Failures)
		}
		out = append(out, ct)
	}
	if len(out) == 0 {
		t.Fatal("no smtp_tls rows in MANIFEST.tsv")
	}
	return out
}

func parseTLSFile(t testing.TB, path string) *tlsrpt.Report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var reps []*tlsrpt.Report
	x := extract.NewReader(bytes.NewReader(data), extract.Limits{})
	defer x.Close()
	for {
		p, err := x.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if p.Kind != extract.TLSRPT {
			continue
		}
		r, err := tlsrpt.Parse(p.R, 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		reps = append(reps, r)
	}
	if len(reps) != 1 {
		t.Fatalf("%s: %d TLS reports, want 1", path, len(reps))
	}
	return reps[0]
}

func writeTLS(t testing.TB, s *Store, c corpusTLS) WriteResult {
	t.Helper()
	res, err := s.WriteTLSRPT(context.Background(), c.r, InputMeta{Source: "file", InputName: c.path})
	if err != nil {
		t.Fatalf("WriteTLSRPT(%s): %v", c.path, err)
	}
	return res
}

// checkTLSStored compares the stored rows of a report with its MANIFEST counts.
func checkTLSStored(t testing.TB, s *Store, c corpusTLS, when string) {
	t.Helper()
	key := tlsrpt.Key(c.r)
	if n := queryUint(t, s, "SELECT count() FROM tlsrpt_reports WHERE report_key = ?", key); n != 1 {
		t.Errorf("%s %s: %d report rows, want 1", c.path, when, n)
	}
	if n := queryUint(t, s, "SELECT count() FROM tlsrpt_policies WHERE report_key = ?", key); n != c.policies {
		t.Errorf("%s %s: %d policy rows, MANIFEST %d", c.path, when, n, c.policies)
	}
	if n := queryUint(t, s, "SELECT sum(successful_sessions + failed_sessions) FROM tlsrpt_policies WHERE report_key = ?", key); n != c.reqSum {
		t.Errorf("%s %s: %d sessions in policy rows, MANIFEST %d", c.path, when, n, c.reqSum)
	}
	if n := queryUint(t, s, "SELECT sum(successful_sessions + failed_sessions) FROM tlsrpt_reports WHERE report_key = ?", key); n != c.reqSum {
		t.Errorf("%s %s: %d sessions in the report row, MANIFEST %d", c.path, when, n, c.reqSum)
	}
	if n := queryUint(t, s, "SELECT count() FROM tlsrpt_failures WHERE report_key = ?", key); n != uint64(c.failures) {
		t.Errorf("%s %s: %d failure rows, want %d", c.path, when, n, c.failures)
	}
}

func TestCorpusTLSReportsStoredExactlyOnce(t *testing.T) {
	s, _ := open(t, Options{})
	ctx := context.Background()
	reports := corpusTLSReports(t)
	var policies, sessions, failures uint64
	for _, c := range reports {
		res := writeTLS(t, s, c)
		if res.Status != StatusStored || res.ReportKey != tlsrpt.Key(c.r) || uint64(res.Records) != c.policies || res.Messages != c.reqSum {
			t.Errorf("%s: %+v, want stored, %d records, %d messages", c.path, res, c.policies, c.reqSum)
		}
		policies += c.policies
		sessions += c.reqSum
		failures += uint64(c.failures)
	}
	for _, c := range reports {
		if res := writeTLS(t, s, c); res.Status != StatusDuplicate || uint64(res.Records) != c.policies || res.Messages != c.reqSum {
			t.Errorf("%s: second write %+v, want duplicate with the report's counts", c.path, res)
		}
	}
	check := func(when string) {
		t.Helper()
		for _, c := range reports {
			checkTLSStored(t, s, c, when)
		}
		if n := queryUint(t, s, "SELECT count() FROM tlsrpt_reports"); n != uint64(len(reports)) {
			t.Errorf("%s: %d report rows, want %d", when, n, len(reports))
		}
		if n := queryUint(t, s, "SELECT count() FROM tlsrpt_policies"); n != policies {
			t.Errorf("%s: %d policy rows, want %d", when, n, policies)
		}
		if n := queryUint(t, s, "SELECT sum(successful_sessions + failed_sessions) FROM tlsrpt_policies"); n != sessions {
			t.Errorf("%s: %d sessions, want %d", when, n, sessions)
		}
		if n := queryUint(t, s, "SELECT count() FROM tlsrpt_failures"); n != failures {
			t.Errorf("%s: %d failure rows, want %d", when, n, failures)
		}
	}
	check("without FINAL")
	for _, table := range []string{"tlsrpt_reports", "tlsrpt_policies", "tlsrpt_failures"} {
		if err := s.conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	check("after OPTIMIZE FINAL")
	if failures == 0 {
		t.Error("no corpus TLS report has failure details")
	}
}

func TestTLSReportFieldsStored(t *testing.T) {
	s, _ := open(t, Options{})
	var rfc corpusTLS
	for _, c := range corpusTLSReports(t) {
		if strings.HasSuffix(c.path, "/rfc8460.json") {
			rfc = c
		}
	}
	if rfc.r == nil {
		t.Fatal("rfc8460.json not in MANIFEST")
	}
	writeTLS(t, s, rfc)
	key := tlsrpt.Key(rfc.r)
	got := strings.Join(rowStrings(t, s, `SELECT organization_name, contact_info, report_id, date_begin, date_end,
		policy_count, failure_count, successful_sessions, failed_sessions FROM tlsrpt_reports WHERE report_key = ?`, key), " ")
	want := fmt.Sprintf("%s %s %s %d %d 1 3 5326 303", rfc.r.OrganizationName, rfc.r.ContactInfo, rfc.r.ReportID,
		rfc.r.Begin.Unix(), rfc.r.End.Unix())
	if got != want {
		t.Errorf("report row:\n got %s\nwant %s", got, want)
	}
	p := rfc.r.Policies[0]
	got = strings.Join(rowStrings(t, s, `SELECT policy_index, policy_type, policy_strings, policy_domain, mx_hosts,
		successful_sessions, failed_sessions FROM tlsrpt_policies WHERE report_key = ?`, key), " ")
	want = fmt.Sprintf("0 sts %s company-y.example %s 5326 303", strings.Join(p.Strings, "|"), strings.Join(p.MXHosts, "|"))
	if got != want {
		t.Errorf("policy row:\n got %s\nwant %s", got, want)
	}
	var lines []string
	for _, row := range selectFormatted(t, s, `SELECT policy_index, failure_index, policy_domain, result_type, sending_mta_ip,
		receiving_mx_hostname, receiving_mx_helo, receiving_ip, failed_session_count, additional_information,
		failure_reason_code FROM tlsrpt_failures WHERE report_key = ? ORDER BY failure_index`, key) {
		lines = append(lines, strings.Join(row, " "))
	}
	var wantLines []string
	for j, f := range p.Failures {
		wantLines = append(wantLines, fmt.Sprintf("0 %d company-y.example %s %s %s %s %s %d %s %s", j, f.ResultType, f.SendingMTAIP,
			f.ReceivingMXHostname, f.ReceivingMXHelo, f.ReceivingIP, f.FailedSessions, f.AdditionalInformation, f.FailureReasonCode))
	}
	if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("failure rows:\n got %s\nwant %s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}
	if len(lines) != 3 || !strings.Contains(lines[1], "starttls-not-supported") {
		t.Errorf("failure rows of the RFC 8460 example: %q", lines)
	}
}

// A writer that died after the child rows, or after the policies only, left
// a report without its report row: the next write completes it without
// writing any child row twice.
func TestTLSReportCompletedAfterCrashBeforeReportRow(t *testing.T) {
	var rfc corpusTLS
	for _, c := range corpusTLSReports(t) {
		if strings.HasSuffix(c.path, "/rfc8460.json") {
			rfc = c
		}
	}
	ctx := context.Background()
	for _, crash := range []struct {
		name string
		step func(*Store, *tlsRows) error
	}{
		{"after all child rows", func(s *Store, t *tlsRows) error { return s.writeTLSRPTChildren(ctx, t) }},
		{"after the policy rows", func(s *Store, t *tlsRows) error { return s.insertTLSPolicies(ctx, t) }},
	} {
		t.Run(crash.name, func(t *testing.T) {
			s, _ := open(t, Options{})
			if err := crash.step(s, newTLSRows(tlsrpt.Key(rfc.r), rfc.r)); err != nil {
				t.Fatal(err)
			}
			if n := queryUint(t, s, "SELECT count() FROM tlsrpt_reports"); n != 0 {
				t.Fatalf("%d report rows after the crash", n)
			}
			res := writeTLS(t, s, rfc)
			if res.Status != StatusStored || res.Messages != rfc.reqSum {
				t.Errorf("retry: %+v, want stored with %d messages", res, rfc.reqSum)
			}
			if res := writeTLS(t, s, rfc); res.Status != StatusDuplicate {
				t.Errorf("third write: %s, want duplicate", res.Status)
			}
			checkTLSStored(t, s, rfc, "after the retry")
		})
	}
}

func TestEmptyTLSReportStoresReportRowOnly(t *testing.T) {
	s, _ := open(t, Options{})
	r, err := tlsrpt.Parse(strings.NewReader(`{"organization-name":"Example","report-id":"r1",
		"date-range":{"start-datetime":"2024-01-15T00:00:00Z","end-datetime":"2024-01-15T23:59:59Z"},"policies":[]}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.WriteTLSRPT(context.Background(), r, meta)
	if err != nil || res.Status != StatusStored || res.Records != 0 || res.Messages != 0 {
		t.Fatalf("WriteTLSRPT: %+v, %v", res, err)
	}
	if res, _ := s.WriteTLSRPT(context.Background(), r, meta); res.Status != StatusDuplicate {
		t.Errorf("second write: %s, want duplicate", res.Status)
	}
	if n := queryUint(t, s, "SELECT count() FROM tlsrpt_reports"); n != 1 {
		t.Errorf("%d report rows, want 1", n)
	}
}

// Copies of one report written at once by several goroutines are stored
// once: the per-key lock serializes them.
func TestConcurrentCopiesOfFailureAndTLSReportsStoredOnce(t *testing.T) {
	s, _ := open(t, Options{})
	c := corpusFailures(t)[0]
	var rfc corpusTLS
	for _, x := range corpusTLSReports(t) {
		if strings.HasSuffix(x.path, "/rfc8460.json") {
			rfc = x
		}
	}
	const n = 6
	statuses := make(chan Status, 2*n)
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		go func() {
			res, err := s.WriteFailure(context.Background(), c.key, enrich.Failure(c.r), meta)
			statuses <- res.Status
			errs <- err
		}()
		go func() {
			res, err := s.WriteTLSRPT(context.Background(), rfc.r, meta)
			statuses <- res.Status
			errs <- err
		}()
	}
	stored := 0
	for i := 0; i < 2*n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
		if <-statuses == StatusStored {
			stored++
		}
	}
	if stored != 2 {
		t.Errorf("%d writes stored, want 2 (one per report)", stored)
	}
	if got := queryUint(t, s, "SELECT count() FROM failure_reports"); got != 1 {
		t.Errorf("%d failure rows, want 1", got)
	}
	checkTLSStored(t, s, rfc, "after concurrent writes")
}

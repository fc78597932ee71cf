package aggregate

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/parse"
)

// parseAt parses with both decoders, the present being now.
func parseAt(t *testing.T, data []byte, lim Limits, now time.Time, f func(t *testing.T, h *Header, recs []Record, err error)) {
	t.Helper()
	lim.now = func() time.Time { return now }
	parseBoth(t, data, lim, f)
}

var testNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func withMeta(old, new string) string { return strings.Replace(meta, old, new, 1) }

func withPolicyDomain(d string) string {
	return strings.Replace(policy, "<domain>example.com</domain>", "<domain>"+d+"</domain>", 1)
}

func TestHeaderValuesOutsideTheirRangeSetTheReportAside(t *testing.T) {
	for _, tc := range []struct {
		name, body, msg string
	}{
		{"a date in 2107, which ClickHouse would store as 1971", withMeta("<begin>1700000000</begin><end>1700086399</end>", "<begin>4325184000</begin><end>4325270399</end>") + policy,
			"report_metadata/date_range/begin 2107-01-23T00:00:00Z is more than 168h0m0s in the future"},
		{"an end before the begin", withMeta("<end>1700086399</end>", "<end>1699999999</end>") + policy,
			"report_metadata/date_range/end 2023-11-14T22:13:19Z is before report_metadata/date_range/begin"},
		{"a date in milliseconds", withMeta("<begin>1700000000</begin><end>1700086399</end>", "<begin>1700000000000</begin><end>1700086399000</end>") + policy,
			"in the future"},
		{"a policy domain with a newline", meta + withPolicyDomain("example.com&#10;evil"), `policy_published/domain: domain "example.com\x0aevil" has a character outside DNS syntax`},
		{"a policy domain with a quote", meta + withPolicyDomain(`exa&quot;mple.com`), `domain "exa"mple.com" has a character outside DNS syntax`},
		{"a policy domain with SQL", meta + withPolicyDomain(`example.com' OR 1=1 --`), `has a character outside DNS syntax`},
		{"a policy domain with a label of 64 bytes", meta + withPolicyDomain(strings.Repeat("a", 64)+".com"), "label longer than 63 bytes"},
		{"a policy domain of 1 MB", meta + withPolicyDomain(strings.Repeat("a.", 500_000)+"com"), "is 1000003 bytes long, more than 253"},
		{"a report_id with a bidirectional override", withMeta("<report_id>id</report_id>", "<report_id>id&#x202E;</report_id>") + policy,
			`report_metadata/report_id "id\u202e": not printable text of at most 1024 bytes`},
		{"an org_name with a C1 control", withMeta("<org_name>Org</org_name>", "<org_name>Org&#x9B;31m</org_name>") + policy, "report_metadata/org_name"},
		{"an email of 2 KiB", withMeta("<email>x@org.example</email>", "<email>"+strings.Repeat("x", 2048)+"@org.example</email>") + policy,
			"report_metadata/email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parseAt(t, doc(tc.body+rec), Limits{MaxValueBytes: 2 << 20, MaxTokenBytes: 2 << 20}, testNow, func(t *testing.T, h *Header, recs []Record, err error) {
				wantCode(t, err, parse.InvalidValue, tc.msg)
				if !strings.Contains(err.Error(), `report "`) {
					t.Errorf("message %q does not name the report", err)
				}
			})
		})
	}
}

func TestXMLRefusesANulInAValue(t *testing.T) {
	parseAt(t, doc(meta+withPolicyDomain("exa&#0;mple.com")+rec), Limits{}, testNow, func(t *testing.T, h *Header, recs []Record, err error) {
		wantCode(t, err, parse.XMLSyntax, "illegal character code U+0000")
	})
}

func TestDatesRealReportsUseAreAccepted(t *testing.T) {
	for _, tc := range []struct{ name, begin, end string }{
		{"RFC 9990's sample, dated 1979", "302832000", "302918399"},
		{"begin equal to end", "1700000000", "1700000000"},
		{"an end the day after the present, a reporter ahead in time", "1767225600", "1767311999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := withMeta("<begin>1700000000</begin><end>1700086399</end>", "<begin>"+tc.begin+"</begin><end>"+tc.end+"</end>") + policy + rec
			parseAt(t, doc(body), Limits{}, testNow, func(t *testing.T, h *Header, recs []Record, err error) {
				if err != nil || len(recs) != 1 {
					t.Fatalf("err %v, %d records", err, len(recs))
				}
			})
		})
	}
}

func TestCountsThatFalsifyTheTotalsSetTheReportAside(t *testing.T) {
	withCount := func(c string) string { return strings.Replace(rec, "<count>1</count>", "<count>"+c+"</count>", 1) }
	for _, tc := range []struct {
		name string
		body string
		lim  Limits
		msg  string
	}{
		{"a count of 2^64-1", withCount("18446744073709551615"), Limits{}, `record 0: count "18446744073709551615" is more than 4294967295 messages (limit MaxCount)`},
		{"a count one over MaxCount", withCount("4294967296"), Limits{}, "limit MaxCount"},
		{"two counts whose sum overflows", withCount("9999999999999999999") + withCount("9999999999999999999"), Limits{MaxCount: 1<<64 - 1},
			"record 1: count 9999999999999999999 makes the report's message total overflow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parseAt(t, doc(meta+policy+tc.body), tc.lim, testNow, func(t *testing.T, h *Header, recs []Record, err error) {
				wantCode(t, err, parse.InvalidValue, tc.msg)
			})
		})
	}
	parseAt(t, doc(meta+policy+withCount("4294967295")+withCount("4294967295")), Limits{}, testNow, func(t *testing.T, h *Header, recs []Record, err error) {
		if err != nil || len(recs) != 2 || recs[1].Count != 4294967295 {
			t.Fatalf("err %v, records %+v", err, recs)
		}
	})
}

// record builds a record with the identifiers and auth_results given.
func recordWith(identifiers, auth string) string {
	return `<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row><identifiers>` + identifiers +
		`</identifiers><auth_results>` + auth + `</auth_results></record>`
}

func TestRecordValuesOutsideDNSSyntaxSetOnlyThatRecordAside(t *testing.T) {
	good := recordWith(`<header_from>example.com</header_from>`, ``)
	for _, tc := range []struct {
		name, rec, invalid string
		cleared            func(r Record) bool
	}{
		{"header_from with SQL", recordWith(`<header_from>example.com'; DROP TABLE aggregate_records; --</header_from>`, ``),
			`header_from: domain "example.com'; drop table aggregate_records; --" has a character outside DNS syntax`,
			func(r Record) bool { return r.HeaderFrom == "" }},
		{"header_from with a newline", recordWith(`<header_from>example.com&#10;x</header_from>`, ``), `header_from: domain "example.com\x0ax"`,
			func(r Record) bool { return r.HeaderFrom == "" }},
		{"envelope_from of 60 KB", recordWith(`<header_from>example.com</header_from><envelope_from>`+strings.Repeat("a", 60_000)+`</envelope_from>`, ``),
			`envelope_from: domain "aaaa`, func(r Record) bool { return !r.EnvelopeFrom.Set }},
		{"envelope_to with a space", recordWith(`<header_from>example.com</header_from><envelope_to>a b.example</envelope_to>`, ``),
			`envelope_to: domain "a b.example"`, func(r Record) bool { return !r.EnvelopeTo.Set }},
		{"a DKIM domain with a quote", recordWith(`<header_from>example.com</header_from>`, `<dkim><domain>ex"ample.com</domain><selector>s</selector><result>pass</result></dkim>`),
			`dkim 0 domain: domain "ex"ample.com"`, func(r Record) bool { return r.DKIM[0].Domain == "" && r.DKIM[0].Selector == "s" }},
		{"a DKIM selector with an escape sequence", recordWith(`<header_from>example.com</header_from>`, `<dkim><domain>example.com</domain><selector>s&#x9B;2J</selector><result>pass</result></dkim>`),
			`dkim 0 selector "s\x9b2J": not printable text of at most 253 bytes`, func(r Record) bool { return r.DKIM[0].Selector == "" }},
		{"an SPF domain with a slash", recordWith(`<header_from>example.com</header_from>`, `<spf><domain>example.com/x</domain><result>pass</result></spf>`),
			`spf 0 domain: domain "example.com/x"`, func(r Record) bool { return r.SPF[0].Domain == "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parseAt(t, doc(meta+policy+good+tc.rec+good), Limits{}, testNow, func(t *testing.T, h *Header, recs []Record, err error) {
				if err != nil || len(recs) != 3 {
					t.Fatalf("err %v, %d records", err, len(recs))
				}
				if recs[0].Invalid != "" || recs[2].Invalid != "" {
					t.Errorf("good records set aside: %q, %q", recs[0].Invalid, recs[2].Invalid)
				}
				if !strings.Contains(recs[1].Invalid, tc.invalid) {
					t.Errorf("Invalid %q does not contain %q", recs[1].Invalid, tc.invalid)
				}
				if !tc.cleared(recs[1]) {
					t.Errorf("the bad value is kept: %+v", recs[1])
				}
				if len(recs[1].Invalid) > 400 {
					t.Errorf("Invalid is %d bytes long", len(recs[1].Invalid))
				}
			})
		})
	}
}

func TestRecordValuesRealReportersWriteAreAccepted(t *testing.T) {
	r := recordWith(`<header_from>Mail.Example.COM.</header_from><envelope_from></envelope_from><envelope_to>bücher.example</envelope_to>`,
		`<dkim><domain>Example.COM.</domain><selector>google</selector><result>pass</result></dkim>`+
			`<dkim><domain></domain><result>none</result></dkim>`+
			`<spf><domain>192.0.2.7</domain><scope>helo</scope><result>pass</result></spf>`+
			`<spf><domain>[2001:db8::1]</domain><result>none</result></spf>`+
			`<spf><domain></domain><result>none</result></spf>`+
			`<spf><domain>_spf.Example.com</domain><result>pass</result></spf>`)
	r2 := recordWith(`<header_from>example.com</header_from><envelope_from>bounce@example.com</envelope_from>`, ``)
	parseAt(t, doc(meta+policy+r+r2), Limits{}, testNow, func(t *testing.T, h *Header, recs []Record, err error) {
		if err != nil || len(recs) != 2 {
			t.Fatalf("err %v, %d records", err, len(recs))
		}
		for _, r := range recs {
			if r.Invalid != "" {
				t.Errorf("record %d set aside: %s", r.Index, r.Invalid)
			}
		}
		if recs[0].HeaderFrom != "mail.example.com" || recs[0].EnvelopeFrom != (Opt{"", true}) || recs[0].DKIM[0].Domain != "Example.COM." {
			t.Errorf("values changed: %+v", recs[0])
		}
	})
}

func TestARecordCountNotAnIntegerStillSetsOnlyThatRecordAside(t *testing.T) {
	bad := strings.Replace(rec, "<count>1</count>", "<count>1e3</count>", 1)
	parseAt(t, doc(meta+policy+rec+bad+rec), Limits{}, testNow, func(t *testing.T, h *Header, recs []Record, err error) {
		if err != nil || len(recs) != 3 || recs[1].Invalid != `count "1e3": not a non-negative integer` || recs[1].Count != 0 {
			t.Fatalf("err %v, records %+v", err, recs)
		}
	})
}

func TestAnInvalidSourceIPIsCutShortInTheRecord(t *testing.T) {
	bad := strings.Replace(rec, "192.0.2.1", strings.Repeat("9", 10_000), 1)
	parseAt(t, doc(meta+policy+bad), Limits{}, testNow, func(t *testing.T, h *Header, recs []Record, err error) {
		if err != nil || len(recs) != 1 || len(recs[0].SourceIP) > quoteMax || !bytes.Contains([]byte(recs[0].Invalid), []byte("(10000 bytes)")) {
			t.Fatalf("err %v, records %+v", err, recs)
		}
	})
}

package aggregate

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/dmarcd/dmarcd/parse"
)

const (
	meta   = `<report_metadata><org_name>Org</org_name><email>x@org.example</email><report_id>id</report_id><date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>`
	policy = `<policy_published><domain>example.com</domain><p>none</p></policy_published>`
	rec    = `<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row></record>`
)

func doc(body string) []byte { return []byte("<feedback>" + body + "</feedback>") }

func wantCode(t *testing.T, err error, code parse.Code, msg string) {
	t.Helper()
	if parse.CodeOf(err) != code {
		t.Fatalf("error %v (code %q), want code %q", err, parse.CodeOf(err), code)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("message %q does not contain %q", err, msg)
	}
}

func TestEntityBombIsRefusedAsDTD(t *testing.T) {
	bomb := `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<feedback><report_metadata><org_name>&lol3;</org_name></report_metadata></feedback>`
	parseBoth(t, []byte(bomb), Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
		wantCode(t, err, parse.DTDRefused, "line 2: <!DOCTYPE> refused")
	})
	// An external entity (XXE) the same.
	xxe := `<!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]><feedback>&x;</feedback>`
	parseBoth(t, []byte(xxe), Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
		wantCode(t, err, parse.DTDRefused, "DOCTYPE")
	})
}

func TestDeepNestingIsTooLarge(t *testing.T) {
	deep := strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100)
	parseBoth(t, doc(meta+policy+deep), Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
		wantCode(t, err, parse.TooLarge, "deeper than 64")
	})
	parseBoth(t, doc(meta+policy+rec), Limits{MaxDepth: 3}, func(t *testing.T, h *Header, recs []Record, err error) {
		wantCode(t, err, parse.TooLarge, "deeper than 3")
	})
}

func TestTooManyRecordsIsTooLarge(t *testing.T) {
	parseBoth(t, doc(meta+policy+strings.Repeat(rec, 4)), Limits{MaxRecords: 3}, func(t *testing.T, h *Header, recs []Record, err error) {
		wantCode(t, err, parse.TooLarge, "more than 3 records")
		if len(recs) != 3 {
			t.Errorf("%d records before the error, want 3", len(recs))
		}
	})
}

func TestTruncatedDocument(t *testing.T) {
	full := string(doc(meta + policy + rec + rec))
	for _, cut := range []int{len(full) - 1, len(full) - 20, len(full) - 40, 12} {
		parseBoth(t, []byte(full[:cut]), Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			wantCode(t, err, parse.Truncated, "document ends before </feedback>")
		})
	}
}

func TestNotAReport(t *testing.T) {
	for _, in := range []string{"", "unused", "  \n", `<?xml version="1.0"?>`, "<html><body>hi</body></html>", "<html><body"} {
		parseBoth(t, []byte(in), Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			wantCode(t, err, parse.NotAReport, "no <feedback> element: not an aggregate report")
		})
	}
}

func TestMissingFields(t *testing.T) {
	for _, tc := range []struct{ body, msg string }{
		{meta, "no policy_published"},
		{meta + `<policy_published><domain> </domain></policy_published>`, "policy_published/domain"},
		{policy, "report_metadata/date_range/begin missing"},
		{strings.Replace(meta, "<end>1700086399</end>", "<end>soon</end>", 1) + policy, `report_metadata/date_range/end "soon"`},
	} {
		parseBoth(t, doc(tc.body+rec), Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			wantCode(t, err, parse.MissingField, tc.msg)
		})
	}
}

func TestXMLSyntaxErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"<feedback>\n<a></b>", "line 2:"},
		{"<feedback>\n\n<a>\xff</a>", "line 3: invalid UTF-8"},
		{"<feedback><a>&nope;</a>", "invalid character entity &nope;"},
		{"<feedback>\n<email><bad@x></email>", "line 2:"},
		{`<?xml version="1.0"?><feedback><?xml version="1.0" encoding="latin1"?>`, "encoding"},
	} {
		parseBoth(t, []byte(tc.in), Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			wantCode(t, err, parse.XMLSyntax, tc.msg)
		})
	}
}

func TestWrapperAndTrailingGarbageAreIgnored(t *testing.T) {
	in := `<?xml version="1.0"?><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><feedback>` + meta + policy + rec + `</feedback> <<<not xml`
	parseBoth(t, []byte(in), Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
		if err != nil || len(recs) != 1 || h.Domain != "example.com" {
			t.Fatalf("err %v, %d records", err, len(recs))
		}
	})
}

func TestBOMLeadingSpaceAndEncodings(t *testing.T) {
	body := string(doc(meta + policy + rec))
	for _, in := range []string{
		"\xef\xbb\xbf" + body,
		"\n\t " + body,
		"\xef\xbb\xbf\n" + `<?xml version="1.0" encoding="UTF-8"?>` + body,
		`<?xml version="1.0" encoding="us-ascii"?>` + body,
	} {
		parseBoth(t, []byte(in), Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			if err != nil || len(recs) != 1 {
				t.Fatalf("err %v, %d records", err, len(recs))
			}
		})
	}
	latin1 := `<?xml version="1.0" encoding="ISO-8859-1"?>` + strings.Replace(body, "<org_name>Org", "<org_name>Soci\xe9t\xe9 \x93Org\x94", 1)
	parseBoth(t, []byte(latin1), Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
		if err != nil {
			t.Fatal(err)
		}
		// WHATWG: ISO-8859-1 is read as windows-1252, so 0x93/0x94 are quotes.
		if h.OrgName != "Société “Org”" {
			t.Errorf("org_name %q", h.OrgName)
		}
	})
}

func TestRecordsBeforeHeaderAreHeldUntilItIsComplete(t *testing.T) {
	in := doc(rec + meta + strings.Replace(rec, "192.0.2.1", "192.0.2.2", 1) + policy + strings.Replace(rec, "192.0.2.1", "192.0.2.3", 1))
	parseBoth(t, in, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
		if err != nil {
			t.Fatal(err)
		}
		if h.Domain != "example.com" || h.OrgName != "Org" || len(recs) != 3 {
			t.Fatalf("header %+v, %d records", h, len(recs))
		}
		for i, r := range recs {
			if r.Index != i || r.SourceIP != "192.0.2."+string(rune('1'+i)) {
				t.Errorf("record %d: %+v", i, r)
			}
		}
	})
}

func TestValuesAreNormalised(t *testing.T) {
	in := doc(`<version> 1.0 </version><report_metadata><org_name> Org Inc. </org_name><report_id> r1 </report_id><error>e1</error><error> </error><error>e2</error>
<date_range><begin> 1700000000.0 </begin><end>1700086399	</end></date_range></report_metadata>
<policy_published><domain> Example.COM. </domain><adkim>R</adkim><aspf></aspf><p>Quarantine</p><pct>100</pct></policy_published>
<policy_published><domain>second.example</domain></policy_published>
<record><row><source_ip> ::FFFF:192.0.2.1 </source_ip><count> 7 </count><policy_evaluated><disposition>Reject</disposition><dkim>Pass</dkim><spf>FAIL</spf>
<reason><type></type><comment>dropped</comment></reason><reason><type>Mailing_List</type><comment> list </comment></reason><reason><type>future_type</type></reason></policy_evaluated></row>
<identities><header_from> Mail.Example.COM. </header_from><envelope_from></envelope_from></identities>
<auth_results><dkim><domain>d.example</domain><selector>s1</selector><result>PermError</result><human_result></human_result></dkim><spf><domain>e.example</domain><scope>HELO</scope><result>SoftFail</result></spf></auth_results>
<extension><x:foo xmlns:x="urn:x">ignored</x:foo></extension></record>
<record><row><source_ip>2001:DB8:0:0::1</source_ip><count>1.5</count></row></record>
<record><row><source_ip></source_ip><count>-1</count></row></record>`)
	parseBoth(t, in, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
		if err != nil {
			t.Fatal(err)
		}
		if h.Version != "1.0" || h.OrgName != "Org Inc." || h.ReportID != "r1" || h.Domain != "example.com" ||
			h.Begin.Unix() != 1700000000 || h.End.Unix() != 1700086399 || h.Begin.Location().String() != "UTC" ||
			len(h.Errors) != 2 || h.ADKIM != (Opt{"r", true}) || h.ASPF != (Opt{"", true}) || h.SP.Set ||
			h.P.Value != "quarantine" || h.Pct != (Opt{"100", true}) || h.Schema != SchemaRFC7489 {
			t.Errorf("header %+v", h)
		}
		r := recs[0]
		if r.SourceIP != "192.0.2.1" || r.Count != 7 || r.Disposition != "reject" || r.EvalDKIM != "pass" || r.EvalSPF != "fail" ||
			r.HeaderFrom != "mail.example.com" || r.EnvelopeFrom != (Opt{"", true}) || r.EnvelopeTo.Set || r.Invalid != "" {
			t.Errorf("record 0 %+v", r)
		}
		if len(r.Reasons) != 2 || r.Reasons[0] != (Reason{"mailing_list", "list"}) || r.Reasons[1].Type != "future_type" {
			t.Errorf("reasons %+v", r.Reasons)
		}
		if len(r.DKIM) != 1 || r.DKIM[0] != (DKIMResult{"d.example", "s1", "permerror", ""}) ||
			len(r.SPF) != 1 || r.SPF[0] != (SPFResult{"e.example", "helo", "softfail", ""}) {
			t.Errorf("auth results %+v %+v", r.DKIM, r.SPF)
		}
		if recs[1].SourceIP != "2001:db8::1" || recs[1].Invalid != `count "1.5": not a non-negative integer` || recs[1].Count != 0 {
			t.Errorf("record 1 %+v", recs[1])
		}
		if recs[2].Invalid != `source_ip "": not an IP address; count "-1": not a non-negative integer` {
			t.Errorf("record 2 %+v", recs[2])
		}
	})
}

func TestStreamingReadsInSmallPieces(t *testing.T) {
	in := doc(meta + policy + strings.Repeat(rec, 50))
	d := newDecoderBuf(iotest.HalfReader(bytes.NewReader(in)), Limits{}, 16)
	n := 0
	for {
		r, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Index != n {
			t.Fatalf("index %d, want %d", r.Index, n)
		}
		n++
	}
	if n != 50 {
		t.Fatalf("%d records", n)
	}
}

func TestReaderErrorsKeepTheirCode(t *testing.T) {
	limit := &parse.Error{Code: parse.DecompressionLimit, Msg: "more than 20 MiB"}
	r := io.MultiReader(bytes.NewReader(doc(meta + policy + rec)[:300]), iotest.ErrReader(limit))
	for _, ref := range []bool{false, true} {
		_, _, err := parseWith(newDecoder(r, Limits{}, ref))
		if parse.CodeOf(err) != parse.DecompressionLimit {
			t.Errorf("reference=%v: %v", ref, err)
		}
		r = io.MultiReader(bytes.NewReader(doc(meta + policy + rec)[:300]), iotest.ErrReader(limit))
	}
}

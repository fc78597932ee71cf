package aggregate

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"

	"github.com/dmarcd/dmarcd/parse"
)

// transcript is everything a decoder hands out for one input.
type transcript struct {
	hdr     *Header
	hdrCode parse.Code
	recs    []Record
	code    parse.Code // of the error ending the records; "" for io.EOF
	err     error
	renamed []Rename
}

func decodeAll(d *Decoder) transcript {
	var t transcript
	h, err := d.Header()
	if err != nil {
		t.hdrCode, t.err = parse.CodeOf(err), err
		if t.hdrCode == "" {
			t.hdrCode = "not a *parse.Error"
		}
		return t
	}
	t.hdr = h
	for {
		r, err := d.Next()
		if err == io.EOF {
			t.renamed = d.Renamed()
			return t
		}
		if err != nil {
			t.code, t.err = parse.CodeOf(err), err
			if t.code == "" {
				t.code = "not a *parse.Error"
			}
			return t
		}
		t.recs = append(t.recs, *r)
	}
}

// fuzzLimits are small so that the limits are reached by fuzzed inputs.
//
// MaxTokenBytes is left at its default: past the token limit, a token that
// is also malformed may be refused as too_large by one decoder and as
// xml_syntax by the other, depending on where each stops reading it.
// TestTokenLimitIsExact holds them to the same answer on well-formed tokens.
var fuzzLimits = Limits{MaxRecords: 20, MaxDepth: 12, MaxValueBytes: 64, MaxUnknownBytes: 300,
	MaxHeaderBytes: 700, MaxResults: 3, MaxCount: 1 << 40}

// handSeeds are inputs aimed at the corners where a hand-written scanner
// and encoding/xml could part ways.
var handSeeds = []string{
	"",
	"unused",
	"\xef\xbb\xbf  <feedback/>",
	"<feedback>",
	"<feedback></feedback>",
	"<feedback></feedback> trailing <garbage",
	`<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><feedback><report_metadata><date_range><begin>1</begin><end>2</end></date_range></report_metadata><policy_published><domain>Example.COM.</domain></policy_published><record><row><source_ip>::ffff:1.2.3.4</source_ip><count>3</count></row></record></feedback>`,
	`<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0"><policy_published><domain>a</domain></policy_published><report_metadata><date_range><begin> 1.0 </begin><end>2</end></date_range></report_metadata></feedback>`,
	`<d:feedback xmlns:d="urn:ietf:params:xml:ns:dmarc-2.0"><d:record><d:row><d:source_ip>x</d:source_ip></d:row></d:record><d:policy_published><d:domain>a</d:domain></d:policy_published><d:report_metadata><d:date_range><d:begin>1</d:begin><d:end>2</d:end></d:date_range></d:report_metadata><d:record/></d:feedback>`,
	`<?xml version="1.0" encoding="windows-1252"?><feedback><report_metadata><org_name>Caf` + "\xe9" + `</org_name><date_range><begin>1</begin><end>2</end></date_range></report_metadata><policy_published><domain>a</domain></policy_published></feedback>`,
	`<?xml version="1.0" encoding="iso-8859-1"?><feedback/>`,
	`<?xml version="1.0" encoding="utf8"?><feedback>` + "\xff" + `</feedback>`,
	`<?xml version="1.1"?><feedback/>`,
	`<?xml version="1.0" encoding="bogus"?><feedback/>`,
	`<a/><?xml version="1.0" encoding="latin1"?><feedback/>`,
	`<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><feedback>&lol2;</feedback>`,
	`<!DOCTYPE x [<!-- > --> <!ELEMENT a "<>">`,
	`<feedback><report_metadata><org_name>a &amp; b &#65;&#x42;&#xD800;&lt;&gt;&apos;&quot;</org_name></report_metadata></feedback>`,
	`<feedback><x>&#0;</x></feedback>`,
	`<feedback><x>&#x110000;</x></feedback>`,
	`<feedback><x>&#;&#x;</x></feedback>`,
	`<feedback><x>&bogus;</x></feedback>`,
	`<feedback><x>&amp</x></feedback>`,
	`<feedback><x>&amp`,
	`<feedback><x>]]></x></feedback>`,
	`<feedback><x><![CDATA[a]]]>b<![CDATA[]]></x></feedback>`,
	`<feedback><x><![CDATA[unterminated`,
	`<feedback><!-- a -- b --></feedback>`,
	`<feedback><!---></feedback>`,
	`<feedback><?pi x?><?xml?></feedback>`,
	`<feedback a="1"b='2' c = "&lt;"></feedback>`,
	`<feedback a="<"></feedback>`,
	`<feedback a=1></feedback>`,
	`<feedback a></feedback>`,
	`<feedback a="` + "\xff",
	"<feedback>\r\n<x>\r\r\n</x>\x01</feedback>",
	"<feedback>\xef\xbf\xbe</feedback>",
	"<f\xc3\xa9edback></f\xc3\xa9edback>",
	"<\xff></\xff>",
	"<a:b:c/>",
	"<:a></:a><a:></a:>",
	"<a></b>",
	"<a:x xmlns:a='u' xmlns:b='u'></b:x>",
	"</a>",
	"<feedback></feedback  >",
	`<feedback><report_meta_data><data_range><begin>1</begin><end>2</end></data_range><date_rnage><begin>3</begin></date_rnage></report_meta_data><policy_publish><domain>a</domain></policy_publish><record><row><source_ip>10.0.0.1</source_ip><count>1</count><policy_evaluation><disposition>none</disposition></policy_evaluation></row><identities><header_from>a</header_from></identities><auth_result><dkim><domain>a</domain></dkim></auth_result></record></feedback>`,
	"<feedback></feedback x>",
	"<1a/>",
	`<feedback><record><row><source_ip> 2001:DB8::1 </source_ip><count>-1</count><policy_evaluated><disposition>Reject</disposition><reason><type></type><comment>c</comment></reason><reason><type>Forwarded</type></reason></policy_evaluated></row><identities><header_from>A.Example.</header_from><envelope_from></envelope_from></identities><auth_results><dkim><domain>d</domain><result>PASS</result><human_result/></dkim><spf><domain>s</domain><scope>MFROM</scope><result>SoftFail</result></spf></auth_results><extension><x>1</x></extension></record><report_metadata><org_name/><email>dmarc@Reporter.example</email><report_id> r1 </report_id><date_range><begin>1</begin><end>abc</end></date_range></report_metadata><policy_published><domain>a</domain></policy_published></feedback>`,
	`<feedback><report_metadata><date_range><begin>1</begin><end>2</end></date_range></report_metadata><policy_published><domain>a</domain></policy_published><policy_published><domain>b</domain></policy_published>` +
		`<record><row><source_ip>1.2.3.4</source_ip><count>1</count></row></record><report_metadata><org_name>late</org_name></report_metadata></feedback>`,
	"<a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a>",
}

func fuzzSeeds(f *testing.F) {
	for _, s := range handSeeds {
		f.Add([]byte(s))
	}
	// The corpus's malformed files too, when the corpus is there: without
	// it the seeds in testdata/fuzz still run (corpus.Manifest would skip).
	if _, err := os.Stat(filepath.Join(corpus.ModuleRoot(), "..", "shared", "corpus", "MANIFEST.tsv")); err == nil {
		for _, e := range corpus.Manifest(f, "aggregate", "malformed") {
			f.Add(corpusXML(f, e.Path))
		}
	}
	var many bytes.Buffer
	many.WriteString(`<feedback><report_metadata><date_range><begin>1</begin><end>2</end></date_range></report_metadata><policy_published><domain>a</domain></policy_published>`)
	for i := 0; i < 25; i++ {
		fmt.Fprintf(&many, "<record><row><source_ip>10.0.0.%d</source_ip><count>%d</count></row></record>\n", i, i)
	}
	many.WriteString("</feedback>")
	f.Add(many.Bytes())
}

// FuzzDecoderAgrees runs the fast decoder (with a 64 KiB buffer, and with a
// 16-byte buffer fed one byte per read to exercise every refill) and the
// encoding/xml reference on the same input: they must agree on error or
// not, the error code, the header and every record.
func FuzzDecoderAgrees(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ref := decodeAll(newDecoder(bytes.NewReader(data), fuzzLimits, true))
		fast := decodeAll(newDecoder(bytes.NewReader(data), fuzzLimits, false))
		tiny := decodeAll(newDecoderBuf(iotest.OneByteReader(bytes.NewReader(data)), fuzzLimits, 16))
		for _, got := range []struct {
			name string
			t    transcript
		}{{"fast", fast}, {"fast, 16-byte buffer", tiny}} {
			if got.t.hdrCode != ref.hdrCode || got.t.code != ref.code {
				t.Fatalf("%s: header error %q, error %q (%v); reference: %q, %q (%v)",
					got.name, got.t.hdrCode, got.t.code, got.t.err, ref.hdrCode, ref.code, ref.err)
			}
			if !reflect.DeepEqual(got.t.hdr, ref.hdr) {
				t.Fatalf("%s: header\n%+v\nreference:\n%+v", got.name, got.t.hdr, ref.hdr)
			}
			if len(got.t.recs) != len(ref.recs) {
				t.Fatalf("%s: %d records, reference %d", got.name, len(got.t.recs), len(ref.recs))
			}
			if !reflect.DeepEqual(got.t.renamed, ref.renamed) {
				t.Fatalf("%s: renamed %+v, reference %+v", got.name, got.t.renamed, ref.renamed)
			}
			for i := range ref.recs {
				if !reflect.DeepEqual(got.t.recs[i], ref.recs[i]) {
					t.Fatalf("%s: record %d\n%+v\nreference:\n%+v", got.name, i, got.t.recs[i], ref.recs[i])
				}
			}
		}
	})
}

// FuzzDecoder checks that no input makes the decoder panic, loop, or return
// an error that is not a *parse.Error.
func FuzzDecoder(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		tr := decodeAll(NewDecoder(bytes.NewReader(data), Limits{}))
		if tr.err != nil && parse.CodeOf(tr.err) == "" {
			t.Fatalf("error without code: %v", tr.err)
		}
		if tr.hdr != nil {
			_ = Key(tr.hdr)
		}
	})
}

func equalTranscripts(a, b transcript) bool {
	return a.hdrCode == b.hdrCode && a.code == b.code && reflect.DeepEqual(a.hdr, b.hdr) && reflect.DeepEqual(a.recs, b.recs) &&
		reflect.DeepEqual(a.renamed, b.renamed)
}

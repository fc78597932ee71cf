package aggregate

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/parse"
)

// genReader streams prefix, then unit repeated until n bytes of it were
// produced, then suffix, without ever holding more than one unit: a 200 MB
// attack costs the test nothing. read counts the bytes handed out.
type genReader struct {
	parts [][]byte
	unit  []byte
	n     int64 // bytes of unit still to produce
	stage int   // 0 prefix, 1 repeated unit, 2 suffix, 3 done
	off   int   // in the current part or unit
	read  int64
}

func newGen(prefix, unit string, n int64, suffix string) *genReader {
	return &genReader{parts: [][]byte{[]byte(prefix), []byte(suffix)}, unit: []byte(unit), n: n}
}

func (g *genReader) Read(p []byte) (int, error) {
	k := 0
	for k < len(p) && g.stage < 3 {
		switch g.stage {
		case 0, 2:
			part := g.parts[g.stage/2]
			c := copy(p[k:], part[g.off:])
			k += c
			g.off += c
			if g.off == len(part) {
				g.stage++
				g.off = 0
			}
		case 1:
			if g.n <= 0 {
				g.stage, g.off = 2, 0
				continue
			}
			chunk := g.unit[g.off:]
			if int64(len(chunk)) > g.n {
				chunk = chunk[:g.n]
			}
			c := copy(p[k:], chunk)
			k += c
			g.n -= int64(c)
			g.off = (g.off + c) % len(g.unit)
		}
	}
	g.read += int64(k)
	if k == 0 {
		return 0, io.EOF
	}
	return k, nil
}

// attack is a hostile report built from a generator, and what the decoders
// must answer.
type attack struct {
	name                 string
	prefix, unit, suffix string
	n                    int64 // bytes of the repeated unit
	lim                  Limits
	code                 parse.Code
	msg                  string // in the error of both decoders
	maxRead              int64  // input bytes the decoder may read before it stops
	maxAlloc             uint64 // heap it may allocate, garbage included; 0: allocBound
}

const (
	hdrOpen  = `<?xml version="1.0"?><feedback><report_metadata><org_name>Org</org_name><email>x@org.example</email><report_id>id</report_id><date_range><begin>1700000000</begin><end>1700086399</end></date_range>`
	hdrClose = `</report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>`
	// hugeN is the size of the repeated part of each attack: far past every
	// limit, never produced in full.
	hugeN = 200 << 20
	// readSlack is what a decoder may read past a limit: its buffer (the
	// scanner's grows to twice the token limit, the reference's bufio holds
	// 64 KiB and encoding/xml reads twice the token limit plus 8 KiB).
	readSlack = 4*DefaultMaxTokenBytes + 64<<10 + 8<<10
	// allocBound is the heap a decoder may allocate for one attack: its
	// buffers at the limits, whatever the input size.
	allocBound = 4 << 20
	// regionAlloc is the heap a decoder may allocate for an attack of many
	// small tokens that a region limit of 1 MiB stops: encoding/xml
	// allocates for every token it returns (about 27 bytes per byte read,
	// garbage included), and the header or the records held before it are
	// kept until the limit.
	regionAlloc = 32 << 20
)

var tokenAttacks = []attack{
	{name: "200 MB org_name", prefix: hdrOpen[:strings.Index(hdrOpen, "Org<")], unit: "A", n: hugeN,
		code: parse.TooLarge, msg: "org_name", maxRead: readSlack},
	{name: "200 MB of white space between elements", prefix: hdrOpen + hdrClose, unit: " \n\t", n: hugeN,
		code: parse.TooLarge, msg: "longer than 65536 bytes", maxRead: readSlack},
	{name: "200 MB attribute", prefix: `<feedback x="`, unit: "A", n: hugeN,
		code: parse.TooLarge, msg: "longer than 65536 bytes", maxRead: readSlack},
	{name: "200 MB element name", prefix: hdrOpen + hdrClose + "<x", unit: "A", n: hugeN, suffix: "/>",
		code: parse.TooLarge, msg: "longer than 65536 bytes", maxRead: readSlack},
	{name: "200 MB comment", prefix: hdrOpen + "<!--", unit: "A", n: hugeN, suffix: "-->",
		code: parse.TooLarge, msg: "report_metadata", maxRead: readSlack},
	{name: "200 MB processing instruction", prefix: hdrOpen + "<?hostile ", unit: "A", n: hugeN, suffix: "?>",
		code: parse.TooLarge, msg: "longer than 65536 bytes", maxRead: readSlack},
	{name: "200 MB CDATA section", prefix: hdrOpen + "<extra_contact_info><![CDATA[", unit: "A", n: hugeN, suffix: "]]>",
		code: parse.TooLarge, msg: "extra_contact_info", maxRead: readSlack},
	{name: "200 MB directive", prefix: "<!DOCTYPE feedback [", unit: "A", n: hugeN, suffix: "]>",
		code: parse.TooLarge, msg: "longer than 65536 bytes", maxRead: readSlack},
	{name: "200 MB unknown element name", prefix: hdrOpen + hdrClose + "<", unit: "a", n: hugeN, suffix: ">",
		code: parse.TooLarge, msg: "longer than 65536 bytes", maxRead: readSlack},
	{name: "value in 200 MB of small pieces", prefix: hdrOpen + "<extra_contact_info>", unit: "AAAAAAAA<!---->", n: hugeN,
		code: parse.TooLarge, msg: "value of <extra_contact_info> longer than 65536 bytes (limit MaxValueBytes)", maxRead: 3 * readSlack},
	{name: "unknown element holding 200 MB of small elements", prefix: hdrOpen + hdrClose + rec + "<x_hostile>", unit: "<a>b</a>", n: hugeN, maxAlloc: regionAlloc,
		code: parse.TooLarge, msg: "unknown element <x_hostile> longer than 1048576 bytes (limit MaxUnknownBytes)", maxRead: DefaultMaxUnknownBytes + readSlack},
	{name: "200 MB of elements before feedback", prefix: "<wrapper>", unit: "<a>b</a>", n: hugeN, maxAlloc: regionAlloc,
		code: parse.NotAReport, msg: "no <feedback> element in the first 1048576 bytes", maxRead: DefaultMaxUnknownBytes + readSlack},
	{name: "200 MB of error elements in the header", prefix: hdrOpen, unit: "<error>e</error>", n: hugeN, maxAlloc: regionAlloc,
		code: parse.TooLarge, msg: "not complete within 1048576 bytes of <feedback> (limit MaxHeaderBytes)", maxRead: DefaultMaxHeaderBytes + readSlack},
	{name: "200 MB of records before the header", prefix: "<feedback>", unit: rec, n: hugeN, maxAlloc: regionAlloc,
		code: parse.TooLarge, msg: "limit MaxHeaderBytes", maxRead: DefaultMaxHeaderBytes + readSlack},
	{name: "5,000 DKIM results in a record", prefix: hdrOpen + hdrClose + "<record><auth_results>",
		unit: "<dkim><domain>example.com</domain><selector>s</selector><result>pass</result></dkim>", n: 5000 * 82,
		code: parse.TooLarge, msg: "record 0: more than 100 DKIM results (limit MaxResults)", maxRead: readSlack},
	{name: "5,000 SPF results in a record", prefix: hdrOpen + hdrClose + "<record><auth_results>",
		unit: "<spf><domain>example.com</domain><result>pass</result></spf>", n: 5000 * 60,
		code: parse.TooLarge, msg: "more than 100 SPF results", maxRead: readSlack},
	{name: "5,000 override reasons in a record", prefix: hdrOpen + hdrClose + "<record><row><policy_evaluated>",
		unit: "<reason><type>forwarded</type></reason>", n: 5000 * 39,
		code: parse.TooLarge, msg: "more than 100 override reasons", maxRead: readSlack},
}

// TestEachLimitStopsItsAttackWhileReading feeds every attack, streamed from
// a generator, to both decoders: each must end with the attack's code and a
// message naming the element and the limit, having read no further than
// the limit plus one buffer, and allocated a bounded heap.
func TestEachLimitStopsItsAttackWhileReading(t *testing.T) {
	for _, a := range tokenAttacks {
		for _, dec := range decoders {
			t.Run(a.name+"/"+dec.name, func(t *testing.T) {
				g := newGen(a.prefix, a.unit, a.n, a.suffix)
				var ms0, ms1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms0)
				_, _, err := parseWith(newDecoder(g, a.lim, dec.ref))
				runtime.ReadMemStats(&ms1)
				wantCode(t, err, a.code, a.msg)
				if g.read > int64(len(a.prefix))+a.maxRead {
					t.Errorf("read %d bytes, want at most %d", g.read, int64(len(a.prefix))+a.maxRead)
				}
				bound := a.maxAlloc
				if bound == 0 {
					bound = allocBound
				}
				if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > bound {
					t.Errorf("allocated %d bytes, want at most %d", alloc, bound)
				}
				t.Logf("read %d bytes, allocated %d: %v", g.read, ms1.TotalAlloc-ms0.TotalAlloc, err)
			})
		}
	}
}

// TestTokenLimitIsExact pins that a token of exactly MaxTokenBytes passes
// and one byte more does not, in both decoders and for every kind of token.
func TestTokenLimitIsExact(t *testing.T) {
	const max = 200
	lim := Limits{MaxTokenBytes: max}
	pad := func(open, close string, n int) string {
		return open + strings.Repeat("a", n-len(open)-len(close)) + close
	}
	for _, tc := range []struct {
		name string
		doc  func(n int) string // a report with one token of n bytes
	}{
		{"comment", func(n int) string { return string(doc(meta + pad("<!--", "-->", n) + policy + rec)) }},
		{"processing instruction", func(n int) string { return string(doc(meta + pad("<?pi ", "?>", n) + policy + rec)) }},
		{"character data", func(n int) string {
			return string(doc(strings.Replace(meta, "<org_name>Org", "<org_name>"+strings.Repeat("O", n), 1) + policy + rec))
		}},
		{"CDATA section", func(n int) string {
			return string(doc(strings.Replace(meta, "<org_name>Org", "<org_name>"+pad("<![CDATA[", "]]>", n), 1) + policy + rec))
		}},
		{"start tag", func(n int) string { return string(doc(meta + policy + pad(`<x a="`, `"/>`, n) + rec)) }},
		{"white space", func(n int) string { return string(doc(meta + policy + strings.Repeat(" ", n) + rec)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parseBoth(t, []byte(tc.doc(max)), lim, func(t *testing.T, h *Header, recs []Record, err error) {
				if err != nil || len(recs) != 1 {
					t.Fatalf("%d bytes: err %v, %d records", max, err, len(recs))
				}
			})
			parseBoth(t, []byte(tc.doc(max+1)), lim, func(t *testing.T, h *Header, recs []Record, err error) {
				wantCode(t, err, parse.TooLarge, "longer than 200 bytes (limit MaxTokenBytes)")
			})
		})
	}
}

// TestDecoderMemoryIsFlatOnAReportFullOfMaximalTokens reads a report whose
// every value and gap is just under the limits: no error, and the heap the
// decoder allocates stays bounded by the limits, not by the input.
func TestDecoderMemoryIsFlatOnAReportFullOfMaximalTokens(t *testing.T) {
	big := strings.Repeat("x", DefaultMaxValueBytes)
	r := `<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><reason><type>other</type><comment>` + big +
		`</comment></reason></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers></record>` +
		strings.Repeat(" ", DefaultMaxTokenBytes)
	for _, dec := range decoders {
		t.Run(dec.name, func(t *testing.T) {
			g := newGen("<feedback>"+meta+policy, r, int64(len(r))*200, "</feedback>")
			d := newDecoder(g, Limits{}, dec.ref)
			var ms0, ms1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			n := 0
			for {
				_, err := d.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			runtime.ReadMemStats(&ms1)
			if n != 200 {
				t.Fatalf("%d records", n)
			}
			// Each record's comment is a new 64 KiB string (200 of them:
			// 13 MB); what must not grow is the rest.
			if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 200*DefaultMaxValueBytes+2*allocBound {
				t.Errorf("allocated %d bytes for %d bytes of input", alloc, g.read)
			}
			if ms1.HeapInuse > ms0.HeapInuse+64<<20 {
				t.Errorf("heap in use grew by %d bytes", ms1.HeapInuse-ms0.HeapInuse)
			}
		})
	}
}

func TestGenReaderProducesExactlyWhatItDescribes(t *testing.T) {
	got, err := io.ReadAll(newGen("<a>", "xyz", 7, "</a>"))
	if err != nil || !bytes.Equal(got, []byte("<a>xyzxyzx</a>")) {
		t.Fatalf("%q %v", got, err)
	}
}

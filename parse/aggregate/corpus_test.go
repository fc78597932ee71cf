package aggregate

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/corpus"

	"github.com/dmarcd/dmarcd/parse"
)

// corpusXML returns the XML payload of a corpus file, decompressing gzip
// and zip (first member).
func corpusXML(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpus.Dir(t), path))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return out
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(zr.File) == 0 {
			return nil
		}
		rc, err := zr.File[0].Open()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer rc.Close()
		out, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return out
	}
	return data
}

// decoders are the two implementations every behaviour test runs against.
var decoders = []struct {
	name string
	ref  bool
}{{"fast", false}, {"reference", true}}

func parseBoth(t *testing.T, data []byte, lim Limits, f func(t *testing.T, h *Header, recs []Record, err error)) {
	t.Helper()
	for _, dec := range decoders {
		t.Run(dec.name, func(t *testing.T) {
			h, recs, err := parseWith(newDecoder(bytes.NewReader(data), lim, dec.ref))
			f(t, h, recs, err)
		})
	}
}

func TestCorpusAggregateReportsParse(t *testing.T) {
	n := 0
	for _, e := range corpus.Manifest(t, "aggregate") {
		if e.Type != "aggregate" {
			continue
		}
		n++
		data := corpusXML(t, e.Path)
		t.Run(e.Path, func(t *testing.T) {
			parseBoth(t, data, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				if len(recs) != e.Records {
					t.Errorf("records: got %d, MANIFEST says %d", len(recs), e.Records)
				}
				var sum uint64
				for i, r := range recs {
					sum += r.Count
					if r.Index != i {
						t.Errorf("record %d: Index %d", i, r.Index)
					}
					if r.Invalid != "" {
						t.Errorf("record %d invalid: %s", i, r.Invalid)
					}
				}
				if sum != e.CountSum {
					t.Errorf("count sum: got %d, MANIFEST says %d", sum, e.CountSum)
				}
				wantOrg := strings.TrimSpace(e.Org)
				if wantOrg == "(empty)" {
					wantOrg = ""
				}
				if h.OrgName != wantOrg {
					t.Errorf("org_name: got %q, MANIFEST says %q", h.OrgName, wantOrg)
				}
				if h.Domain != strings.ToLower(e.Domain) {
					t.Errorf("policy domain: got %q, MANIFEST says %q", h.Domain, e.Domain)
				}
				if h.Begin.IsZero() || h.End.Before(h.Begin) {
					t.Errorf("date range %v..%v", h.Begin, h.End)
				}
				if len(Key(h)) != 64 {
					t.Errorf("Key(h) = %q", Key(h))
				}
			})
		})
	}
	if n < 30 {
		t.Fatalf("only %d aggregate files in the MANIFEST", n)
	}
}

func TestCorpusMalformedFilesGetTheirReason(t *testing.T) {
	for _, tc := range []struct {
		path string
		code parse.Code
		msg  string
	}{
		{"domainaware__parsedmarc/malformed/empty.xml", parse.NotAReport, "no <feedback> element"},
		{"domainaware__parsedmarc/malformed/invalid_utf_8.xml", parse.XMLSyntax, "line 31: invalid UTF-8"},
		{"domainaware__parsedmarc/malformed/invalid_xml.xml", parse.XMLSyntax, "line 5:"},
		{"keltia__dmarc-cat/malformed/bad.zip", parse.NotAReport, "not an aggregate report"},
	} {
		data := corpusXML(t, tc.path)
		t.Run(tc.path, func(t *testing.T) {
			parseBoth(t, data, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
				if got := parse.CodeOf(err); got != tc.code {
					t.Fatalf("code %q (%v), want %q", got, err, tc.code)
				}
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("message %q does not contain %q", err, tc.msg)
				}
			})
		})
	}
}

func TestCorpusPinnedValues(t *testing.T) {
	t.Run("RFC 9990 sample", func(t *testing.T) {
		data := corpusXML(t, "domainaware__parsedmarc/aggregate/rfc9990-sample.xml")
		parseBoth(t, data, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if h.Schema != SchemaRFC9990 {
				t.Errorf("schema %q", h.Schema)
			}
			if h.NP != (Opt{"none", true}) || h.Testing != (Opt{"n", true}) || h.DiscoveryMethod != (Opt{"treewalk", true}) {
				t.Errorf("np %+v testing %+v discovery_method %+v", h.NP, h.Testing, h.DiscoveryMethod)
			}
			if h.ADKIM.Set || h.Pct.Set || h.Fo.Set {
				t.Errorf("absent adkim/pct/fo set: %+v %+v %+v", h.ADKIM, h.Pct, h.Fo)
			}
			if h.Generator != "Example DMARC Aggregate Reporter v1.2" || h.Begin.Unix() != 302832000 || h.End.Unix() != 302918399 {
				t.Errorf("generator %q begin %v end %v", h.Generator, h.Begin, h.End)
			}
			r := recs[0]
			if r.Disposition != "pass" || r.Count != 123 || r.SourceIP != "192.0.2.123" ||
				r.EnvelopeFrom != (Opt{"example.com", true}) || r.EnvelopeTo.Set ||
				len(r.DKIM) != 1 || r.DKIM[0].Selector != "abc123" || len(r.SPF) != 1 || r.SPF[0].Scope != "" {
				t.Errorf("record %+v", r)
			}
		})
	})
	t.Run("upper-cased Pass is lowered", func(t *testing.T) {
		data := corpusXML(t, "domainaware__parsedmarc/aggregate/report_with_upper_cased_pass.xml")
		parseBoth(t, data, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			if err != nil {
				t.Fatal(err)
			}
			r := recs[0]
			if r.EvalDKIM != "pass" || r.EvalSPF != "pass" || r.DKIM[0].Result != "pass" || r.SPF[0].Result != "pass" {
				t.Errorf("record %+v", r)
			}
			if h.OrgName != "example.com" || h.Schema != SchemaRFC7489 || h.SP.Set {
				t.Errorf("header %+v", h)
			}
		})
	})
	t.Run("AOL windows-1252", func(t *testing.T) {
		data := corpusXML(t, "bbustin__dmarc_aggregate_parser/aggregate/dmarc.xml")
		parseBoth(t, data, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if h.OrgName != "AOL" || h.Domain != "website.com" || h.Email != "postmaster@aol.com" || len(recs) != 1 {
				t.Errorf("header %+v, %d records", h, len(recs))
			}
			if recs[0].DKIM[0].Selector != "" {
				t.Errorf("absent selector: %q", recs[0].DKIM[0].Selector)
			}
		})
	})
	t.Run("GMX namespace", func(t *testing.T) {
		data := corpusXML(t, "cry-inc__dmarc-report-viewer/aggregate/gmxnet.xml")
		parseBoth(t, data, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if h.Schema != SchemaRFC9990 || h.Version != "1.0" || !h.Testing.Set || !h.DiscoveryMethod.Set || h.Pct.Set {
				t.Errorf("header %+v", h)
			}
		})
	})
	t.Run("Outlook envelope_to", func(t *testing.T) {
		data := corpusXML(t, "ZeWaren__dmarc-report-milter/aggregate/correct_dmarc_report.xml")
		parseBoth(t, data, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			if err != nil {
				t.Fatal(err)
			}
			r := recs[0]
			if !r.EnvelopeTo.Set || r.EnvelopeTo.Value == "" || !r.EnvelopeFrom.Set {
				t.Errorf("envelope_to %+v envelope_from %+v", r.EnvelopeTo, r.EnvelopeFrom)
			}
			if h.Schema != SchemaRFC7489 {
				t.Errorf("schema %q", h.Schema)
			}
		})
	})
	t.Run("empty reason dropped", func(t *testing.T) {
		data := corpusXML(t, "domainaware__parsedmarc/aggregate/empty_reason.xml")
		parseBoth(t, data, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if len(recs[0].Reasons) != 0 {
				t.Errorf("reasons %+v", recs[0].Reasons)
			}
		})
	})
	t.Run("IPv6 source canonical", func(t *testing.T) {
		data := corpusXML(t, "domainaware__parsedmarc/aggregate/nice-input.xml")
		parseBoth(t, data, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
			if err != nil {
				t.Fatal(err)
			}
			v6 := 0
			for _, r := range recs {
				if strings.Contains(r.SourceIP, ":") {
					v6++
				}
			}
			if v6 != 1 || !h.NP.Set || h.Fo.Set {
				t.Errorf("%d IPv6 sources; header %+v", v6, h)
			}
		})
	})
}

package aggregate

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"
)

// header is a complete report header around the report_metadata body meta.
func header(meta string) string {
	return `<report_metadata><org_name>mail.example.jp</org_name><email>dmarc@example.jp</email><report_id>r1</report_id>` + meta +
		`</report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>`
}

const misspeltRecord = `<record><row><source_ip>192.0.2.1</source_ip><count>3</count></row><identifiers><header_from>example.com</header_from></identifiers></record>`

func TestAMisspeltDateRangeIsReadAsDateRange(t *testing.T) {
	// A Japanese carrier's report writes <data_range> for <date_range>.
	in := doc(header(`<data_range><begin>1700000000</begin><end>1700086399</end></data_range>`) + misspeltRecord)
	parseBoth(t, in, Limits{}, func(t *testing.T, h *Header, recs []Record, err error) {
		if err != nil {
			t.Fatal(err)
		}
		if h.Begin.Unix() != 1700000000 || h.End.Unix() != 1700086399 || len(recs) != 1 {
			t.Errorf("begin %v end %v, %d records", h.Begin, h.End, len(recs))
		}
	})
	d := NewDecoder(bytes.NewReader(in), Limits{})
	if _, _, err := parseWith(d); err != nil {
		t.Fatal(err)
	}
	if want := []Rename{{Name: "data_range", As: "date_range"}}; !reflect.DeepEqual(d.Renamed(), want) {
		t.Errorf("renamed %+v, want %+v", d.Renamed(), want)
	}
}

// TestTheNearNameRule holds the rule of names.go to its documented cases:
// which container names are matched, how near a name must be, and which
// names are never taken for another.
func TestTheNearNameRule(t *testing.T) {
	cases := []struct {
		parent kind
		name   string
		as     string // "" when the element stays unknown (ignored)
	}{
		{kMeta, "data_range", "date_range"},
		{kMeta, "date_rnage", "date_range"}, // a transposition is one edit
		{kMeta, "daterange", "date_range"},
		{kMeta, "dates_ranges", "date_range"}, // two edits: a fifth of 10
		{kMeta, "datrang", ""},                // three edits
		{kMeta, "Date_Range", "date_range"},   // case counts as edits
		{kMeta, "date", ""},
		{kRecord, "identities", "identifiers"}, // parsedmarc accepts it
		{kRecord, "identifier", "identifiers"},
		{kRecord, "auth_result", "auth_results"},
		{kRecord, "rows", ""},      // row: under 8 characters, exact only
		{kFeedback, "records", ""}, // record: exact only
		{kFeedback, "report_meta_data", "report_metadata"},
		{kFeedback, "policy_publish", "policy_published"},
		{kFeedback, "extension", ""},
		{kRow, "policy_evaluation", "policy_evaluated"},
		{kRow, "policy_evaluated_x", "policy_evaluated"},
		{kAuth, "dkim2", ""},              // dkim: exact only
		{kPolicyEval, "reasons", ""},      // reason: exact only
		{kMeta, "org_names", ""},          // a leaf: exact only
		{kDateRange, "begins", ""},        // a leaf: exact only
		{kIdentifiers, "header_form", ""}, // a leaf: exact only
		{kMeta, strings.Repeat("date_range", 100), ""},
	}
	for _, c := range cases {
		b := newBuilder(Limits{}.withDefaults())
		k := b.child(c.parent, []byte(c.name))
		want := kIgnore
		if c.as != "" {
			want = b.child(c.parent, []byte(c.as))
		}
		if k != want {
			t.Errorf("<%s> under kind %d: kind %d, want %d (%q)", c.name, c.parent, k, want, c.as)
		}
		var renamed []Rename
		if c.as != "" && c.as != c.name {
			renamed = []Rename{{Name: c.name, As: c.as}}
		}
		if !reflect.DeepEqual(b.renamed, renamed) {
			t.Errorf("<%s>: renamed %+v, want %+v", c.name, b.renamed, renamed)
		}
	}
}

func TestAnExactNameRefusedInItsPlaceIsNotTakenForAnother(t *testing.T) {
	// A second policy_published is ignored (the first wins); it must not be
	// read as a misspelt report_metadata or anything else.
	b := newBuilder(Limits{}.withDefaults())
	b.policySeen = true
	if k := b.child(kFeedback, []byte("policy_published")); k != kIgnore || len(b.renamed) != 0 {
		t.Errorf("kind %d, renamed %+v", k, b.renamed)
	}
}

func TestRenamesAreFewPerReport(t *testing.T) {
	var body strings.Builder
	body.WriteString(header(`<date_range><begin>1700000000</begin><end>1700086399</end></date_range>`))
	for _, n := range []string{"identifierS", "identities", "identifier", "identifers", "Identifiers", "idantifiers", "identifierz", "identifiers_", "_identifiers", "ident1fiers", "identities"} {
		body.WriteString(`<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row><` + n + `><header_from>example.com</header_from></` + n + `></record>`)
	}
	d := NewDecoder(strings.NewReader(string(doc(body.String()))), Limits{})
	for {
		r, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.HeaderFrom != "example.com" {
			t.Errorf("record %d: header_from %q", r.Index, r.HeaderFrom)
		}
	}
	if got := d.Renamed(); len(got) != maxRenames {
		t.Errorf("%d renames %+v, want the first %d distinct", len(got), got, maxRenames)
	}
}

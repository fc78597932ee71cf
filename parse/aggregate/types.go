// Package aggregate parses DMARC aggregate (rua) reports: RFC 7489 Appendix C and
// RFC 9990 Appendix A (namespace urn:ietf:params:xml:ns:dmarc-2.0, or none).
//
// The parser streams: a Decoder reads the report header (report_metadata and
// policy_published) and then yields one Record at a time, so memory stays flat
// whatever the number of records. It does no network or storage I/O.
package aggregate

import "time"

// Namespace9990 is the XML namespace of RFC 9990 reports (RFC 9990 §6.1).
const Namespace9990 = "urn:ietf:params:xml:ns:dmarc-2.0"

// Schema names stored with each report.
const (
	SchemaRFC7489 = "rfc7489"
	SchemaRFC9990 = "rfc9990"
)

// Opt is an optional string: Set is false when the element was absent, so
// "absent" is stored distinctly from any value (RFC 9990 §3.1.1.5: unspecified
// tags have their default values, which are applied at query time).
type Opt struct {
	Value string
	Set   bool
}

// Header is everything of a report except its records.
type Header struct {
	Schema           string // SchemaRFC7489 or SchemaRFC9990
	Version          string // informational only (docs/standards.md §1.1)
	OrgName          string // trimmed
	Email            string
	ExtraContactInfo string
	ReportID         string    // trimmed, raw otherwise
	Begin            time.Time // UTC
	End              time.Time // UTC
	Errors           []string
	Generator        string // RFC 9990

	Domain          string // policy_published/domain, lower-cased, no trailing dot
	ADKIM           Opt    // "r" | "s" | raw unknown value, lower-cased
	ASPF            Opt
	P               Opt
	SP              Opt
	NP              Opt // RFC 9990
	Pct             Opt // RFC 7489
	Fo              Opt
	Testing         Opt // RFC 9990: "n" | "y"
	DiscoveryMethod Opt // RFC 9990: "psl" | "treewalk"
}

// DKIMResult is one auth_results/dkim element.
type DKIMResult struct {
	Domain      string
	Selector    string
	Result      string // lower-cased
	HumanResult string
}

// SPFResult is one auth_results/spf element.
type SPFResult struct {
	Domain      string
	Scope       string // lower-cased; "" when absent (treated as mfrom)
	Result      string // lower-cased
	HumanResult string
}

// Reason is one policy_evaluated/reason (override). Reasons with an empty
// type are dropped.
type Reason struct {
	Type    string // lower-cased
	Comment string
}

// Record is one <record>, values trimmed and enums lower-cased; unknown enum
// values are kept raw.
type Record struct {
	Index        int    // 0-based position in the report
	SourceIP     string // canonical netip form, IPv4-mapped unmapped; raw text if Invalid
	Count        uint64
	Disposition  string
	EvalDKIM     string // policy_evaluated/dkim as the reporter saw it
	EvalSPF      string
	Reasons      []Reason
	HeaderFrom   string // lower-cased, no trailing dot
	EnvelopeFrom Opt
	EnvelopeTo   Opt
	DKIM         []DKIMResult
	SPF          []SPFResult

	// Invalid is non-empty when the record cannot be used (empty or invalid
	// source_ip, bad count): the reason, e.g. `source_ip "": not an IP address`.
	// Such a record is still yielded so the caller can account for it.
	Invalid string
}

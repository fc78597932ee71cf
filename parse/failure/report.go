// Package failure parses DMARC failure ("forensic", ruf) reports: Abuse
// Reporting Format messages (RFC 5965) of feedback type auth-failure
// (RFC 6591) as DMARC uses them (RFC 7489 §7.3, RFC 9991), and the plain-text
// failure notices some gateways send instead (Exim/cPanel,
// docs/standards.md §3.8).
//
// Parse takes the whole report email and returns a Report: the fields of its
// message/feedback-report part and the header of the original message from
// its third part. Redact replaces the local parts of the addresses in a
// Report with keyed tokens (RFC 6590, RFC 9991 App. A), as dmarcd stores
// failure reports. The package does no network or storage I/O.
//
// Every field value is cut to MaxFieldBytes and at most 1,000 fields of a
// header block are kept; the MIME walk has extract's header and part limits
// (extract.DefaultLimits). Domains that are not DNS names are dropped, not
// the report.
package failure

import "time"

// DefaultMaxBytes is the message size limit Parse applies when
// Options.MaxBytes is zero or less: 15 MiB, the same as mox's.
const DefaultMaxBytes = 15 << 20

// Options control Parse.
type Options struct {
	MaxBytes int64 // the largest report email read; DefaultMaxBytes when <= 0
	KeepBody bool  // keep the original message's body in Original.Body
}

// Header is one header field of the original message, in its order there.
// Value is unfolded (RFC 5322 §2.2.3) and trimmed, otherwise as received:
// encoded words (RFC 2047) are not decoded.
type Header struct {
	Name  string
	Value string
}

// Original is what the report carries of the message that failed: the third
// MIME part, text/rfc822-headers or message/rfc822 (RFC 5965 §2 d, RFC 6591
// §3.1) or a variant media type (docs/standards.md §3.8), or for a non-ARF
// notice the header block copied into its text.
type Original struct {
	From       string   // addr-spec of the first From address (the raw value when it does not parse)
	FromDomain string   // domain of From, lower-cased: the RFC5322.From (Author) Domain
	To         []string // addr-specs of To
	Subject    string   // decoded (RFC 2047)
	MessageID  string   // Message-ID, as given (angle brackets included)
	Date       string   // Date, raw
	ReturnPath string   // addr-spec of Return-Path; empty for the null path <>
	Headers    []Header // every header field, in order
	// HeaderHash is the hex SHA-256 of the header block as parsed (each
	// field as "name:value\n"), computed by Parse: it identifies the original
	// when it has no Message-ID, and Redact leaves it unchanged.
	HeaderHash string
	HasBody    bool   // the report included (some of) the body, not only the header
	Body       []byte // the body as found (transfer-encoded), only with Options.KeepBody
}

// Report is one failure report. Field names follow the message/feedback-report
// fields of RFC 5965 §3 and RFC 6591 §3.2; values are trimmed, and repeated
// fields (RFC 5965 §3.3) are kept in order.
type Report struct {
	FeedbackType string // Feedback-Type, lower-cased: auth-failure for DMARC (RFC 6591 §3.1)
	UserAgent    string
	Version      string // raw: "1", and "1.0" from some generators (docs/standards.md §3.8)

	// ARF is false for a plain-text DMARC failure notice that has no
	// message/feedback-report part; such a report has only what could be
	// read from its text (source IP, domain, date) and the original header.
	ARF bool
	// Incomplete is set when a field RFC 5965 §3.1 or RFC 6591 §3.2.1
	// requires is missing: Feedback-Type, User-Agent, Version or Auth-Failure.
	Incomplete bool

	OriginalMailFrom   string   // Original-Mail-From without angle brackets; empty for the null path
	OriginalRcptTo     []string // Original-Rcpt-To, without angle brackets
	OriginalEnvelopeID string

	ArrivalDate    time.Time // Arrival-Date (or its alias Received-Date, RFC 5965 §3.2), UTC; zero when it does not parse or lies outside valid.Time's window
	ArrivalDateRaw string

	ReportingMTA string // the mta-name of Reporting-MTA ("dns; mx.example" gives "mx.example"), lower-cased
	SourceIP     string // first token of Source-IP (a comment may follow), canonical when it is an address
	SourcePort   string // Source-Port (RFC 6692)
	Incidents    uint64 // Incidents; 1 when absent or invalid (RFC 5965 §3.2)

	AuthenticationResults []string // raw, one per field
	ReportedDomain        []string // normalised (align.Normalize); values that are not DNS names are dropped
	ReportedURI           []string

	AuthFailure    []string // Auth-Failure values split on commas, lower-cased, comments removed (RFC 6591 §3.2.1)
	DeliveryResult string   // lower-cased, comments removed; unknown values such as smg-policy-action kept
	DKIMDomain     string   // normalised; "" when not a DNS name
	DKIMIdentity   string
	DKIMSelector   string
	SPFDNS         []string

	// IdentityAlignment holds the raw tokens of Identity-Alignment. RFC 7489
	// §7.3.1 lists the methods that produced an aligned identity, RFC 9991 §4
	// the methods that failed to: a value cannot say which was meant
	// (docs/standards.md §3.5), so it is not interpreted here.
	IdentityAlignment []string

	Original Original

	ReporterDomain string // domain of the report email's From, lower-cased
	ReportSubject  string // Subject of the report email, decoded
	// ReportDate is the report email's own Date (RFC 5322 §3.6.1), UTC; zero
	// when absent, unparsable or outside valid.Time's window. It stands in
	// for a missing Arrival-Date (see Arrival).
	ReportDate time.Time
}

// Where the date of Report.Arrival comes from: stored with the report as
// arrival_date_source.
const (
	ArrivalFromField      = "arrival-date" // Arrival-Date or Received-Date (RFC 5965 §3.2), or a notice's "Received date:"
	ArrivalFromReportDate = "report-date"  // the report email's Date: OpenDMARC writes no Arrival-Date
	ArrivalFromReceived   = "received"     // the time the report was received by dmarcd: neither date parses
)

// Arrival returns when the failed message arrived at the reporter, and
// where that date comes from: the Arrival-Date field; else the report
// email's Date, written minutes after the arrival by every generator seen
// without an Arrival-Date (RFC 5965 §3.2 makes it optional in ARF, RFC 6591
// §3.1 recommends it); else received, the time the report reached dmarcd.
func (r *Report) Arrival(received time.Time) (time.Time, string) {
	switch {
	case !r.ArrivalDate.IsZero():
		return r.ArrivalDate, ArrivalFromField
	case !r.ReportDate.IsZero():
		return r.ReportDate, ArrivalFromReportDate
	}
	return received.UTC(), ArrivalFromReceived
}

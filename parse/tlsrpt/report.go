// Package tlsrpt parses SMTP TLS reports: the JSON document of RFC 8460 §4.
//
// Parse takes the decompressed JSON (finding it in a message and gunzipping
// it is the job of package extract) and returns a Report. It accepts the
// deviations seen in real reports (see docs/standards.md §5.4, §6.8):
// date-times without an offset (taken as UTC) or with fractional seconds,
// "mx-host" as a string or an array and its "mx-host-pattern" spelling,
// "additional-information" or "additional-info-uri", counts given as strings,
// a missing or null "contact-info", failure details without most of their
// fields, and an empty "policies" array. It does no network or storage I/O.
package tlsrpt

import "time"

// DefaultMaxBytes is the report size limit Parse applies when given a
// maxBytes of zero or less: 20 MiB of JSON.
const DefaultMaxBytes = 20 << 20

// Report is one TLS report (RFC 8460 §4.4).
type Report struct {
	OrganizationName string    // "organization-name", trimmed
	ContactInfo      string    // "contact-info", trimmed; empty when missing or null
	ReportID         string    // "report-id", trimmed
	Begin            time.Time // "date-range"/"start-datetime", UTC
	End              time.Time // "date-range"/"end-datetime", UTC
	Policies         []Policy  // may be empty: a report with no data
}

// Policy is one element of "policies": the policy evaluated, its session
// counts and the failures seen (RFC 8460 §4.4).
type Policy struct {
	Type       string   // "policy-type", lower-cased: "tlsa", "sts", "no-policy-found", or another raw value
	Strings    []string // "policy-string": one string per TLSA RR or MTA-STS policy line (§4.5)
	Domain     string   // "policy-domain", lower-cased, trimmed, no trailing dot
	MXHosts    []string // "mx-host" (string or array, RFC 8460 erratum 6241) or "mx-host-pattern", lower-cased
	Successful uint64   // "summary"/"total-successful-session-count"
	Failed     uint64   // "summary"/"total-failure-session-count"
	Failures   []Failure
}

// Failure is one element of "failure-details" (RFC 8460 §4.4). Every field but
// ResultType and FailedSessions is optional in practice.
type Failure struct {
	ResultType            string // "result-type", lower-cased; an open set (§4.3 plus the registry)
	SendingMTAIP          string // "sending-mta-ip", canonical form when it is an IP address
	ReceivingMXHostname   string // "receiving-mx-hostname", lower-cased
	ReceivingMXHelo       string // "receiving-mx-helo", lower-cased
	ReceivingIP           string // "receiving-ip", canonical form when it is an IP address
	FailedSessions        uint64 // "failed-session-count"
	AdditionalInformation string // "additional-information" or "additional-info-uri"
	FailureReasonCode     string // "failure-reason-code", raw (free text in practice)
}

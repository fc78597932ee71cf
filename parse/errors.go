// Package parse holds what the format packages below it share: the closed set
// of reason codes an input can be set aside with, and the error type that
// carries one. The subpackages (extract, aggregate, align, failure, tlsrpt)
// are pure: an io.Reader in, values out, no network or storage I/O.
package parse

import (
	"errors"
	"fmt"
)

// Code is a reason an input is invalid or could not be processed. The set is
// closed and small: metrics use it as a label and `dmarcd ingest --json`
// prints it as reason_code.
type Code string

const (
	NotAReport         Code = "not_a_report"        // no report in it (newsletter, HTML-only mail, empty file)
	TooLarge           Code = "too_large"           // message, report or record count over a limit
	DecompressionLimit Code = "decompression_limit" // gzip/zip output over a limit (bomb)
	XMLSyntax          Code = "xml_syntax"          // not well-formed XML or invalid encoding
	DTDRefused         Code = "dtd_refused"         // a DOCTYPE: entities are never expanded
	Truncated          Code = "truncated"           // archive or document ends early
	BadArchive         Code = "bad_archive"         // corrupt gzip/zip
	MissingField       Code = "missing_field"       // a required element absent (e.g. policy domain)
	UnsupportedKind    Code = "unsupported_kind"    // a report kind this build does not store yet
	JSONSyntax         Code = "json_syntax"         // malformed TLS report JSON
	MIMESyntax         Code = "mime_syntax"         // unparseable MIME structure
	ForeignDomain      Code = "foreign_domain"      // policy domain outside the owned domains
	StoreUnavailable   Code = "store_unavailable"   // ClickHouse unreachable or failing (status error)
	InputUnreadable    Code = "input_unreadable"    // the file could not be read (status error)
	InvalidValue       Code = "invalid_value"       // a domain, date or count outside its syntax or range
	StoreRefused       Code = "store_refused"       // ClickHouse refused the input itself (too large a value, a type error): a retry cannot help
	RetriesExhausted   Code = "retries_exhausted"   // failed again and again while the store was healthy, or was in hand when the process died several times
)

// Codes lists every Code, for metrics that pre-declare their label values.
var Codes = []Code{NotAReport, TooLarge, DecompressionLimit, XMLSyntax, DTDRefused, Truncated,
	BadArchive, MissingField, UnsupportedKind, JSONSyntax, MIMESyntax, ForeignDomain,
	StoreUnavailable, InputUnreadable, InvalidValue, StoreRefused, RetriesExhausted}

// Error is a failure with a reason code. Msg says what failed and where
// (`zip member r.xml: more than 20 MiB decompressed`).
type Error struct {
	Code Code
	Msg  string
	Err  error // optional cause
}

func (e *Error) Error() string {
	if e.Err != nil && e.Msg == "" {
		return e.Err.Error()
	}
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the code, a message and the cause.
func Wrap(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

// CodeOf returns the Code of the first *Error in err's chain, or "" if none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Prefix returns err with "where: " put in front of its message, keeping its code.
func Prefix(where string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{Code: e.Code, Msg: where, Err: err}
	}
	return fmt.Errorf("%s: %w", where, err)
}

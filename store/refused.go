package store

import (
	"errors"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/dmarcd/dmarcd/parse"
	"github.com/dmarcd/dmarcd/parse/valid"
)

// Refusals: what ClickHouse refuses because of the input itself.
//
// A report whose value the server cannot take (a 300 KiB policy domain that
// makes the query that looks for the report longer than max_query_size, a
// value it cannot parse or convert) fails the same way on every retry. Such
// an error is returned as a *parse.Error with code parse.StoreRefused, which
// the ingest pipeline turns into status invalid: the input is set aside with
// its reason and the mail behind it flows. Every other error (the server
// down or slow, a timeout, too many parts, a read-only or unknown table,
// authentication, memory) stays a plain error, which the sources retry.

// refusedCodes are ClickHouse's error codes (src/Common/ErrorCodes.cpp, the
// same numbers on 18.16 and current releases) that name a value the server
// could not take: a retry of the same input fails the same way. SYNTAX_ERROR
// (62) is one only when the query was too long (maxQuerySizeExceeded):
// values are bound with escaping, so another syntax error is a bug of ours.
//
// Deliberately absent: MEMORY_LIMIT_EXCEEDED (241), which a busy server also
// returns for a good report; TIMEOUT_EXCEEDED (159), SOCKET_TIMEOUT (209),
// NETWORK_ERROR (210), TOO_MANY_PARTS (252), READONLY (164), UNKNOWN_TABLE
// (60), UNKNOWN_DATABASE (81), the authentication codes (192-194, 516),
// TOO_MANY_SIMULTANEOUS_QUERIES (202), TABLE_IS_READ_ONLY (242) and the
// ZooKeeper errors: the server or its state, not the input.
var refusedCodes = map[int32]string{
	6:   "CANNOT_PARSE_TEXT",
	25:  "CANNOT_PARSE_ESCAPE_SEQUENCE",
	26:  "CANNOT_PARSE_QUOTED_STRING",
	27:  "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
	38:  "CANNOT_PARSE_DATE",
	41:  "CANNOT_PARSE_DATETIME",
	53:  "TYPE_MISMATCH",
	62:  "SYNTAX_ERROR",
	69:  "ARGUMENT_OUT_OF_BOUND",
	70:  "CANNOT_CONVERT_TYPE",
	72:  "CANNOT_PARSE_NUMBER",
	117: "INCORRECT_DATA",
	128: "TOO_LARGE_ARRAY_SIZE",
	131: "TOO_LARGE_STRING_SIZE",
	167: "TOO_DEEP_AST",
	168: "TOO_BIG_AST",
	321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
}

// errCodeSyntaxError is ClickHouse's SYNTAX_ERROR.
const errCodeSyntaxError = 62

// maxQuerySizeExceeded is what a SYNTAX_ERROR says when the query text is
// longer than max_query_size (256 KiB by default), on 18.16 ("Syntax error:
// failed at position 44: ... Max query size exceeded") as on current
// releases.
const maxQuerySizeExceeded = "max query size exceeded"

// maxRefusalText bounds the text of a refusal: the server's message may
// repeat part of the hostile value.
const maxRefusalText = 1024

// refused returns err as a *parse.Error with code parse.StoreRefused when
// ClickHouse, or the driver while encoding, refused the input itself (see
// refusedCodes); any other error, and an error that already carries a
// parse code (a parser's, from the records being read), is returned as is.
func refused(err error) error {
	if err == nil || parse.CodeOf(err) != "" {
		return err
	}
	what, ok := refusal(err)
	if !ok {
		return err
	}
	return &parse.Error{Code: parse.StoreRefused, Msg: "ClickHouse refused the input (" + what + ")",
		Err: printableError{err}}
}

// refusal tells whether err is a refusal of the input and names it.
func refusal(err error) (what string, ok bool) {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		name, ok := refusedCodes[ex.Code]
		if ok && ex.Code == errCodeSyntaxError {
			ok = strings.Contains(strings.ToLower(ex.Message), maxQuerySizeExceeded)
			name = "query longer than max_query_size"
		}
		return name, ok
	}
	// The driver refuses a value before sending it: a string that is not
	// an Enum's element, a FixedString of the wrong size, a Go value it
	// cannot convert to the column's type.
	var colErr *column.Error
	if errors.As(err, &colErr) {
		return "value not valid for a " + colErr.ColumnType + " column", true
	}
	var convErr *column.ColumnConverterError
	if errors.As(err, &convErr) {
		return "value not convertible to " + convErr.To, true
	}
	return "", false
}

// printableError shows an error's text cut to maxRefusalText bytes with its
// control characters escaped (valid.Printable), keeping the error itself for
// errors.As and errors.Is.
type printableError struct{ err error }

func (e printableError) Error() string {
	msg := e.err.Error()
	cut := len(msg) > maxRefusalText
	msg = valid.Printable(valid.Truncate(msg, maxRefusalText))
	if len(msg) > maxRefusalText { // escapes are longer than what they escape
		msg, cut = valid.Truncate(msg, maxRefusalText), true
	}
	if cut {
		msg += "…"
	}
	return msg
}

func (e printableError) Unwrap() error { return e.err }

// maxQuotedField bounds a report's value (organization, report ID) named in
// an error message.
const maxQuotedField = 64

// quoteField quotes a value of a report for an error message: escaped and
// cut to maxQuotedField bytes (valid.Quote).
func quoteField(s string) string { return valid.Quote(s, maxQuotedField) }

package schema

import (
	"errors"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse 18.16 has no ALTER TABLE ... ADD COLUMN IF NOT EXISTS, so a
// migration that adds columns cannot be written idempotent. Its ALTER adds
// all its columns at once or none (the server checks them all first), so
// "column already exists" means an earlier run, or another process
// migrating the same database at the same moment, applied it: the
// statement is done. Servers report that error differently:
//
//   - 18.16: code 44 (ILLEGAL_COLUMN), "Cannot add column x: column with
//     this name already exists"; its messages carry no error name.
//   - 20.x and later (checked on 26.7): code 15, the same text followed by
//     the error's name, "(DUPLICATE_COLUMN)".
//
// The exception's Name field of the native protocol is the C++ class
// ("DB::Exception") on every version, not the error's name.
const (
	errCodeIllegalColumn   = 44
	errCodeDuplicateColumn = 15
)

var (
	addColumn = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s.*\bADD\s+COLUMN\b`)
	// columnExistsText finds the error in text, as a distributed DDL (ON
	// CLUSTER) reports the error of a host: "Code: 15. DB::Exception: ...
	// already exists. (DUPLICATE_COLUMN)" or 18.16's "Code: 44, e.displayText()
	// = DB::Exception: ... already exists".
	columnExistsText = regexp.MustCompile(`(?s)Code: (44|15)\b.*already exists|\(DUPLICATE_COLUMN\)`)
)

// alreadyApplied tells whether err from running q means q's effect is
// already there: an ADD COLUMN whose column exists. The error is matched by
// code (44 or 15) and, where the message carries one, by name; in cluster mode
// it comes from a host of the distributed DDL, as text.
func alreadyApplied(q string, err error) bool {
	if err == nil || !addColumn.MatchString(q) {
		return false
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && columnExists(ex) {
		return true
	}
	return columnExistsText.MatchString(err.Error())
}

// columnExists tells whether a server's exception is "column already
// exists" (see errCodeIllegalColumn): by its code, and by the error's name
// where the message carries one.
func columnExists(ex *clickhouse.Exception) bool {
	switch ex.Code {
	case errCodeIllegalColumn:
		return strings.Contains(ex.Message, "already exists")
	case errCodeDuplicateColumn:
		name := errorName.FindStringSubmatch(ex.Message)
		if name != nil {
			return name[1] == "DUPLICATE_COLUMN"
		}
		return strings.Contains(ex.Message, "already exists")
	}
	return false
}

// errorName finds the error's name that ClickHouse 20.x and later append to
// a message: "... (DUPLICATE_COLUMN)", maybe followed by " (version ...)".
var errorName = regexp.MustCompile(`\(([A-Z][A-Z0-9_]+)\)(?:\s*\(version [^)]*\))?\s*$`)

// ErrorIsApplied tells whether err, from running the migration statement
// q, means that q's effect is already there (Migrate then goes on): an ADD
// COLUMN whose column exists, on any supported version.
func ErrorIsApplied(q string, err error) bool { return alreadyApplied(q, err) }

// AddsColumn tells whether q is an ALTER TABLE ... ADD COLUMN, the one kind
// of migration statement that cannot say IF NOT EXISTS on 18.16.
func AddsColumn(q string) bool { return addColumn.MatchString(q) }

package store

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
// statement is done.
const errCodeIllegalColumn = 44

var addColumn = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s.*\bADD\s+COLUMN\b`)

// alreadyApplied tells whether err from running q means q's effect is
// already there: an ADD COLUMN whose column exists. In cluster mode the
// error comes from a host of the distributed DDL, as text.
func alreadyApplied(q string, err error) bool {
	if err == nil || !addColumn.MatchString(q) {
		return false
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && ex.Code == errCodeIllegalColumn {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "Code: 44") && strings.Contains(msg, "already exists")
}

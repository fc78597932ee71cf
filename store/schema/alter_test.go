package schema

import (
	"errors"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// The errors below are what the servers send for an ADD COLUMN of a column
// that exists: 18.16 over the native protocol (code 44, no name), 26.7
// (code 15 DUPLICATE_COLUMN, as internal/testkit/compat's engine reports it), and
// both as the text of a distributed DDL's failed host.
func TestAddColumnOfAnExistingColumnIsAppliedOnEveryVersion(t *testing.T) {
	q := "ALTER TABLE aggregate_reports ADD COLUMN auth_result String DEFAULT 'unverified'"
	for name, err := range map[string]error{
		"18.16": &clickhouse.Exception{Code: 44, Name: "DB::Exception",
			Message: "Cannot add column auth_result: column with this name already exists"},
		"26.7": &clickhouse.Exception{Code: 15, Name: "DB::Exception",
			Message: "Code: 15. DB::Exception: Cannot add column `auth_result`: column with this name already exists. (DUPLICATE_COLUMN)"},
		"18.16 on cluster": errors.New("code: 159, message: Code: 44, e.displayText() = DB::Exception: " +
			"Cannot add column auth_result: column with this name already exists"),
		"26.7 on cluster": errors.New("code: 15, message: There was an error on [ch2:9000]: Code: 15. DB::Exception: " +
			"Cannot add column `auth_result`: column with this name already exists. (DUPLICATE_COLUMN) (version 26.7.3.1)"),
	} {
		if !alreadyApplied(q, err) {
			t.Errorf("%s: %v is not taken as applied", name, err)
		}
	}
}

func TestOtherErrorsOfAnAddColumnAreNotApplied(t *testing.T) {
	q := "ALTER TABLE aggregate_reports ADD COLUMN auth_result String"
	for name, err := range map[string]error{
		"unknown table":           &clickhouse.Exception{Code: 60, Message: "Table x.aggregate_reports does not exist. (UNKNOWN_TABLE)"},
		"code 15 named otherwise": &clickhouse.Exception{Code: 15, Message: "Something already exists. (SOMETHING_ELSE)"},
		"code 44 of another kind": &clickhouse.Exception{Code: 44, Message: "Cannot drop column x: it is part of the key"},
		"text of another code":    errors.New("Code: 60. DB::Exception: Table default.x does not exist. (UNKNOWN_TABLE)"),
	} {
		if alreadyApplied(q, err) {
			t.Errorf("%s: %v is taken as applied", name, err)
		}
	}
	dup := &clickhouse.Exception{Code: 15, Message: "Column x already exists. (DUPLICATE_COLUMN)"}
	if alreadyApplied("CREATE TABLE t (x UInt8, x UInt8) ENGINE = Memory", dup) {
		t.Error("a DUPLICATE_COLUMN of a statement that adds no column is taken as applied")
	}
}

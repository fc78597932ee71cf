package store

import (
	"context"
	"fmt"
	"time"
)

// InputRow is one input (a message, an object, a file) and what became of
// it, for the inputs table.
type InputRow struct {
	Time       time.Time // zero: now
	Source     string
	Name       string
	SHA256     string
	Size       int64
	Kind       string // e.g. "aggregate", "failure", "tlsrpt", "unknown"
	Status     string // e.g. "stored", "duplicate", "invalid"
	ReasonCode string // a parse.Code for invalid inputs
	Reason     string
	ReportKeys []string
}

// inputsInsert is the INSERT of rows of the inputs table.
const inputsInsert = `INSERT INTO inputs (time, source, name, sha256, size, kind, status,
		reason_code, reason, report_keys)`

// LogInput appends a row to the inputs table.
func (s *Store) LogInput(ctx context.Context, in InputRow) error {
	t := in.Time
	if t.IsZero() {
		t = time.Now()
	}
	keys := in.ReportKeys
	if keys == nil {
		keys = []string{}
	}
	row := []any{t.UTC(), in.Source, in.Name, in.SHA256, in.Size, in.Kind, in.Status, in.ReasonCode, in.Reason, keys}
	// With the rows of the inputs that end together (a group's).
	if _, err := s.inputRows.run(ctx, row, s.insertRows(inputsInsert)); err != nil {
		return fmt.Errorf("logging input %s %s: %w", in.Source, in.Name, err)
	}
	return nil
}

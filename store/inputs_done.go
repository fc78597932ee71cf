package store

import (
	"context"
	"fmt"
)

// maxLookupBytes bounds the names sent in one lookup query: the IN list is
// parsed with the query, whose text ClickHouse caps at max_query_size (256
// KiB by default).
const maxLookupBytes = 128 << 10

// InputStatuses returns, for those of names that the inputs table holds, the
// status that says the input is finished: "stored" or "duplicate" when one
// of its rows says so (its reports are committed), else "invalid". Names
// with only "error" rows, or none, are absent from the map.
//
// Sources that cannot acknowledge an input by moving it (an S3 bucket read
// with read-only rights) ask this once per listing page. The inputs table is
// ordered by time, not name, so each call scans the table's name and status
// columns: its cost grows with the number of inputs ever logged.
func (s *Store) InputStatuses(ctx context.Context, names []string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for len(names) > 0 {
		n, size := 0, 0
		for n < len(names) && (n == 0 || size+len(names[n]) <= maxLookupBytes) {
			size += len(names[n]) + 4
			n++
		}
		if err := s.inputStatuses(ctx, names[:n], out); err != nil {
			return nil, err
		}
		names = names[n:]
	}
	return out, nil
}

func (s *Store) inputStatuses(ctx context.Context, names []string, out map[string]string) error {
	// IN (SELECT arrayJoin(...)) builds a set from the array on every
	// supported version; the bound []string renders as an array literal.
	rows, err := s.conn.Query(ctx, `SELECT name, status FROM inputs
		WHERE status IN ('stored', 'duplicate', 'invalid') AND name IN (SELECT arrayJoin(?))
		GROUP BY name, status`, names)
	if err != nil {
		return fmt.Errorf("looking up %d inputs: %w", len(names), err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, status string
		if err := rows.Scan(&name, &status); err != nil {
			return fmt.Errorf("looking up inputs: %w", err)
		}
		if status == "invalid" && out[name] != "" {
			continue // a committed row wins
		}
		out[name] = status
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("looking up inputs: %w", err)
	}
	return nil
}

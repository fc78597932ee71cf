// Package chsql is the small vocabulary of ClickHouse SQL that dmarcd's
// readers (internal/product/*) and its writer (store) share: the report
// window condition, the readiness class rule, the conditions on how a
// report's mail authenticated, and the conversion of times to the
// parameters of toDateTime(?). It imports nothing of the pipeline.
//
// A fragment carries its positional arguments with it (Stmt), and a
// statement is built by appending fragments (Builder), so each ? is
// written once, next to the value it stands for.
package chsql

import (
	"context"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Querier runs read-only statements: what a reader needs of the store.
// *store.Store implements it.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) driver.Row
}

// Unix is t as the parameter of toDateTime(?): seconds since the epoch,
// 0 before it (a DateTime cannot hold earlier times).
func Unix(t time.Time) uint32 {
	u := t.Unix()
	if u < 0 {
		return 0
	}
	if u > int64(^uint32(0)) {
		return ^uint32(0)
	}
	return uint32(u)
}

// Stmt is SQL text and the arguments of its ? placeholders, in order.
type Stmt struct {
	SQL  string
	Args []any
}

// Text is SQL text without placeholders.
func Text(sql string) Stmt { return Stmt{SQL: sql} }

// Builder appends fragments into one Stmt.
type Builder struct {
	sql  strings.Builder
	args []any
}

// Add appends the fragments' text and arguments.
func (b *Builder) Add(parts ...Stmt) *Builder {
	for _, p := range parts {
		b.sql.WriteString(p.SQL)
		b.args = append(b.args, p.Args...)
	}
	return b
}

// Text appends SQL text without placeholders.
func (b *Builder) Text(sql string) *Builder {
	b.sql.WriteString(sql)
	return b
}

// Stmt is what was appended.
func (b *Builder) Stmt() Stmt { return Stmt{SQL: b.sql.String(), Args: b.args} }

// Join concatenates fragments into one Stmt.
func Join(parts ...Stmt) Stmt {
	var b Builder
	return b.Add(parts...).Stmt()
}

// TimeCond is the condition `col op toDateTime(?)` with t as its argument.
func TimeCond(col, op string, t time.Time) Stmt {
	return Stmt{SQL: col + " " + op + " toDateTime(?)", Args: []any{Unix(t)}}
}

// Window is a report window: the reports (rows) that began in
// [Since, Until).
type Window struct {
	Since, Until time.Time
}

// Cond is the window's condition on date_begin.
func (w Window) Cond() Stmt { return w.CondOn("date_begin") }

// CondOn is the window's condition on the DateTime column col.
func (w Window) CondOn(col string) Stmt {
	return Join(TimeCond(col, ">=", w.Since), Text(" AND "), TimeCond(col, "<", w.Until))
}

// Batcher starts an INSERT: what the owners of the small tables a reader
// keeps (source attribution, DNS records) need besides Querier.
type Batcher interface {
	PrepareBatch(ctx context.Context, query string) (driver.Batch, error)
}

// Select runs st and scans each row into a T by its `ch:"column"` tags
// (clickhouse-go's ScanStruct: a column without a field of its name is an
// error).
func Select[T any](ctx context.Context, q Querier, st Stmt) ([]T, error) {
	rows, err := q.Query(ctx, st.SQL, st.Args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var l []T
	for rows.Next() {
		var v T
		if err := rows.ScanStruct(&v); err != nil {
			return nil, err
		}
		l = append(l, v)
	}
	return l, rows.Err()
}

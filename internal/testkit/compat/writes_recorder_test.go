package compat

// The recorder of the write-path replay (writes_test.go): a driver.Conn
// wrapped around the store's connection (store.Options.WrapConn) that logs
// every statement the store sends, in the order the server finished them,
// with what came back: an error, or the rows a query returned. Batches are
// logged at Send with every row appended since PrepareBatch, whether by
// Append (a row) or by Column(i).Append / AppendRow (the columnar path of
// the record writer).

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// stmtKind tells how a recorded statement was sent.
type stmtKind int

const (
	stmtExec  stmtKind = iota // Exec: DDL, ALTER, INSERT ... SELECT
	stmtQuery                 // Query or QueryRow: rows came back
	stmtBatch                 // PrepareBatch ... Send: rows went out
)

// recordedStmt is one statement as the store sent it to 18.16.
type recordedStmt struct {
	kind stmtKind
	sql  string // with the query's ? arguments bound (bindArgs)
	// batch: the INSERT's columns and its rows, one value per column as
	// the store appended it (Go values: string, *string, uint8..uint64,
	// time.Time, []string, []uint32, []uint64, ...).
	cols []string
	rows [][]any
	// query: the rows scanned, each value printed with fmt.Sprint.
	result [][]string
	err    error // what 18.16 answered (nil: done)
	// injected: the recorder failed the statement itself (a retry test);
	// it never reached the server and is not replayed.
	injected bool
}

// writesRecorder logs statements; fail, when set, may refuse one before
// it is sent (returning an error), to interrupt a write in-process.
type writesRecorder struct {
	mu    sync.Mutex
	log   []recordedStmt
	fail  func(sql string) error
	other []string // calls of methods the recorder does not replay
}

func (r *writesRecorder) wrap(c driver.Conn) driver.Conn { return recordingConn{Conn: c, r: r} }

func (r *writesRecorder) add(s recordedStmt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

// statements returns a copy of the log.
func (r *writesRecorder) statements() []recordedStmt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedStmt(nil), r.log...)
}

// injected returns the error fail gives sql, and logs it, or nil.
func (r *writesRecorder) injected(kind stmtKind, sql string) error {
	r.mu.Lock()
	f := r.fail
	r.mu.Unlock()
	if f == nil {
		return nil
	}
	if err := f(sql); err != nil {
		r.add(recordedStmt{kind: kind, sql: sql, err: err, injected: true})
		return err
	}
	return nil
}

type recordingConn struct {
	driver.Conn
	r *writesRecorder
}

func (c recordingConn) Exec(ctx context.Context, query string, args ...any) error {
	sql, berr := bindArgs(query, args)
	if berr != nil {
		return berr
	}
	if err := c.r.injected(stmtExec, sql); err != nil {
		return err
	}
	err := c.Conn.Exec(ctx, query, args...)
	c.r.add(recordedStmt{kind: stmtExec, sql: sql, err: err})
	return err
}

func (c recordingConn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	sql, berr := bindArgs(query, args)
	if berr != nil {
		return nil, berr
	}
	if err := c.r.injected(stmtQuery, sql); err != nil {
		return nil, err
	}
	rows, err := c.Conn.Query(ctx, query, args...)
	if err != nil {
		c.r.add(recordedStmt{kind: stmtQuery, sql: sql, err: err})
		return nil, err
	}
	return &recordingRows{Rows: rows, r: c.r, stmt: recordedStmt{kind: stmtQuery, sql: sql}}, nil
}

func (c recordingConn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	sql, berr := bindArgs(query, args)
	if berr != nil {
		return errRow{berr}
	}
	if err := c.r.injected(stmtQuery, sql); err != nil {
		return errRow{err}
	}
	return recordingRow{Row: c.Conn.QueryRow(ctx, query, args...), r: c.r, sql: sql}
}

func (c recordingConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	if err := c.r.injected(stmtBatch, query); err != nil {
		return nil, err
	}
	b, err := c.Conn.PrepareBatch(ctx, query, opts...)
	if err != nil {
		c.r.add(recordedStmt{kind: stmtBatch, sql: query, err: err})
		return nil, err
	}
	cols, err := insertColumns(query)
	if err != nil {
		b.Abort()
		return nil, err
	}
	return &recordingBatch{Batch: b, r: c.r, sql: query, cols: cols, values: make([][]any, len(cols))}, nil
}

// The store sends nothing through these; a call is logged so that the test
// fails rather than leave a statement out of the replay.
func (c recordingConn) Select(ctx context.Context, dest any, query string, args ...any) error {
	c.r.unrecorded("Select " + query)
	return c.Conn.Select(ctx, dest, query, args...)
}

func (c recordingConn) AsyncInsert(ctx context.Context, query string, wait bool, args ...any) error {
	c.r.unrecorded("AsyncInsert " + query)
	return c.Conn.AsyncInsert(ctx, query, wait, args...)
}

func (r *writesRecorder) unrecorded(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.other = append(r.other, call)
}

type errRow struct{ err error }

func (e errRow) Err() error           { return e.err }
func (e errRow) Scan(...any) error    { return e.err }
func (e errRow) ScanStruct(any) error { return e.err }

type recordingRow struct {
	driver.Row
	r   *writesRecorder
	sql string
}

func (w recordingRow) Scan(dest ...any) error {
	err := w.Row.Scan(dest...)
	s := recordedStmt{kind: stmtQuery, sql: w.sql, err: err}
	if err == nil {
		s.result = [][]string{printScanned(dest)}
	}
	w.r.add(s)
	return err
}

func (w recordingRow) ScanStruct(dest any) error {
	w.r.unrecorded("Row.ScanStruct " + w.sql)
	return w.Row.ScanStruct(dest)
}

type recordingRows struct {
	driver.Rows
	r    *writesRecorder
	stmt recordedStmt
	once sync.Once
}

func (w *recordingRows) Scan(dest ...any) error {
	err := w.Rows.Scan(dest...)
	if err == nil {
		w.stmt.result = append(w.stmt.result, printScanned(dest))
	} else if w.stmt.err == nil {
		w.stmt.err = err
	}
	return err
}

// ScanStruct logs the row as Scan does: the struct's fields in the order
// of the query's columns, each field the one whose ch tag names the column.
func (w *recordingRows) ScanStruct(dest any) error {
	err := w.Rows.ScanStruct(dest)
	if err != nil {
		if w.stmt.err == nil {
			w.stmt.err = err
		}
		return err
	}
	fields, ferr := fieldsByColumn(dest, w.Rows.Columns())
	if ferr != nil {
		w.r.unrecorded("Rows.ScanStruct " + w.stmt.sql + ": " + ferr.Error())
		return nil
	}
	w.stmt.result = append(w.stmt.result, printScanned(fields))
	return nil
}

// fieldsByColumn returns pointers to the fields of the struct dest points
// to whose ch tags name cols, in the order of cols.
func fieldsByColumn(dest any, cols []string) ([]any, error) {
	v := reflect.ValueOf(dest)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("%T is not a pointer to a struct", dest)
	}
	v = v.Elem()
	byTag := map[string]int{}
	for i := 0; i < v.NumField(); i++ {
		if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("ch"), ","); tag != "" {
			byTag[tag] = i
		}
	}
	out := make([]any, len(cols))
	for i, c := range cols {
		f, ok := byTag[c]
		if !ok {
			return nil, fmt.Errorf("no field of %T has the tag ch:%q", dest, c)
		}
		out[i] = v.Field(f).Addr().Interface()
	}
	return out, nil
}

// Close logs the query with the rows scanned (every caller of the store
// reads its rows to the end, then closes).
func (w *recordingRows) Close() error {
	err := w.Rows.Close()
	w.once.Do(func() {
		if w.stmt.err == nil {
			w.stmt.err = w.Rows.Err()
		}
		w.r.add(w.stmt)
	})
	return err
}

// printScanned prints what Scan stored in each destination (arrays as
// ClickHouse prints them).
func printScanned(dest []any) []string {
	out := make([]string, len(dest))
	for i, d := range dest {
		v := reflect.ValueOf(d)
		for v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		if v.Kind() == reflect.Slice {
			// As ClickHouse prints an array: ['a','b'].
			if lit, err := sqlLiteral(v.Interface(), ""); err == nil {
				out[i] = lit
				continue
			}
		}
		out[i] = fmt.Sprint(v.Interface())
	}
	return out
}

type recordingBatch struct {
	driver.Batch
	r      *writesRecorder
	sql    string
	cols   []string
	values [][]any // per column
	failed error
}

func (b *recordingBatch) Append(v ...any) error {
	if len(v) != len(b.cols) {
		return fmt.Errorf("recorder: %d values for %d columns of %s", len(v), len(b.cols), b.sql)
	}
	if err := b.Batch.Append(v...); err != nil {
		return err
	}
	for i, x := range v {
		b.values[i] = append(b.values[i], x)
	}
	return nil
}

func (b *recordingBatch) Column(i int) driver.BatchColumn {
	return recordingColumn{BatchColumn: b.Batch.Column(i), b: b, i: i}
}

func (b *recordingBatch) AppendStruct(any) error {
	return errors.New("recorder: AppendStruct is not recorded")
}

// Send logs the INSERT with its rows.
func (b *recordingBatch) Send() error {
	err := b.Batch.Send()
	s := recordedStmt{kind: stmtBatch, sql: b.sql, cols: b.cols, err: err}
	n := len(b.values[0])
	for i := range b.values {
		if len(b.values[i]) != n {
			s.err = fmt.Errorf("recorder: column %s has %d values, column %s %d", b.cols[i], len(b.values[i]), b.cols[0], n)
		}
	}
	if s.err == nil {
		for r := range n {
			row := make([]any, len(b.cols))
			for i := range b.cols {
				row[i] = b.values[i][r]
			}
			s.rows = append(s.rows, row)
		}
	}
	b.r.add(s)
	return err
}

type recordingColumn struct {
	driver.BatchColumn
	b *recordingBatch
	i int
}

// Append takes a slice of the column's values.
func (c recordingColumn) Append(v any) error {
	if err := c.BatchColumn.Append(v); err != nil {
		return err
	}
	s := reflect.ValueOf(v)
	if s.Kind() != reflect.Slice {
		return fmt.Errorf("recorder: Column(%d).Append of a %T", c.i, v)
	}
	for j := range s.Len() {
		c.b.values[c.i] = append(c.b.values[c.i], s.Index(j).Interface())
	}
	return nil
}

func (c recordingColumn) AppendRow(v any) error {
	if err := c.BatchColumn.AppendRow(v); err != nil {
		return err
	}
	c.b.values[c.i] = append(c.b.values[c.i], v)
	return nil
}

// insertColumns reads the column list of "INSERT INTO t (a, b, ...)",
// which the store always names (18.16 requires it).
func insertColumns(query string) ([]string, error) {
	open, end := strings.Index(query, "("), strings.LastIndex(query, ")")
	if !strings.HasPrefix(strings.TrimSpace(query), "INSERT INTO ") || open < 0 || end < open {
		return nil, fmt.Errorf("recorder: batch %q names no columns", query)
	}
	var cols []string
	for _, c := range strings.Split(query[open+1:end], ",") {
		cols = append(cols, strings.TrimSpace(c))
	}
	return cols, nil
}

// insertTable is the table of "INSERT INTO t ...".
func insertTable(query string) string {
	f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(query), "INSERT INTO "))
	if len(f) == 0 {
		return ""
	}
	return strings.TrimSuffix(f[0], "(")
}

// bindArgs puts the arguments of a query's ? placeholders in its text, as
// the driver does before it sends the query: strings quoted, numbers as
// they are. The write path's queries take no other type.
func bindArgs(query string, args []any) (string, error) {
	if len(args) == 0 {
		return query, nil
	}
	var b strings.Builder
	n := 0
	quoted := false
	for i := 0; i < len(query); i++ {
		ch := query[i]
		switch {
		case ch == '\'' && (i == 0 || query[i-1] != '\\'):
			quoted = !quoted
		case ch == '?' && !quoted:
			if n == len(args) {
				return "", fmt.Errorf("recorder: more ? than the %d arguments in %q", len(args), query)
			}
			lit, err := sqlLiteral(args[n], "")
			if err != nil {
				return "", fmt.Errorf("recorder: argument %d of %q: %w", n+1, query, err)
			}
			b.WriteString(lit)
			n++
			continue
		}
		b.WriteByte(ch)
	}
	if n != len(args) {
		return "", fmt.Errorf("recorder: %d ? for %d arguments in %q", n, len(args), query)
	}
	return b.String(), nil
}

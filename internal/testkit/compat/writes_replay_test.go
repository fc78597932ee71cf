package compat

// Replaying recorded statements (writes_recorder_test.go) on the ClickHouse
// 26.x engine, and reading a table's full contents on both engines in one
// printable form.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// replayBatchRows is how many rows one replayed INSERT ... VALUES carries.
const replayBatchRows = 500

// replayDiff is one statement whose outcome on 26.x differs from 18.16's.
type replayDiff struct {
	n         int // statement number, from 1
	sql, what string
}

func (d replayDiff) String() string {
	sql := d.sql
	if len(sql) > 300 {
		sql = sql[:300] + "..."
	}
	return fmt.Sprintf("statement %d: %s\n%s", d.n, d.what, sql)
}

// replayStats counts the statements replayed by kind.
type replayStats struct {
	exec, query, batch, rows, unchecked, failedBoth int
}

// replay runs the recorded statements on e in order, the 18.16 database's
// name (db18) replaced by e's. Each must end as it did on 18.16: done, or
// refused with the same error code; a query must return the same rows (as
// a set: order is the read tests' concern), unless its answer depends on
// the moment (now(), system.processes). It starts at stmts[from].
func replay(e *testenv.Engine, db18 string, stmts []recordedStmt, from int) (replayStats, []replayDiff) {
	var st replayStats
	var diffs []replayDiff
	types := map[string]map[string]string{} // table -> column -> type
	for i := from; i < len(stmts); i++ {
		s := stmts[i]
		if s.injected {
			continue
		}
		q := strings.ReplaceAll(s.sql, db18, e.Database())
		diff := func(format string, a ...any) {
			diffs = append(diffs, replayDiff{i + 1, q, fmt.Sprintf(format, a...)})
		}
		var err error
		switch s.kind {
		case stmtExec:
			st.exec++
			err = e.Exec(q)
			if strings.HasPrefix(q, "CREATE TABLE ") || strings.HasPrefix(q, "ALTER TABLE ") {
				clear(types)
			}
		case stmtBatch:
			st.batch++
			st.rows += len(s.rows)
			err = replayBatch(e, q, s, types)
		case stmtQuery:
			st.query++
			var rows [][]string
			_, rows, err = e.Query(q)
			if err == nil && errors.Is(s.err, sql.ErrNoRows) && len(rows) == 0 {
				continue // QueryRow of no row, on both
			}
			if err == nil && s.err == nil {
				if momentary(q) {
					st.unchecked++
				} else if got, want := rowSet(rows, true), rowSet(s.result, false); got != want {
					diff("rows differ:\n 18.16: %q\n  26.x: %q", want, got)
				}
			}
		}
		switch {
		case err == nil && s.err == nil:
		case err != nil && s.err != nil:
			st.failedBoth++
			if a, b := errCode(s.err), errCode(err); a != b {
				diff("refused with code %d on 18.16 (%v), %d on 26.x (%v)", a, s.err, b, err)
			}
		case err != nil:
			diff("refused on 26.x only: %v", err)
		default:
			diff("refused on 18.16 only: %v", s.err)
		}
	}
	return st, diffs
}

// momentary tells whether a query's answer depends on when it runs.
func momentary(sql string) bool {
	return strings.Contains(sql, "now()") || strings.Contains(sql, "system.processes")
}

// rowSet prints rows sorted, one a line; tsv rows are unescaped first.
func rowSet(rows [][]string, tsv bool) string {
	l := make([]string, len(rows))
	for i, r := range rows {
		f := make([]string, len(r))
		for j, v := range r {
			if tsv {
				v = testenv.UnescapeTSV(v)
			}
			f[j] = v
		}
		l[i] = strings.Join(f, "\t")
	}
	sort.Strings(l)
	return strings.Join(l, "\n")
}

func errCode(err error) int32 {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return -1
}

// replayBatch sends a recorded batch as INSERT INTO t (cols) VALUES with
// each value written as a literal of its column's type on e.
func replayBatch(e *testenv.Engine, sql string, s recordedStmt, types map[string]map[string]string) error {
	table := insertTable(sql)
	if types[table] == nil {
		_, rows, err := e.Query("SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = '" + table + "'")
		if err != nil {
			return err
		}
		types[table] = map[string]string{}
		for _, r := range rows {
			types[table][testenv.UnescapeTSV(r[0])] = testenv.UnescapeTSV(r[1])
		}
	}
	head := strings.TrimSpace(sql) + " VALUES "
	for start := 0; start < len(s.rows) || start == 0; start += replayBatchRows {
		end := min(start+replayBatchRows, len(s.rows))
		var b strings.Builder
		b.WriteString(head)
		for k, row := range s.rows[start:end] {
			if k > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j, v := range row {
				typ, ok := types[table][s.cols[j]]
				if !ok {
					return fmt.Errorf("replay: table %s has no column %s on 26.x", table, s.cols[j])
				}
				lit, err := sqlLiteral(v, typ)
				if err != nil {
					return fmt.Errorf("replay: %s.%s: %w", table, s.cols[j], err)
				}
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(lit)
			}
			b.WriteByte(')')
		}
		if end == start {
			return nil // an INSERT without rows sends nothing
		}
		if err := e.Exec(b.String()); err != nil {
			return err
		}
	}
	return nil
}

var precisionRe = regexp.MustCompile(`^DateTime64\((\d+)`)

// sqlLiteral writes v, a value the store gave the driver for a column of
// type typ ("" for a query argument), as the SQL literal of the value the
// driver sends: DateTime as the instant (UTC text for DateTime('UTC'), else
// Unix seconds), Date as the date of the time in its own location (what
// the driver computes), NULL for a nil pointer.
func sqlLiteral(v any, typ string) (string, error) {
	for _, w := range []string{"Nullable(", "LowCardinality("} {
		if strings.HasPrefix(typ, w) {
			typ = strings.TrimSuffix(strings.TrimPrefix(typ, w), ")")
		}
	}
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return "NULL", nil
	}
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "NULL", nil
		}
		return sqlLiteral(rv.Elem().Interface(), typ)
	}
	switch x := v.(type) {
	case string:
		return quoteSQL(x), nil
	case []byte:
		return quoteSQL(string(x)), nil
	case bool:
		if x {
			return "1", nil
		}
		return "0", nil
	case time.Time:
		return timeLiteral(x, typ), nil
	case driver.NamedValue:
		return "", fmt.Errorf("named argument %s", x.Name)
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(rv.Float(), 'g', -1, 64), nil
	case reflect.Slice, reflect.Array:
		elem := ""
		if strings.HasPrefix(typ, "Array(") {
			elem = strings.TrimSuffix(strings.TrimPrefix(typ, "Array("), ")")
		}
		parts := make([]string, rv.Len())
		for i := range parts {
			p, err := sqlLiteral(rv.Index(i).Interface(), elem)
			if err != nil {
				return "", err
			}
			parts[i] = p
		}
		return "[" + strings.Join(parts, ",") + "]", nil
	}
	return "", fmt.Errorf("no literal for a %T (column type %q)", v, typ)
}

func timeLiteral(t time.Time, typ string) string {
	switch {
	case strings.HasPrefix(typ, "Date") && !strings.HasPrefix(typ, "DateTime"):
		if t.IsZero() {
			return "'1970-01-01'"
		}
		return "'" + t.Format("2006-01-02") + "'"
	case strings.HasPrefix(typ, "DateTime64"):
		p, _ := strconv.Atoi(precisionRe.FindStringSubmatch(typ)[1])
		f := "2006-01-02 15:04:05"
		if p > 0 {
			f += "." + strings.Repeat("0", p)
		}
		return "toDateTime64('" + t.UTC().Format(f) + "', " + strconv.Itoa(p) + ", 'UTC')"
	}
	if t.IsZero() || t.Unix() <= 0 {
		return "0"
	}
	if strings.Contains(typ, "'UTC'") {
		return "'" + t.UTC().Format("2006-01-02 15:04:05") + "'"
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// quoteSQL quotes s as a ClickHouse string literal.
func quoteSQL(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// tableColumn is a column of a table and its type.
type tableColumn struct{ name, typ string }

// anyAfterMerge are the columns that hold any value of the merged rows
// (neither in the sorting key nor summed), with what is compared instead:
// aggregate_outcomes.source_ip is "one source IP of the row (any, after
// merges)" (migrations/0009_outcomes.sql), which of them depends on the
// order of the parts merged; compared is that it is one of the row's IPs
// (or ” with none, in a marker row).
var anyAfterMerge = map[string]string{
	"aggregate_outcomes.source_ip": "toString(if(source_ip = '', empty(`source_ipsMap.ip_hash`), has(`source_ipsMap.ip_hash`, toUInt32(cityHash64(source_ip)))))",
}

// printedColumn is the expression that prints a column the same way on
// both engines: toString of the value, of its finalised state for an
// AggregateFunction, and NULL for a NULL.
func printedColumn(table string, c tableColumn) string {
	id := "`" + c.name + "`"
	if x, ok := anyAfterMerge[table+"."+c.name]; ok {
		return x
	}
	switch {
	case strings.HasPrefix(c.typ, "AggregateFunction("):
		return "toString(finalizeAggregation(" + id + "))"
	case strings.HasPrefix(c.typ, "Nullable("):
		return "ifNull(toString(" + id + "), 'NULL')"
	}
	return "toString(" + id + ")"
}

// zeroTimes18 are how 18.16 prints a zero Date and DateTime (the Unix
// epoch), which current releases print as 1970-01-01: the same value.
var zeroTimes18 = strings.NewReplacer("0000-00-00 00:00:00", "1970-01-01 00:00:00", "0000-00-00", "1970-01-01")

// tableContents18 reads a table of the 18.16 database through conn, every
// column printed (printedColumn), rows sorted.
func tableContents18(ctx context.Context, conn driver.Conn, table string, cols []tableColumn) ([]string, error) {
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = printedColumn(table, c)
	}
	rows, err := conn.Query(ctx, "SELECT "+strings.Join(exprs, ", ")+" FROM `"+table+"`")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, zeroTimes18.Replace(strings.Join(vals, "\t")))
	}
	sort.Strings(out)
	return out, rows.Err()
}

// tableContents26 reads the same on the engine.
func tableContents26(e *testenv.Engine, table string, cols []tableColumn) ([]string, error) {
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = printedColumn(table, c)
	}
	_, rows, err := e.Query("SELECT " + strings.Join(exprs, ", ") + " FROM `" + table + "`")
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		f := make([]string, len(r))
		for j, v := range r {
			f[j] = testenv.UnescapeTSV(v)
		}
		out[i] = strings.Join(f, "\t")
	}
	sort.Strings(out)
	return out, nil
}

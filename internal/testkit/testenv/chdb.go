package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ebitengine/purego"
)

// EnvCHDBLib names the ClickHouse 26.x engine library (libchdb.so) that CHDB
// loads; `make test` sets it from `scripts/chdb.sh ensure`. Without it CHDB
// looks in the folder where scripts/chdb.sh caches the library.
const EnvCHDBLib = "DMARCD_TEST_CHDB_LIB"

// Column is a result column of Engine.Query: its name and its type as the
// engine prints it (e.g. "LowCardinality(String)").
type Column struct {
	Name, Type string
}

// Engine is a database of its own, for one test, on the ClickHouse 26.x
// engine of the test binary: libchdb (npm @chdb/lib-linux-x64-gnu, installed
// by scripts/chdb.sh), ClickHouse as an in-process library in
// clickhouse-local mode. It runs any SQL, MergeTree tables included, on a
// data folder of the test binary; it has no native-protocol server, no
// ZooKeeper and no cluster.
//
// libchdb has one connection per process (opening another closes the first),
// so every Engine of a test binary shares it: statements of all tests run one
// at a time, each in its test's database (Engine.Database), which is
// dropped when the test ends unless it failed. Tests may run in parallel.
type Engine struct {
	db string
}

// chdbEngine is the process's libchdb connection.
var chdbEngine struct {
	mu      sync.Mutex
	once    sync.Once
	err     error  // why there is no engine
	dir     string // data folder, removed by stopCHDB
	conn    uintptr
	current string // database of the last USE
	version string

	connect func(argc int, argv []*byte) *uintptr
	query   func(conn uintptr, query, format string) uintptr
	destroy func(res uintptr)
	buffer  func(res uintptr) *byte
	length  func(res uintptr) uintptr
	errText func(res uintptr) string
}

// CHDB returns a fresh database on the ClickHouse 26.x engine for this test
// (see Engine). The engine is loaded once per test binary from
// DMARCD_TEST_CHDB_LIB, or else from scripts/chdb.sh's cache. When it is
// missing the test fails if CI is "true" and is skipped otherwise; with
// -short it is skipped.
func CHDB(t testing.TB) *Engine {
	t.Helper()
	skipShort(t, "the ClickHouse 26.x engine")
	chdbEngine.once.Do(func() { chdbEngine.err = startCHDB() })
	if err := chdbEngine.err; err != nil {
		unavailable(t, "chdb: "+err.Error()+"; install it with: scripts/chdb.sh ensure")
	}
	e := &Engine{db: databaseName(t.Name())}
	if err := e.run("CREATE DATABASE IF NOT EXISTS "+e.db, "", false); err != nil {
		t.Fatalf("chdb: creating database %s: %v", e.db, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chdb: keeping database %s of the failed test in %s", e.db, chdbEngine.dir)
			return
		}
		if err := e.run("DROP DATABASE IF EXISTS "+e.db+" SYNC", "", false); err != nil {
			t.Logf("chdb: dropping database %s: %v", e.db, err)
		}
	})
	return e
}

// Database is the name of the test's database, the current database of
// every statement the Engine runs.
func (e *Engine) Database() string { return e.db }

// Version is the engine's version(), e.g. "26.7.3.1".
func (e *Engine) Version() string { return chdbEngine.version }

// Exec runs one statement in the test's database and discards its output.
// A statement the engine refuses gives a *clickhouse.Exception (Code, Name
// and Message from the engine's text, as a server would send them).
func (e *Engine) Exec(sql string) error {
	return e.run(sql, "", true)
}

// Query runs one statement in the test's database and returns its columns
// and rows. Values are the fields of ClickHouse's TSV output, escaped as TSV
// escapes them (\t, \n, \\; \N for NULL) and printed as the engine prints
// its types (arrays as ['a','b'], DateTime as 2006-01-02 15:04:05 in the
// engine's time zone). Errors as Exec.
func (e *Engine) Query(sql string) (cols []Column, rows [][]string, err error) {
	out, err := e.query(sql, "TSVWithNamesAndTypes", true)
	if err != nil {
		return nil, nil, err
	}
	return parseTSVWithNamesAndTypes(out)
}

func (e *Engine) run(sql, format string, use bool) error {
	_, err := e.query(sql, format, use)
	return err
}

// query runs sql under the process's lock, after USE of the test's database
// when use is set and another database is current.
func (e *Engine) query(sql, format string, use bool) (string, error) {
	if format == "" {
		format = "TSV"
	}
	chdbEngine.mu.Lock()
	defer chdbEngine.mu.Unlock()
	if use && chdbEngine.current != e.db {
		if _, err := chdbQuery("USE "+e.db, "TSV"); err != nil {
			return "", err
		}
		chdbEngine.current = e.db
	}
	return chdbQuery(sql, format)
}

// chdbQuery runs one statement on the connection; the caller holds the lock.
func chdbQuery(sql, format string) (string, error) {
	c := &chdbEngine
	res := c.query(c.conn, sql, format)
	if res == 0 {
		return "", nil
	}
	defer c.destroy(res)
	if msg := c.errText(res); msg != "" {
		return "", chdbError(msg)
	}
	n := int(c.length(res))
	buf := c.buffer(res)
	if n == 0 || buf == nil {
		return "", nil
	}
	return string(unsafe.Slice(buf, n)), nil
}

var chdbCode = regexp.MustCompile(`Code: (\d+)\.`)

// chdbError turns the engine's error text ("Code: 15. DB::Exception: ...
// (DUPLICATE_COLUMN)") into the *clickhouse.Exception a server would send:
// its Code, Name "DB::Exception" (the class, as servers send it) and the
// text as Message (the error's name, e.g. DUPLICATE_COLUMN, ends it).
func chdbError(msg string) error {
	msg = strings.TrimSpace(msg)
	m := chdbCode.FindStringSubmatch(msg)
	if m == nil {
		return errors.New("chdb: " + msg)
	}
	code, _ := strconv.Atoi(m[1])
	return &clickhouse.Exception{Code: int32(code), Name: "DB::Exception", Message: msg}
}

// parseTSVWithNamesAndTypes splits the output of FORMAT TSVWithNamesAndTypes.
func parseTSVWithNamesAndTypes(out string) ([]Column, [][]string, error) {
	if out == "" {
		return nil, nil, nil
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 2 {
		return nil, nil, fmt.Errorf("chdb: TSVWithNamesAndTypes output without its two header lines: %q", out)
	}
	names, types := strings.Split(lines[0], "\t"), strings.Split(lines[1], "\t")
	if len(names) != len(types) {
		return nil, nil, fmt.Errorf("chdb: %d column names but %d types", len(names), len(types))
	}
	cols := make([]Column, len(names))
	for i := range names {
		cols[i] = Column{Name: UnescapeTSV(names[i]), Type: UnescapeTSV(types[i])}
	}
	rows := make([][]string, 0, len(lines)-2)
	for _, l := range lines[2:] {
		f := strings.Split(l, "\t")
		if len(f) != len(cols) {
			return nil, nil, fmt.Errorf("chdb: row of %d fields, want %d: %q", len(f), len(cols), l)
		}
		rows = append(rows, f)
	}
	return cols, rows, nil
}

// UnescapeTSV undoes the escapes of a field of ClickHouse's TSV output
// (\\t, \\n, \\\\, \\' and the others of its TabSeparated format).
// Column names and types of Engine.Query come unescaped; values do not.
func UnescapeTSV(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case '0':
			b.WriteByte(0)
		default: // \\ \' and any other escaped character
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// CHDBLibrary is the path of libchdb.so: DMARCD_TEST_CHDB_LIB, or else what
// `scripts/chdb.sh path` prints (the cache, without installing anything).
func CHDBLibrary() (string, error) {
	if p := os.Getenv(EnvCHDBLib); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", EnvCHDBLib, err)
		}
		return p, nil
	}
	sh, err := scriptPath("chdb.sh")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("bash", sh, "path").Output()
	if err != nil {
		return "", fmt.Errorf("%s unset and no library in the cache of %s", EnvCHDBLib, sh)
	}
	return strings.TrimSpace(string(out)), nil
}

// startCHDB loads the library and opens the process's connection on a new
// data folder.
func startCHDB() error {
	lib, err := CHDBLibrary()
	if err != nil {
		return err
	}
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return fmt.Errorf("loading %s: %w", lib, err)
	}
	c := &chdbEngine
	for name, fn := range map[string]any{
		"chdb_connect": &c.connect, "chdb_query": &c.query,
		"chdb_destroy_query_result": &c.destroy, "chdb_result_buffer": &c.buffer,
		"chdb_result_length": &c.length, "chdb_result_error": &c.errText,
	} {
		if _, err := purego.Dlsym(h, name); err != nil {
			return fmt.Errorf("%s has no %s: %w", lib, name, err)
		}
		purego.RegisterLibFunc(fn, h, name)
	}
	dir, err := os.MkdirTemp("", "dmarcd-test-chdb-")
	if err != nil {
		return err
	}
	c.dir = dir
	argv := []string{"clickhouse", "--path=" + filepath.Join(dir, "data")}
	cargv := make([]*byte, len(argv))
	for i, a := range argv {
		b := append([]byte(a), 0)
		cargv[i] = &b[0]
	}
	p := c.connect(len(cargv), cargv)
	if p == nil {
		os.RemoveAll(dir)
		return fmt.Errorf("chdb_connect on %s failed", dir)
	}
	// chdb_connect returns a chdb_connection* (a pointer to the handle
	// chdb_query takes).
	c.conn = *p
	c.mu.Lock()
	defer c.mu.Unlock()
	out, err := chdbQuery("SELECT version()", "TSV")
	if err != nil {
		return fmt.Errorf("SELECT version(): %w", err)
	}
	c.version = strings.TrimSpace(out)
	return nil
}

// stopCHDB removes the engine's data folder (testenv.Main calls it when the
// tests are done). The connection stays open: the process is about to end.
func stopCHDB() {
	chdbEngine.mu.Lock()
	defer chdbEngine.mu.Unlock()
	if chdbEngine.dir != "" {
		os.RemoveAll(chdbEngine.dir)
	}
}

package testenv

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestMakeTestLongRunsEveryLongSoak checks the Makefile's LONG_TESTS, the
// -run pattern of make test-long, against the tests of the module that call
// testenv.Long: each such test is named, and each name is such a test.
func TestMakeTestLongRunsEveryLongSoak(t *testing.T) {
	root := ModuleRoot()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LONG_TESTS = \^\(([A-Za-z0-9_|]+)\)\$\$$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile: no line LONG_TESTS = ^(TestA|TestB)$$")
	}
	named := strings.Split(string(m[1]), "|")
	long := longTests(t, root)
	slices.Sort(named)
	if !slices.Equal(named, long) {
		t.Errorf("Makefile LONG_TESTS names %v; the tests calling testenv.Long are %v", named, long)
	}
}

// longTests returns the sorted names of the test functions under root whose
// body calls testenv.Long.
func longTests(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if ok && strings.HasPrefix(fn.Name.Name, "Test") && fn.Body != nil && callsLong(fn.Body) {
				names = append(names, fn.Name.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func callsLong(body *ast.BlockStmt) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if s, ok := c.Fun.(*ast.SelectorExpr); ok && s.Sel.Name == "Long" {
				if x, ok := s.X.(*ast.Ident); ok && x.Name == "testenv" {
					found = true
				}
			}
		}
		return !found
	})
	return found
}

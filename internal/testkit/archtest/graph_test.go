// Package archtest holds the test that keeps the package graph drawn in
// docs/architecture.md true: data flows one way, source -> extract -> parse
// -> enrich -> store, and leaf libraries import nothing of the pipeline.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/dmarcd/dmarcd"

// rule says which packages of the module a group of packages may import.
type rule struct {
	group string   // a package path, or a prefix ending in "/" (relative to the module)
	may   []string // the same form; a package always may import within its own group
}

// rules are checked first match first; a package that matches none may
// import anything (cmd/*, internal/app/*, test and tool code).
var rules = []rule{
	{"parse/valid", nil},
	{"parse/align", nil},
	{"parse", nil},
	{"parse/", []string{"parse", "parse/"}},
	{"enrich", []string{"parse", "parse/"}},
	{"store/schema", nil},
	{"store", []string{"parse", "parse/", "enrich", "store/schema", "internal/lib/chsql"}},
	{"internal/lib/", []string{"parse", "parse/valid", "parse/align"}},
	{"internal/product/", []string{"parse", "parse/", "internal/lib/"}},
	{"ingest", []string{"parse", "parse/", "enrich", "store", "internal/lib/oauth"}},
	{"dashboards", nil},
}

// production packages never import test or tool code.
var production = []string{"cmd/dmarcd", "ingest", "parse", "parse/", "enrich", "store", "store/", "internal/app/", "internal/lib/", "internal/product/", "dashboards"}

func matches(pattern, pkg string) bool {
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(pkg, pattern)
	}
	return pkg == pattern
}

func anyMatch(patterns []string, pkg string) bool {
	for _, p := range patterns {
		if matches(p, pkg) {
			return true
		}
	}
	return false
}

// imports lists each non-test package of the module with the module
// packages it imports, paths relative to the module.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := rel(f[0])
		graph[pkg] = nil
		for _, imp := range f[1:] {
			if r := rel(imp); r != imp {
				graph[pkg] = append(graph[pkg], r)
			}
		}
	}
	return graph
}

func rel(p string) string {
	if p == module {
		return "."
	}
	return strings.TrimPrefix(p, module+"/")
}

func TestPackagesImportOnlyDownstreamOfThemselves(t *testing.T) {
	graph := imports(t)
	if len(graph) < 20 {
		t.Fatalf("go list found %d packages; want the whole module", len(graph))
	}
	for pkg, deps := range graph {
		for _, r := range rules {
			if !matches(r.group, pkg) {
				continue
			}
			for _, d := range deps {
				if !matches(r.group, d) && !anyMatch(r.may, d) {
					t.Errorf("%s imports %s: a back-reference (%s may import only %v)", pkg, d, r.group, r.may)
				}
			}
			break
		}
	}
}

func TestProductionCodeImportsNoTestOrToolCode(t *testing.T) {
	for pkg, deps := range imports(t) {
		if !anyMatch(production, pkg) {
			continue
		}
		for _, d := range deps {
			if strings.HasPrefix(d, "internal/testkit/") || strings.HasPrefix(d, "internal/tools/") {
				t.Errorf("%s imports %s: test and tool code stay apart from the product", pkg, d)
			}
		}
	}
}

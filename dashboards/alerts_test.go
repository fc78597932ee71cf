package dashboards

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(testenv.Promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRulesPassPromtool runs `promtool check rules` on every rule file
// and `promtool test rules` on every test file in alerts/.
func TestAlertRulesPassPromtool(t *testing.T) {
	tests, _ := filepath.Glob("alerts/*_test.yml")
	all, _ := filepath.Glob("alerts/*.yml")
	var rules []string
	for _, f := range all {
		if !strings.HasSuffix(f, "_test.yml") {
			rules = append(rules, filepath.Base(f))
		}
	}
	if len(rules) == 0 || len(tests) == 0 {
		t.Fatalf("no rule files (%v) or rule tests (%v) in alerts/", rules, tests)
	}
	runPromtool(t, "alerts", append([]string{"check", "rules"}, rules...)...)
	for i := range tests {
		tests[i] = filepath.Base(tests[i])
	}
	runPromtool(t, "alerts", append([]string{"test", "rules"}, tests...)...)
}

// TestEveryAlertHasTestsAndRunbook checks that each alert of each rule file
// appears in a promtool test, and has a summary, a description and a
// runbook_url whose anchor is a heading of docs/dashboards.md.
func TestEveryAlertHasTestsAndRunbook(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "dashboards.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(doc), -1) {
		anchors[anchor(m[1])] = true
	}
	var tests strings.Builder
	files, _ := filepath.Glob("alerts/*_test.yml")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		tests.Write(b)
	}
	rules, _ := filepath.Glob("alerts/*.yml")
	n := 0
	for _, f := range rules {
		if strings.HasSuffix(f, "_test.yml") {
			continue
		}
		for _, r := range loadRules(t, f) {
			if r.Alert == "" {
				continue
			}
			n++
			if !strings.Contains(tests.String(), "alertname: "+r.Alert+"\n") {
				t.Errorf("%s: alert %s has no promtool test", f, r.Alert)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: alert %s has no %s", f, r.Alert, a)
				}
			}
			u := r.Annotations["runbook_url"]
			i := strings.LastIndex(u, "#")
			if i < 0 || !strings.Contains(u, "docs/dashboards.md") || !anchors[u[i+1:]] {
				t.Errorf("%s: alert %s: runbook_url %q is not an anchor of docs/dashboards.md", f, r.Alert, u)
			}
			for _, name := range metricNames(r.Expr) {
				if !knownMetric(t, name) {
					t.Errorf("%s: alert %s uses metric %s that dmarcd does not export", f, r.Alert, name)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no alerts found")
	}
}

// anchor is GitHub's anchor of a Markdown heading.
func anchor(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

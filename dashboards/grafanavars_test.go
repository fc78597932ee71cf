package dashboards

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// varRe matches a template variable reference in Grafana's syntaxes:
// ${name}, ${name:format}, [[name]], [[name:format]] and $name. Names that
// begin with "__" are Grafana's or the plugin's macros ($__timeFilter,
// ${__url_time_range}), not dashboard variables.
var varRe = regexp.MustCompile(`\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)`)

// varRef is one variable reference of a query: its text, name and format
// ("" when none is given).
type varRef struct{ text, name, format string }

// varRefs returns the dashboard variable references of s, macros left out.
func varRefs(s string) []varRef {
	var l []varRef
	for _, m := range varRe.FindAllStringSubmatch(s, -1) {
		r := varRef{text: m[0]}
		switch {
		case m[1] != "":
			r.name, r.format = m[1], m[2]
		case m[3] != "":
			r.name, r.format = m[3], m[4]
		default:
			r.name = m[5]
		}
		if !strings.HasPrefix(r.name, "__") {
			l = append(l, r)
		}
	}
	return l
}

// expandVariables substitutes the dashboard variables of sql as Grafana
// does before the ClickHouse plugin sees the query: the one function the
// tests expand variables with, so that a query that uses a variable unsafely
// is run as Grafana would run it. vars holds each variable's (single) value.
// A reference with a format Grafana does not have is left as it is (the
// callers fail on a "$" left in a query).
func expandVariables(sql string, vars map[string]string) string {
	return varRe.ReplaceAllStringFunc(sql, func(ref string) string {
		l := varRefs(ref)
		if len(l) == 0 {
			return ref
		}
		v, ok := vars[l[0].name]
		if !ok {
			return ref
		}
		s, ok := grafanaFormat(l[0].format, v)
		if !ok {
			return ref
		}
		return s
	})
}

// grafanaFormat formats a single-valued variable's value as Grafana's
// format registry does (public/app/features/templating/formatRegistry.ts
// and scenes' formatRegistry, Grafana 10 and 11):
//
//   - "" (no format): the ClickHouse plugin v4's own format function, which
//     passes a single value through as it is;
//   - raw: as it is;
//   - sqlstring: in single quotes, ' doubled (and, since scenes, " as \");
//     a backslash is left alone, which ClickHouse reads as an escape
//     (TestSQLStringFormatLetsABackslashEndTheLiteralInClickHouse);
//   - singlequote: in single quotes, ' as \'; doublequote likewise with ";
//   - percentencode: encodeURIComponent, and ! ' ( ) * encoded too
//     (encodeURIComponentStrict): only A-Z a-z 0-9 - _ . ~ and %XX remain.
//
// ok is false for a format this function does not implement.
func grafanaFormat(format, v string) (s string, ok bool) {
	switch format {
	case "", "raw":
		return v, true
	case "sqlstring":
		return "'" + strings.NewReplacer(`'`, `''`, `"`, `\"`).Replace(v) + "'", true
	case "singlequote":
		return "'" + strings.ReplaceAll(v, `'`, `\'`) + "'", true
	case "doublequote":
		return `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`, true
	case "percentencode":
		return percentEncode(v), true
	}
	return "", false
}

// percentEncode is JavaScript's encodeURIComponent of v's UTF-8 bytes with
// ! ' ( ) * encoded as well, upper-case hex, as Grafana's percentencode
// format does (RFC 3986 section 2.3: only the unreserved characters stay).
func percentEncode(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// safeDomainRef is the one way a dashboard's ClickHouse query may use a
// variable: percent-encoded by Grafana inside a string literal and decoded
// by ClickHouse. The encoded text holds no quote and no backslash, so no
// value can end the literal (docs/dashboards.md, "Template variables").
var safeDomainRef = regexp.MustCompile(`decodeURLComponent\('\$\{(\w+):percentencode\}'\)`)

func TestGrafanaFormatsMatchGrafanasOwnExamples(t *testing.T) {
	for _, c := range []struct{ format, in, want string }{
		// formatRegistry.test.ts and the scenes' tests.
		{"sqlstring", "test'value", "'test''value'"},
		{"singlequote", "test'2", `'test\'2'`},
		{"doublequote", `test"2`, `"test\"2"`},
		{"percentencode", "foo()bar BAZ", "foo%28%29bar%20BAZ"},
		{"percentencode", "!x'); SELECT \\\x00é*~-_.", "%21x%27%29%3B%20SELECT%20%5C%00%C3%A9%2A~-_."},
		{"", "a'b", "a'b"},
	} {
		if got, ok := grafanaFormat(c.format, c.in); !ok || got != c.want {
			t.Errorf("%s of %q: %q, want %q", c.format, c.in, got, c.want)
		}
	}
	if _, ok := grafanaFormat("hex", "x"); ok {
		t.Error("Grafana has no hex format")
	}
	got := expandVariables("a = ${domain:sqlstring} AND b = decodeURLComponent('${domain:percentencode}') AND c = '$domain' AND d = '[[domain]]' AND $__timeFilter(x) AND ${other}",
		map[string]string{"domain": "it's"})
	want := "a = 'it''s' AND b = decodeURLComponent('it%27s') AND c = 'it's' AND d = 'it's' AND $__timeFilter(x) AND ${other}"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestDashboardQueriesUseVariablesOnlyPercentEncoded checks the text of
// every ClickHouse query and data link of the dashboards: a variable is
// used only as decodeURLComponent('${name:percentencode}') in SQL and as
// ${name:percentencode} in a link's URL. ${domain}, $domain, [[domain]] and
// every other format (sqlstring too: ClickHouse reads a backslash as an
// escape) fail.
func TestDashboardQueriesUseVariablesOnlyPercentEncoded(t *testing.T) {
	for _, d := range loadDashboards(t) {
		for _, p := range append(d.Panels, annotationPanels(d)...) {
			for _, tg := range p.Targets {
				if tg.Datasource.Type != chType {
					continue
				}
				for _, r := range varRefs(safeDomainRef.ReplaceAllString(tg.RawSQL, "")) {
					t.Errorf("%s: panel %q uses variable %s as %s: write decodeURLComponent('${%s:percentencode}')", d.file, p.Title, r.name, r.text, r.name)
				}
			}
		}
		for _, v := range d.Templating.List {
			q, _ := v.Query.(string)
			if v.Datasource.Type == chType && len(varRefs(q)) > 0 {
				t.Errorf("%s: variable %s: its query uses a variable: %s", d.file, v.Name, q)
			}
		}
		for _, u := range linkURLRe.FindAllStringSubmatch(string(d.raw), -1) {
			for _, r := range varRefs(u[1]) {
				if r.format != "percentencode" {
					t.Errorf("%s: link %s uses variable %s as %s: write ${%s:percentencode}", d.file, u[1], r.name, r.text, r.name)
				}
			}
		}
	}
}

// linkURLRe finds the URLs of the dashboards' links.
var linkURLRe = regexp.MustCompile(`"url":\s*"([^"]*)"`)

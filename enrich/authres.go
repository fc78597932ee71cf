package enrich

import (
	"strings"

	"github.com/dmarcd/dmarcd/parse/align"
)

// AuthResult is one method result of an Authentication-Results field
// (RFC 8601 §2.2): the method, its result, and the domain it is about
// (DKIM: header.d, else the domain of header.i; SPF: the domain of
// smtp.mailfrom), all lower-cased; Domain is "" when not given.
type AuthResult struct {
	Method, Result, Domain string
}

// ParseAuthResults reads the method results of one Authentication-Results
// value, leniently: the authserv-id may be missing (as some failure report
// generators do, docs/standards.md §3.8), results may be separated by
// white space only, comments are dropped. A "key=value" token whose key has
// no '.' (and is not "reason") starts a result; "ptype.property=value"
// tokens belong to the result before them.
func ParseAuthResults(v string) []AuthResult {
	var out []AuthResult
	cur := -1
	for _, tok := range authTokens(v) {
		k, val, ok := strings.Cut(tok, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(k)
		val = strings.Trim(val, `"`)
		if !strings.Contains(k, ".") && k != "reason" {
			if i := strings.IndexByte(k, '/'); i >= 0 {
				k = k[:i] // method version, RFC 8601 §2.2
			}
			out = append(out, AuthResult{Method: k, Result: strings.ToLower(val)})
			cur = len(out) - 1
			continue
		}
		if cur < 0 {
			continue
		}
		x := &out[cur]
		switch {
		case x.Method == "dkim" && k == "header.d":
			x.Domain = align.Normalize(val)
		case x.Method == "dkim" && k == "header.i" && x.Domain == "":
			x.Domain = addrDomain(val)
		case x.Method == "spf" && k == "smtp.mailfrom":
			x.Domain = addrDomain(val)
		}
	}
	return out
}

// authTokens splits an Authentication-Results value into white-space and
// ';' separated tokens, dropping comments (RFC 5322 §3.2.2, nested) and
// keeping quoted strings whole.
func authTokens(v string) []string {
	var toks []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			toks = append(toks, b.String())
			b.Reset()
		}
	}
	depth := 0
	quoted := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			if c == '\\' && i+1 < len(v) {
				i++
				b.WriteByte(v[i])
				continue
			}
			if c == '"' {
				quoted = false
			}
			b.WriteByte(c)
		case depth > 0:
			if c == '\\' {
				i++
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
		case c == '(':
			flush()
			depth++
		case c == '"':
			quoted = true
			b.WriteByte(c)
		case c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n':
			flush()
		default:
			b.WriteByte(c)
		}
	}
	flush()
	return toks
}

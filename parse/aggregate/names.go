package aggregate

import (
	"github.com/dmarcd/dmarcd/parse/valid"
)

// Misspelt container names. Reporters misspell element names: a Japanese
// carrier writes <data_range> for <date_range>, others <identities> for
// <identifiers> (parsedmarc accepts both). An unknown element is otherwise
// ignored with all it contains (RFC 9990 §3.2, docs/standards.md §6.3 item
// 22), which turns one typo into a rejected report (date_range/begin missing)
// or records without a header_from. The rule, for both decoders (it lives in
// the builder they share):
//
//   - Which elements: only the container elements of at least
//     minNearName (8) characters: report_metadata, policy_published,
//     date_range, identifiers, auth_results, policy_evaluated. Shorter
//     containers (record, row, reason, dkim, spf) and every leaf element
//     (begin, header_from, ...) must be spelt exactly: their names are
//     short enough for a typo to be another name, and a leaf read under the
//     wrong name would put a value where it does not belong.
//   - Where: directly inside the parent the container belongs to, and only
//     when the name is none of the names that parent knows (a second
//     policy_published, refused, is not taken for anything else).
//   - How near: an edit distance (insertions, deletions, substitutions and
//     transpositions of adjacent bytes, case-sensitive) of at most a fifth
//     of the container name's length (2 for date_range and identifiers, 3
//     for report_metadata), and nearer to that container than to every
//     other name the parent knows, leaves included; a tie matches nothing.
//   - What is kept: the element is read as the container, its content by
//     the container's usual rules; the name as sent and the name it was
//     read as are listed by Decoder.Renamed (at most maxRenames distinct
//     pairs per report).
//
// docs/parsing.md states the rule for operators.

// minNearName is the length from which a container name is matched when
// misspelt.
const minNearName = 8

// maxRenames is how many distinct renames a decoder lists.
const maxRenames = 8

// Rename is one misspelt container element read as the element it is near.
type Rename struct {
	Name string // the element's name as sent, escaped (valid.Printable), at most 64 bytes
	As   string // the name it was read as
}

// knownNames lists, for each container kind, the names of the elements it
// knows (those child matches exactly).
var knownNames = map[kind][]string{
	kFeedback:    {"report_metadata", "policy_published", "record", "version"},
	kMeta:        {"org_name", "email", "extra_contact_info", "report_id", "date_range", "error", "generator"},
	kDateRange:   {"begin", "end"},
	kPolicy:      {"domain", "adkim", "aspf", "p", "sp", "np", "pct", "fo", "testing", "discovery_method"},
	kRecord:      {"row", "identifiers", "auth_results"},
	kRow:         {"source_ip", "count", "policy_evaluated"},
	kPolicyEval:  {"disposition", "dkim", "spf", "reason"},
	kReason:      {"type", "comment"},
	kIdentifiers: {"envelope_to", "envelope_from", "header_from"},
	kAuth:        {"dkim", "spf"},
	kDKIM:        {"domain", "selector", "result", "human_result"},
	kSPF:         {"domain", "scope", "result", "human_result"},
}

// nearNames is, for each kind, the names of its container children that a
// misspelling may match: at least minNearName long.
var nearNames = map[kind][]string{
	kFeedback: {"report_metadata", "policy_published"},
	kMeta:     {"date_range"},
	kRecord:   {"identifiers", "auth_results"},
	kRow:      {"policy_evaluated"},
}

// nearChild is child for a name parent does not know exactly: the kind of
// the container it is a misspelling of by the rule above, else kIgnore.
func (b *builder) nearChild(parent kind, local []byte) kind {
	cands := nearNames[parent]
	if len(cands) == 0 || len(local) > 2*len(cands[0])+8 {
		return kIgnore
	}
	best, bestD, tie := "", 1<<30, false
	for _, n := range knownNames[parent] {
		if string(local) == n {
			return kIgnore // known, refused in this place by child
		}
		d := editDistance(local, n, bestD)
		switch {
		case d < bestD:
			best, bestD, tie = n, d, false
		case d == bestD:
			tie = true
		}
	}
	if tie || bestD > len(best)/5 || !contains(cands, best) {
		return kIgnore
	}
	k := b.child(parent, []byte(best))
	if k != kIgnore {
		b.rename(local, best)
	}
	return k
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// rename notes that local was read as the element as.
func (b *builder) rename(local []byte, as string) {
	r := Rename{Name: valid.Printable(valid.Truncate(string(local), 64)), As: as}
	for _, x := range b.renamed {
		if x == r {
			return
		}
	}
	if len(b.renamed) < maxRenames {
		b.renamed = append(b.renamed, r)
	}
}

// editDistance is the optimal string alignment distance between a and b
// (insertions, deletions, substitutions, transpositions of adjacent bytes),
// or some value >= limit when it is at least limit: names longer than 63
// bytes, or whose lengths differ by limit or more, are not compared.
func editDistance(a []byte, b string, limit int) int {
	if len(a) > 63 || len(b) > 63 {
		return limit + 64
	}
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit + 64
	}
	var rows [3][64]int
	prev2, prev, cur := &rows[0], &rows[1], &rows[2]
	for j := 0; j <= len(b); j++ {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, prev2[j-2]+1)
			}
			cur[j] = d
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// Renamed lists the misspelt container elements read so far as the element
// they are near (the rule in names.go), in the order first met: complete
// once Next has returned io.EOF.
func (d *Decoder) Renamed() []Rename {
	return append([]Rename(nil), d.b.renamed...)
}

package ingest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/testenv"
)

// addrRe finds addresses in raw report mails; the local part is group 1.
var addrRe = regexp.MustCompile(`([A-Za-z0-9._%+=-]{3,})@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}`)

var keyRe = regexp.MustCompile(`^(header|smtp|policy)\.[a-z]+=`)

// dumpTable returns every row of a table, every column formatted as text.
func dumpTable(t *testing.T, conn clickhouse.Conn, table string) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT * FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	cts := rows.ColumnTypes()
	for rows.Next() {
		vals := make([]any, len(cts))
		for i, ct := range cts {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			fmt.Fprintf(&b, "%v\t", reflect.ValueOf(v).Elem().Interface())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestFailureReportsReachClickHouseWithoutLocalParts ingests every corpus
// failure report through the pipeline with the default privacy settings,
// under its real file name (some carry the failed sender's address), and
// finds none of the original local parts in any table.
func TestFailureReportsReachClickHouseWithoutLocalParts(t *testing.T) {
	dir := testenv.CorpusDir(t)
	st, conn := openStore(t)
	p := ingest.New(st, ingest.Options{Source: "file", Privacy: ingest.Privacy{Key: []byte("per-installation-secret-key")}})
	paths, _ := filepath.Glob(filepath.Join(dir, "*", "forensic", "*.eml"))
	if len(paths) < 5 {
		t.Fatalf("only %d forensic files in the corpus", len(paths))
	}
	locals := map[string]string{}
	for _, path := range paths {
		rel, _ := filepath.Rel(dir, path)
		out := processFile(t, p, path, rel)
		if out.Kind != "failure" || out.Status != ingest.Stored && out.Status != ingest.Duplicate {
			t.Fatalf("%s: %s %s (%s)", rel, out.Kind, out.Status, out.Reason)
		}
		raw, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(raw)+"\n"+rel, "\n") {
			l := strings.ToLower(line)
			// The report mail's own envelope (its Message-ID) is not stored.
			if strings.HasPrefix(l, "message-id:") || strings.HasPrefix(l, "references:") || strings.HasPrefix(l, "in-reply-to:") {
				continue
			}
			for _, m := range addrRe.FindAllStringSubmatch(line, -1) {
				// "header.i=@example.org", "smtp.mailfrom=user@...": the key is not the local part.
				local := keyRe.ReplaceAllString(strings.ToLower(m[1]), "")
				if len(local) >= 3 {
					locals[local] = rel
				}
			}
		}
	}
	stored := strings.ToLower(dumpTable(t, conn, "failure_reports") + dumpTable(t, conn, "inputs"))
	for l, from := range locals {
		if strings.Contains(stored, l+"@") {
			i := strings.Index(stored, l+"@")
			t.Errorf("local part %q of %s is stored: ...%s...", l, from, stored[max(0, i-60):min(len(stored), i+len(l)+40)])
		}
	}
	t.Logf("%d local parts looked for in %d bytes of stored rows", len(locals), len(stored))
}

package ingest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/testkit/corpus"
	"github.com/dmarcd/dmarcd/internal/testkit/gen"
)

// s3KeyNames are object names (under incoming/) holding every character an
// S3 key may carry: each printable ASCII character, the control characters,
// a slash-separated path, UTF-8 of several lengths, and the file names
// reporters give their own reports (with '+', '!' and ':').
func s3KeyNames() []string {
	names := []string{
		"yahoo.com!example.com!2024-11-24T00:00:00+00:00.xml.gz",
		"google.com!example.com!1732406400!1732492799.zip",
		"a b+c%20d%2Be&f=g?h#i;j,k@l$m'n(o)p*q[r]s{t}u|v\\w^x`y~z\"<>",
		"nested/dir+plus/leaf name",
		"utf8-é-€-😀-中文",
	}
	for c := byte(0x01); c < 0x80; c++ {
		if c == '/' {
			continue // a separator, covered by the nested names
		}
		names = append(names, fmt.Sprintf("char-%02x-%c-end", c, c))
	}
	return names
}

// TestS3MoveModeMovesObjectsWithEveryKeyCharacter puts objects whose keys
// hold every character S3 allows into the bucket, ingests it in mode move,
// and finds each one acknowledged with one outcome and moved under
// processed/ or invalid/ with its name intact; the next pass finds nothing
// pending. Before CopyObject's source was escaped byte by byte (RFC 3986
// section 2.3: everything but unreserved characters and '/'), a key with
// '+' was copied from a key with ' ' instead: 404, no outcome, read again
// on every pass.
func TestS3MoveModeMovesObjectsWithEveryKeyCharacter(t *testing.T) {
	b := newS3Bucket(t)
	p, _, _, _ := openS3Pipeline(t)
	files, err := gen.Generate(gen.Options{Domain: "gen.example", Days: 1, Seed: 7, Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	names := listable(t, b, s3KeyNames())
	want := map[string]string{}
	for i, n := range names {
		// Alternate a real report and junk, so that both destinations see
		// every kind of key.
		data, place := []byte("not a report\r\n"), "invalid/"
		if i%2 == 0 {
			data, place = files[i%len(files)].Data, "processed/"
		}
		b.put(t, "incoming/"+n, data)
		want[n] = place
	}
	outs := once(t, newSource(t, b.config(), p))
	seen := map[string]bool{}
	for _, o := range outs {
		n := strings.TrimPrefix(keyOf(t, b.name, o.Input), "incoming/")
		seen[n] = true
		if o.Status != ingest.Stored && o.Status != ingest.Duplicate && o.Status != ingest.Invalid {
			t.Errorf("%q: %s %s %s", n, o.Status, o.ReasonCode, o.Reason)
		}
	}
	for _, n := range names {
		if !seen[n] {
			t.Errorf("%q: no outcome", n)
		}
	}
	assertPlaces(t, b, want)
	if again := once(t, newSource(t, b.config(), p)); len(again) != 0 {
		t.Errorf("second pass: %d outcomes, want none", len(again))
	}
}

// listable returns the names that the server names intact in a listing. A
// server may not: versitygw has no EncodingType url and its XML turns
// control characters into U+FFFD, so nobody can read those keys from it.
// The names are tried under probe/, outside the source's prefix.
func listable(t *testing.T, b *s3Bucket, names []string) []string {
	t.Helper()
	for _, n := range names {
		b.put(t, "probe/"+n, nil)
	}
	listed := map[string]bool{}
	for _, k := range b.keys(t, "probe/") {
		listed[strings.TrimPrefix(k, "probe/")] = true
	}
	var kept []string
	for _, n := range names {
		if listed[n] {
			kept = append(kept, n)
		}
	}
	t.Logf("%d of %d keys listed intact by the server", len(kept), len(names))
	if len(kept) < 100 {
		t.Fatalf("only %d of %d keys listed intact", len(kept), len(names))
	}
	return kept
}

// TestEveryReportRowLeadsToTheObjectItCameFrom ingests every corpus file
// from a bucket (each object downloaded twice: hashed, then parsed) and
// finds every row of the three report tables naming its object and that
// object's SHA-256, as its row in the inputs table does, with the
// report's key among that row's report_keys.
func TestEveryReportRowLeadsToTheObjectItCameFrom(t *testing.T) {
	dir := corpus.Dir(t)
	b := newS3Bucket(t)
	p, _, conn, _ := openS3Pipeline(t)
	for _, e := range corpus.Manifest(t) {
		data, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		b.put(t, "incoming/"+strings.ReplaceAll(e.Path, "/", "+"), data)
	}
	once(t, newSource(t, b.config(), p))
	assertProvenance(t, conn)
}

// assertProvenance checks that every row of the three report tables names
// its input and that input's SHA-256, as its row in the inputs table does,
// with the report's key among that row's report_keys.
func assertProvenance(t *testing.T, conn clickhouse.Conn) {
	t.Helper()
	ctx := context.Background()
	for _, table := range []string{"aggregate_reports", "failure_reports", "tlsrpt_reports"} {
		var rows, unnamed, orphans uint64
		if err := conn.QueryRow(ctx, "SELECT count(), countIf(input_name = '' OR input_sha256 = '') FROM "+table).Scan(&rows, &unnamed); err != nil {
			t.Fatal(err)
		}
		q := "SELECT count() FROM " + table + " WHERE (input_name, input_sha256, report_key) NOT IN " +
			"(SELECT name, sha256, arrayJoin(report_keys) FROM inputs WHERE status IN ('stored', 'duplicate'))"
		if err := conn.QueryRow(ctx, q).Scan(&orphans); err != nil {
			t.Fatal(err)
		}
		if rows == 0 || unnamed != 0 || orphans != 0 {
			t.Errorf("%s: %d rows, %d without input_name or input_sha256, %d whose input the inputs table does not name",
				table, rows, unnamed, orphans)
		}
		var name, part string
		if err := conn.QueryRow(ctx, "SELECT input_name, input_part FROM "+table+" ORDER BY input_part DESC LIMIT 1").Scan(&name, &part); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d rows, e.g. input_name %q, input_part %q", table, rows, name, part)
	}
}

package ingest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dmarcd/dmarcd/ingest"
	"github.com/dmarcd/dmarcd/internal/gen"
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

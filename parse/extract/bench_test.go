package extract

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

// benchRecord is one aggregate record, repeated to build big reports.
const benchRecord = "<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row></record>\n"

// bigReport returns report XML of about n bytes.
func bigReport(n int) []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version=\"1.0\"?>\n<feedback>\n")
	for b.Len() < n {
		b.WriteString(benchRecord)
	}
	b.WriteString("</feedback>\n")
	return b.Bytes()
}

// gzFast compresses data at the best speed (how big reports usually come).
func gzFast(b *testing.B, data []byte) []byte {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		b.Fatal(err)
	}
	zw.Write(data)
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// benchExtract extracts every payload of input b.N times, reading each to
// its end; SetBytes is the decompressed size, so MB/s is the payload rate.
func benchExtract(b *testing.B, input []byte, payloads int) {
	b.Helper()
	var size int64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		n, got, err := extractAll(bytes.NewReader(input))
		if err != nil || got != payloads {
			b.Fatalf("%d payloads, error %v; want %d", got, err, payloads)
		}
		size = n
	}
	b.SetBytes(size)
}

// extractAll reads every payload of r to its end.
func extractAll(r io.Reader) (n int64, payloads int, err error) {
	x := NewReader(r, DefaultLimits())
	defer x.Close()
	for {
		p, err := x.Next()
		if err == io.EOF {
			return n, payloads, nil
		}
		if err != nil {
			return n, payloads, err
		}
		payloads++
		k, err := io.Copy(io.Discard, p.R)
		n += k
		if err != nil {
			return n, payloads, err
		}
	}
}

// BenchmarkExtractBigGzip streams a 64 MiB report out of its gzip stream
// (memory stays flat: B/op does not grow with the report).
func BenchmarkExtractBigGzip(b *testing.B) {
	benchExtract(b, gzFast(b, bigReport(64<<20)), 1)
}

// BenchmarkExtractMailWithZip finds a 4 MiB report in a zip archive attached
// to an email (both held in memory, within MaxMessageBytes).
func BenchmarkExtractMailWithZip(b *testing.B) {
	mail := mkmail("Report Domain: example.com", "multipart/mixed",
		mimePart{ctype: "text/plain", cte: "7bit", body: []byte("report attached")},
		mimePart{ctype: "application/zip", filename: "r.zip", body: mkzip(b, member{"r.xml", bigReport(4 << 20)})})
	benchExtract(b, mail, 1)
}

// BenchmarkExtractSmallMail is the common case: a report mail with three
// small gzip attachments; it shows the cost per input and per payload.
func BenchmarkExtractSmallMail(b *testing.B) {
	var parts []mimePart
	for _, name := range []string{"a", "b", "c"} {
		parts = append(parts, mimePart{ctype: "application/gzip", filename: name + ".xml.gz", body: gzFast(b, []byte(report))})
	}
	benchExtract(b, mkmail("Report Domain: example.com", "multipart/mixed", parts...), 3)
}

// BenchmarkExtractBareXML is a bare report file: no container at all.
func BenchmarkExtractBareXML(b *testing.B) {
	benchExtract(b, []byte(report), 1)
}

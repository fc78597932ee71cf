package gen

import (
	"bytes"
	"testing"
)

func TestWriteLargeReportIsDeterministic(t *testing.T) {
	var a, b, c bytes.Buffer
	if err := WriteLargeReport(&a, 500, 42); err != nil {
		t.Fatal(err)
	}
	WriteLargeReport(&b, 500, 42)
	WriteLargeReport(&c, 500, 43)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same seed, different output")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("different seeds, same output")
	}
	if n := bytes.Count(a.Bytes(), []byte("<record>")); n != 500 {
		t.Fatalf("%d records", n)
	}
	if per := a.Len() / 500; per < 600 || per > 800 {
		t.Fatalf("%d bytes a record, want about 700", per)
	}
}

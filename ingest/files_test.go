package ingest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func collect(t *testing.T, paths ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for in, err := range FileInputs(context.Background(), paths, 1<<20) {
		if err != nil {
			t.Fatal(err)
		}
		rc, err := in.Open()
		if err != nil {
			got[in.Name] = "ERR " + err.Error()
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		got[in.Name] = string(b)
	}
	return got
}

func TestFileInputsSplitsMboxIntoMessages(t *testing.T) {
	dir := t.TempDir()
	mbox := filepath.Join(dir, "reports.mbox")
	os.WriteFile(mbox, []byte("From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody 1\n>From quoted\n\nFrom c@d Mon Jan  1 00:00:01 2024\nSubject: two\n\nbody 2\n"), 0o644)
	got := collect(t, mbox)
	want := map[string]string{
		mbox + "#1": "Subject: one\n\nbody 1\nFrom quoted\n\n",
		mbox + "#2": "Subject: two\n\nbody 2\n",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestFileInputsWalksMaildirAndFolders(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"Maildir/cur/1.eml:2,S", "Maildir/new/2", "sub/x.xml.gz"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte("Subject: "+p+"\n\nx\n"), 0o644)
	}
	got := collect(t, dir)
	if len(got) != 3 {
		t.Fatalf("got %d inputs: %v", len(got), got)
	}
	for name := range got {
		if !strings.HasPrefix(name, dir) {
			t.Errorf("name %q is not the path found under the folder", name)
		}
	}
}

func TestFileInputsMboxMessageOverLimitIsTooLarge(t *testing.T) {
	dir := t.TempDir()
	mbox := filepath.Join(dir, "big.mbox")
	os.WriteFile(mbox, []byte("From a@b Mon Jan  1 00:00:00 2024\nSubject: big\n\n"+strings.Repeat("x", 100)+"\n"), 0o644)
	for in, err := range FileInputs(context.Background(), []string{mbox}, 50) {
		if err != nil {
			t.Fatal(err)
		}
		_, err := in.Open()
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("open: %v, want too large", err)
		}
	}
}

func TestFileInputsEndsAtAPathThatCannotBeReadWithItsError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.xml")
	os.WriteFile(file, []byte("<feedback/>"), 0o644)
	var names []string
	var errs []error
	for in, err := range FileInputs(context.Background(), []string{file, filepath.Join(dir, "missing"), file}, 1<<20) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		names = append(names, in.Name)
	}
	if !slices.Equal(names, []string{file}) || len(errs) != 1 || !os.IsNotExist(errs[0]) {
		t.Fatalf("inputs %q, errors %v; want the file before the missing path, then its error alone", names, errs)
	}
}

func TestFileInputsStopsReadingAnMboxWhenTheLoopEnds(t *testing.T) {
	dir := t.TempDir()
	mbox := filepath.Join(dir, "reports.mbox")
	var b strings.Builder
	for i := range 3 {
		b.WriteString("From a@b Mon Jan  1 00:00:00 2024\nSubject: " + string(rune('1'+i)) + "\n\nbody\n\n")
	}
	os.WriteFile(mbox, []byte(b.String()), 0o644)
	var names []string
	for in, err := range FileInputs(context.Background(), []string{mbox, mbox}, 1<<20) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, in.Name)
		if len(names) == 2 {
			break
		}
	}
	if want := []string{mbox + "#1", mbox + "#2"}; !slices.Equal(names, want) {
		t.Fatalf("inputs %q, want %q", names, want)
	}
}

// TestRotateKeepsEveryItemOnce: a shared source's pass (Shared) holds every
// pending mail or object once, in order from a random one, wrapping around,
// and does not always begin at the same one.
func TestRotateKeepsEveryItemOnce(t *testing.T) {
	items := []int{1, 2, 3, 4, 5, 6, 7}
	firsts := map[int]bool{}
	for range 200 {
		got := rotate(slices.Clone(items))
		if len(got) != len(items) {
			t.Fatalf("rotate(%v) = %v", items, got)
		}
		for i := range got {
			if want := items[(got[0]-1+i)%len(items)]; got[i] != want {
				t.Fatalf("rotate(%v) = %v: not the items in order from %d", items, got, got[0])
			}
		}
		firsts[got[0]] = true
	}
	if len(firsts) < 4 {
		t.Errorf("200 rotations began at only %d different items", len(firsts))
	}
	if got := rotate([]int{9}); !slices.Equal(got, []int{9}) {
		t.Errorf("rotate([9]) = %v", got)
	}
}

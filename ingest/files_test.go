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
	err := FileInputs(context.Background(), paths, 1<<20, func(in Input) error {
		rc, err := in.Open()
		if err != nil {
			got[in.Name] = "ERR " + err.Error()
			return nil
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		got[in.Name] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
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
	err := FileInputs(context.Background(), []string{mbox}, 50, func(in Input) error {
		_, err := in.Open()
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("open: %v, want too large", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
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

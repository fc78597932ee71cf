package testenv

import (
	"fmt"
	"reflect"
)

// FirstDiff shows the first element of two slices (or two values) that
// differ, for test messages.
func FirstDiff(got, want any) string {
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	if g.Kind() != reflect.Slice || w.Kind() != reflect.Slice {
		return fmt.Sprintf("\n got %+v\nwant %+v", got, want)
	}
	if g.Len() != w.Len() {
		return fmt.Sprintf("%d elements, want %d", g.Len(), w.Len())
	}
	for i := 0; i < g.Len(); i++ {
		if !reflect.DeepEqual(g.Index(i).Interface(), w.Index(i).Interface()) {
			return fmt.Sprintf("element %d:\n got %+v\nwant %+v", i, g.Index(i).Interface(), w.Index(i).Interface())
		}
	}
	return "equal?"
}

package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with the configuration: the key (as a path,
// e.g. "sources[reports].password_file") and what is wrong with it.
type Problem struct {
	Key string
	Msg string
}

func (p Problem) Error() string {
	if p.Key == "" {
		return "config: " + p.Msg
	}
	return "config " + p.Key + ": " + p.Msg
}

// Problems is every problem found in a configuration; Load and Validate
// return it as their error, so that `dmarcd serve --check-config` can print
// them all, not only the first.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

func (ps *Problems) add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// err returns ps as an error, or nil when there is none.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

var (
	sizeType     = reflect.TypeOf(Size(0))
	durationType = reflect.TypeOf(Duration(0))
)

// keyRecorder is told which keys of a mapping were set, for checks that
// depend on which keys appear (keys that belong to another source type).
type keyRecorder interface{ recordKey(key string) }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode sets v from the YAML node n, adding a problem with its key path for
// every unknown key and every value of the wrong shape, and going on with the
// rest (unlike yaml.v3's decoder, which stops at the first custom error).
func decode(n *yaml.Node, v reflect.Value, path string, ps *Problems) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "limits:" with nothing under it keeps the defaults
	}
	switch v.Type() {
	case sizeType, durationType:
		if n.Kind != yaml.ScalarNode {
			ps.add(path, "want a single value, not a %s", kindName(n))
			return
		}
		if err := setScalar(v, n.Value); err != nil {
			ps.add(path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		decode(n, v.Elem(), path, ps)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			ps.add(path, "want a mapping of keys, not a %s", kindName(n))
			return
		}
		rec, _ := v.Addr().Interface().(keyRecorder)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			kp := join(path, key)
			if seen[key] {
				ps.add(kp, "set twice")
				continue
			}
			seen[key] = true
			f, ok := fieldByKey(v.Type(), key)
			if !ok {
				ps.add(kp, "unknown key (line %d)", n.Content[i].Line)
				continue
			}
			if rec != nil {
				rec.recordKey(key)
			}
			decode(n.Content[i+1], v.Field(f), kp, ps)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ps.add(path, "want a list, not a %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			decode(e, s.Index(i), elemPath(path, i, e), ps)
		}
		v.Set(s)
	default:
		if n.Kind != yaml.ScalarNode {
			ps.add(path, "want a single value, not a %s", kindName(n))
			return
		}
		if err := setScalar(v, n.Value); err != nil {
			ps.add(path, "%v", err)
		}
	}
}

// elemPath names a list entry by its name: key when it has one
// ("sources[reports]"), else by its index ("owned_domains[0]").
func elemPath(path string, i int, n *yaml.Node) string {
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == "name" && n.Content[j+1].Kind == yaml.ScalarNode && n.Content[j+1].Value != "" {
				return fmt.Sprintf("%s[%s]", path, n.Content[j+1].Value)
			}
		}
	}
	return fmt.Sprintf("%s[%d]", path, i)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "single value"
	}
}

// setScalar sets a string, number, boolean, Size, Duration or (comma
// separated) list of strings from its text.
func setScalar(v reflect.Value, s string) error {
	switch v.Type() {
	case sizeType:
		n, err := ParseSize(s)
		if err != nil {
			return err
		}
		v.SetInt(n)
		return nil
	case durationType:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot be set from one value")
		}
		var l []string
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				l = append(l, e)
			}
		}
		v.Set(reflect.ValueOf(l))
	default:
		return fmt.Errorf("cannot be set from %q", s)
	}
	return nil
}

// fieldByKey returns the index of the field whose yaml tag is key.
func fieldByKey(t reflect.Type, key string) (int, bool) {
	for i := 0; i < t.NumField(); i++ {
		if tagName(t.Field(i)) == key {
			return i, true
		}
	}
	return 0, false
}

func tagName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

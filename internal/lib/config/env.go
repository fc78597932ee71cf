package config

import (
	"os"
	"reflect"
	"strings"
)

// EnvPrefix starts the name of every environment variable that overrides a
// key: DMARCD_ and the key's path upper-cased with "_" for "." (
// DMARCD_HTTP_LISTEN for http.listen). An entry of a list is addressed by
// its name: DMARCD_SOURCES_REPORTS_PASSWORD sets password of the source
// named "reports" (a "-" in the name is written "_").
const EnvPrefix = "DMARCD_"

// EnvName returns the environment variable that overrides the key at path,
// given as its parts: EnvName("sources", "reports", "password").
func EnvName(parts ...string) string {
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(EnvPrefix, "_"))
	for _, p := range parts {
		b.WriteByte('_')
		for _, r := range strings.ToUpper(p) {
			if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

// applyEnv sets every key whose environment variable is set (and not
// empty) over what the file said.
func applyEnv(v reflect.Value, path string, parts []string, ps *Problems) {
	t := v.Type()
	rec, _ := v.Addr().Interface().(keyRecorder)
	for i := 0; i < t.NumField(); i++ {
		key := tagName(t.Field(i))
		if key == "" || (key == "name" && path != "" && strings.HasSuffix(path, "]")) {
			continue // a list entry's name is how it is addressed, not a value to override
		}
		f := v.Field(i)
		kp := join(path, key)
		kparts := append(append([]string{}, parts...), key)
		switch {
		case f.Type() == sizeType || f.Type() == durationType:
		case f.Kind() == reflect.Struct:
			applyEnv(f, kp, kparts, ps)
			continue
		case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
			if !f.IsNil() { // only a block the file has: the environment adds no block
				applyEnv(f.Elem(), kp, kparts, ps)
			}
			continue
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			for j := 0; j < f.Len(); j++ {
				e := f.Index(j)
				name := e.FieldByName("Name")
				if !name.IsValid() || name.String() == "" {
					continue // only named entries can be addressed
				}
				applyEnv(e, kp+"["+name.String()+"]", append(kparts, name.String()), ps)
			}
			continue
		}
		env := EnvName(kparts...)
		val := os.Getenv(env)
		if val == "" {
			continue
		}
		if err := setScalar(f, val); err != nil {
			ps.add(kp+" (from "+env+")", "%v", err)
			continue
		}
		if rec != nil {
			rec.recordKey(key)
		}
	}
}

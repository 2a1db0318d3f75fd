package options

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Value returns the current value of the option whose config-file key is
// key (the field's cfg tag, or else its flag tag with '-' replaced by '_'),
// as GET /config/:opt shows it: strings as they are, a nil list as an empty
// one, anything else as the field holds it. opts is a pointer to an options
// struct; ok is false for an unknown key.
func Value(opts any, key string) (v any, ok bool) {
	rv := reflect.ValueOf(opts).Elem()
	idx, ok := configKeys(rv.Type())[key]
	if !ok {
		return nil, false
	}
	f := rv.FieldByIndex(idx)
	if f.Kind() == reflect.Slice && f.IsNil() {
		return reflect.MakeSlice(f.Type(), 0, 0).Interface(), true
	}
	return f.Interface(), true
}

var keysByType sync.Map // reflect.Type → map[string][]int

// configKeys maps every config-file key of an options struct type to its
// field. Fields without a flag tag have no key.
func configKeys(t reflect.Type) map[string][]int {
	if m, ok := keysByType.Load(t); ok {
		return m.(map[string][]int)
	}
	m := make(map[string][]int)
	for _, f := range reflect.VisibleFields(t) {
		key := f.Tag.Get("cfg")
		if key == "" {
			key = strings.ReplaceAll(f.Tag.Get("flag"), "-", "_")
		}
		if key != "" {
			m[key] = f.Index
		}
	}
	keysByType.Store(t, m)
	return m
}

// Keys lists the config-file keys of an options struct (opts is a pointer
// to it), sorted.
func Keys(opts any) []string {
	keys := slices.Collect(maps.Keys(configKeys(reflect.TypeOf(opts).Elem())))
	slices.Sort(keys)
	return keys
}

package main

import (
	"bytes"
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
)

// Verdicts of jsonFilter.apply.
const (
	pass             = iota
	dropNotJSON      // the body is not a JSON object
	dropMissingField // --require-json-field is absent
	dropValue        // the field does not have --require-json-value
)

// jsonFilter implements --require-json-field, --require-json-value and
// --whitelist-json-field. Values are kept as their JSON text, so large
// integers and string escapes pass through unchanged.
type jsonFilter struct {
	requireField string
	requireValue string   // "" means any value
	requireNum   *big.Rat // requireValue as a number; nil if it is not one
	whitelist    []string // sorted, unique
	keys         map[string][]byte
}

// newJSONFilter returns nil when no JSON option is set.
func newJSONFilter(requireField, requireValue string, whitelist []string) *jsonFilter {
	if requireField == "" && len(whitelist) == 0 {
		return nil
	}
	f := &jsonFilter{requireField: requireField, keys: map[string][]byte{}}
	if requireField != "" {
		f.requireValue = requireValue
	}
	if f.requireValue != "" {
		if _, err := strconv.ParseFloat(f.requireValue, 64); err == nil {
			if r, ok := new(big.Rat).SetString(f.requireValue); ok {
				f.requireNum = r
			}
		}
	}
	f.whitelist = slices.Compact(slices.Sorted(slices.Values(whitelist)))
	for _, k := range f.whitelist {
		f.keys[k] = encodeString(k)
	}
	return f
}

// apply returns the body to publish and pass, or a reason to drop it.
func (f *jsonFilter) apply(body []byte) ([]byte, int) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, dropNotJSON
	}
	if f.requireField != "" {
		v, ok := obj[f.requireField]
		if !ok {
			return nil, dropMissingField
		}
		if f.requireValue != "" && !f.matches(v) {
			return nil, dropValue
		}
	}
	if len(f.whitelist) == 0 {
		return body, pass
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for _, k := range f.whitelist {
		v, ok := obj[k]
		if !ok {
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.Write(f.keys[k])
		b.WriteByte(':')
		json.Compact(&b, v) // valid: it was decoded above
	}
	b.WriteByte('}')
	return b.Bytes(), pass
}

// matches reports whether the JSON value v equals --require-json-value: a
// string by its text, a number by its value when the flag is a number.
func (f *jsonFilter) matches(v json.RawMessage) bool {
	var x any
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	if d.Decode(&x) != nil {
		return false
	}
	switch x := x.(type) {
	case string:
		return x == f.requireValue
	case json.Number:
		if f.requireNum == nil {
			return false
		}
		r, ok := new(big.Rat).SetString(x.String())
		return ok && r.Cmp(f.requireNum) == 0
	}
	return false
}

// encodeString returns s as a JSON string, without HTML escaping.
func encodeString(s string) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

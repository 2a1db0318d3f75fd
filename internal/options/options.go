// Package options fills a daemon's Options struct from its command-line flags
// and its --config TOML file. Precedence, highest first: a flag given on the
// command line (even with its default value), the key in the config file, the
// flag's default.
//
// The resolution itself is go-options' (the project is specified with it).
// go-options calls log.Fatalf when it cannot convert a value and panics on a
// field without a flag, so Resolve first checks the flag set against the struct
// and converts every config value it will use to the exact type of its field:
// go-options then only copies values, and every problem comes back as an error
// for main to log.
package options

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	gooptions "github.com/mreiferson/go-options"
)

// Resolve sets every field of opts (a pointer to a struct) that has a
// `flag:"name"` tag from the flag set fs, which must already be parsed, and
// from the TOML file at configPath ("" for none).
//
// A field's config key is its `cfg:"key"` tag, or else the flag name with '_'
// for '-'. Keys without a field are ignored. Config values are converted by the
// field's type:
//
//   - durations: a Go duration string ("30s") or an integer of milliseconds;
//   - integers and floats: TOML numbers or numeric strings;
//   - bools: TOML bools, ParseBool strings, or integers: 0 is false, anything
//     else true (NSQ, through go-options, reads them the other way round);
//   - []string and []float64: a TOML array or a comma-separated string;
//   - a type whose pointer is a flag.Value (e.g. nsqlog.Level for log_level):
//     its Set, called with the value's text, once per element of an array;
//   - the keys tls_required (int field: true, false or "tcp-https") and
//     tls_min_version (uint16 field: "tls1.0".."tls1.3", "" for the default)
//     as ParseTLSRequired and ParseTLSMinVersion read them.
//
// Each flag's Get must return the exact type of its field. opts is left
// untouched when Resolve returns an error.
func Resolve(opts any, fs *flag.FlagSet, configPath string) error {
	cfg := map[string]any{}
	if configPath != "" {
		if _, err := toml.DecodeFile(configPath, &cfg); err != nil {
			return fmt.Errorf("failed to load config file %s - %w", configPath, err)
		}
	}
	v := reflect.ValueOf(opts)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("options: Resolve needs a pointer to a struct, got %T", opts)
	}
	resolved := make(map[string]any, len(cfg))
	if err := normalise(v.Elem(), fs, cfg, resolved); err != nil {
		return err
	}
	gooptions.Resolve(opts, fs, resolved)
	return nil
}

// normalise checks the tagged fields of the struct s against fs and stores in
// out the config value of each, converted to the field's type. It walks
// embedded structs as go-options does.
func normalise(s reflect.Value, fs *flag.FlagSet, cfg, out map[string]any) error {
	t := s.Type()
	for i := range t.NumField() {
		field := t.Field(i)
		if field.Anonymous {
			f := s.Field(i)
			switch {
			case f.Kind() == reflect.Struct:
				if err := normalise(f, fs, cfg, out); err != nil {
					return err
				}
			case f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.Struct:
				if err := normalise(f.Elem(), fs, cfg, out); err != nil {
					return err
				}
			}
		}
		name := field.Tag.Get("flag")
		if name == "" {
			continue
		}
		if !field.IsExported() {
			return fmt.Errorf("options: field %s has a flag tag but is unexported", field.Name)
		}
		if err := checkFlag(fs, name, field); err != nil {
			return err
		}
		if dep := field.Tag.Get("deprecated"); dep != "" {
			if err := checkFlag(fs, dep, field); err != nil {
				return err
			}
		}
		key := field.Tag.Get("cfg")
		if key == "" {
			key = strings.ReplaceAll(name, "-", "_")
		}
		raw, ok := cfg[key]
		if !ok {
			continue
		}
		if key == "tls_min_version" && raw == "" {
			continue // NSQ reads an empty tls_min_version as "use the default"
		}
		v, err := convert(key, raw, field.Type)
		if err != nil {
			return err
		}
		out[key] = v
	}
	return nil
}

// checkFlag makes sure go-options will find the flag and can copy its value
// into field without converting it (it would exit or panic otherwise).
func checkFlag(fs *flag.FlagSet, name string, field reflect.StructField) error {
	f := fs.Lookup(name)
	if f == nil {
		return fmt.Errorf("options: no flag -%s for field %s", name, field.Name)
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return fmt.Errorf("options: flag -%s does not implement flag.Getter", name)
	}
	if got := reflect.TypeOf(g.Get()); got != field.Type {
		return fmt.Errorf("options: flag -%s holds a %v, field %s is a %v", name, got, field.Name, field.Type)
	}
	return nil
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	flagValueType = reflect.TypeFor[flag.Value]()
)

// convert turns the TOML value v of key into a value of type t.
func convert(key string, v any, t reflect.Type) (any, error) {
	out := reflect.New(t).Elem()
	switch {
	case key == "tls_required" && t.Kind() == reflect.Int:
		n, err := ParseTLSRequired(fmt.Sprint(v))
		if err != nil {
			return nil, fmt.Errorf("failed parsing tls_required %v", v)
		}
		out.SetInt(int64(n))
		return out.Interface(), nil
	case key == "tls_min_version" && t.Kind() == reflect.Uint16:
		n, err := ParseTLSMinVersion(fmt.Sprint(v))
		if err != nil {
			return nil, fmt.Errorf("failed parsing tls_min_version %v", v)
		}
		out.SetUint(uint64(n))
		return out.Interface(), nil
	case reflect.PointerTo(t).Implements(flagValueType):
		fv := out.Addr().Interface().(flag.Value)
		vals, ok := v.([]any)
		if !ok {
			vals = []any{v}
		}
		for _, e := range vals {
			if err := fv.Set(fmt.Sprint(e)); err != nil {
				return nil, fmt.Errorf("failed parsing %s %v", key, v)
			}
		}
		return out.Interface(), nil
	}
	if err := convertKind(out, v); err != nil {
		return nil, fmt.Errorf("failed parsing %s %v - %w", key, v, err)
	}
	return out.Interface(), nil
}

// convertKind sets out, by its kind, from the TOML value v: string, int64,
// float64, bool or []any (dates and tables are never valid).
func convertKind(out reflect.Value, v any) error {
	if out.Type() == durationType {
		switch v := v.(type) {
		case string:
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			out.SetInt(int64(d))
			return nil
		case int64: // NSQ reads an integer duration as milliseconds
			out.SetInt(int64(time.Duration(v) * time.Millisecond))
			return nil
		}
		return fmt.Errorf("want a duration string or integer milliseconds, got %T", v)
	}

	switch out.Kind() {
	case reflect.Bool:
		switch v := v.(type) {
		case bool:
			out.SetBool(v)
			return nil
		case string:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return err
			}
			out.SetBool(b)
			return nil
		case int64:
			// go-options (so NSQ) reads 0 as true and anything else as
			// false; we read integers the way everyone else does.
			out.SetBool(v != 0)
			return nil
		}
		return fmt.Errorf("want a bool, got %T", v)

	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var n int64
		switch v := v.(type) {
		case int64:
			n = v
		case float64:
			if v != float64(int64(v)) {
				return errors.New("not an integer")
			}
			n = int64(v)
		case string:
			var err error
			if n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
				return err
			}
		default:
			return fmt.Errorf("want an integer, got %T", v)
		}
		if out.OverflowInt(n) {
			return errors.New("out of range")
		}
		out.SetInt(n)
		return nil

	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var n uint64
		switch v := v.(type) {
		case int64:
			if v < 0 {
				return errors.New("out of range")
			}
			n = uint64(v)
		case float64:
			if v < 0 || v != float64(uint64(v)) {
				return errors.New("not a non-negative integer")
			}
			n = uint64(v)
		case string:
			var err error
			if n, err = strconv.ParseUint(strings.TrimSpace(v), 10, 64); err != nil {
				return err
			}
		default:
			return fmt.Errorf("want an integer, got %T", v)
		}
		if out.OverflowUint(n) {
			return errors.New("out of range")
		}
		out.SetUint(n)
		return nil

	case reflect.Float32, reflect.Float64:
		f, err := toFloat(v)
		if err != nil {
			return err
		}
		out.SetFloat(f)
		return nil

	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string, got %T", v)
		}
		out.SetString(s)
		return nil

	case reflect.Slice:
		var elems []any
		switch v := v.(type) {
		case []any:
			elems = v
		case string:
			for s := range strings.SplitSeq(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					elems = append(elems, s)
				}
			}
		default:
			return fmt.Errorf("want an array or a comma-separated string, got %T", v)
		}
		sl := reflect.MakeSlice(out.Type(), len(elems), len(elems))
		for i, e := range elems {
			if err := convertElem(sl.Index(i), e); err != nil {
				return err
			}
		}
		out.Set(sl)
		return nil
	}
	return fmt.Errorf("options: unsupported field type %v", out.Type())
}

// convertElem sets one element of a []string or []float64 list.
func convertElem(out reflect.Value, v any) error {
	switch out.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a list of strings, got a %T element", v)
		}
		out.SetString(s)
		return nil
	case reflect.Float32, reflect.Float64:
		f, err := toFloat(v)
		if err != nil {
			return err
		}
		out.SetFloat(f)
		return nil
	}
	return fmt.Errorf("options: unsupported list type []%v", out.Type())
}

func toFloat(v any) (float64, error) {
	switch v := v.(type) {
	case float64:
		return v, nil
	case int64:
		return float64(v), nil
	case string:
		return strconv.ParseFloat(strings.TrimSpace(v), 64)
	}
	return 0, fmt.Errorf("want a number, got %T", v)
}

// nsqd's --tls-required values, numbered as its GET /config/tls_required
// reports them (nsqd.TLSNotRequired, TLSRequiredExceptHTTP, TLSRequired).
const (
	tlsNotRequired        = 0
	tlsRequiredExceptHTTP = 1
	tlsRequired           = 2
)

// ParseTLSRequired reads an nsqd --tls-required value: "tcp-https" (TLS for
// TCP clients, plain HTTP still allowed) is 1, a true ParseBool value 2 and a
// false one 0. Case is ignored.
func ParseTLSRequired(s string) (int, error) {
	s = strings.ToLower(s)
	if s == "tcp-https" {
		return tlsRequiredExceptHTTP, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return 0, err
	}
	if b {
		return tlsRequired, nil
	}
	return tlsNotRequired, nil
}

// ParseTLSMinVersion reads an nsqd --tls-min-version value, "tls1.0" to
// "tls1.3" in any case, as a crypto/tls version. NSQ's help also names
// ssl3.0, which Go no longer supports: it is rejected like any other value.
func ParseTLSMinVersion(s string) (uint16, error) {
	switch strings.ToLower(s) {
	case "tls1.0":
		return tls.VersionTLS10, nil
	case "tls1.1":
		return tls.VersionTLS11, nil
	case "tls1.2":
		return tls.VersionTLS12, nil
	case "tls1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("unknown tlsVersionOption %q", s)
}

// StringList is a repeatable string flag (--lookupd-tcp-address,
// --admin-user, ...): each occurrence adds one value, commas included. Its
// Get returns a []string, nil when the flag was never given.
type StringList []string

// Set implements flag.Value.
func (l *StringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// String implements flag.Value.
func (l *StringList) String() string { return strings.Join(*l, ",") }

// Get implements flag.Getter.
func (l *StringList) Get() any { return []string(*l) }

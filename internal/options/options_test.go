package options_test

import (
	"crypto/tls"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
)

// testOpts has a field of every kind the daemons' Options use.
type testOpts struct {
	Name          string        `flag:"name"`
	Count         int64         `flag:"count"`
	Small         int           `flag:"small"`
	Port          uint16        `flag:"port"`
	Ratio         float64       `flag:"ratio"`
	Enabled       bool          `flag:"enabled"`
	Snappy        bool          `flag:"snappy"`
	Timeout       time.Duration `flag:"timeout"`
	Addrs         []string      `flag:"addr" cfg:"addresses"`
	Percentiles   []float64     `flag:"pct" cfg:"percentiles"`
	LogLevel      nsqlog.Level  `flag:"log-level"`
	TLSRequired   int           `flag:"tls-required"`
	TLSMinVersion uint16        `flag:"tls-min-version"`
	NotAnOption   string
}

func defaultOpts() *testOpts {
	return &testOpts{
		Name:          "default",
		Count:         100,
		Small:         1,
		Port:          4150,
		Ratio:         0.5,
		Snappy:        true,
		Timeout:       time.Minute,
		LogLevel:      nsqlog.Info,
		TLSMinVersion: tls.VersionTLS10,
		NotAnOption:   "untouched",
	}
}

// uint16Flag and floatsFlag stand in for the daemons' custom flag types.
type uint16Flag uint16

func (f *uint16Flag) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 16)
	*f = uint16Flag(v)
	return err
}
func (f *uint16Flag) String() string { return strconv.Itoa(int(*f)) }
func (f *uint16Flag) Get() any       { return uint16(*f) }

type floatsFlag []float64

func (f *floatsFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	*f = append(*f, v)
	return err
}
func (f *floatsFlag) String() string { return "" }
func (f *floatsFlag) Get() any       { return []float64(*f) }

func testFlagSet(o *testOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.String("name", o.Name, "")
	fs.Int64("count", o.Count, "")
	fs.Int("small", o.Small, "")
	port := uint16Flag(o.Port)
	fs.Var(&port, "port", "")
	fs.Float64("ratio", o.Ratio, "")
	fs.Bool("enabled", o.Enabled, "")
	fs.Bool("snappy", o.Snappy, "")
	fs.Duration("timeout", o.Timeout, "")
	fs.Var(new(options.StringList), "addr", "")
	fs.Var(new(floatsFlag), "pct", "")
	level := o.LogLevel
	fs.Var(&level, "log-level", "")
	fs.Int("tls-required", o.TLSRequired, "")
	minVersion := uint16Flag(o.TLSMinVersion)
	fs.Var(&minVersion, "tls-min-version", "")
	fs.String("config", "", "")
	return fs
}

// writeConfig writes a TOML file for one test and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.cfg")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name   string
		config string // "" for no --config file
		args   []string
		want   func(o *testOpts) // applied to defaultOpts()
	}{
		{"defaults", "", nil, func(o *testOpts) {}},
		{"empty file", "\n", nil, func(o *testOpts) {}},
		{"file sets values", `name = "file"` + "\ncount = 5\nratio = 0.25", nil, func(o *testOpts) {
			o.Name, o.Count, o.Ratio = "file", 5, 0.25
		}},
		{"flag beats file", "count = 5", []string{"-count=7"}, func(o *testOpts) { o.Count = 7 }},
		{"flag at its default beats file", "count = 5", []string{"--count", "100"}, func(o *testOpts) {}},
		{"bool flag at its default beats file", "snappy = false", []string{"-snappy=true"}, func(o *testOpts) {}},
		{"file beats default of other flags", "count = 5", []string{"-name=x"}, func(o *testOpts) {
			o.Count, o.Name = 5, "x"
		}},
		{"integer booleans", "enabled = 1\nsnappy = 0", nil, func(o *testOpts) { o.Enabled, o.Snappy = true, false }},
		{"integer boolean 7", "enabled = 7", nil, func(o *testOpts) { o.Enabled = true }},
		{"string booleans", `enabled = "true"` + "\n" + `snappy = "F"`, nil, func(o *testOpts) { o.Enabled, o.Snappy = true, false }},
		{"toml booleans", "enabled = true\nsnappy = false", nil, func(o *testOpts) { o.Enabled, o.Snappy = true, false }},
		{"millisecond duration", "timeout = 5000", nil, func(o *testOpts) { o.Timeout = 5 * time.Second }},
		{"string duration", `timeout = "1m30s"`, nil, func(o *testOpts) { o.Timeout = 90 * time.Second }},
		{"numeric strings", `count = "42"` + "\n" + `ratio = "0.75"` + "\n" + `port = "4242"`, nil, func(o *testOpts) {
			o.Count, o.Ratio, o.Port = 42, 0.75, 4242
		}},
		{"whole float for int", "small = 3.0\ncount = 1e4", nil, func(o *testOpts) { o.Small, o.Count = 3, 10000 }},
		{"int for float", "ratio = 1", nil, func(o *testOpts) { o.Ratio = 1 }},
		{"unknown keys ignored", "nope = 1\nconfig = \"x\"\nverbose = true\n[table]\nkey = \"v\"", nil, func(o *testOpts) {}},
		{"field without flag is no key", `NotAnOption = "x"` + "\n" + `not_an_option = "x"`, nil, func(o *testOpts) {}},
		{"flag name is not the key when cfg is set", `addr = ["a"]`, nil, func(o *testOpts) {}},
		{"array sets a repeatable flag once per element", `addresses = ["a:1", "b:2"]`, nil, func(o *testOpts) {
			o.Addrs = []string{"a:1", "b:2"}
		}},
		{"comma-separated list", `addresses = "a:1, b:2,"`, nil, func(o *testOpts) { o.Addrs = []string{"a:1", "b:2"} }},
		{"empty array", "addresses = []", nil, func(o *testOpts) { o.Addrs = []string{} }},
		{"repeated flag beats file array", `addresses = ["a:1"]`, []string{"-addr", "x:1", "--addr=y:2"}, func(o *testOpts) {
			o.Addrs = []string{"x:1", "y:2"}
		}},
		{"float array keeps order", "percentiles = [0.5, 0.99, 1]", nil, func(o *testOpts) { o.Percentiles = []float64{0.5, 0.99, 1} }},
		{"float list string", `percentiles = "0.99,0.5"`, nil, func(o *testOpts) { o.Percentiles = []float64{0.99, 0.5} }},
		{"log_level any case", `log_level = "WARN"`, nil, func(o *testOpts) { o.LogLevel = nsqlog.Warn }},
		{"log_level debug", `log_level = "debug"`, nil, func(o *testOpts) { o.LogLevel = nsqlog.Debug }},
		{"log_level flag beats file", `log_level = "debug"`, []string{"-log-level=error"}, func(o *testOpts) { o.LogLevel = nsqlog.Error }},
		{"tls_required true", "tls_required = true", nil, func(o *testOpts) { o.TLSRequired = 2 }},
		{"tls_required string true", `tls_required = "TRUE"`, nil, func(o *testOpts) { o.TLSRequired = 2 }},
		{"tls_required false", "tls_required = false", nil, func(o *testOpts) { o.TLSRequired = 0 }},
		{"tls_required tcp-https", `tls_required = "tcp-https"`, nil, func(o *testOpts) { o.TLSRequired = 1 }},
		{"tls_min_version", `tls_min_version = "tls1.2"`, nil, func(o *testOpts) { o.TLSMinVersion = tls.VersionTLS12 }},
		{"tls_min_version any case", `tls_min_version = "TLS1.3"`, nil, func(o *testOpts) { o.TLSMinVersion = tls.VersionTLS13 }},
		{"tls_min_version empty is default", `tls_min_version = ""`, nil, func(o *testOpts) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaultOpts()
			fs := testFlagSet(got)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatalf("Parse(%q): %v", tt.args, err)
			}
			path := ""
			if tt.config != "" {
				path = writeConfig(t, tt.config)
			}
			if err := options.Resolve(got, fs, path); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			want := defaultOpts()
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Resolve(%q, %q) =\n%+v\nwant\n%+v", tt.config, tt.args, *got, *want)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		wantErr string // the whole error, or its start when it ends with "…"
	}{
		{"log_level", `log_level = "loud"`, "failed parsing log_level loud"},
		{"log_level number", "log_level = 2", "failed parsing log_level 2"},
		{"tls_required", `tls_required = "maybe"`, "failed parsing tls_required maybe"},
		{"tls_required number", "tls_required = 3", "failed parsing tls_required 3"},
		{"tls_min_version", `tls_min_version = "tls9"`, "failed parsing tls_min_version tls9"},
		{"tls_min_version ssl3", `tls_min_version = "ssl3.0"`, "failed parsing tls_min_version ssl3.0"},
		{"tls_min_version number", "tls_min_version = 771", "failed parsing tls_min_version 771"},
		{"bad toml", "count = = 5", "failed to load config file PATH - …"},
		{"bad duration", `timeout = "5x"`, "failed parsing timeout 5x - …"},
		{"float duration", "timeout = 1.5", "failed parsing timeout 1.5 - …"},
		{"bad int", `count = "abc"`, "failed parsing count abc - …"},
		{"fractional int", "small = 1.5", "failed parsing small 1.5 - …"},
		{"overflow", "port = 70000", "failed parsing port 70000 - out of range"},
		{"negative uint", "port = -1", "failed parsing port -1 - out of range"},
		{"bad bool", `enabled = "yes"`, "failed parsing enabled yes - …"},
		{"float bool", "enabled = 1.0", "failed parsing enabled 1 - …"},
		{"number for string", "name = 5", "failed parsing name 5 - want a string, got int64"},
		{"number list", "addresses = [1, 2]", "failed parsing addresses [1 2] - …"},
		{"bad float list", `percentiles = "0.5,x"`, "failed parsing percentiles 0.5,x - …"},
		{"date", "count = 1979-05-27", "failed parsing count 1979-05-27 …"},
		{"table", "[count]\nx = 1", "failed parsing count map[x:1] - …"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaultOpts()
			fs := testFlagSet(got)
			if err := fs.Parse(nil); err != nil {
				t.Fatal(err)
			}
			path := writeConfig(t, tt.config)
			err := options.Resolve(got, fs, path)
			if err == nil {
				t.Fatalf("Resolve(%q) = nil, want %q", tt.config, tt.wantErr)
			}
			want := strings.ReplaceAll(tt.wantErr, "PATH", path)
			if prefix, ok := strings.CutSuffix(want, "…"); ok {
				if !strings.HasPrefix(err.Error(), prefix) {
					t.Errorf("Resolve(%q) = %q, want %q...", tt.config, err, prefix)
				}
			} else if err.Error() != want {
				t.Errorf("Resolve(%q) = %q, want %q", tt.config, err, want)
			}
			if !reflect.DeepEqual(got, defaultOpts()) {
				t.Errorf("Resolve(%q) changed opts on error: %+v", tt.config, *got)
			}
		})
	}
}

func TestResolveMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.cfg")
	o := defaultOpts()
	err := options.Resolve(o, testFlagSet(o), path)
	if err == nil || !strings.HasPrefix(err.Error(), "failed to load config file "+path+" - ") {
		t.Errorf("Resolve(missing file) = %v, want failed to load config file", err)
	}
}

// Mistakes in a daemon's flag set are errors, not go-options' panic or exit.
func TestResolveProgrammingErrors(t *testing.T) {
	type noFlag struct {
		X string `flag:"x"`
	}
	type wrongType struct {
		N int `flag:"n"`
	}
	type notGetter struct {
		V string `flag:"v"`
	}
	tests := []struct {
		name    string
		opts    any
		fs      func() *flag.FlagSet
		wantErr string
	}{
		{"not a pointer", noFlag{}, func() *flag.FlagSet { return flag.NewFlagSet("t", flag.ContinueOnError) },
			"options: Resolve needs a pointer to a struct, got options_test.noFlag"},
		{"missing flag", &noFlag{}, func() *flag.FlagSet { return flag.NewFlagSet("t", flag.ContinueOnError) },
			"options: no flag -x for field X"},
		{"wrong flag type", &wrongType{}, func() *flag.FlagSet {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.Int64("n", 0, "")
			return fs
		}, "options: flag -n holds a int64, field N is a int"},
		{"not a getter", &notGetter{}, func() *flag.FlagSet {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.Var(plainValue{}, "v", "")
			return fs
		}, "options: flag -v does not implement flag.Getter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := options.Resolve(tt.opts, tt.fs(), "")
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Resolve = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

type plainValue struct{}

func (plainValue) Set(string) error { return nil }
func (plainValue) String() string   { return "" }

func TestResolveEmbedded(t *testing.T) {
	type Inner struct {
		Depth int `flag:"depth"`
	}
	type Outer struct {
		*Inner
		Name string `flag:"name"`
	}
	o := &Outer{Inner: &Inner{Depth: 1}, Name: "a"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Int("depth", 1, "")
	fs.String("name", "a", "")
	if err := fs.Parse([]string{"-name=b"}); err != nil {
		t.Fatal(err)
	}
	if err := options.Resolve(o, fs, writeConfig(t, "depth = 3\nname = \"c\"")); err != nil {
		t.Fatal(err)
	}
	if o.Depth != 3 || o.Name != "b" {
		t.Errorf("Resolve = {Depth:%d Name:%q}, want {Depth:3 Name:\"b\"}", o.Depth, o.Name)
	}
}

func TestParseTLSRequired(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"true", 2, false},
		{"1", 2, false},
		{"T", 2, false},
		{"false", 0, false},
		{"0", 0, false},
		{"tcp-https", 1, false},
		{"TCP-HTTPS", 1, false},
		{"", 0, true},
		{"https", 0, true},
	}
	for _, tt := range tests {
		got, err := options.ParseTLSRequired(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseTLSRequired(%q) = %v, %v, want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseTLSMinVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    uint16
		wantErr string
	}{
		{"tls1.0", tls.VersionTLS10, ""},
		{"tls1.1", tls.VersionTLS11, ""},
		{"TLS1.2", tls.VersionTLS12, ""},
		{"tls1.3", tls.VersionTLS13, ""},
		{"tls9", 0, `unknown tlsVersionOption "tls9"`},
		{"ssl3.0", 0, `unknown tlsVersionOption "ssl3.0"`},
		{"", 0, `unknown tlsVersionOption ""`},
	}
	for _, tt := range tests {
		got, err := options.ParseTLSMinVersion(tt.in)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tt.want || gotErr != tt.wantErr {
			t.Errorf("ParseTLSMinVersion(%q) = %v, %q, want %v, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
		}
	}
}

func TestStringList(t *testing.T) {
	var l options.StringList
	if got := l.Get(); got.([]string) != nil {
		t.Errorf("Get() of an unset list = %#v, want nil", got)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(&l, "addr", "")
	if err := fs.Parse([]string{"-addr", "a,b", "--addr=c"}); err != nil {
		t.Fatal(err)
	}
	if got, want := l.Get().([]string), []string{"a,b", "c"}; !slices.Equal(got, want) {
		t.Errorf("Get() = %q, want %q", got, want)
	}
	if got, want := l.String(), "a,b,c"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"crypto/tls"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/nsqd"
)

// resolve parses args and an optional config file text the way main does and
// returns the options.
func resolve(t *testing.T, config string, args ...string) *nsqd.Options {
	t.Helper()
	opts := nsqd.NewOptions()
	fs := nsqdFlagSet(opts)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	path := ""
	if config != "" {
		path = filepath.Join(t.TempDir(), "nsqd.cfg")
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := options.Resolve(opts, fs, path); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return opts
}

// Every nsqd flag of NSQ 1.3 (plus master's), and no other.
func TestFlagNames(t *testing.T) {
	want := []string{
		"auth-http-address", "auth-http-request-method", "broadcast-address",
		"broadcast-http-port", "broadcast-tcp-port", "config", "data-path", "deflate", "drain-timeout", "durable",
		"e2e-processing-latency-percentile", "e2e-processing-latency-window-time",
		"enable-experiment", "enable-peek", "http-address", "http-client-connect-timeout",
		"http-client-request-timeout", "https-address", "log-level", "log-prefix",
		"lookupd-tcp-address", "max-attempts", "max-body-size", "max-bytes-per-file",
		"max-channel-bytes", "max-channel-consumers", "max-channel-depth", "max-deflate-level", "max-heartbeat-interval",
		"max-msg-size", "max-msg-timeout", "max-output-buffer-size",
		"max-output-buffer-timeout", "max-rdy-count", "max-req-timeout", "max-topic-bytes", "max-topic-depth",
		"mem-queue-size", "min-free-disk-bytes", "min-output-buffer-timeout", "msg-timeout", "msg-ttl", "node-id",
		"output-buffer-timeout", "overflow", "queue-scan-selection-count",
		"queue-scan-worker-pool-max", "replication-address", "replication-id", "replication-peers", "sigterm-mode", "snappy", "statsd-address",
		"statsd-exclude-ephemeral", "statsd-interval", "statsd-mem-stats",
		"statsd-prefix", "statsd-udp-packet-size", "sync-every", "sync-timeout",
		"tcp-address", "tls-cert", "tls-client-auth-policy", "tls-key",
		"tls-min-version", "tls-required", "tls-root-ca-file", "topology-region",
		"topology-zone", "verbose", "version", "worker-id",
	}
	var got []string
	nsqdFlagSet(nsqd.NewOptions()).VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
	if !slices.Equal(got, want) {
		t.Errorf("flags = %q\nwant %q", got, want)
	}
}

func TestDefaults(t *testing.T) {
	got := resolve(t, "")
	if want := nsqd.NewOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("options with no flags =\n%+v\nwant nsqd.NewOptions() =\n%+v", *got, *want)
	}
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	h := md5.Sum([]byte(hostname))
	checks := []struct {
		name      string
		got, want any
	}{
		{"node-id", got.ID, int64(crc32.ChecksumIEEE(h[:]) % 1024)},
		{"broadcast-address", got.BroadcastAddress, hostname},
		{"mem-queue-size", got.MemQueueSize, int64(10000)},
		{"msg-timeout", got.MsgTimeout, time.Minute},
		{"log-level", got.LogLevel, nsqlog.Info},
		{"log-prefix", got.LogPrefix, "[nsqd] "},
		{"tls-min-version", got.TLSMinVersion, uint16(tls.VersionTLS10)},
		{"tls-required", got.TLSRequired, nsqd.TLSNotRequired},
		{"lookupd-tcp-address", got.NSQLookupdTCPAddresses, []string(nil)},
		{"e2e-processing-latency-percentile", got.E2EProcessingLatencyPercentiles, []float64(nil)},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestFlagSyntax(t *testing.T) {
	tests := []struct {
		args []string
		get  func(o *nsqd.Options) any
		want any
	}{
		{[]string{"-mem-queue-size", "5"}, func(o *nsqd.Options) any { return o.MemQueueSize }, int64(5)},
		{[]string{"-mem-queue-size=5"}, func(o *nsqd.Options) any { return o.MemQueueSize }, int64(5)},
		{[]string{"--mem-queue-size", "5"}, func(o *nsqd.Options) any { return o.MemQueueSize }, int64(5)},
		{[]string{"--mem-queue-size=5"}, func(o *nsqd.Options) any { return o.MemQueueSize }, int64(5)},
		{[]string{"--msg-timeout=90s"}, func(o *nsqd.Options) any { return o.MsgTimeout }, 90 * time.Second},
		{[]string{"-node-id", "7"}, func(o *nsqd.Options) any { return o.ID }, int64(7)},
		{[]string{"--snappy=false"}, func(o *nsqd.Options) any { return o.SnappyEnabled }, false},
		{[]string{"-statsd-exclude-ephemeral"}, func(o *nsqd.Options) any { return o.StatsdExcludeEphemeral }, true},
		{[]string{"--log-level", "WARN"}, func(o *nsqd.Options) any { return o.LogLevel }, nsqlog.Warn},
		{[]string{"-log-level=debug"}, func(o *nsqd.Options) any { return o.LogLevel }, nsqlog.Debug},
		{[]string{"--http-address="}, func(o *nsqd.Options) any { return o.HTTPAddress }, ""},
		{[]string{"-tls-required"}, func(o *nsqd.Options) any { return o.TLSRequired }, nsqd.TLSRequired},
		{[]string{"--tls-required=true"}, func(o *nsqd.Options) any { return o.TLSRequired }, nsqd.TLSRequired},
		{[]string{"--tls-required=tcp-https"}, func(o *nsqd.Options) any { return o.TLSRequired }, nsqd.TLSRequiredExceptHTTP},
		{[]string{"-tls-required=false"}, func(o *nsqd.Options) any { return o.TLSRequired }, nsqd.TLSNotRequired},
		{[]string{"-tls-min-version", "tls1.2"}, func(o *nsqd.Options) any { return o.TLSMinVersion }, uint16(tls.VersionTLS12)},
		{[]string{"--tls-min-version=TLS1.3"}, func(o *nsqd.Options) any { return o.TLSMinVersion }, uint16(tls.VersionTLS13)},
		{[]string{"--tls-min-version="}, func(o *nsqd.Options) any { return o.TLSMinVersion }, uint16(tls.VersionTLS10)},
		{[]string{"-verbose", "--worker-id"}, func(o *nsqd.Options) any { return o.ID }, nsqd.NewOptions().ID},
		{
			[]string{"-lookupd-tcp-address", "a:4160", "--lookupd-tcp-address=b:4160"},
			func(o *nsqd.Options) any { return o.NSQLookupdTCPAddresses },
			[]string{"a:4160", "b:4160"},
		},
		{
			[]string{"--auth-http-address=a:4181", "-auth-http-address", "http://b/auth"},
			func(o *nsqd.Options) any { return o.AuthHTTPAddresses },
			[]string{"a:4181", "http://b/auth"},
		},
		{
			[]string{"-enable-experiment", "topology-aware-consumption", "-enable-experiment=x"},
			func(o *nsqd.Options) any { return o.Experiments },
			[]string{"topology-aware-consumption", "x"},
		},
		{
			[]string{"--e2e-processing-latency-percentile=0.5,0.99", "-e2e-processing-latency-percentile", "1.0", "-e2e-processing-latency-percentile=0.95"},
			func(o *nsqd.Options) any { return o.E2EProcessingLatencyPercentiles },
			[]float64{1, 0.99, 0.95, 0.5},
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			o := resolve(t, "", tt.args...)
			if got := tt.get(o); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%q gives %#v, want %#v", tt.args, got, tt.want)
			}
		})
	}
}

func TestBadFlagValues(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-tls-min-version", "tls9"}, `invalid value "tls9" for flag -tls-min-version: unknown tlsVersionOption "tls9"`},
		{[]string{"--log-level=loud"}, `invalid value "loud" for flag -log-level: invalid log level 'loud' (debug, info, warn, error, fatal)`},
		{[]string{"--tls-required=maybe"}, `invalid boolean value "maybe" for -tls-required: strconv.ParseBool: parsing "maybe": invalid syntax`},
		{[]string{"-mem-queue-size=lots"}, `invalid value "lots" for flag -mem-queue-size: parse error`},
		{[]string{"-e2e-processing-latency-percentile=0.5,x"}, `invalid value "0.5,x" for flag -e2e-processing-latency-percentile: strconv.ParseFloat: parsing "x": invalid syntax`},
		{[]string{"-no-such-flag"}, `flag provided but not defined: -no-such-flag`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := nsqdFlagSet(nsqd.NewOptions())
			var out bytes.Buffer
			fs.SetOutput(&out)
			err := fs.Parse(tt.args)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Parse(%q) = %v, want %q", tt.args, err, tt.wantErr)
			}
			if !strings.Contains(out.String(), "Usage of nsqd:\n") {
				t.Errorf("Parse(%q) printed %q, want the usage", tt.args, out.String())
			}
		})
	}
}

// The example NSQ 1.3's option resolution (command line, then --config
// file, then default) was verified with.
func TestConfigAndFlags(t *testing.T) {
	const config = `
id = 7
mem_queue_size = 123
msg_timeout = "30s"
max_req_timeout = 5000
nsqlookupd_tcp_addresses = ["127.0.0.1:21160"]
e2e_processing_latency_percentiles = [0.99, 0.5]
log_level = "warn"
unknown_key = 1
snappy = 0
deflate = 1
durable = true
tls_required = "tcp-https"
tls_min_version = "tls1.2"
auth_http_addresses = "a:4181,b:4181"
`
	o := resolve(t, config, "--mem-queue-size=456", "-sync-every", "2500")
	want := nsqd.NewOptions()
	want.ID = 7
	want.MemQueueSize = 456
	want.MsgTimeout = 30 * time.Second
	want.MaxReqTimeout = 5 * time.Second
	want.NSQLookupdTCPAddresses = []string{"127.0.0.1:21160"}
	want.E2EProcessingLatencyPercentiles = []float64{0.99, 0.5}
	want.LogLevel = nsqlog.Warn
	want.SnappyEnabled = false // integer booleans: 0 is false, unlike NSQ
	want.DeflateEnabled = true
	want.Durable = true
	want.TLSRequired = nsqd.TLSRequiredExceptHTTP
	want.TLSMinVersion = tls.VersionTLS12
	want.AuthHTTPAddresses = []string{"a:4181", "b:4181"}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("resolved options =\n%+v\nwant\n%+v", *o, *want)
	}

	// A flag given with its default value still beats the file.
	if o := resolve(t, "sync_every = 10", "-sync-every", "2500"); o.SyncEvery != 2500 {
		t.Errorf("sync-every = %d, want 2500 from the command line", o.SyncEvery)
	}
	// Repeated flags replace the file's list rather than add to it.
	o = resolve(t, `nsqlookupd_tcp_addresses = ["f:1"]`, "-lookupd-tcp-address=c:1", "-lookupd-tcp-address=c:2")
	if want := []string{"c:1", "c:2"}; !slices.Equal(o.NSQLookupdTCPAddresses, want) {
		t.Errorf("lookupd-tcp-address = %q, want %q", o.NSQLookupdTCPAddresses, want)
	}
}

// fatalLine matches an NSQ FATAL line from main.
var fatalLine = regexp.MustCompile(`^\[nsqd\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} FATAL: `)

func TestRun(t *testing.T) {
	badConfig := filepath.Join(t.TempDir(), "bad.cfg")
	if err := os.WriteFile(badConfig, []byte(`log_level = "loud"`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // exact
		wantStderr string // substring
		fatal      bool   // stderr is one FATAL line
	}{
		{"version", []string{"--version"}, 0, "nsqd v1.3.0 (built w/", "", false},
		{"help", []string{"-h"}, 0, "", "Usage of nsqd:\n", false},
		{"bad flag", []string{"-tls-min-version=tls9"}, 2, "", `invalid value "tls9" for flag -tls-min-version: unknown tlsVersionOption "tls9"`, false},
		{"missing config", []string{"--config", "/nonexistent/nsqd.cfg"}, 1, "", "FATAL: failed to load config file /nonexistent/nsqd.cfg - open /nonexistent/nsqd.cfg: ", true},
		{"bad config", []string{"--config=" + badConfig}, 1, "", "FATAL: failed parsing log_level loud\n", true},
		{"invalid options", []string{"--node-id=5000"}, 1, "", "FATAL: failed to instantiate nsqd - --node-id must be [0,1024)\n", true},
		{
			"client auth policy implies tls-required", []string{"--tls-client-auth-policy=require"}, 1, "",
			"FATAL: failed to instantiate nsqd - cannot require TLS client connections without TLS key and cert\n", true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, code, tt.wantCode, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tt.wantStdout) || (tt.wantStdout == "" && stdout.Len() > 0) {
				t.Errorf("run(%q) stdout = %q, want %q", tt.args, stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("run(%q) stderr = %q, want %q in it", tt.args, stderr.String(), tt.wantStderr)
			}
			if tt.fatal && !fatalLine.MatchString(stderr.String()) {
				t.Errorf("run(%q) stderr = %q, want an NSQ FATAL line", tt.args, stderr.String())
			}
		})
	}
}

// A daemon whose context is already cancelled starts, shuts down and exits 0.
func TestRunShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	args := []string{
		"--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", "--https-address=",
		"--data-path=" + t.TempDir(), "--log-level=error",
	}
	var stdout, stderr bytes.Buffer
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Errorf("run(%q) = %d, want 0 (stderr %q)", args, code, stderr.String())
	}
}

// contrib/nsqd.cfg.example lists every config key once, set or commented out,
// and what it sets are the defaults.
func TestConfigExample(t *testing.T) {
	b, err := os.ReadFile("../../contrib/nsqd.cfg.example")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	typ := reflect.TypeFor[nsqd.Options]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("flag")
		if name == "" {
			continue
		}
		want = append(want, cmp.Or(f.Tag.Get("cfg"), strings.ReplaceAll(name, "-", "_")))
	}
	var got []string
	for _, m := range regexp.MustCompile(`(?m)^(?:# )?([a-z][a-z0-9_]*) = `).FindAllStringSubmatch(string(b), -1) {
		got = append(got, m[1])
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("example keys = %q\nwant %q", got, want)
	}

	if o, want := resolve(t, string(b)), nsqd.NewOptions(); !reflect.DeepEqual(o, want) {
		t.Errorf("example config gives\n%+v\nwant the defaults\n%+v", *o, *want)
	}
}

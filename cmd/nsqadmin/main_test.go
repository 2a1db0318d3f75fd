package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/nsqadmin"
)

// resolve parses args and an optional config file text the way main does.
func resolve(t *testing.T, config string, args ...string) *nsqadmin.Options {
	t.Helper()
	opts := nsqadmin.NewOptions()
	fs := adminFlagSet(opts)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	path := ""
	if config != "" {
		path = writeConfig(t, config)
	}
	if err := options.Resolve(opts, fs, path); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return opts
}

func writeConfig(t *testing.T, config string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nsqadmin.cfg")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every nsqadmin flag of NSQ 1.3, plus ours for the live charts.
func TestFlagNames(t *testing.T) {
	want := []string{
		"acl-http-header", "admin-user", "allow-config-from-cidr", "base-path", "config", "dev-static-dir",
		"graphite-url", "http-address", "http-client-connect-timeout", "http-client-request-timeout",
		"http-client-tls-cert", "http-client-tls-insecure-skip-verify", "http-client-tls-key",
		"http-client-tls-root-ca-file", "log-level", "log-prefix", "lookupd-http-address",
		"notification-http-endpoint", "nsqd-http-address", "proxy-graphite",
		"stats-sample-interval", "stats-sample-window",
		"statsd-counter-format", "statsd-gauge-format", "statsd-interval", "statsd-prefix", "verbose", "version",
	}
	var got []string
	adminFlagSet(nsqadmin.NewOptions()).VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
	if !slices.Equal(got, want) {
		t.Errorf("flags = %q\nwant %q", got, want)
	}
}

func TestDefaults(t *testing.T) {
	if got, want := resolve(t, ""), nsqadmin.NewOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("options with no flags =\n%+v\nwant\n%+v", *got, *want)
	}
	fs := adminFlagSet(nsqadmin.NewOptions())
	for name, want := range map[string]string{
		"http-address": "0.0.0.0:4171", "base-path": "/", "acl-http-header": "X-Forwarded-User",
		"allow-config-from-cidr": "127.0.0.1/8", "http-client-connect-timeout": "2s",
		"http-client-request-timeout": "5s", "statsd-interval": "1m0s", "statsd-prefix": "nsq.%s",
		"statsd-counter-format": "stats.counters.%s.count", "statsd-gauge-format": "stats.gauges.%s",
		"log-level": "INFO", "log-prefix": "[nsqadmin] ", "proxy-graphite": "false",
		"stats-sample-interval": "5s", "stats-sample-window": "10m0s",
	} {
		if got := fs.Lookup(name).DefValue; got != want {
			t.Errorf("default of -%s = %q, want %q", name, got, want)
		}
	}
}

func TestFlagsAndConfigFile(t *testing.T) {
	got := resolve(t, `
nsqlookupd_http_addresses = ["127.0.0.1:8201", "127.0.0.1:7201"]
admin_users = ["alice"]
base_path = "/file"
http_client_request_timeout = 3000
proxy_graphite = true
log_level = "debug"
unknown_key = 1
`, "--lookupd-http-address=127.0.0.1:1", "--admin-user=bob", "--admin-user=carol", "--http-address=127.0.0.1:2",
		"--stats-sample-interval=1s", "--verbose")
	want := nsqadmin.NewOptions()
	want.NSQLookupdHTTPAddresses = []string{"127.0.0.1:1"} // the flag wins
	want.AdminUsers = []string{"bob", "carol"}
	want.BasePath = "/file"
	want.HTTPClientRequestTimeout = 3 * time.Second
	want.ProxyGraphite = true
	want.LogLevel = nsqlog.Debug
	want.HTTPAddress = "127.0.0.1:2"
	want.StatsSampleInterval = time.Second
	if !reflect.DeepEqual(got, want) {
		t.Errorf("options =\n%+v\nwant\n%+v", *got, *want)
	}
	// Seed 001's command line.
	got = resolve(t, "", "--lookupd-http-address=127.0.0.1:8201", "--lookupd-http-address=127.0.0.1:7201")
	if !slices.Equal(got.NSQLookupdHTTPAddresses, []string{"127.0.0.1:8201", "127.0.0.1:7201"}) {
		t.Errorf("lookupds = %q", got.NSQLookupdHTTPAddresses)
	}
}

// The example config documents every key and sets the defaults (plus one
// lookupd).
func TestContribExample(t *testing.T) {
	b, err := os.ReadFile("../../contrib/nsqadmin.cfg.example")
	if err != nil {
		t.Fatal(err)
	}
	want := nsqadmin.NewOptions()
	want.NSQLookupdHTTPAddresses = []string{"127.0.0.1:4161"}
	if got := resolve(t, string(b)); !reflect.DeepEqual(got, want) {
		t.Errorf("options from the example =\n%+v\nwant\n%+v", *got, *want)
	}
	keys := map[string]string{"lookupd-http-address": "nsqlookupd_http_addresses", "nsqd-http-address": "nsqd_http_addresses", "admin-user": "admin_users"}
	adminFlagSet(nsqadmin.NewOptions()).VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "config", "version", "verbose":
			return
		}
		key := keys[f.Name]
		if key == "" {
			key = strings.ReplaceAll(f.Name, "-", "_")
		}
		if !regexp.MustCompile(`(?m)^#? ?` + key + ` = `).Match(b) {
			t.Errorf("the example does not document %s", key)
		}
	})
}

var fatalLine = regexp.MustCompile(`^\[nsqadmin\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} FATAL: `)

func TestRunExitCodes(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	const inst = `failed to instantiate nsqadmin - `
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string // regexps
	}{
		{"version", []string{"--version"}, 0, `^nsqadmin v1\.3\.0 \(built w/` + regexp.QuoteMeta(runtime.Version()) + `\)\n$`, `^$`},
		{"help", []string{"-h"}, 0, `^$`, `^Usage of nsqadmin:\n`},
		{"unknown flag", []string{"--nope"}, 2, `^$`, `flag provided but not defined: -nope`},
		{"no upstream", nil, 1, `^$`, fatalLine.String() + inst + `--nsqd-http-address or --lookupd-http-address required\n$`},
		{"both upstreams", []string{"--lookupd-http-address=127.0.0.1:1", "--nsqd-http-address=127.0.0.1:2"}, 1, `^$`,
			fatalLine.String() + inst + `use --nsqd-http-address or --lookupd-http-address not both\n$`},
		{"key without cert", []string{"--nsqd-http-address=127.0.0.1:2", "--http-client-tls-key=k"}, 1, `^$`,
			fatalLine.String() + inst + `--http-client-tls-key must be specified with --http-client-tls-cert\n$`},
		{"cert without key", []string{"--nsqd-http-address=127.0.0.1:2", "--http-client-tls-cert=c"}, 1, `^$`,
			fatalLine.String() + inst + `--http-client-tls-cert must be specified with --http-client-tls-key\n$`},
		{"unresolvable lookupd", []string{"--lookupd-http-address=nohost.invalid:4161"}, 1, `^$`,
			fatalLine.String() + inst + `failed to resolve --lookupd-http-address \(nohost\.invalid:4161\) - `},
		{"bad graphite url", []string{"--nsqd-http-address=127.0.0.1:2", "--graphite-url=http://[::1"}, 1, `^$`,
			fatalLine.String() + inst + `failed to parse --graphite-url \(http://\[::1\) - `},
		{"bad cidr", []string{"--nsqd-http-address=127.0.0.1:2", "--allow-config-from-cidr=nope"}, 1, `^$`,
			fatalLine.String() + inst + `failed to parse --allow-config-from-cidr \(nope\) - invalid CIDR address: nope\n$`},
		{"busy port", []string{"--nsqd-http-address=127.0.0.1:2", "--http-address=" + busy.Addr().String()}, 1, `^$`,
			fatalLine.String() + inst + `listen \(` + regexp.QuoteMeta(busy.Addr().String()) + `\) failed - .*address already in use\n$`},
		{"missing config", []string{"--config=/nonexistent/x.cfg"}, 1, `^$`,
			fatalLine.String() + `failed to load config file /nonexistent/x.cfg - `},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if !regexp.MustCompile(tc.stdout).MatchString(stdout.String()) {
				t.Errorf("stdout = %q, want /%s/", stdout.String(), tc.stdout)
			}
			if !regexp.MustCompile(tc.stderr).MatchString(stderr.String()) {
				t.Errorf("stderr = %q, want /%s/", stderr.String(), tc.stderr)
			}
		})
	}
}

// syncBuffer collects the daemon's log and signals when want was written.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  *regexp.Regexp
	match []string
	found chan struct{}
	once  sync.Once
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if m := b.want.FindStringSubmatch(b.buf.String()); m != nil {
		b.once.Do(func() { b.match = m; close(b.found) })
	}
	return n, err
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := &syncBuffer{want: regexp.MustCompile(`HTTP: listening on (\S+)`), found: make(chan struct{})}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--http-address=127.0.0.1:0", "--nsqd-http-address=127.0.0.1:1", "--base-path=/admin"}, io.Discard, stderr)
	}()
	select {
	case <-stderr.found:
	case c := <-code:
		t.Fatalf("run exited %d before listening", c)
	case <-time.After(10 * time.Second):
		t.Fatal("nsqadmin did not log that it listens")
	}
	resp, err := http.Get("http://" + stderr.match[1] + "/admin/ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "OK" {
		t.Errorf("GET /admin/ping = %q", body)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit code %d after cancel, want 0", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

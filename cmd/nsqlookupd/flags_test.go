package main

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/nsqlookupd"
)

// TestMain lets TestSignals run this test binary as nsqlookupd itself.
func TestMain(m *testing.M) {
	if os.Getenv("NSQLOOKUPD_TEST_MAIN") == "1" {
		os.Args = append([]string{"nsqlookupd"}, strings.Fields(os.Getenv("NSQLOOKUPD_TEST_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

// resolve parses args and an optional config file text the way main does.
func resolve(t *testing.T, config string, args ...string) *nsqlookupd.Options {
	t.Helper()
	opts := nsqlookupd.NewOptions()
	fs := lookupdFlagSet(opts)
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
	path := filepath.Join(t.TempDir(), "nsqlookupd.cfg")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every nsqlookupd flag of NSQ 1.3, and no other.
func TestFlagNames(t *testing.T) {
	want := []string{
		"broadcast-address", "config", "http-address", "inactive-producer-timeout",
		"log-level", "log-prefix", "tcp-address", "tombstone-lifetime", "verbose", "version",
	}
	var got []string
	lookupdFlagSet(nsqlookupd.NewOptions()).VisitAll(func(f *flag.Flag) { got = append(got, f.Name) })
	if !slices.Equal(got, want) {
		t.Errorf("flags = %q\nwant %q", got, want)
	}
}

func TestDefaults(t *testing.T) {
	got := resolve(t, "")
	if want := nsqlookupd.NewOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("options with no flags =\n%+v\nwant nsqlookupd.NewOptions() =\n%+v", *got, *want)
	}
	hostname, _ := os.Hostname()
	fs := lookupdFlagSet(nsqlookupd.NewOptions())
	for name, want := range map[string]string{
		"tcp-address": "0.0.0.0:4160", "http-address": "0.0.0.0:4161", "broadcast-address": hostname,
		"inactive-producer-timeout": "5m0s", "tombstone-lifetime": "45s", "log-level": "INFO",
		"log-prefix": "[nsqlookupd] ", "config": "", "verbose": "false", "version": "false",
	} {
		if got := fs.Lookup(name).DefValue; got != want {
			t.Errorf("default of -%s = %q, want %q", name, got, want)
		}
	}
}

func TestFlags(t *testing.T) {
	got := resolve(t, "",
		"-tcp-address", "127.0.0.1:1", "--http-address=127.0.0.1:2", "--broadcast-address", "b.example",
		"-inactive-producer-timeout=3s", "--tombstone-lifetime=2s", "--log-level=WARN",
		"--log-prefix=[x] ", "--verbose")
	want := &nsqlookupd.Options{
		TCPAddress: "127.0.0.1:1", HTTPAddress: "127.0.0.1:2", BroadcastAddress: "b.example",
		InactiveProducerTimeout: 3 * time.Second, TombstoneLifetime: 2 * time.Second,
		LogLevel: nsqlog.Warn, LogPrefix: "[x] ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("options =\n%+v\nwant\n%+v", *got, *want)
	}
}

func TestConfigFile(t *testing.T) {
	config := `
tcp_address = "127.0.0.1:1"
http_address = "127.0.0.1:2"
broadcast_address = "file.example"
inactive_producer_timeout = 3000
tombstone_lifetime = "2s"
log_level = "debug"
log_prefix = "[file] "
unknown_key = 1
verbose = true
`
	got := resolve(t, config, "--http-address=127.0.0.1:3", "--tombstone-lifetime=45s")
	want := &nsqlookupd.Options{
		TCPAddress:              "127.0.0.1:1",
		HTTPAddress:             "127.0.0.1:3",  // the flag wins
		BroadcastAddress:        "file.example", //
		InactiveProducerTimeout: 3 * time.Second,
		TombstoneLifetime:       45 * time.Second, // given on the command line, even as the default
		LogLevel:                nsqlog.Debug,
		LogPrefix:               "[file] ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("options =\n%+v\nwant\n%+v", *got, *want)
	}
}

// The example config documents every key and sets NSQ's defaults.
func TestContribExample(t *testing.T) {
	b, err := os.ReadFile("../../contrib/nsqlookupd.cfg.example")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resolve(t, string(b)), nsqlookupd.NewOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("options from the example =\n%+v\nwant the defaults\n%+v", *got, *want)
	}
	lookupdFlagSet(nsqlookupd.NewOptions()).VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "config", "version", "verbose":
			return
		}
		key := strings.ReplaceAll(f.Name, "-", "_")
		if !regexp.MustCompile(`(?m)^#? ?` + key + ` = `).Match(b) {
			t.Errorf("the example does not document %s", key)
		}
	})
}

// syncBuffer collects output written by the daemon's goroutines and signals
// when a line containing want has been written.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	found chan struct{}
	once  sync.Once
}

func newSyncBuffer(want string) *syncBuffer {
	return &syncBuffer{want: want, found: make(chan struct{})}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.want != "" && strings.Contains(b.buf.String(), b.want) {
		b.once.Do(func() { close(b.found) })
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var fatalLine = regexp.MustCompile(`^\[nsqlookupd\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} FATAL: `)

func TestRunExitCodes(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	badLevel := writeConfig(t, `log_level = "loud"`)
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string // regexps
	}{
		{"version", []string{"--version"}, 0, `^nsqlookupd v1\.3\.0 \(built w/` + regexp.QuoteMeta(runtime.Version()) + `\)\n$`, `^$`},
		{"help", []string{"-h"}, 0, `^$`, `^Usage of nsqlookupd:\n`},
		{"bad flag value", []string{"--log-level=loud"}, 2, `^$`,
			`invalid value "loud" for flag -log-level: invalid log level 'loud' \(debug, info, warn, error, fatal\)`},
		{"unknown flag", []string{"--nope"}, 2, `^$`, `flag provided but not defined: -nope`},
		{"busy port", []string{"--tcp-address=" + busy.Addr().String(), "--http-address=127.0.0.1:0"}, 1, `^$`,
			fatalLine.String() + `failed to instantiate nsqlookupd - listen \(` + regexp.QuoteMeta(busy.Addr().String()) + `\) failed - .*address already in use\n$`},
		{"invalid options", []string{"--inactive-producer-timeout=0"}, 1, `^$`,
			fatalLine.String() + `failed to instantiate nsqlookupd - --inactive-producer-timeout must be > 0\n$`},
		{"missing config", []string{"--config=/nonexistent/x.cfg"}, 1, `^$`,
			fatalLine.String() + `failed to load config file /nonexistent/x.cfg - `},
		{"bad log level in config", []string{"--config=" + badLevel}, 1, `^$`,
			fatalLine.String() + `failed parsing log_level loud`},
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

func TestRunGracefulStop(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := newSyncBuffer("HTTP: listening")
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", "--log-prefix=[test] "}, new(bytes.Buffer), stderr)
	}()
	select {
	case <-stderr.found:
	case c := <-code:
		t.Fatalf("run exited with %d before serving; stderr:\n%s", c, stderr)
	case <-time.After(10 * time.Second):
		t.Fatalf("nsqlookupd did not start; stderr:\n%s", stderr)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("exit code %d after a graceful stop, want 0; stderr:\n%s", c, stderr)
	}
	if !regexp.MustCompile(`(?m)^\[test\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} INFO: nsqlookupd v1\.3\.0 `).MatchString(stderr.String()) {
		t.Errorf("stderr does not start with the version line in NSQ's format:\n%s", stderr)
	}
}

// SIGINT and SIGTERM stop the real binary with status 0.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a subprocess")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "NSQLOOKUPD_TEST_MAIN=1",
				"NSQLOOKUPD_TEST_ARGS=--tcp-address=127.0.0.1:0 --http-address=127.0.0.1:0")
			stderr := newSyncBuffer("HTTP: listening")
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case <-stderr.found:
			case err := <-exited:
				t.Fatalf("nsqlookupd exited before serving: %v; stderr:\n%s", err, stderr)
			case <-time.After(10 * time.Second):
				t.Fatalf("nsqlookupd did not start; stderr:\n%s", stderr)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("exit after %v: %v, want status 0; stderr:\n%s", sig, err, stderr)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("nsqlookupd did not exit after %v", sig)
			}
		})
	}
}

package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// parse returns the config of args after flag parsing and validate, and
// validate's error.
func parse(t *testing.T, args ...string) (*config, error) {
	t.Helper()
	var c config
	fs := newFlagSet(&c)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	return &c, c.validate()
}

func TestDefaults(t *testing.T) {
	c, err := parse(t, "--topic=test", "--output-dir=/tmp", "--lookupd-http-address=127.0.0.1:4161")
	if err != nil {
		t.Fatal(err)
	}
	if c.channel != "nsq_to_file" || c.maxInFlight != 200 || c.syncInterval != 30*time.Second ||
		c.datetimeFormat != "%Y-%m-%d_%H" || c.gzipLevel != 6 || c.topicRefresh != time.Minute ||
		c.httpConnectTimeout != 2*time.Second || c.httpRequestTimeout != 5*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	// <REV> is dropped when nothing needs it; the work dir is the output dir.
	if c.filenameFormat != "<TOPIC>.<HOST>.<DATETIME>.log" || c.workDir != "/tmp" {
		t.Errorf("filenameFormat %q, workDir %q", c.filenameFormat, c.workDir)
	}
}

func TestValidate(t *testing.T) {
	src := "--nsqd-tcp-address=127.0.0.1:4150"
	tests := []struct {
		args []string
		want string // error text, "" for none
	}{
		{[]string{src}, "--topic or --topic-pattern required"},
		{[]string{"--topic=a"}, "--nsqd-tcp-address or --lookupd-http-address required"},
		{[]string{"--topic=a", src, "--lookupd-http-address=x:1"}, "use --nsqd-tcp-address or --lookupd-http-address not both"},
		{[]string{"--topic-pattern=a", src}, "--lookupd-http-address must be specified when no --topic specified"},
		{[]string{"--topic=a", src, "--channel="}, "--channel is required"},
		{[]string{"--topic=a", src, "--gzip-level=0"}, "invalid --gzip-level value (0), should be 1-9"},
		{[]string{"--topic=a", src, "--gzip-level=10"}, "invalid --gzip-level value (10), should be 1-9"},
		{[]string{"--topic=a", src, "--log-level=loud"}, "--log-level is invalid"},
		{[]string{"--topic=a", src, "--http-client-connect-timeout=0"}, "--http-client-connect-timeout should be positive"},
		{[]string{"--topic=a", src, "--http-client-request-timeout=-1s"}, "--http-client-request-timeout should be positive"},
		{[]string{"--topic=a", src, "--sync-interval=0"}, "--sync-interval should be positive"},
		{[]string{"--topic=a", src, "--topic-pattern=("}, "invalid --topic-pattern"},
		{[]string{"--topic=a", src, "--gzip", "--filename-format=<TOPIC>.log"}, "missing <REV> in --filename-format when gzip, rotation, or work dir enabled"},
		{[]string{"--topic=a", src, "--rotate-size=10", "--filename-format=<TOPIC>.log"}, "missing <REV>"},
		{[]string{"--topic=a", src, "--rotate-interval=1m", "--filename-format=<TOPIC>.log"}, "missing <REV>"},
		{[]string{"--topic=a", src, "--work-dir=/w", "--filename-format=<TOPIC>.log"}, "missing <REV>"},
		{[]string{"--topic=a", src, "--work-dir=/tmp", "--filename-format=<TOPIC>.log"}, ""}, // same as output dir
		{[]string{"--topic=a", src, "--log-level=WARN"}, ""},
		{[]string{"--topic=a", src, "--consumer-opt=max_attempts,0"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parse(t, tt.args...)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("validate = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("validate = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestGzipSuffix(t *testing.T) {
	c, err := parse(t, "--topic=a", "--nsqd-tcp-address=x:1", "--gzip")
	if err != nil {
		t.Fatal(err)
	}
	if c.filenameFormat != "<TOPIC>.<HOST><REV>.<DATETIME>.log.gz" {
		t.Errorf("filenameFormat = %q", c.filenameFormat)
	}
	c, err = parse(t, "--topic=a", "--nsqd-tcp-address=x:1", "--gzip", "--filename-format=<TOPIC><REV>.gz")
	if err != nil {
		t.Fatal(err)
	}
	if c.filenameFormat != "<TOPIC><REV>.gz" {
		t.Errorf("filenameFormat = %q", c.filenameFormat)
	}
}

func TestTopicAllowed(t *testing.T) {
	c, err := parse(t, "--topic-pattern=^pat_", "--lookupd-http-address=x:1")
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]bool{"pat_a": true, "pat_": true, "xpat_a": false, "other": false} {
		if got := c.topicAllowed(topic); got != want {
			t.Errorf("topicAllowed(%q) = %v, want %v", topic, got, want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--version"}, 0, ""},
		{[]string{"--topic=a", "--nsqd-tcp-address=x:1", "extra"}, 1, "unknown arguments: [extra]"},
		{[]string{"--topic=a"}, 1, "--nsqd-tcp-address or --lookupd-http-address required"},
		{[]string{"--rotate-size=big"}, 2, `invalid value "big" for flag -rotate-size`},
		{[]string{"--consumer-opt=nope"}, 2, `invalid value "nope" for flag -consumer-opt`},
		{[]string{"-h"}, 0, "Usage of nsqd:"},
	}
	for _, tt := range tests {
		var stdout, stderr strings.Builder
		code := run(t.Context(), tt.args, nil, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) = %d, stderr %q; want %d, %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
		if tt.args[0] == "--version" && stdout.String() != "nsq_to_file v1.3.0\n" {
			t.Errorf("--version printed %q", stdout.String())
		}
	}
}

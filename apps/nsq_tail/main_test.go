package main

import (
	"errors"
	"strings"
	"testing"
)

func TestRunErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--topic=t"}, 1, "--nsqd-tcp-address or --lookupd-http-address required"},
		{[]string{"--topic=t", "--nsqd-tcp-address=a:1", "--lookupd-http-address=b:2"}, 1, "use --nsqd-tcp-address or --lookupd-http-address not both"},
		{[]string{"--nsqd-tcp-address=a:1"}, 1, "--topic required"},
		{[]string{"--n=x"}, 2, `invalid value "x" for flag -n`},
		{[]string{"--consumer-opt=max_in_flight,x"}, 2, "-consumer-opt"},
	}
	for _, tt := range tests {
		var stdout, stderr strings.Builder
		code := run(t.Context(), "nsq_tail", tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) = %d, %q; want %d, %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
	var stdout strings.Builder
	if code := run(t.Context(), "nsq_tail", []string{"--version"}, &stdout, &strings.Builder{}); code != 0 || stdout.String() != "nsq_tail v1.3.0\n" {
		t.Errorf("--version = %d, %q", code, stdout.String())
	}
}

func TestPrinter(t *testing.T) {
	var out strings.Builder
	p := newPrinter(&out, true, 0)
	p.print("orders", []byte("hello"))
	p.print("orders", []byte("a | b"))
	if got, want := out.String(), "orders | hello\norders | a | b\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	out.Reset()
	p = newPrinter(&out, false, 0)
	p.print("orders", []byte("raw\x00bytes"))
	if got, want := out.String(), "raw\x00bytes\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestPrinterError(t *testing.T) {
	p := newPrinter(failWriter{}, false, 0)
	if err := p.print("t", []byte("x")); err == nil {
		t.Error("print to a failing writer = nil")
	}
}

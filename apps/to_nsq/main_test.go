package main

import (
	"bufio"
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReadRecords(t *testing.T) {
	tests := []struct {
		in    string
		delim byte
		want  []string
	}{
		// NSQ published "a1", "a2", "a": the last byte of a final record
		// without a delimiter was dropped.
		{"a1\na2\n\na3", '\n', []string{"a1", "a2", "a3"}},
		{"x,y,,z", ',', []string{"x", "y", "z"}},
		{"a\nb\n", '\n', []string{"a", "b"}},
		{"\n\n\n", '\n', nil},
		{"", '\n', nil},
		{"single", '\n', []string{"single"}},
		{"a\r\nb", '\n', []string{"a\r", "b"}},
	}
	for _, tt := range tests {
		out := make(chan []byte, 16)
		if err := readRecords(bufio.NewReader(strings.NewReader(tt.in)), tt.delim, out); err != nil {
			t.Fatal(err)
		}
		close(out)
		var got []string
		for r := range out {
			got = append(got, string(r))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("readRecords(%q, %q) = %q, want %q", tt.in, tt.delim, got, tt.want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 1, "--topic required"},
		{[]string{"--topic=t", "--delimiter=ab"}, 1, "--delimiter must be a single byte"},
		{[]string{"--topic=t", "--delimiter="}, 1, "--delimiter must be a single byte"},
		{[]string{"--topic=t"}, 1, "--nsqd-tcp-address required"},
		{[]string{"--topic=t", "--rate=x"}, 2, `invalid value "x" for flag -rate`},
		{[]string{"--producer-opt=nope,1"}, 2, "invalid option nope"},
		{[]string{"--version"}, 2, "flag provided but not defined: -version"},
	}
	for _, tt := range tests {
		var stderr strings.Builder
		code := run(t.Context(), "to_nsq", tt.args, strings.NewReader(""), &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) = %d, %q; want %d, %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
}

func TestBucket(t *testing.T) {
	b := newBucket(50)
	start := time.Now()
	for range 11 {
		if !b.wait(t.Context()) {
			t.Fatal("wait = false")
		}
	}
	// One token at start, then 50/s: ten more take about 200ms.
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("11 tokens at 50/s took %v, want about 200ms", d)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b = newBucket(1)
	b.wait(ctx) // the initial token
	if b.wait(ctx) {
		t.Error("wait on an ended context = true")
	}
}

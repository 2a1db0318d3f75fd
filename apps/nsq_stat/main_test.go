package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFormatRow(t *testing.T) {
	prev := &channelStats{Depth: 5, MessageCount: 8}
	cur := &channelStats{Depth: 7, BackendDepth: 3, InFlightCount: 2, DeferredCount: 1, MessageCount: 28, RequeueCount: 4, TimeoutCount: 8, ClientCount: 1}
	got := formatRow(prev, cur, 2*time.Second)
	// ingress (28-8)/2 = 10, egress (20-(7-5))/2 = 9
	want := "     10       9 |       7       4       3     2     1 |       4       8           28       1\n"
	if got != want {
		t.Errorf("formatRow =\n%q, want\n%q", got, want)
	}
	// A node leaving makes counts fall: negative rates, no wrap-around.
	got = formatRow(cur, prev, time.Second)
	if !strings.HasPrefix(got, "    -20     -18 |") {
		t.Errorf("falling counts row %q", got)
	}
}

func TestValidate(t *testing.T) {
	src := "--nsqd-http-address=127.0.0.1:4151"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{src, "--topic=t"}, "--topic and --channel are required"},
		{[]string{src, "--topic=t", "--channel=c", "--interval=0"}, "--interval should be positive"},
		{[]string{src, "--topic=t", "--channel=c", "--count=0"}, "--count should be positive"},
		{[]string{src, "--topic=t", "--channel=c", "--http-client-connect-timeout=0"}, "--http-client-connect-timeout should be positive"},
		{[]string{"--topic=t", "--channel=c"}, "--nsqd-http-address or --lookupd-http-address required"},
		{[]string{src, "--lookupd-http-address=x:1", "--topic=t", "--channel=c"}, "use --nsqd-http-address or --lookupd-http-address not both"},
		{[]string{"--nsqd-http-address=http://x:1", "--topic=t", "--channel=c"}, "--nsqd-http-address error - address should not contain scheme"},
		{[]string{src, "--topic=t", "--channel=c", "--count=3"}, ""},
	}
	for _, tt := range tests {
		var c config
		fs := newFlagSet("nsq_stat", &c)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		got := ""
		if err := c.validate(); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("validate(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

// fakeNSQD answers /stats with message_count growing by 10 per request.
func fakeNSQD(t *testing.T, channel string) *httptest.Server {
	var polls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats" || r.URL.Query().Get("format") != "json" || r.URL.Query().Get("include_clients") != "false" {
			t.Errorf("unexpected request %s", r.URL)
		}
		n := polls.Add(1)
		w.Header().Set("X-NSQ-Content-Type", "nsq; version=1.0")
		fmt.Fprintf(w, `{"version":"1.3.0","topics":[{"topic_name":"t","channels":[{"channel_name":%q,"depth":5,"backend_depth":1,"in_flight_count":2,"deferred_count":0,"message_count":%d,"requeue_count":0,"timeout_count":8,"client_count":1,"clients":null}]}]}`,
			channel, 10*n)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRunNSQDMode(t *testing.T) {
	a, b := fakeNSQD(t, "c"), fakeNSQD(t, "c")
	var stdout, stderr strings.Builder
	args := []string{"--topic=t", "--channel=c", "--interval=20ms", "--count=2",
		"--nsqd-http-address=" + strings.TrimPrefix(a.URL, "http://"),
		"--nsqd-http-address=" + strings.TrimPrefix(b.URL, "http://")}
	if code := run(t.Context(), "nsq_stat", args, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr %q", code, stderr.String())
	}
	// Two nodes, each: depth 5 (1 on disk), 2 in flight, 8 timeouts, one
	// client, message_count 10 more per poll: the sums are 20, 40, 60.
	row := func(msgs int) string {
		return fmt.Sprintf("%7d %7d | %7d %7d %7d %5d %5d | %7d %7d %12d %7d\n", 1000, 1000, 10, 8, 2, 4, 0, 0, 16, msgs, 2)
	}
	want := header + row(40) + row(60)
	got := stdout.String()
	if got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

func TestRunLookupdMode(t *testing.T) {
	n := fakeNSQD(t, "c")
	host, port, _ := strings.Cut(strings.TrimPrefix(n.URL, "http://"), ":")
	lookupd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/lookup" || r.URL.Query().Get("topic") != "t" {
			w.WriteHeader(404)
			io.WriteString(w, `{"message":"TOPIC_NOT_FOUND"}`)
			return
		}
		fmt.Fprintf(w, `{"channels":["c"],"producers":[{"broadcast_address":%q,"tcp_port":1,"http_port":%s}]}`, host, port)
	}))
	defer lookupd.Close()
	lookupdAddr := strings.TrimPrefix(lookupd.URL, "http://")
	var stdout, stderr strings.Builder
	args := []string{"--topic=t", "--channel=c", "--interval=10ms", "--count=1", "--lookupd-http-address=" + lookupdAddr}
	if code := run(t.Context(), "nsq_stat", args, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr %q", code, stderr.String())
	}
	if lines := strings.Split(stdout.String(), "\n"); len(lines) != 4 || !strings.HasSuffix(lines[2], "20       1") {
		t.Errorf("output %q", stdout.String())
	}

	stderr.Reset()
	args = []string{"--topic=nope", "--channel=c", "--interval=10ms", "--lookupd-http-address=" + lookupdAddr}
	if code := run(t.Context(), "nsq_stat", args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "ERROR: failed to get topic producers - ") {
		t.Errorf("unknown topic: %d, %q", code, stderr.String())
	}
	stderr.Reset()
	args = []string{"--topic=t", "--channel=other", "--interval=10ms", "--lookupd-http-address=" + lookupdAddr}
	if code := run(t.Context(), "nsq_stat", args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "ERROR: failed to find channel(other) in stats metadata for topic(t)") {
		t.Errorf("unknown channel: %d, %q", code, stderr.String())
	}
}

func TestHeaderEvery25Polls(t *testing.T) {
	n := fakeNSQD(t, "c")
	var stdout, stderr strings.Builder
	args := []string{"--topic=t", "--channel=c", "--interval=1ms", "--count=30", "--nsqd-http-address=" + strings.TrimPrefix(n.URL, "http://")}
	if code := run(t.Context(), "nsq_stat", args, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, %q", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	// Headers at polls 0 and 25: 2 + 24 rows + 2 + 6 rows.
	if len(lines) != 34 || !strings.HasPrefix(lines[26], "------rate") {
		t.Errorf("%d lines, line 26 %q", len(lines), lines[min(26, len(lines)-1)])
	}
}

package nsqadmin_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/nsqadmin"
	"github.com/nsqclone/nsq/nsqd"
	"github.com/nsqclone/nsq/nsqlookupd"
)

// startLookupd runs an nsqlookupd on loopback until the test ends.
func startLookupd(t testing.TB) *nsqlookupd.NSQLookupd {
	t.Helper()
	opts := nsqlookupd.NewOptions()
	opts.TCPAddress, opts.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
	opts.BroadcastAddress = "127.0.0.1"
	opts.Logger = nsqlog.New(t.Output(), opts.LogPrefix, slog.LevelWarn)
	l, err := nsqlookupd.New(opts)
	if err != nil {
		t.Fatalf("nsqlookupd.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(t.Context()) }() // t.Context ends before cleanups run
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("nsqlookupd.Run: %v", err)
		}
	})
	return l
}

// startNSQD runs an nsqd on loopback registered with the lookupds at the
// given TCP addresses until the test ends.
func startNSQD(t testing.TB, lookupdTCP ...string) *nsqd.NSQD {
	t.Helper()
	opts := nsqd.NewOptions()
	opts.TCPAddress, opts.HTTPAddress, opts.HTTPSAddress = "127.0.0.1:0", "127.0.0.1:0", ""
	opts.BroadcastAddress = "127.0.0.1"
	opts.DataPath = t.TempDir()
	opts.NSQLookupdTCPAddresses = lookupdTCP
	opts.E2EProcessingLatencyPercentiles = []float64{0.99, 0.5}
	opts.Logger = nsqlog.New(t.Output(), opts.LogPrefix, slog.LevelWarn)
	n, err := nsqd.New(opts)
	if err != nil {
		t.Fatalf("nsqd.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(t.Context()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("nsqd.Run: %v", err)
		}
	})
	return n
}

// admin is an nsqadmin under test.
type admin struct {
	*nsqadmin.NSQAdmin
	base string // http://127.0.0.1:port<base path>
}

// startAdmin runs an nsqadmin on loopback until the test ends; modify sets
// its upstreams and anything else.
func startAdmin(t testing.TB, modify func(*nsqadmin.Options)) *admin {
	t.Helper()
	opts := nsqadmin.NewOptions()
	opts.HTTPAddress = "127.0.0.1:0"
	opts.Logger = nsqlog.New(t.Output(), opts.LogPrefix, slog.LevelWarn)
	opts.HTTPClientConnectTimeout = time.Second
	opts.HTTPClientRequestTimeout = 2 * time.Second
	opts.StatsSampleInterval = 50 * time.Millisecond
	modify(opts)
	a, err := nsqadmin.New(opts)
	if err != nil {
		t.Fatalf("nsqadmin.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(t.Context()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("nsqadmin.Run: %v", err)
		}
	})
	base := strings.TrimSuffix(opts.BasePath, "/")
	if base != "" && base[0] != '/' {
		base = "/" + base
	}
	return &admin{NSQAdmin: a, base: "http://" + a.HTTPAddr().String() + base}
}

// response is an HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return v
}

// do sends a request; body nil means none. headers alternate names and
// values.
func do(t testing.TB, method, url string, body any, headers ...string) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (a *admin) get(t testing.TB, path string) response {
	t.Helper()
	return do(t, http.MethodGet, a.base+path, nil)
}

// getOK GETs path, expects 200 and decodes the JSON object.
func (a *admin) getOK(t testing.TB, path string) map[string]any {
	t.Helper()
	r := a.get(t, path)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status %d %s", path, r.status, r.body)
	}
	if got := r.header.Get("X-NSQ-Content-Type"); got != "nsq; version=1.0" {
		t.Errorf("GET %s: X-NSQ-Content-Type = %q", path, got)
	}
	return r.json(t)
}

// wantError checks an NSQ V1 error response.
func wantError(t testing.TB, what string, r response, status int, message string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d %s, want %d", what, r.status, r.body, status)
		return
	}
	var v struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || v.Message != message {
		t.Errorf("%s: body %s, want message %q", what, r.body, message)
	}
}

// waitFor polls cond every 10ms until it holds, failing after 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nsqdPost sends POST to an nsqd's HTTP API and expects 200.
func nsqdPost(t testing.TB, n *nsqd.NSQD, pathQuery, body string) {
	t.Helper()
	r := do(t, http.MethodPost, "http://"+n.HTTPAddr().String()+pathQuery, body)
	if r.status != http.StatusOK {
		t.Fatalf("POST %s: %d %s", pathQuery, r.status, r.body)
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// channelStats returns the stats of topic/channel on n, or nil.
func channelStats(n *nsqd.NSQD, topic, channel string) *nsqd.ChannelStats {
	s := n.Stats(topic, channel, false)
	for _, ts := range s.Topics {
		for i := range ts.Channels {
			if ts.Channels[i].ChannelName == channel {
				return &ts.Channels[i]
			}
		}
	}
	return nil
}

// topicStats returns the stats of topic on n, or nil.
func topicStats(n *nsqd.NSQD, topic string) *nsqd.TopicStats {
	s := n.Stats(topic, "", false)
	if len(s.Topics) == 0 {
		return nil
	}
	return &s.Topics[0]
}

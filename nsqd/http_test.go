package nsqd

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/internal/version"
)

// httpNSQD is a daemon under test with a client for its HTTP API.
type httpNSQD struct {
	t      *testing.T
	n      *NSQD
	base   string
	client *http.Client
}

// startHTTPNSQD runs an nsqd on loopback with a private data dir until the
// test ends; mutate adjusts the options first.
func startHTTPNSQD(t *testing.T, log io.Writer, mutate func(*Options)) *httpNSQD {
	t.Helper()
	o := NewOptions()
	o.TCPAddress, o.HTTPAddress, o.DataPath = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	o.BroadcastAddress = "127.0.0.1"
	if log == nil {
		log = t.Output()
	}
	o.Logger = nsqlog.New(log, "[nsqd] ", slog.LevelInfo)
	if mutate != nil {
		mutate(o)
	}
	n, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(t.Context()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &httpNSQD{
		t:    t,
		n:    n,
		base: "http://" + n.HTTPAddr().String(),
		client: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       30 * time.Second,
		},
	}
}

// body of a request: a string sent with Content-Length, or chunked.
type reqBody struct {
	s       string
	chunked bool
}

func (b reqBody) reader() io.Reader {
	if b.chunked {
		return io.NopCloser(strings.NewReader(b.s)) // unknown length: chunked
	}
	return strings.NewReader(b.s)
}

// do sends a request and returns the status, headers and body.
func (h *httpNSQD) do(method, target string, body reqBody) (int, http.Header, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+target, body.reader())
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// httpCase is one request and its expected status and exact body.
type httpCase struct {
	method, target string
	body           reqBody
	status         int
	want           string
}

func (c httpCase) name() string { return c.method + " " + c.target }

func (h *httpNSQD) check(t *testing.T, c httpCase) http.Header {
	t.Helper()
	status, hdr, body := h.do(c.method, c.target, c.body)
	if status != c.status || body != c.want {
		t.Errorf("%s = %d %q, want %d %q", c.name(), status, body, c.status, c.want)
	}
	return hdr
}

func (h *httpNSQD) runCases(cases []httpCase) {
	h.t.Helper()
	for _, c := range cases {
		h.t.Run(c.name(), func(t *testing.T) { h.check(t, c) })
	}
}

func msg(m string) string { return `{"message":"` + m + `"}` }

// topicCounts returns a topic's message_count and message_bytes, or -1s if
// it does not exist.
func (h *httpNSQD) topicCounts(name string) (int64, int64) {
	h.t.Helper()
	s := h.n.Stats(name, "", false)
	if len(s.Topics) != 1 {
		return -1, -1
	}
	return int64(s.Topics[0].MessageCount), int64(s.Topics[0].MessageBytes)
}

// tcpConn is a raw V2 client, enough to be a producer or a consumer.
type tcpConn struct {
	t *testing.T
	net.Conn
}

func dialTCP(t *testing.T, n *NSQD) *tcpConn {
	t.Helper()
	c, err := net.Dial("tcp", n.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte(protocol.MagicV2)); err != nil {
		t.Fatal(err)
	}
	return &tcpConn{t, c}
}

// cmd sends a command (with an optional body) and expects response OK.
func (c *tcpConn) cmd(line string, body []byte) {
	c.t.Helper()
	b := []byte(line + "\n")
	if body != nil {
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		b = append(b, body...)
	}
	if _, err := c.Write(b); err != nil {
		c.t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		c.t.Fatalf("%s: read response: %v", line, err)
	}
	data := make([]byte, binary.BigEndian.Uint32(hdr[:4])-4)
	if _, err := io.ReadFull(c, data); err != nil {
		c.t.Fatalf("%s: read response: %v", line, err)
	}
	if ft := binary.BigEndian.Uint32(hdr[4:]); ft != uint32(protocol.FrameTypeResponse) || string(data) != "OK" {
		c.t.Fatalf("%s: response %d %q, want OK", line, ft, data)
	}
}

// encodeMPUB encodes a binary MPUB body.
func encodeMPUB(bodies ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(bodies)))
	for _, x := range bodies {
		b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
		b = append(b, x...)
	}
	return b
}

func TestHTTPRouting(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)
	notFound := msg("NOT_FOUND")
	cases := []struct {
		httpCase
		header map[string]string
	}{
		{httpCase{"GET", "/nope", reqBody{}, 404, notFound}, map[string]string{"Content-Type": "application/json; charset=utf-8", "X-Nsq-Content-Type": "nsq; version=1.0"}},
		{httpCase{"POST", "/dpub?topic=t", reqBody{s: "x"}, 404, notFound}, nil},
		{httpCase{"POST", "/create_topic?topic=t", reqBody{}, 404, notFound}, nil},
		{httpCase{"POST", "/empty_channel?topic=t&channel=c", reqBody{}, 404, notFound}, nil},
		{httpCase{"GET", "/pub", reqBody{}, 405, msg("METHOD_NOT_ALLOWED")}, map[string]string{"Allow": "OPTIONS, POST"}},
		{httpCase{"GET", "/topic/create", reqBody{}, 405, msg("METHOD_NOT_ALLOWED")}, map[string]string{"Allow": "OPTIONS, POST"}},
		{httpCase{"POST", "/config/log_level", reqBody{}, 405, msg("METHOD_NOT_ALLOWED")}, map[string]string{"Allow": "GET, OPTIONS, PUT"}},
		{httpCase{"POST", "/ping", reqBody{}, 405, msg("METHOD_NOT_ALLOWED")}, map[string]string{"Allow": "GET, OPTIONS"}},
		{httpCase{"HEAD", "/ping", reqBody{}, 405, ""}, map[string]string{"Allow": "GET, OPTIONS"}},
		{httpCase{"OPTIONS", "/pub", reqBody{}, 200, ""}, map[string]string{"Allow": "OPTIONS, POST"}},
		{httpCase{"OPTIONS", "/debug/pprof/symbol", reqBody{}, 200, ""}, map[string]string{"Allow": "GET, OPTIONS, POST"}},
		{httpCase{"POST", "/pub/?topic=x", reqBody{s: "m"}, 307, ""}, map[string]string{"Location": "/pub?topic=x"}},
		{httpCase{"GET", "/stats/?format=json", reqBody{}, 301, "*"}, map[string]string{"Location": "/stats?format=json"}},
		{httpCase{"GET", "/debug/pprof", reqBody{}, 301, "*"}, map[string]string{"Location": "/debug/pprof/"}},
	}
	for _, c := range cases {
		t.Run(c.name(), func(t *testing.T) {
			status, hdr, body := h.do(c.method, c.target, c.body)
			if status != c.status || (c.want != "*" && body != c.want) {
				t.Errorf("%s = %d %q, want %d %q", c.name(), status, body, c.status, c.want)
			}
			for k, v := range c.header {
				if got := hdr.Get(k); got != v {
					t.Errorf("%s: header %s = %q, want %q", c.name(), k, got, v)
				}
			}
		})
	}
}

func TestHTTPPing(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)
	hdr := h.check(t, httpCase{"GET", "/ping", reqBody{}, 200, "OK"})
	if got := hdr.Get("Content-Type"); got != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := hdr.Get("X-Nsq-Content-Type"); got != "" {
		t.Errorf("X-NSQ-Content-Type = %q, want none on a plain-text endpoint", got)
	}
	h.n.health.fail(healthDiskQueue, errors.New("disk full"))
	h.check(t, httpCase{"GET", "/ping", reqBody{}, 500, "NOK - disk_queue: disk full"})
	h.n.health.clear(healthDiskQueue)
	h.check(t, httpCase{"GET", "/ping", reqBody{}, 200, "OK"})
}

func TestHTTPTLSRequired(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)
	srv := httptest.NewServer(h.n.newHTTPHandler(21352))
	t.Cleanup(srv.Close)
	for _, target := range []string{"/ping", "/pub?topic=t", "/stats", "/nope"} {
		resp, err := http.Post(srv.URL+target, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := `{"message": "TLS_REQUIRED", "https_port": 21352}`; resp.StatusCode != 403 || string(body) != want {
			t.Errorf("POST %s = %d %q, want 403 %q", target, resp.StatusCode, body, want)
		}
		if got := resp.Header.Get("X-Nsq-Content-Type"); got != "nsq; version=1.0" {
			t.Errorf("X-NSQ-Content-Type = %q", got)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
			t.Errorf("Content-Type = %q", got)
		}
	}
	if _, err := h.n.GetExistingTopic("t"); err == nil {
		t.Error("a refused /pub created its topic")
	}
}

func TestHTTPInfo(t *testing.T) {
	h := startHTTPNSQD(t, nil, func(o *Options) { o.TopologyZone = "z1" })
	status, hdr, body := h.do("GET", "/info", reqBody{})
	if status != 200 || hdr.Get("Content-Type") != "application/json; charset=utf-8" || hdr.Get("X-Nsq-Content-Type") != "nsq; version=1.0" {
		t.Fatalf("GET /info = %d %v", status, hdr)
	}
	hostname, _ := os.Hostname()
	want := fmt.Sprintf(`{"version":"1.3.0","broadcast_address":"127.0.0.1","hostname":%q,"http_port":%d,"tcp_port":%d,"start_time":%d,`+
		`"max_heartbeat_interval":60000000000,"max_output_buffer_size":65536,"max_output_buffer_timeout":30000000000,`+
		`"max_deflate_level":6,"topology_zone":"z1","topology_region":""}`,
		hostname, h.n.HTTPAddr().(*net.TCPAddr).Port, h.n.TCPAddr().(*net.TCPAddr).Port, h.n.StartTime().Unix())
	if body != want {
		t.Errorf("GET /info =\n%s\nwant\n%s", body, want)
	}
}

func TestHTTPPub(t *testing.T) {
	h := startHTTPNSQD(t, nil, func(o *Options) {
		o.MaxMsgSize = 100
		o.MaxReqTimeout = 10 * time.Second
	})
	big, max := strings.Repeat("x", 101), strings.Repeat("x", 100)
	h.runCases([]httpCase{
		{"POST", "/pub?topic=p1", reqBody{s: big}, 413, msg("MSG_TOO_BIG")},
		{"POST", "/pub?topic=p1", reqBody{s: big, chunked: true}, 413, msg("MSG_TOO_BIG")},
		{"POST", "/pub?topic=%zz", reqBody{s: big}, 413, msg("MSG_TOO_BIG")}, // size before query
		{"POST", "/pub?topic=p1", reqBody{}, 400, msg("MSG_EMPTY")},
		{"POST", "/pub", reqBody{}, 400, msg("MSG_EMPTY")}, // body before topic
		{"POST", "/pub?topic=%zz", reqBody{s: "m"}, 400, msg("INVALID_REQUEST")},
		{"POST", "/pub", reqBody{s: "m"}, 400, msg("MISSING_ARG_TOPIC")},
		{"POST", "/pub?channel=p1", reqBody{s: "m"}, 400, msg("MISSING_ARG_TOPIC")},
		{"POST", "/pub?topic=", reqBody{s: "m"}, 400, msg("INVALID_TOPIC")},
		{"POST", "/pub?topic=bad*", reqBody{s: "m"}, 400, msg("INVALID_TOPIC")},
		{"POST", "/pub?topic=bad*&defer=x", reqBody{s: "m"}, 400, msg("INVALID_TOPIC")},
		{"POST", "/pub?topic=p2&defer=x", reqBody{s: "m"}, 400, msg("INVALID_DEFER")},
		{"POST", "/pub?topic=p2&defer=-1", reqBody{s: "m"}, 400, msg("INVALID_DEFER")},
		{"POST", "/pub?topic=p2&defer=10001", reqBody{s: "m"}, 400, msg("INVALID_DEFER")},
		{"POST", "/pub?topic=p2&defer=", reqBody{s: "m"}, 400, msg("INVALID_DEFER")},
		{"POST", "/pub?topic=p1", reqBody{s: max}, 200, "OK"},
		{"POST", "/pub?topic=p1", reqBody{s: "a\x00b\n", chunked: true}, 200, "OK"},
		{"POST", "/pub?topic=p1&topic=p3", reqBody{s: "m"}, 200, "OK"}, // first value wins
		{"POST", "/put?topic=p1", reqBody{s: "hello world 1"}, 200, "OK"},
		{"POST", "/pub?topic=p4&defer=10000", reqBody{s: "later"}, 200, "OK"},
		{"POST", "/pub?topic=p4&defer=0", reqBody{s: "now"}, 200, "OK"},
	})
	if n, b := h.topicCounts("p1"); n != 4 || b != 100+4+1+13 {
		t.Errorf("topic p1: %d messages, %d bytes, want 4, 118", n, b)
	}
	if _, err := h.n.GetExistingTopic("p2"); err != nil {
		t.Errorf("topic p2 not created before defer was checked: %v", err)
	}
	if _, err := h.n.GetExistingTopic("p3"); err == nil {
		t.Errorf("second topic value used")
	}
	if n, _ := h.topicCounts("p4"); n != 2 {
		t.Errorf("topic p4: %d messages, want 2", n)
	}

	// A deferred message waits in its channel.
	h.check(t, httpCase{"POST", "/topic/create?topic=p5", reqBody{}, 200, ""})
	h.check(t, httpCase{"POST", "/channel/create?topic=p5&channel=c", reqBody{}, 200, ""})
	h.check(t, httpCase{"POST", "/pub?topic=p5&defer=5000", reqBody{s: "later"}, 200, "OK"})
	if s := h.n.Stats("p5", "c", false); len(s.Topics) != 1 || len(s.Topics[0].Channels) != 1 || s.Topics[0].Channels[0].DeferredCount != 1 {
		t.Errorf("after deferred /pub: stats %+v, want channel c with deferred_count 1", s.Topics)
	}

	// A topic being deleted refuses publishes.
	topic, _ := h.n.GetTopic("gone")
	topic.markExiting()
	h.check(t, httpCase{"POST", "/pub?topic=gone", reqBody{s: "m"}, 503, msg("EXITING")})
	h.check(t, httpCase{"POST", "/mpub?topic=gone", reqBody{s: "m\nn"}, 503, msg("EXITING")})
}

func TestHTTPMPub(t *testing.T) {
	h := startHTTPNSQD(t, nil, func(o *Options) {
		o.MaxMsgSize = 10
		o.MaxBodySize = 100
	})
	bin := func(bodies ...string) string { return string(encodeMPUB(bodies...)) }
	cases := []struct {
		httpCase
		msgs, bytes int64 // topic's counts afterwards; -1: no topic
	}{
		// Text mode.
		{httpCase{"POST", "/mpub?topic=t1", reqBody{s: "a\nbb\n\nccc"}, 200, "OK"}, 3, 6},
		{httpCase{"POST", "/mpub?topic=t2", reqBody{s: "a\r\nb\n"}, 200, "OK"}, 2, 3},
		{httpCase{"POST", "/mpub?topic=t3", reqBody{}, 200, "OK"}, 0, 0},
		{httpCase{"POST", "/mpub?topic=t4", reqBody{s: "\n\n\n"}, 200, "OK"}, 0, 0},
		{httpCase{"POST", "/mpub?topic=t5&binary=false", reqBody{s: "0123456789\n0123456789"}, 200, "OK"}, 2, 20},
		{httpCase{"POST", "/mpub?topic=t6&binary=0", reqBody{s: "x", chunked: true}, 200, "OK"}, 1, 1},
		{httpCase{"POST", "/mput?topic=t7", reqBody{s: "x\ny"}, 200, "OK"}, 2, 2},
		{httpCase{"POST", "/mpub?topic=t8", reqBody{s: "a\n01234567890\nb"}, 413, msg("MSG_TOO_BIG")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=t9", reqBody{s: strings.Repeat("a\n", 51)}, 413, msg("BODY_TOO_BIG")}, -1, -1},
		{httpCase{"POST", "/mpub?topic=t10", reqBody{s: strings.Repeat("a\n", 51), chunked: true}, 413, msg("BODY_TOO_BIG")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=t11", reqBody{s: strings.Repeat("a\n", 50)}, 200, "OK"}, 50, 50},
		// A long line is found before the body is known to be too big.
		{httpCase{"POST", "/mpub?topic=t12", reqBody{s: "01234567890\n" + strings.Repeat("a", 100), chunked: true}, 413, msg("MSG_TOO_BIG")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=%zz", reqBody{s: "a"}, 400, msg("INVALID_REQUEST")}, -1, -1},
		{httpCase{"POST", "/mpub", reqBody{s: "a"}, 400, msg("MISSING_ARG_TOPIC")}, -1, -1},
		{httpCase{"POST", "/mpub?topic=a*b", reqBody{s: "a"}, 400, msg("INVALID_TOPIC")}, -1, -1},
		{httpCase{"POST", "/mpub?topic=", reqBody{s: strings.Repeat("a", 101)}, 413, msg("BODY_TOO_BIG")}, -1, -1},
		// Binary mode.
		{httpCase{"POST", "/mpub?topic=b1&binary=true", reqBody{s: bin("a", "bb", "0123456789")}, 200, "OK"}, 3, 13},
		{httpCase{"POST", "/mpub?topic=b2&binary=1", reqBody{s: bin("a\nb"), chunked: true}, 200, "OK"}, 1, 3},
		{httpCase{"POST", "/mpub?topic=b3&binary=yes", reqBody{s: bin("x", "y")}, 200, "OK"}, 2, 2}, // deprecated value: binary
		{httpCase{"POST", "/mpub?topic=b4&binary=", reqBody{s: bin("x")}, 200, "OK"}, 1, 1},
		{httpCase{"POST", "/mput?topic=b5&binary=true", reqBody{s: bin("x")}, 200, "OK"}, 1, 1},
		{httpCase{"POST", "/mpub?topic=b6&binary=true", reqBody{s: "garbage"}, 413, msg("BAD_BODY")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=b7&binary=true", reqBody{}, 413, msg("BAD_BODY")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=b8&binary=true", reqBody{s: "\x00\x00\x00\x00"}, 413, msg("BAD_BODY")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=b9&binary=true", reqBody{s: "\x00\x00\x00\x14"}, 413, msg("BAD_BODY")}, 0, 0}, // 20 > (100-4)/5
		{httpCase{"POST", "/mpub?topic=b10&binary=true", reqBody{s: "\x00\x00\x00\x02" + "\x00\x00\x00\x01x" + "\x00\x00\x00\x00"}, 413, msg("BAD_MESSAGE")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=b11&binary=true", reqBody{s: bin("x", "01234567890")}, 413, msg("BAD_MESSAGE")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=b12&binary=true", reqBody{s: bin("x", "yy")[:12]}, 413, msg("BAD_MESSAGE")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=b13&binary=true", reqBody{s: "\x00\x00\x00\x02\x00\x00\x00\x01x\x00\x00"}, 413, msg("BAD_MESSAGE")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=b14&binary=true", reqBody{s: "\x00\x00\x00\x01\xff\xff\xff\xffx"}, 413, msg("BAD_MESSAGE")}, 0, 0},
		// A chunked binary body is cut at max-body-size: a short read.
		{httpCase{"POST", "/mpub?topic=b15&binary=true", reqBody{s: bin(slices.Repeat([]string{"0123456789"}, 8)...), chunked: true}, 413, msg("BAD_MESSAGE")}, 0, 0},
		{httpCase{"POST", "/mpub?topic=b16&binary=true", reqBody{s: bin(slices.Repeat([]string{"012345678"}, 7)...)}, 200, "OK"}, 7, 63},
	}
	for _, c := range cases {
		t.Run(c.name(), func(t *testing.T) {
			h.check(t, c.httpCase)
			q, _ := httpapi.ParseQuery(httptest.NewRequest("POST", c.target, nil))
			name, _ := q.Get("topic")
			if n, b := h.topicCounts(name); n != c.msgs || b != c.bytes {
				t.Errorf("topic %q: %d messages, %d bytes, want %d, %d", name, n, b, c.msgs, c.bytes)
			}
		})
	}
}

// statsFixture makes topic "orders" with channels "archive" (paused) and
// "billing", one producer that published to orders, one consumer on billing,
// and an empty topic "zeta".
func statsFixture(t *testing.T, h *httpNSQD) {
	t.Helper()
	h.check(t, httpCase{"POST", "/topic/create?topic=zeta", reqBody{}, 200, ""})
	h.check(t, httpCase{"POST", "/topic/create?topic=orders", reqBody{}, 200, ""})
	h.check(t, httpCase{"POST", "/channel/create?topic=orders&channel=billing", reqBody{}, 200, ""})
	h.check(t, httpCase{"POST", "/channel/create?topic=orders&channel=archive", reqBody{}, 200, ""})
	h.check(t, httpCase{"POST", "/channel/pause?topic=orders&channel=archive", reqBody{}, 200, ""})
	p := dialTCP(t, h.n)
	for range 3 {
		p.cmd("PUB orders", []byte("hello"))
	}
	c := dialTCP(t, h.n)
	c.cmd("SUB orders billing", nil)
}

func (h *httpNSQD) statsJSON(t *testing.T, query string) (Stats, string) {
	t.Helper()
	status, hdr, body := h.do("GET", "/stats?format=json"+query, reqBody{})
	if status != 200 || hdr.Get("Content-Type") != "application/json; charset=utf-8" || hdr.Get("X-Nsq-Content-Type") != "nsq; version=1.0" {
		t.Fatalf("GET /stats?format=json%s = %d %v %s", query, status, hdr, body)
	}
	var s Stats
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("decode /stats: %v\n%s", err, body)
	}
	return s, body
}

func TestHTTPStatsJSON(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)

	_, body := h.statsJSON(t, "")
	want := fmt.Sprintf(`{"version":"1.3.0","health":"OK","start_time":%d,"topics":[],"memory":{"heap_objects":`, h.n.StartTime().Unix())
	// NSQ's fields in NSQ's order, then the additions.
	const tail = `},"producers":null,"health_conditions":[{"condition":"disk_queue","ok":true},{"condition":"journal","ok":true},` +
		`{"condition":"metadata","ok":true},{"condition":"free_disk","ok":true},{"condition":"replication","ok":true}]}`
	if !strings.HasPrefix(body, want) || !strings.HasSuffix(body, tail) {
		t.Errorf("stats of an empty nsqd = %s, want %s...%s", body, want, tail)
	}
	for _, k := range []string{"heap_objects", "heap_idle_bytes", "heap_in_use_bytes", "heap_released_bytes",
		"gc_pause_usec_100", "gc_pause_usec_99", "gc_pause_usec_95", "next_gc_bytes", "gc_total_runs"} {
		if !strings.Contains(body, `"`+k+`":`) {
			t.Errorf("memory has no %s: %s", k, body)
		}
	}

	statsFixture(t, h)
	cases := []struct {
		query string
		check func(t *testing.T, s Stats, body string)
	}{
		{"", func(t *testing.T, s Stats, body string) {
			var names []string
			for _, tp := range s.Topics {
				names = append(names, tp.TopicName)
			}
			if !slices.Equal(names, []string{"orders", "zeta"}) {
				t.Errorf("topics %q, want [orders zeta]", names)
			}
			if len(s.Topics) < 2 {
				return
			}
			o := s.Topics[0]
			if len(o.Channels) != 2 || o.Channels[0].ChannelName != "archive" || o.Channels[1].ChannelName != "billing" {
				t.Fatalf("orders channels %+v, want archive, billing", o.Channels)
			}
			if o.MessageCount != 3 || o.MessageBytes != 15 || !o.Channels[0].Paused || o.Channels[0].Depth != 3 {
				t.Errorf("orders %+v", o)
			}
			if b := o.Channels[1]; b.ClientCount != 1 || len(b.Clients) != 1 || b.Clients[0].State != 3 {
				t.Errorf("billing %+v, want one subscribed client", b)
			}
			if len(s.Producers) != 1 || len(s.Producers[0].PubCounts) != 1 || s.Producers[0].PubCounts[0] != (PubCount{"orders", 3}) {
				t.Errorf("producers %+v, want one with orders=3", s.Producers)
			}
			if s.Memory == nil {
				t.Error("no memory object")
			}
			if !strings.Contains(body, `"channels":[],`) {
				t.Errorf("topic zeta without channels lacks \"channels\":[]: %s", body)
			}
			if !strings.Contains(body, `"clients":[],`) {
				t.Errorf("channel archive without clients lacks \"clients\":[]: %s", body)
			}
		}},
		{"&topic=nonexist", func(t *testing.T, s Stats, body string) {
			if !strings.Contains(body, `"topics":null`) {
				t.Errorf("stats for a missing topic: %s, want \"topics\":null", body)
			}
		}},
		{"&topic=orders&channel=nonexist", func(t *testing.T, s Stats, body string) {
			if !strings.Contains(body, `"topics":[]`) {
				t.Errorf("stats for a missing channel: %s, want \"topics\":[]", body)
			}
		}},
		{"&topic=orders&channel=billing&include_clients=false&include_mem=false", func(t *testing.T, s Stats, body string) {
			if strings.Contains(body, `"memory"`) {
				t.Errorf("include_mem=false: memory present: %s", body)
			}
			if !strings.Contains(body, `"producers":null,"health_conditions":`) {
				t.Errorf("include_clients=false: %s, want \"producers\":null", body)
			}
			if len(s.Topics) != 1 || len(s.Topics[0].Channels) != 1 {
				t.Fatalf("topics %+v, want orders with billing only", s.Topics)
			}
			if c := s.Topics[0].Channels[0]; c.ChannelName != "billing" || c.ClientCount != 1 || !strings.Contains(body, `"client_count":1,"clients":null,`) {
				t.Errorf("billing %+v, want client_count 1 and clients null: %s", c, body)
			}
		}},
		{"&include_clients=0&include_mem=0", func(t *testing.T, s Stats, body string) {
			if s.Memory != nil || s.Producers != nil {
				t.Errorf("include_*=0: memory %v, producers %v", s.Memory, s.Producers)
			}
		}},
		{"&include_clients=bogus&include_mem=bogus", func(t *testing.T, s Stats, body string) {
			if s.Memory == nil || len(s.Producers) != 1 {
				t.Errorf("include_*=bogus (true): memory %v, producers %v", s.Memory, s.Producers)
			}
		}},
		{"&format=json&topic=zeta&format=text", func(t *testing.T, s Stats, body string) {
			if len(s.Topics) != 1 || s.Topics[0].TopicName != "zeta" || !strings.Contains(body, `"e2e_processing_latency":{"count":0,"percentiles":null}`) {
				t.Errorf("topic=zeta: %s", body)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			s, body := h.statsJSON(t, c.query)
			c.check(t, s, body)
		})
	}
	h.check(t, httpCase{"GET", "/stats?topic=%zz", reqBody{}, 400, msg("INVALID_REQUEST")})
}

func TestHTTPStatsText(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)
	status, hdr, body := h.do("GET", "/stats", reqBody{})
	if status != 200 || hdr.Get("Content-Type") != "text/plain; charset=utf-8" || hdr.Get("X-Nsq-Content-Type") != "nsq; version=1.0" {
		t.Fatalf("GET /stats = %d %v", status, hdr)
	}
	for _, want := range []string{version.String("nsqd") + "\nstart_time ", "\n\nHealth: OK\n\nMemory:\n   heap_objects             \t", "\n\nTopics: None\n\nProducers: None\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("text stats of an empty nsqd lack %q:\n%s", want, body)
		}
	}

	statsFixture(t, h)
	cases := []struct {
		query     string
		want, not []string // regexps
	}{
		{"", []string{
			`(?m)^   \[orders         \] depth: 0     be-depth: 0     msgs: 3        e2e%: $`,
			`(?m)^   \*P \[archive                  \] depth: 3     be-depth: 0     inflt: 0    def: 0    re-q: 0     timeout: 0     msgs: 3        e2e%: $`,
			`(?m)^      \[billing                  \] depth: 3 `,
			`(?m)^        \[V2 [^:]+:\d+ [^\]]*\] state: 3 inflt: 0    rdy: 0    fin: 0        re-q: 0        msgs: 0        connected: \d+s$`,
			`(?m)^\n   \[zeta           \] depth: 0 `,
			`\n\nProducers:\n   \[V2 [^:]+:\d+ [^\]]*\] msgs: 3        topics: orders=3 connected: \d+s\n$`,
			`\n\nMemory:\n`,
		}, nil},
		{"?format=text&include_mem=false&include_clients=false&topic=orders&channel=billing", []string{
			`\nHealth: OK\n\nTopics:\n   \[orders `,
			`\n\nProducers: None\n$`,
		}, []string{`Memory`, `archive`, `\[V2`}},
		{"?topic=nope", []string{`\n\nTopics: None\n`}, nil},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			_, _, body := h.do("GET", "/stats"+c.query, reqBody{})
			for _, re := range c.want {
				if !regexp.MustCompile(re).MatchString(body) {
					t.Errorf("no match for %s in:\n%s", re, body)
				}
			}
			for _, re := range c.not {
				if regexp.MustCompile(re).MatchString(body) {
					t.Errorf("unexpected match for %s in:\n%s", re, body)
				}
			}
		})
	}
}

// TestWriteStatsText renders the stats of a /stats?format=text output
// captured from NSQ 1.3 and checks the output is that text.
func TestWriteStatsText(t *testing.T) {
	start := time.Date(2026, 11, 23, 11, 13, 40, 0, time.UTC)
	now := start.Add(3*time.Minute + 26*time.Second + 105017952)
	e2e := func(v ...float64) Percentiles {
		p := Percentiles{Count: 1}
		for i, q := range []float64{1, 0.99, 0.5} {
			p.Percentiles = append(p.Percentiles, Percentile{Quantile: q, Value: v[i]})
		}
		return p
	}
	ago := func(d time.Duration) int64 { return now.Add(-d).Unix() }
	s := &Stats{
		Version: "1.3.0", Health: "OK", StartTime: start.Unix(),
		Memory: &MemStats{7735, 9846784, 6242304, 6053888, 644, 644, 644, 8559330, 5},
		Topics: []TopicStats{{
			TopicName: "orders", MessageCount: 8, E2eProcessingLatency: e2e(883571, 883571, 883571),
			Channels: []ChannelStats{
				{ChannelName: "archive", Depth: 3, MessageCount: 3, Paused: true, E2eProcessingLatency: e2e(0, 0, 0)},
				{ChannelName: "billing", Depth: 5, InFlightCount: 2, MessageCount: 8, E2eProcessingLatency: e2e(883571, 883571, 883571),
					Clients: []ClientStats{{Version: "V2", Hostname: "cons.example.com", RemoteAddress: "127.0.0.1:46350", UserAgent: "refclient/0.1",
						State: 3, ReadyCount: 2, InFlightCount: 2, MessageCount: 3, FinishCount: 1, ConnectTime: ago(11 * time.Second)}}},
				{ChannelName: "tail898818#ephemeral", E2eProcessingLatency: e2e(0, 0, 0),
					Clients: []ClientStats{{Version: "V2", Hostname: "vm", RemoteAddress: "127.0.0.1:44918", UserAgent: "nsq_tail/1.3.0 go-nsq/1.1.0",
						State: 3, ReadyCount: 200, ConnectTime: ago(7 * time.Second)}}},
			},
		}},
		Producers: []ClientStats{{Version: "V2", Hostname: "prod.example.com", RemoteAddress: "127.0.0.1:46348", UserAgent: "refclient/0.1",
			PubCounts: []PubCount{{"orders", 5}}, ConnectTime: ago(11 * time.Second)}},
	}
	want := version.String("nsqd") + `
start_time 2026-11-23T11:13:40Z
uptime 3m26.105017952s

Health: OK

Memory:
   heap_objects             	7735
   heap_idle_bytes          	9846784
   heap_in_use_bytes        	6242304
   heap_released_bytes      	6053888
   gc_pause_usec_100        	644
   gc_pause_usec_99         	644
   gc_pause_usec_95         	644
   next_gc_bytes            	8559330
   gc_total_runs            	5

Topics:
   [orders         ] depth: 0     be-depth: 0     msgs: 8        e2e%: 883.6us, 883.6us, 883.6us
   *P [archive                  ] depth: 3     be-depth: 0     inflt: 0    def: 0    re-q: 0     timeout: 0     msgs: 3        e2e%: 0.0ns, 0.0ns, 0.0ns
      [billing                  ] depth: 5     be-depth: 0     inflt: 2    def: 0    re-q: 0     timeout: 0     msgs: 8        e2e%: 883.6us, 883.6us, 883.6us
        [V2 cons.example.com:46350 refclient/0.1] state: 3 inflt: 2    rdy: 2    fin: 1        re-q: 0        msgs: 3        connected: 11s
      [tail898818#ephemeral     ] depth: 0     be-depth: 0     inflt: 0    def: 0    re-q: 0     timeout: 0     msgs: 0        e2e%: 0.0ns, 0.0ns, 0.0ns
        [V2 vm:44918 nsq_tail/1.3.0 go-nsq/1.1.0] state: 3 inflt: 0    rdy: 200  fin: 0        re-q: 0        msgs: 0        connected: 7s

Producers:
   [V2 prod.example.com:46348 refclient/0.1] msgs: 5        topics: orders=5 connected: 11s
`
	var b strings.Builder
	writeStatsText(&b, s, start, now)
	if got := b.String(); got != want {
		t.Errorf("writeStatsText =\n%s\nwant\n%s", got, want)
	}

	// Two topics, a paused one, no memory, no producers.
	s = &Stats{Health: "NOK - disk full", Topics: []TopicStats{{TopicName: "a", Paused: true, Channels: []ChannelStats{}}, {TopicName: "b", Depth: 12345678}}}
	want = "\nHealth: NOK - disk full\n\nTopics:\n*P [a              ] depth: 0     be-depth: 0     msgs: 0        e2e%: \n" +
		"\n   [b              ] depth: 12345678 be-depth: 0     msgs: 0        e2e%: \n\nProducers: None\n"
	b.Reset()
	writeStatsText(&b, s, start, now)
	if got := b.String(); !strings.HasSuffix(got, want) || strings.Contains(got, "Memory") {
		t.Errorf("writeStatsText =\n%q\nwant suffix\n%q", got, want)
	}
}

func TestFormatPercentiles(t *testing.T) {
	p := Percentiles{}
	for _, v := range []float64{0, 999, 1000, 1001, 2.5e6, 1e9, 1.25e10} {
		p.Percentiles = append(p.Percentiles, Percentile{Value: v})
	}
	want := "0.0ns, 999.0ns, 1000.0ns, 1.0us, 2.5ms, 1000.0ms, 12.5s"
	if got := formatPercentiles(p); got != want {
		t.Errorf("formatPercentiles = %q, want %q", got, want)
	}
	if got := formatPercentiles(Percentiles{}); got != "" {
		t.Errorf("formatPercentiles(none) = %q, want empty", got)
	}
}

func TestPercentile(t *testing.T) {
	var ten []uint64
	for i := range 10 {
		ten = append(ten, uint64(i+1)*100)
	}
	cases := []struct {
		in   []uint64
		q    float64
		want uint64
	}{
		{nil, 1, 0}, {[]uint64{7}, 0.95, 7}, {ten, 1, 1000}, {ten, 0.99, 1000}, {ten, 0.95, 1000}, {ten, 0.5, 600}, {ten, 0.84, 900},
	}
	for _, c := range cases {
		if got := percentile(c.in, c.q); got != c.want {
			t.Errorf("percentile(%v, %v) = %d, want %d", c.in, c.q, got, c.want)
		}
	}
	runtime.GC()
	if m := readMemStats(); m.GCTotalRuns == 0 || m.GCPauseUsec100 < m.GCPauseUsec99 || m.GCPauseUsec99 < m.GCPauseUsec95 {
		t.Errorf("readMemStats = %+v", m)
	}
}

// readNSQDDat decodes nsqd.dat's topics as name → paused and
// "topic:channel" → paused.
func readNSQDDat(t *testing.T, n *NSQD) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.opts.DataPath, "nsqd.dat"))
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Topics []struct {
			Name     string
			Paused   bool
			Channels []struct {
				Name   string
				Paused bool
			}
		}
	}
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatalf("nsqd.dat: %v: %s", err, b)
	}
	m := make(map[string]bool)
	for _, tp := range md.Topics {
		m[tp.Name] = tp.Paused
		for _, c := range tp.Channels {
			m[tp.Name+":"+c.Name] = c.Paused
		}
	}
	return m
}

func TestHTTPTopicChannelAdmin(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)
	missingTopic, missingChannel := msg("MISSING_ARG_TOPIC"), msg("MISSING_ARG_CHANNEL")
	badArgTopic, badArgChannel := msg("INVALID_ARG_TOPIC"), msg("INVALID_ARG_CHANNEL")
	topicNotFound, channelNotFound := msg("TOPIC_NOT_FOUND"), msg("CHANNEL_NOT_FOUND")
	paused := func(key string, want bool) func(t *testing.T) {
		return func(t *testing.T) {
			t.Helper()
			if got, ok := readNSQDDat(t, h.n)[key]; !ok || got != want {
				t.Errorf("nsqd.dat %s paused = %v (present %v), want %v", key, got, ok, want)
			}
			s := h.n.Stats(strings.Split(key, ":")[0], "", false)
			if len(s.Topics) != 1 {
				t.Fatalf("no topic for %s in stats", key)
			}
			got := s.Topics[0].Paused
			if _, ch, ok := strings.Cut(key, ":"); ok {
				got = false
				for _, c := range s.Topics[0].Channels {
					if c.ChannelName == ch {
						got = c.Paused
					}
				}
			}
			if got != want {
				t.Errorf("stats %s paused = %v, want %v", key, got, want)
			}
		}
	}
	publish := func(topic string, n int) func(*testing.T) {
		return func(t *testing.T) {
			tp, err := h.n.GetExistingTopic(topic)
			if err != nil {
				t.Fatal(err)
			}
			for range n {
				if err := tp.Publish([]byte("m"), 0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	depth := func(topic, channel string, want int64) func(*testing.T) {
		return func(t *testing.T) {
			s := h.n.Stats(topic, channel, false)
			if len(s.Topics) != 1 {
				t.Fatalf("no topic %s", topic)
			}
			got := s.Topics[0].Depth
			if channel != "" {
				if len(s.Topics[0].Channels) != 1 {
					t.Fatalf("no channel %s", channel)
				}
				got = s.Topics[0].Channels[0].Depth
			}
			if got != want {
				t.Errorf("depth of %s %s = %d, want %d", topic, channel, got, want)
			}
		}
	}
	exists := func(topic, channel string, want bool) func(*testing.T) {
		return func(t *testing.T) {
			tp, err := h.n.GetExistingTopic(topic)
			got := err == nil
			if got && channel != "" {
				_, err = tp.GetExistingChannel(channel)
				got = err == nil
			}
			if got != want {
				t.Errorf("%s %s exists = %v, want %v", topic, channel, got, want)
			}
		}
	}
	// Steps run in order; each is a request or a check of the state.
	steps := []struct {
		httpCase
		then func(*testing.T)
	}{
		{httpCase{"POST", "/topic/create", reqBody{}, 400, missingTopic}, nil},
		{httpCase{"POST", "/topic/create?topic=bad*", reqBody{}, 400, msg("INVALID_TOPIC")}, nil},
		{httpCase{"POST", "/topic/create?topic=%zz", reqBody{}, 400, msg("INVALID_REQUEST")}, nil},
		{httpCase{"POST", "/topic/create?topic=t1", reqBody{}, 200, ""}, exists("t1", "", true)},
		{httpCase{"POST", "/topic/create?topic=t1", reqBody{}, 200, ""}, nil},

		{httpCase{"POST", "/topic/empty", reqBody{}, 400, missingTopic}, nil},
		{httpCase{"POST", "/topic/empty?topic=bad*", reqBody{}, 400, msg("INVALID_TOPIC")}, nil},
		{httpCase{"POST", "/topic/empty?topic=nope", reqBody{}, 404, topicNotFound}, nil},
		{httpCase{"POST", "/topic/create?topic=t1", reqBody{}, 200, ""}, publish("t1", 3)},
		{httpCase{"POST", "/topic/empty?topic=t1", reqBody{}, 200, ""}, depth("t1", "", 0)},

		{httpCase{"POST", "/topic/pause", reqBody{}, 400, missingTopic}, nil},
		{httpCase{"POST", "/topic/pause?topic=bad*", reqBody{}, 404, topicNotFound}, nil},
		{httpCase{"POST", "/topic/pause?topic=nope", reqBody{}, 404, topicNotFound}, nil},
		{httpCase{"POST", "/topic/pause?topic=t1", reqBody{}, 200, ""}, paused("t1", true)},
		{httpCase{"POST", "/topic/unpause?topic=nope", reqBody{}, 404, topicNotFound}, nil},
		{httpCase{"POST", "/topic/unpause", reqBody{}, 400, missingTopic}, nil},
		{httpCase{"POST", "/topic/unpause?topic=t1", reqBody{}, 200, ""}, paused("t1", false)},

		// Channel parameters: topic present, topic valid, channel present,
		// channel valid, topic exists, channel exists.
		{httpCase{"POST", "/channel/create", reqBody{}, 400, missingTopic}, nil},
		{httpCase{"POST", "/channel/create?channel=c", reqBody{}, 400, missingTopic}, nil},
		{httpCase{"POST", "/channel/create?topic=bad*", reqBody{}, 400, badArgTopic}, nil},
		{httpCase{"POST", "/channel/create?topic=nope", reqBody{}, 400, missingChannel}, nil},
		{httpCase{"POST", "/channel/create?topic=nope&channel=bad*", reqBody{}, 400, badArgChannel}, nil},
		{httpCase{"POST", "/channel/create?topic=nope&channel=", reqBody{}, 400, badArgChannel}, nil},
		{httpCase{"POST", "/channel/create?topic=nope&channel=c", reqBody{}, 404, topicNotFound}, exists("nope", "", false)},
		{httpCase{"POST", "/channel/create?topic=t1&channel=%zz", reqBody{}, 400, msg("INVALID_REQUEST")}, nil},
		{httpCase{"POST", "/channel/create?topic=t1&channel=c1", reqBody{}, 200, ""}, exists("t1", "c1", true)},
		{httpCase{"POST", "/channel/create?topic=t1&channel=c2%23ephemeral", reqBody{}, 200, ""}, exists("t1", "c2#ephemeral", true)},

		{httpCase{"POST", "/channel/pause?topic=t1", reqBody{}, 400, missingChannel}, nil},
		{httpCase{"POST", "/channel/pause?topic=bad*&channel=c1", reqBody{}, 400, badArgTopic}, nil},
		{httpCase{"POST", "/channel/pause?topic=nope&channel=c1", reqBody{}, 404, topicNotFound}, nil},
		{httpCase{"POST", "/channel/pause?topic=t1&channel=nope", reqBody{}, 404, channelNotFound}, nil},
		{httpCase{"POST", "/channel/pause?topic=t1&channel=c1", reqBody{}, 200, ""}, paused("t1:c1", true)},
		{httpCase{"POST", "/channel/unpause?topic=t1&channel=nope", reqBody{}, 404, channelNotFound}, nil},
		{httpCase{"POST", "/channel/unpause?topic=t1&channel=c1", reqBody{}, 200, ""}, paused("t1:c1", false)},

		{httpCase{"POST", "/channel/pause?topic=t1&channel=c1", reqBody{}, 200, ""}, publish("t1", 4)},
		{httpCase{"POST", "/channel/empty?topic=t1&channel=nope", reqBody{}, 404, channelNotFound}, depth("t1", "c1", 4)},
		{httpCase{"POST", "/channel/empty?topic=t1", reqBody{}, 400, missingChannel}, nil},
		{httpCase{"POST", "/channel/empty?topic=t1&channel=c1", reqBody{}, 200, ""}, depth("t1", "c1", 0)},

		{httpCase{"POST", "/channel/delete?topic=t1&channel=bad*", reqBody{}, 400, badArgChannel}, nil},
		{httpCase{"POST", "/channel/delete?topic=nope&channel=c1", reqBody{}, 404, topicNotFound}, nil},
		{httpCase{"POST", "/channel/delete?topic=t1&channel=nope", reqBody{}, 404, channelNotFound}, nil},
		{httpCase{"POST", "/channel/delete?topic=t1&channel=c1", reqBody{}, 200, ""}, exists("t1", "c1", false)},
		{httpCase{"POST", "/channel/delete?topic=t1&channel=c1", reqBody{}, 404, channelNotFound}, nil},

		{httpCase{"POST", "/topic/delete", reqBody{}, 400, missingTopic}, nil},
		{httpCase{"POST", "/topic/delete?topic=bad*", reqBody{}, 404, topicNotFound}, nil},
		{httpCase{"POST", "/topic/delete?topic=nope", reqBody{}, 404, topicNotFound}, nil},
		{httpCase{"POST", "/topic/delete?topic=t1", reqBody{}, 200, ""}, exists("t1", "", false)},
		{httpCase{"POST", "/topic/delete?topic=t1", reqBody{}, 404, topicNotFound}, nil},
	}
	for i, s := range steps {
		if !t.Run(fmt.Sprintf("%02d %s", i, s.name()), func(t *testing.T) {
			h.check(t, s.httpCase)
			if s.then != nil {
				s.then(t)
			}
		}) {
			t.Fatalf("step %d failed; later steps depend on it", i)
		}
	}
	// Successful management calls answer an empty body without Content-Type.
	_, hdr, _ := h.do("POST", "/topic/create?topic=t2", reqBody{})
	if hdr.Get("Content-Type") != "" || hdr.Get("Content-Length") != "0" || hdr.Get("X-Nsq-Content-Type") != "nsq; version=1.0" {
		t.Errorf("POST /topic/create headers %v", hdr)
	}
}

func TestHTTPConfig(t *testing.T) {
	h := startHTTPNSQD(t, nil, func(o *Options) {
		o.MaxMsgSize = 64
		o.E2EProcessingLatencyPercentiles = []float64{1, 0.99}
	})
	o := h.n.opts
	port := h.n.HTTPAddr().(*net.TCPAddr).Port
	invalidOption, invalidValue := msg("INVALID_OPTION"), msg("INVALID_VALUE")
	cases := []struct {
		httpCase
		contentType string // "" = none
	}{
		{httpCase{"GET", "/config/id", reqBody{}, 200, strconv.FormatInt(o.ID, 10)}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/node_id", reqBody{}, 400, invalidOption}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/verbose", reqBody{}, 400, invalidOption}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/queue_scan_interval", reqBody{}, 400, invalidOption}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/data_path", reqBody{}, 200, o.DataPath}, "text/plain; charset=utf-8"},
		{httpCase{"GET", "/config/log_prefix", reqBody{}, 200, "[nsqd] "}, "text/plain; charset=utf-8"},
		{httpCase{"GET", "/config/tls_cert", reqBody{}, 200, ""}, ""},
		{httpCase{"GET", "/config/msg_timeout", reqBody{}, 200, "60000000000"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/mem_queue_size", reqBody{}, 200, "10000"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/max_msg_size", reqBody{}, 200, "64"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/deflate", reqBody{}, 200, "true"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/tls_required", reqBody{}, 200, "0"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/tls_min_version", reqBody{}, 200, "769"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/log_level", reqBody{}, 200, "2"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/nsqlookupd_tcp_addresses", reqBody{}, 200, "[]"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/auth_http_addresses", reqBody{}, 200, "[]"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/e2e_processing_latency_percentiles", reqBody{}, 200, "[1,0.99]"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/statsd_prefix", reqBody{}, 200, fmt.Sprintf("nsq.127_0_0_1_%d.", port)}, "text/plain; charset=utf-8"},
		{httpCase{"GET", "/config/", reqBody{}, 404, msg("NOT_FOUND")}, "application/json; charset=utf-8"},

		{httpCase{"PUT", "/config/log_level", reqBody{s: "debug"}, 200, "1"}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/log_level", reqBody{}, 200, "1"}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/log_level", reqBody{s: "WARN"}, 200, "3"}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/log_level", reqBody{s: "Fatal", chunked: true}, 200, "5"}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/log_level", reqBody{s: "loud"}, 400, invalidValue}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/log_level", reqBody{s: "info\n"}, 400, invalidValue}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/log_level", reqBody{}, 413, invalidValue}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/log_level", reqBody{s: strings.Repeat("d", 65)}, 413, invalidValue}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/log_level", reqBody{s: strings.Repeat("d", 65), chunked: true}, 413, invalidValue}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/log_level", reqBody{s: "info"}, 200, "2"}, "application/json; charset=utf-8"},

		{httpCase{"PUT", "/config/nsqlookupd_tcp_addresses", reqBody{s: `["127.0.0.1:1","127.0.0.2:1"]`}, 200, `["127.0.0.1:1","127.0.0.2:1"]`}, "application/json; charset=utf-8"},
		{httpCase{"GET", "/config/nsqlookupd_tcp_addresses", reqBody{}, 200, `["127.0.0.1:1","127.0.0.2:1"]`}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/nsqlookupd_tcp_addresses", reqBody{s: `"127.0.0.1:1"`}, 400, invalidValue}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/nsqlookupd_tcp_addresses", reqBody{s: `[1]`}, 400, invalidValue}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/nsqlookupd_tcp_addresses", reqBody{s: `[]`}, 200, `[]`}, "application/json; charset=utf-8"},

		{httpCase{"PUT", "/config/mem_queue_size", reqBody{s: "5"}, 400, invalidOption}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/nope", reqBody{s: "5"}, 400, invalidOption}, "application/json; charset=utf-8"},
		{httpCase{"PUT", "/config/nope", reqBody{}, 413, invalidValue}, "application/json; charset=utf-8"}, // body checked first
		{httpCase{"GET", "/config/mem_queue_size", reqBody{}, 200, "10000"}, "application/json; charset=utf-8"},
	}
	for _, c := range cases {
		t.Run(c.name()+" "+c.body.s, func(t *testing.T) {
			hdr := h.check(t, c.httpCase)
			if got := hdr.Get("Content-Type"); got != c.contentType {
				t.Errorf("Content-Type = %q, want %q", got, c.contentType)
			}
		})
	}
	if got := h.n.LookupdTCPAddresses(); len(got) != 0 {
		t.Errorf("LookupdTCPAddresses() = %q after PUT [], want none", got)
	}
}

// Every option with a flag can be read back, under its config-file key.
func TestConfigFields(t *testing.T) {
	h := &httpServer{n: &NSQD{opts: NewOptions()}}
	keys := options.Keys(h.n.opts)
	for _, key := range keys {
		switch key {
		case "log_level", "nsqlookupd_tcp_addresses", "statsd_prefix":
			continue // runtime values, read from a running daemon in TestHTTPConfig
		}
		if _, err := h.configValue(key); err != nil {
			t.Errorf("configValue(%q): %v", key, err)
		}
	}
	for _, key := range []string{"id", "nsqlookupd_tcp_addresses", "auth_http_addresses", "e2e_processing_latency_percentiles",
		"enable_experiment", "tls_required", "max_req_timeout", "broadcast_http_port", "statsd_mem_stats"} {
		if !slices.Contains(keys, key) {
			t.Errorf("no config key %q", key)
		}
	}
	for _, key := range []string{"node_id", "lookupd_tcp_address", "logger", "Logger", "client_timeout", "verbose"} {
		if slices.Contains(keys, key) {
			t.Errorf("unexpected config key %q", key)
		}
	}
}

func TestHTTPDebug(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)
	t.Cleanup(func() { runtime.SetBlockProfileRate(0) })
	h.runCases([]httpCase{
		{"PUT", "/debug/setblockrate?rate=1", reqBody{}, 200, ""},
		{"PUT", "/debug/setblockrate?rate=0", reqBody{}, 200, ""},
		{"PUT", "/debug/setblockrate?rate=x", reqBody{}, 400, `invalid block rate : strconv.Atoi: parsing "x": invalid syntax`},
		{"PUT", "/debug/setblockrate", reqBody{s: "rate=1"}, 400, `invalid block rate : strconv.Atoi: parsing "": invalid syntax`},
		{"POST", "/debug/setblockrate?rate=1", reqBody{}, 405, msg("METHOD_NOT_ALLOWED")},
		{"POST", "/debug/freememory", reqBody{}, 200, ""},
		{"GET", "/debug/freememory", reqBody{}, 405, msg("METHOD_NOT_ALLOWED")},
		{"GET", "/debug/pprof/allocs", reqBody{}, 404, msg("NOT_FOUND")},
	})
	for _, c := range []struct{ method, target string }{
		{"GET", "/debug/pprof/"}, {"GET", "/debug/pprof/cmdline"}, {"GET", "/debug/pprof/symbol"},
		{"POST", "/debug/pprof/symbol"}, {"GET", "/debug/pprof/heap"}, {"GET", "/debug/pprof/goroutine?debug=1"},
		{"GET", "/debug/pprof/block"}, {"GET", "/debug/pprof/threadcreate"},
	} {
		if status, _, body := h.do(c.method, c.target, reqBody{}); status != 200 || body == "" {
			t.Errorf("%s %s = %d, %d bytes", c.method, c.target, status, len(body))
		}
	}
	_, hdr, _ := h.do("POST", "/debug/freememory", reqBody{})
	if hdr.Get("X-Nsq-Content-Type") != "" || hdr.Get("Content-Length") != "0" {
		t.Errorf("POST /debug/freememory headers %v", hdr)
	}
}

// syncBuffer is an io.Writer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestHTTPRequestLog(t *testing.T) {
	var logs syncBuffer
	h := startHTTPNSQD(t, &logs, nil)
	h.do("GET", "/ping", reqBody{})
	h.do("POST", "/topic/create?topic=x", reqBody{})
	h.do("POST", "/pub?topic=logged", reqBody{s: "m"})
	h.do("POST", "/mpub?topic=logged", reqBody{s: "m"})
	h.do("GET", "/nope", reqBody{})
	out := logs.String()
	for _, re := range []string{
		`INFO: 200 GET /ping \(127\.0\.0\.1:\d+\) \S+\n`,
		`INFO: 200 POST /topic/create\?topic=x \(127\.0\.0\.1:\d+\) \S+\n`,
		`INFO: 404 GET /nope \(127\.0\.0\.1:\d+\) \S+\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("log lacks %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "/pub") || strings.Contains(out, "/mpub") {
		t.Errorf("publishes logged:\n%s", out)
	}
}

func TestReadMPUB(t *testing.T) {
	cases := []struct {
		in       []byte
		want     []string
		code     string // expected protocol error code
		desc     string
		consumed int // bytes read on success
	}{
		{in: encodeMPUB("a", "bc"), want: []string{"a", "bc"}},
		{in: append(encodeMPUB("x"), "trailing"...), want: []string{"x"}, consumed: 9},
		{in: []byte{0, 0}, code: "E_BAD_BODY", desc: "MPUB failed to read message count"},
		{in: []byte{0, 0, 0, 0}, code: "E_BAD_BODY", desc: "MPUB invalid message count 0"},
		{in: []byte("garbage"), code: "E_BAD_BODY", desc: "MPUB invalid message count 1734439522"},
		{in: []byte{0xff, 0xff, 0xff, 0xff}, code: "E_BAD_BODY", desc: "MPUB invalid message count -1"},
		{in: []byte{0, 0, 0, 20}, code: "E_BAD_BODY", desc: "MPUB invalid message count 20"},
		{in: []byte{0, 0, 0, 19}, code: "E_BAD_MESSAGE", desc: "MPUB failed to read message(0) body size"},
		{in: encodeMPUB("a", "b")[:10], code: "E_BAD_MESSAGE", desc: "MPUB failed to read message(1) body size"},
		{in: []byte{0, 0, 0, 1, 0, 0, 0, 0}, code: "E_BAD_MESSAGE", desc: "MPUB invalid message(0) body size 0"},
		{in: []byte{0, 0, 0, 1, 0x80, 0, 0, 0}, code: "E_BAD_MESSAGE", desc: "MPUB invalid message(0) body size -2147483648"},
		{in: encodeMPUB("12345678901"), code: "E_BAD_MESSAGE", desc: "MPUB message too big 11 > 10"},
		{in: encodeMPUB("ab")[:9], code: "E_BAD_MESSAGE", desc: "MPUB failed to read message body"},
	}
	for _, c := range cases {
		r := bytes.NewReader(c.in)
		got, err := readMPUBMessages(r, 10, 100, 100)
		if c.code != "" {
			pe, ok := errors.AsType[*protocol.Error](err)
			if !ok || pe.Code != c.code || pe.Desc != c.desc || !pe.Fatal {
				t.Errorf("readMPUBMessages(%q) = %q, %v, want %s %s", c.in, got, err, c.code, c.desc)
			}
			continue
		}
		var gs []string
		for _, b := range got {
			gs = append(gs, string(b))
		}
		if err != nil || !slices.Equal(gs, c.want) {
			t.Errorf("readMPUBMessages(%q) = %q, %v, want %q", c.in, gs, err, c.want)
		}
		if consumed := len(c.in) - r.Len(); c.consumed != 0 && consumed != c.consumed {
			t.Errorf("readMPUBMessages(%q) read %d bytes, want %d", c.in, consumed, c.consumed)
		}
	}

	// Many small and some large messages: blocks are shared but bodies
	// cannot overwrite each other.
	var bodies []string
	for i := range 3000 {
		bodies = append(bodies, strings.Repeat(string(rune('a'+i%26)), 1+i%50))
		if i%1000 == 0 {
			bodies = append(bodies, strings.Repeat("L", 40000))
		}
	}
	got, err := readMPUBMessages(bytes.NewReader(encodeMPUB(bodies...)), 1<<20, 5<<20, 5<<20)
	if err != nil || len(got) != len(bodies) {
		t.Fatalf("readMPUBMessages(%d bodies) = %d, %v", len(bodies), len(got), err)
	}
	for i := range got {
		got[i] = append(got[i], '!') // must not clobber the next body
	}
	for i, b := range got {
		if string(b) != bodies[i]+"!" {
			t.Fatalf("body %d = %q, want %q", i, b, bodies[i]+"!")
		}
	}
}

func FuzzReadMPUB(f *testing.F) {
	f.Add(encodeMPUB("hello", "world"), uint16(16), uint16(64))
	f.Add(encodeMPUB("a"), uint16(1), uint16(9))
	f.Add([]byte("garbage"), uint16(10), uint16(100))
	f.Add([]byte{0, 0, 0, 0}, uint16(10), uint16(100))
	f.Add([]byte{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, uint16(10), uint16(100))
	f.Add(append(encodeMPUB("x", "yy", "zzz"), 0, 0), uint16(3), uint16(40))
	f.Add(encodeMPUB("too long"), uint16(4), uint16(100))
	f.Fuzz(func(t *testing.T, in []byte, maxMsg, maxBody uint16) {
		maxMsgSize, maxBodySize := int64(maxMsg), int64(maxBody)
		r := bytes.NewReader(in)
		bodies, err := readMPUBMessages(r, maxMsgSize, maxBodySize, maxBodySize)
		if err != nil {
			pe, ok := errors.AsType[*protocol.Error](err)
			if !ok || !pe.Fatal || (pe.Code != "E_BAD_BODY" && pe.Code != "E_BAD_MESSAGE") {
				t.Fatalf("readMPUBMessages(%x) error %#v, want a fatal E_BAD_BODY or E_BAD_MESSAGE", in, err)
			}
			return
		}
		if len(bodies) == 0 || int64(len(bodies)) > (maxBodySize-4)/5 {
			t.Fatalf("readMPUBMessages(%x) = %d messages, limit %d", in, len(bodies), maxBodySize)
		}
		var strs []string
		for _, b := range bodies {
			if len(b) == 0 || int64(len(b)) > maxMsgSize {
				t.Fatalf("readMPUBMessages(%x): message of %d bytes, limit %d", in, len(b), maxMsgSize)
			}
			strs = append(strs, string(b))
		}
		consumed := in[:len(in)-r.Len()]
		if enc := encodeMPUB(strs...); !bytes.Equal(enc, consumed) {
			t.Fatalf("readMPUBMessages(%x) = %q, re-encoded %x, want the %d bytes read", in, strs, enc, len(consumed))
		}
	})
}

func TestSplitMPUBText(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  error
	}{
		{"", nil, nil},
		{"a", []string{"a"}, nil},
		{"a\n", []string{"a"}, nil},
		{"a\n\nb\r\n\r\n", []string{"a", "b\r", "\r"}, nil},
		{"\n\n", nil, nil},
		{"0123456789\nx", []string{"0123456789", "x"}, nil},
		{"01234567890\n", nil, errHTTPMsgTooBig},
		{"x\n01234567890", nil, errHTTPMsgTooBig},
		{strings.Repeat("\n", 20), nil, nil},
		{strings.Repeat("\n", 21), nil, errHTTPBodyTooBig},
		{strings.Repeat("x", 21), nil, errHTTPBodyTooBig},                 // over both limits: the body counts first
		{"01234567890\n" + strings.Repeat("x", 9), nil, errHTTPMsgTooBig}, // long line ends before the body limit
	}
	for _, c := range cases {
		got, err := readMPUBText(strings.NewReader(c.in), 10, 20)
		var gs []string
		for _, b := range got {
			gs = append(gs, string(b))
		}
		if !errors.Is(err, c.err) || !slices.Equal(gs, c.want) {
			t.Errorf("readMPUBText(%q) = %q, %v, want %q, %v", c.in, gs, err, c.want, c.err)
		}
	}
}

func FuzzSplitMPUBText(f *testing.F) {
	f.Add([]byte("a\nb\n\nc"), uint16(10), uint16(100))
	f.Add([]byte("a\r\n\r\nlonger line\n"), uint16(5), uint16(100))
	f.Add([]byte(""), uint16(1), uint16(1))
	f.Add([]byte("\n\n\n\n"), uint16(1), uint16(3))
	f.Fuzz(func(t *testing.T, body []byte, maxMsg, maxBody uint16) {
		maxMsgSize, maxBodySize := int64(maxMsg), int64(maxBody)
		msgs, err := splitMPUBText(body, maxMsgSize, maxBodySize)
		var lines []string // the non-empty lines, the reference split
		for l := range strings.SplitSeq(string(body), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
		tooLong := slices.ContainsFunc(lines, func(l string) bool { return int64(len(l)) > maxMsgSize })
		switch {
		case err == nil:
			if int64(len(body)) > maxBodySize || tooLong {
				t.Fatalf("splitMPUBText(%q, %d, %d) accepted", body, maxMsg, maxBody)
			}
			var got []string
			for _, m := range msgs {
				got = append(got, string(m))
			}
			if !slices.Equal(got, lines) {
				t.Fatalf("splitMPUBText(%q) = %q, want %q", body, got, lines)
			}
		case errors.Is(err, errHTTPBodyTooBig):
			if int64(len(body)) <= maxBodySize {
				t.Fatalf("splitMPUBText(%q, %d, %d): BODY_TOO_BIG for %d bytes", body, maxMsg, maxBody, len(body))
			}
		case errors.Is(err, errHTTPMsgTooBig):
			if !tooLong {
				t.Fatalf("splitMPUBText(%q, %d, %d): MSG_TOO_BIG without a long line", body, maxMsg, maxBody)
			}
		default:
			t.Fatalf("splitMPUBText(%q): unexpected error %v", body, err)
		}
	})
}

func BenchmarkReadBody(b *testing.B) {
	for _, size := range []int{100, 1024, 16 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			body := bytes.Repeat([]byte("x"), size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", "/pub?topic=bench", bytes.NewReader(body))
				if _, err := readBody(req, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSplitMPUBText(b *testing.B) {
	body := bytes.Repeat([]byte(strings.Repeat("x", 99)+"\n"), 1000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := splitMPUBText(body, 1<<20, 5<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadMPUB(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			in := encodeMPUB(slices.Repeat([]string{strings.Repeat("x", size)}, 100)...)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := readMPUBMessages(bytes.NewReader(in), 1<<20, 5<<20, 5<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

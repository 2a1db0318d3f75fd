package nsqlookupd_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/nsqlookupd"
)

// startLookupd runs an nsqlookupd on loopback until the test ends; modify, if
// not nil, changes the options first.
func startLookupd(t testing.TB, modify func(*nsqlookupd.Options)) *nsqlookupd.NSQLookupd {
	t.Helper()
	opts := nsqlookupd.NewOptions()
	opts.TCPAddress, opts.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
	opts.BroadcastAddress = "127.0.0.1"
	opts.Logger = nsqlog.New(t.Output(), opts.LogPrefix, slog.LevelDebug)
	if modify != nil {
		modify(opts)
	}
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

// eventually polls cond until it holds or five seconds have passed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// v1Conn is a raw V1 protocol client.
type v1Conn struct {
	t    testing.TB
	conn *net.TCPConn
	r    *bufio.Reader
}

// dialRaw connects without sending the magic.
func dialRaw(t testing.TB, l *nsqlookupd.NSQLookupd) *v1Conn {
	t.Helper()
	conn, err := net.Dial("tcp", l.TCPAddr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return &v1Conn{t: t, conn: conn.(*net.TCPConn), r: bufio.NewReader(conn)}
}

// dialV1 connects and sends the "  V1" magic.
func dialV1(t testing.TB, l *nsqlookupd.NSQLookupd) *v1Conn {
	t.Helper()
	c := dialRaw(t, l)
	c.send("  V1")
	return c
}

func (c *v1Conn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// read reads one [size][payload] response.
func (c *v1Conn) read() (string, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return "", err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c.r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

func (c *v1Conn) mustRead() string {
	c.t.Helper()
	s, err := c.read()
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	return s
}

// cmd sends a command line and returns the response.
func (c *v1Conn) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\n")
	return c.mustRead()
}

// mustOK sends a command line that must answer OK.
func (c *v1Conn) mustOK(line string) {
	c.t.Helper()
	if got := c.cmd(line); got != "OK" {
		c.t.Fatalf("%s = %q, want OK", line, got)
	}
}

// identifyBody frames an IDENTIFY command with a JSON body.
func identifyBody(body string) string {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	return "IDENTIFY\n" + string(hdr[:]) + body
}

// nsqdIdentity is an IDENTIFY body as nsqd sends it.
func nsqdIdentity(httpPort int) string {
	return fmt.Sprintf(`{"broadcast_address":"127.0.0.1","hostname":"vm","http_port":%d,"tcp_port":%d,"topology_region":"","topology_zone":"","version":"1.3.0"}`, httpPort, httpPort-1)
}

// identify sends IDENTIFY as nsqd would and checks the JSON answer.
func (c *v1Conn) identify(httpPort int) {
	c.t.Helper()
	c.send(identifyBody(nsqdIdentity(httpPort)))
	if got := c.mustRead(); !strings.HasPrefix(got, `{"broadcast_address":`) {
		c.t.Fatalf("IDENTIFY = %q, want the JSON identity", got)
	}
}

// expectClosed checks that the server closed the connection.
func (c *v1Conn) expectClosed() {
	c.t.Helper()
	if s, err := c.read(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("read after a fatal error = %q, %v, want EOF", s, err)
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "connection reset") }

// response is an HTTP answer read whole.
type response struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, l *nsqlookupd.NSQLookupd, method, path string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+l.HTTPAddr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func get(t testing.TB, l *nsqlookupd.NSQLookupd, path string) response {
	t.Helper()
	return do(t, l, "GET", path)
}

func post(t testing.TB, l *nsqlookupd.NSQLookupd, path string) response {
	t.Helper()
	r := do(t, l, "POST", path)
	if r.status != http.StatusOK {
		t.Fatalf("POST %s = %d %s, want 200", path, r.status, r.body)
	}
	return r
}

// getJSON GETs path, which must answer 200, and decodes the body into v.
func getJSON(t testing.TB, l *nsqlookupd.NSQLookupd, path string, v any) {
	t.Helper()
	r := get(t, l, path)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s = %d %s, want 200", path, r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("GET %s: decode %q: %v", path, r.body, err)
	}
}

type producer struct {
	RemoteAddress    string   `json:"remote_address"`
	Hostname         string   `json:"hostname"`
	BroadcastAddress string   `json:"broadcast_address"`
	TCPPort          int      `json:"tcp_port"`
	HTTPPort         int      `json:"http_port"`
	Version          string   `json:"version"`
	Tombstones       []bool   `json:"tombstones"`
	Topics           []string `json:"topics"`
}

type lookupResult struct {
	status    int
	Channels  []string   `json:"channels"`
	Producers []producer `json:"producers"`
}

// lookup returns GET /lookup?topic=; status 404 for an unknown topic.
func lookup(t testing.TB, l *nsqlookupd.NSQLookupd, topic string) lookupResult {
	t.Helper()
	r := get(t, l, "/lookup?topic="+url.QueryEscape(topic))
	res := lookupResult{status: r.status}
	if r.status == http.StatusOK {
		if err := json.Unmarshal([]byte(r.body), &res); err != nil {
			t.Fatalf("/lookup: decode %q: %v", r.body, err)
		}
	}
	return res
}

// httpPorts returns the http_port of each producer.
func httpPorts(ps []producer) []int {
	ports := []int{}
	for _, p := range ps {
		ports = append(ports, p.HTTPPort)
	}
	return ports
}

func nodes(t testing.TB, l *nsqlookupd.NSQLookupd) []producer {
	t.Helper()
	var res struct {
		Producers []producer `json:"producers"`
	}
	getJSON(t, l, "/nodes", &res)
	return res.Producers
}

func channels(t testing.TB, l *nsqlookupd.NSQLookupd, topic string) []string {
	t.Helper()
	var res struct {
		Channels []string `json:"channels"`
	}
	getJSON(t, l, "/channels?topic="+url.QueryEscape(topic), &res)
	return res.Channels
}

func topics(t testing.TB, l *nsqlookupd.NSQLookupd) []string {
	t.Helper()
	var res struct {
		Topics []string `json:"topics"`
	}
	getJSON(t, l, "/topics", &res)
	return res.Topics
}

package e2e

// Cluster discovery end to end (issue 4): built nsqlookupd and nsqd
// binaries, the go-nsq v1.1.0 consumer discovering producers through
// /lookup, and raw V1 connections for lookupd's protocol errors. The
// commands of seeds 001 and 003 are replayed in their own flag forms, with
// free ports instead of the fixed ones.
//
// Helpers of this file are prefixed cl so that they do not collide with the
// other files of the package.

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqio/go-nsq"
)

// nsqd sends PING to every lookupd every 15 s (NSQ's fixed interval); a lost
// lookupd connection is noticed by one PING and re-established by the next.
const clPingInterval = 15 * time.Second

// ---------------------------------------------------------------------------
// Daemons in the seeds' flag forms.

// clDaemon is an nsqlookupd or nsqd started by clStart.
type clDaemon struct {
	*nsqtest.Process
	name      string
	dir       string
	args      []string
	TCPPort   int
	HTTPPort  int
	TCPAddr   string // 127.0.0.1:TCPPort
	HTTPAddr  string // 127.0.0.1:HTTPPort
	startedAt time.Time
}

// clStart runs the built binary name in dir with the arguments mkArgs
// returns for two free ports, and waits for GET /ping. If it lost a port race
// it retries on other ports.
func clStart(t *testing.T, dir, name string, mkArgs func(tcpPort, httpPort int) []string) *clDaemon {
	t.Helper()
	for attempt := 1; ; attempt++ {
		d := &clDaemon{name: name, dir: dir, TCPPort: nsqtest.FreePort(t), HTTPPort: nsqtest.FreePort(t)}
		d.TCPAddr = "127.0.0.1:" + strconv.Itoa(d.TCPPort)
		d.HTTPAddr = "127.0.0.1:" + strconv.Itoa(d.HTTPPort)
		d.args = mkArgs(d.TCPPort, d.HTTPPort)
		d.startedAt = time.Now()
		d.Process = nsqtest.Start(t, dir, name, d.args...)
		err := clWaitPing(d.Process, d.HTTPAddr)
		if err == nil {
			return d
		}
		d.Kill()
		if attempt < 5 && strings.Contains(d.Output(), "address already in use") {
			t.Logf("%s lost a port race; retrying on other ports", name)
			continue
		}
		t.Fatal(err)
	}
}

// restart stops d with SIGTERM (it must exit 0) and runs it again with the
// same arguments, so on the same ports.
func (d *clDaemon) restart(t *testing.T) {
	t.Helper()
	if code := d.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("%s exited with status %d after SIGTERM, want 0", d.name, code)
	}
	d.startedAt = time.Now()
	d.Process = nsqtest.Start(t, d.dir, d.name, d.args...)
	if err := clWaitPing(d.Process, d.HTTPAddr); err != nil {
		t.Fatal(err)
	}
}

func clWaitPing(p *nsqtest.Process, httpAddr string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("http://" + httpAddr + "/ping")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "OK" {
				return nil
			}
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited before GET /ping answered OK:\n%s", p.Name, p.Output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET http://%s/ping: no 200 OK within 20s", httpAddr)
		}
	}
}

// clSeedLookupd runs nsqlookupd as seed 001 does,
//
//	./nsqlookupd -tcp-address ":8200" -http-address ":8201"
//
// on free ports, followed by extra.
func clSeedLookupd(t *testing.T, dir string, extra ...string) *clDaemon {
	t.Helper()
	return clStart(t, dir, "nsqlookupd", func(tcp, http int) []string {
		return append([]string{"-tcp-address", ":" + strconv.Itoa(tcp), "-http-address", ":" + strconv.Itoa(http)}, extra...)
	})
}

// clSeedNSQD runs nsqd as seed 001 does, in dir with -data-path=./sub,
//
//	./nsqd -tcp-address ":8000" -http-address ":8001" --lookupd-tcp-address=127.0.0.1:8200 --lookupd-tcp-address=127.0.0.1:7200 -data-path=./a
//
// with one --lookupd-tcp-address per lookupd, followed by extra.
func clSeedNSQD(t *testing.T, dir, sub string, lookupds []*clDaemon, extra ...string) *clDaemon {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
		t.Fatal(err)
	}
	return clStart(t, dir, "nsqd", func(tcp, http int) []string {
		args := []string{"-tcp-address", ":" + strconv.Itoa(tcp), "-http-address", ":" + strconv.Itoa(http)}
		for _, l := range lookupds {
			args = append(args, "--lookupd-tcp-address="+l.TCPAddr)
		}
		args = append(args, "-data-path=./"+sub)
		return append(args, extra...)
	})
}

// ---------------------------------------------------------------------------
// HTTP.

// clCurl runs curl with args as a seed writes them and returns its stdout;
// without a curl binary it sends the same request (-s, -d, -X) with net/http.
func clCurl(t *testing.T, args ...string) string {
	t.Helper()
	if path, err := exec.LookPath("curl"); err == nil {
		cmd := exec.CommandContext(t.Context(), path, args...)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return string(out)
	}
	method, u := http.MethodGet, ""
	var body []byte
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-s":
		case "-d":
			i++
			body = []byte(args[i])
			if method == http.MethodGet {
				method = http.MethodPost
			}
		case "-X":
			i++
			method = args[i]
		default:
			u = args[i]
		}
	}
	_, out := nsqtest.HTTP(t, method, u, body)
	return out
}

// clPOST sends POST http://addr+pathQuery and fails the test unless it
// answers 200 with the given body.
func clPOST(t *testing.T, addr, pathQuery, want string) {
	t.Helper()
	status, body := nsqtest.HTTP(t, http.MethodPost, "http://"+addr+pathQuery, nil)
	if status != http.StatusOK || body != want {
		t.Fatalf("POST http://%s%s = %d %q, want 200 %q", addr, pathQuery, status, body, want)
	}
}

// clPub publishes body to topic on nsqd's HTTP /pub.
func clPub(t *testing.T, nsqdHTTP, topic, body string) {
	t.Helper()
	status, out := nsqtest.HTTP(t, http.MethodPost, "http://"+nsqdHTTP+"/pub?topic="+url.QueryEscape(topic), []byte(body))
	if status != http.StatusOK || out != "OK" {
		t.Fatalf("POST http://%s/pub?topic=%s = %d %q, want 200 OK", nsqdHTTP, topic, status, out)
	}
}

// clProducer is a producer object of lookupd's /lookup and /nodes.
type clProducer struct {
	RemoteAddress    string   `json:"remote_address"`
	Hostname         string   `json:"hostname"`
	BroadcastAddress string   `json:"broadcast_address"`
	TCPPort          int      `json:"tcp_port"`
	HTTPPort         int      `json:"http_port"`
	Version          string   `json:"version"`
	Tombstones       []bool   `json:"tombstones"` // /nodes only
	Topics           []string `json:"topics"`     // /nodes only
}

// addr is broadcast_address:tcp_port, where go-nsq connects.
func (p clProducer) addr() string {
	return net.JoinHostPort(p.BroadcastAddress, strconv.Itoa(p.TCPPort))
}

type clLookupResp struct {
	Channels  []string     `json:"channels"`
	Producers []clProducer `json:"producers"`
}

// clGetJSON GETs http://addr+pathQuery; on 200 it decodes the body into v.
// It returns the status and the body.
func clGetJSON(t *testing.T, addr, pathQuery string, v any) (int, string) {
	t.Helper()
	status, body := nsqtest.HTTP(t, http.MethodGet, "http://"+addr+pathQuery, nil)
	if status == http.StatusOK && v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET http://%s%s: %v in %q", addr, pathQuery, err, body)
		}
	}
	return status, body
}

// clLookup returns GET /lookup?topic=topic: the status, the decoded
// response (zero unless 200) and the raw body.
func clLookup(t *testing.T, lookupdHTTP, topic string) (int, clLookupResp, string) {
	t.Helper()
	var r clLookupResp
	status, body := clGetJSON(t, lookupdHTTP, "/lookup?topic="+url.QueryEscape(topic), &r)
	return status, r, body
}

// clLookupAddrs returns the sorted broadcast_address:tcp_port of the
// producers in /lookup?topic=topic (nil when the topic is unknown).
func clLookupAddrs(t *testing.T, lookupdHTTP, topic string) ([]string, string) {
	t.Helper()
	_, r, body := clLookup(t, lookupdHTTP, topic)
	return clAddrs(r.Producers), body
}

func clAddrs(ps []clProducer) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.addr())
	}
	slices.Sort(out)
	return out
}

// clNodes returns the producers of GET /nodes.
func clNodes(t *testing.T, lookupdHTTP string) ([]clProducer, string) {
	t.Helper()
	var r struct {
		Producers []clProducer `json:"producers"`
	}
	status, body := clGetJSON(t, lookupdHTTP, "/nodes", &r)
	if status != http.StatusOK {
		t.Fatalf("GET http://%s/nodes = %d %q, want 200", lookupdHTTP, status, body)
	}
	return r.Producers, body
}

// clTopics returns GET /topics.
func clTopics(t *testing.T, lookupdHTTP string) []string {
	t.Helper()
	var r struct {
		Topics []string `json:"topics"`
	}
	if status, body := clGetJSON(t, lookupdHTTP, "/topics", &r); status != http.StatusOK {
		t.Fatalf("GET http://%s/topics = %d %q, want 200", lookupdHTTP, status, body)
	}
	return r.Topics
}

// clChannels returns GET /channels?topic=topic.
func clChannels(t *testing.T, lookupdHTTP, topic string) []string {
	t.Helper()
	var r struct {
		Channels []string `json:"channels"`
	}
	if status, body := clGetJSON(t, lookupdHTTP, "/channels?topic="+url.QueryEscape(topic), &r); status != http.StatusOK {
		t.Fatalf("GET http://%s/channels?topic=%s = %d %q, want 200", lookupdHTTP, topic, status, body)
	}
	return r.Channels
}

// clDebug returns GET /debug: registration key → producer ids.
func clDebug(t *testing.T, lookupdHTTP string) map[string][]string {
	t.Helper()
	var r map[string][]struct {
		ID string `json:"id"`
	}
	if status, body := clGetJSON(t, lookupdHTTP, "/debug", &r); status != http.StatusOK {
		t.Fatalf("GET http://%s/debug = %d %q, want 200", lookupdHTTP, status, body)
	}
	out := map[string][]string{}
	for k, ps := range r {
		for _, p := range ps {
			out[k] = append(out[k], p.ID)
		}
	}
	return out
}

// clSorted returns a sorted copy.
func clSorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// clWait polls cond until it returns true and fails the test if that takes
// longer than timeout, reporting the last state cond described. It returns
// how long it took. It polls every 20ms for the first second and every
// 100ms after that, to keep the daemons' request logs short.
func clWait(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, state)
		}
		if time.Since(start) < time.Second {
			time.Sleep(20 * time.Millisecond)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// clWaitLookup waits until /lookup?topic=topic on every lookupd lists exactly
// the producers want (broadcast_address:tcp_port) and returns the time it took.
func clWaitLookup(t *testing.T, timeout time.Duration, lookupds []*clDaemon, topic string, want ...string) time.Duration {
	t.Helper()
	want = clSorted(want)
	return clWait(t, timeout, fmt.Sprintf("/lookup?topic=%s producers = %v on every lookupd", topic, want), func() (bool, string) {
		for _, l := range lookupds {
			got, body := clLookupAddrs(t, l.HTTPAddr, topic)
			if !slices.Equal(got, want) {
				return false, fmt.Sprintf("lookupd %s: %s", l.HTTPAddr, body)
			}
		}
		return true, ""
	})
}

// ---------------------------------------------------------------------------
// go-nsq consumer.

// clConsumer is a go-nsq consumer whose handler sends every body to got.
type clConsumer struct {
	*nsq.Consumer
	got chan string
}

// clNewConsumer returns a consumer of topic/channel with the config of seed
// 001's program, polling lookupd every second; it is stopped when the test
// ends.
func clNewConsumer(t *testing.T, topic, channel string) *clConsumer {
	t.Helper()
	config := nsq.NewConfig()
	config.MaxInFlight = 1000
	config.MaxBackoffDuration = 5 * time.Second
	config.DialTimeout = 10 * time.Second
	config.LookupdPollInterval = time.Second
	c, err := nsq.NewConsumer(topic, channel, config)
	if err != nil {
		t.Fatalf("NewConsumer(%q, %q): %v", topic, channel, err)
	}
	c.SetLogger(nsqtest.ClientLogger(t), nsq.LogLevelInfo)
	cc := &clConsumer{Consumer: c, got: make(chan string, 1000)}
	c.AddHandler(nsq.HandlerFunc(func(m *nsq.Message) error {
		cc.got <- string(m.Body)
		return nil
	}))
	t.Cleanup(func() {
		c.Stop()
		select {
		case <-c.StopChan:
		case <-time.After(5 * time.Second):
			t.Logf("consumer %s/%s still stopping after 5s", topic, channel)
		}
	})
	return cc
}

// waitConns waits until the consumer has n nsqd connections.
func (c *clConsumer) waitConns(t *testing.T, timeout time.Duration, n int, what string) time.Duration {
	t.Helper()
	return clWait(t, timeout, fmt.Sprintf("%d consumer connection(s) (%s)", n, what), func() (bool, string) {
		got := c.Stats().Connections
		return got == n, fmt.Sprintf("%d connections", got)
	})
}

// expect fails the test unless the bodies want (in any order, each once)
// arrive within timeout.
func (c *clConsumer) expect(t *testing.T, timeout time.Duration, want ...string) {
	t.Helper()
	pending := slices.Clone(want)
	deadline := time.After(timeout)
	for len(pending) > 0 {
		select {
		case b := <-c.got:
			i := slices.Index(pending, b)
			if i < 0 {
				t.Fatalf("received %q, want one of %q", b, pending)
			}
			pending = slices.Delete(pending, i, i+1)
		case <-deadline:
			t.Fatalf("not received within %v: %q (of %q)", timeout, pending, want)
		}
	}
}

// ---------------------------------------------------------------------------
// Raw V1 connections to lookupd.

// clV1 is a raw connection to lookupd's TCP port.
type clV1 struct {
	t    *testing.T
	conn *net.TCPConn
	r    *bufio.Reader
}

// clDialV1 connects to addr and sends magic (normally "  V1").
func clDialV1(t *testing.T, addr, magic string) *clV1 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &clV1{t: t, conn: conn.(*net.TCPConn), r: bufio.NewReader(conn)}
	c.write([]byte(magic))
	return c
}

func (c *clV1) write(b []byte) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write %q: %v", b, err)
	}
}

// identifyBody is the IDENTIFY body nsqd sends, for a producer that
// announces 127.0.0.1:tcpPort/httpPort.
func clIdentifyBody(tcpPort, httpPort int) []byte {
	b, _ := json.Marshal(map[string]any{
		"broadcast_address": "127.0.0.1", "hostname": "raw-v1-client",
		"tcp_port": tcpPort, "http_port": httpPort, "version": "1.3.0",
	})
	return b
}

// identify sends IDENTIFY with body.
func (c *clV1) identify(body []byte) {
	c.t.Helper()
	b := binary.BigEndian.AppendUint32([]byte("IDENTIFY\n"), uint32(len(body)))
	c.write(append(b, body...))
}

// read reads one response: [4-byte size][payload].
func (c *clV1) read() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var sz [4]byte
	if _, err := io.ReadFull(c.r, sz[:]); err != nil {
		return "", err
	}
	n := binary.BigEndian.Uint32(sz[:])
	if n > 1<<20 {
		return "", fmt.Errorf("response size %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// expect reads one response and fails the test unless it is want.
func (c *clV1) expect(what, want string) {
	c.t.Helper()
	got, err := c.read()
	if err != nil {
		c.t.Fatalf("%s: reading the response: %v, want %q", what, err, want)
	}
	if got != want {
		c.t.Fatalf("%s: response %q, want %q", what, got, want)
	}
}

// expectClosed fails the test unless lookupd closes the connection without
// sending anything more.
func (c *clV1) expectClosed(what string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := c.r.ReadByte()
	switch {
	case err == nil:
		rest, _ := c.r.Peek(c.r.Buffered())
		c.t.Fatalf("%s: got more data %q, want the connection closed", what, append([]byte{b}, rest...))
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.t.Fatalf("%s: connection still open after 5s, want it closed after the error", what)
	}
}

// ---------------------------------------------------------------------------
// 1. Seed 001's cluster.

// Seed 001: two lookupds, two nsqds registered with both, a consumer
// discovering them through ConnectToNSQLookupds; a third nsqd started later
// and given the topic with curl is found at the next poll; an nsqd killed
// with SIGKILL leaves /lookup and the consumer carries on with the others.
//
//	./nsqlookupd -tcp-address ":8200" -http-address ":8201"
//	./nsqlookupd -tcp-address ":7200" -http-address ":7201"
//	./nsqd -tcp-address ":8000" -http-address ":8001" --lookupd-tcp-address=127.0.0.1:8200 --lookupd-tcp-address=127.0.0.1:7200 -data-path=./a
//	./nsqd -tcp-address ":7000" -http-address ":7001" --lookupd-tcp-address=127.0.0.1:8200 --lookupd-tcp-address=127.0.0.1:7200 -data-path=./b
//	./nsqd -tcp-address ":6000" -http-address ":6001" --lookupd-tcp-address=127.0.0.1:8200 --lookupd-tcp-address=127.0.0.1:7200 -data-path=./c
//	curl -X POST 'http://127.0.0.1:6001/topic/create?topic=testTopic1'
//
// The nsqds also get --broadcast-address=127.0.0.1 so that the consumer
// connects back whatever the host name resolves to.
func TestClusterSeed001(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lk1 := clSeedLookupd(t, dir)
	lk2 := clSeedLookupd(t, dir)
	lookupds := []*clDaemon{lk1, lk2}
	a := clSeedNSQD(t, dir, "a", lookupds, "--broadcast-address=127.0.0.1")
	b := clSeedNSQD(t, dir, "b", lookupds, "--broadcast-address=127.0.0.1")

	// The topic exists on both nsqds (the seed had published to it).
	for _, n := range []*clDaemon{a, b} {
		if out := clCurl(t, "-X", "POST", "http://"+n.HTTPAddr+"/topic/create?topic=testTopic1"); out != "" {
			t.Fatalf("curl -X POST /topic/create printed %q, want nothing", out)
		}
	}
	clWaitLookup(t, 10*time.Second, lookupds, "testTopic1", a.TCPAddr, b.TCPAddr)

	// The seed's consumer program: adds := []string{"127.0.0.1:7201", "127.0.0.1:8201"}.
	c := clNewConsumer(t, "testTopic1", "ch1")
	adds := []string{lk2.HTTPAddr, lk1.HTTPAddr}
	if err := c.ConnectToNSQLookupds(adds); err != nil {
		t.Fatalf("ConnectToNSQLookupds(%v): %v", adds, err)
	}
	c.waitConns(t, 10*time.Second, 2, "both nsqds discovered through lookupd")
	clPub(t, a.HTTPAddr, "testTopic1", "from a")
	clPub(t, b.HTTPAddr, "testTopic1", "from b")
	c.expect(t, 10*time.Second, "from a", "from b")

	// A third nsqd joins; the operator creates the topic on it with curl.
	cn := clSeedNSQD(t, dir, "c", lookupds, "--broadcast-address=127.0.0.1")
	if out := clCurl(t, "-X", "POST", "http://127.0.0.1:"+strconv.Itoa(cn.HTTPPort)+"/topic/create?topic=testTopic1"); out != "" {
		t.Fatalf("curl -X POST 'http://127.0.0.1:%d/topic/create?topic=testTopic1' printed %q, want nothing", cn.HTTPPort, out)
	}
	clWaitLookup(t, 10*time.Second, lookupds, "testTopic1", a.TCPAddr, b.TCPAddr, cn.TCPAddr)
	took := c.waitConns(t, 10*time.Second, 3, "the third nsqd found at the next lookupd poll (1s)")
	t.Logf("consumer connected to the third nsqd %v after /lookup listed it", took)
	clPub(t, cn.HTTPAddr, "testTopic1", "from c")
	c.expect(t, 10*time.Second, "from c")

	// nsqd a dies without a word.
	a.Kill()
	took = clWaitLookup(t, 10*time.Second, lookupds, "testTopic1", b.TCPAddr, cn.TCPAddr)
	t.Logf("nsqd killed with SIGKILL left /lookup after %v", took)
	c.waitConns(t, 10*time.Second, 2, "the connection to the killed nsqd dropped")
	for i := range 5 {
		clPub(t, b.HTTPAddr, "testTopic1", fmt.Sprintf("b after kill %d", i))
		clPub(t, cn.HTTPAddr, "testTopic1", fmt.Sprintf("c after kill %d", i))
		c.expect(t, 10*time.Second, fmt.Sprintf("b after kill %d", i), fmt.Sprintf("c after kill %d", i))
	}
	// Later polls still find only the live nsqds.
	time.Sleep(1500 * time.Millisecond) // > one lookupd poll interval
	if got := c.Stats().Connections; got != 2 {
		t.Errorf("consumer has %d connections after another poll, want 2", got)
	}
}

// ---------------------------------------------------------------------------
// 2. Seed 003's cluster.

// Seed 003: one nsqlookupd, three nsqds on 0.0.0.0 ports registered with it;
// /nodes lists the three with their topics.
//
//	nsqd -tcp-address="0.0.0.0:4150" -http-address="0.0.0.0:4151" -lookupd-tcp-address="127.0.0.1:4160"
//	nsqd -tcp-address="0.0.0.0:4250" -http-address="0.0.0.0:4251" -lookupd-tcp-address="127.0.0.1:4160"
//	nsqd -tcp-address="0.0.0.0:4350" -http-address="0.0.0.0:4351" -lookupd-tcp-address="127.0.0.1:4160"
//
// The shell removes the double quotes, so nsqd sees -tcp-address=0.0.0.0:4150.
func TestClusterSeed003Nodes(t *testing.T) {
	t.Parallel()
	lk := clStart(t, t.TempDir(), "nsqlookupd", func(tcp, http int) []string {
		return []string{fmt.Sprintf("-tcp-address=0.0.0.0:%d", tcp), fmt.Sprintf("-http-address=0.0.0.0:%d", http)}
	})
	var nodes []*clDaemon
	for range 3 {
		nodes = append(nodes, clStart(t, t.TempDir(), "nsqd", func(tcp, http int) []string {
			return []string{
				fmt.Sprintf("-tcp-address=0.0.0.0:%d", tcp),
				fmt.Sprintf("-http-address=0.0.0.0:%d", http),
				"-lookupd-tcp-address=" + lk.TCPAddr,
			}
		}))
	}
	// The seed's producer publishes to 'topic'; each node also gets its own.
	want := map[int][]string{} // tcp port → topics
	for i, n := range nodes {
		own := fmt.Sprintf("node%d", i)
		clPub(t, n.HTTPAddr, "topic", "hello")
		clPub(t, n.HTTPAddr, own, "hello")
		want[n.TCPPort] = []string{own, "topic"}
	}
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	clWait(t, 10*time.Second, "/nodes to list the three nsqds with their topics", func() (bool, string) {
		ps, body := clNodes(t, lk.HTTPAddr)
		if len(ps) != 3 {
			return false, body
		}
		for _, p := range ps {
			topics, ok := want[p.TCPPort]
			if !ok || !slices.Equal(clSorted(p.Topics), topics) {
				return false, body
			}
		}
		return true, ""
	})
	ps, body := clNodes(t, lk.HTTPAddr)
	for _, p := range ps {
		var n *clDaemon
		for _, nd := range nodes {
			if nd.TCPPort == p.TCPPort {
				n = nd
			}
		}
		// No --broadcast-address: nsqd announces the OS host name.
		if p.BroadcastAddress != hostname || p.Hostname != hostname || p.HTTPPort != n.HTTPPort || p.Version != "1.3.0" {
			t.Errorf("/nodes producer %+v, want broadcast_address and hostname %q, http_port %d, version 1.3.0", p, hostname, n.HTTPPort)
		}
		if len(p.Tombstones) != len(p.Topics) || slices.Contains(p.Tombstones, true) {
			t.Errorf("/nodes producer tombstones %v for topics %v, want one false per topic", p.Tombstones, p.Topics)
		}
		if host, _, err := net.SplitHostPort(p.RemoteAddress); err != nil || host != "127.0.0.1" {
			t.Errorf("/nodes producer remote_address %q, want 127.0.0.1:<port>", p.RemoteAddress)
		}
	}
	if t.Failed() {
		t.Logf("GET /nodes: %s", body)
	}
	_, r, body := clLookup(t, lk.HTTPAddr, "topic")
	if len(r.Producers) != 3 {
		t.Errorf("GET /lookup?topic=topic = %s, want three producers", body)
	}
	if got := clSorted(clTopics(t, lk.HTTPAddr)); !slices.Equal(got, []string{"node0", "node1", "node2", "topic"}) {
		t.Errorf("GET /topics = %q, want node0 node1 node2 topic", got)
	}
}

// ---------------------------------------------------------------------------
// 3. Restarting nsqlookupd.

// nsqlookupd forgets everything when restarted; every nsqd reconnects,
// IDENTIFYs and registers all its topics and channels again, and /lookup is
// whole again. nsqd notices the closed connection at once and reconnects
// every second, so this takes about a second (NSQ: 15 to 30 s).
func TestClusterLookupdRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lk := clSeedLookupd(t, dir, "--broadcast-address=127.0.0.1")
	var nodes []*clDaemon
	for _, sub := range []string{"a", "b", "c"} {
		nodes = append(nodes, clSeedNSQD(t, dir, sub, []*clDaemon{lk}, "--broadcast-address=127.0.0.1"))
	}
	// Every nsqd: topic shared with channels c1 and c2, and a topic of its own
	// without channels.
	var all []string
	for i, n := range nodes {
		clPOST(t, n.HTTPAddr, "/topic/create?topic=shared", "")
		clPOST(t, n.HTTPAddr, "/channel/create?topic=shared&channel=c1", "")
		clPOST(t, n.HTTPAddr, "/channel/create?topic=shared&channel=c2", "")
		clPOST(t, n.HTTPAddr, fmt.Sprintf("/topic/create?topic=own%d", i), "")
		all = append(all, n.TCPAddr)
	}
	whole := func() (bool, string) {
		_, r, body := clLookup(t, lk.HTTPAddr, "shared")
		if !slices.Equal(clAddrs(r.Producers), clSorted(all)) || !slices.Equal(clSorted(r.Channels), []string{"c1", "c2"}) {
			return false, "/lookup?topic=shared: " + body
		}
		for i, n := range nodes {
			got, body := clLookupAddrs(t, lk.HTTPAddr, fmt.Sprintf("own%d", i))
			if !slices.Equal(got, []string{n.TCPAddr}) {
				return false, fmt.Sprintf("/lookup?topic=own%d: %s", i, body)
			}
		}
		ps, body := clNodes(t, lk.HTTPAddr)
		if len(ps) != len(nodes) {
			return false, "/nodes: " + body
		}
		return true, ""
	}
	clWait(t, 10*time.Second, "/lookup whole before the restart", whole)

	lk.restart(t)
	if status, _, body := clLookup(t, lk.HTTPAddr, "shared"); status != http.StatusNotFound {
		// Not an error: an nsqd may have reconnected already.
		t.Logf("right after the restart GET /lookup?topic=shared = %d %s", status, body)
	}
	// nsqd notices the closed connection and reconnects every second (NSQ
	// waits for its next 15 s PING), so a few seconds are enough.
	took := clWait(t, 8*time.Second, "every nsqd to re-register after the lookupd restart", whole)
	t.Logf("/lookup whole again %v after the lookupd restart", took)
}

// ---------------------------------------------------------------------------
// 4. Tombstones.

// /topic/tombstone hides one producer of one topic from /lookup for
// --tombstone-lifetime (shown as true in /nodes tombstones); afterwards it is
// listed again. A topic tombstoned, deleted on its nsqd and on lookupd (what
// nsqadmin does) comes back in /topics and /lookup when it is published again
// after the tombstone ended.
func TestClusterTombstone(t *testing.T) {
	t.Parallel()
	const lifetime = 2 * time.Second
	dir := t.TempDir()
	lk := clSeedLookupd(t, dir, "--tombstone-lifetime="+lifetime.String(), "--broadcast-address=127.0.0.1")
	lookupds := []*clDaemon{lk}
	a := clSeedNSQD(t, dir, "a", lookupds, "--broadcast-address=127.0.0.1")
	b := clSeedNSQD(t, dir, "b", lookupds, "--broadcast-address=127.0.0.1")
	clPub(t, a.HTTPAddr, "tomb", "x")
	clPub(t, b.HTTPAddr, "tomb", "x")
	clPub(t, a.HTTPAddr, "other", "x")
	clWaitLookup(t, 10*time.Second, lookupds, "tomb", a.TCPAddr, b.TCPAddr)
	clWaitLookup(t, 10*time.Second, lookupds, "other", a.TCPAddr)

	node := fmt.Sprintf("127.0.0.1:%d", a.HTTPPort) // broadcast_address:http_port
	clPOST(t, lk.HTTPAddr, "/topic/tombstone?topic=tomb&node="+node, "")
	tombstoned := time.Now()
	if got, body := clLookupAddrs(t, lk.HTTPAddr, "tomb"); !slices.Equal(got, []string{b.TCPAddr}) {
		t.Errorf("after /topic/tombstone?topic=tomb&node=%s: GET /lookup?topic=tomb = %s, want only %s", node, body, b.TCPAddr)
	}
	if got, body := clLookupAddrs(t, lk.HTTPAddr, "other"); !slices.Equal(got, []string{a.TCPAddr}) {
		t.Errorf("tombstone of topic tomb changed /lookup?topic=other = %s, want %s", body, a.TCPAddr)
	}
	ps, body := clNodes(t, lk.HTTPAddr)
	found := false
	for _, p := range ps {
		if p.TCPPort != a.TCPPort {
			continue
		}
		found = true
		for i, topic := range p.Topics {
			if i < len(p.Tombstones) && p.Tombstones[i] != (topic == "tomb") {
				t.Errorf("/nodes: tombstoned nsqd has tombstones %v for topics %v, want true for tomb only", p.Tombstones, p.Topics)
			}
		}
	}
	if !found {
		t.Errorf("GET /nodes = %s, want the tombstoned nsqd still listed", body)
	}

	took := clWaitLookup(t, lifetime+5*time.Second, lookupds, "tomb", a.TCPAddr, b.TCPAddr)
	hidden := time.Since(tombstoned)
	t.Logf("tombstoned producer listed again after %v (lifetime %v)", hidden, lifetime)
	if hidden < lifetime-100*time.Millisecond {
		t.Errorf("tombstoned producer back in /lookup after %v (polled %v), want hidden for --tombstone-lifetime=%v", hidden, took, lifetime)
	}

	// nsqadmin's flow: tombstone, delete the topic on the nsqd and on lookupd.
	clPub(t, a.HTTPAddr, "gone", "x")
	clWaitLookup(t, 10*time.Second, lookupds, "gone", a.TCPAddr)
	clPOST(t, lk.HTTPAddr, "/topic/tombstone?topic=gone&node="+node, "")
	tombstoned = time.Now()
	clPOST(t, a.HTTPAddr, "/topic/delete?topic=gone", "")
	clPOST(t, lk.HTTPAddr, "/topic/delete?topic=gone", "")
	clWait(t, 10*time.Second, "topic gone to leave /topics and /lookup", func() (bool, string) {
		status, _, body := clLookup(t, lk.HTTPAddr, "gone")
		topics := clTopics(t, lk.HTTPAddr)
		return status == http.StatusNotFound && !slices.Contains(topics, "gone"),
			fmt.Sprintf("/lookup?topic=gone = %d %s; /topics = %q", status, body, topics)
	})
	time.Sleep(time.Until(tombstoned.Add(lifetime + 100*time.Millisecond))) // the tombstone ends
	clPub(t, a.HTTPAddr, "gone", "again")
	clWaitLookup(t, 5*time.Second, lookupds, "gone", a.TCPAddr)
	if topics := clTopics(t, lk.HTTPAddr); !slices.Contains(topics, "gone") {
		t.Errorf("GET /topics = %q after publishing to gone again, want it listed", topics)
	}
}

// ---------------------------------------------------------------------------
// 5. Deleting topics and channels on nsqd.

// Deleting a channel or a topic on nsqd over HTTP unregisters it from every
// lookupd; an ephemeral channel (and an ephemeral topic) unregisters when
// its last consumer leaves and nsqd deletes it.
func TestClusterDeleteUnregisters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lk1 := clSeedLookupd(t, dir, "--broadcast-address=127.0.0.1")
	lk2 := clSeedLookupd(t, dir, "--broadcast-address=127.0.0.1")
	lookupds := []*clDaemon{lk1, lk2}
	n := clSeedNSQD(t, dir, "a", lookupds, "--broadcast-address=127.0.0.1")
	clPOST(t, n.HTTPAddr, "/topic/create?topic=del", "")
	clPOST(t, n.HTTPAddr, "/channel/create?topic=del&channel=c1", "")
	clPOST(t, n.HTTPAddr, "/channel/create?topic=del&channel=c2", "")
	clPOST(t, n.HTTPAddr, "/topic/create?topic=keep", "")

	// debugHas reports whether every lookupd's /debug lists the nsqd under
	// each key of has, and no producer under any key of gone.
	debugHas := func(has []string, gone []string) (bool, string) {
		for _, l := range lookupds {
			d := clDebug(t, l.HTTPAddr)
			for _, k := range has {
				if len(d[k]) != 1 {
					return false, fmt.Sprintf("lookupd %s /debug[%q] = %q, want one producer", l.HTTPAddr, k, d[k])
				}
			}
			for _, k := range gone {
				if len(d[k]) != 0 {
					return false, fmt.Sprintf("lookupd %s /debug[%q] = %q, want no producer", l.HTTPAddr, k, d[k])
				}
			}
		}
		return true, ""
	}
	clWait(t, 10*time.Second, "topic del with channels c1, c2 registered on both lookupds", func() (bool, string) {
		return debugHas([]string{"topic:del:", "channel:del:c1", "channel:del:c2", "topic:keep:"}, nil)
	})

	clPOST(t, n.HTTPAddr, "/channel/delete?topic=del&channel=c1", "")
	clWait(t, 10*time.Second, "channel del/c1 unregistered from both lookupds", func() (bool, string) {
		return debugHas([]string{"topic:del:", "channel:del:c2", "topic:keep:"}, []string{"channel:del:c1"})
	})

	clPOST(t, n.HTTPAddr, "/topic/delete?topic=del", "")
	clWait(t, 10*time.Second, "topic del unregistered from both lookupds", func() (bool, string) {
		return debugHas([]string{"topic:keep:"}, []string{"topic:del:", "channel:del:c1", "channel:del:c2"})
	})
	for _, l := range lookupds {
		// The keys remain (non-ephemeral) with no producers.
		status, r, body := clLookup(t, l.HTTPAddr, "del")
		if status != http.StatusOK || len(r.Producers) != 0 || r.Producers == nil {
			t.Errorf("lookupd %s: GET /lookup?topic=del = %d %s, want 200 with \"producers\":[]", l.HTTPAddr, status, body)
		}
		ps, body := clNodes(t, l.HTTPAddr)
		if len(ps) != 1 || !slices.Equal(ps[0].Topics, []string{"keep"}) {
			t.Errorf("lookupd %s: GET /nodes = %s, want the nsqd with topics [keep]", l.HTTPAddr, body)
		}
	}

	// Ephemeral channel of a normal topic, and an ephemeral topic.
	c1 := clNewConsumer(t, "eph", "tail#ephemeral")
	c2 := clNewConsumer(t, "tmp#ephemeral", "c#ephemeral")
	for _, c := range []*clConsumer{c1, c2} {
		if err := c.ConnectToNSQD(n.TCPAddr); err != nil {
			t.Fatalf("ConnectToNSQD: %v", err)
		}
	}
	clWait(t, 10*time.Second, "ephemeral channels registered on both lookupds", func() (bool, string) {
		for _, l := range lookupds {
			ch1, ch2 := clChannels(t, l.HTTPAddr, "eph"), clChannels(t, l.HTTPAddr, "tmp#ephemeral")
			if !slices.Equal(ch1, []string{"tail#ephemeral"}) || !slices.Equal(ch2, []string{"c#ephemeral"}) {
				return false, fmt.Sprintf("lookupd %s: /channels?topic=eph %q, ?topic=tmp#ephemeral %q", l.HTTPAddr, ch1, ch2)
			}
		}
		return true, ""
	})
	for _, c := range []*clConsumer{c1, c2} {
		c.Stop()
		<-c.StopChan
	}
	clWait(t, 10*time.Second, "ephemeral channel and topic gone from both lookupds", func() (bool, string) {
		for _, l := range lookupds {
			ch1, ch2 := clChannels(t, l.HTTPAddr, "eph"), clChannels(t, l.HTTPAddr, "tmp#ephemeral")
			topics := clTopics(t, l.HTTPAddr)
			if len(ch1) != 0 || len(ch2) != 0 || slices.Contains(topics, "tmp#ephemeral") || !slices.Contains(topics, "eph") {
				return false, fmt.Sprintf("lookupd %s: /channels?topic=eph %q, ?topic=tmp#ephemeral %q, /topics %q", l.HTTPAddr, ch1, ch2, topics)
			}
		}
		return true, ""
	})
}

// ---------------------------------------------------------------------------
// 6. Inactive producers.

// A producer that sends nothing for --inactive-producer-timeout is left out of
// /lookup and /nodes (still in /debug, still connected); a PING brings it
// back.
func TestClusterInactiveProducer(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	lk := clSeedLookupd(t, t.TempDir(), "--inactive-producer-timeout="+timeout.String())
	c := clDialV1(t, lk.TCPAddr, "  V1")
	c.identify(clIdentifyBody(4150, 4151))
	identified := time.Now()
	if _, err := c.read(); err != nil {
		t.Fatalf("IDENTIFY: %v", err)
	}
	c.write([]byte("REGISTER silent\n"))
	c.expect("REGISTER silent", "OK")
	want := []string{"127.0.0.1:4150"}
	if got, body := clLookupAddrs(t, lk.HTTPAddr, "silent"); !slices.Equal(got, want) && time.Since(identified) < timeout {
		t.Fatalf("GET /lookup?topic=silent = %s right after REGISTER, want producer %v", body, want)
	}

	took := clWait(t, timeout+5*time.Second, "the silent producer to leave /lookup", func() (bool, string) {
		got, body := clLookupAddrs(t, lk.HTTPAddr, "silent")
		return len(got) == 0, body
	})
	silent := time.Since(identified)
	t.Logf("silent producer left /lookup %v after IDENTIFY (polled %v)", silent, took)
	if silent < timeout-100*time.Millisecond {
		t.Errorf("silent producer left /lookup %v after IDENTIFY, want not before --inactive-producer-timeout=%v", silent, timeout)
	}
	if ps, body := clNodes(t, lk.HTTPAddr); len(ps) != 0 {
		t.Errorf("GET /nodes = %s, want the inactive producer left out", body)
	}
	if d := clDebug(t, lk.HTTPAddr); len(d["topic:silent:"]) != 1 {
		t.Errorf("GET /debug[topic:silent:] = %q, want the inactive producer still registered", d["topic:silent:"])
	}

	c.write([]byte("PING\n"))
	c.expect("PING", "OK")
	if got, body := clLookupAddrs(t, lk.HTTPAddr, "silent"); !slices.Equal(got, want) {
		t.Errorf("GET /lookup?topic=silent = %s after PING, want producer %v again", body, want)
	}
}

// ---------------------------------------------------------------------------
// 7. Bad input over TCP.

// Every protocol error of the reference gets its exact payload and closes
// the connection (and drops what that connection registered); lookupd keeps
// serving a real nsqd all along.
func TestClusterLookupdBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lk := clSeedLookupd(t, dir, "--broadcast-address=127.0.0.1")
	lookupds := []*clDaemon{lk}
	n := clSeedNSQD(t, dir, "a", lookupds, "--broadcast-address=127.0.0.1")
	clPub(t, n.HTTPAddr, "good", "x")
	clWaitLookup(t, 10*time.Second, lookupds, "good", n.TCPAddr)

	identifyBody := clIdentifyBody(14150, 14151)
	raw := "127.0.0.1:14150"
	cases := []struct {
		name     string
		magic    string // "" for "  V1"
		identify bool   // valid IDENTIFY and REGISTER good first
		send     func(c *clV1)
		want     string
	}{
		{"wrong magic", "  V2", false, func(c *clV1) {}, "E_BAD_PROTOCOL"},
		{"unknown command", "", false, func(c *clV1) { c.write([]byte("FOO bar\n")) }, "E_INVALID invalid command FOO"},
		{"lower-case command", "", false, func(c *clV1) { c.write([]byte("ping\n")) }, "E_INVALID invalid command ping"},
		{"REGISTER before IDENTIFY", "", false, func(c *clV1) { c.write([]byte("REGISTER good\n")) }, "E_INVALID client must IDENTIFY"},
		{"UNREGISTER before IDENTIFY", "", false, func(c *clV1) { c.write([]byte("UNREGISTER good c\n")) }, "E_INVALID client must IDENTIFY"},
		{"IDENTIFY not JSON", "", false, func(c *clV1) { c.identify([]byte("{not json")) }, "E_BAD_BODY IDENTIFY failed to decode JSON body"},
		{"IDENTIFY missing fields", "", false, func(c *clV1) { c.identify([]byte(`{"broadcast_address":"127.0.0.1","tcp_port":1}`)) }, "E_BAD_BODY IDENTIFY missing fields"},
		{"IDENTIFY without size", "", false, func(c *clV1) {
			c.write([]byte("IDENTIFY\n\x00\x00"))
			c.conn.CloseWrite()
		}, "E_BAD_BODY IDENTIFY failed to read body size"},
		{"IDENTIFY short body", "", false, func(c *clV1) {
			c.write(append(binary.BigEndian.AppendUint32([]byte("IDENTIFY\n"), 100), `{"broadcast`...))
			c.conn.CloseWrite()
		}, "E_BAD_BODY IDENTIFY failed to read body"},
		{"IDENTIFY again", "", true, func(c *clV1) { c.identify(identifyBody) }, "E_INVALID cannot IDENTIFY again"},
		{"REGISTER bad topic", "", true, func(c *clV1) { c.write([]byte("REGISTER bad*t\n")) }, "E_BAD_TOPIC REGISTER topic name 'bad*t' is not valid"},
		{"REGISTER bad channel", "", true, func(c *clV1) { c.write([]byte("REGISTER good b*d\n")) }, "E_BAD_CHANNEL REGISTER channel name 'b*d' is not valid"},
		{"REGISTER no topic", "", true, func(c *clV1) { c.write([]byte("REGISTER\n")) }, "E_INVALID REGISTER insufficient number of params"},
		{"UNREGISTER no topic", "", true, func(c *clV1) { c.write([]byte("UNREGISTER\n")) }, "E_INVALID UNREGISTER insufficient number of params"},
		{"UNREGISTER bad topic", "", true, func(c *clV1) { c.write([]byte("UNREGISTER bad*t\n")) }, "E_BAD_TOPIC UNREGISTER topic name 'bad*t' is not valid"},
		{"UNREGISTER bad channel", "", true, func(c *clV1) { c.write([]byte("UNREGISTER good b*d\n")) }, "E_BAD_CHANNEL UNREGISTER channel name 'b*d' is not valid"},
		{"unknown command after IDENTIFY", "", true, func(c *clV1) { c.write([]byte("SUB good c\n")) }, "E_INVALID invalid command SUB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			magic := cmp.Or(tc.magic, "  V1")
			c := clDialV1(t, lk.TCPAddr, magic)
			if tc.identify {
				c.identify(identifyBody)
				resp, err := c.read()
				if err != nil || !strings.HasPrefix(resp, "{") {
					t.Fatalf("IDENTIFY: response %q, %v; want JSON", resp, err)
				}
				c.write([]byte("REGISTER good\n"))
				c.expect("REGISTER good", "OK")
				clWaitLookup(t, 5*time.Second, lookupds, "good", n.TCPAddr, raw)
			}
			tc.send(c)
			c.expect(tc.name, tc.want)
			c.expectClosed(tc.name)
			// The closed connection's registrations are gone; the nsqd's stay.
			clWaitLookup(t, 5*time.Second, lookupds, "good", n.TCPAddr)
		})
	}

	// Not errors: PING before IDENTIFY, a padded command line, and a
	// complete session.
	t.Run("valid session", func(t *testing.T) {
		c := clDialV1(t, lk.TCPAddr, "  V1")
		c.write([]byte("PING\n"))
		c.expect("PING before IDENTIFY", "OK")
		c.write([]byte("  PING  \r\n"))
		c.expect(`"  PING  \r\n"`, "OK")
		c.identify(identifyBody)
		resp, err := c.read()
		if err != nil {
			t.Fatalf("IDENTIFY: %v", err)
		}
		var info struct {
			BroadcastAddress string `json:"broadcast_address"`
			TCPPort          int    `json:"tcp_port"`
			HTTPPort         int    `json:"http_port"`
			Version          string `json:"version"`
		}
		if err := json.Unmarshal([]byte(resp), &info); err != nil || info.BroadcastAddress != "127.0.0.1" ||
			info.TCPPort != lk.TCPPort || info.HTTPPort != lk.HTTPPort || info.Version != "1.3.0" {
			t.Errorf("IDENTIFY response %s, want broadcast_address 127.0.0.1, tcp_port %d, http_port %d, version 1.3.0", resp, lk.TCPPort, lk.HTTPPort)
		}
		c.write([]byte("REGISTER good ch\n"))
		c.expect("REGISTER good ch", "OK")
		clWaitLookup(t, 5*time.Second, lookupds, "good", n.TCPAddr, raw)
		c.write([]byte("UNREGISTER good\n"))
		c.expect("UNREGISTER good", "OK")
		clWaitLookup(t, 5*time.Second, lookupds, "good", n.TCPAddr)
	})

	// The nsqd is still served: a new topic registers and is found.
	clPub(t, n.HTTPAddr, "after", "x")
	clWaitLookup(t, 10*time.Second, lookupds, "after", n.TCPAddr)
	if ps, body := clNodes(t, lk.HTTPAddr); len(ps) != 1 || ps[0].TCPPort != n.TCPPort {
		t.Errorf("GET /nodes = %s, want only the nsqd", body)
	}
}

// Package nsqtest helps end-to-end tests drive the project's binaries: it
// builds them once, runs daemons on free loopback ports with private data
// directories, speaks the raw V2 protocol, reads /stats and polls for
// conditions with a deadline.
//
// Every helper takes the test, fails it instead of returning errors, and
// cleans up what it started when the test ends.
package nsqtest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Timeouts used by the helpers. The machines that run the tests are small and
// shared, so they are generous; a healthy daemon needs a fraction of them.
const (
	startTimeout = 20 * time.Second // process start until /ping answers OK
	stopTimeout  = 30 * time.Second // signal until the process has exited
	ioTimeout    = 10 * time.Second // one raw-protocol read or write
)

// binDir holds the binaries built by Build.
var binDir string

// Build compiles the packages matching patterns (relative to the module root,
// such as "./cmd/...") into a new temporary directory, where Binary and
// StartNSQD find them. Patterns whose first directory does not exist are
// left out, so "./apps/..." may be passed before any app is written. The
// returned function removes the directory. Build is meant for TestMain.
func Build(patterns ...string) (cleanup func(), err error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return nil, errors.New("not inside a Go module")
	}
	root := filepath.Dir(gomod)

	var pkgs []string
	for _, p := range patterns {
		first := strings.SplitN(strings.TrimPrefix(filepath.ToSlash(p), "./"), "/", 2)[0]
		if _, err := os.Stat(filepath.Join(root, first)); err == nil {
			pkgs = append(pkgs, p)
		}
	}
	dir, err := os.MkdirTemp("", "nsqtest-bin-")
	if err != nil {
		return nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	if len(pkgs) > 0 {
		cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			cleanup()
			return nil, fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
		}
	}
	binDir = dir
	return cleanup, nil
}

// Binary returns the path of the built binary name. It skips the test under
// -short (end-to-end tests are slow) and when no such binary was built, so a
// test of a daemon that is not written yet skips instead of failing.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped under -short")
	}
	if binDir == "" {
		t.Fatal("nsqtest: no binaries; call nsqtest.Build from TestMain")
	}
	path := filepath.Join(binDir, name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s is not built (no cmd/%s or apps/%s yet)", name, name, name)
	}
	return path
}

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // handed out by FreePort in this process
)

// FreePort returns a loopback TCP port that was free a moment ago and that
// this process has not handed out before.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("FreePort: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		portsMu.Lock()
		seen := ports[port]
		ports[port] = true
		portsMu.Unlock()
		if !seen {
			return port
		}
	}
	t.Fatal("FreePort: no unused port after 100 tries")
	return 0
}

// FreeAddr returns "127.0.0.1:<FreePort>".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// Eventually polls cond every 10ms until it returns true, and fails the test
// if that takes longer than timeout. msg says what was awaited. cond runs on
// the test's goroutine, so it may itself fail the test.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Process is a running binary started by Start. It is stopped with SIGTERM
// (then SIGKILL) when the test ends if the test has not stopped it.
type Process struct {
	Name string // base name of the binary, for messages

	t       testing.TB
	cmd     *exec.Cmd
	out     *tailBuffer
	exited  chan struct{} // closed once the process has exited and its output is drained
	stopped atomic.Bool   // the test stopped it and judges its exit status
}

// Start runs the binary name (see Binary) with args in dir ("" for the
// current directory). Its stdout and stderr go to the test log.
func Start(t testing.TB, dir, name string, args ...string) *Process {
	t.Helper()
	path := Binary(t, name)
	p := &Process{Name: name, t: t, out: &tailBuffer{max: 64 << 10}, exited: make(chan struct{})}
	p.cmd = exec.CommandContext(t.Context(), path, args...)
	p.cmd.Dir = dir
	// The test's context ends just before its cleanups run: ask for a clean
	// exit first; exec kills the process if it has not exited by WaitDelay.
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(syscall.SIGTERM) }
	p.cmd.WaitDelay = stopTimeout
	w := io.MultiWriter(t.Output(), p.out) // one writer: exec then uses one pipe for both
	p.cmd.Stdout, p.cmd.Stderr = w, w
	t.Logf("starting %s %s", name, strings.Join(args, " "))
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { // waited for by the cleanup below
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if p.stopped.Load() {
			<-p.exited
			return
		}
		p.cmd.Process.Signal(syscall.SIGTERM) // also sent by cmd.Cancel; harmless twice
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("%s did not exit within %v of SIGTERM at the end of the test; killed", name, stopTimeout)
			return
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited with status %d (SIGTERM at the end of the test, or it died earlier)", name, code)
		}
	})
	return p
}

// Stop sends sig, waits for the process to exit and returns its exit status
// (-1 if a signal killed it). It fails the test if the process does not exit
// in time.
func (p *Process) Stop(sig os.Signal) int {
	p.t.Helper()
	p.stopped.Store(true)
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("signal %s: %v", p.Name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Fatalf("%s did not exit within %v of %v; killed", p.Name, stopTimeout, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Signal sends sig without waiting; the test then judges the exit status
// itself (Stop, or Exited and ExitCode).
func (p *Process) Signal(sig os.Signal) {
	p.t.Helper()
	p.stopped.Store(true)
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("signal %s: %v", p.Name, err)
	}
}

// ExitCode is the exit status of a process that has exited (see Exited).
func (p *Process) ExitCode() int {
	<-p.exited
	return p.cmd.ProcessState.ExitCode()
}

// Kill kills the process with SIGKILL and waits for it to exit.
func (p *Process) Kill() {
	p.stopped.Store(true)
	p.cmd.Process.Kill()
	<-p.exited
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Output returns the last 64 KiB the process wrote to stdout and stderr.
func (p *Process) Output() string { return p.out.String() }

// WaitPing waits until GET http://httpAddr/ping answers 200 "OK" (or nsqd's
// 500 "NOK - ...": serving, but unhealthy, as on a damaged data path), and
// fails the test if p exits first or it takes too long.
func WaitPing(t testing.TB, p *Process, httpAddr string) {
	t.Helper()
	if err := waitPing(p, httpAddr); err != nil {
		t.Fatal(err)
	}
}

func waitPing(p *Process, httpAddr string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get("http://" + httpAddr + "/ping")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "OK" ||
				resp.StatusCode == http.StatusInternalServerError && strings.HasPrefix(string(body), "NOK - ") {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited with status %d before GET /ping answered OK:\n%s",
				p.Name, p.cmd.ProcessState.ExitCode(), p.Output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET http://%s/ping did not answer 200 OK within %v", httpAddr, startTimeout)
		}
	}
}

// NSQD is an nsqd started by StartNSQD.
type NSQD struct {
	*Process
	TCPAddr  string // 127.0.0.1:port
	HTTPAddr string // 127.0.0.1:port
	DataPath string
}

// StartNSQD runs the built nsqd with --tcp-address and --http-address on free
// loopback ports and --data-path=t.TempDir(), followed by args. When args set
// --data-path=DIR (to restart on an earlier nsqd's DataPath), that is used. It
// returns once GET /ping answers. If the ports were taken in the meantime
// it retries on new ones. An unhealthy nsqd (/ping 500 "NOK - ...") counts
// as started.
func StartNSQD(t testing.TB, args ...string) *NSQD {
	t.Helper()
	dataPath := ""
	for _, a := range args {
		for _, prefix := range []string{"--data-path=", "-data-path="} {
			if v, ok := strings.CutPrefix(a, prefix); ok {
				dataPath = v
			}
		}
	}
	var dataArg []string
	if dataPath == "" {
		dataPath = t.TempDir()
		dataArg = []string{"--data-path=" + dataPath}
	}
	for attempt := 1; ; attempt++ {
		n := &NSQD{TCPAddr: FreeAddr(t), HTTPAddr: FreeAddr(t), DataPath: dataPath}
		full := append([]string{"--tcp-address=" + n.TCPAddr, "--http-address=" + n.HTTPAddr}, dataArg...)
		full = append(full, args...)
		n.Process = Start(t, "", "nsqd", full...)
		err := waitPing(n.Process, n.HTTPAddr)
		if err == nil {
			return n
		}
		n.Kill() // if it is still running, it is not answering
		if attempt < 5 && strings.Contains(n.Output(), "address already in use") {
			t.Logf("nsqd lost a port race; retrying on other ports")
			continue
		}
		t.Fatal(err)
	}
}

// URL returns "http://<HTTPAddr><pathQuery>".
func (n *NSQD) URL(pathQuery string) string { return "http://" + n.HTTPAddr + pathQuery }

// Stats returns GET /stats?format=json.
func (n *NSQD) Stats(t testing.TB) *Stats {
	t.Helper()
	status, body := HTTP(t, http.MethodGet, n.URL("/stats?format=json"), nil)
	if status != http.StatusOK {
		t.Fatalf("GET /stats?format=json: status %d, body %q", status, body)
	}
	var s Stats
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("GET /stats?format=json: %v in %q", err, body)
	}
	return &s
}

// Channel returns the stats of topic/channel, or nil when it does not exist.
func (n *NSQD) Channel(t testing.TB, topic, channel string) *ChannelStats {
	t.Helper()
	return n.Stats(t).Topic(topic).Channel(channel)
}

// HTTP sends a request with body (nil for none) and returns the status code
// and the body. A transport error fails the test.
func HTTP(t testing.TB, method, url string, body []byte) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	client := &http.Client{Timeout: ioTimeout}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

// Stats is nsqd's GET /stats?format=json, the fields tests look at.
type Stats struct {
	Version   string        `json:"version"`
	Health    string        `json:"health"`
	StartTime int64         `json:"start_time"`
	Topics    []TopicStats  `json:"topics"`
	Producers []ClientStats `json:"producers"`
	// HealthConditions is an addition to NSQ's JSON.
	HealthConditions []HealthCondition `json:"health_conditions"`
}

// HealthCondition is one entry of Stats.HealthConditions.
type HealthCondition struct {
	Condition string `json:"condition"`
	OK        bool   `json:"ok"`
	Message   string `json:"message"`
}

// TopicStats is one topic in Stats.
type TopicStats struct {
	Name         string         `json:"topic_name"`
	Channels     []ChannelStats `json:"channels"`
	Depth        int64          `json:"depth"`
	BackendDepth int64          `json:"backend_depth"`
	// Damaged disk-queue data skipped (beyond NSQ; absent while zero).
	BackendSkippedRegions int64  `json:"backend_skipped_regions"`
	BackendSkippedBytes   int64  `json:"backend_skipped_bytes"`
	MessageCount          uint64 `json:"message_count"`
	MessageBytes          uint64 `json:"message_bytes"`
	Paused                bool   `json:"paused"`
}

// ChannelStats is one channel in TopicStats.
type ChannelStats struct {
	Name         string `json:"channel_name"`
	Depth        int64  `json:"depth"`
	BackendDepth int64  `json:"backend_depth"`
	// Damaged disk-queue data skipped (beyond NSQ; absent while zero).
	BackendSkippedRegions int64         `json:"backend_skipped_regions"`
	BackendSkippedBytes   int64         `json:"backend_skipped_bytes"`
	InFlightCount         int           `json:"in_flight_count"`
	DeferredCount         int           `json:"deferred_count"`
	MessageCount          uint64        `json:"message_count"`
	RequeueCount          uint64        `json:"requeue_count"`
	TimeoutCount          uint64        `json:"timeout_count"`
	ClientCount           int           `json:"client_count"`
	Clients               []ClientStats `json:"clients"`
	Paused                bool          `json:"paused"`
}

// ClientStats is one connection in ChannelStats or Stats.Producers.
type ClientStats struct {
	ClientID      string `json:"client_id"`
	Hostname      string `json:"hostname"`
	Version       string `json:"version"`
	RemoteAddress string `json:"remote_address"`
	State         int    `json:"state"`
	ReadyCount    int64  `json:"ready_count"`
	InFlightCount int64  `json:"in_flight_count"`
	MessageCount  uint64 `json:"message_count"`
	FinishCount   uint64 `json:"finish_count"`
	RequeueCount  uint64 `json:"requeue_count"`
	UserAgent     string `json:"user_agent"`
}

// Topic returns the named topic, or nil.
func (s *Stats) Topic(name string) *TopicStats {
	for i := range s.Topics {
		if s.Topics[i].Name == name {
			return &s.Topics[i]
		}
	}
	return nil
}

// Channel returns the named channel, or nil (also when t is nil).
func (t *TopicStats) Channel(name string) *ChannelStats {
	if t == nil {
		return nil
	}
	for i := range t.Channels {
		if t.Channels[i].Name == name {
			return &t.Channels[i]
		}
	}
	return nil
}

// Frame types of nsqd's V2 protocol.
const (
	FrameTypeResponse int32 = 0
	FrameTypeError    int32 = 1
	FrameTypeMessage  int32 = 2
)

// V2Conn is a raw client connection to nsqd's TCP port, for sending exact
// bytes and checking exact frames. Reads and writes have a deadline.
type V2Conn struct {
	t    testing.TB
	Conn net.Conn
	r    *bufio.Reader
}

// Dial connects to addr without sending anything; the connection is closed
// when the test ends.
func Dial(t testing.TB, addr string) *V2Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &V2Conn{t: t, Conn: conn, r: bufio.NewReader(conn)}
}

// NewV2Conn wraps a connection the test made itself (in another network
// namespace, say); it is closed when the test ends.
func NewV2Conn(t testing.TB, conn net.Conn) *V2Conn {
	t.Cleanup(func() { conn.Close() })
	return &V2Conn{t: t, Conn: conn, r: bufio.NewReader(conn)}
}

// DialV2 connects to addr and sends the protocol magic "  V2".
func DialV2(t testing.TB, addr string) *V2Conn {
	t.Helper()
	c := Dial(t, addr)
	c.Write([]byte("  V2"))
	return c
}

// Write sends b as is.
func (c *V2Conn) Write(b []byte) {
	c.t.Helper()
	c.Conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Conn.Write(b); err != nil {
		c.t.Fatalf("write %q: %v", b, err)
	}
}

// Command sends line plus "\n" and, when body is given, the body prefixed
// with its 4-byte big-endian size (PUB, DPUB, IDENTIFY, AUTH).
func (c *V2Conn) Command(line string, body ...[]byte) {
	c.t.Helper()
	b := append([]byte(line), '\n')
	for _, p := range body {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	c.Write(b)
}

// ReadFrame reads one frame. Heartbeats are returned like any response.
func (c *V2Conn) ReadFrame() (frameType int32, data []byte, err error) {
	c.Conn.SetReadDeadline(time.Now().Add(ioTimeout))
	var hdr [8]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 || size > 64<<20 {
		return 0, nil, fmt.Errorf("bad frame size %d", size)
	}
	data = make([]byte, size-4)
	if _, err := io.ReadFull(c.r, data); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(hdr[4:])), data, nil
}

// Expect reads frames, skipping heartbeats, and fails the test unless the
// next one has the given type and data.
func (c *V2Conn) Expect(frameType int32, data string) {
	c.t.Helper()
	ft, got := c.next()
	if ft != frameType || string(got) != data {
		c.t.Fatalf("got frame type %d %q, want type %d %q", ft, got, frameType, data)
	}
}

// ExpectMessage reads the next frame, skipping heartbeats, and fails the
// test unless it is a message; it returns the message.
func (c *V2Conn) ExpectMessage() Message {
	c.t.Helper()
	ft, data := c.next()
	if ft != FrameTypeMessage {
		c.t.Fatalf("got frame type %d %q, want a message", ft, data)
	}
	m, err := DecodeMessage(data)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

func (c *V2Conn) next() (int32, []byte) {
	c.t.Helper()
	for {
		ft, data, err := c.ReadFrame()
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		if ft == FrameTypeResponse && string(data) == "_heartbeat_" {
			c.Write([]byte("NOP\n"))
			continue
		}
		return ft, data
	}
}

// ExpectClosed fails the test unless the server closes the connection
// (without sending anything more) within the I/O timeout.
func (c *V2Conn) ExpectClosed() {
	c.t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := c.r.ReadByte()
	switch {
	case err == nil:
		rest, _ := c.r.Peek(c.r.Buffered())
		c.t.Fatalf("got more data %q, want the connection closed", append([]byte{b}, rest...))
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.t.Fatalf("connection still open after %v, want it closed", ioTimeout)
	}
	// io.EOF or a reset: closed.
}

// Message is a decoded message frame.
type Message struct {
	Timestamp int64 // nanoseconds since the Unix epoch
	Attempts  uint16
	ID        string // 16 bytes
	Body      []byte
}

// DecodeMessage decodes the data of a message frame.
func DecodeMessage(data []byte) (Message, error) {
	if len(data) < 26 {
		return Message{}, fmt.Errorf("message frame of %d bytes, want at least 26", len(data))
	}
	return Message{
		Timestamp: int64(binary.BigEndian.Uint64(data[:8])),
		Attempts:  binary.BigEndian.Uint16(data[8:10]),
		ID:        string(data[10:26]),
		Body:      data[26:],
	}, nil
}

// ClientLogger returns a logger for go-nsq's SetLogger that writes to the
// test log until the test ends and discards afterwards: go-nsq's goroutines
// may outlive a test, and logging after it ended would panic.
func ClientLogger(t testing.TB) *TestLogger {
	l := &TestLogger{w: t.Output()}
	t.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

// TestLogger implements go-nsq's logger interface; see ClientLogger.
type TestLogger struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

// Output writes s as one line unless the test has ended.
func (l *TestLogger) Output(_ int, s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return nil
	}
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	_, err := io.WriteString(l.w, s)
	return err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if over := len(b.b) - b.max; over > 0 {
		b.b = append(b.b[:0], b.b[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

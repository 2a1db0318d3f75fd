package nsqd

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqio/go-nsq"
)

// testOptions returns options for a daemon on loopback with a private data
// dir, logging into the test log.
func testOptions(t testing.TB) *Options {
	t.Helper()
	o := NewOptions()
	o.TCPAddress, o.HTTPAddress, o.DataPath = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	o.Logger = nsqlog.New(testWriter{t}, "[nsqd] ", nsqlog.Warn.Slog())
	return o
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p[:len(p)-1])); return len(p), nil }

// startNSQD runs a daemon until the test ends.
func startNSQD(t testing.TB, o *Options) *NSQD {
	t.Helper()
	n, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return n
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: "+format, append([]any{d}, args...)...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawConn is a minimal V2 client for checking exact frames.
type rawConn struct {
	t testing.TB
	net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, n *NSQD) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", n.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Write([]byte("  V2"))
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(line string, body ...[]byte) {
	c.t.Helper()
	b := []byte(line + "\n")
	for _, x := range body {
		b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
		b = append(b, x...)
	}
	if _, err := c.Write(b); err != nil {
		c.t.Fatalf("write %q: %v", line, err)
	}
}

// readFrame returns the next non-heartbeat frame.
func (c *rawConn) readFrame() (int32, []byte) {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		size := binary.BigEndian.Uint32(hdr[:4])
		data := make([]byte, size-4)
		if _, err := io.ReadFull(c.r, data); err != nil {
			c.t.Fatalf("read frame body: %v", err)
		}
		ft := int32(binary.BigEndian.Uint32(hdr[4:]))
		if ft == 0 && string(data) == "_heartbeat_" {
			continue
		}
		return ft, data
	}
}

func (c *rawConn) expect(frameType int32, want string) {
	c.t.Helper()
	ft, data := c.readFrame()
	if ft != frameType || string(data) != want {
		c.t.Fatalf("frame = %d %q, want %d %q", ft, data, frameType, want)
	}
}

// expectClosed checks that the server closed the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadByte(); err != io.EOF {
		c.t.Fatalf("connection not closed: %v", err)
	}
}

type collector struct {
	mu   sync.Mutex
	msgs map[string]int
	n    int
}

func (h *collector) HandleMessage(m *nsq.Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msgs == nil {
		h.msgs = make(map[string]int)
	}
	h.msgs[string(m.Body)]++
	h.n++
	return nil
}

func (h *collector) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func newConsumer(t testing.TB, n *NSQD, topic, channel string, h nsq.Handler, cfgf func(*nsq.Config)) *nsq.Consumer {
	t.Helper()
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 100
	if cfgf != nil {
		cfgf(cfg)
	}
	c, err := nsq.NewConsumer(topic, channel, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetLogger(nil, nsq.LogLevelError)
	c.AddHandler(h)
	if err := c.ConnectToNSQD(n.TCPAddr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

func newProducer(t testing.TB, n *NSQD) *nsq.Producer {
	t.Helper()
	p, err := nsq.NewProducer(n.TCPAddr().String(), nsq.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	p.SetLogger(nil, nsq.LogLevelError)
	t.Cleanup(p.Stop)
	return p
}

func TestPubSubGoNSQ(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	p := newProducer(t, n)
	const total = 2000
	var bodies [][]byte
	for i := range total {
		bodies = append(bodies, fmt.Appendf(nil, "m%d", i))
	}
	// The backlog published before any channel exists goes to the channels
	// that exist when the first one appears.
	if err := p.MultiPublish("t1", bodies[:1000]); err != nil {
		t.Fatal(err)
	}
	topic, _ := n.GetExistingTopic("t1")
	topic.Pause()
	var a, b collector
	newConsumer(t, n, "t1", "a", &a, nil)
	newConsumer(t, n, "t1", "b", &b, nil)
	eventually(t, 5*time.Second, func() bool {
		st := n.Stats("t1", "", false)
		return len(st.Topics[0].Channels) == 2 && st.Topics[0].Channels[0].ClientCount == 1 && st.Topics[0].Channels[1].ClientCount == 1
	}, "two subscribed channels")
	topic.Unpause()
	eventually(t, 5*time.Second, func() bool { return a.count() == 1000 && b.count() == 1000 }, "a=%d b=%d", a.count(), b.count())
	for _, body := range bodies[1000:] {
		if err := p.Publish("t1", body); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() bool { return a.count() == total && b.count() == total }, "a=%d b=%d", a.count(), b.count())
	for _, h := range []*collector{&a, &b} {
		if len(h.msgs) != total {
			t.Errorf("distinct messages = %d, want %d", len(h.msgs), total)
		}
	}
}

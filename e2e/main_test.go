// Package e2e tests the built binaries from the outside, as users run them:
// flags, HTTP, the TCP protocol through go-nsq and raw sockets, /stats and
// exit codes. The tests are slow and skipped under -short.
package e2e

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqio/go-nsq"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips in nsqtest.Binary; nothing to build
	}
	cleanup, err := nsqtest.Build("./cmd/...", "./apps/...", "./bench/...")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// Helpers shared by the tests of this package.

// newProducer returns a go-nsq producer for addr, stopped when the test ends.
func newProducer(t *testing.T, addr string) *nsq.Producer {
	t.Helper()
	p, err := nsq.NewProducer(addr, nsq.NewConfig())
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	p.SetLogger(nsqtest.ClientLogger(t), nsq.LogLevelWarning)
	t.Cleanup(p.Stop)
	return p
}

// newConsumer returns a go-nsq consumer of topic/channel running h, not yet
// connected; it is stopped when the test ends. cfg nil means nsq.NewConfig().
func newConsumer(t *testing.T, topic, channel string, cfg *nsq.Config, h nsq.HandlerFunc) *nsq.Consumer {
	t.Helper()
	if cfg == nil {
		cfg = nsq.NewConfig()
	}
	c, err := nsq.NewConsumer(topic, channel, cfg)
	if err != nil {
		t.Fatalf("NewConsumer(%q, %q): %v", topic, channel, err)
	}
	c.SetLogger(nsqtest.ClientLogger(t), nsq.LogLevelWarning)
	c.AddHandler(h)
	t.Cleanup(func() {
		c.Stop()
		select {
		case <-c.StopChan:
		case <-time.After(5 * time.Second): // it waits for unanswered messages; nsqd's exit ends that
			t.Logf("consumer %s/%s still stopping after 5s", topic, channel)
		}
	})
	return c
}

// connect connects c to nsqd at addr.
func connect(t *testing.T, c *nsq.Consumer, addr string) {
	t.Helper()
	if err := c.ConnectToNSQD(addr); err != nil {
		t.Fatalf("ConnectToNSQD(%s): %v", addr, err)
	}
}

// waitClients waits until topic/channel exists on n with clients subscribers.
func waitClients(t *testing.T, n *nsqtest.NSQD, topic, channel string, clients int) {
	t.Helper()
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		ch := n.Channel(t, topic, channel)
		return ch != nil && ch.ClientCount == clients
	}, fmt.Sprintf("%d client(s) on %s/%s in /stats", clients, topic, channel))
}

// inbox records the bodies a handler received.
type inbox struct {
	mu     sync.Mutex
	counts map[string]int // body → deliveries
	total  int
	want   int
	full   chan struct{} // closed when total reaches want
}

func newInbox(want int) *inbox {
	return &inbox{counts: map[string]int{}, want: want, full: make(chan struct{})}
}

// handle is an nsq.HandlerFunc that records the body and finishes the message.
func (in *inbox) handle(m *nsq.Message) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.counts[string(m.Body)]++
	in.total++
	if in.total == in.want {
		close(in.full)
	}
	return nil
}

// wait fails the test unless want deliveries arrive within timeout.
func (in *inbox) wait(t *testing.T, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-in.full:
	case <-time.After(timeout):
		in.mu.Lock()
		defer in.mu.Unlock()
		t.Fatalf("%s: %d of %d deliveries after %v", what, in.total, in.want, timeout)
	}
}

// snapshot returns a copy of the counts and the total.
func (in *inbox) snapshot() (map[string]int, int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return maps.Clone(in.counts), in.total
}

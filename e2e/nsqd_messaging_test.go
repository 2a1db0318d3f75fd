package e2e

// Messaging semantics of nsqd seen through go-nsq v1.1.0 and raw sockets:
// fan-out, requeue, timeouts, TOUCH, deferred publishing, RDY, restarts,
// and protocol errors.

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqio/go-nsq"
)

// delivery is one message as a handler saw it.
type delivery struct {
	at       time.Time
	attempts uint16
	body     string
	msg      *nsq.Message
}

func record(m *nsq.Message) delivery {
	return delivery{at: time.Now(), attempts: m.Attempts, body: string(m.Body), msg: m}
}

// recv fails the test unless a delivery arrives on got within timeout.
func recv(t *testing.T, got <-chan delivery, timeout time.Duration, what string) delivery {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(timeout):
		t.Fatalf("no %s within %v", what, timeout)
		return delivery{}
	}
}

// publishBodies publishes bodies with MultiPublish in batches of batch.
func publishBodies(t *testing.T, p *nsq.Producer, topic string, bodies [][]byte, batch int) {
	t.Helper()
	for chunk := range slices.Chunk(bodies, batch) {
		if err := p.MultiPublish(topic, chunk); err != nil {
			t.Fatalf("MultiPublish(%q, %d messages): %v", topic, len(chunk), err)
		}
	}
}

func numberedBodies(prefix string, n int) [][]byte {
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, "%s%06d", prefix, i)
	}
	return bodies
}

// post sends POST path?query to n and fails the test unless it answers 200.
func post(t *testing.T, n *nsqtest.NSQD, pathQuery string) {
	t.Helper()
	if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL(pathQuery), nil); status != http.StatusOK {
		t.Fatalf("POST %s: status %d %s, want 200", pathQuery, status, body)
	}
}

// Every channel of a topic gets every message; consumers of one channel
// share its messages, none lost and none twice.
func TestFanOut(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	const topic, total = "fanout", 10000
	cfg := func() *nsq.Config {
		c := nsq.NewConfig()
		c.MaxInFlight = 200
		return c
	}

	a, b := newInbox(total), newInbox(total)
	connect(t, newConsumer(t, topic, "a", cfg(), a.handle), n.TCPAddr)
	connect(t, newConsumer(t, topic, "b", cfg(), b.handle), n.TCPAddr)
	shared := newInbox(total)
	var each [3]*inbox
	for i := range each {
		each[i] = newInbox(-1)
		connect(t, newConsumer(t, topic, "shared", cfg(), func(m *nsq.Message) error {
			each[i].handle(m)
			return shared.handle(m)
		}), n.TCPAddr)
	}
	waitClients(t, n, topic, "a", 1)
	waitClients(t, n, topic, "b", 1)
	waitClients(t, n, topic, "shared", 3)

	bodies := numberedBodies("msg-", total)
	publishBodies(t, newProducer(t, n.TCPAddr), topic, bodies, 500)

	for _, c := range []struct {
		name string
		in   *inbox
	}{{"channel a", a}, {"channel b", b}, {"channel shared", shared}} {
		c.in.wait(t, 2*time.Minute, c.name)
		counts, got := c.in.snapshot()
		if len(counts) != total || got != total {
			t.Errorf("%s: %d deliveries of %d distinct messages, want %d of %d", c.name, got, len(counts), total, total)
		}
		for _, body := range bodies {
			if k := counts[string(body)]; k != 1 {
				t.Errorf("%s: %s delivered %d times, want once", c.name, body, k)
				break
			}
		}
	}
	for i, in := range each {
		_, got := in.snapshot()
		t.Logf("shared consumer %d received %d messages", i, got)
	}

	nsqtest.Eventually(t, 10*time.Second, func() bool {
		tp := n.Stats(t).Topic(topic)
		for _, name := range []string{"a", "b", "shared"} {
			ch := tp.Channel(name)
			if ch == nil || ch.InFlightCount != 0 || ch.Depth != 0 {
				return false
			}
		}
		return true
	}, "every channel empty with nothing in flight")
	tp := n.Stats(t).Topic(topic)
	if tp.MessageCount != total {
		t.Errorf("topic message_count = %d, want %d", tp.MessageCount, total)
	}
	for _, ch := range tp.Channels {
		if ch.MessageCount != total {
			t.Errorf("channel %s message_count = %d, want %d", ch.Name, ch.MessageCount, total)
		}
	}
}

// REQ with a delay: the message comes back no earlier than the delay, with
// one more attempt.
func TestRequeueWithDelay(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	const delay = 800 * time.Millisecond
	got := make(chan delivery, 10)
	c := newConsumer(t, "req", "c", nil, func(m *nsq.Message) error {
		got <- record(m)
		if m.Attempts == 1 {
			m.DisableAutoResponse()
			m.RequeueWithoutBackoff(delay) // REQ <id> 800
		}
		return nil
	})
	connect(t, c, n.TCPAddr)
	if err := newProducer(t, n.TCPAddr).Publish("req", []byte("again")); err != nil {
		t.Fatal(err)
	}

	first := recv(t, got, 10*time.Second, "first delivery")
	second := recv(t, got, delay+10*time.Second, "redelivery after REQ")
	if second.body != "again" || second.attempts != first.attempts+1 {
		t.Errorf("redelivered %q with attempts %d, want %q with %d", second.body, second.attempts, "again", first.attempts+1)
	}
	if gap := second.at.Sub(first.at); gap < delay {
		t.Errorf("redelivered %v after REQ with delay %v, want no earlier", gap, delay)
	}
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		ch := n.Channel(t, "req", "c")
		return ch.InFlightCount == 0 && ch.RequeueCount == 1
	}, "requeue_count 1 and nothing in flight")
}

// A handler error makes go-nsq send REQ with its default delay times the
// attempts; nsqd redelivers no earlier.
func TestHandlerErrorRedelivers(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	cfg := nsq.NewConfig()
	cfg.DefaultRequeueDelay = 700 * time.Millisecond // REQ <id> 700 after the first attempt
	cfg.MaxBackoffDuration = 200 * time.Millisecond
	got := make(chan delivery, 10)
	c := newConsumer(t, "handler_error", "c", cfg, func(m *nsq.Message) error {
		got <- record(m)
		if m.Attempts == 1 {
			return errors.New("try again later")
		}
		return nil
	})
	connect(t, c, n.TCPAddr)
	if err := newProducer(t, n.TCPAddr).Publish("handler_error", []byte("flaky")); err != nil {
		t.Fatal(err)
	}

	first := recv(t, got, 10*time.Second, "first delivery")
	second := recv(t, got, 20*time.Second, "redelivery after a handler error")
	if first.attempts != 1 || second.attempts != 2 {
		t.Errorf("attempts %d then %d, want 1 then 2", first.attempts, second.attempts)
	}
	if gap := second.at.Sub(first.at); gap < cfg.DefaultRequeueDelay {
		t.Errorf("redelivered %v after the error, want no earlier than %v", gap, cfg.DefaultRequeueDelay)
	}
}

// A message that is neither finished nor requeued comes back after the
// message timeout, with one more attempt; a late FIN of the first delivery
// then fails without closing the connection.
func TestUnfinishedMessageTimesOut(t *testing.T) {
	const timeout = time.Second
	n := nsqtest.StartNSQD(t, "--msg-timeout=1s")
	got := make(chan delivery, 10)
	c := newConsumer(t, "timeout", "c", nil, func(m *nsq.Message) error {
		if m.Attempts == 1 {
			m.DisableAutoResponse() // never answered
		}
		got <- record(m)
		return nil
	})
	connect(t, c, n.TCPAddr)
	if err := newProducer(t, n.TCPAddr).Publish("timeout", []byte("slow")); err != nil {
		t.Fatal(err)
	}

	first := recv(t, got, 10*time.Second, "first delivery")
	second := recv(t, got, 20*time.Second, "redelivery after the message timeout")
	if second.body != "slow" || second.attempts != 2 {
		t.Errorf("redelivered %q with attempts %d, want %q with 2", second.body, second.attempts, "slow")
	}
	// The client saw the first delivery a little after nsqd started its
	// timer; allow for that transit time.
	if gap := second.at.Sub(first.at); gap < timeout-100*time.Millisecond {
		t.Errorf("redelivered %v after the first delivery, want no earlier than --msg-timeout=%v", gap, timeout)
	}
	first.msg.Finish() // E_FIN_FAILED (not fatal); settles go-nsq's in-flight count
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		ch := n.Channel(t, "timeout", "c")
		return ch.InFlightCount == 0 && ch.TimeoutCount == 1 && ch.ClientCount == 1
	}, "timeout_count 1, nothing in flight, the consumer still connected")
}

// TOUCH keeps a message in flight past its timeout.
func TestTouchExtendsTimeout(t *testing.T) {
	n := nsqtest.StartNSQD(t, "--msg-timeout=1s")
	got := make(chan delivery, 10)
	c := newConsumer(t, "touch", "c", nil, func(m *nsq.Message) error {
		m.DisableAutoResponse()
		got <- record(m)
		return nil
	})
	connect(t, c, n.TCPAddr)
	if err := newProducer(t, n.TCPAddr).Publish("touch", []byte("long job")); err != nil {
		t.Fatal(err)
	}

	first := recv(t, got, 10*time.Second, "first delivery")
	// Hold it for three timeouts, touching every 300ms.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		first.msg.Touch()
		select {
		case d := <-got:
			t.Fatalf("redelivered (attempts %d) %v after the first delivery although touched every 300ms",
				d.attempts, d.at.Sub(first.at))
		case <-time.After(300 * time.Millisecond):
		}
	}
	first.msg.Finish()
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		return n.Channel(t, "touch", "c").InFlightCount == 0
	}, "nothing in flight after FIN")
	if ch := n.Channel(t, "touch", "c"); ch.TimeoutCount != 0 || ch.MessageCount != 1 {
		t.Errorf("channel timeout_count %d, message_count %d; want 0 and 1", ch.TimeoutCount, ch.MessageCount)
	}
}

// A deferred publish is delivered no earlier than its delay, also when
// messages go straight to disk (our nsqd keeps the deliver-at time there;
// NSQ delivers such messages at once).
func TestDeferredPublish(t *testing.T) {
	for _, args := range [][]string{nil, {"--mem-queue-size=0"}} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			n := nsqtest.StartNSQD(t, args...)
			got := make(chan delivery, 10)
			c := newConsumer(t, "deferred", "c", nil, func(m *nsq.Message) error {
				got <- record(m)
				return nil
			})
			connect(t, c, n.TCPAddr)
			waitClients(t, n, "deferred", "c", 1)

			const delay = 1500 * time.Millisecond
			p := newProducer(t, n.TCPAddr)
			start := time.Now()
			if err := p.DeferredPublish("deferred", delay, []byte("later")); err != nil {
				t.Fatal(err)
			}
			if err := p.Publish("deferred", []byte("now")); err != nil {
				t.Fatal(err)
			}
			now := recv(t, got, 10*time.Second, "the plain message")
			if now.body != "now" {
				t.Errorf("first delivery %q, want %q (the deferred one must wait)", now.body, "now")
			}
			later := recv(t, got, delay+10*time.Second, "the deferred message")
			if later.body != "later" || later.attempts != 1 {
				t.Errorf("got %q with attempts %d, want %q with 1", later.body, later.attempts, "later")
			}
			if gap := later.at.Sub(start); gap < delay {
				t.Errorf("deferred message delivered %v after DPUB, want no earlier than %v", gap, delay)
			}
		})
	}
}

// nsqd never has more than RDY (go-nsq's MaxInFlight) messages in flight
// to a client, and /stats agrees with what the client holds.
func TestMaxInFlight(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	const maxInFlight, total = 5, 40
	var (
		mu   sync.Mutex
		held []*nsq.Message
	)
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = maxInFlight
	c := newConsumer(t, "mif", "c", cfg, func(m *nsq.Message) error {
		m.DisableAutoResponse()
		mu.Lock()
		held = append(held, m)
		mu.Unlock()
		return nil
	})
	connect(t, c, n.TCPAddr)
	waitClients(t, n, "mif", "c", 1)
	publishBodies(t, newProducer(t, n.TCPAddr), "mif", numberedBodies("m", total), total)
	holding := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(held)
	}

	for done := 0; done < total; {
		want := min(maxInFlight, total-done)
		nsqtest.Eventually(t, 10*time.Second, func() bool { return holding() >= want },
			fmt.Sprintf("%d unanswered messages at the client", want))
		ch := n.Channel(t, "mif", "c")
		if ch.InFlightCount != want {
			t.Errorf("channel in_flight_count = %d while the client holds %d", ch.InFlightCount, want)
		}
		if len(ch.Clients) != 1 {
			t.Fatalf("channel has %d clients in /stats, want 1", len(ch.Clients))
		}
		if cl := ch.Clients[0]; cl.InFlightCount != int64(want) || cl.ReadyCount != maxInFlight {
			t.Errorf("client in_flight_count %d, ready_count %d; want %d and %d", cl.InFlightCount, cl.ReadyCount, want, maxInFlight)
		}
		time.Sleep(200 * time.Millisecond) // give a wrong extra delivery time to show
		mu.Lock()
		msgs := held
		held = nil
		mu.Unlock()
		if len(msgs) > want {
			t.Fatalf("client holds %d unanswered messages, more than MaxInFlight %d", len(msgs), maxInFlight)
		}
		for _, m := range msgs {
			m.Finish()
		}
		done += len(msgs)
	}
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		ch := n.Channel(t, "mif", "c")
		return ch.InFlightCount == 0 && ch.Depth == 0 && ch.MessageCount == total
	}, "all messages finished")
}

// With --mem-queue-size=0 everything is on disk: 100,000 messages survive a
// SIGTERM and restart and are then each delivered exactly once.
func TestRestartDeliversDiskBacklogOnce(t *testing.T) {
	const topic, total = "backlog", 100000
	n := nsqtest.StartNSQD(t, "--mem-queue-size=0")
	post(t, n, "/topic/create?topic="+topic)
	post(t, n, "/channel/create?topic="+topic+"&channel=c")
	publishBodies(t, newProducer(t, n.TCPAddr), topic, numberedBodies("m", total), 1000)
	queued := func(n *nsqtest.NSQD) int64 {
		tp := n.Stats(t).Topic(topic)
		if tp == nil || tp.Channel("c") == nil {
			return -1
		}
		return tp.Depth + tp.Channel("c").Depth
	}
	nsqtest.Eventually(t, 30*time.Second, func() bool { return queued(n) == total },
		fmt.Sprintf("%d messages queued in topic and channel", total))
	if code := n.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsqd exited with status %d after SIGTERM, want 0", code)
	}

	n = nsqtest.StartNSQD(t, "--mem-queue-size=0", "--data-path="+n.DataPath)
	if got := queued(n); got != total {
		t.Errorf("after restart topic+channel depth = %d, want %d", got, total)
	}
	var (
		mu       sync.Mutex
		seen     = make([]uint8, total)
		distinct int
		extra    []string // duplicates and strangers
		all      = make(chan struct{})
	)
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 1000
	c := newConsumer(t, topic, "c", cfg, func(m *nsq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		i, err := strconv.Atoi(string(m.Body[1:]))
		if err != nil || i < 0 || i >= total || m.Body[0] != 'm' {
			extra = append(extra, string(m.Body))
			return nil
		}
		seen[i]++
		if seen[i] > 1 {
			extra = append(extra, string(m.Body))
			return nil
		}
		if distinct++; distinct == total {
			close(all)
		}
		return nil
	})
	connect(t, c, n.TCPAddr)
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d of %d messages delivered after restart within 5m", distinct, total)
	}
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		ch := n.Channel(t, topic, "c")
		return ch.Depth == 0 && ch.InFlightCount == 0 && ch.DeferredCount == 0
	}, "channel empty with nothing in flight or deferred")
	mu.Lock()
	defer mu.Unlock()
	if len(extra) > 0 {
		t.Errorf("%d unexpected deliveries (duplicates or unknown bodies), first: %q", len(extra), extra[:min(len(extra), 5)])
	}
}

// Messages in flight and deferred at SIGTERM survive a restart: the former
// come back with their attempts kept, the deferred ones still wait until
// their deliver-at time (NSQ would deliver them at once).
func TestRestartKeepsInFlightAndDeferred(t *testing.T) {
	const topic, delay = "survive", 5 * time.Second
	n := nsqtest.StartNSQD(t)
	held := make(chan delivery, 10)
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 3
	c := newConsumer(t, topic, "c", cfg, func(m *nsq.Message) error {
		m.DisableAutoResponse() // keep it in flight
		held <- record(m)
		return nil
	})
	connect(t, c, n.TCPAddr)
	waitClients(t, n, topic, "c", 1)

	p := newProducer(t, n.TCPAddr)
	publishBodies(t, p, topic, [][]byte{[]byte("ready-1"), []byte("ready-2"), []byte("ready-3"), []byte("ready-4"), []byte("ready-5")}, 5)
	start := time.Now()
	for _, body := range []string{"deferred-1", "deferred-2"} {
		if err := p.DeferredPublish(topic, delay, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	inFlight := map[string]*nsq.Message{}
	for range 3 {
		d := recv(t, held, 10*time.Second, "a message to hold")
		inFlight[d.body] = d.msg
	}
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		ch := n.Channel(t, topic, "c")
		return ch.InFlightCount == 3 && ch.Depth == 2 && ch.DeferredCount == 2
	}, "3 in flight, 2 queued and 2 deferred")

	if code := n.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsqd exited with status %d after SIGTERM, want 0", code)
	}
	for _, m := range inFlight {
		m.Finish() // the connection is gone; this lets go-nsq finish closing it
	}
	c.Stop()
	n = nsqtest.StartNSQD(t, "--data-path="+n.DataPath)
	if remaining := time.Until(start.Add(delay)); remaining > 500*time.Millisecond {
		ch := n.Channel(t, topic, "c")
		if ch == nil || ch.Depth != 5 || ch.DeferredCount != 2 || ch.InFlightCount != 0 {
			t.Errorf("after restart channel stats %+v, want depth 5 (3 former in-flight + 2 queued) and 2 deferred", ch)
		}
	} else {
		t.Logf("restart took until %v before the deferred messages were due; not checking /stats before delivery", -remaining)
	}

	got := make(chan delivery, 20)
	connect(t, newConsumer(t, topic, "c", nil, func(m *nsq.Message) error {
		got <- record(m)
		return nil
	}), n.TCPAddr)
	bodies := map[string]delivery{}
	for range 7 {
		d := recv(t, got, delay+20*time.Second, "a delivery after restart")
		if _, dup := bodies[d.body]; dup {
			t.Errorf("%q delivered twice after restart", d.body)
		}
		bodies[d.body] = d
	}
	for _, body := range []string{"ready-1", "ready-2", "ready-3", "ready-4", "ready-5", "deferred-1", "deferred-2"} {
		d, ok := bodies[body]
		if !ok {
			t.Errorf("%q not delivered after restart", body)
			continue
		}
		wantAttempts := uint16(1)
		if inFlight[body] != nil {
			wantAttempts = 2 // delivered once before the restart
		}
		if d.attempts != wantAttempts {
			t.Errorf("%q: attempts %d after restart, want %d", body, d.attempts, wantAttempts)
		}
		if strings.HasPrefix(body, "deferred") && d.at.Sub(start) < delay {
			t.Errorf("%q delivered %v after DPUB, want no earlier than its delay %v", body, d.at.Sub(start), delay)
		}
	}
	expectNoDelivery(t, got, 300*time.Millisecond)
}

func expectNoDelivery(t *testing.T, got <-chan delivery, d time.Duration) {
	t.Helper()
	select {
	case x := <-got:
		t.Errorf("unexpected extra delivery %q (attempts %d)", x.body, x.attempts)
	case <-time.After(d):
	}
}

// Topics, channels and their paused state are restored after a restart;
// ephemeral channels are not.
func TestRestartRestoresTopicsChannelsPaused(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	for _, pq := range []string{
		"/topic/create?topic=t1",
		"/topic/create?topic=t2",
		"/channel/create?topic=t1&channel=c1",
		"/channel/create?topic=t1&channel=c2",
		"/channel/create?topic=t2&channel=c3",
		"/channel/create?topic=t1&channel=" + url.QueryEscape("eph#ephemeral"),
		"/topic/pause?topic=t2",
		"/channel/pause?topic=t1&channel=c2",
	} {
		post(t, n, pq)
	}
	if code := n.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsqd exited with status %d after SIGTERM, want 0", code)
	}

	n = nsqtest.StartNSQD(t, "--data-path="+n.DataPath)
	s := n.Stats(t)
	type state struct {
		topic, channel string
		paused         bool
	}
	var got []state
	for _, tp := range s.Topics {
		got = append(got, state{tp.Name, "", tp.Paused})
		for _, ch := range tp.Channels {
			got = append(got, state{tp.Name, ch.Name, ch.Paused})
		}
	}
	want := []state{
		{"t1", "", false}, {"t1", "c1", false}, {"t1", "c2", true},
		{"t2", "", true}, {"t2", "c3", false},
	}
	if !slices.Equal(got, want) {
		t.Errorf("after restart /stats has (topic, channel, paused)\n%v\nwant\n%v", got, want)
	}
}

// Bad input over raw TCP gets NSQ's exact error frames; fatal ones close
// the connection, and other connections keep working.
func TestProtocolErrors(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	for _, tc := range []struct{ name, send, want string }{
		{"lower-case command", "pub t\n", "E_INVALID invalid command pub"},
		{"empty line", "\n", "E_INVALID invalid command "},
		{"invalid topic", "PUB bad*name\n", `E_BAD_TOPIC PUB topic name "bad*name" is not valid`},
		{"FIN before SUB", "FIN 0123456789abcdef\n", "E_INVALID cannot FIN in current state"},
		{"RDY before SUB", "RDY 10\n", "E_INVALID cannot RDY in current state"},
		{"SUB without channel", "SUB t\n", "E_INVALID SUB insufficient number of parameters"},
		{"invalid channel", "SUB t bad*ch\n", `E_BAD_CHANNEL SUB channel name "bad*ch" is not valid`},
		{"empty body", "PUB t\n\x00\x00\x00\x00", "E_BAD_MESSAGE PUB invalid message body size 0"},
		{"body too big", "PUB t\n\x00\x10\x00\x01", "E_BAD_MESSAGE PUB message too big 1048577 > 1048576"},
		{"negative defer", "DPUB t -5\n", "E_INVALID DPUB could not parse timeout -5"},
		{"defer too long", "DPUB t 3600001\n", "E_INVALID DPUB timeout 3600001 out of range 0-3600000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := nsqtest.DialV2(t, n.TCPAddr)
			c.Write([]byte(tc.send))
			c.Expect(nsqtest.FrameTypeError, tc.want)
			c.ExpectClosed()
		})
	}

	t.Run("bad magic", func(t *testing.T) {
		c := nsqtest.Dial(t, n.TCPAddr)
		c.Write([]byte("  V9"))
		c.Expect(nsqtest.FrameTypeError, "E_BAD_PROTOCOL")
		c.ExpectClosed()
	})

	t.Run("another connection still works", func(t *testing.T) {
		c := nsqtest.DialV2(t, n.TCPAddr)
		c.Command("PUB still_ok", []byte("hello"))
		c.Expect(nsqtest.FrameTypeResponse, "OK")
	})

	t.Run("FIN REQ TOUCH errors are not fatal", func(t *testing.T) {
		c := nsqtest.DialV2(t, n.TCPAddr)
		c.Command("SUB nonfatal c")
		c.Expect(nsqtest.FrameTypeResponse, "OK")
		c.Command("FIN 0123456789abcdef")
		c.Expect(nsqtest.FrameTypeError, "E_FIN_FAILED FIN 0123456789abcdef failed ID not in flight")
		c.Command("REQ 0123456789abcdef 0")
		c.Expect(nsqtest.FrameTypeError, "E_REQ_FAILED REQ 0123456789abcdef failed ID not in flight")
		c.Command("TOUCH 0123456789abcdef")
		c.Expect(nsqtest.FrameTypeError, "E_TOUCH_FAILED TOUCH 0123456789abcdef failed ID not in flight")

		c.Command("RDY 1")
		p := nsqtest.DialV2(t, n.TCPAddr)
		p.Command("PUB nonfatal", []byte("after errors"))
		p.Expect(nsqtest.FrameTypeResponse, "OK")
		m := c.ExpectMessage()
		if string(m.Body) != "after errors" || m.Attempts != 1 {
			t.Errorf("got message %q with attempts %d, want %q with 1", m.Body, m.Attempts, "after errors")
		}
		c.Command("FIN " + m.ID)
		c.Command("NOP")
		nsqtest.Eventually(t, 10*time.Second, func() bool {
			ch := n.Channel(t, "nonfatal", "c")
			return ch.InFlightCount == 0 && len(ch.Clients) == 1 && ch.Clients[0].FinishCount == 1
		}, "the FIN to be counted")
	})
}

// Our nsqd requeues a consumer's in-flight messages as soon as it
// disconnects (NSQ waits for the message timeout, 60s by default).
func TestDisconnectRequeuesInFlight(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	c1 := nsqtest.DialV2(t, n.TCPAddr)
	c1.Command("SUB gone c")
	c1.Expect(nsqtest.FrameTypeResponse, "OK")
	c1.Command("RDY 1")
	p := nsqtest.DialV2(t, n.TCPAddr)
	p.Command("PUB gone", []byte("orphan"))
	p.Expect(nsqtest.FrameTypeResponse, "OK")
	if m := c1.ExpectMessage(); string(m.Body) != "orphan" {
		t.Fatalf("got %q, want %q", m.Body, "orphan")
	}
	c1.Conn.Close()

	c2 := nsqtest.DialV2(t, n.TCPAddr)
	c2.Command("SUB gone c")
	c2.Expect(nsqtest.FrameTypeResponse, "OK")
	c2.Command("RDY 1")
	m := c2.ExpectMessage() // within the raw client's 10s read timeout
	if string(m.Body) != "orphan" || m.Attempts != 2 {
		t.Errorf("redelivered %q with attempts %d, want %q with 2", m.Body, m.Attempts, "orphan")
	}
}

// The pre-1.0 paths /put and /mput are aliases of /pub and /mpub.
func TestLegacyPutMPut(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	for _, tc := range []struct{ pathQuery, body string }{
		{"/put?topic=legacy", "one"},
		{"/mput?topic=legacy", "two\nthree\n"},
		{"/mput?topic=legacy&binary=true", "\x00\x00\x00\x01\x00\x00\x00\x04four"},
	} {
		status, body := nsqtest.HTTP(t, http.MethodPost, n.URL(tc.pathQuery), []byte(tc.body))
		if status != http.StatusOK || body != "OK" {
			t.Errorf("POST %s: %d %q, want 200 OK", tc.pathQuery, status, body)
		}
	}
	if tp := n.Stats(t).Topic("legacy"); tp == nil || tp.MessageCount != 4 {
		t.Errorf("topic legacy stats %+v, want message_count 4", tp)
	}
}

// Idle consumers of one channel take turns, as NSQ's do: two go-nsq
// consumers at MaxInFlight 1, a message every 100 ms, each gets half.
func TestIdleConsumersTakeTurns(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	const topic, total = "turns", 20
	cfg := func() *nsq.Config {
		c := nsq.NewConfig()
		c.MaxInFlight = 1
		return c
	}
	all := newInbox(total)
	var each [2]*inbox
	for i := range each {
		each[i] = newInbox(-1)
		connect(t, newConsumer(t, topic, "ch", cfg(), func(m *nsq.Message) error {
			each[i].handle(m)
			return all.handle(m)
		}), n.TCPAddr)
	}
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		ch := n.Channel(t, topic, "ch")
		if ch == nil || len(ch.Clients) != 2 {
			return false
		}
		for _, cl := range ch.Clients {
			if cl.ReadyCount != 1 {
				return false
			}
		}
		return true
	}, "two consumers on turns/ch, each with RDY 1")

	p := newProducer(t, n.TCPAddr)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range total {
		if err := p.Publish(topic, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		<-tick.C
	}
	all.wait(t, 10*time.Second, "deliveries")
	var got [2]int
	for i, in := range each {
		_, got[i] = in.snapshot()
	}
	t.Logf("consumers got %v of %d messages", got, total)
	for i, k := range got {
		if k < total/2-1 || k > total/2+1 {
			t.Errorf("consumer %d got %d of %d messages, want %d ± 1 (all: %v)", i, k, total, total/2, got)
		}
	}
}

package e2e

// Peek (README "Beyond NSQ"): GET /channel/peek lists queued, deferred and
// in-flight messages without consuming them; a go-nsq consumer then gets
// exactly what peek showed, in that order, with the same attempts.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

type peekMessage struct {
	ID        string `json:"id"`
	Attempts  int    `json:"attempts"`
	State     string `json:"state"`
	DeliverAt int64  `json:"deliver_at"`
	TimeoutAt int64  `json:"timeout_at"`
	ClientID  string `json:"client_id"`
	Body      string `json:"body"`
}

type peekResult struct {
	Depth         int64         `json:"depth"`
	InFlightCount int64         `json:"in_flight_count"`
	DeferredCount int64         `json:"deferred_count"`
	Messages      []peekMessage `json:"messages"`
}

func peekChannel(t *testing.T, n *nsqtest.NSQD, topic, channel string) peekResult {
	t.Helper()
	status, body := nsqtest.HTTP(t, http.MethodGet, n.URL("/channel/peek?topic="+topic+"&channel="+channel+"&n=1000"), nil)
	if status != http.StatusOK {
		t.Fatalf("GET /channel/peek = %d %q", status, body)
	}
	var r peekResult
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("GET /channel/peek: %v in %q", err, body)
	}
	return r
}

// recorder is a go-nsq handler that records deliveries in order; the first
// one waits until hold is closed.
type recorder struct {
	mu   sync.Mutex
	got  []peekMessage
	hold chan struct{}
}

func (r *recorder) handle(m *nsq.Message) error {
	r.mu.Lock()
	first := len(r.got) == 0
	r.got = append(r.got, peekMessage{ID: string(m.ID[:]), Attempts: int(m.Attempts), Body: string(m.Body)})
	r.mu.Unlock()
	if first && r.hold != nil {
		<-r.hold
	}
	return nil
}

func (r *recorder) deliveries() []peekMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]peekMessage(nil), r.got...)
}

func (r *recorder) waitFor(t *testing.T, k int) []peekMessage {
	t.Helper()
	nsqtest.Eventually(t, 20*time.Second, func() bool { return len(r.deliveries()) >= k }, fmt.Sprintf("%d deliveries", k))
	return r.deliveries()
}

// 1 in flight + 5 queued + 2 deferred: peek shows all eight with their
// states and changes nothing; the consumer then receives them in peek's
// order with attempts 1.
func TestPeekStates(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	const topic, channel = "peeked", "c"
	if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL("/pub?topic="+topic), []byte("held")); status != 200 {
		t.Fatalf("POST /pub = %d %q", status, body)
	}
	rec := &recorder{hold: make(chan struct{})}
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 1
	cons := newConsumer(t, topic, channel, cfg, rec.handle)
	connect(t, cons, n.TCPAddr)
	rec.waitFor(t, 1)

	p := newProducer(t, n.TCPAddr)
	for i := range 5 {
		if err := p.Publish(topic, fmt.Appendf(nil, "queued-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.DeferredPublish(topic, 3*time.Second, []byte("deferred-late")); err != nil {
		t.Fatal(err)
	}
	if err := p.DeferredPublish(topic, 2*time.Second, []byte("deferred-soon")); err != nil {
		t.Fatal(err)
	}

	statsBefore := n.Channel(t, topic, channel)
	res := peekChannel(t, n, topic, channel)
	statsAfter := n.Channel(t, topic, channel)
	statsBefore.Clients, statsAfter.Clients = nil, nil
	if !reflect.DeepEqual(statsBefore, statsAfter) {
		t.Errorf("/stats changed by peek:\n%+v\n%+v", statsBefore, statsAfter)
	}
	var states []string
	for _, m := range res.Messages {
		states = append(states, m.State+":"+m.Body)
	}
	want := "queued:queued-0 queued:queued-1 queued:queued-2 queued:queued-3 queued:queued-4 deferred:deferred-soon deferred:deferred-late in_flight:held"
	if strings.Join(states, " ") != want {
		t.Fatalf("peek = %s\nwant   %s", strings.Join(states, " "), want)
	}
	if res.Depth != 5 || res.InFlightCount != 1 || res.DeferredCount != 2 {
		t.Errorf("peek depth %d, in flight %d, deferred %d; want 5, 1, 2", res.Depth, res.InFlightCount, res.DeferredCount)
	}
	held := res.Messages[7]
	if first := rec.deliveries()[0]; held.ID != first.ID || held.Attempts != 1 || held.TimeoutAt == 0 {
		t.Errorf("in-flight message %+v, consumer holds %+v", held, first)
	}
	for _, m := range res.Messages[5:7] {
		if m.DeliverAt <= time.Now().UnixNano() || m.Attempts != 0 {
			t.Errorf("deferred message %+v", m)
		}
	}

	close(rec.hold)
	got := rec.waitFor(t, 8)
	for i, m := range res.Messages[:7] {
		d := got[i+1]
		if d.ID != m.ID || d.Body != m.Body || d.Attempts != m.Attempts+1 || d.Attempts != 1 {
			t.Errorf("delivery %d = %+v, peek showed %+v", i+1, d, m)
		}
	}
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		c := n.Channel(t, topic, channel)
		return c.InFlightCount == 0 && c.Depth == 0 && c.DeferredCount == 0
	}, "channel empty")
	if c := n.Channel(t, topic, channel); c.RequeueCount != 0 || c.TimeoutCount != 0 || c.MessageCount != 8 {
		t.Errorf("channel stats after consuming %+v", c)
	}
}

// With --mem-queue-size=0 peek reads the disk queue; a restart shows the
// same depth and the consumer gets the messages in peek's order.
func TestPeekDiskRestart(t *testing.T) {
	n := nsqtest.StartNSQD(t, "--mem-queue-size=0")
	const topic, channel = "ondisk", "c"
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "disk-%03d\n", i)
	}
	if status, _ := nsqtest.HTTP(t, http.MethodPost, n.URL("/topic/create?topic="+topic), nil); status != 200 {
		t.Fatal("topic/create failed")
	}
	if status, _ := nsqtest.HTTP(t, http.MethodPost, n.URL("/channel/create?topic="+topic+"&channel="+channel), nil); status != 200 {
		t.Fatal("channel/create failed")
	}
	if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL("/mpub?topic="+topic), []byte(b.String())); status != 200 {
		t.Fatalf("POST /mpub = %d %q", status, body)
	}
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		c := n.Channel(t, topic, channel)
		return c != nil && c.BackendDepth == 100
	}, "100 messages on disk")
	res := peekChannel(t, n, topic, channel)
	if len(res.Messages) != 100 {
		t.Fatalf("peek returned %d messages, want 100", len(res.Messages))
	}
	for i, m := range res.Messages {
		if want := fmt.Sprintf("disk-%03d", i); m.Body != want || m.State != "queued" {
			t.Fatalf("peek message %d = %+v, want %s queued", i, m, want)
		}
	}
	if c := n.Channel(t, topic, channel); c.Depth != 100 || c.BackendDepth != 100 {
		t.Errorf("after peek depth %d, backend_depth %d; want 100, 100", c.Depth, c.BackendDepth)
	}
	if code := n.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsqd exited %d", code)
	}

	n2 := nsqtest.StartNSQD(t, "--mem-queue-size=0", "--data-path="+n.DataPath)
	if c := n2.Channel(t, topic, channel); c == nil || c.Depth != 100 {
		t.Fatalf("after restart channel %+v, want depth 100", c)
	}
	if again := peekChannel(t, n2, topic, channel); !reflect.DeepEqual(again.Messages, res.Messages) {
		t.Errorf("peek after restart differs from before")
	}
	rec := &recorder{}
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 1
	cons := newConsumer(t, topic, channel, cfg, rec.handle)
	connect(t, cons, n2.TCPAddr)
	got := rec.waitFor(t, 100)
	for i, m := range res.Messages {
		if got[i].ID != m.ID || got[i].Attempts != 1 {
			t.Fatalf("delivery %d = %+v, peek showed %+v", i, got[i], m)
		}
	}
}

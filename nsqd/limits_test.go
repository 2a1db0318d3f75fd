package nsqd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqio/go-nsq"
)

// httpCall sends method path?query to n and returns the status and body.
func httpCall(t testing.TB, n *NSQD, method, pathQuery string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr().String()+pathQuery, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// setConfig POSTs /channel/config (channel != "") or /topic/config.
func setConfig(t testing.TB, n *NSQD, topic, channel string, kv ...string) ConfigResponse {
	t.Helper()
	q := url.Values{"topic": {topic}}
	path := "/topic/config"
	if channel != "" {
		q.Set("channel", channel)
		path = "/channel/config"
	}
	for i := 0; i < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	status, body := httpCall(t, n, "POST", path+"?"+q.Encode(), "")
	if status != 200 {
		t.Fatalf("POST %s?%s: %d %s", path, q.Encode(), status, body)
	}
	var r ConfigResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return r
}

func limStats(t testing.TB, n *NSQD, topic, channel string) ChannelStats {
	t.Helper()
	st := n.Stats(topic, channel, false)
	if len(st.Topics) != 1 || len(st.Topics[0].Channels) != 1 {
		t.Fatalf("no stats for %s:%s", topic, channel)
	}
	return st.Topics[0].Channels[0]
}

func mustChannel(t testing.TB, n *NSQD, topic, channel string) *Channel {
	t.Helper()
	tp, err := n.GetTopic(topic)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tp.GetChannel(channel)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Done-when 1: a channel with max_depth 100 takes 100 of 150 publishes
// through go-nsq and answers the other 50 with NSQ's E_PUB_FAILED naming the
// channel and its limit; an MPUB that would cross the limit enqueues
// nothing; HTTP answers 503.
func TestLimitsRejectGoNSQ(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	mustChannel(t, n, "lim", "c")
	r := setConfig(t, n, "lim", "c", "max_depth", "100")
	if r.Effective.MaxDepth != 100 || r.Effective.Source["max_depth"] != "channel" || r.Effective.Overflow != OverflowReject {
		t.Fatalf("effective = %+v", r.Effective)
	}
	var bodies [][]byte
	for i := range 150 {
		bodies = append(bodies, fmt.Appendf(nil, "m%d", i))
	}
	ok, errs := publishEach(t, n, "lim", bodies)
	const want = "E_PUB_FAILED PUB failed channel lim:c is full (max_depth 100)"
	if ok != 100 || len(errs) != 50 {
		t.Fatalf("published %d, failed %d (%q), want 100 and 50", ok, len(errs), errs)
	}
	for _, e := range errs {
		if e != want {
			t.Fatalf("error %q, want %q", e, want)
		}
	}
	cs := limStats(t, n, "lim", "c")
	if cs.Depth != 100 || cs.RejectedCount != 50 || cs.Config == nil || cs.DepthBytes == 0 {
		t.Errorf("stats depth=%d rejected=%d config=%v bytes=%d", cs.Depth, cs.RejectedCount, cs.Config, cs.DepthBytes)
	}

	// MPUB: all or nothing.
	mustChannel(t, n, "lim2", "c")
	setConfig(t, n, "lim2", "c", "max_depth", "100")
	batch := func(k int) [][]byte {
		var b [][]byte
		for i := range k {
			b = append(b, fmt.Appendf(nil, "b%d", i))
		}
		return b
	}
	p := newProducer(t, n)
	if err := p.MultiPublish("lim2", batch(95)); err != nil {
		t.Fatal(err)
	}
	err := p.MultiPublish("lim2", batch(10))
	if err == nil || err.Error() != "E_MPUB_FAILED MPUB failed channel lim2:c is full (max_depth 100)" {
		t.Fatalf("MPUB over the limit: %v", err)
	}
	if d := limStats(t, n, "lim2", "c").Depth; d != 95 {
		t.Fatalf("depth after refused MPUB = %d, want 95", d)
	}
	p = newProducer(t, n)
	if err := p.DeferredPublish("lim2", time.Minute, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := p.MultiPublish("lim2", batch(4)); err != nil { // 95 + 1 deferred + 4
		t.Fatal(err)
	}
	err = p.DeferredPublish("lim2", time.Minute, []byte("y"))
	if err == nil || err.Error() != "E_DPUB_FAILED DPUB failed channel lim2:c is full (max_depth 100)" {
		t.Fatalf("DPUB over the limit: %v", err)
	}

	// HTTP: 503.
	status, body := httpCall(t, n, "POST", "/pub?topic=lim", "x")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "QUEUE_FULL") {
		t.Fatalf("POST /pub on a full channel: %d %s", status, body)
	}
	status, _ = httpCall(t, n, "POST", "/mpub?topic=lim2", "a\nb\n")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("POST /mpub on a full channel: %d", status)
	}
	// An ephemeral channel does not hold publishes back.
	p = newProducer(t, n)
	mustChannel(t, n, "lim3", "e#ephemeral")
	setConfig(t, n, "lim3", "e#ephemeral", "max_depth", "1")
	if err := p.MultiPublish("lim3", batch(5)); err != nil {
		t.Fatalf("MPUB to a topic with a full ephemeral channel: %v", err)
	}
}

// A topic with no channel bounds its own buffer.
func TestLimitsRejectTopicBuffer(t *testing.T) {
	o := testOptions(t)
	o.MaxTopicBytes = 10
	n := startNSQD(t, o)
	p := newProducer(t, n)
	if err := p.Publish("tb", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	err := p.Publish("tb", []byte("x"))
	if err == nil || err.Error() != "E_PUB_FAILED PUB failed topic tb is full (max_bytes 10)" {
		t.Fatalf("publish over --max-topic-bytes: %v", err)
	}
}

// publishEach publishes each body through go-nsq and returns how many
// succeeded and the errors. E_PUB_FAILED is fatal, as in NSQ: the server
// closes the connection, so the next publish goes through a new producer
// (go-nsq v1.1.0's own reconnect races with its router goroutine).
func publishEach(t testing.TB, n *NSQD, topic string, bodies [][]byte) (ok int, errs []string) {
	t.Helper()
	p := newProducer(t, n)
	for _, body := range bodies {
		if err := p.Publish(topic, body); err != nil {
			errs = append(errs, err.Error())
			p.Stop()
			p = newProducer(t, n)
			continue
		}
		ok++
	}
	return ok, errs
}

type orderedCollector struct {
	mu     sync.Mutex
	bodies []string
}

func (h *orderedCollector) HandleMessage(m *nsq.Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bodies = append(h.bodies, string(m.Body))
	return nil
}

func (h *orderedCollector) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies)
}

// Done-when 2: drop-oldest keeps the newest 100 of 150 and counts 50.
func TestLimitsDropOldest(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	mustChannel(t, n, "drop", "c")
	setConfig(t, n, "drop", "c", "max_depth", "100", "overflow", "drop-oldest")
	mustChannel(t, n, "drop", "d") // the same, dead-lettering what it drops
	setConfig(t, n, "drop", "d", "max_depth", "100", "overflow", "drop-oldest", "dead_letter_dropped", "true")
	p := newProducer(t, n)
	for i := 1; i <= 150; i++ {
		if err := p.Publish("drop", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	cs := limStats(t, n, "drop", "c")
	if cs.Depth != 100 || cs.DroppedCount != 50 {
		t.Fatalf("depth=%d dropped=%d, want 100 and 50", cs.Depth, cs.DroppedCount)
	}
	if cs := limStats(t, n, "drop", "d"); cs.Depth != 100 || cs.DroppedCount != 50 || cs.DeadLetteredCount != 50 {
		t.Fatalf("channel d: depth=%d dropped=%d dead-lettered=%d, want 100, 50, 50", cs.Depth, cs.DroppedCount, cs.DeadLetteredCount)
	}
	dlq := n.Stats("drop.d.dlq", "", false)
	if len(dlq.Topics) != 1 || dlq.Topics[0].Depth != 50 {
		t.Fatalf("dead-letter topic drop.d.dlq: %+v", dlq.Topics)
	}
	if _, text := httpCall(t, n, "GET", "/stats?topic=drop&channel=c", ""); !strings.Contains(text,
		"          limits: max_depth: 100 max_bytes: 0 overflow: drop-oldest msg_ttl_ms: 0 max_attempts: 0 rejected: 0 dropped: 50 expired: 0 dead-lettered: 0\n") {
		t.Errorf("/stats text lacks the limits line:\n%s", text)
	}
	_, metrics := httpCall(t, n, "GET", "/metrics", "")
	for _, want := range []string{
		`nsq_channel_dropped_total{channel="c",reason="maxlen",topic="drop"} 50`,
		`nsq_channel_max_depth{channel="c",topic="drop"} 100`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var h orderedCollector
	newConsumer(t, n, "drop", "c", &h, func(c *nsq.Config) { c.MaxInFlight = 1 })
	eventually(t, 5*time.Second, func() bool { return len(h.get()) >= 100 }, "got %d", len(h.get()))
	var want []string
	for i := 51; i <= 150; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if got := h.get(); !slices.Equal(got, want) {
		t.Fatalf("consumer got %v, want 51..150", got)
	}
}

type failingHandler struct {
	mu       sync.Mutex
	attempts []uint16
	hang     chan struct{} // non-nil: hang until closed (the message times out)
}

func (h *failingHandler) HandleMessage(m *nsq.Message) error {
	h.mu.Lock()
	h.attempts = append(h.attempts, m.Attempts)
	h.mu.Unlock()
	if h.hang != nil {
		<-h.hang
		return nil
	}
	return errors.New("always fails")
}

func (h *failingHandler) get() []uint16 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.attempts)
}

// Done-when 4: server max attempts 3 with go-nsq's MaxAttempts 5: the
// handler sees attempts 1, 2, 3 and the dead-letter topic gets the body once
// with its origin; by REQ and by timeout.
func TestDeadLetterMaxAttempts(t *testing.T) {
	for _, mode := range []string{"req", "timeout", "req-durable"} {
		t.Run(mode, func(t *testing.T) {
			o := testOptions(t)
			o.Durable = mode == "req-durable"
			o.MaxAttempts = 3
			o.MsgTimeout = 300 * time.Millisecond
			n := startNSQD(t, o)
			p := newProducer(t, n)
			if err := p.Publish("dl", []byte("poison")); err != nil {
				t.Fatal(err)
			}
			h := &failingHandler{}
			var dlq orderedCollector
			newConsumer(t, n, "dl.c.dlq", "x", &dlq, nil)
			cfg := nsq.NewConfig()
			cfg.MaxAttempts = 5
			cfg.MaxInFlight = 1
			cfg.DefaultRequeueDelay = 0
			cfg.MaxBackoffDuration = 0
			c, err := nsq.NewConsumer("dl", "c", cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.SetLogger(nil, nsq.LogLevelError)
			if mode == "timeout" {
				// Handlers that never return: each delivery times out
				// and the next one goes to another handler goroutine.
				h.hang = make(chan struct{})
				c.AddConcurrentHandlers(h, 4)
			} else {
				c.AddHandler(h)
			}
			if err := c.ConnectToNSQD(n.TCPAddr().String()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if h.hang != nil {
					close(h.hang)
				}
				c.Stop()
			})
			deadline := time.Now().Add(10 * time.Second)
			for len(dlq.get()) != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("dead letters %v, attempts %v, stats %+v", dlq.get(), h.get(), n.Stats("dl", "", true).Topics)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got := dlq.get(); got[0] != "poison" {
				t.Fatalf("dead letter body %q", got[0])
			}
			// Nothing more comes: the channel no longer has the message.
			time.Sleep(3 * o.MsgTimeout)
			if got := h.get(); !slices.Equal(got, []uint16{1, 2, 3}) {
				t.Fatalf("handler saw attempts %v, want [1 2 3]", got)
			}
			if got := dlq.get(); len(got) != 1 {
				t.Fatalf("dead letters %v, want one", got)
			}
			cs := limStats(t, n, "dl", "c")
			if cs.DeadLetteredCount != 1 || cs.Depth != 0 || cs.InFlightCount != 0 || cs.DeferredCount != 0 {
				t.Fatalf("channel stats %+v", cs)
			}
			status, body := httpCall(t, n, "GET", "/topic/config?topic=dl.c.dlq", "")
			var r ConfigResponse
			if status != 200 || json.Unmarshal([]byte(body), &r) != nil || len(r.DeadLetters) != 1 {
				t.Fatalf("GET /topic/config: %d %s", status, body)
			}
			if o := r.DeadLetters[0]; o.SourceTopic != "dl" || o.SourceChannel != "c" || o.Attempts != 3 || o.Reason != "max_attempts" || len(o.OriginalID) != 16 {
				t.Fatalf("origin %+v", o)
			}
		})
	}
}

// The opt-in envelope carries the origin in-band.
func TestDeadLetterEnvelope(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	mustChannel(t, n, "env", "c")
	setConfig(t, n, "env", "c", "max_attempts", "1", "dead_letter_topic", "env-dead", "dead_letter_envelope", "true")
	p := newProducer(t, n)
	if err := p.Publish("env", []byte("body")); err != nil {
		t.Fatal(err)
	}
	var dlq orderedCollector
	newConsumer(t, n, "env-dead", "x", &dlq, nil)
	newConsumer(t, n, "env", "c", &failingHandler{}, func(c *nsq.Config) { c.DefaultRequeueDelay = 0; c.MaxBackoffDuration = 0 })
	eventually(t, 5*time.Second, func() bool { return len(dlq.get()) == 1 }, "dead letters %v", dlq.get())
	var env deadLetterEnvelope
	if err := json.Unmarshal([]byte(dlq.get()[0]), &env); err != nil {
		t.Fatal(err)
	}
	if string(env.Body) != "body" || env.Origin.SourceTopic != "env" || env.Origin.Attempts != 1 {
		t.Fatalf("envelope %+v", env)
	}
}

// Done-when 3: messages older than the TTL are never delivered, are
// counted, and are dead-lettered when asked.
func TestLimitsTTL(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	mustChannel(t, n, "ttl", "drop")
	mustChannel(t, n, "ttl", "dead")
	setConfig(t, n, "ttl", "", "msg_ttl", "200ms")
	setConfig(t, n, "ttl", "dead", "dead_letter_expired", "true")
	p := newProducer(t, n)
	for i := range 10 {
		if err := p.Publish("ttl", fmt.Appendf(nil, "old%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The scan loop's sweep expires the unconsumed heads.
	eventually(t, 5*time.Second, func() bool {
		return limStats(t, n, "ttl", "drop").ExpiredCount == 10 && limStats(t, n, "ttl", "dead").ExpiredCount == 10
	}, "expired %+v", limStats(t, n, "ttl", "drop"))
	if err := p.Publish("ttl", []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	var a, b, dlq orderedCollector
	newConsumer(t, n, "ttl", "drop", &a, nil)
	newConsumer(t, n, "ttl", "dead", &b, nil)
	newConsumer(t, n, "ttl.dead.dlq", "x", &dlq, nil)
	eventually(t, 5*time.Second, func() bool { return len(a.get()) == 1 && len(b.get()) == 1 && len(dlq.get()) == 10 }, "a=%v b=%v dlq=%d", a.get(), b.get(), len(dlq.get()))
	if a.get()[0] != "fresh" || b.get()[0] != "fresh" {
		t.Fatalf("delivered %v %v, want only the fresh message", a.get(), b.get())
	}
	if cs := limStats(t, n, "ttl", "dead"); cs.DeadLetteredCount != 10 {
		t.Fatalf("dead_lettered_count = %d", cs.DeadLetteredCount)
	}
}

// Item 7 and done-when 5 (the part without NSQ's binary): overrides survive a
// restart, and nsqd.dat with them decodes in NSQ 1.3's metadata shape.
func TestLimitsPersist(t *testing.T) {
	o := testOptions(t)
	n, stop := runNSQD(t, o)
	mustChannel(t, n, "per", "c")
	setConfig(t, n, "per", "", "overflow", "drop-oldest", "msg_ttl", "60000")
	setConfig(t, n, "per", "c", "max_depth", "7", "max_attempts", "4")
	data, err := os.ReadFile(filepath.Join(o.DataPath, "nsqd.dat"))
	if err != nil {
		t.Fatal(err)
	}
	// NSQ 1.3's nsqd.dat types (nsqd/meta.go there): unknown fields ignored.
	var nsq13 struct {
		Topics []struct {
			Name     string `json:"name"`
			Paused   bool   `json:"paused"`
			Channels []struct {
				Name   string `json:"name"`
				Paused bool   `json:"paused"`
			} `json:"channels"`
		} `json:"topics"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(data, &nsq13); err != nil {
		t.Fatalf("NSQ 1.3 shape: %v in %s", err, data)
	}
	if len(nsq13.Topics) != 1 || nsq13.Topics[0].Name != "per" || len(nsq13.Topics[0].Channels) != 1 || nsq13.Topics[0].Channels[0].Name != "c" {
		t.Fatalf("NSQ 1.3 sees %+v", nsq13)
	}

	o2 := testOptions(t)
	o2.DataPath = o.DataPath
	stop()
	n2 := startNSQD(t, o2)
	status, body := httpCall(t, n2, "GET", "/channel/config?topic=per&channel=c", "")
	var r ConfigResponse
	if status != 200 || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("GET /channel/config: %d %s", status, body)
	}
	e := r.Effective
	if e.MaxDepth != 7 || e.MaxAttempts != 4 || e.Overflow != OverflowDropOldest || e.MsgTTLMs != 60000 ||
		e.Source["max_depth"] != "channel" || e.Source["overflow"] != "topic" || e.Source["max_bytes"] != "default" || e.DeadLetterTopic != "per.c.dlq" {
		t.Fatalf("after restart: %s", body)
	}
}

// A default nsqd writes NSQ's nsqd.dat: no config fields.
func TestLimitsDefaultMetadataUnchanged(t *testing.T) {
	o := testOptions(t)
	n := startNSQD(t, o)
	mustChannel(t, n, "plain", "c")
	if err := n.PersistMetadata(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(o.DataPath, "nsqd.dat"))
	if strings.Contains(string(data), "config") {
		t.Fatalf("nsqd.dat = %s", data)
	}
	if c := mustChannel(t, n, "plain", "c"); c.lim.Load() != nil {
		t.Fatal("a default channel has limits")
	}
	if tp, _ := n.GetTopic("plain"); tp.guard.Load() != nil || tp.lim.Load() != nil {
		t.Fatal("a default topic has limits")
	}
}

func TestConfigHTTPErrors(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	mustChannel(t, n, "h", "c")
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/channel/config?topic=h&channel=c&max_depth=-1", 400},
		{"/channel/config?topic=h&channel=c&max_depth=x", 400},
		{"/channel/config?topic=h&channel=c&overflow=never", 400},
		{"/channel/config?topic=h&channel=c&dead_letter_topic=bad!name", 400},
		{"/channel/config?topic=h&channel=nope&max_depth=1", 404},
		{"/topic/config?topic=nope&max_depth=1", 404},
		{"/topic/config?max_depth=1", 400},
	} {
		if status, body := httpCall(t, n, "POST", tc.path, ""); status != tc.status {
			t.Errorf("POST %s = %d %s, want %d", tc.path, status, body, tc.status)
		}
	}
	// An empty value goes back to inheriting.
	setConfig(t, n, "h", "c", "max_depth", "5")
	r := setConfig(t, n, "h", "c", "max_depth", "")
	if r.Overrides.MaxDepth != nil || r.Effective.Source["max_depth"] != "default" {
		t.Fatalf("after clearing: %+v", r)
	}
}

func TestRedrive(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	p := newProducer(t, n)
	env, _ := json.Marshal(deadLetterEnvelope{Origin: DeadLetterOrigin{SourceTopic: "rd"}, Body: []byte("wrapped")})
	if err := p.MultiPublish("rd.c.dlq", [][]byte{[]byte("a"), []byte("b"), env, []byte("d"), []byte("e")}); err != nil {
		t.Fatal(err)
	}
	redrive := func(query string) int {
		t.Helper()
		status, body := httpCall(t, n, "POST", "/topic/redrive?"+query, "")
		var r RedriveResponse
		if status != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("POST /topic/redrive?%s: %d %s", query, status, body)
		}
		return r.Redriven
	}
	if got := redrive("topic=rd.c.dlq&to_topic=rd&max=2"); got != 2 {
		t.Fatalf("redriven %d, want 2", got)
	}
	var h orderedCollector
	newConsumer(t, n, "rd", "c", &h, func(c *nsq.Config) { c.MaxInFlight = 1 })
	if got := redrive("topic=rd.c.dlq&to_topic=rd"); got != 3 {
		t.Fatalf("redriven %d, want 3", got)
	}
	eventually(t, 5*time.Second, func() bool { return len(h.get()) == 5 }, "got %v", h.get())
	got := h.get()
	slices.Sort(got) // the backlog of the first redrive may reach the channel after the second
	if !slices.Equal(got, []string{"a", "b", "d", "e", "wrapped"}) {
		t.Fatalf("redriven bodies %q", got)
	}
	if status, _ := httpCall(t, n, "POST", "/topic/redrive?topic=rd.c.dlq", ""); status != 400 {
		t.Fatalf("redrive without to_topic: %d", status)
	}
	// From a channel of the dead-letter topic.
	mustChannel(t, n, "rd2.c.dlq", "x")
	if err := p.MultiPublish("rd2.c.dlq", [][]byte{[]byte("1"), []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if got := redrive("topic=rd2.c.dlq&channel=x&to_topic=rd2"); got != 2 {
		t.Fatalf("redriven from channel %d, want 2", got)
	}
	if d := limStats(t, n, "rd2.c.dlq", "x").Depth; d != 0 {
		t.Fatalf("dead-letter channel depth %d after redrive", d)
	}
}

// FuzzParseLimits: any query string parses or fails cleanly; what parses and
// validates round-trips through nsqd.dat's JSON and compiles.
func FuzzParseLimits(f *testing.F) {
	for _, s := range []string{
		"max_depth=100&overflow=drop-oldest",
		"msg_ttl=30s&max_attempts=3&dead_letter_topic=t.c.dlq&dead_letter_envelope=true",
		"max_bytes=&overflow=&msg_ttl=1500",
		"max_depth=-1&dead_letter_expired=maybe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		var l Limits
		if parseLimits(httpapi.Query(v), &l) != nil {
			return
		}
		if (ConfigChange{Topic: "t", Limits: l}).validate() != nil {
			return
		}
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		var back Limits
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if b2, _ := json.Marshal(back); string(b2) != string(b) {
			t.Fatalf("round trip %s -> %s", b, b2)
		}
		o := NewOptions()
		n := &NSQD{opts: o}
		n.resolve("t", "c", &back, &back).compile()
	})
}

func FuzzUnwrapDeadLetter(f *testing.F) {
	env, _ := json.Marshal(deadLetterEnvelope{Origin: DeadLetterOrigin{SourceTopic: "t"}, Body: []byte("x")})
	f.Add(env)
	f.Add([]byte(`{"origin":{}}`))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := unwrapDeadLetter(b)
		if !strings.HasPrefix(string(b), `{"origin":`) && string(out) != string(b) {
			t.Fatalf("changed a body that is not an envelope: %q", b)
		}
	})
}

// Drop-oldest dead-letters what it drops only once the publisher has
// released the source topic's mu (docs/architecture.md, "Lock order":
// NSQD.mu comes before Topic.mu). The test holds NSQD.mu, as a topic
// creation does, while a publish drops a message: the publisher must not
// keep the source topic locked while it waits for NSQD.mu, or taking the
// topic's mu under NSQD.mu (as deleting an ephemeral topic does) deadlocks.
func TestLimitsDropOldestDeadLetterLockOrder(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	c := mustChannel(t, n, "order", "c")
	setConfig(t, n, "order", "c", "max_depth", "1", "overflow", "drop-oldest", "dead_letter_dropped", "true")
	src, err := n.GetExistingTopic("order")
	if err != nil {
		t.Fatal(err)
	}
	if err := src.publish([][]byte{[]byte("1")}, 0); err != nil {
		t.Fatal(err)
	}

	n.mu.Lock() // a topic being created elsewhere
	done := make(chan error, 1)
	go func() { done <- src.publish([][]byte{[]byte("2")}, 0) }() // drops "1"
	eventually(t, 5*time.Second, func() bool { return c.droppedCount.Load() == 1 }, "nothing dropped")
	locked := false
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if src.mu.TryLock() {
			locked = true
			src.mu.Unlock()
			break
		}
	}
	n.mu.Unlock()
	if !locked {
		t.Fatal("the publisher kept the source topic locked while waiting for NSQD.mu to dead-letter")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publish did not return")
	}
	if cs := limStats(t, n, "order", "c"); cs.Depth != 1 || cs.DroppedCount != 1 || cs.DeadLetteredCount != 1 {
		t.Fatalf("depth=%d dropped=%d dead-lettered=%d, want 1, 1, 1", cs.Depth, cs.DroppedCount, cs.DeadLetteredCount)
	}
	if dlq := n.Stats("order.c.dlq", "", false); len(dlq.Topics) != 1 || dlq.Topics[0].Depth != 1 {
		t.Fatalf("dead-letter topic order.c.dlq: %+v", dlq.Topics)
	}
}

// Stress: publishers drop (and dead-letter) while other goroutines delete
// and recreate the dead-letter topic, add and remove channels of the source
// topic, and rewrite nsqd.dat. Everything must finish within the deadline.
func TestLimitsDropOldestDeadLetterStress(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	mustChannel(t, n, "stress", "c")
	setConfig(t, n, "stress", "c", "max_depth", "5", "overflow", "drop-oldest", "dead_letter_dropped", "true")
	src, err := n.GetExistingTopic("stress")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var published atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := src.publish([][]byte{[]byte(strconv.Itoa(i))}, 0); err == nil {
					published.Add(1)
				}
			}
		})
	}
	wg.Go(func() { // the dead-letter topic goes and comes back
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = n.DeleteExistingTopic("stress.c.dlq")
			time.Sleep(time.Millisecond)
		}
	})
	wg.Go(func() { // Topic.mu for writing on the source topic
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := src.GetChannel("x" + strconv.Itoa(i%3)); err == nil {
				_ = src.DeleteExistingChannel("x" + strconv.Itoa(i%3))
			}
		}
	})
	wg.Go(func() { // persistMu, NSQD.mu, then every Topic.mu
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = n.PersistMetadata()
		}
	})
	time.Sleep(time.Second)
	close(stop)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("deadlock: publishers, deletes or nsqd.dat writes did not finish")
	}
	cs := limStats(t, n, "stress", "c")
	if published.Load() == 0 || cs.DroppedCount == 0 {
		t.Fatalf("published=%d dropped=%d: the stress did not drop", published.Load(), cs.DroppedCount)
	}
	// No depth check: dead letters that fail while their topic is being
	// deleted go back to the channel deferred for a second (README), and
	// drop-oldest does not drop deferred messages.
}

// A topic's own buffer with overflow drop-oldest is bounded: with no
// channel, the oldest messages go (memory backlog first, then the disk
// queue) and are counted on the topic in /stats and /metrics; the first
// channel gets the newest ones.
func TestLimitsDropOldestTopicBuffer(t *testing.T) {
	o := testOptions(t)
	o.MemQueueSize = 3 // the rest of the backlog goes to disk
	n := startNSQD(t, o)
	if _, err := n.GetTopic("tdrop"); err != nil {
		t.Fatal(err)
	}
	setConfig(t, n, "tdrop", "", "max_depth", "10", "overflow", "drop-oldest")
	p := newProducer(t, n)
	for i := 1; i <= 25; i++ {
		if err := p.Publish("tdrop", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	st := n.Stats("tdrop", "", false)
	if len(st.Topics) != 1 || st.Topics[0].Depth != 10 || st.Topics[0].DroppedCount != 15 {
		t.Fatalf("topic stats: %+v, want depth 10 and dropped_count 15", st.Topics)
	}
	_, body := httpCall(t, n, "GET", "/stats?format=json&topic=tdrop", "")
	if !strings.Contains(body, `"dropped_count":15`) {
		t.Errorf("/stats JSON lacks dropped_count 15: %s", body)
	}
	_, metrics := httpCall(t, n, "GET", "/metrics", "")
	if want := `nsq_topic_dropped_total{topic="tdrop"} 15`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	var h orderedCollector
	newConsumer(t, n, "tdrop", "c", &h, func(c *nsq.Config) { c.MaxInFlight = 1 })
	eventually(t, 5*time.Second, func() bool { return len(h.get()) >= 10 }, "got %d", len(h.get()))
	got := h.get()
	slices.SortFunc(got, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	var want []string
	for i := 16; i <= 25; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("consumer got %v, want 16..25", got)
	}
}

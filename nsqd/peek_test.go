package nsqd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/nsqclone/nsq/internal/httpapi"
)

func (h *httpNSQD) peek(t *testing.T, target string) PeekResult {
	t.Helper()
	status, _, body := h.do("GET", target, reqBody{})
	if status != 200 {
		t.Fatalf("GET %s = %d %q", target, status, body)
	}
	var res PeekResult
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("GET %s: %v in %q", target, err, body)
	}
	return res
}

// channelSnapshot is what peek must leave unchanged in /stats.
func channelSnapshot(t *testing.T, n *NSQD, topic, channel string) ChannelStats {
	t.Helper()
	st := n.Stats(topic, channel, true)
	if len(st.Topics) != 1 || len(st.Topics[0].Channels) != 1 {
		t.Fatalf("no stats for %s/%s", topic, channel)
	}
	c := st.Topics[0].Channels[0]
	for i := range c.Clients {
		c.Clients[i].ConnectTime = 0
	}
	return c
}

// One message in flight, five queued, two deferred: peek lists all eight
// with their states, in delivery order, and changes nothing; the consumer
// then receives the queued ones in that order, attempts 1.
func TestPeekChannelStates(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)
	n := h.n
	h.check(t, httpCase{"POST", "/pub?topic=t", reqBody{s: "held"}, 200, "OK"})
	c := dialRaw(t, n)
	c.send(`IDENTIFY`, []byte(`{"client_id":"peeker"}`))
	if ft, _ := c.readFrame(); ft != 0 {
		t.Fatal("IDENTIFY failed")
	}
	c.send("SUB t c")
	c.expect(0, "OK")
	// held moves from the topic's backlog to the new channel on the
	// topic's drain goroutine, while a publish to a topic with a channel
	// goes to it directly: wait for held, or before-rdy may overtake it
	// (NSQ promises no order; this test checks peek, not ordering).
	eventually(t, 5*time.Second, func() bool {
		ch, err := n.topicChannel("t", "c")
		return err == nil && ch.Depth() == 1
	}, "held in the channel")
	h.check(t, httpCase{"POST", "/pub?topic=t", reqBody{s: "before-rdy"}, 200, "OK"})
	c.send("RDY 1")
	ft, held := c.readFrame()
	if ft != 2 || string(held[26:]) != "held" {
		t.Fatalf("first delivery = %d %q", ft, held)
	}
	// before-rdy is queued; four more, and two deferred, one of them binary.
	for i := range 4 {
		h.check(t, httpCase{"POST", "/pub?topic=t", reqBody{s: fmt.Sprintf("q%d", i)}, 200, "OK"})
	}
	h.check(t, httpCase{"POST", "/pub?topic=t&defer=60000", reqBody{s: "later"}, 200, "OK"})
	h.check(t, httpCase{"POST", "/pub?topic=t&defer=30000", reqBody{s: "sooner\xff\xfe"}, 200, "OK"})

	before := channelSnapshot(t, n, "t", "c")
	res := h.peek(t, "/channel/peek?topic=t&channel=c&n=100")
	if again := h.peek(t, "/channel/peek?topic=t&channel=c&n=100"); !reflect.DeepEqual(res, again) {
		t.Errorf("second peek differs:\n%+v\n%+v", res, again)
	}
	if after := channelSnapshot(t, n, "t", "c"); !reflect.DeepEqual(before, after) {
		t.Errorf("/stats changed by peek:\n%+v\n%+v", before, after)
	}
	var got []string
	for _, m := range res.Messages {
		got = append(got, m.State+":"+m.Body)
	}
	want := "queued:before-rdy queued:q0 queued:q1 queued:q2 queued:q3 deferred:c29vbmVy//4= deferred:later in_flight:held"
	if strings.Join(got, " ") != want {
		t.Fatalf("peek = %v\nwant %v", got, want)
	}
	if res.Depth != 5 || res.InFlightCount != 1 || res.DeferredCount != 2 {
		t.Errorf("peek depth %d, in flight %d, deferred %d; want 5, 1, 2", res.Depth, res.InFlightCount, res.DeferredCount)
	}
	now := time.Now().UnixNano()
	for _, m := range res.Messages {
		switch m.State {
		case PeekQueued:
			if m.Attempts != 0 || m.DeliverAt != 0 || m.TimeoutAt != 0 {
				t.Errorf("queued %+v", m)
			}
		case PeekDeferred:
			if m.DeliverAt < now+20*int64(time.Second) || m.Attempts != 0 {
				t.Errorf("deferred %+v", m)
			}
		case PeekInFlight:
			if m.Attempts != 1 || m.ClientID != "peeker" || m.ClientAddress == "" || m.TimeoutAt < now || m.ID != string(held[10:26]) {
				t.Errorf("in flight %+v", m)
			}
		}
		if m.Size != len(m.Body) && m.BodyEncoding == "text" || m.Timestamp == 0 || len(m.ID) != 16 {
			t.Errorf("message %+v", m)
		}
	}
	if m := res.Messages[5]; m.BodyEncoding != "base64" || m.Size != 8 {
		t.Errorf("binary body as %+v, want base64 of 8 bytes", m)
	}
	cut := h.peek(t, "/channel/peek?topic=t&channel=c&state=queued&n=2&max_body=3&encoding=base64")
	if len(cut.Messages) != 2 || cut.Messages[0].Body != "YmVm" || !cut.Messages[0].BodyTruncated || cut.Messages[0].Size != 10 {
		t.Errorf("state=queued n=2 max_body=3 encoding=base64 = %+v", cut.Messages)
	}
	if fl := h.peek(t, "/channel/peek?topic=t&channel=c&state=in_flight"); len(fl.Messages) != 1 || fl.Messages[0].Body != "held" {
		t.Errorf("state=in_flight = %+v", fl.Messages)
	}

	// The consumer gets the queued messages in peek's order, attempts 1.
	c.send("FIN " + string(held[10:26]))
	c.send("RDY 10")
	for _, m := range res.Messages[:5] {
		ft, data := c.readFrame()
		if ft != 2 {
			t.Fatalf("frame %d %q, want a message", ft, data)
		}
		attempts := int(data[8])<<8 | int(data[9])
		if string(data[10:26]) != m.ID || string(data[26:]) != m.Body || attempts != 1 {
			t.Fatalf("delivered %s %q attempts %d, peek said %s %q", data[10:26], data[26:], attempts, m.ID, m.Body)
		}
	}
}

// A topic's own messages (no channel yet), and peek's parameter errors.
func TestPeekTopicAndErrors(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)
	h.check(t, httpCase{"POST", "/mpub?topic=t", reqBody{s: "a\nb\nc"}, 200, "OK"})
	h.check(t, httpCase{"POST", "/pub?topic=t&defer=5000", reqBody{s: "d"}, 200, "OK"})
	res := h.peek(t, "/topic/peek?topic=t")
	var got []string
	for _, m := range res.Messages {
		got = append(got, m.State+":"+m.Body)
	}
	if strings.Join(got, " ") != "queued:a queued:b queued:c deferred:d" || res.Depth != 3 || res.DeferredCount != 1 {
		t.Errorf("topic peek = %v (depth %d, deferred %d)", got, res.Depth, res.DeferredCount)
	}
	h.runCases([]httpCase{
		{"GET", "/topic/peek", reqBody{}, 400, msg("MISSING_ARG_TOPIC")},
		{"GET", "/topic/peek?topic=a!", reqBody{}, 400, msg("INVALID_ARG_TOPIC")},
		{"GET", "/topic/peek?topic=nope", reqBody{}, 404, msg("TOPIC_NOT_FOUND")},
		{"GET", "/topic/peek?topic=t&state=in_flight", reqBody{}, 400, msg("INVALID_ARG_STATE")},
		{"GET", "/channel/peek?topic=t", reqBody{}, 400, msg("MISSING_ARG_CHANNEL")},
		{"GET", "/channel/peek?topic=t&channel=a!", reqBody{}, 400, msg("INVALID_ARG_CHANNEL")},
		{"GET", "/channel/peek?topic=t&channel=nope", reqBody{}, 404, msg("CHANNEL_NOT_FOUND")},
		{"GET", "/channel/peek?topic=t&channel=c&n=0", reqBody{}, 400, msg("INVALID_ARG_N")},
		{"GET", "/channel/peek?topic=t&channel=c&n=1001", reqBody{}, 400, msg("INVALID_ARG_N")},
		{"GET", "/channel/peek?topic=t&channel=c&state=gone", reqBody{}, 400, msg("INVALID_ARG_STATE")},
		{"GET", "/channel/peek?topic=t&channel=c&max_body=-1", reqBody{}, 400, msg("INVALID_ARG_MAX_BODY")},
		{"GET", "/channel/peek?topic=t&channel=c&encoding=hex", reqBody{}, 400, msg("INVALID_ARG_ENCODING")},
	})
	off := startHTTPNSQD(t, nil, func(o *Options) { o.EnablePeek = false })
	off.check(t, httpCase{"POST", "/pub?topic=t", reqBody{s: "x"}, 200, "OK"})
	off.check(t, httpCase{"GET", "/topic/peek?topic=t", reqBody{}, 403, msg("PEEK_DISABLED")})
	off.check(t, httpCase{"GET", "/channel/peek?topic=t&channel=c", reqBody{}, 403, msg("PEEK_DISABLED")})
}

// With --mem-queue-size=0 peek reads the disk queue, in order, without
// moving its read position: a restart has the same depth and delivers in
// peek's order.
func TestPeekDisk(t *testing.T) {
	dir := t.TempDir()
	mutate := func(o *Options) { o.MemQueueSize, o.DataPath = 0, dir }
	o := NewOptions()
	mutate(o)
	o.TCPAddress, o.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
	o.Logger = testOptions(t).Logger
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := n.GetTopic("t")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := topic.GetChannel("c")
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	for i := range 50 {
		bodies = append(bodies, fmt.Appendf(nil, "disk-%02d", i))
	}
	if err := topic.PublishMulti(bodies); err != nil {
		t.Fatal(err)
	}
	if d := ch.backendDepth(); d != 50 {
		t.Fatalf("backend depth %d, want 50", d)
	}
	res := ch.Peek(PeekRequest{N: 1000, State: PeekAll, MaxBody: 100})
	if len(res.Messages) != 50 {
		t.Fatalf("peek returned %d messages, want 50", len(res.Messages))
	}
	for i, m := range res.Messages {
		if m.Body != string(bodies[i]) || m.State != PeekQueued {
			t.Fatalf("peek message %d = %+v, want %q queued", i, m, bodies[i])
		}
	}
	if d := ch.Depth(); d != 50 {
		t.Errorf("depth after peek %d, want 50", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}

	h := startHTTPNSQD(t, nil, mutate)
	c2, err := h.n.GetExistingTopic("t")
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := c2.GetExistingChannel("c")
	if err != nil {
		t.Fatal(err)
	}
	if d := ch2.Depth(); d != 50 {
		t.Errorf("depth after restart %d, want 50", d)
	}
	again := h.peek(t, "/channel/peek?topic=t&channel=c&n=1000")
	if !reflect.DeepEqual(again.Messages, res.Messages) {
		t.Errorf("peek after restart differs")
	}
	raw := dialRaw(t, h.n)
	raw.send("SUB t c")
	raw.expect(0, "OK")
	raw.send("RDY 100")
	for i := range 50 {
		_, data := raw.readFrame()
		if string(data[10:26]) != res.Messages[i].ID {
			t.Fatalf("delivery %d is %s %q, peek said %s", i, data[10:26], data[26:], res.Messages[i].ID)
		}
		raw.send("FIN " + string(data[10:26]))
	}
}

// Peeks running all the time during heavy publishing and consuming (under
// -race in make test) change nothing the consumer sees: every message once,
// attempts 1, no requeue or timeout.
func TestPeekDuringTraffic(t *testing.T) {
	o := testOptions(t)
	o.MemQueueSize = 100 // memory and disk both in use
	n := startNSQD(t, o)
	const producers, perProducer = 4, 2500
	var bad atomic.Int64
	seen := make(map[string]int)
	var mu sync.Mutex
	h := nsq.HandlerFunc(func(m *nsq.Message) error {
		if m.Attempts != 1 {
			bad.Add(1)
		}
		mu.Lock()
		seen[string(m.Body)]++
		mu.Unlock()
		return nil
	})
	newConsumer(t, n, "busy", "c", h, func(c *nsq.Config) { c.MaxInFlight = 50 })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		topic, _ := n.GetTopic("busy")
		for {
			select {
			case <-stop:
				return
			default:
			}
			topic.Peek(PeekRequest{N: 50, State: PeekAll, MaxBody: 16})
			if ch, err := topic.GetExistingChannel("c"); err == nil {
				ch.Peek(PeekRequest{N: 200, State: PeekAll, MaxBody: 16})
			}
		}
	})
	for p := range producers {
		wg.Go(func() {
			pr := newProducer(t, n)
			for i := 0; i < perProducer; i += 50 {
				var batch [][]byte
				for j := range 50 {
					batch = append(batch, fmt.Appendf(nil, "p%d-%d", p, i+j))
				}
				if err := pr.MultiPublish("busy", batch); err != nil {
					t.Errorf("MultiPublish: %v", err)
					return
				}
			}
		})
	}
	eventually(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == producers*perProducer
	}, "all %d messages delivered", producers*perProducer)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for body, k := range seen {
		if k != 1 {
			t.Errorf("%s delivered %d times", body, k)
		}
	}
	st := channelSnapshot(t, n, "busy", "c")
	if bad.Load() != 0 || st.RequeueCount != 0 || st.TimeoutCount != 0 || st.MessageCount != producers*perProducer {
		t.Errorf("attempts != 1: %d; stats %+v", bad.Load(), st)
	}
}

func TestParsePeekRequest(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  PeekRequest
		err   error
	}{
		{"", PeekRequest{10, PeekAll, 4096, "auto"}, nil},
		{"n=1000&state=in_flight&max_body=0&encoding=text", PeekRequest{1000, PeekInFlight, 0, "text"}, nil},
		{"n=1&state=queued&max_body=1024", PeekRequest{1, PeekQueued, 1024, "auto"}, nil},
		{"n=x", PeekRequest{}, errHTTPInvalidN},
		{"n=1001", PeekRequest{}, errHTTPInvalidN},
		{"max_body=1025", PeekRequest{}, errHTTPInvalidMaxBody},
		{"state=", PeekRequest{}, errHTTPInvalidState},
		{"encoding=hex", PeekRequest{}, errHTTPInvalidEncode},
	} {
		v, _ := url.ParseQuery(tc.query)
		got, err := parsePeekRequest(httpapi.Query(v), 1024, true)
		if err != tc.err || (err == nil && got != tc.want) {
			t.Errorf("parsePeekRequest(%q) = %+v, %v; want %+v, %v", tc.query, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParsePeekRequest(f *testing.F) {
	for _, s := range []string{"", "n=10&state=all", "n=1000&state=in_flight&max_body=0&encoding=base64", "n=-1", "max_body=99999999999999999999", "state=%ff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		req, err := parsePeekRequest(httpapi.Query(v), 1<<20, true)
		if err != nil {
			return
		}
		if req.N < 1 || req.N > peekMaxN || req.MaxBody < 0 || req.MaxBody > 1<<20 {
			t.Fatalf("parsePeekRequest(%q) = %+v out of bounds", s, req)
		}
		switch req.State {
		case PeekQueued, PeekDeferred, PeekInFlight, PeekAll:
		default:
			t.Fatalf("parsePeekRequest(%q) state %q", s, req.State)
		}
	})
}

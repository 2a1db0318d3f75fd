package nsqd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// statsdFixture is a snapshot with one topic "st" (channels "c" and
// "e#ephemeral", e2e percentiles 0.99 and 0.5) and an ephemeral topic.
func statsdFixture(msgs, bytes, chanMsgs, requeues, timeouts uint64) Stats {
	e2e := Percentiles{Count: 3, Percentiles: []Percentile{{Quantile: 0.99, Value: 1500.7}, {Quantile: 0.5, Value: 1000}}}
	return Stats{Topics: []TopicStats{
		{TopicName: "st", Depth: 4, BackendDepth: 1, MessageCount: msgs, MessageBytes: bytes, E2eProcessingLatency: e2e,
			Channels: []ChannelStats{
				{ChannelName: "c", Depth: 2, BackendDepth: 1, InFlightCount: 3, DeferredCount: 5, MessageCount: chanMsgs,
					RequeueCount: requeues, TimeoutCount: timeouts, ClientCount: 1, E2eProcessingLatency: e2e},
				{ChannelName: "e#ephemeral", MessageCount: chanMsgs},
			}},
		{TopicName: "z#ephemeral", MessageCount: msgs, Channels: []ChannelStats{{ChannelName: "c", MessageCount: chanMsgs}}},
	}}
}

func TestStatsdMetrics(t *testing.T) {
	mem := &MemStats{HeapObjects: 1, HeapIdleBytes: 2, HeapInUseBytes: 3, HeapReleasedBytes: 4,
		GCPauseUsec100: 5, GCPauseUsec99: 6, GCPauseUsec95: 7, NextGCBytes: 8, GCTotalRuns: 9}
	st := statsdFixture(3, 30, 3, 1, 2)
	got, next := statsdMetrics("nsq.h_1.", &st, mem, statsdCounters{}, false)
	want := []string{
		"nsq.h_1.topic.st.message_count:3|c",
		"nsq.h_1.topic.st.message_bytes:30|c",
		"nsq.h_1.topic.st.depth:4|g",
		"nsq.h_1.topic.st.backend_depth:1|g",
		"nsq.h_1.topic.st.e2e_processing_latency_99:1500|g",
		"nsq.h_1.topic.st.e2e_processing_latency_50:1000|g",
		"nsq.h_1.topic.st.channel.c.message_count:3|c",
		"nsq.h_1.topic.st.channel.c.depth:2|g",
		"nsq.h_1.topic.st.channel.c.backend_depth:1|g",
		"nsq.h_1.topic.st.channel.c.in_flight_count:3|g",
		"nsq.h_1.topic.st.channel.c.deferred_count:5|g",
		"nsq.h_1.topic.st.channel.c.requeue_count:1|c",
		"nsq.h_1.topic.st.channel.c.timeout_count:2|c",
		"nsq.h_1.topic.st.channel.c.clients:1|g",
		"nsq.h_1.topic.st.channel.c.e2e_processing_latency_99:1500|g",
		"nsq.h_1.topic.st.channel.c.e2e_processing_latency_50:1000|g",
		"nsq.h_1.topic.st.channel.e#ephemeral.message_count:3|c",
		"nsq.h_1.topic.st.channel.e#ephemeral.depth:0|g",
		"nsq.h_1.topic.st.channel.e#ephemeral.backend_depth:0|g",
		"nsq.h_1.topic.st.channel.e#ephemeral.in_flight_count:0|g",
		"nsq.h_1.topic.st.channel.e#ephemeral.deferred_count:0|g",
		"nsq.h_1.topic.st.channel.e#ephemeral.requeue_count:0|c",
		"nsq.h_1.topic.st.channel.e#ephemeral.timeout_count:0|c",
		"nsq.h_1.topic.st.channel.e#ephemeral.clients:0|g",
		"nsq.h_1.topic.z#ephemeral.message_count:3|c",
		"nsq.h_1.topic.z#ephemeral.message_bytes:0|c",
		"nsq.h_1.topic.z#ephemeral.depth:0|g",
		"nsq.h_1.topic.z#ephemeral.backend_depth:0|g",
		"nsq.h_1.topic.z#ephemeral.channel.c.message_count:3|c",
		"nsq.h_1.topic.z#ephemeral.channel.c.depth:0|g",
		"nsq.h_1.topic.z#ephemeral.channel.c.backend_depth:0|g",
		"nsq.h_1.topic.z#ephemeral.channel.c.in_flight_count:0|g",
		"nsq.h_1.topic.z#ephemeral.channel.c.deferred_count:0|g",
		"nsq.h_1.topic.z#ephemeral.channel.c.requeue_count:0|c",
		"nsq.h_1.topic.z#ephemeral.channel.c.timeout_count:0|c",
		"nsq.h_1.topic.z#ephemeral.channel.c.clients:0|g",
		"nsq.h_1.mem.heap_objects:1|g",
		"nsq.h_1.mem.heap_idle_bytes:2|g",
		"nsq.h_1.mem.heap_in_use_bytes:3|g",
		"nsq.h_1.mem.heap_released_bytes:4|g",
		"nsq.h_1.mem.gc_pause_usec_100:5|g",
		"nsq.h_1.mem.gc_pause_usec_99:6|g",
		"nsq.h_1.mem.gc_pause_usec_95:7|g",
		"nsq.h_1.mem.next_gc_bytes:8|g",
		"nsq.h_1.mem.gc_runs:9|c",
	}
	if !slices.Equal(got, want) {
		t.Errorf("first push:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Second push: counters are deltas, gauges current values.
	st = statsdFixture(10, 100, 5, 1, 3)
	mem.GCTotalRuns = 12
	got, next = statsdMetrics("", &st, mem, next, false)
	for _, l := range []string{
		"topic.st.message_count:7|c",
		"topic.st.message_bytes:70|c",
		"topic.st.depth:4|g",
		"topic.st.channel.c.message_count:2|c",
		"topic.st.channel.c.requeue_count:0|c",
		"topic.st.channel.c.timeout_count:1|c",
		"topic.z#ephemeral.channel.c.message_count:2|c",
		"mem.gc_runs:3|c",
	} {
		if !slices.Contains(got, l) {
			t.Errorf("second push lacks %q:\n%s", l, strings.Join(got, "\n"))
		}
	}

	// A topic recreated between pushes (counters went down) counts from 0;
	// one missing from a push and back later counts from 0 too.
	st = statsdFixture(2, 20, 1, 0, 0)
	st.Topics = st.Topics[:1]
	got, next = statsdMetrics("", &st, nil, next, false)
	for _, l := range []string{"topic.st.message_count:2|c", "topic.st.message_bytes:20|c", "topic.st.channel.c.message_count:1|c"} {
		if !slices.Contains(got, l) {
			t.Errorf("after reset, push lacks %q:\n%s", l, strings.Join(got, "\n"))
		}
	}
	if slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "mem.") }) {
		t.Errorf("mem.* sent without mem stats:\n%s", strings.Join(got, "\n"))
	}
	st = statsdFixture(2, 20, 1, 0, 0)
	got, _ = statsdMetrics("", &st, nil, next, false)
	if l := "topic.z#ephemeral.message_count:2|c"; !slices.Contains(got, l) {
		t.Errorf("returning topic: push lacks %q:\n%s", l, strings.Join(got, "\n"))
	}
	if l := "topic.st.message_count:0|c"; !slices.Contains(got, l) {
		t.Errorf("idle topic: push lacks %q:\n%s", l, strings.Join(got, "\n"))
	}
}

func TestStatsdMetricsExcludeEphemeral(t *testing.T) {
	st := statsdFixture(1, 1, 1, 0, 0)
	got, next := statsdMetrics("p.", &st, nil, statsdCounters{}, true)
	if len(got) != 16 {
		t.Errorf("got %d lines, want 16 (topic st and channel c):\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, l := range got {
		if strings.Contains(l, "#ephemeral") {
			t.Errorf("ephemeral line %q", l)
		}
	}
	if len(next.topics) != 1 || len(next.channels) != 1 {
		t.Errorf("counters kept for %v %v, want st and st/c only", next.topics, next.channels)
	}
}

func TestStatsdPercentileNames(t *testing.T) {
	for _, c := range []struct {
		q    float64
		want string
	}{{1, "100"}, {0.99, "99"}, {0.5, "50"}, {0.999, "100"}, {0.05, "5"}, {0.125, "12"}, {0.9999, "100"}, {0.951, "95"}} {
		var w statsdWriter
		w.percentiles("", []Percentile{{Quantile: c.q, Value: 7}})
		if want := "e2e_processing_latency_" + c.want + ":7|g"; w.lines[0] != want {
			t.Errorf("quantile %v: %q, want %q", c.q, w.lines[0], want)
		}
	}
}

func TestPackStatsd(t *testing.T) {
	lines := []string{"aaaa", "bbbbbbbb", "cc", strings.Repeat("x", 30), "d", "e"}
	for _, c := range []struct {
		size int
		want []string
	}{
		{10, []string{"aaaa\n", "bbbbbbbb\n", "cc\n", strings.Repeat("x", 30) + "\n", "d\ne\n"}},
		{14, []string{"aaaa\nbbbbbbbb\n", "cc\n", strings.Repeat("x", 30) + "\n", "d\ne\n"}},
		{13, []string{"aaaa\n", "bbbbbbbb\ncc\n", strings.Repeat("x", 30) + "\n", "d\ne\n"}},
		{1000, []string{"aaaa\nbbbbbbbb\ncc\n" + strings.Repeat("x", 30) + "\nd\ne\n"}},
		{0, []string{"aaaa\nbbbbbbbb\ncc\n" + strings.Repeat("x", 30) + "\nd\ne\n"}},
	} {
		var got []string
		for _, p := range packStatsd(lines, c.size) {
			got = append(got, string(p))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("packStatsd(size=%d) = %q, want %q", c.size, got, c.want)
		}
	}
	if got := packStatsd(nil, 508); got != nil {
		t.Errorf("packStatsd(nil) = %q, want none", got)
	}
}

func FuzzPackStatsd(f *testing.F) {
	f.Add("a\nbb\nccc", 4)
	f.Fuzz(func(t *testing.T, s string, size int) {
		if size > 1<<16 || size < -1 {
			return
		}
		lines := strings.Split(s, "\n")
		var all []byte
		for _, p := range packStatsd(lines, size) {
			if len(p) == 0 || p[len(p)-1] != '\n' {
				t.Fatalf("datagram %q does not end a line", p)
			}
			if limit := cmpSize(size); len(p) > limit && bytes.Count(p, []byte("\n")) > 1 {
				t.Fatalf("datagram of %d bytes > %d holds more than one line", len(p), limit)
			}
			all = append(all, p...)
		}
		if want := strings.Join(lines, "\n") + "\n"; string(all) != want {
			t.Fatalf("datagrams join to %q, want %q", all, want)
		}
	})
}

func cmpSize(size int) int {
	if size <= 0 {
		return defaultStatsdPacketSize
	}
	return size
}

// timedWriter records when each packet was written, in a synctest bubble.
type timedWriter struct {
	start time.Time
	at    []time.Duration
	fail  bool
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.at = append(w.at, time.Since(w.start))
	if w.fail {
		return 0, errors.New("connection refused")
	}
	return len(p), nil
}

func TestSendSpread(t *testing.T) {
	packets := make([][]byte, 4)
	synctest.Test(t, func(t *testing.T) {
		w := &timedWriter{start: time.Now()}
		failed, err := sendSpread(t.Context(), w, packets, 59*time.Second)
		want := []time.Duration{0, 14750 * time.Millisecond, 29500 * time.Millisecond, 44250 * time.Millisecond}
		if failed != 0 || err != nil || !slices.Equal(w.at, want) {
			t.Errorf("sendSpread over 59s = %v (%d, %v), want %v", w.at, failed, err, want)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		w := &timedWriter{start: time.Now()}
		sendSpread(t.Context(), w, packets, 0) // --statsd-interval 1s: no spreading
		if want := make([]time.Duration, 4); !slices.Equal(w.at, want) {
			t.Errorf("sendSpread over 0s = %v, want %v", w.at, want)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		// ctx ends during the spread: the rest goes out at once.
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(20*time.Second, cancel)
		w := &timedWriter{start: time.Now(), fail: true}
		failed, err := sendSpread(ctx, w, packets, 59*time.Second)
		want := []time.Duration{0, 14750 * time.Millisecond, 20 * time.Second, 20 * time.Second}
		if !slices.Equal(w.at, want) {
			t.Errorf("sendSpread cancelled at 20s = %v, want %v", w.at, want)
		}
		if failed != 4 || err == nil {
			t.Errorf("sendSpread with failing writes = %d, %v; want 4 failed and an error", failed, err)
		}
	})
}

func TestStatsdPrefix(t *testing.T) {
	for _, c := range []struct{ prefix, addr, want string }{
		{"nsq.%s", "127.0.0.1", "nsq.127_0_0_1_4151."},
		{"nsq.%s.", "127.0.0.1", "nsq.127_0_0_1_4151."},
		{"", "127.0.0.1", ""},
		{"app", "host.example", "app."},
		{"a.%s.b.%s", "vm", "a.vm_4151.b.vm_4151."},
		{"nsq.%s", "::1", "nsq.[__1]_4151."},
	} {
		o := NewOptions()
		o.StatsdPrefix, o.BroadcastAddress, o.BroadcastHTTPPort = c.prefix, c.addr, 4151
		if got := (&NSQD{opts: o}).statsdPrefix(); got != c.want {
			t.Errorf("statsdPrefix(%q, %q) = %q, want %q", c.prefix, c.addr, got, c.want)
		}
	}
}

// statsdServer is a UDP listener collecting pushes: a push ends with its
// mem.gc_runs line (--statsd-mem-stats is on).
type statsdServer struct {
	conn     net.PacketConn
	pushes   chan []string
	datagram chan struct{} // cap 1: a datagram arrived

	mu      sync.Mutex
	maxSize int
}

func startStatsdServer(t *testing.T) *statsdServer {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &statsdServer{conn: conn, pushes: make(chan []string, 100), datagram: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 65536)
		var push []string
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.maxSize = max(s.maxSize, n)
			s.mu.Unlock()
			select {
			case s.datagram <- struct{}{}:
			default:
			}
			for l := range strings.SplitSeq(strings.TrimSuffix(string(buf[:n]), "\n"), "\n") {
				push = append(push, l)
				if strings.Contains(l, ".mem.gc_runs:") {
					select {
					case s.pushes <- push:
					default:
					}
					push = nil
				}
			}
		}
	})
	t.Cleanup(func() { conn.Close(); wg.Wait() })
	return s
}

func (s *statsdServer) next(t *testing.T) []string {
	t.Helper()
	select {
	case p := <-s.pushes:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no statsd push within 10s")
		return nil
	}
}

// value of the line "<name>:<v>|<typ>" in push; -1 if missing.
func statsdValue(t *testing.T, push []string, name, typ string) int64 {
	t.Helper()
	for _, l := range push {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			v, ok = strings.CutSuffix(v, "|"+typ)
			if !ok {
				t.Errorf("%q has the wrong type, want |%s", l, typ)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Errorf("%q: %v", l, err)
			}
			return n
		}
	}
	return -1
}

func TestStatsdLoop(t *testing.T) {
	srv := startStatsdServer(t)
	o := testOptions(t)
	o.StatsdAddress = srv.conn.LocalAddr().String()
	o.StatsdInterval = 1500 * time.Millisecond
	o.StatsdUDPPacketSize = 200
	o.BroadcastAddress = "127.0.0.1"
	o.E2EProcessingLatencyPercentiles = []float64{1, 0.99, 0.5}
	n := startNSQD(t, o)
	prefix := fmt.Sprintf("nsq.127_0_0_1_%d.", addrPort(n.HTTPAddr()))

	topic, _ := n.GetTopic("st")
	topic.GetChannel("c")
	if err := topic.PublishMulti([][]byte{[]byte("a"), []byte("bb"), []byte("ccc")}); err != nil {
		t.Fatal(err)
	}

	// Counters are deltas: their sum over pushes is the total so far, and
	// a push after publishing stops reports 0 while gauges stay.
	var msgs, bytesSum, chanMsgs int64
	wait := func(wantMsgs int64) []string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			push := srv.next(t)
			if v := statsdValue(t, push, prefix+"topic.st.message_count", "c"); v > 0 {
				msgs += v
				bytesSum += statsdValue(t, push, prefix+"topic.st.message_bytes", "c")
				chanMsgs += statsdValue(t, push, prefix+"topic.st.channel.c.message_count", "c")
			}
			if msgs == wantMsgs {
				return push
			}
			if msgs > wantMsgs || time.Now().After(deadline) {
				t.Fatalf("message_count deltas add up to %d, want %d", msgs, wantMsgs)
			}
		}
	}
	push := wait(3)
	if bytesSum != 6 || chanMsgs != 3 {
		t.Errorf("after 3 messages: message_bytes deltas %d, channel message_count deltas %d; want 6, 3", bytesSum, chanMsgs)
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `[a-z0-9_.#]+:\d+\|[cg]$`)
	for _, l := range push {
		if !re.MatchString(l) {
			t.Errorf("malformed line %q", l)
		}
	}
	for _, c := range []struct {
		name, typ string
		want      int64
	}{
		{"topic.st.depth", "g", 0},
		{"topic.st.backend_depth", "g", 0},
		{"topic.st.e2e_processing_latency_100", "g", 0},
		{"topic.st.e2e_processing_latency_99", "g", 0},
		{"topic.st.e2e_processing_latency_50", "g", 0},
		{"topic.st.channel.c.depth", "g", 3},
		{"topic.st.channel.c.backend_depth", "g", 0},
		{"topic.st.channel.c.in_flight_count", "g", 0},
		{"topic.st.channel.c.deferred_count", "g", 0},
		{"topic.st.channel.c.clients", "g", 0},
		{"topic.st.channel.c.e2e_processing_latency_50", "g", 0},
	} {
		if got := statsdValue(t, push, prefix+c.name, c.typ); got != c.want {
			t.Errorf("%s = %d, want %d", c.name, got, c.want)
		}
	}
	for _, name := range []string{"heap_objects", "heap_idle_bytes", "heap_in_use_bytes", "heap_released_bytes",
		"gc_pause_usec_100", "gc_pause_usec_99", "gc_pause_usec_95", "next_gc_bytes"} {
		if statsdValue(t, push, prefix+"mem."+name, "g") < 0 {
			t.Errorf("mem.%s missing", name)
		}
	}

	if err := topic.PublishMulti([][]byte{[]byte("dddd"), []byte("eeeee")}); err != nil {
		t.Fatal(err)
	}
	wait(5)
	if bytesSum != 15 || chanMsgs != 5 {
		t.Errorf("after 5 messages: message_bytes deltas %d, channel message_count deltas %d; want 15, 5", bytesSum, chanMsgs)
	}
	push = srv.next(t)
	for _, c := range []struct {
		name, typ string
		want      int64
	}{
		{"topic.st.message_count", "c", 0},
		{"topic.st.message_bytes", "c", 0},
		{"topic.st.channel.c.message_count", "c", 0},
		{"topic.st.channel.c.depth", "g", 5},
	} {
		if got := statsdValue(t, push, prefix+c.name, c.typ); got != c.want {
			t.Errorf("idle push: %s = %d, want %d", c.name, got, c.want)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.maxSize > 200 {
		t.Errorf("largest datagram %d bytes, want ≤ 200", srv.maxSize)
	}
}

func TestStatsdLoopDisabled(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&NSQD{opts: NewOptions()}).statsdLoop(t.Context())
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("statsdLoop without --statsd-address did not return")
	}
}

// The loop ends promptly when its ctx does, even while a push is spreading
// its datagrams (here one line per datagram, over 2 s).
func TestStatsdLoopStopsPromptly(t *testing.T) {
	srv := startStatsdServer(t)
	o := testOptions(t)
	o.StatsdAddress = srv.conn.LocalAddr().String()
	o.StatsdInterval = 3 * time.Second
	o.StatsdUDPPacketSize = 1
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.shutdownListeners()
		if err := errors.Join(n.closeTopics(), n.dirLock.unlock()); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.statsdLoop(ctx)
	}()
	select {
	case <-srv.datagram:
	case <-time.After(10 * time.Second):
		t.Fatal("no datagram within 10s")
	}
	cancel()
	start := time.Now()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("statsdLoop still running 5s after ctx ended")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("statsdLoop returned %v after ctx ended, want < 1s", d)
	}
	// The rest of the push still went out.
	srv.next(t)
}

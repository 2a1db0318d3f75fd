package nsqd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeLeader stands in for a leader that accepts a relay, answers its
// IDENTIFY and SUB, and then never reads from it again (a hung leader, or
// one whose socket buffers are full).
type fakeLeader struct {
	t        *testing.T
	ln       net.Listener
	accepted chan net.Conn
}

func startFakeLeader(t *testing.T) *fakeLeader {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &fakeLeader{t: t, ln: ln, accepted: make(chan net.Conn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fl.accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for {
			select {
			case c := <-fl.accepted:
				c.Close()
			default:
				return
			}
		}
	})
	return fl
}

// handshake takes the next relay connection, answers its IDENTIFY and SUB
// with OK and from then on reads nothing; its receive buffer is made small
// so that the relay's writes soon stop going through.
func (fl *fakeLeader) handshake(topic, channel string) net.Conn {
	fl.t.Helper()
	var c net.Conn
	select {
	case c = <-fl.accepted:
	case <-time.After(10 * time.Second):
		fl.t.Fatal("the follower never dialled its relay")
	}
	fl.t.Cleanup(func() { c.Close() })
	c.(*net.TCPConn).SetReadBuffer(4096)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || string(magic[:]) != "  V2" {
		fl.t.Fatalf("relay magic %q: %v", magic, err)
	}
	if l, err := r.ReadString('\n'); err != nil || l != "IDENTIFY\n" {
		fl.t.Fatalf("relay sent %q (%v), want IDENTIFY", l, err)
	}
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		fl.t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(size[:]))); err != nil {
		fl.t.Fatal(err)
	}
	if l, err := r.ReadString('\n'); err != nil || l != "SUB "+topic+" "+channel+"\n" {
		fl.t.Fatalf("relay sent %q (%v), want SUB %s %s", l, err, topic, channel)
	}
	ok := []byte{0, 0, 0, 6, 0, 0, 0, 0, 'O', 'K'}
	if _, err := c.Write(append(ok, ok...)); err != nil {
		fl.t.Fatal(err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// deliver writes a message frame to the relay.
func (fl *fakeLeader) deliver(c net.Conn, id, body string) {
	fl.t.Helper()
	b := binary.BigEndian.AppendUint32(nil, uint32(4+26+len(body)))
	b = binary.BigEndian.AppendUint32(b, 2)
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().UnixNano()))
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, id...)
	b = append(b, body...)
	if _, err := c.Write(b); err != nil {
		fl.t.Fatal(err)
	}
}

// relayOfChannel waits for replica r to relay topic/channel and returns
// the relay once cond holds for it.
func relayOfChannel(t *testing.T, r *replica, topic, channel string, cond func(*relay) bool, what string) *relay {
	t.Helper()
	repl := r.n.repl.Load()
	var rl *relay
	eventually(t, 10*time.Second, func() bool {
		tp, err := r.n.GetExistingTopic(topic)
		if err != nil {
			return false
		}
		c, err := tp.GetExistingChannel(channel)
		if err != nil {
			return false
		}
		rl = repl.relayOf(c)
		return rl != nil && cond(rl)
	}, "replica %d relays %s/%s: %s", r.opts.ID, topic, channel, what)
	return rl
}

// TestReplicationRelayWritesDoNotBlock: a leader that stops reading from
// a follower's relay (hung, or its socket buffers full) delays neither a
// local consumer's commands nor the follower's queue-scan loop, which
// serves every channel's timeouts: commands up the relay are queued for
// its writer, never written by the consumer's command loop or the scan
// loop (before: each waited up to the relay's 5 s write deadline).
func TestReplicationRelayWritesDoNotBlock(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	f := followersOf(rs, l)[0]
	fl := startFakeLeader(t)
	repl := f.n.repl.Load()
	addr := fl.ln.Addr().String()
	repl.relayTarget.Store(&addr)
	t.Cleanup(func() { repl.relayTarget.Store(nil) })

	// e consumes an ephemeral channel (no relay): its timeouts are the
	// queue-scan loop's.
	e := subscribe(t, f.n, "other#ephemeral", "c#ephemeral", `{"msg_timeout":1000}`)
	e.send("RDY 1")
	a := subscribe(t, f.n, "hung", "c", "")
	b := subscribe(t, f.n, "hung", "c", `{"msg_timeout":1000}`)
	a.send("RDY 1")
	b.send("RDY 1")
	conn := fl.handshake("hung", "c")
	rl := relayOfChannel(t, f, "hung", "c", func(rl *relay) bool { return rl.rdy.Load() == 2 }, "with RDY 2")
	fl.deliver(conn, "0000000000000001", "m1")
	fl.deliver(conn, "0000000000000002", "m2")
	ma := a.readMsg(10 * time.Second)
	b.readMsg(10 * time.Second) // b holds it until it times out, within 1 s

	// Fill the relay's socket: 1 MiB of NOPs, far more than the socket
	// buffers hold (the relay's send buffer is made small too) and well
	// under relayQueueMax.
	rl.conn.(*net.TCPConn).SetWriteBuffer(8192)
	sent := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		rl.send(strings.Repeat("NOP\n", 1<<18))
		sent <- time.Since(start)
	}()
	var took time.Duration
	select {
	case took = <-sent:
	case <-time.After(200 * time.Millisecond):
		// Still sending (before relays queued their commands, send
		// wrote under the relay's lock): what follows waits behind it.
	}
	publish(t, f.n, "other#ephemeral", "e1")
	me := e.readMsg(10 * time.Second)
	delivered := time.Now()

	// a's FIN goes up the stalled relay; the FIN after it, of the same
	// ID, is answered at once.
	start := time.Now()
	a.send("FIN " + ma.id)
	a.send("FIN " + ma.id)
	if ft, data := a.readFrame(); ft != frameError || !strings.HasPrefix(string(data), "E_FIN_FAILED") {
		t.Fatalf("second FIN = %d %q, want E_FIN_FAILED", ft, data)
	}
	t.Logf("FIN answered after %v", time.Since(start))
	if d := time.Since(start); d > time.Second {
		t.Errorf("a consumer's FIN with the leader not reading took %v (want well under 1 s)", d)
	}
	// b's message timed out meanwhile (sent up the stalled relay by the
	// queue-scan loop); e's times out after 1 s, handled by the same loop.
	again := e.readMsg(10 * time.Second)
	if again.id != me.id || again.attempts != 2 {
		t.Fatalf("e got %s attempts %d after its timeout, want %s attempts 2", again.id, again.attempts, me.id)
	}
	t.Logf("redelivered after %v", time.Since(delivered))
	if d := time.Since(delivered); d > 2500*time.Millisecond {
		t.Errorf("a 1 s timeout on another channel redelivered after %v (want under 2.5 s: the queue-scan loop was held)", d)
	}
	if took == 0 {
		select {
		case took = <-sent:
		case <-time.After(10 * time.Second):
			t.Fatal("relay.send still blocked after 10 s")
		}
	}
	// Queuing 1 MiB is a copy (under -race on a busy machine, once over
	// 100 ms); writing it waited for the 5 s deadline.
	t.Logf("relay.send of 1 MiB took %v", took)
	if took > time.Second {
		t.Errorf("relay.send took %v with the leader not reading", took)
	}
}

// TestReplicationFollowerGivesBack: messages that a follower's relay
// received but its consumers can no longer take (their RDY dropped, as in
// go-nsq's backoff) are given back to the leader at once, and a consumer on
// another replica gets them with attempts 1 (the give-back is not an
// attempt), long before the relay's backstop timer (2 × --max-msg-timeout,
// 20 s here). The messages' trip through the follower's queue is held
// (the local channel paused on that replica only), standing for
// deliveries in transit when the consumer's RDY drops.
func TestReplicationFollowerGivesBack(t *testing.T) {
	rs := startReplicaSetWith(t, 3, func(o *Options) {
		o.MaxMsgTimeout, o.MsgTimeout = 10*time.Second, 5*time.Second
	})
	l := leaderOf(t, rs)
	fs := followersOf(rs, l)
	x := subscribe(t, fs[0].n, "gb", "c", "")
	y := subscribe(t, fs[1].n, "gb", "c", "")
	x.send("RDY 3")
	rl := relayOfChannel(t, fs[0], "gb", "c", func(rl *relay) bool { return rl.rdy.Load() == 3 }, "with RDY 3")
	// Only give-backs for want of room here; age is another test's.
	fs[0].n.repl.Load().relayQueueWait.Store(int64(time.Minute))
	rl.c.pause()
	publish(t, l.n, "gb", "m1", "m2", "m3")
	eventually(t, 10*time.Second, func() bool { return rl.c.Depth() == 3 }, "three messages wait in the follower's queue")

	x.send("RDY 1")
	eventually(t, 5*time.Second, func() bool { return rl.rdy.Load() == 1 }, "the relay's RDY follows x's to 1")
	rl.c.unpause()
	mx := x.readMsg(10 * time.Second)
	x.send("RDY 0")
	eventually(t, 5*time.Second, func() bool { return rl.rdy.Load() == 0 }, "the relay's RDY follows x's to 0")

	start := time.Now()
	y.send("RDY 10")
	got := append([]string{mx.body}, finGivenBack(t, y, 2)...)
	t.Logf("given-back messages on another replica after %v", time.Since(start))
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the consumer on another replica got the given-back messages after %v (want well under the 20 s backstop)", d)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"m1", "m2", "m3"}) {
		t.Errorf("x and y got %v, want m1 m2 m3", got)
	}
	x.send("FIN " + mx.id)
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool { return r.unfinished("gb", "c") == 0 }, "FINs in the set's state on replica %d", r.opts.ID)
	}
	x.expectNothing(300 * time.Millisecond)
	y.expectNothing(10 * time.Millisecond)
	if rq, to, mc := setCounts(t, rs, "gb", "c"); rq != 0 || to != 0 || mc != 3 {
		t.Errorf("set's requeue_count %d, timeout_count %d, message_count %d; want 0, 0, 3", rq, to, mc)
	}
}

// finGivenBack reads n messages on y, each given back by another replica
// and so on its first attempt, FINs them and returns their bodies.
func finGivenBack(t *testing.T, y *rawConn, n int) []string {
	t.Helper()
	var got []string
	for range n {
		m := y.readMsg(10 * time.Second)
		if m.attempts != 1 {
			t.Errorf("got %s with attempts %d, want 1 (a give-back is no attempt)", m.body, m.attempts)
		}
		got = append(got, m.body)
		y.send("FIN " + m.id)
	}
	return got
}

// TestReplicationFollowerGivesBackAged: messages that wait in a
// follower's queue past the bound (relayQueueWait, 300 ms here) although
// its consumer has room for them (the local channel paused on that replica
// only, standing for a consumer slow to take) are given back too, and a
// consumer on another replica gets them, attempts 1, well before the
// relay's backstop timer (60 s here).
func TestReplicationFollowerGivesBackAged(t *testing.T) {
	rs := startReplicaSetWith(t, 3, func(o *Options) {
		o.MaxMsgTimeout, o.MsgTimeout = 30*time.Second, 5*time.Second
	})
	l := leaderOf(t, rs)
	fs := followersOf(rs, l)
	x := subscribe(t, fs[0].n, "ag", "c", "")
	y := subscribe(t, fs[1].n, "ag", "c", "")
	x.send("RDY 2")
	rl := relayOfChannel(t, fs[0], "ag", "c", func(rl *relay) bool { return rl.rdy.Load() == 2 }, "with RDY 2")
	fs[0].n.repl.Load().relayQueueWait.Store(int64(300 * time.Millisecond))
	rl.c.pause()
	publish(t, l.n, "ag", "m1", "m2")
	eventually(t, 10*time.Second, func() bool { return rl.c.Depth() > 0 }, "messages wait in the follower's queue")

	start := time.Now()
	y.send("RDY 10")
	got := finGivenBack(t, y, 2)
	t.Logf("aged messages on another replica after %v", time.Since(start))
	// A given-back message may come back to the same follower (its relay
	// first in the leader's line) and wait again: 0.3-1.2 s seen, 2.7 s
	// on a loaded machine.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the consumer on another replica got the waiting messages after %v (want well under the 60 s backstop)", d)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"m1", "m2"}) {
		t.Errorf("y got %v, want m1 m2", got)
	}
	rl.c.unpause()
	x.expectNothing(300 * time.Millisecond)
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool { return r.unfinished("ag", "c") == 0 }, "FINs in the set's state on replica %d", r.opts.ID)
	}
}

// TestReplicationRelayQueueFull: a relay whose leader leaves more than its
// queue's bound of commands unread ends (its connection is closed, so the
// leader requeues what the relay held and the follower empties its
// channel) and takes no more commands.
func TestReplicationRelayQueueFull(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c2.Close()
	rl := &relay{conn: c1, max: 64, wake: make(chan struct{}, 1), done: make(chan struct{})}
	var id MessageID
	copy(id[:], "0000000000000001")
	for range 3 {
		rl.sendID("FIN ", id) // 21 bytes each
	}
	if got := string(rl.out); got != strings.Repeat("FIN 0000000000000001\n", 3) {
		t.Fatalf("queued %q", got)
	}
	rl.sendID("TOUCH ", id)
	if !rl.ended || !errors.Is(rl.cause, errRelayQueueFull) || rl.out != nil {
		t.Fatalf("past its bound: ended %v, cause %v, %d bytes queued; want ended, queue full, nothing", rl.ended, rl.cause, len(rl.out))
	}
	if _, err := c1.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write to the relay's connection after overflow: %v, want it closed", err)
	}
	rl.send("NOP\n")
	if len(rl.out) != 0 {
		t.Errorf("an ended relay queued %q", rl.out)
	}
}

// TestReplicationRelayCloseFlushes: a relay closed on purpose (its last
// consumer left, the leader changed, the daemon stops) first writes the
// commands still queued, so the REQs of a consumer that disconnected (its
// in-flight messages) reach the leader before the connection ends, which
// would make the leader requeue them with no REQ delay and no attempt
// logged. The writer here starts only once the commands are queued.
func TestReplicationRelayCloseFlushes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	rl := &relay{conn: conn, max: relayQueueMax, wake: make(chan struct{}, 1),
		flush: make(chan struct{}), wdone: make(chan struct{}), done: make(chan struct{})}
	go func() { // stands for the reader: ends when conn is closed
		io.Copy(io.Discard, conn)
		close(rl.done)
	}()
	var id MessageID
	copy(id[:], "0000000000000001")
	rl.send("REQ 0000000000000001 1500\n")
	rl.sendID("FIN ", id)
	go rl.write()
	closeRelays([]*relay{rl}, true)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatalf("reading what the relay sent before it closed: %v", err)
	}
	if want := "REQ 0000000000000001 1500\nFIN 0000000000000001\n"; string(got) != want {
		t.Errorf("the leader got %q before the relay closed, want %q", got, want)
	}
	rl.send("NOP\n")
	if len(rl.out) != 0 {
		t.Errorf("a closed relay queued %q", rl.out)
	}
}

// TestReplicationTakeQueued: Channel.takeQueued gives back from the head
// of the memory queue what is beyond keep and what arrived at or before
// the bound, oldest first, and leaves the rest in order.
func TestReplicationTakeQueued(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	tp, err := n.GetTopic("tq")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tp.GetChannel("c")
	if err != nil {
		t.Fatal(err)
	}
	queue := func(arrived ...int64) {
		for i, ts := range arrived {
			m := &Message{Body: []byte(fmt.Sprint(ts)), Timestamp: 1, deliveryTS: ts}
			copy(m.ID[:], fmt.Sprintf("%016d", i))
			if _, err := c.enqueue([]*Message{m}); err != nil {
				t.Fatal(err)
			}
		}
	}
	bodies := func(ms []*Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, string(m.Body))
		}
		return out
	}
	for _, tc := range []struct {
		arrived    []int64
		keep       int
		before     int64
		want, left []string
	}{
		{[]int64{10, 20, 30}, 3, 5, nil, []string{"10", "20", "30"}},
		{[]int64{10, 20, 30}, 1, 5, []string{"10", "20"}, []string{"30"}},
		{[]int64{10, 20, 30}, 0, 5, []string{"10", "20", "30"}, nil},
		{[]int64{10, 20, 30}, 3, 20, []string{"10", "20"}, []string{"30"}},
		{[]int64{10, 20, 30}, 2, 10, []string{"10"}, []string{"20", "30"}},
	} {
		c.empty()
		queue(tc.arrived...)
		got := bodies(c.takeQueued(tc.keep, tc.before))
		c.mu.Lock()
		left := bodies(c.mem.drain())
		c.mu.Unlock()
		if !slices.Equal(got, tc.want) || !slices.Equal(left, tc.left) {
			t.Errorf("takeQueued(%d, %d) of %v = %v leaving %v; want %v leaving %v", tc.keep, tc.before, tc.arrived, got, left, tc.want, tc.left)
		}
	}
}

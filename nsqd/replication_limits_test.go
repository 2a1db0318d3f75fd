package nsqd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func liveFollowers(rs []*replica, l *replica) []*replica {
	var out []*replica
	for _, r := range rs {
		if r != l && r.n != nil {
			out = append(out, r)
		}
	}
	return out
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// waitChannel waits until every running replica has the channel.
func waitChannel(t *testing.T, rs []*replica, topic, channel string) {
	t.Helper()
	for _, r := range rs {
		if r.n != nil {
			eventually(t, 5*time.Second, func() bool { _, err := r.n.topicChannel(topic, channel); return err == nil },
				"replica %d has %s/%s", r.opts.ID, topic, channel)
		}
	}
}

func base(r *replica) string { return "http://" + r.n.HTTPAddr().String() }

// TestReplicationLimitsConfig: a channel config POSTed on a follower is the
// set's: every replica shows it (GET /channel/config, nsqd.dat), and a
// publish over max_depth is refused with single-node's error on the leader
// and on a follower (TCP PUB and MPUB, HTTP /pub), counted once per set.
func TestReplicationLimitsConfig(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	fs := liveFollowers(rs, l)
	for _, path := range []string{"/topic/create?topic=lim", "/channel/create?topic=lim&channel=c"} {
		if code, body := httpPost(t, base(l)+path, ""); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
	waitChannel(t, rs, "lim", "c")
	if code, body := httpPost(t, base(fs[0])+"/channel/config?topic=lim&channel=c&max_depth=2&max_attempts=3", ""); code != http.StatusOK {
		t.Fatalf("POST /channel/config on a follower = %d %s", code, body)
	}
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool {
			var cr ConfigResponse
			getJSON(t, base(r)+"/channel/config?topic=lim&channel=c", &cr)
			return cr.Overrides.MaxDepth != nil && *cr.Overrides.MaxDepth == 2 && cr.Effective.MaxDepth == 2 &&
				cr.Effective.MaxAttempts == 3 && cr.Effective.Source["max_depth"] == "channel"
		}, "replica %d shows the channel's config", r.opts.ID)
		eventually(t, 5*time.Second, func() bool {
			m, err := r.n.readMetadataFile()
			return err == nil && len(m.Topics) == 1 && len(m.Topics[0].Channels) == 1 &&
				m.Topics[0].Channels[0].Config != nil && *m.Topics[0].Channels[0].Config.MaxDepth == 2
		}, "replica %d's nsqd.dat has the config", r.opts.ID)
	}

	lc := dialRaw(t, l.n)
	lc.send("PUB lim", []byte("1"))
	lc.expect(0, "OK")
	fc := dialRaw(t, fs[1].n)
	fc.send("PUB lim", []byte("2"))
	fc.expect(0, "OK")
	const full = "PUB failed channel lim:c is full (max_depth 2)"
	for _, r := range rs {
		c := dialRaw(t, r.n)
		c.send("PUB lim", []byte("3"))
		c.expect(1, "E_PUB_FAILED "+full)
	}
	c := dialRaw(t, fs[0].n)
	c.write(cat([]byte("MPUB lim\n"), mpubBody("a", "b")))
	c.expect(1, "E_MPUB_FAILED MPUB failed channel lim:c is full (max_depth 2)")
	code, body := httpPost(t, base(fs[1])+"/pub?topic=lim", "4")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "QUEUE_FULL") {
		t.Errorf("/pub on a follower of a full channel = %d %s, want 503 QUEUE_FULL", code, body)
	}
	for _, r := range rs {
		if got := r.unfinished("lim", "c"); got != 2 {
			t.Errorf("replica %d holds %d messages, want 2", r.opts.ID, got)
		}
	}
	var rejected uint64
	for _, r := range rs {
		ch, err := r.n.topicChannel("lim", "c")
		if err != nil {
			t.Fatal(err)
		}
		rejected += ch.rejectedCount.Load()
	}
	if rejected != 6 { // 3 PUBs, an MPUB of 2, one /pub
		t.Errorf("rejected_count summed over the set = %d, want 6", rejected)
	}

	// nsqadmin's limits form posts to every producer of the topic at once:
	// three equal OpConfig entries, the same result everywhere.
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			resp, err := http.Post(base(r)+"/channel/config?topic=lim&channel=c&max_depth=3", "", nil)
			if err != nil {
				t.Errorf("POST: %v", err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("POST /channel/config on replica %d = %d", r.opts.ID, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool {
			var cr ConfigResponse
			getJSON(t, base(r)+"/channel/config?topic=lim&channel=c", &cr)
			return cr.Effective.MaxDepth == 3 && cr.Effective.MaxAttempts == 3
		}, "replica %d shows max_depth 3", r.opts.ID)
	}
	c.Close()
	c = dialRaw(t, fs[0].n)
	c.send("PUB lim", []byte("3"))
	c.expect(0, "OK")
}

func (n *NSQD) topicChannel(topic, channel string) (*Channel, error) {
	t, err := n.GetExistingTopic(topic)
	if err != nil {
		return nil, err
	}
	return t.GetExistingChannel(channel)
}

// TestReplicationDeadLetterFailover: max_attempts on the leader makes a dead
// letter in the set's state: consumed once from the dead-letter topic with
// its origin (peek's death); after the leader stops, the new leader still
// has the dead letter's origin, and the source message is not delivered
// again.
func TestReplicationDeadLetterFailover(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	for _, path := range []string{"/topic/create?topic=jobs", "/channel/create?topic=jobs&channel=w",
		"/topic/create?topic=jobs.w.dlq", "/channel/create?topic=jobs.w.dlq&channel=ops",
		"/channel/config?topic=jobs&channel=w&max_attempts=2"} {
		if code, body := httpPost(t, base(l)+path, ""); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
	waitChannel(t, rs, "jobs.w.dlq", "ops")
	pc := dialRaw(t, l.n)
	pc.send("PUB jobs", []byte("poison"))
	pc.expect(0, "OK")
	pc.send("PUB jobs", []byte("fine"))
	pc.expect(0, "OK")

	c := dialRaw(t, l.n)
	c.send("SUB jobs w")
	c.expect(0, "OK")
	c.send("RDY 10")
	attempts := 0
	for fined := false; attempts < 2 || !fined; {
		m := c.readMsg(5 * time.Second)
		if m.body == "fine" {
			c.send("FIN " + m.id)
			fined = true
			continue
		}
		attempts++
		c.send("REQ " + m.id + " 0")
	}
	c.expectNothing(300 * time.Millisecond)

	dc := dialRaw(t, l.n)
	dc.send("SUB jobs.w.dlq ops")
	dc.expect(0, "OK")
	dc.send("RDY 10")
	dm := dc.readMsg(5 * time.Second)
	if dm.body != "poison" {
		t.Fatalf("dead letter %q, want poison", dm.body)
	}
	dc.send("FIN " + dm.id)
	dc.expectNothing(300 * time.Millisecond)
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool {
			return r.unfinished("jobs", "w") == 0 && r.unfinished("jobs.w.dlq", "ops") == 0
		}, "replica %d: source and dead letter settled", r.opts.ID)
		eventually(t, 5*time.Second, func() bool {
			var cr ConfigResponse
			getJSON(t, base(r)+"/topic/config?topic=jobs.w.dlq", &cr)
			return len(cr.DeadLetters) == 1 && cr.DeadLetters[0].ID == dm.id &&
				cr.DeadLetters[0].Reason == "max_attempts" && cr.DeadLetters[0].Attempts == 2 && cr.DeadLetters[0].SourceChannel == "w"
		}, "replica %d lists the dead letter's origin", r.opts.ID)
	}

	// A second poison message, dead-lettered and left in the dead-letter
	// topic; then the leader goes.
	pc.send("PUB jobs", []byte("poison2"))
	pc.expect(0, "OK")
	for range 2 {
		m := c.readMsg(5 * time.Second)
		c.send("REQ " + m.id + " 0")
	}
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool {
			return r.unfinished("jobs", "w") == 0 && r.unfinished("jobs.w.dlq", "ops") == 1
		}, "replica %d: second dead letter in the set's state", r.opts.ID)
	}
	c.Close()
	dc.Close()
	l.stop()
	l.n = nil
	l2 := leaderOf(t, rs)
	c2 := dialRaw(t, l2.n)
	c2.send("SUB jobs w")
	c2.expect(0, "OK")
	c2.send("RDY 10")
	c2.expectNothing(500 * time.Millisecond) // the source messages are settled
	resp, err := http.Get(base(l2) + "/channel/peek?topic=jobs.w.dlq&channel=ops")
	if err != nil {
		t.Fatal(err)
	}
	var peek struct {
		Messages []PeekMessage `json:"messages"`
	}
	json.NewDecoder(resp.Body).Decode(&peek)
	resp.Body.Close()
	if len(peek.Messages) != 1 || peek.Messages[0].Death == nil || peek.Messages[0].Death.SourceTopic != "jobs" ||
		peek.Messages[0].Death.Reason != "max_attempts" {
		t.Errorf("peek on the new leader = %+v, want poison2 with its origin", peek.Messages)
	}
	d2 := dialRaw(t, l2.n)
	d2.send("SUB jobs.w.dlq ops")
	d2.expect(0, "OK")
	d2.send("RDY 10")
	if m := d2.readMsg(5 * time.Second); m.body != "poison2" {
		t.Errorf("dead letter after failover %q, want poison2", m.body)
	}
	d2.expectNothing(300 * time.Millisecond)
}

// runDrainable runs a replica whose Run may end by itself (a drain); the
// channel gets Run's result when it ends.
func (r *replica) runDrainable() <-chan error {
	r.t.Helper()
	r.start()
	return r.ended
}

func (n *NSQD) readMetadataFile() (metadata, error) {
	var m metadata
	b, err := os.ReadFile(n.metadataFile())
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	return m, err
}

// TestReplicationDrain: a draining follower refuses publishes, gives back
// what its relay held and exits 0; a draining leader hands the lead over
// first. The set keeps every message: the rest of the set delivers them.
func TestReplicationDrain(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	for _, r := range rs {
		r.stop()
	}
	results := make([]<-chan error, len(rs))
	for i, r := range rs {
		results[i] = r.runDrainable()
	}
	l = leaderOf(t, rs)
	fs := liveFollowers(rs, l)
	for _, path := range []string{"/topic/create?topic=d", "/channel/create?topic=d&channel=c"} {
		if code, body := httpPost(t, base(l)+path, ""); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
	pc := dialRaw(t, l.n)
	for i := range 10 {
		pc.send("PUB d", []byte(fmt.Sprintf("m%d", i)))
		pc.expect(0, "OK")
	}
	// A consumer on the follower holds one message in flight through its
	// relay, and the relay has more queued there.
	f := fs[0]
	fc := dialRaw(t, f.n)
	fc.send("SUB d c")
	fc.expect(0, "OK")
	fc.send("RDY 1")
	held := fc.readMsg(10 * time.Second)

	req, _ := http.NewRequest(http.MethodPut, base(f)+"/state/drain", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c := dialRaw(t, f.n)
	c.send("PUB d", []byte("refused"))
	c.expect(1, "E_PUB_FAILED PUB failed nsqd draining")
	c = dialRaw(t, f.n)
	c.send("SUB d c")
	c.expect(1, "E_SUB_FAILED SUB failed nsqd draining")
	// The consumer settles what it holds (and what the relay delivered
	// before RDY 0 reached the leader); the follower then exits 0.
	finned := map[string]bool{held.body: true}
	fc.send("FIN " + held.id)
	deadline := time.Now().Add(15 * time.Second)
	for exited := false; !exited; {
		select {
		case err := <-results[indexOf(rs, f)]:
			if err != nil {
				t.Fatalf("draining follower: Run = %v, want nil", err)
			}
			exited = true
			continue
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("draining follower did not exit: %+v", f.n.State())
		}
		if ft, data, err := fc.nextFrame(time.Now().Add(50 * time.Millisecond)); err == nil && ft == frameMessage {
			finned[string(data[26:])] = true
			fc.send("FIN " + string(data[10:26]))
		}
	}
	f.n = nil
	fc.Close()

	// The leader drains: it hands the lead to the last replica first.
	other := fs[1]
	req, _ = http.NewRequest(http.MethodPut, base(l)+"/state/drain", nil)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eventually(t, 15*time.Second, other.leads, "the other replica leads")
	select {
	case err := <-results[indexOf(rs, l)]:
		if err != nil {
			t.Fatalf("draining leader: Run = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("draining leader did not exit")
	}
	l.n = nil

	// The drained replicas come back; the set delivers the 9 unfinished.
	f.runDrainable()
	l.runDrainable()
	l2 := leaderOf(t, rs)
	got := consume(t, l2.n, "d", "c", 10-len(finned))
	for _, b := range got {
		if finned[b] {
			t.Errorf("FIN'd message %s delivered again", b)
		}
	}
}

func indexOf(rs []*replica, r *replica) int {
	for i, x := range rs {
		if x == r {
			return i
		}
	}
	return -1
}

// TestReplicationDropOldestAndTTL: drop-oldest is the FSM's on every
// replica and the leader's channel forgets what it dropped (a consumer
// gets the newest only), dead-lettered with dead_letter_dropped; a message
// past msg_ttl_ms is expired by the leader and dead-lettered with
// dead_letter_expired, on every replica's state.
func TestReplicationDropOldestAndTTL(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	for _, path := range []string{"/topic/create?topic=q", "/channel/create?topic=q&channel=c",
		"/channel/config?topic=q&channel=c&max_depth=2&overflow=drop-oldest&dead_letter_dropped=true&dead_letter_topic=q-dead",
		"/topic/create?topic=q-dead", "/channel/create?topic=q-dead&channel=ops"} {
		if code, body := httpPost(t, base(l)+path, ""); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
	waitChannel(t, rs, "q-dead", "ops")
	pc := dialRaw(t, liveFollowers(rs, l)[0].n)
	for _, b := range bodies("d", 0, 5) {
		pc.send("PUB q", []byte(b))
		pc.expect(0, "OK")
	}
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool {
			return r.unfinished("q", "c") == 2 && r.unfinished("q-dead", "ops") == 3
		}, "replica %d: 2 kept, 3 dead-lettered", r.opts.ID)
	}
	lc, _ := l.n.topicChannel("q", "c")
	if d := lc.Depth(); d != 2 {
		t.Errorf("leader's channel depth = %d, want 2 (the dropped forgotten)", d)
	}
	if got := consume(t, l.n, "q", "c", 2); !slices.Equal(got, []string{"d003", "d004"}) {
		t.Errorf("consumer got %v, want the newest two", got)
	}
	if got := consume(t, l.n, "q-dead", "ops", 3); !slices.Equal(got, []string{"d000", "d001", "d002"}) {
		t.Errorf("dead letters %v, want the oldest three", got)
	}
	if n := lc.droppedCount.Load(); n != 3 {
		t.Errorf("leader's dropped_count = %d, want 3", n)
	}

	// TTL: the leader expires at delivery and logs the dead letter.
	for _, path := range []string{"/topic/create?topic=ttl", "/channel/create?topic=ttl&channel=c",
		"/channel/config?topic=ttl&channel=c&msg_ttl=50ms&dead_letter_expired=true&dead_letter_topic=q-dead"} {
		if code, body := httpPost(t, base(l)+path, ""); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
	pc.send("PUB ttl", []byte("old"))
	pc.expect(0, "OK")
	time.Sleep(100 * time.Millisecond) // older than the TTL
	c := dialRaw(t, l.n)
	c.send("SUB ttl c")
	c.expect(0, "OK")
	c.send("RDY 10")
	c.expectNothing(300 * time.Millisecond)
	tc, _ := l.n.topicChannel("ttl", "c")
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool {
			return r.unfinished("ttl", "c") == 0 && r.unfinished("q-dead", "ops") == 1
		}, "replica %d: expired message dead-lettered", r.opts.ID)
	}
	if n := tc.expiredCount.Load(); n != 1 {
		t.Errorf("leader's expired_count = %d, want 1", n)
	}
}

// backlog is how many messages a topic's backlog holds in the set's state
// as replica r sees it.
func (r *replica) backlog(topic string) int {
	for _, tv := range r.n.repl.Load().node.FSM().View(true) {
		if tv.Name == topic {
			return len(tv.Messages)
		}
	}
	return -1
}

// TestReplicationRedrive: a dead letter waiting in a dead-letter topic
// without channels is redriven on the leader; the set's backlog loses it
// on every replica and the source channel gets it again.
func TestReplicationRedrive(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	for _, path := range []string{"/topic/create?topic=r", "/channel/create?topic=r&channel=c",
		"/channel/config?topic=r&channel=c&max_attempts=1"} {
		if code, body := httpPost(t, base(l)+path, ""); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
	pc := dialRaw(t, l.n)
	pc.send("PUB r", []byte("x"))
	pc.expect(0, "OK")
	c := dialRaw(t, l.n)
	c.send("SUB r c")
	c.expect(0, "OK")
	c.send("RDY 1")
	m := c.readMsg(5 * time.Second)
	c.send("REQ " + m.id + " 0")
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool { return r.unfinished("r", "c") == 0 && r.backlog("r.c.dlq") == 1 },
			"replica %d: dead letter in r.c.dlq's backlog", r.opts.ID)
	}
	for _, r := range liveFollowers(rs, l) {
		if code, body := httpPost(t, base(r)+"/topic/redrive?topic=r.c.dlq&to_topic=r", ""); code != http.StatusOK || !strings.Contains(body, `"redriven":0`) {
			t.Errorf("redrive on a follower = %d %s, want 200 and 0 (the leader holds the queue)", code, body)
		}
	}
	if code, body := httpPost(t, base(l)+"/topic/redrive?topic=r.c.dlq&to_topic=r", ""); code != http.StatusOK || !strings.Contains(body, `"redriven":1`) {
		t.Fatalf("redrive on the leader = %d %s", code, body)
	}
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool { return r.backlog("r.c.dlq") == 0 }, "replica %d: r.c.dlq emptied", r.opts.ID)
	}
	if m := c.readMsg(5 * time.Second); m.body != "x" {
		t.Errorf("redriven message %q, want x", m.body)
	}
}

// TestReplicationLimitFlags: the limit flags are accepted with
// --replication-address; the leader records them as the set's defaults,
// which every replica shows and the set enforces.
func TestReplicationLimitFlags(t *testing.T) {
	o := NewOptions()
	o.ID = 1
	o.ReplicationAddress, o.ReplicationPeers = "127.0.0.1:4153", "1@127.0.0.1:4153"
	o.MaxChannelDepth, o.MaxAttempts, o.Overflow = 1, 5, OverflowReject
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate with limit flags and --replication-address: %v", err)
	}

	rs := startReplicaSetWith(t, 3, func(o *Options) { o.MaxChannelDepth, o.MaxAttempts = 1, 5 })
	l := leaderOf(t, rs)
	for _, path := range []string{"/topic/create?topic=f", "/channel/create?topic=f&channel=c"} {
		if code, body := httpPost(t, base(l)+path, ""); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
	waitChannel(t, rs, "f", "c")
	for _, r := range rs {
		var cr ConfigResponse
		eventually(t, 5*time.Second, func() bool {
			getJSON(t, base(r)+"/channel/config?topic=f&channel=c", &cr)
			return cr.Effective.MaxDepth == 1 && cr.Effective.MaxAttempts == 5 && cr.Effective.Source["max_depth"] == "default"
		}, "replica %d: effective %+v, want the flags' max_depth 1, max_attempts 5", r.opts.ID, &cr.Effective)
	}
	c := dialRaw(t, liveFollowers(rs, l)[0].n)
	c.send("PUB f", []byte("1"))
	c.expect(0, "OK")
	c.send("PUB f", []byte("2"))
	c.expect(1, "E_PUB_FAILED PUB failed channel f:c is full (max_depth 1)")
}

// TestReplicationMaxAttemptsOnFollower: a consumer on a follower REQs a
// message; the REQs go up the relay, the leader counts the attempts and at
// max_attempts the message becomes the set's dead letter.
func TestReplicationMaxAttemptsOnFollower(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	for _, path := range []string{"/topic/create?topic=fa", "/channel/create?topic=fa&channel=c",
		"/channel/config?topic=fa&channel=c&max_attempts=2"} {
		if code, body := httpPost(t, base(l)+path, ""); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
	f := liveFollowers(rs, l)[0]
	waitChannel(t, rs, "fa", "c")
	pc := dialRaw(t, f.n)
	pc.send("PUB fa", []byte("poison"))
	pc.expect(0, "OK")
	c := dialRaw(t, f.n)
	c.send("SUB fa c")
	c.expect(0, "OK")
	c.send("RDY 1")
	for i := range 2 {
		m := c.readMsg(10 * time.Second)
		if m.body != "poison" || int(m.attempts) != i+1 {
			t.Fatalf("delivery %d: %q attempts %d", i+1, m.body, m.attempts)
		}
		c.send("REQ " + m.id + " 0")
	}
	c.expectNothing(300 * time.Millisecond)
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool { return r.unfinished("fa", "c") == 0 && r.backlog("fa.c.dlq") == 1 },
			"replica %d: the dead letter in fa.c.dlq", r.opts.ID)
	}
}

package nsqd

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/nsqd/replication"
)

// replica is one daemon of a test replica set; start and stop it at will,
// on the same data path and ports.
type replica struct {
	t    *testing.T
	opts *Options
	n    *NSQD
	stop func()
	// ended gets Run's result when it ends (by itself after a drain, or
	// by stop).
	ended <-chan error
	// held keeps the replica's raft address while it is stopped (see
	// holdRaftPort); holdMu guards it.
	holdMu sync.Mutex
	held   net.Listener
}

// holdRaftPort binds the stopped replica's raft address until its next
// start, answering every connection with a close (as a refusal would).
// The raft address is the set's and cannot change across a restart; left
// free, any outgoing connection on the machine may take it as its local
// port (seen: taken for over a minute while a test restarted its replicas
// one by one).
func (r *replica) holdRaftPort() {
	l, err := net.Listen("tcp", r.opts.ReplicationAddress)
	if err != nil {
		return // taken already: start tries again
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	r.holdMu.Lock()
	r.held = l
	r.holdMu.Unlock()
}

func (r *replica) releaseRaftPort() {
	r.holdMu.Lock()
	defer r.holdMu.Unlock()
	if r.held != nil {
		r.held.Close()
		r.held = nil
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testRaft keeps raft's 1 s heartbeat and election timeouts (failovers take
// as long as in production) but gives the leader's lease the same second
// rather than 500 ms: the three replicas of a test share one process, and
// after a stall of the whole process (a busy machine, -race) the leader's
// next lease check finds no recent contact and it steps down, failing
// the publishes in flight ("leadership lost while committing log").
func testRaft(c *raft.Config) {
	c.LeaderLeaseTimeout = c.HeartbeatTimeout
}

// startReplicaSet runs size daemons as one replica set on loopback.
func startReplicaSet(t *testing.T, size int) []*replica {
	t.Helper()
	return startReplicaSetWith(t, size, nil)
}

// startReplicaSetWith is startReplicaSet with set(o) applied to every
// replica's options.
func startReplicaSetWith(t *testing.T, size int, set func(o *Options)) []*replica {
	t.Helper()
	var peers []string
	rs := make([]*replica, size)
	// A port is free only until it is closed again: never hand the same one
	// out twice within the set (seen: one replica's TCP port on another's
	// raft address).
	used := map[string]bool{}
	free := func(t *testing.T) string {
		for {
			if a := freeLoopbackAddr(t); !used[a] {
				used[a] = true
				return a
			}
		}
	}
	for i := range size {
		o := testOptions(t)
		o.TCPAddress, o.HTTPAddress = free(t), free(t)
		o.BroadcastAddress = "127.0.0.1"
		o.ID = int64(i + 1)
		o.Logger = nsqlog.New(testWriter{t}, fmt.Sprintf("[nsqd%d] ", i+1), nsqlog.Info.Slog())
		o.ReplicationAddress = free(t)
		o.raftTune = testRaft
		if set != nil {
			set(o)
		}
		peers = append(peers, fmt.Sprintf("%d@%s", i+1, o.ReplicationAddress))
		rs[i] = &replica{t: t, opts: o}
	}
	for _, r := range rs {
		r.opts.ReplicationPeers = strings.Join(peers, ",")
		r.start()
	}
	return rs
}

// start runs the replica and waits until it has joined the set. Run opens
// the raft log before it serves: on a restart that reads the last log
// segment whole (64 MiB preallocated), which under -race on a busy machine
// has taken 14 s, so the wait is long and callers' own deadlines (an
// election, say) start after it.
//
// Between a stop and a start another process may take one of the
// replica's ports (any outgoing connection's local port comes from the
// same range): the TCP and HTTP ports may change across a restart (a
// leader records its addresses in the log), so start takes new ones; the
// raft address is the set's and is tried again until it is free.
func (r *replica) start() {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := r.run(deadline)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			r.t.Fatalf("replica %d: %v", r.opts.ID, err)
		}
		r.t.Logf("replica %d: %v; trying again", r.opts.ID, err)
		if errors.Is(err, errClientPortTaken) {
			r.opts.TCPAddress, r.opts.HTTPAddress = freeLoopbackAddr(r.t), freeLoopbackAddr(r.t)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

var errClientPortTaken = errors.New("client port taken")

// run starts the replica once and waits until it has joined the set (nil)
// or Run has ended, or until deadline.
func (r *replica) run(deadline time.Time) error {
	r.releaseRaftPort()
	r.t.Cleanup(r.releaseRaftPort) // after stop, registered below (cleanups run last first)
	n, err := New(r.opts)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: New: %w", errClientPortTaken, err)
	}
	if err != nil {
		return fmt.Errorf("New: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, ended := make(chan error, 1), make(chan error, 1)
	go func() {
		err := n.Run(ctx)
		r.holdRaftPort()
		done <- err
		ended <- err
	}()
	for n.repl.Load() == nil {
		select {
		case err := <-done:
			cancel()
			return fmt.Errorf("Run ended before the replica joined the set: %w", err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			return errors.New("not joined the set within 60s")
		}
	}
	r.n, r.ended = n, ended
	r.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			r.t.Errorf("replica %d: Run: %v", r.opts.ID, err)
		}
	})
	r.t.Cleanup(r.stop)
	return nil
}

func (r *replica) leads() bool {
	return r.n != nil && r.n.repl.Load() != nil && r.n.repl.Load().node.IsLeader()
}

// leaderOf waits for one of the running replicas to lead and dispatch, and
// for every running replica to follow it in its term with its addresses
// applied (so that a follower forwards at once): a candidate still
// campaigning from the first election could otherwise depose it while the
// test publishes.
func leaderOf(t *testing.T, rs []*replica) *replica {
	t.Helper()
	var l *replica
	eventually(t, 15*time.Second, func() bool {
		l = nil
		for _, r := range rs {
			if r.n != nil && r.leads() {
				l = r
			}
		}
		if l == nil {
			return false
		}
		lr := l.n.repl.Load()
		term := lr.node.Raft().CurrentTerm()
		for _, r := range rs {
			if r.n == nil || r == l {
				continue
			}
			rr := r.n.repl.Load()
			if rr == nil {
				return false
			}
			if _, id := rr.node.Raft().LeaderWithID(); string(id) != lr.id || rr.node.Raft().CurrentTerm() != term || rr.node.LeaderClientAddrs() == "" {
				return false
			}
		}
		return true
	}, "a replica leads, followed by the others")
	return l
}

// unfinished is how many messages a channel holds in the set's state as
// replica r sees it.
func (r *replica) unfinished(topic, channel string) int {
	for _, tv := range r.n.repl.Load().node.FSM().View(true) {
		if tv.Name != topic {
			continue
		}
		for _, cv := range tv.Channels {
			if cv.Name == channel {
				return len(cv.Messages)
			}
		}
	}
	return -1
}

func httpPost(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/octet-stream", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// consume subscribes to the replica with RDY rdy, reads want messages,
// FINs them and returns their bodies, sorted.
func consume(t *testing.T, n *NSQD, topic, channel string, want int) []string {
	t.Helper()
	c := dialRaw(t, n)
	c.send("SUB " + topic + " " + channel)
	c.expect(0, "OK")
	c.send("RDY 100")
	var got []string
	for len(got) < want {
		m := c.readMsg(10 * time.Second)
		got = append(got, m.body)
		c.send("FIN " + m.id)
	}
	c.expectNothing(300 * time.Millisecond)
	slices.Sort(got)
	return got
}

func bodies(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%03d", prefix, i))
	}
	slices.Sort(out)
	return out
}

// TestReplicationPublishEverywhere: a publish on any replica (TCP PUB and
// MPUB, HTTP /pub) is answered once the set has it, only the leader
// delivers, FINs reach every replica's state, and /stats, /info,
// /replication and /metrics show the set.
func TestReplicationPublishEverywhere(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	var followers []*replica
	for _, r := range rs {
		if r != l {
			followers = append(followers, r)
		}
	}
	c := dialRaw(t, followers[0].n)
	c.send("PUB orders", []byte("m000"))
	c.expect(0, "OK")
	lc := dialRaw(t, l.n)
	lc.write(cat([]byte("MPUB orders\n"), mpubBody(bodies("m", 1, 11)...)))
	lc.expect(0, "OK")
	if code, body := httpPost(t, "http://"+followers[1].n.HTTPAddr().String()+"/pub?topic=orders", "m011"); code != 200 || body != "OK" {
		t.Fatalf("/pub on a follower = %d %q", code, body)
	}
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool { _, err := r.n.GetExistingTopic("orders"); return err == nil }, "topic on replica %d", r.opts.ID)
	}

	if got, want := consume(t, l.n, "orders", "billing", 12), bodies("m", 0, 12); !slices.Equal(got, want) {
		t.Fatalf("leader delivered %v, want %v", got, want)
	}
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool { return r.unfinished("orders", "billing") == 0 }, "FINs replicated to replica %d", r.opts.ID)
	}

	// DPUB through a follower keeps its delay.
	start := time.Now()
	c.send("DPUB later 300", []byte("late"))
	c.expect(0, "OK")
	dc := dialRaw(t, l.n)
	dc.send("SUB later c")
	dc.expect(0, "OK")
	dc.send("RDY 1")
	if m := dc.readMsg(5 * time.Second); m.body != "late" || time.Since(start) < 250*time.Millisecond {
		t.Errorf("DPUB 300 ms delivered %q after %v", m.body, time.Since(start))
	}

	var st struct {
		Replication *replication.Stats `json:"replication"`
	}
	resp, err := http.Get("http://" + followers[0].n.HTTPAddr().String() + "/stats?format=json")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Replication == nil || st.Replication.Role != "follower" || st.Replication.LeaderID != l.n.repl.Load().id || len(st.Replication.Peers) != 3 {
		t.Errorf("follower /stats replication = %+v", st.Replication)
	}
	for _, path := range []string{"/info", "/replication"} {
		resp, err := http.Get("http://" + l.n.HTTPAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"role":"leader"`) {
			t.Errorf("GET %s on the leader = %s, want role leader", path, b)
		}
	}
	resp, err = http.Get("http://" + l.n.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"nsq_replication_leader 1", "nsq_replication_commit_seconds_count", `nsq_replication_peer_last_contact_seconds{peer="`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestReplicationFollowerConsumers: consumers connected to followers only
// get every message once, through their replica's relay; their FINs are
// the set's; a REQ on a follower is delivered again (through either
// follower); after the leader dies the relays follow the new one and
// nothing unfinished is lost.
func TestReplicationFollowerConsumers(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	var fs []*replica
	for _, r := range rs {
		if r != l {
			fs = append(fs, r)
		}
	}
	pc := dialRaw(t, l.n)
	for _, b := range bodies("f", 0, 30) {
		pc.send("PUB relayed", []byte(b))
		pc.expect(0, "OK")
	}
	// Two consumers, one on each follower, share the channel.
	c1, c2 := dialRaw(t, fs[0].n), dialRaw(t, fs[1].n)
	for _, c := range []*rawConn{c1, c2} {
		c.send("SUB relayed work")
		c.expect(0, "OK")
		c.send("RDY 5")
	}
	got := map[string]int{}
	requeued := ""
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("followers delivered %d of 30: %v", len(got), got)
		}
		for _, c := range []*rawConn{c1, c2} {
			ft, data, err := c.nextFrame(time.Now().Add(50 * time.Millisecond))
			if err != nil || ft != frameMessage {
				continue
			}
			id, body := string(data[10:26]), string(data[26:])
			if requeued == "" {
				requeued = body
				c.send("REQ " + id + " 0") // comes again, through the leader to either follower
				continue
			}
			got[body]++
			c.send("FIN " + id)
		}
	}
	for b, n := range got {
		if n != 1 {
			t.Errorf("%q delivered %d times", b, n)
		}
	}
	for _, r := range rs {
		eventually(t, 10*time.Second, func() bool { return r.unfinished("relayed", "work") == 0 }, "follower FINs in the set's state on replica %d", r.opts.ID)
	}
	c1.expectNothing(200 * time.Millisecond)
	c1.Close()
	c2.Close()

	// The leader goes: the relays follow the new leader.
	pc.send("PUB relayed", []byte("after-0"))
	pc.expect(0, "OK")
	l.stop()
	l.n = nil
	l2 := leaderOf(t, rs)
	other := fs[0]
	if other == l2 {
		other = fs[1]
	}
	publishAcked(t, l2, "relayed", "after-1", 20*time.Second) // right after an election: retried until acknowledged
	oc := dialRaw(t, other.n)
	oc.send("SUB relayed work")
	oc.expect(0, "OK")
	oc.send("RDY 5")
	seen := map[string]bool{}
	for !seen["after-0"] || !seen["after-1"] {
		m := oc.readMsg(20 * time.Second)
		seen[m.body] = true
		oc.send("FIN " + m.id)
	}
}

// TestReplicationFailover: the leader stops; the others elect a leader that
// delivers every unfinished message and none that was FIN'd; with two of
// three down publishes fail (never OK); one replica back restores service
// and nothing acknowledged is lost.
func TestReplicationFailover(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	c := dialRaw(t, l.n)
	c.send("SUB jobs work")
	c.expect(0, "OK")
	for _, b := range bodies("j", 0, 20) {
		pc := dialRaw(t, l.n)
		pc.send("PUB jobs", []byte(b))
		pc.expect(0, "OK")
		pc.Close()
	}
	c.send("RDY 5")
	for range 5 {
		m := c.readMsg(5 * time.Second)
		c.send("FIN " + m.id)
	}
	eventually(t, 5*time.Second, func() bool { return l.unfinished("jobs", "work") == 15 }, "5 FINs committed")
	c.Close()

	l.stop()
	l.n = nil
	l2 := leaderOf(t, rs)
	got := consume(t, l2.n, "jobs", "work", 15)
	if want := bodies("j", 5, 20); len(got) != 15 || got[0] < "j005" {
		t.Fatalf("new leader delivered %v, want the 15 unfinished %v", got, want)
	}
	var other *replica
	for _, r := range rs {
		if r != l && r != l2 {
			other = r
		}
	}
	publishAcked(t, other, "jobs", "k000", 20*time.Second)

	// Two of three down: the survivor refuses publishes.
	l2.stop()
	l2.n = nil
	pc := dialRaw(t, other.n)
	pc.send("PUB jobs", []byte("never-ok"))
	// The survivor waits up to its apply timeout (5s) for a leader.
	ft, data, err := pc.nextFrame(time.Now().Add(10 * time.Second))
	if err != nil {
		t.Fatalf("PUB without quorum: %v", err)
	}
	if ft != 1 || !strings.HasPrefix(string(data), "E_PUB_FAILED") {
		t.Fatalf("PUB without quorum = %d %q, want E_PUB_FAILED", ft, data)
	}
	if code, _ := httpPost(t, "http://"+other.n.HTTPAddr().String()+"/pub?topic=jobs", "never-ok"); code != http.StatusServiceUnavailable {
		t.Errorf("/pub without quorum = %d, want 503", code)
	}

	// One back: service resumes; k000 and every unfinished message are
	// there (never-ok may be: a refused publish may still commit, never
	// the other way round).
	l.start()
	l3 := leaderOf(t, []*replica{l, other})
	publishAcked(t, other, "jobs", "k001", 20*time.Second)
	var after []string
	cc := dialRaw(t, l3.n)
	cc.send("SUB jobs work")
	cc.expect(0, "OK")
	cc.send("RDY 100")
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(after, "k000") || !slices.Contains(after, "k001") {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart got %v, want k000 and k001", after)
		}
		m := cc.readMsg(10 * time.Second)
		after = append(after, m.body)
		cc.send("FIN " + m.id)
	}
	for _, b := range after {
		if b != "k000" && b != "k001" && b != "never-ok" && !(b >= "j005" && b < "j020") {
			t.Errorf("delivered %q: neither acknowledged nor a redelivery", b)
		}
	}
}

func TestValidateReplicationOptions(t *testing.T) {
	cases := []struct {
		name            string
		addr, peers, id string
		durable         bool
		wantErr         string
	}{
		{name: "off"},
		{name: "ok", addr: "127.0.0.1:4153", peers: "7@127.0.0.1:4153,b@h:1", id: ""},
		{name: "explicit id", addr: "127.0.0.1:4153", peers: "a@127.0.0.1:4153,b@h:1", id: "a"},
		{name: "peers without address", peers: "a@h:1", wantErr: "need --replication-address"},
		{name: "not listed", addr: "127.0.0.1:4153", peers: "a@h:1", wantErr: "must list this replica"},
		{name: "bad peer", addr: "127.0.0.1:4153", peers: "7@nohostport", wantErr: "--replication-peers"},
		{name: "twice", addr: "127.0.0.1:4153", peers: "7@h:1,7@h:2", wantErr: "given twice"},
		{name: "bad address", addr: "nope", peers: "7@h:1", wantErr: "--replication-address"},
		{name: "durable", addr: "127.0.0.1:4153", peers: "7@h:1", durable: true, wantErr: "--durable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			o.ID = 7
			o.ReplicationAddress, o.ReplicationPeers, o.ReplicationID, o.Durable = tc.addr, tc.peers, tc.id, tc.durable
			err := o.Validate()
			if tc.wantErr == "" && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestReplicationMembership: transfer leadership, remove and add a replica
// over HTTP; a follower refuses with 503 NOT_LEADER.
func TestReplicationMembership(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	url := func(r *replica, path string) string { return "http://" + r.n.HTTPAddr().String() + path }
	var f *replica
	for _, r := range rs {
		if r != l {
			f = r
		}
	}
	if code, body := httpPost(t, url(f, "/replication/transfer-leadership"), ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "NOT_LEADER") {
		t.Errorf("transfer on a follower = %d %s, want 503 NOT_LEADER", code, body)
	}
	if code, body := httpPost(t, url(l, "/replication/transfer-leadership?id="+f.n.repl.Load().id), ""); code != 200 {
		t.Fatalf("transfer-leadership = %d %s", code, body)
	}
	eventually(t, 10*time.Second, f.leads, "replica %d leads after the transfer", f.opts.ID)

	peers := func(r *replica) int { return len(r.n.repl.Load().node.Stats().Peers) }
	if code, body := httpPost(t, url(f, "/replication/remove?id="+l.n.repl.Load().id), ""); code != 200 {
		t.Fatalf("remove = %d %s", code, body)
	}
	eventually(t, 5*time.Second, func() bool { return peers(f) == 2 }, "two replicas in the set")
	if code, body := httpPost(t, url(f, "/replication/join?id="+l.n.repl.Load().id+"&address="+l.opts.ReplicationAddress), ""); code != 200 {
		t.Fatalf("join = %d %s", code, body)
	}
	eventually(t, 5*time.Second, func() bool { return peers(f) == 3 && peers(l) == 3 }, "three replicas in the set again")
	pc := dialRaw(t, l.n)
	pc.send("PUB back", []byte("x"))
	pc.expect(0, "OK")
}

// TestReplicationHealthNoLeader: a replica that knows no leader for longer
// than an election (two of three stopped) reports the replication health
// condition in /ping, /stats and /metrics; it clears once a leader is back.
func TestReplicationHealthNoLeader(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	var survivor *replica
	var stopped []*replica
	for _, r := range rs {
		if r != l && survivor == nil {
			survivor = r
		} else {
			stopped = append(stopped, r)
		}
	}
	base := "http://" + survivor.n.HTTPAddr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/ping"); code != http.StatusOK || body != "OK" {
		t.Fatalf("/ping with a leader = %d %q, want 200 OK", code, body)
	}

	for _, r := range stopped {
		r.stop()
		r.n = nil
	}
	start := time.Now()
	var body string
	eventually(t, 20*time.Second, func() bool {
		var code int
		code, body = get("/ping")
		return code == http.StatusInternalServerError
	}, "the survivor's /ping turns NOK")
	if !strings.HasPrefix(body, "NOK - replication: no leader of the replica set known for ") {
		t.Errorf("/ping = %q, want NOK - replication: no leader ...", body)
	}
	if d := time.Since(start); d < replicationLeaderGrace {
		t.Errorf("/ping NOK after %s, before the %s grace", d, replicationLeaderGrace)
	}
	var st struct {
		Health     string            `json:"health"`
		Conditions []HealthCondition `json:"health_conditions"`
	}
	_, js := get("/stats?format=json")
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("/stats: %v", err)
	}
	i := slices.IndexFunc(st.Conditions, func(c HealthCondition) bool { return c.Condition == "replication" })
	if i < 0 || st.Conditions[i].OK || !strings.HasPrefix(st.Conditions[i].Message, "no leader") {
		t.Errorf("/stats health_conditions = %+v, want replication failing", st.Conditions)
	}
	if _, m := get("/metrics"); !strings.Contains(m, `nsq_health_condition{condition="replication"} 0`) {
		t.Errorf("/metrics lacks nsq_health_condition{condition=\"replication\"} 0")
	}

	stopped[0].start()
	leaderOf(t, []*replica{survivor, stopped[0]})
	eventually(t, 10*time.Second, func() bool {
		code, b := get("/ping")
		return code == http.StatusOK && b == "OK"
	}, "the survivor's /ping is OK again")
	if _, m := get("/metrics"); !strings.Contains(m, `nsq_health_condition{condition="replication"} 1`) {
		t.Errorf("/metrics lacks nsq_health_condition{condition=\"replication\"} 1")
	}
}

// TestReplicationSyncDoesNotWaitForRelayDial: a follower's relay dialling a
// leader that accepts and never answers (a hung leader: the handshake
// waits up to its 2 s deadline) holds no lock that Sync needs, so Sync (run
// by raft's FSM goroutine with FSM.mu held, on every leader change or
// restore) completes at once and aborts the dial in progress
// (docs/architecture.md, "Known exceptions").
func TestReplicationSyncDoesNotWaitForRelayDial(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	var f *replica
	for _, r := range rs {
		if r != l {
			f = r
			break
		}
	}
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	accepted := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	defer func() {
		hung.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	}()
	repl := f.n.repl.Load()
	addr := hung.Addr().String()
	repl.relayTarget.Store(&addr)

	pc := dialRaw(t, l.n)
	pc.send("PUB hung", []byte("m"))
	pc.expect(0, "OK")
	c := dialRaw(t, f.n)
	c.send("SUB hung work")
	c.expect(0, "OK")
	c.send("RDY 1")

	var conn net.Conn
	select {
	case conn = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the follower never dialled its relay")
	}
	defer conn.Close()
	// The relay is now in its handshake with the hung "leader".
	start := time.Now()
	repl.Sync(repl.node.FSM().View(false), false)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Sync took %v behind a relay's handshake with a hung leader (want well under the 2 s handshake deadline)", d)
	}
	// The dial in progress was aborted: its connection closes before the
	// handshake deadline.
	start = time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	for {
		if _, err := conn.Read(b); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the relay's connection to the hung leader was never closed")
			}
			break
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the aborted dial's connection closed after %v (want well under the 2 s handshake deadline)", d)
	}
	repl.relayTarget.Store(nil)
	// With the real leader again, the relay delivers.
	m := c.readMsg(15 * time.Second)
	if m.body != "m" {
		t.Fatalf("got %q through the relay, want %q", m.body, "m")
	}
}

// followersOf is every replica of rs but l.
func followersOf(rs []*replica, l *replica) []*replica {
	var fs []*replica
	for _, r := range rs {
		if r != l {
			fs = append(fs, r)
		}
	}
	return fs
}

// setMessage is message id of topic/channel in the set's state as replica
// r has applied it.
func (r *replica) setMessage(topic, channel, id string) (replication.Message, bool) {
	v, ok := messageIDValue(MessageID([]byte(id)))
	if !ok {
		return replication.Message{}, false
	}
	for _, tv := range r.n.repl.Load().node.FSM().View(true) {
		for _, cv := range tv.Channels {
			if tv.Name != topic || cv.Name != channel {
				continue
			}
			for _, m := range cv.Messages {
				if m.ID == v {
					return m, true
				}
			}
		}
	}
	return replication.Message{}, false
}

// frameFrom is a frame read by watch: conn is the index of the connection.
type frameFrom struct {
	conn int
	ft   int32
	data []byte
	m    wireMsg // for a message frame
}

// watch reads every frame but heartbeats of conns into one channel until
// the connections close (at the test's end).
func watch(conns ...*rawConn) <-chan frameFrom {
	out := make(chan frameFrom, 64)
	for i, c := range conns {
		go func() {
			for {
				ft, data, err := c.nextFrame(time.Now().Add(time.Hour))
				if err != nil {
					return
				}
				if isHeartbeat(ft, data) {
					continue
				}
				f := frameFrom{conn: i, ft: ft, data: data}
				if ft == frameMessage && len(data) >= 26 {
					f.m = wireMsg{attempts: binary.BigEndian.Uint16(data[8:10]), id: string(data[10:26]), body: string(data[26:])}
				}
				out <- f
			}
		}()
	}
	return out
}

// nextFrom waits up to d for the next frame that watch read.
func nextFrom(t *testing.T, frames <-chan frameFrom, d time.Duration, what string) frameFrom {
	t.Helper()
	select {
	case f := <-frames:
		return f
	case <-time.After(d):
		t.Fatalf("no frame within %v: %s", d, what)
		return frameFrom{}
	}
}

// setCounts sums a channel's requeue_count, timeout_count and
// message_count over the running replicas, as nsqadmin does.
func setCounts(t *testing.T, rs []*replica, topic, channel string) (requeued, timedOut, messages uint64) {
	t.Helper()
	for _, r := range rs {
		if r.n == nil {
			continue
		}
		st := httpChannelStats(t, r.n, topic, channel)
		requeued += st.RequeueCount
		timedOut += st.TimeoutCount
		messages += st.MessageCount
	}
	return requeued, timedOut, messages
}

// TestReplicationFollowerREQ: a REQ with a delay on a follower is the
// set's: the leader defers the message (the log has its attempts and
// deliver-at on every replica), nobody gets it before the delay, and it
// comes back with attempts 2, then 3 after another REQ, wherever it is
// delivered. Each REQ counts once in the set's requeue_count.
func TestReplicationFollowerREQ(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	fs := followersOf(rs, l)
	a := subscribe(t, fs[0].n, "rq", "c", "")
	a.send("RDY 1")
	publish(t, l.n, "rq", "m")
	m := a.readMsg(10 * time.Second)
	if m.attempts != 1 {
		t.Fatalf("first delivery on a follower: attempts %d, want 1", m.attempts)
	}
	const delay = 1500 * time.Millisecond
	reqAt := time.Now()
	a.send(fmt.Sprintf("REQ %s %d", m.id, delay.Milliseconds()))
	// The consumer goes away: its replica keeps nothing of the message
	// (the old local requeue would have been lost with it and the leader
	// would have redelivered at once).
	a.expectNothing(100 * time.Millisecond)
	a.Close()
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool {
			sm, ok := r.setMessage("rq", "c", m.id)
			return ok && sm.Attempts == 1 && sm.DeliverAt >= reqAt.Add(delay-100*time.Millisecond).UnixNano()
		}, "replica %d: the REQ's attempts and deliver-at in the set's state", r.opts.ID)
	}

	b := subscribe(t, fs[1].n, "rq", "c", "")
	lc := subscribe(t, l.n, "rq", "c", "")
	conns := []*rawConn{b, lc}
	frames := watch(conns...)
	b.send("RDY 1")
	lc.send("RDY 1")
	f := nextFrom(t, frames, 10*time.Second, "the REQ'd message again")
	if since := time.Since(reqAt); f.ft != frameMessage || f.m.id != m.id || since < delay-50*time.Millisecond {
		t.Fatalf("after REQ %v got %q (%s) after %v, want the message after the delay", delay, printable(f.ft, f.data), f.m.id, since)
	}
	if f.m.attempts != 2 {
		t.Errorf("delivered again with attempts %d, want 2", f.m.attempts)
	}
	conns[f.conn].send("REQ " + m.id + " 0")
	g := nextFrom(t, frames, 10*time.Second, "the message after a second REQ")
	if g.ft != frameMessage || g.m.id != m.id || g.m.attempts != 3 {
		t.Fatalf("after a second REQ got %q, want the message with attempts 3", printable(g.ft, g.data))
	}
	conns[g.conn].send("FIN " + m.id)
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool { return r.unfinished("rq", "c") == 0 }, "FIN in the set's state on replica %d", r.opts.ID)
	}
	select {
	case f := <-frames:
		t.Fatalf("unexpected frame %q", printable(f.ft, f.data))
	case <-time.After(200 * time.Millisecond):
	}
	if rq, to, mc := setCounts(t, rs, "rq", "c"); rq != 2 || to != 0 || mc != 1 {
		t.Errorf("set's requeue_count %d, timeout_count %d, message_count %d; want 2, 0, 1", rq, to, mc)
	}
}

// TestReplicationFollowerTouch: a follower forwards TOUCH, so a message
// that a consumer on a follower keeps touching stays in flight on the
// leader past the relay's timer: nobody else gets it, nothing times out.
// Messages wait in the follower's queue while its consumer holds the one
// before (its relay got RDY 3 for a consumer with RDY 1, as when the
// consumers' RDY drops with deliveries under way, and give-backs are
// turned off), so the consumer holds the last one until over 4 s after
// the leader delivered it to the relay: past the relay's old timer
// (--max-msg-timeout, 2 s here) and past the new backstop (twice that)
// but for the forwarded TOUCHes.
func TestReplicationFollowerTouch(t *testing.T) {
	rs := startReplicaSetWith(t, 3, func(o *Options) {
		o.MaxMsgTimeout, o.MsgTimeout = 2*time.Second, time.Second
		o.E2EProcessingLatencyPercentiles = []float64{0.5}
	})
	l := leaderOf(t, rs)
	fs := followersOf(rs, l)
	x := subscribe(t, fs[0].n, "tt", "c", "")
	z := subscribe(t, l.n, "tt", "c", "")
	w := subscribe(t, fs[1].n, "tt", "c", "")
	frames, others := watch(x), watch(z, w)
	x.send("RDY 1")
	repl := fs[0].n.repl.Load()
	var rl *relay
	eventually(t, 10*time.Second, func() bool {
		t, err := fs[0].n.GetExistingTopic("tt")
		if err != nil {
			return false
		}
		c, err := t.GetExistingChannel("c")
		if err != nil {
			return false
		}
		rl = repl.relayOf(c)
		return rl != nil && rl.rdy.Load() == 1
	}, "the follower relays tt/c with RDY 1")
	// Give-backs off: the follower would hand the two messages it cannot
	// deliver back to the leader at once (TestReplicationFollowerGivesBack).
	repl.relayQueueWait.Store(0)
	rl.send("RDY 3\n")
	publish(t, l.n, "tt", "m1", "m2", "m3")
	start := time.Now()
	eventually(t, 10*time.Second, func() bool { return rl.c.Depth() == 2 }, "two messages wait in the follower's queue")
	z.send("RDY 1")
	w.send("RDY 1")

	var got []string
	for len(got) < 3 {
		m := nextFrom(t, frames, 10*time.Second, "x's next message")
		if m.ft != frameMessage || m.m.attempts != 1 {
			t.Fatalf("x got %q, want a message with attempts 1", printable(m.ft, m.data))
		}
		got = append(got, m.m.body)
		// Held 1.5 s: x's msg_timeout is 1 s, so it touches.
		hold := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(hold) {
			select {
			case f := <-frames:
				t.Fatalf("x got %q while holding %s", printable(f.ft, f.data), m.m.body)
			case f := <-others:
				t.Fatalf("another consumer got %q while x holds the set's messages (%v after the publish)", printable(f.ft, f.data), time.Since(start))
			case <-time.After(250 * time.Millisecond):
			}
			x.send("TOUCH " + m.m.id)
		}
		x.send("FIN " + m.m.id)
	}
	if d := time.Since(start); d < 4*time.Second {
		t.Fatalf("x held the messages only %v", d)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"m1", "m2", "m3"}) {
		t.Errorf("x got %v, want m1 m2 m3", got)
	}
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool { return r.unfinished("tt", "c") == 0 }, "FINs in the set's state on replica %d", r.opts.ID)
	}
	select {
	case f := <-others:
		t.Fatalf("another consumer got %q", printable(f.ft, f.data))
	case f := <-frames:
		t.Fatalf("x got %q after its FINs", printable(f.ft, f.data))
	case <-time.After(300 * time.Millisecond):
	}
	if rq, to, mc := setCounts(t, rs, "tt", "c"); rq != 0 || to != 0 || mc != 3 {
		t.Errorf("set's requeue_count %d, timeout_count %d, message_count %d; want 0, 0, 3", rq, to, mc)
	}
	// Each FIN's e2e latency is recorded once, where the consumer FIN'd.
	var e2e []int64
	for _, r := range rs {
		e2e = append(e2e, httpChannelStats(t, r.n, "tt", "c").E2eProcessingLatency.Count)
	}
	if sum := e2e[0] + e2e[1] + e2e[2]; sum != 3 {
		t.Errorf("e2e_processing_latency counts %v, want 3 in all", e2e)
	}
}

// TestReplicationFollowerTimeout: a message that times out on a
// follower's consumer is the set's to deliver again: the follower hands it
// to the leader, which logs its attempt and delivers it to another
// consumer (here on the leader) with attempts 2. The timeout counts once
// in the set's timeout_count, on the follower.
func TestReplicationFollowerTimeout(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	fs := followersOf(rs, l)
	a := subscribe(t, fs[0].n, "to", "c", `{"msg_timeout":1000}`)
	a.send("RDY 1")
	publish(t, l.n, "to", "m")
	m := a.readMsg(10 * time.Second)
	a.send("RDY 0")
	lc := subscribe(t, l.n, "to", "c", "")
	lc.send("RDY 1")
	got := lc.readMsg(10 * time.Second)
	if got.id != m.id || got.attempts != 2 {
		t.Fatalf("after the timeout on a follower the leader's consumer got %s attempts %d, want %s attempts 2", got.id, got.attempts, m.id)
	}
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool {
			sm, ok := r.setMessage("to", "c", m.id)
			return ok && sm.Attempts == 1
		}, "replica %d: the timeout's attempt in the set's state", r.opts.ID)
	}
	a.send("FIN " + m.id)
	if ft, data := a.readFrame(); ft != frameError || !strings.HasPrefix(string(data), "E_FIN_FAILED") {
		t.Errorf("FIN of the timed-out message on the follower = %d %q, want E_FIN_FAILED", ft, data)
	}
	lc.send("FIN " + m.id)
	for _, r := range rs {
		eventually(t, 5*time.Second, func() bool { return r.unfinished("to", "c") == 0 }, "FIN in the set's state on replica %d", r.opts.ID)
	}
	if st := channelStats(t, fs[0].n, "to", "c"); st.TimeoutCount != 1 {
		t.Errorf("follower's timeout_count %d, want 1", st.TimeoutCount)
	}
	if rq, to, mc := setCounts(t, rs, "to", "c"); rq != 0 || to != 1 || mc != 1 {
		t.Errorf("set's requeue_count %d, timeout_count %d, message_count %d; want 0, 1, 1", rq, to, mc)
	}
}

// TestReplicationSampledOutFinished: a message that a consumer's
// sample_rate skips is finished for the set, as NSQ drops it for the
// channel; it does not stay unfinished in the log (to be delivered again
// after a failover).
func TestReplicationSampledOutFinished(t *testing.T) {
	rs := startReplicaSet(t, 1)
	l := leaderOf(t, rs)
	c := subscribe(t, l.n, "smp", "c", `{"sample_rate":1}`)
	c.send("RDY 100")
	var bs []string
	for i := range 50 {
		bs = append(bs, fmt.Sprintf("s%02d", i))
	}
	publish(t, l.n, "smp", bs...)
	frames := watch(c)
	delivered := 0
	eventually(t, 10*time.Second, func() bool {
		for {
			select {
			case f := <-frames:
				if f.ft == frameMessage {
					delivered++
				}
				continue
			default:
			}
			break
		}
		return l.unfinished("smp", "c") == delivered
	}, "only the delivered messages unfinished in the set's state")
	if delivered >= 25 {
		t.Fatalf("sample_rate 1 delivered %d of 50", delivered)
	}
}

package replication

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testSet is a replica set on raft's in-memory transport; with dirs, on
// bolt stores and file snapshots as nsqd runs it.
type testSet struct {
	t     *testing.T
	tune  func(*raft.Config)
	dirs  []string
	nodes []*Node
	trans []*raft.InmemTransport
	recs  []*recorder
	peers []Peer
	// wrapLogs, if set, wraps replica i's on-disk log store (with dirs).
	wrapLogs []func(raft.LogStore) raft.LogStore
}

// fastRaft shortens raft's timeouts (1s heartbeat and election) so that
// elections take a fraction of a second, yet not so short that a busy
// machine under -race sees spurious elections.
func fastRaft(c *raft.Config) {
	c.HeartbeatTimeout = 250 * time.Millisecond
	c.ElectionTimeout = 250 * time.Millisecond
	c.LeaderLeaseTimeout = 200 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

func newTestSet(t *testing.T, size int) *testSet {
	s := &testSet{t: t}
	s.init(size)
	return s
}

func (s *testSet) init(size int) {
	s.t.Helper()
	for i := range size {
		addr, tr := raft.NewInmemTransport(raft.NewInmemAddr())
		s.trans = append(s.trans, tr)
		s.peers = append(s.peers, Peer{ID: fmt.Sprintf("n%d", i+1), Address: string(addr)})
	}
	s.connectAll()
	for i := range size {
		s.recs = append(s.recs, newRecorder())
		s.nodes = append(s.nodes, s.open(i))
	}
	s.t.Cleanup(func() {
		for _, n := range s.nodes {
			n.Close()
		}
	})
}

func (s *testSet) connectAll() {
	for i := range s.trans {
		for j := range s.trans {
			if i != j {
				s.trans[i].Connect(raft.ServerAddress(s.peers[j].Address), s.trans[j])
			}
		}
	}
}

func (s *testSet) open(i int) *Node {
	s.t.Helper()
	var dir string
	if s.dirs != nil {
		dir = s.dirs[i]
	}
	var wrap func(raft.LogStore) raft.LogStore
	if s.wrapLogs != nil {
		wrap = s.wrapLogs[i]
	}
	n, err := Open(Config{
		Dir:              dir,
		ID:               s.peers[i].ID,
		Peers:            s.peers,
		ClientAddrs:      fmt.Sprintf("tcp-%d,http-%d", i+1, i+1),
		Transport:        s.trans[i],
		ProgressInterval: 10 * time.Millisecond,
		ApplyTimeout:     time.Second,
		wrapLogs:         wrap,
		Tune: func(c *raft.Config) {
			fastRaft(c)
			if s.tune != nil {
				s.tune(c)
			}
		},
	}, s.recs[i])
	if err != nil {
		s.t.Fatalf("Open %s: %v", s.peers[i].ID, err)
	}
	return n
}

// isolate cuts every link of replica i; heal restores them.
func (s *testSet) isolate(i int) {
	for j := range s.nodes {
		if j != i {
			s.trans[i].Disconnect(raft.ServerAddress(s.peers[j].Address))
			s.trans[j].Disconnect(raft.ServerAddress(s.peers[i].Address))
		}
	}
}

func (s *testSet) heal(i int) {
	for j := range s.nodes {
		if j != i {
			s.link(i, j)
		}
	}
}

// link restores the link between replicas i and j, both ways.
func (s *testSet) link(i, j int) {
	s.trans[i].Connect(raft.ServerAddress(s.peers[j].Address), s.trans[j])
	s.trans[j].Connect(raft.ServerAddress(s.peers[i].Address), s.trans[i])
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leader waits for exactly one dispatching leader among the replicas not
// in skip and returns its index.
func (s *testSet) leader(skip ...int) int {
	s.t.Helper()
	var idx int
	eventually(s.t, "a dispatching leader", func() bool {
		n := 0
		for i, node := range s.nodes {
			if node != nil && !slices.Contains(skip, i) && node.IsLeader() {
				idx, n = i, n+1
			}
		}
		return n == 1
	})
	return idx
}

// converged waits until every replica has applied the same last index and
// their snapshots are byte-equal. (Entries may still be added meanwhile, by
// a new leader recording its addresses, so both are checked together.)
func (s *testSet) converged() {
	s.t.Helper()
	var diff string
	deadline := time.Now().Add(10 * time.Second)
	for {
		diff = s.difference()
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("replicas did not converge: %s", diff)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *testSet) difference() string {
	want := s.nodes[0].raft.LastIndex()
	for _, n := range s.nodes {
		if a, l := n.raft.AppliedIndex(), n.raft.LastIndex(); a != want || l != want {
			return fmt.Sprintf("%s applied %d of %d, %s's last index is %d", n.cfg.ID, a, l, s.nodes[0].cfg.ID, want)
		}
	}
	first := snapshotBytes(s.t, s.nodes[0].fsm)
	for _, n := range s.nodes[1:] {
		if !bytes.Equal(snapshotBytes(s.t, n.fsm), first) {
			return fmt.Sprintf("%s's state differs from %s's", n.cfg.ID, s.nodes[0].cfg.ID)
		}
	}
	return ""
}

func publishN(t *testing.T, n *Node, topic string, count int) {
	t.Helper()
	for i := range count {
		if _, err := n.Publish(&Publish{Topic: topic, Timestamp: time.Now().UnixNano(), Bodies: [][]byte{fmt.Appendf(nil, "%s-%d", topic, i)}}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
}

func TestReplicaSetPublishPartitionFailover(t *testing.T) {
	s := newTestSet(t, 3)
	l := s.leader()
	leader := s.nodes[l]
	if err := leader.Meta(&Meta{Op: OpCreateChannel, Topic: "orders", Channel: "billing"}); err != nil {
		t.Fatalf("Meta: %v", err)
	}
	publishN(t, leader, "orders", 20)
	for _, id := range []uint64{1, 2, 3, 10} {
		leader.Finish("orders", "billing", id)
	}
	eventually(t, "the FINs to commit", func() bool {
		return len(ids(leader.fsm.View(true), "orders", "billing")) == 16
	})
	s.converged()

	// Only the leader was handed messages to deliver.
	for i, r := range s.recs {
		r.mu.Lock()
		got := len(r.delivered["orders"])
		r.mu.Unlock()
		if want := map[bool]int{true: 20, false: 0}[i == l]; got != want {
			t.Errorf("replica %d delivered %d messages, want %d", i, got, want)
		}
	}
	// A follower refuses to propose: the caller forwards to the leader,
	// whose client addresses the log holds.
	f := (l + 1) % 3
	if _, err := s.nodes[f].Publish(&Publish{Topic: "orders", Bodies: [][]byte{[]byte("x")}}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Publish on a follower = %v, want ErrNotLeader", err)
	}
	eventually(t, "the leader's address at the followers", func() bool {
		return s.nodes[f].LeaderClientAddrs() == fmt.Sprintf("tcp-%d,http-%d", l+1, l+1)
	})

	// Cut the leader off: it must never acknowledge again, the majority
	// elects a new leader that dispatches every unfinished message.
	s.isolate(l)
	if _, err := leader.Publish(&Publish{Topic: "orders", Bodies: [][]byte{[]byte("lost")}}); err == nil {
		t.Fatalf("isolated leader acknowledged a publish")
	} else if !errors.Is(err, ErrNoQuorum) && !errors.Is(err, ErrNotLeader) {
		t.Errorf("isolated leader's publish error = %v, want ErrNoQuorum or ErrNotLeader", err)
	}
	nl := s.leader(l)
	eventually(t, "the old leader to stop dispatching", func() bool { return !leader.IsLeader() && !s.recs[l].dispatchingNow() })
	rec := s.recs[nl]
	rec.mu.Lock()
	got := ids(rec.synced, "orders", "billing")
	rec.mu.Unlock()
	want := []uint64{4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if !slices.Equal(got, want) {
		t.Errorf("new leader took over %v, want %v", got, want)
	}
	publishN(t, s.nodes[nl], "orders", 5)

	// Heal: the old leader catches up, drops the entry it could not commit
	// and ends with the same state as the others.
	s.heal(l)
	s.converged()
	if n := len(ids(s.nodes[l].fsm.View(true), "orders", "billing")); n != 21 {
		t.Errorf("after healing the old leader holds %d unfinished messages, want 21", n)
	}
	for _, n := range s.nodes {
		if n.fsm.LastID() != 25 {
			t.Errorf("%s: last ID %d, want 25 (the unacknowledged publish is gone)", n.cfg.ID, n.fsm.LastID())
		}
	}
}

func (r *recorder) dispatchingNow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dispatch
}

func TestReplicaSetMinorityFails(t *testing.T) {
	s := newTestSet(t, 3)
	l := s.leader()
	publishN(t, s.nodes[l], "t", 3)
	a, b := (l+1)%3, (l+2)%3
	s.isolate(a)
	s.isolate(b)
	for i := range 3 {
		if _, err := s.nodes[l].Publish(&Publish{Topic: "t", Bodies: [][]byte{[]byte("no")}}); err == nil {
			t.Fatalf("publish %d acknowledged without a quorum", i)
		}
	}
	s.link(a, l)
	nl := s.leader(b)
	publishN(t, s.nodes[nl], "t", 1)
	s.heal(b)
	s.converged()
	// The three before and the one after; failed publishes may or may not
	// have been committed (a retry may duplicate, never lose), so count
	// at least 4 in the topic backlog.
	if got := ids(s.nodes[0].fsm.View(true), "t", ""); len(got) < 4 {
		t.Errorf("topic holds %v, want the 4 acknowledged messages", got)
	}
}

// lagBehindSnapshots starts the set with a snapshot every 16 entries and 4
// trailing logs, creates t/c, isolates a follower and publishes 100
// messages without it: once the leader snapshots, the follower can catch up
// only by snapshot. It returns the leader's and the follower's index.
func (s *testSet) lagBehindSnapshots() (l, lag int) {
	s.t.Helper()
	s.tune = func(c *raft.Config) {
		c.SnapshotThreshold = 16
		c.TrailingLogs = 4
		c.SnapshotInterval = 20 * time.Millisecond
	}
	s.init(3)
	l = s.leader()
	lag = (l + 1) % 3
	if err := s.nodes[l].Meta(&Meta{Op: OpCreateChannel, Topic: "t", Channel: "c"}); err != nil {
		s.t.Fatal(err)
	}
	s.isolate(lag)
	publishN(s.t, s.nodes[l], "t", 100)
	return l, lag
}

// TestReplicaSetSnapshotCatchUp: a replica that misses more than the
// trailing logs catches up by snapshot and ends equal.
func TestReplicaSetSnapshotCatchUp(t *testing.T) {
	s := &testSet{t: t}
	l, lag := s.lagBehindSnapshots()
	for id := uint64(1); id <= 50; id++ {
		s.nodes[l].Finish("t", "c", id)
	}
	eventually(t, "the FINs to commit", func() bool { return len(ids(s.nodes[l].fsm.View(true), "t", "c")) == 50 })
	if err := s.nodes[l].raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	s.heal(lag)
	s.converged()
	if got := s.nodes[lag].raft.Stats()["last_snapshot_index"]; got == "0" {
		t.Errorf("lagging replica caught up without a snapshot")
	}
	rec := s.recs[lag]
	rec.mu.Lock()
	syncs := rec.syncs
	rec.mu.Unlock()
	if syncs == 0 {
		t.Errorf("restoring a snapshot did not Sync the Dispatcher")
	}
}

// TestReplicaSetRestart: a replica restarted on its bolt store and file
// snapshots (the on-disk setup of nsqd) comes back with the set's state.
func TestReplicaSetRestart(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	s := &testSet{t: t, dirs: dirs}
	s.init(3)
	l := s.leader()
	if err := s.nodes[l].Meta(&Meta{Op: OpCreateChannel, Topic: "t", Channel: "c"}); err != nil {
		t.Fatal(err)
	}
	publishN(t, s.nodes[l], "t", 10)
	s.converged()
	if err := s.nodes[l].raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	publishN(t, s.nodes[l], "t", 5)
	// Restart every replica: the set bootstraps only once.
	for i, n := range s.nodes {
		if err := n.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		s.trans[i].DisconnectAll()
	}
	s.connectAll()
	for i := range s.nodes {
		s.nodes[i] = s.open(i)
	}
	l = s.leader()
	publishN(t, s.nodes[l], "t", 1)
	s.converged()
	if got := len(ids(s.nodes[0].fsm.View(true), "t", "c")); got != 16 {
		t.Errorf("after restart channel holds %d messages, want 16", got)
	}
}

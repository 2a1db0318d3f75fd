package replication

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// refusingLogs refuses appends while refuse is set, as a replica whose disk
// is full: it still answers heartbeats, so its leader keeps leading
// without committing anything.
type refusingLogs struct {
	raft.LogStore
	refuse atomic.Bool
}

func (s *refusingLogs) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *refusingLogs) StoreLogs(logs []*raft.Log) error {
	if s.refuse.Load() {
		return errors.New("disk full")
	}
	return s.LogStore.StoreLogs(logs)
}

// stuckLeader starts a set of three on disk, publishes one message, then
// makes the followers refuse every append: the leader keeps leading (its
// heartbeats are answered) and commits nothing more. It returns the set,
// the leader's index and the stores (set refuse to false to let it go on).
func stuckLeader(t *testing.T) (*testSet, int, []*refusingLogs) {
	t.Helper()
	stores := make([]*refusingLogs, 3)
	s := &testSet{t: t, dirs: []string{t.TempDir(), t.TempDir(), t.TempDir()}}
	for i := range stores {
		stores[i] = &refusingLogs{}
		s.wrapLogs = append(s.wrapLogs, func(ls raft.LogStore) raft.LogStore { stores[i].LogStore = ls; return stores[i] })
	}
	s.init(3)
	l := s.leader()
	publishN(t, s.nodes[l], "t", 1)
	for i := range stores {
		if i != l {
			stores[i].refuse.Store(true)
		}
	}
	return s, l, stores
}

// TestCloseWhileLeaderCannotCommit: Close returns, about ApplyTimeout
// late, on a leader whose followers answer heartbeats but store nothing,
// although its last Progress entry can never commit. (Close used to wait
// for its loops before shutting raft down, and the progress loop's last
// flush waited for that entry forever.)
func TestCloseWhileLeaderCannotCommit(t *testing.T) {
	s, l, stores := stuckLeader(t)
	s.nodes[l].Finish("t", "c", 1) // proposed by the flush on Close

	closed := make(chan error, 1)
	go func() { closed <- s.nodes[l].Close() }()
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		for _, st := range stores {
			st.refuse.Store(false) // let it commit, so that Close and the cleanup end
		}
		<-closed
		t.Fatal("Close on a leader that cannot commit did not return within 15s")
	}
	for _, st := range stores {
		st.refuse.Store(false)
	}
}

// TestPublishNotCommittedTimesOut: on a leader whose followers answer
// heartbeats but store nothing, a publish answers ErrNoQuorum once
// ApplyTimeout (1 s here) has passed, instead of waiting for a commit that
// never comes (raft's own timeout covers only the enqueueing).
func TestPublishNotCommittedTimesOut(t *testing.T) {
	s, l, stores := stuckLeader(t)
	defer func() {
		for _, st := range stores {
			st.refuse.Store(false) // let the stuck entry commit, so Close is quick
		}
	}()

	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := s.nodes[l].Publish(&Publish{Topic: "t", Timestamp: 1, Bodies: [][]byte{[]byte("never acknowledged")}})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNoQuorum) {
			t.Fatalf("Publish = %v, want ErrNoQuorum", err)
		}
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Errorf("Publish failed after %v, before ApplyTimeout (1s)", took)
		}
	case <-time.After(10 * time.Second):
		for _, st := range stores {
			st.refuse.Store(false)
		}
		<-done
		t.Fatal("Publish on a leader that cannot commit did not return within 10s")
	}
}

package replication

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// timedLogs times StoreLogs calls of one replica's log store.
type timedLogs struct {
	raft.LogStore
	calls atomic.Int64
	total atomic.Int64 // ns
}

func (s *timedLogs) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := s.LogStore.StoreLogs(logs)
	s.total.Add(int64(time.Since(start)))
	s.calls.Add(1)
	return err
}

// IsMonotonic passes on the store's raft.MonotonicLogStore answer.
func (s *timedLogs) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (s *timedLogs) reset() { s.calls.Store(0); s.total.Store(0) }

func (s *timedLogs) mean() time.Duration {
	if c := s.calls.Load(); c > 0 {
		return time.Duration(s.total.Load() / c)
	}
	return 0
}

// deliverClock is a Dispatcher noting when the leader's FSM delivered the
// last publish.
type deliverClock struct{ at atomic.Int64 }

func (d *deliverClock) ApplyMeta(Meta)            {}
func (d *deliverClock) Deliver(string, []Message) { d.at.Store(time.Now().UnixNano()) }
func (d *deliverClock) Sync([]TopicView, bool)    {}

func freeAddrs(tb testing.TB, n int) []string {
	tb.Helper()
	var addrs []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return addrs
}

// tcpSet opens a replica set of three as nsqd runs it: TCP transports,
// on-disk stores in temporary directories, raft's default timings.
func tcpSet(tb testing.TB) (nodes []*Node, stores []*timedLogs, clocks []*deliverClock) {
	tb.Helper()
	addrs := freeAddrs(tb, 3)
	var peers []Peer
	for i, a := range addrs {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i+1), Address: a})
	}
	for i := range 3 {
		ts := &timedLogs{}
		clock := &deliverClock{}
		n, err := Open(Config{
			ID:       peers[i].ID,
			Address:  addrs[i],
			Peers:    peers,
			Dir:      tb.TempDir(),
			wrapLogs: func(s raft.LogStore) raft.LogStore { ts.LogStore = s; return ts },
		}, clock)
		if err != nil {
			tb.Fatalf("Open: %v", err)
		}
		nodes, stores, clocks = append(nodes, n), append(stores, ts), append(clocks, clock)
	}
	tb.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() { n.Close() })
		}
		wg.Wait()
	})
	return nodes, stores, clocks
}

func waitLeader(tb testing.TB, nodes []*Node) int {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range nodes {
			if n.IsLeader() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatal("no leader")
	return -1
}

// BenchmarkCommitSync: one synchronous publish at a time (a single PUB
// connection) on a set of three over TCP with on-disk stores. Besides the
// time per commit it reports the mean leader and follower StoreLogs and
// the time from Apply to the leader's FSM delivering the message.
func BenchmarkCommitSync(b *testing.B) {
	for _, size := range []int{1, 200} {
		b.Run(fmt.Sprintf("bodies=%d", size), func(b *testing.B) {
			nodes, stores, clocks := tcpSet(b)
			l := waitLeader(b, nodes)
			if err := nodes[l].Meta(&Meta{Op: OpCreateChannel, Topic: "bench", Channel: "c"}); err != nil {
				b.Fatal(err)
			}
			p := &Publish{Topic: "bench", Timestamp: 1}
			for range size {
				p.Bodies = append(p.Bodies, make([]byte, 200))
			}
			for _, s := range stores {
				s.reset()
			}
			var toApply time.Duration
			b.ReportAllocs()
			b.SetBytes(int64(200 * size))
			for b.Loop() {
				start := time.Now()
				if _, err := nodes[l].Publish(p); err != nil {
					b.Fatal(err)
				}
				toApply += time.Duration(clocks[l].at.Load() - start.UnixNano())
			}
			var follower time.Duration
			for i, s := range stores {
				if i != l {
					follower += s.mean() / 2
				}
			}
			b.ReportMetric(float64(stores[l].mean().Microseconds()), "µs-leader-store")
			b.ReportMetric(float64(follower.Microseconds()), "µs-follower-store")
			b.ReportMetric(float64(toApply.Microseconds())/float64(b.N), "µs-to-fsm")
		})
	}
}

// BenchmarkCommitConcurrent: MPUBs of 200 × 200 bytes from 8 goroutines at
// once (bench-compare's 2 connections with 4 MPUBs in flight each) on a
// set of three over TCP with on-disk stores; msgs/s is the set's rate.
func BenchmarkCommitConcurrent(b *testing.B) {
	nodes, stores, _ := tcpSet(b)
	l := waitLeader(b, nodes)
	if err := nodes[l].Meta(&Meta{Op: OpCreateChannel, Topic: "bench", Channel: "c"}); err != nil {
		b.Fatal(err)
	}
	p := mpub200()
	for _, s := range stores {
		s.reset()
	}
	b.ReportAllocs()
	b.SetBytes(200 * 200)
	b.SetParallelism(4) // 8 publishers on 2 CPUs
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := nodes[l].Publish(p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*200)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(stores[l].mean().Microseconds()), "µs-leader-store")
	b.ReportMetric(float64(b.N)/float64(max(stores[l].calls.Load(), 1)), "entries/store")
}

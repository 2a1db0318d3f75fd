package replication

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// bufSink is a raft.SnapshotSink writing to memory.
type bufSink struct{ bytes.Buffer }

func (s *bufSink) ID() string    { return "bench" }
func (s *bufSink) Cancel() error { return nil }
func (s *bufSink) Close() error  { return nil }

// backlogFSM returns an FSM holding n unfinished 200-byte messages in one
// channel of each of two topics... one topic, two channels: the shape a
// consumer outage leaves behind.
func backlogFSM(tb testing.TB, n int) *FSM {
	tb.Helper()
	f := NewFSM(nil, nil)
	idx := uint64(0)
	apply := func(data []byte) {
		idx++
		f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
	}
	apply(AppendMeta(nil, &Meta{Op: OpCreateChannel, Topic: "t", Channel: "c1"}))
	apply(AppendMeta(nil, &Meta{Op: OpCreateChannel, Topic: "t", Channel: "c2"}))
	for done := 0; done < n; done += 200 {
		p := &Publish{Topic: "t", Timestamp: 1}
		for range min(200, n-done) {
			p.Bodies = append(p.Bodies, make([]byte, 200))
		}
		apply(AppendPublish(nil, p))
	}
	return f
}

// BenchmarkSnapshotBacklog measures, for a backlog of unfinished messages,
// the part of a snapshot that holds the FSM lock (Snapshot: applies and so
// publishes wait for it), writing it (Persist, without the lock), restoring
// it on a replica that fell behind, and the FSM's heap per message.
func BenchmarkSnapshotBacklog(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			f := backlogFSM(b, n)
			runtime.GC()
			runtime.ReadMemStats(&after)
			var lock, persist, restore time.Duration
			var size int
			for b.Loop() {
				start := time.Now()
				snap, err := f.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				lock += time.Since(start)
				sink := &bufSink{}
				start = time.Now()
				if err := snap.Persist(sink); err != nil {
					b.Fatal(err)
				}
				persist += time.Since(start)
				size = sink.Len()
				g := NewFSM(nil, nil)
				start = time.Now()
				if err := g.Restore(io.NopCloser(&sink.Buffer)); err != nil {
					b.Fatal(err)
				}
				restore += time.Since(start)
				if got, want := len(g.View(false)), 1; got != want {
					b.Fatalf("restored %d topics, want %d", got, want)
				}
			}
			runs := float64(b.N)
			ms := func(d time.Duration) float64 { return d.Seconds() * 1000 / runs }
			b.ReportMetric(ms(lock), "ms-locked")
			b.ReportMetric(ms(persist), "ms-persist")
			b.ReportMetric(ms(restore), "ms-restore")
			b.ReportMetric(float64(size)/float64(n), "snapshot-B/msg")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/msg")
			runtime.KeepAlive(f)
		})
	}
}

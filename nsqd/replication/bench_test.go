package replication

import (
	"testing"

	"github.com/hashicorp/raft"
)

func mpub200() *Publish {
	p := &Publish{Topic: "bench", Timestamp: 1}
	body := make([]byte, 200)
	for range 200 {
		p.Bodies = append(p.Bodies, body)
	}
	return p
}

// BenchmarkAppendPublish: encoding an MPUB of 200 × 200 bytes.
func BenchmarkAppendPublish(b *testing.B) {
	p := mpub200()
	b.ReportAllocs()
	b.SetBytes(200 * 200)
	var buf []byte
	for b.Loop() {
		buf = AppendPublish(buf[:0], p)
	}
}

// BenchmarkApplyPublish: a follower applying an MPUB of 200 × 200 bytes to
// a topic with one channel, then the Progress entry that finishes it.
func BenchmarkApplyPublish(b *testing.B) {
	f := NewFSM(nil, nil)
	f.Apply(&raft.Log{Type: raft.LogCommand, Data: AppendMeta(nil, &Meta{Op: OpCreateChannel, Topic: "bench", Channel: "c"})})
	entry := AppendPublish(nil, mpub200())
	b.ReportAllocs()
	b.SetBytes(200 * 200)
	for b.Loop() {
		first := f.Apply(&raft.Log{Type: raft.LogCommand, Data: entry}).(applyResult).firstID
		f.Apply(&raft.Log{Type: raft.LogCommand, Data: AppendProgress(nil, &Progress{Topic: "bench", Channel: "c", Finished: []Range{{first, first + 199}}})})
	}
}

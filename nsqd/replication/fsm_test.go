package replication

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// recorder is a Dispatcher that keeps what it was told.
type recorder struct {
	mu        sync.Mutex
	meta      []Meta
	delivered map[string][]Message // topic → messages, while dispatching
	synced    []TopicView
	dispatch  bool
	syncs     int
	dropped   map[string][]uint64 // "topic/channel" → IDs, while dispatching
	origins   map[string][]Origin // dead-letter topic → origins
}

func newRecorder() *recorder {
	return &recorder{delivered: make(map[string][]Message), dropped: make(map[string][]uint64), origins: make(map[string][]Origin)}
}

func (r *recorder) Dropped(topic, channel string, ids []uint64, _ bool) {
	r.mu.Lock()
	r.dropped[topic+"/"+channel] = append(r.dropped[topic+"/"+channel], ids...)
	r.mu.Unlock()
}

func (r *recorder) DeadLettered(topic string, origins []Origin) {
	r.mu.Lock()
	r.origins[topic] = append(r.origins[topic], origins...)
	r.mu.Unlock()
}

func (r *recorder) ApplyMeta(m Meta) {
	r.mu.Lock()
	r.meta = append(r.meta, m)
	r.mu.Unlock()
}

func (r *recorder) Deliver(topic string, msgs []Message) {
	r.mu.Lock()
	r.delivered[topic] = append(r.delivered[topic], msgs...)
	r.mu.Unlock()
}

func (r *recorder) Sync(topics []TopicView, dispatch bool) {
	r.mu.Lock()
	r.synced, r.dispatch = topics, dispatch
	r.syncs++
	if !dispatch {
		clear(r.delivered)
	}
	r.mu.Unlock()
}

func applyEntries(t *testing.T, f *FSM, entries ...[]byte) []any {
	t.Helper()
	var out []any
	for i, e := range entries {
		out = append(out, f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: e}))
	}
	return out
}

func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeState(&buf, s.(*fsmSnapshot).s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pub(topic string, deliverAt int64, bodies ...string) []byte {
	p := &Publish{Topic: topic, Timestamp: 42, DeliverAt: deliverAt}
	for _, b := range bodies {
		p.Bodies = append(p.Bodies, []byte(b))
	}
	return AppendPublish(nil, p)
}

func meta(op MetaOp, topic, channel string) []byte {
	return AppendMeta(nil, &Meta{Op: op, Topic: topic, Channel: channel})
}

func fin(topic, channel string, ids ...uint64) []byte {
	return AppendProgress(nil, &Progress{Topic: topic, Channel: channel, Finished: Ranges(ids)})
}

// ids lists the message IDs of a channel (or of the topic's backlog when
// channel is "") in a view.
func ids(v []TopicView, topic, channel string) []uint64 {
	for _, t := range v {
		if t.Name != topic {
			continue
		}
		msgs := t.Messages
		for _, c := range t.Channels {
			if c.Name == channel {
				msgs = c.Messages
			}
		}
		var out []uint64
		for _, m := range msgs {
			out = append(out, m.ID)
		}
		return out
	}
	return nil
}

func TestFSMSemantics(t *testing.T) {
	r := newRecorder()
	f := NewFSM(r, nil)
	res := applyEntries(t, f,
		pub("t", 0, "a", "b"),            // IDs 1, 2: backlog, no channel yet
		meta(OpCreateChannel, "t", "c1"), // c1 takes the backlog
		meta(OpCreateChannel, "t", "c2"), // c2 starts empty
		pub("t", 7, "c"),                 // ID 3 to both, deferred
		fin("t", "c1", 1, 3),
		AppendProgress(nil, &Progress{Topic: "t", Channel: "c2", Requeued: []Requeue{{ID: 3, DeliverAt: 99, Attempts: 2}}}),
		meta(OpPauseTopic, "t", ""),
		pub("t", 0, "d"), // ID 4: paused topic keeps it
		meta(OpUnpauseTopic, "t", ""),
		meta(OpCreateTopic, "u", ""),
		pub("u", 0, "e"), // ID 5
		meta(OpEmptyTopic, "u", ""),
		[]byte{0xff}, // undecodable: skipped on every replica
	)
	if got := res[3].(applyResult).firstID; got != 3 {
		t.Errorf("first ID of the third publish = %d, want 3", got)
	}
	if res[len(res)-1].(applyResult).err == nil {
		t.Errorf("undecodable entry applied without error")
	}
	v := f.View(true)
	if got, want := ids(v, "t", "c1"), []uint64{2, 4}; !slices.Equal(got, want) {
		t.Errorf("t/c1 = %v, want %v", got, want)
	}
	if got, want := ids(v, "t", "c2"), []uint64{3, 4}; !slices.Equal(got, want) {
		t.Errorf("t/c2 = %v, want %v", got, want)
	}
	if got := ids(v, "u", ""); len(got) != 0 {
		t.Errorf("emptied topic u holds %v", got)
	}
	for _, c := range v[0].Channels {
		if c.Name == "c2" && (c.Messages[0].Attempts != 2 || c.Messages[0].DeliverAt != 99) {
			t.Errorf("requeued message = %+v, want attempts 2, deliver-at 99", c.Messages[0])
		}
	}
	if f.LastID() != 5 {
		t.Errorf("LastID = %d, want 5", f.LastID())
	}
	if len(r.delivered) != 0 {
		t.Errorf("a replica that does not dispatch delivered %v", r.delivered)
	}

	// Dispatching: Sync carries the unfinished messages, Deliver the new.
	f.setDispatch(true)
	if !r.dispatch || !slices.Equal(ids(r.synced, "t", "c1"), []uint64{2, 4}) {
		t.Errorf("Sync(dispatch) got t/c1 %v, dispatch %v", ids(r.synced, "t", "c1"), r.dispatch)
	}
	applyEntries(t, f, pub("t", 0, "f"))
	if got := r.delivered["t"]; len(got) != 1 || got[0].ID != 6 || string(got[0].Body) != "f" {
		t.Errorf("delivered %+v, want message 6 \"f\"", got)
	}
	applyEntries(t, f, meta(OpEmptyChannel, "t", "c2"), meta(OpDeleteChannel, "t", "c1"), meta(OpDeleteTopic, "u", ""))
	v = f.View(true)
	if len(v) != 1 || len(v[0].Channels) != 1 || len(v[0].Channels[0].Messages) != 0 {
		t.Errorf("after empty/delete: %+v", v)
	}
	var ops []MetaOp
	for _, m := range r.meta {
		ops = append(ops, m.Op)
	}
	if !slices.Contains(ops, OpDeleteTopic) || !slices.Contains(ops, OpPauseTopic) || !slices.Contains(ops, OpCreateChannel) {
		t.Errorf("Dispatcher.ApplyMeta saw %v", ops)
	}
}

// TestFSMDeterministic: equal logs give byte-equal snapshots, and a restored
// snapshot gives the same state (and snapshot) again.
func TestFSMDeterministic(t *testing.T) {
	var log [][]byte
	for i := range 50 {
		topic := fmt.Sprintf("t%d", i%3)
		switch i % 7 {
		case 0:
			log = append(log, meta(OpCreateChannel, topic, fmt.Sprintf("c%d", i%2)))
		case 3:
			log = append(log, fin(topic, "c0", uint64(i-3), uint64(i-2), uint64(i-1)))
		case 5:
			log = append(log, meta(OpPauseChannel, topic, "c1"))
		default:
			log = append(log, pub(topic, int64(i%2), fmt.Sprint("m", i), "x"))
		}
	}
	log = append(log, AppendMeta(nil, &Meta{Op: OpLeader, Topic: "n1", Arg: "a,b"}))
	// Limits, drop-oldest with dead letters, the leader's dead letters.
	log = append(log,
		AppendMeta(nil, &Meta{Op: OpDefaults, Arg: Defaults{MaxChannelDepth: 4, Overflow: "drop-oldest"}.Encode()}),
		AppendMeta(nil, &Meta{Op: OpConfig, Topic: "t1", Arg: `{"dead_letter_dropped":true,"dead_letter_envelope":true}`}),
		pub("t1", 0, "x1", "x2", "x3", "x4", "x5"),
		AppendProgress(nil, &Progress{Topic: "t0", Channel: "c0", Time: 7, Dead: []Dead{{ID: 2, Attempts: 3, Reason: ReasonMaxAttempts}, {ID: 9, Reason: ReasonExpired}}}),
	)
	a, b := NewFSM(newRecorder(), nil), NewFSM(nil, nil)
	applyEntries(t, a, log...)
	applyEntries(t, b, log...)
	sa, sb := snapshotBytes(t, a), snapshotBytes(t, b)
	if !bytes.Equal(sa, sb) {
		t.Fatalf("equal logs, different snapshots")
	}
	r := newRecorder()
	c := NewFSM(r, nil)
	if err := c.Restore(io.NopCloser(bytes.NewReader(sa))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if sc := snapshotBytes(t, c); !bytes.Equal(sc, sa) {
		t.Errorf("snapshot after restore differs")
	}
	if r.syncs != 1 || len(r.synced) < 4 {
		t.Errorf("Restore told the Dispatcher %d times about %d topics, want 1 and the 3 plus dead-letter topics", r.syncs, len(r.synced))
	}
	if len(a.s.topics["t1.c0.dlq"].origins) == 0 && len(a.s.topics["t1.c1.dlq"].origins) == 0 {
		t.Errorf("no dead letters in the log's state: the test does not cover them")
	}
	if got, want := c.AppliedIndex(), uint64(len(log)); got != want || a.AppliedIndex() != want {
		t.Errorf("AppliedIndex: restored %d, applied %d, want %d", got, a.AppliedIndex(), want)
	}
	if c.Leader("n1") != "a,b" {
		t.Errorf("leader record lost in the snapshot")
	}
	// And the restored FSM goes on like the others.
	more := [][]byte{pub("t0", 0, "after"), fin("t0", "c0", 1, 2, 3, 4, 5, 6, 7, 8), pub("t1", 0, "y1", "y2")}
	applyEntries(t, a, more...)
	applyEntries(t, c, more...)
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, c)) {
		t.Errorf("restored replica diverged after more entries")
	}
}

func TestReadStateErrors(t *testing.T) {
	f := NewFSM(nil, nil)
	applyEntries(t, f, meta(OpCreateChannel, "t", "c"), pub("t", 0, "hello"))
	good := snapshotBytes(t, f)
	for i := range len(good) - 1 {
		if _, err := readState(bytes.NewReader(good[:i])); err == nil {
			t.Fatalf("readState of %d of %d bytes succeeded", i, len(good))
		}
	}
	bad := slices.Clone(good)
	bad[0] = 'X'
	if _, err := readState(bytes.NewReader(bad)); err == nil {
		t.Errorf("readState with a bad magic succeeded")
	}
}

func FuzzReadState(f *testing.F) {
	fsm := NewFSM(nil, nil)
	for _, e := range [][]byte{meta(OpCreateChannel, "t", "c"), pub("t", 0, "hello", "world"), fin("t", "c", 1)} {
		fsm.Apply(&raft.Log{Type: raft.LogCommand, Data: e})
	}
	s, _ := fsm.Snapshot()
	var buf bytes.Buffer
	writeState(&buf, s.(*fsmSnapshot).s)
	f.Add(buf.Bytes())
	// With limits, defaults and dead letters with origins.
	for _, e := range [][]byte{
		AppendMeta(nil, &Meta{Op: OpDefaults, Arg: Defaults{MaxChannelDepth: 9}.Encode()}),
		AppendMeta(nil, &Meta{Op: OpConfig, Topic: "t", Channel: "c", Arg: `{"overflow":"drop-oldest","max_depth":1,"dead_letter_dropped":true}`}),
		pub("t", 0, "a", "b"),
		AppendProgress(nil, &Progress{Topic: "t", Channel: "c", Time: 9, Dead: []Dead{{ID: 4, Attempts: 2, Reason: ReasonMaxAttempts}}}),
	} {
		fsm.Apply(&raft.Log{Type: raft.LogCommand, Data: e})
	}
	s, _ = fsm.Snapshot()
	buf.Reset()
	writeState(&buf, s.(*fsmSnapshot).s)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := readState(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := writeState(&out, st); err != nil {
			t.Fatal(err)
		}
		if _, err := readState(&out); err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
	})
}

// TestSnapshotIsPointInTime: a snapshot shares the pending records with the
// live state (clone copies maps, not records), so entries applied after
// Snapshot and before Persist must not show in what Persist writes.
func TestSnapshotIsPointInTime(t *testing.T) {
	f := NewFSM(nil, nil)
	applyEntries(t, f,
		meta(OpCreateChannel, "t", "c"),
		pub("t", 0, "a", "b", "c"),
	)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: AppendProgress(nil, &Progress{
		Topic: "t", Channel: "c",
		Finished: []Range{{1, 1}},
		Requeued: []Requeue{{ID: 2, Attempts: 7, DeliverAt: 99}},
	})})
	f.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: pub("t", 0, "d")})

	sink := &bufSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(nil, nil)
	if err := g.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	v := g.View(true)
	if got, want := ids(v, "t", "c"), []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("snapshot holds %v, want %v", got, want)
	}
	for _, m := range v[0].Channels[0].Messages {
		if m.Attempts != 0 || m.DeliverAt != 0 {
			t.Errorf("message %d in the snapshot: attempts %d, deliver-at %d; want the values before the requeue (0, 0)", m.ID, m.Attempts, m.DeliverAt)
		}
	}
	// The live state did change.
	for _, m := range f.View(true)[0].Channels[0].Messages {
		if m.ID == 2 && (m.Attempts != 7 || m.DeliverAt != 99) {
			t.Errorf("live message 2: attempts %d, deliver-at %d, want 7, 99", m.Attempts, m.DeliverAt)
		}
	}
}

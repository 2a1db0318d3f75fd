package replication

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

func config(topic, channel, js string) []byte {
	return AppendMeta(nil, &Meta{Op: OpConfig, Topic: topic, Channel: channel, Arg: js})
}

func settle(topic, channel string, now int64, dead ...Dead) []byte {
	return AppendProgress(nil, &Progress{Topic: topic, Channel: channel, Time: now, Dead: dead})
}

// TestFSMReject: overflow=reject refuses a whole publish that a channel
// cannot take, with nsqd's text, gives out no ID and leaves the state as
// it was; the topic's backlog has its own limit.
func TestFSMReject(t *testing.T) {
	f := NewFSM(newRecorder(), nil)
	res := applyEntries(t, f,
		meta(OpCreateChannel, "t", "a"),
		meta(OpCreateChannel, "t", "b"),
		config("t", "b", `{"max_depth":2}`),
		pub("t", 0, "1", "2"),      // fits
		pub("t", 0, "3"),           // b is full
		pub("t", 0, "4", "5", "6"), // MPUB: all or nothing
		fin("t", "b", 1),
		pub("t", 0, "7"), // fits again
		config("u", "", `{"max_depth":1,"max_bytes":3}`),
		config("u", "", `{"max_bytes":3}`), // u does not exist yet: ignored
		pub("u", 0, "xy"),
		config("u", "", `{"max_bytes":3}`),
		pub("u", 0, "zz"), // backlog would hold 4 bytes
	)
	var full *FullError
	if !errors.As(res[4].(applyResult).err, &full) || full.Error() != "channel t:b is full (max_depth 2)" {
		t.Fatalf("publish to a full channel: %v", res[4].(applyResult).err)
	}
	if err := res[5].(applyResult).err; err == nil {
		t.Errorf("MPUB that does not fit accepted")
	}
	if got := res[7].(applyResult); got.err != nil || got.firstID != 3 {
		t.Errorf("publish after a FIN = %+v, want first ID 3", got)
	}
	if err := res[12].(applyResult).err; err == nil || err.Error() != "topic u is full (max_bytes 3)" {
		t.Errorf("publish to a full backlog: %v", err)
	}
	v := f.View(true)
	if got, want := ids(v, "t", "a"), []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("t/a = %v, want %v (refused publishes reach no channel)", got, want)
	}
	if got, want := ids(v, "t", "b"), []uint64{2, 3}; !slices.Equal(got, want) {
		t.Errorf("t/b = %v, want %v", got, want)
	}
	if f.LastID() != 4 {
		t.Errorf("LastID = %d, want 4: a refused publish gives out no ID", f.LastID())
	}
}

// TestFSMDropOldestDeadLetters: drop-oldest removes the lowest IDs, tells
// the leader's dispatcher, and with dead_letter_dropped moves them to the
// dead-letter topic with new IDs and their origins (envelope included).
func TestFSMDropOldestDeadLetters(t *testing.T) {
	r := newRecorder()
	f := NewFSM(r, nil)
	f.setDispatch(true)
	applyEntries(t, f,
		meta(OpCreateChannel, "t", "c"),
		meta(OpCreateChannel, "t.c.dlq", "ops"),
		config("t", "", `{"overflow":"drop-oldest","dead_letter_dropped":true}`),
		config("t", "c", `{"max_depth":2,"dead_letter_envelope":true}`),
		pub("t", 0, "1", "2"),
		fin("t", "c", 2),
		pub("t", 0, "3", "4"), // c holds 1, 3, 4: 1 goes
	)
	v := f.View(true)
	if got, want := ids(v, "t", "c"), []uint64{3, 4}; !slices.Equal(got, want) {
		t.Errorf("t/c = %v, want %v", got, want)
	}
	if got := r.dropped["t/c"]; !slices.Equal(got, []uint64{1}) {
		t.Errorf("Dropped told %v, want [1]", got)
	}
	dl := r.delivered["t.c.dlq"]
	if got := ids(v, "t.c.dlq", "ops"); !slices.Equal(got, []uint64{5}) || len(dl) != 1 || dl[0].ID != 5 {
		t.Fatalf("dead-letter topic holds %v, delivered %+v; want message 5", got, dl)
	}
	var env struct {
		Origin map[string]any `json:"origin"`
		Body   []byte         `json:"body"`
	}
	if err := json.Unmarshal(dl[0].Body, &env); err != nil || string(env.Body) != "1" ||
		env.Origin["reason"] != "maxlen" || env.Origin["original_id"] != "0000000000000001" || env.Origin["source_channel"] != "c" {
		t.Errorf("dead letter body %s (%v)", dl[0].Body, err)
	}
	want := Origin{ID: 5, Topic: "t", Channel: "c", OriginalID: 1, OriginalTimestamp: 42, Reason: ReasonMaxLen, Time: 42}
	if got := r.origins["t.c.dlq"]; len(got) != 1 || got[0] != want {
		t.Errorf("DeadLettered origins %+v, want %+v", got, want)
	}
	if len(v) < 2 || v[1].Name != "t.c.dlq" || len(v[1].Origins) != 1 || v[1].Origins[0] != want {
		t.Errorf("view of the dead-letter topic: %+v", v)
	}
}

// TestFSMSettleDeadLetters: the leader's max-attempts and TTL decisions
// (Settle entries) move messages to the dead-letter topic on every replica
// alike; a channel with dead_letter_topic "-" drops them; an ID settled
// twice moves once.
func TestFSMSettleDeadLetters(t *testing.T) {
	log := [][]byte{
		meta(OpCreateChannel, "t", "c"),
		meta(OpCreateChannel, "t", "nodl"),
		config("t", "nodl", `{"dead_letter_topic":"-"}`),
		pub("t", 0, "1", "2", "3"),
		settle("t", "c", 1000, Dead{ID: 1, Attempts: 5, Reason: ReasonMaxAttempts}, Dead{ID: 2, Reason: ReasonExpired}),
		settle("t", "c", 2000, Dead{ID: 1, Attempts: 6, Reason: ReasonMaxAttempts}), // already gone
		settle("t", "nodl", 1000, Dead{ID: 3, Attempts: 1, Reason: ReasonMaxAttempts}),
	}
	a, b := NewFSM(newRecorder(), nil), NewFSM(nil, nil)
	applyEntries(t, a, log...)
	applyEntries(t, b, log...)
	v := a.View(true)
	if got := ids(v, "t", "c"); !slices.Equal(got, []uint64{3}) {
		t.Errorf("t/c = %v, want [3]", got)
	}
	if got := ids(v, "t", "nodl"); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("t/nodl = %v, want [1 2]", got)
	}
	if got := ids(v, "t.c.dlq", ""); !slices.Equal(got, []uint64{4, 5}) {
		t.Errorf("dead-letter backlog = %v, want [4 5]", got)
	}
	if _, ok := a.s.topics["t.nodl.dlq"]; ok {
		t.Errorf("dead_letter_topic - created a dead-letter topic")
	}
	o := a.s.topics["t.c.dlq"].origins
	if len(o) != 2 || o[0].Attempts != 5 || o[0].Reason != ReasonMaxAttempts || o[1].Reason != ReasonExpired || o[0].Time != 1000 {
		t.Errorf("origins %+v", o)
	}
	sa, sb := snapshotBytes(t, a), snapshotBytes(t, b)
	if !bytes.Equal(sa, sb) {
		t.Fatalf("equal logs, different snapshots")
	}
	c := NewFSM(nil, nil)
	if err := c.Restore(io.NopCloser(bytes.NewReader(sa))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, c), sa) {
		t.Errorf("snapshot after restore differs")
	}
	// Config and origins survive the snapshot: they still apply.
	more := [][]byte{settle("t", "c", 3000, Dead{ID: 3, Attempts: 2, Reason: ReasonMaxAttempts}), settle("t", "nodl", 3000, Dead{ID: 1, Reason: ReasonExpired})}
	applyEntries(t, a, more...)
	applyEntries(t, c, more...)
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, c)) {
		t.Errorf("restored replica diverged")
	}
	if got := ids(c.View(true), "t.c.dlq", ""); !slices.Equal(got, []uint64{4, 5, 6}) {
		t.Errorf("restored dead-letter backlog = %v", got)
	}
}

// TestFSMDefaults: the set's defaults (OpDefaults) bound channels without
// overrides, and a channel's override beats them; they are in snapshots.
func TestFSMDefaults(t *testing.T) {
	f := NewFSM(newRecorder(), nil)
	res := applyEntries(t, f,
		AppendMeta(nil, &Meta{Op: OpDefaults, Arg: Defaults{MaxChannelDepth: 1}.Encode()}),
		meta(OpCreateChannel, "t", "c"),
		meta(OpCreateChannel, "t", "big"),
		config("t", "big", `{"max_depth":0}`),
		pub("t", 0, "1"),
		pub("t", 0, "2"),
	)
	if err := res[5].(applyResult).err; err == nil || err.Error() != "channel t:c is full (max_depth 1)" {
		t.Errorf("second publish: %v", err)
	}
	c := NewFSM(nil, nil)
	if err := c.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	if d := c.Defaults(); d.MaxChannelDepth != 1 {
		t.Errorf("restored defaults %+v", d)
	}
	if r := c.Apply(logAt(100, pub("t", 0, "3"))).(applyResult); r.err == nil {
		t.Errorf("restored replica accepted a publish over the default limit")
	}
}

func logAt(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: data}
}

// TestFSMFinishBacklog: a Progress of channel "" takes messages out of the
// topic's backlog (a redrive on the leader).
func TestFSMFinishBacklog(t *testing.T) {
	f := NewFSM(nil, nil)
	applyEntries(t, f, pub("t", 0, "1", "2", "3", "4"), fin("t", "", 2, 3), fin("t", "c", 1))
	if got := ids(f.View(true), "t", ""); !slices.Equal(got, []uint64{1, 4}) {
		t.Errorf("backlog = %v, want [1 4]", got)
	}
	if b := f.s.topics["t"].bytes; b != 2 {
		t.Errorf("backlog bytes = %d, want 2", b)
	}
}

// TestReadStateVersion1: a snapshot written before limits were replicated
// (format version 1: no defaults, config or origins) is still read.
func TestReadStateVersion1(t *testing.T) {
	b := []byte(snapshotMagic)
	b = append(b, 1)
	b = append(b, 9, 1) // index 9, lastID 1
	b = append(b, 0)    // no leaders
	b = append(b, 1, 1) // one message: ID 1
	b = binary.BigEndian.AppendUint64(b, 42)
	b = append(b, 2, 'h', 'i')
	b = append(b, 1, 1, 't', 1) // topic t, paused
	b = append(b, 0)            // empty backlog
	b = append(b, 1, 1, 'c', 0) // channel c
	b = append(b, 1, 1)         // holding message 1
	b = binary.BigEndian.AppendUint64(b, 0)
	b = append(b, 2) // attempts 2
	s, err := readState(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("readState(version 1): %v", err)
	}
	c := s.topics["t"].channels["c"]
	if m := c.msgs.get(1); !s.topics["t"].paused || m == nil || m.attempts != 2 || string(m.msg.body) != "hi" || s.defaults != "" || c.config != "" {
		t.Errorf("version 1 state read as %+v / %+v", s.topics["t"], c)
	}
}

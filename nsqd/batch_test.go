package nsqd

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

// An ID's hex value holds the pseudo-millisecond, the node ID and the
// sequence in NSQ's layout; consecutive reservations never repeat or go
// back, and a full pseudo-millisecond carries into the next one.
func TestGUIDReserve(t *testing.T) {
	f := newGUIDFactory(7)
	fill := func(ids []MessageID) {
		p := f.reserve(len(ids))
		for i := range ids {
			f.id(&ids[i], p+int64(i))
		}
	}
	decode := func(id MessageID) (ts, node, seq int64) {
		var v [8]byte
		if _, err := hex.Decode(v[:], id[:]); err != nil {
			t.Fatalf("ID %q is not hex: %v", id, err)
		}
		u := int64(binary.BigEndian.Uint64(v[:]))
		return u>>(guidNodeBits+guidSeqBits) + guidEpoch, u >> guidSeqBits & (1<<guidNodeBits - 1), u & guidSeqMask
	}
	var prev MessageID
	for range 100 {
		ids := make([]MessageID, 50)
		fill(ids)
		for _, id := range ids {
			if string(id[:]) <= string(prev[:]) {
				t.Fatalf("ID %s after %s: not increasing", id, prev)
			}
			if _, node, _ := decode(id); node != 7 {
				t.Fatalf("ID %s has node %d, want 7", id, node)
			}
			prev = id
		}
	}
	// The last position of a far-future pseudo-millisecond: the next ID
	// borrows the one after it, with sequence 0.
	future := prev
	ts, _, _ := decode(future)
	f.last = (ts+1000)<<guidSeqBits | guidSeqMask
	var ids [2]MessageID
	fill(ids[:])
	for i, id := range ids {
		gotTS, _, seq := decode(id)
		if gotTS != ts+1001 || seq != int64(i) {
			t.Errorf("ID %d after a full pseudo-millisecond: ts %d seq %d, want ts %d seq %d", i, gotTS, seq, ts+1001, i)
		}
	}
}

// A queue holds Messages and batch messages in order; a batch message
// becomes a Message of its own, with its ID, body and timestamp, when it is
// popped, and the same batch queued twice (two channels) gives two copies.
func TestQueueBatchSlots(t *testing.T) {
	f := newGUIDFactory(1)
	b := &pubBatch{bodies: [][]byte{[]byte("a"), []byte("b"), []byte("c")}, timestamp: 42, idStart: f.reserve(3), guid: f}
	var want [3]MessageID
	for i := range want {
		f.id(&want[i], b.idStart+int64(i))
	}
	first, last := &Message{Body: []byte("first")}, &Message{Body: []byte("last")}
	var q1, q2 msgQueue
	q1.push(first)
	q1.pushBatch(b)
	q1.push(last)
	q2.pushBatch(b)
	if q1.len() != 5 || q2.len() != 3 {
		t.Fatalf("lengths %d, %d; want 5, 3", q1.len(), q2.len())
	}
	got := q1.popN(nil, 2)
	got = append(got, q1.drain()...)
	if len(got) != 5 || got[0] != first || got[4] != last || q1.len() != 0 {
		t.Fatalf("popped %v", got)
	}
	other := q2.drain()
	for i, m := range got[1:4] {
		if m.ID != want[i] || string(m.Body) != string(b.bodies[i]) || m.Timestamp != 42 || m.Attempts != 0 || m.deadline != 0 {
			t.Errorf("batch message %d = %+v", i, m)
		}
		if other[i] == m || other[i].ID != m.ID {
			t.Errorf("batch message %d: the two queues' copies %p, %p", i, other[i], m)
		}
	}
	got[1].Attempts = 3
	if other[0].Attempts != 0 {
		t.Error("a copy's delivery state is shared with the other queue's")
	}
}

func TestHexID(t *testing.T) {
	for _, v := range []uint64{0, 1, 9, 10, 15, 0xffffffffffffffff, 0x0123456789abcdef, 0xfedcba9876543210, 0x8000000000000001} {
		var id MessageID
		hexID(&id, v)
		if want := fmt.Sprintf("%016x", v); string(id[:]) != want {
			t.Errorf("hexID(%#x) = %s, want %s", v, id[:], want)
		}
	}
	for i := range 100000 {
		v := rand.Uint64() >> (i % 64)
		var id MessageID
		hexID(&id, v)
		if want := fmt.Sprintf("%016x", v); string(id[:]) != want {
			t.Fatalf("hexID(%#x) = %s, want %s", v, id[:], want)
		}
	}
}

// The queue against a plain slice: random pushes of Messages and batches of
// random sizes, pops of random sizes through the ring's wrap-around and
// growth, in order and counted.
func TestQueueRunsModel(t *testing.T) {
	f := newGUIDFactory(1)
	var q msgQueue
	var model []string
	seq := 0
	next := func() string { seq++; return strconv.Itoa(seq) }
	for step := range 20000 {
		switch r := rand.IntN(10); {
		case r < 3:
			body := next()
			q.push(&Message{Body: []byte(body)})
			model = append(model, body)
		case r < 6:
			b := &pubBatch{guid: f, idStart: f.reserve(0)}
			for range rand.IntN(300) {
				body := next()
				b.bodies = append(b.bodies, []byte(body))
				model = append(model, body)
			}
			q.pushBatch(b)
		default:
			k := rand.IntN(400)
			got := q.popN(nil, k)
			want := model[:min(k, len(model))]
			model = model[len(want):]
			if len(got) != len(want) {
				t.Fatalf("step %d: popped %d, want %d", step, len(got), len(want))
			}
			for i, m := range got {
				if string(m.Body) != want[i] {
					t.Fatalf("step %d: message %d is %q, want %q", step, i, m.Body, want[i])
				}
			}
		}
		if q.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(model))
		}
	}
	rest := q.drain()
	if len(rest) != len(model) || q.len() != 0 {
		t.Fatalf("drain: %d messages, want %d; len after %d", len(rest), len(model), q.len())
	}
}

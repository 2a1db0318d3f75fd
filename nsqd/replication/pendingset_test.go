package replication

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

// TestPendingSetModel runs random operations on a pendingSet and on a map
// of the same records, mostly in the order a channel sees them (appends,
// FINs roughly in order) with some out of order, through enough records
// for head skipping, compaction and shrinking to happen, and compares
// them after every step; a clone taken midway must not change.
func TestPendingSetModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s pendingSet
	model := map[uint64]pending{}
	var next uint64
	msgs := map[uint64]*message{}
	mk := func(id uint64) pending {
		m := msgs[id]
		if m == nil {
			m = &message{id: id}
			msgs[id] = m
		}
		return pending{msg: m}
	}
	check := func(step int, op string) {
		t.Helper()
		if s.len() != len(model) {
			t.Fatalf("step %d (%s): len %d, model %d", step, op, s.len(), len(model))
		}
		var got []uint64
		s.all(func(p *pending) bool {
			if p.id != p.msg.id || model[p.id].msg != p.msg || model[p.id].attempts != p.attempts {
				t.Fatalf("step %d (%s): record %d = %+v, model %+v", step, op, p.id, *p, model[p.id])
			}
			got = append(got, p.id)
			return true
		})
		if want := slices.Sorted(maps.Keys(model)); !slices.Equal(got, want) {
			t.Fatalf("step %d (%s): ids %v..., want %v...", step, op, got[:min(len(got), 5)], want[:min(len(want), 5)])
		}
	}
	type snapshot struct {
		set  pendingSet
		want []pending // id and attempts as they were
	}
	var snaps []snapshot
	records := func(s *pendingSet) []pending {
		var out []pending
		s.all(func(p *pending) bool { out = append(out, pending{id: p.id, attempts: p.attempts}); return true })
		return out
	}
	var lowFin uint64 // consumers finish roughly from here
	for step := range 20000 {
		op := ""
		switch r := rng.IntN(100); {
		case r < 45:
			op = "append"
			n := 1 + rng.IntN(10)
			for range n {
				next++
				p := mk(next)
				s.add(p)
				p.id = next
				model[next] = p
			}
		case r < 47 && next > 0:
			op = "add old" // not what a channel sees; must still work
			id := 1 + rng.Uint64N(next)
			p := mk(id)
			p.attempts = 9
			s.add(p)
			p.id = id
			model[id] = p
		case r < 75:
			op = "fin range"
			first := lowFin + rng.Uint64N(20)
			last := first + rng.Uint64N(25)
			s.removeRange(first, last, nil)
			for id := first; id <= last; id++ {
				delete(model, id)
			}
			lowFin = min(next, lowFin+rng.Uint64N(15))
		case r < 85 && next > 0:
			op = "remove"
			id := 1 + rng.Uint64N(next)
			_, ok := s.remove(id)
			if _, in := model[id]; ok != in {
				t.Fatalf("step %d: remove(%d) = %v, model has it: %v", step, id, ok, in)
			}
			delete(model, id)
		case r < 92 && next > 0:
			op = "requeue"
			id := 1 + rng.Uint64N(next)
			p := s.get(id)
			if _, in := model[id]; (p != nil) != in {
				t.Fatalf("step %d: get(%d) = %v, model has it: %v", step, id, p, in)
			}
			if p != nil {
				p.attempts++
				mp := model[id]
				mp.attempts++
				model[id] = mp
			}
		case r < 97:
			op = "pop oldest"
			p, ok := s.popOldest()
			if ok != (len(model) > 0) {
				t.Fatalf("step %d: popOldest ok %v with %d in the model", step, ok, len(model))
			}
			if ok {
				if want := slices.Min(slices.Collect(maps.Keys(model))); p.id != want {
					t.Fatalf("step %d: popOldest = %d, want %d", step, p.id, want)
				}
				delete(model, p.id)
			}
		default:
			op = "noop"
		}
		if step%1500 == 0 {
			snaps = append(snaps, snapshot{s.clone(), records(&s)})
		}
		if step%97 == 0 || step > 19800 {
			check(step, op)
		}
	}
	check(-1, "end")
	for i, sn := range snaps {
		if got := records(&sn.set); !slices.Equal(got, sn.want) || sn.set.len() != len(sn.want) {
			t.Errorf("clone %d changed after the set did: %d records (len %d), want %d", i, len(got), sn.set.len(), len(sn.want))
		}
	}
	s.clear()
	if _, ok := s.popOldest(); ok || s.len() != 0 {
		t.Errorf("cleared set not empty")
	}
}

// TestPendingSetCompacts: a set whose records finish in order keeps its
// array bounded by what is unfinished, not by what it ever held.
func TestPendingSetCompacts(t *testing.T) {
	var s pendingSet
	var id uint64
	for range 1000 {
		for range 200 {
			id++
			s.add(pending{msg: &message{id: id}})
		}
		// One message stays unfinished; the rest finish in order.
		s.removeRange(id-199+1, id, nil)
	}
	if s.len() != 1000 {
		t.Fatalf("len %d, want 1000", s.len())
	}
	if c := s.held(); c > 8*1000+4*blockSize {
		t.Errorf("%d records held for 1000 unfinished: tombstones not compacted", c)
	}
	for range 1000 {
		if _, ok := s.popOldest(); !ok {
			t.Fatal("popOldest: empty too early")
		}
	}
	if s.len() != 0 || s.held() != 0 {
		t.Errorf("after popping everything: len %d, %d records", s.len(), s.held())
	}

	// Finishes behind a stuck first message, with no appends to compact
	// on: one by one, then as one range; the array shrinks.
	for id := range uint64(20000) {
		s.add(pending{msg: &message{id: id + 1}})
	}
	for id := uint64(2); id <= 5000; id++ {
		if _, ok := s.remove(id); !ok {
			t.Fatalf("remove(%d): not found", id)
		}
	}
	s.removeRange(5001, 19999, nil)
	if got := s.messages(); len(got) != 2 || got[0].ID != 1 || got[1].ID != 20000 {
		t.Fatalf("left %v, want messages 1 and 20000", got)
	}
	if c := s.held(); c > 2*blockSize {
		t.Errorf("%d records held for 2 unfinished: not shrunk", c)
	}
}

// held counts the records the set's blocks have room for, tombstones
// included.
func (s *pendingSet) held() int {
	n := 0
	for _, b := range s.blocks {
		n += cap(b.recs)
	}
	return n
}

// TestFSMLargeChannels: an FSM whose channels hold thousands of messages
// (several pendingSet blocks), finished out of order and requeued, with
// snapshots taken between applies: each snapshot holds the state at its
// point, restored FSMs give byte-equal snapshots and go on alike, and a
// channel's view matches what the log left in it.
func TestFSMLargeChannels(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var log [][]byte
	log = append(log, meta(OpCreateChannel, "t", "a"), meta(OpCreateChannel, "t", "b"))
	want := map[string]map[uint64]uint16{"a": {}, "b": {}} // ID → attempts
	var next uint64
	type point struct {
		at   int // entries applied
		want map[string]map[uint64]uint16
	}
	var points []point
	for len(log) < 400 {
		switch r := rng.IntN(10); {
		case r < 4:
			bodies := make([]string, 1+rng.IntN(200))
			for i := range bodies {
				bodies[i] = "m"
			}
			log = append(log, pub("t", 0, bodies...))
			for range bodies {
				next++
				want["a"][next], want["b"][next] = 0, 0
			}
		case r < 8:
			ch := []string{"a", "b"}[rng.IntN(2)]
			first := 1 + rng.Uint64N(next+1)
			last := first + rng.Uint64N(300)
			log = append(log, AppendProgress(nil, &Progress{Topic: "t", Channel: ch, Finished: []Range{{first, last}}}))
			for id := first; id <= last; id++ {
				delete(want[ch], id)
			}
		default:
			ch := []string{"a", "b"}[rng.IntN(2)]
			var rq []Requeue
			for range 5 {
				id := 1 + rng.Uint64N(next+1)
				if a, ok := want[ch][id]; ok {
					rq = append(rq, Requeue{ID: id, Attempts: a + 1})
					want[ch][id] = a + 1
				}
			}
			log = append(log, AppendProgress(nil, &Progress{Topic: "t", Channel: ch, Requeued: rq}))
		}
		if len(log)%50 == 0 {
			points = append(points, point{len(log), map[string]map[uint64]uint16{"a": maps.Clone(want["a"]), "b": maps.Clone(want["b"])}})
		}
	}
	check := func(what string, v []TopicView, w map[string]map[uint64]uint16) {
		t.Helper()
		for ci, ch := range []string{"a", "b"} {
			got := map[uint64]uint16{}
			var order []uint64
			for _, m := range v[0].Channels[ci].Messages {
				got[m.ID] = m.Attempts
				order = append(order, m.ID)
			}
			if !maps.Equal(got, w[ch]) || !slices.IsSorted(order) {
				t.Fatalf("%s: channel %s holds %d messages (sorted: %v), want %d", what, ch, len(got), slices.IsSorted(order), len(w[ch]))
			}
		}
	}
	f := NewFSM(nil, nil)
	var snaps []raft.FSMSnapshot
	for i, e := range log {
		f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: e})
		if slices.ContainsFunc(points, func(p point) bool { return p.at == i+1 }) {
			s, err := f.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, s)
		}
	}
	if len(want["a"]) < 2*blockSize && len(want["b"]) < 2*blockSize {
		t.Fatalf("channels end with %d and %d messages: too few for several blocks", len(want["a"]), len(want["b"]))
	}
	check("live", f.View(true), want)
	for i, s := range snaps {
		sink := &bufSink{}
		if err := s.Persist(sink); err != nil {
			t.Fatal(err)
		}
		g := NewFSM(nil, nil)
		if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("snapshot at entry %d", points[i].at), g.View(true), points[i].want)
		if again := snapshotBytes(t, g); !bytes.Equal(again, sink.Bytes()) {
			t.Fatalf("snapshot at entry %d: restored FSM snapshots differently", points[i].at)
		}
	}
	g := NewFSM(nil, nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	more := [][]byte{pub("t", 0, "x", "y"), fin("t", "a", next+1), AppendProgress(nil, &Progress{Topic: "t", Channel: "b", Finished: []Range{{1, next / 2}}})}
	for i, e := range more {
		f.Apply(&raft.Log{Index: uint64(len(log) + i + 1), Type: raft.LogCommand, Data: e})
		g.Apply(&raft.Log{Index: uint64(len(log) + i + 1), Type: raft.LogCommand, Data: e})
	}
	if !bytes.Equal(snapshotBytes(t, f), snapshotBytes(t, g)) {
		t.Errorf("restored FSM diverged after more entries")
	}
}

package replication

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
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

package replication

import (
	"cmp"
	"slices"
)

// pending is one unfinished message of a channel (or of a topic's
// backlog): the message, shared by every channel, and this channel's
// delivery state. In a pendingSet a nil msg marks a finished record (a
// tombstone) that compaction removes later.
type pending struct {
	id        uint64 // msg.id, kept here so that a search reads one array
	msg       *message
	deliverAt int64
	attempts  uint16
}

// pendingSet holds a channel's unfinished messages in ID order, as values.
//
// It fits how IDs reach a channel: they come from one set-wide sequence,
// so a channel gets them in increasing order (a publish appends, a backlog
// flush appends in order, dead letters get new IDs), and consumers finish
// them roughly in order. So adding is an append, finding an ID is a binary
// search, a FIN leaves a tombstone, the finished head is skipped at once
// and the rest of the tombstones are compacted away once they outnumber
// the live records. The oldest message (drop-oldest) is the first live
// record. Against the map this replaces: no per-message allocation or
// hashing, half the memory, and sorted output (views, snapshots) for free.
//
// Records are values: a snapshot takes its own copy (clone), so records
// are updated in place.
type pendingSet struct {
	recs []pending // recs[head:], ascending IDs; some may be tombstones
	head int       // recs[:head] are all finished (cleared)
	live int       // records of recs[head:] that are not tombstones
}

// compactMin is the slack a pendingSet leaves before it compacts: below
// it, tombstones stay (a search skips them).
const compactMin = 1024

func (s *pendingSet) len() int { return s.live }

// find returns the index in recs of id's record, live or tombstone, or -1.
func (s *pendingSet) find(id uint64) int {
	i, ok := slices.BinarySearchFunc(s.recs[s.head:], id, func(p pending, id uint64) int { return cmp.Compare(p.id, id) })
	if !ok {
		return -1
	}
	return s.head + i
}

// get returns id's live record, or nil. The pointer is valid until the set
// next changes.
func (s *pendingSet) get(id uint64) *pending {
	if i := s.find(id); i >= 0 && s.recs[i].msg != nil {
		return &s.recs[i]
	}
	return nil
}

// add puts p in the set; it returns the record p replaced (an ID already
// held), if any. IDs above every held one, the only ones a channel gets,
// are appended; anything else is inserted in place.
func (s *pendingSet) add(p pending) (old pending, replaced bool) {
	p.id = p.msg.id
	if n := len(s.recs); n == s.head || s.recs[n-1].id < p.id {
		if n == cap(s.recs) && n-s.live >= n/4 && n > 0 {
			s.compact() // reuse finished slots rather than grow
		}
		s.recs = append(s.recs, p)
		s.live++
		return pending{}, false
	}
	i, ok := slices.BinarySearchFunc(s.recs[s.head:], p.id, func(q pending, id uint64) int { return cmp.Compare(q.id, id) })
	i += s.head
	if ok {
		old = s.recs[i]
		s.recs[i] = p
		if old.msg == nil {
			s.live++
			return pending{}, false
		}
		return old, true
	}
	s.recs = slices.Insert(s.recs, i, p)
	s.live++
	return pending{}, false
}

// removeAt finishes the live record at index i and returns it.
func (s *pendingSet) removeAt(i int) pending {
	p := s.recs[i]
	s.recs[i].msg = nil
	s.live--
	if i == s.head {
		s.skipHead()
	} else if dead := len(s.recs) - s.head - s.live; dead > compactMin && dead > s.live {
		s.compact()
	}
	return p
}

// remove takes id out of the set and returns its record (ok false if it
// was not held).
func (s *pendingSet) remove(id uint64) (pending, bool) {
	i := s.find(id)
	if i < 0 || s.recs[i].msg == nil {
		return pending{}, false
	}
	return s.removeAt(i), true
}

// removeRange takes every ID in [first, last] out of the set and calls
// fn (if not nil) with each record removed.
func (s *pendingSet) removeRange(first, last uint64, fn func(pending)) {
	if first > last {
		return
	}
	i, _ := slices.BinarySearchFunc(s.recs[s.head:], first, func(q pending, id uint64) int { return cmp.Compare(q.id, id) })
	i += s.head
	for ; i < len(s.recs) && s.recs[i].id <= last; i++ {
		if s.recs[i].msg == nil {
			continue
		}
		if fn != nil {
			fn(s.recs[i])
		}
		s.recs[i].msg = nil
		s.live--
	}
	s.skipHead()
	if dead := len(s.recs) - s.head - s.live; dead > compactMin && dead > s.live {
		s.compact()
	}
}

// popOldest removes and returns the live record with the lowest ID.
func (s *pendingSet) popOldest() (pending, bool) {
	s.skipHead()
	if s.head == len(s.recs) {
		return pending{}, false
	}
	return s.removeAt(s.head), true
}

// skipHead moves head past finished records; an empty set starts over.
func (s *pendingSet) skipHead() {
	for s.head < len(s.recs) && s.recs[s.head].msg == nil {
		s.recs[s.head] = pending{}
		s.head++
	}
	if s.head == len(s.recs) {
		s.recs, s.head = s.recs[:0], 0
	} else if s.head > compactMin && s.head > len(s.recs)/2 {
		s.compact()
	}
}

// compact moves the live records to the front of recs, into a smaller
// array when most of the present one would stay unused.
func (s *pendingSet) compact() {
	n := len(s.recs)
	dst, inPlace := s.recs[:0], true
	if cap(s.recs) > 4*compactMin && cap(s.recs) > 4*s.live {
		dst, inPlace = make([]pending, 0, 2*s.live), false
	}
	for _, p := range s.recs[s.head:] { // in place: writes never pass reads
		if p.msg != nil {
			dst = append(dst, p)
		}
	}
	if inPlace {
		clear(s.recs[len(dst):n]) // drop the moved and finished records' pointers
	}
	s.recs, s.head = dst, 0
}

// all calls fn with each live record in ID order until fn returns false.
func (s *pendingSet) all(fn func(*pending) bool) {
	for i := s.head; i < len(s.recs); i++ {
		if s.recs[i].msg != nil && !fn(&s.recs[i]) {
			return
		}
	}
}

// clear empties the set.
func (s *pendingSet) clear() {
	clear(s.recs)
	s.recs, s.head, s.live = s.recs[:0], 0, 0
}

// clone returns a copy holding only the live records (a snapshot's).
func (s *pendingSet) clone() pendingSet {
	c := pendingSet{recs: make([]pending, 0, s.live), live: s.live}
	for _, p := range s.recs[s.head:] {
		if p.msg != nil {
			c.recs = append(c.recs, p)
		}
	}
	return c
}

// messages returns the live records as Messages, in ID order.
func (s *pendingSet) messages() []Message {
	if s.live == 0 {
		return nil
	}
	out := make([]Message, 0, s.live)
	s.all(func(p *pending) bool {
		out = append(out, Message{ID: p.id, Timestamp: p.msg.timestamp, DeliverAt: p.deliverAt, Attempts: p.attempts, Body: p.msg.body})
		return true
	})
	return out
}

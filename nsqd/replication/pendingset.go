package replication

import (
	"cmp"
	"slices"
	"sync/atomic"
)

// pending is one unfinished message of a channel (or of a topic's
// backlog): the message, shared by every channel, and this channel's
// delivery state. In a pendingSet a nil msg marks a finished record (a
// tombstone).
type pending struct {
	id        uint64 // msg.id, kept here so that a search reads one array
	msg       *message
	deliverAt int64
	attempts  uint16
}

// pendingSet holds a channel's unfinished messages in ID order, as values
// in blocks of up to blockSize records.
//
// It fits how IDs reach a channel: they come from one set-wide sequence,
// so a channel gets them in increasing order (a publish appends, a backlog
// flush appends in order, dead letters get new IDs), and consumers finish
// them roughly in order. So adding is an append to the last block,
// finding an ID is a binary search over the blocks and then in one, a FIN
// leaves a tombstone, a block whose records are all finished is dropped
// and one mostly finished is compacted. The oldest message (drop-oldest)
// is the first live record. Against the map this replaces: no
// per-message allocation or hashing, no rehash of millions of entries,
// less memory, and sorted output (views, snapshots) for free.
//
// Blocks are copy on write: clone (a snapshot) copies the list of blocks,
// not the records, and gives both sets new epochs; a set changes a block in
// place only if it made it in its current epoch, and otherwise changes a
// copy. So a snapshot holds the FSM lock for a copy of one pointer per
// blockSize messages, and the applies after it copy only the blocks they
// touch (the head, where FINs land, and the tail, where publishes append).
type pendingSet struct {
	blocks []*block // ascending IDs; every block holds a live record
	live   int      // live records of all blocks
	epoch  uint64   // blocks with another epoch are shared: copy before changing
	spare  *block   // the last block dropped, emptied, for the next append
}

type block struct {
	recs  []pending // ascending IDs, tombstones included; never empty
	live  int       // records of recs that are not tombstones
	epoch uint64    // of the set that made it
}

// blockSize bounds the records of a block that appends fill.
const blockSize = 1024

// epochs hands out pendingSet epochs; 0 is a new set's.
var epochs atomic.Uint64

func (s *pendingSet) len() int { return s.live }

// writable returns block i, copied first if it is shared with a snapshot.
func (s *pendingSet) writable(i int) *block {
	b := s.blocks[i]
	if b.epoch != s.epoch {
		recs := make([]pending, len(b.recs), max(cap(b.recs), len(b.recs)))
		copy(recs, b.recs)
		b = &block{recs: recs, live: b.live, epoch: s.epoch}
		s.blocks[i] = b
	}
	return b
}

// locate returns where id is or would be: the block and the index in it of
// the first record with an ID ≥ id (bi == len(blocks) past the end).
func (s *pendingSet) locate(id uint64) (bi, ri int) {
	// The last block whose first ID is ≤ id.
	bi, _ = slices.BinarySearchFunc(s.blocks, id, func(b *block, id uint64) int {
		if b.recs[0].id <= id {
			return -1
		}
		return 1
	})
	if bi == 0 {
		return 0, 0
	}
	bi--
	ri, _ = slices.BinarySearchFunc(s.blocks[bi].recs, id, func(p pending, id uint64) int { return cmp.Compare(p.id, id) })
	if ri == len(s.blocks[bi].recs) {
		return bi + 1, 0
	}
	return bi, ri
}

// find returns the block and index of id's live record; ok false if none.
func (s *pendingSet) find(id uint64) (bi, ri int, ok bool) {
	bi, ri = s.locate(id)
	if bi < len(s.blocks) {
		p := &s.blocks[bi].recs[ri]
		return bi, ri, p.id == id && p.msg != nil
	}
	return bi, ri, false
}

// get returns id's live record, to change in place, or nil. The pointer is
// valid until the set next changes.
func (s *pendingSet) get(id uint64) *pending {
	bi, ri, ok := s.find(id)
	if !ok {
		return nil
	}
	return &s.writable(bi).recs[ri]
}

// add puts p in the set; it returns the record p replaced (an ID already
// held), if any. IDs above every held one, the only ones a channel gets,
// are appended; anything else is inserted in place.
func (s *pendingSet) add(p pending) (old pending, replaced bool) {
	p.id = p.msg.id
	n := len(s.blocks)
	if n == 0 || s.blocks[n-1].recs[len(s.blocks[n-1].recs)-1].id < p.id {
		if n == 0 || len(s.blocks[n-1].recs) >= blockSize {
			b := s.spare // in no snapshot: it was no block when cloned
			if b != nil {
				s.spare, b.epoch = nil, s.epoch
			} else {
				b = &block{recs: make([]pending, 0, 8), epoch: s.epoch}
			}
			s.blocks = append(s.blocks, b)
			n++
		}
		b := s.writable(n - 1)
		if len(b.recs) == cap(b.recs) {
			// Doubling up to blockSize records (32 KiB, a size class):
			// append's own growth would leave a full block ~20% unused.
			recs := make([]pending, len(b.recs), min(blockSize, 2*cap(b.recs)))
			copy(recs, b.recs)
			b.recs = recs
		}
		b.recs = append(b.recs, p)
		b.live++
		s.live++
		return pending{}, false
	}
	bi, ri := s.locate(p.id)
	if bi == n || (ri == 0 && bi > 0 && s.blocks[bi].recs[0].id != p.id) {
		bi, ri = bi-1, len(s.blocks[bi-1].recs) // after the previous block's last
	}
	b := s.writable(bi)
	if ri < len(b.recs) && b.recs[ri].id == p.id {
		old = b.recs[ri]
		b.recs[ri] = p
		if old.msg != nil {
			return old, true
		}
	} else {
		b.recs = slices.Insert(b.recs, ri, p) // may pass blockSize: rare
	}
	b.live++
	s.live++
	return pending{}, false
}

// removeAt finishes the live record ri of block bi and returns it.
func (s *pendingSet) removeAt(bi, ri int) pending {
	b := s.writable(bi)
	p := b.recs[ri]
	b.recs[ri].msg = nil
	b.live--
	s.live--
	s.tidy(bi)
	return p
}

// tidy drops block bi if all its records are finished, or compacts it if
// most are; it reports whether bi was dropped. bi must be writable.
func (s *pendingSet) tidy(bi int) (dropped bool) {
	b := s.blocks[bi]
	switch {
	case b.live == 0:
		// Written in this epoch, b is no snapshot's: reuse it (a
		// channel that keeps up empties and refills one block).
		clear(b.recs)
		b.recs = b.recs[:0]
		s.spare = b
		if bi == 0 {
			s.blocks[0] = nil
			s.blocks = s.blocks[1:]
		} else {
			s.blocks = slices.Delete(s.blocks, bi, bi+1)
		}
		if len(s.blocks) == 0 {
			s.blocks = nil
		}
		return true
	case len(b.recs) >= 64 && b.live < len(b.recs)/4:
		recs := make([]pending, 0, b.live)
		for _, p := range b.recs {
			if p.msg != nil {
				recs = append(recs, p)
			}
		}
		b.recs = recs
	}
	return false
}

// remove takes id out of the set and returns its record (ok false if it
// was not held).
func (s *pendingSet) remove(id uint64) (pending, bool) {
	bi, ri, ok := s.find(id)
	if !ok {
		return pending{}, false
	}
	return s.removeAt(bi, ri), true
}

// removeRange takes every ID in [first, last] out of the set and calls
// fn (if not nil) with each record removed.
func (s *pendingSet) removeRange(first, last uint64, fn func(pending)) {
	if first > last {
		return
	}
	bi, ri := s.locate(first)
	for bi < len(s.blocks) && s.blocks[bi].recs[ri].id <= last {
		b := s.blocks[bi]
		changed := false
		for ; ri < len(b.recs) && b.recs[ri].id <= last; ri++ {
			if b.recs[ri].msg == nil {
				continue
			}
			if !changed {
				b, changed = s.writable(bi), true
			}
			if fn != nil {
				fn(b.recs[ri])
			}
			b.recs[ri].msg = nil
			b.live--
			s.live--
		}
		if ri < len(b.recs) {
			if changed {
				s.tidy(bi)
			}
			return // the next record is past last
		}
		if !changed || !s.tidy(bi) {
			bi++
		}
		ri = 0
	}
}

// popOldest removes and returns the live record with the lowest ID.
func (s *pendingSet) popOldest() (pending, bool) {
	if len(s.blocks) == 0 {
		return pending{}, false
	}
	for ri, p := range s.blocks[0].recs {
		if p.msg != nil {
			return s.removeAt(0, ri), true
		}
	}
	panic("replication: pendingSet block without a live record")
}

// all calls fn with each live record in ID order until fn returns false.
// fn must not change the records.
func (s *pendingSet) all(fn func(*pending) bool) {
	for _, b := range s.blocks {
		for i := range b.recs {
			if b.recs[i].msg != nil && !fn(&b.recs[i]) {
				return
			}
		}
	}
}

// clear empties the set (its blocks may be a snapshot's: they are left).
func (s *pendingSet) clear() {
	s.blocks, s.live = nil, 0
}

// clone returns a copy (a snapshot's) sharing the blocks; from now on
// each set copies a block before changing it.
func (s *pendingSet) clone() pendingSet {
	s.epoch = epochs.Add(1)
	return pendingSet{blocks: slices.Clone(s.blocks), live: s.live, epoch: epochs.Add(1)}
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

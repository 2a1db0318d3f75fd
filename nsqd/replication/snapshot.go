package replication

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
)

// Snapshot format, version 2 (integers as in entry.go):
//
//	magic "NSQRSNAP" | version 1 byte | index uv | lastID uv
//	| uv leaders | leaders × (id string | addrs string)
//	| defaults string
//	| uv messages | messages × (id uv | timestamp i64 | uv len | body)
//	| uv topics | topics × (name | flags 1 byte | config string | refs | origins
//	                        | uv channels | channels × (name | flags 1 byte | config string | refs))
//	refs = uv n | n × (id uv | deliverAt i64 | attempts uv)
//	origins = uv n | n × (id uv | topic | channel | originalID uv
//	                      | originalTimestamp i64 | attempts uv | reason 1 byte | time i64)
//
// Version 1 (written before limits were replicated) has no defaults,
// config or origins; it is still read. Every message body appears once, in
// ID order, however many channels hold it; topics, channels and refs are
// sorted, so equal states give equal snapshots. Flags: bit 0 = paused.
const (
	snapshotMagic   = "NSQRSNAP"
	snapshotVersion = 2
	maxSnapBody     = 1 << 30
)

// ErrBadSnapshot is wrapped by every snapshot decoding error.
var ErrBadSnapshot = errors.New("bad replication snapshot")

type snapWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (w *snapWriter) uv(v uint64) {
	w.buf = binary.AppendUvarint(w.buf[:0], v)
	w.w.Write(w.buf)
}

func (w *snapWriter) i64(v int64) {
	w.buf = binary.BigEndian.AppendUint64(w.buf[:0], uint64(v))
	w.w.Write(w.buf)
}

func (w *snapWriter) str(s string) {
	w.uv(uint64(len(s)))
	w.w.WriteString(s)
}

func (w *snapWriter) ref(p *pending) {
	w.uv(p.msg.id)
	w.i64(p.deliverAt)
	w.uv(uint64(p.attempts))
}

func (w *snapWriter) refs(ps []*pending) {
	w.uv(uint64(len(ps)))
	for _, p := range ps {
		w.ref(p)
	}
}

func (w *snapWriter) refSet(s *pendingSet) {
	w.uv(uint64(s.len()))
	s.all(func(p *pending) bool {
		w.ref(p)
		return true
	})
}

func flags(paused bool) byte {
	if paused {
		return 1
	}
	return 0
}

func writeState(out io.Writer, s *state) error {
	w := &snapWriter{w: bufio.NewWriterSize(out, 256<<10)}
	w.w.WriteString(snapshotMagic)
	w.w.WriteByte(snapshotVersion)
	w.uv(s.index)
	w.uv(s.lastID)
	w.uv(uint64(len(s.leaders)))
	for _, id := range slices.Sorted(maps.Keys(s.leaders)) {
		w.str(id)
		w.str(s.leaders[id])
	}
	w.str(s.defaults)
	backlogs := make(map[string][]*pending, len(s.topics))
	for name, t := range s.topics {
		backlogs[name] = sortedBacklog(t.backlog)
	}
	bodies := messagesInOrder(s, backlogs)
	w.uv(uint64(len(bodies)))
	for _, m := range bodies {
		w.uv(m.id)
		w.i64(m.timestamp)
		w.uv(uint64(len(m.body)))
		w.w.Write(m.body)
	}
	w.uv(uint64(len(s.topics)))
	for _, name := range slices.Sorted(maps.Keys(s.topics)) {
		t := s.topics[name]
		w.str(name)
		w.w.WriteByte(flags(t.paused))
		w.str(t.config)
		w.refs(backlogs[name])
		w.uv(uint64(len(t.origins)))
		for _, o := range t.origins {
			w.uv(o.ID)
			w.str(o.Topic)
			w.str(o.Channel)
			w.uv(o.OriginalID)
			w.i64(o.OriginalTimestamp)
			w.uv(uint64(o.Attempts))
			w.w.WriteByte(byte(o.Reason))
			w.i64(o.Time)
		}
		w.uv(uint64(len(t.channels)))
		for _, cname := range slices.Sorted(maps.Keys(t.channels)) {
			c := t.channels[cname]
			w.str(cname)
			w.w.WriteByte(flags(c.paused))
			w.str(c.config)
			w.refSet(&c.msgs)
		}
	}
	return w.w.Flush()
}

type snapReader struct {
	r   *bufio.Reader
	err error
}

func (r *snapReader) fail(err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
}

func (r *snapReader) uv() uint64 {
	if r.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(r.r)
	if err != nil {
		r.fail(err)
	}
	return v
}

func (r *snapReader) i64() int64 {
	var b [8]byte
	r.full(b[:])
	return int64(binary.BigEndian.Uint64(b[:]))
}

func (r *snapReader) full(b []byte) {
	if r.err != nil {
		return
	}
	if _, err := io.ReadFull(r.r, b); err != nil {
		r.fail(err)
	}
}

func (r *snapReader) byte1() byte {
	if r.err != nil {
		return 0
	}
	b, err := r.r.ReadByte()
	if err != nil {
		r.fail(err)
	}
	return b
}

func (r *snapReader) str() string {
	n := r.uv()
	if n > maxName {
		r.fail(fmt.Errorf("string of %d bytes", n))
		return ""
	}
	b := make([]byte, n)
	r.full(b)
	return string(b)
}

// count reads an element count; elements are allocated as they are read, so
// a forged count costs at most a failed read.
func (r *snapReader) count() uint64 { return r.uv() }

// refs reads a list of references to bodies; each gives a record to fn.
func (r *snapReader) refs(bodies *bodyIndex, fn func(pending)) {
	n := r.count()
	for i := uint64(0); i < n && r.err == nil; i++ {
		id, deliverAt, attempts := r.uv(), r.i64(), r.uv()
		m := bodies.get(id)
		if r.err == nil && (m == nil || attempts > 0xffff) {
			r.fail(fmt.Errorf("reference to message %d (attempts %d)", id, attempts))
		}
		if r.err != nil {
			return
		}
		fn(pending{id: id, msg: m, deliverAt: deliverAt, attempts: uint16(attempts)})
	}
}

func readState(in io.Reader) (*state, error) {
	r := &snapReader{r: bufio.NewReaderSize(in, 256<<10)}
	magic := make([]byte, len(snapshotMagic)+1)
	r.full(magic)
	version := magic[len(snapshotMagic)]
	if r.err == nil && (string(magic[:len(snapshotMagic)]) != snapshotMagic || version < 1 || version > snapshotVersion) {
		r.fail(fmt.Errorf("header %q", magic))
	}
	s := newState()
	s.index = r.uv()
	s.lastID = r.uv()
	for n := r.count(); n > 0 && r.err == nil; n-- {
		id := r.str()
		s.leaders[id] = r.str()
	}
	if version >= 2 {
		s.defaults = r.str()
	}
	bodies := &bodyIndex{}
	var slab []message // messages are allocated slabBatch at a time
	var arena []byte   // small bodies are cut from arenaSize blocks
	for n := r.count(); n > 0 && r.err == nil; n-- {
		if len(slab) == cap(slab) {
			slab = make([]message, 0, slabBatch)
		}
		slab = append(slab, message{id: r.uv(), timestamp: r.i64()})
		m := &slab[len(slab)-1]
		size := r.uv()
		if size > maxSnapBody {
			r.fail(fmt.Errorf("body of %d bytes", size))
			break
		}
		var body []byte
		var err error
		if size <= maxArenaBody {
			// Small: at most maxArenaBody bytes allocated ahead of
			// what the input really holds.
			if uint64(cap(arena)-len(arena)) < size {
				arena = make([]byte, 0, arenaSize)
			}
			body = arena[len(arena) : len(arena)+int(size) : len(arena)+int(size)]
			arena = arena[:len(arena)+int(size)]
			_, err = io.ReadFull(r.r, body)
		} else {
			// Read, not allocate, size bytes: a forged size costs only
			// what the input really holds.
			body, err = io.ReadAll(io.LimitReader(r.r, int64(size)))
			if err == nil && uint64(len(body)) != size {
				err = io.ErrUnexpectedEOF
			}
		}
		if err != nil {
			r.fail(err)
			break
		}
		m.body = body
		bodies.add(m)
	}
	for n := r.count(); n > 0 && r.err == nil; n-- {
		name := r.str()
		t := &topicState{paused: r.byte1()&1 != 0, channels: make(map[string]*channelState)}
		if version >= 2 {
			t.config = r.str()
		}
		r.refs(bodies, func(p pending) { t.backlog = append(t.backlog, &p) })
		if version >= 2 {
			for no := r.count(); no > 0 && r.err == nil; no-- {
				o := Origin{ID: r.uv(), Topic: r.str(), Channel: r.str(), OriginalID: r.uv(), OriginalTimestamp: r.i64()}
				a := r.uv()
				o.Reason = DeadReason(r.byte1())
				o.Time = r.i64()
				if r.err == nil && (a > 0xffff || o.Reason == 0 || o.Reason >= reasonMax) {
					r.fail(fmt.Errorf("origin of %d: attempts %d, reason %d", o.ID, a, o.Reason))
				}
				o.Attempts = uint16(a)
				t.origins = append(t.origins, o)
			}
		}
		for nc := r.count(); nc > 0 && r.err == nil; nc-- {
			cname := r.str()
			c := &channelState{paused: r.byte1()&1 != 0}
			if version >= 2 {
				c.config = r.str()
			}
			r.refs(bodies, func(p pending) { c.msgs.add(p) }) // in ID order: appends
			t.channels[cname] = c
		}
		s.topics[name] = t
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

const (
	slabBatch    = 256      // messages per allocation when restoring
	arenaSize    = 64 << 10 // bytes per block of small bodies when restoring
	maxArenaBody = 4 << 10  // larger bodies get their own allocation
)

// bodyIndex finds a snapshot's messages by ID while it is read. They are
// written in ID order, so it is a sorted slice and the references, also in
// ID order, are found by walking it; a map takes over should a snapshot
// list them out of order (the format does not require the order).
type bodyIndex struct {
	sorted []*message
	next   int // where the next reference is expected
	byID   map[uint64]*message
}

func (b *bodyIndex) add(m *message) {
	if b.byID == nil && (len(b.sorted) == 0 || b.sorted[len(b.sorted)-1].id < m.id) {
		b.sorted = append(b.sorted, m)
		return
	}
	if b.byID == nil {
		b.byID = make(map[uint64]*message, len(b.sorted)+1)
		for _, m := range b.sorted {
			b.byID[m.id] = m
		}
		b.sorted = nil
	}
	b.byID[m.id] = m // a repeated ID: the last one, as before
}

func (b *bodyIndex) get(id uint64) *message {
	if b.byID != nil {
		return b.byID[id]
	}
	if b.next < len(b.sorted) && b.sorted[b.next].id == id {
		b.next++
		return b.sorted[b.next-1]
	}
	i, ok := slices.BinarySearchFunc(b.sorted, id, func(m *message, id uint64) int { return cmp.Compare(m.id, id) })
	if !ok {
		return nil
	}
	b.next = i + 1
	return b.sorted[i]
}

// sortedBacklog returns the backlog in ID order (it is kept so; a snapshot
// does not rely on it).
func sortedBacklog(ps []*pending) []*pending {
	if slices.IsSortedFunc(ps, func(a, b *pending) int { return cmp.Compare(a.msg.id, b.msg.id) }) {
		return ps
	}
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b *pending) int { return cmp.Compare(a.msg.id, b.msg.id) })
	return ps
}

// messagesInOrder returns every message s holds, once, in ID order: a
// merge of the channels' sets and the topics' backlogs (each in ID order),
// rather than a map of every ID and a sort.
func messagesInOrder(s *state, backlogs map[string][]*pending) []*message {
	var h cursorHeap
	total := 0
	for name, t := range s.topics {
		if b := backlogs[name]; len(b) > 0 {
			h = append(h, &cursor{backlog: b})
			total += len(b)
		}
		for _, c := range t.channels {
			if c.msgs.len() > 0 {
				h = append(h, &cursor{blocks: c.msgs.blocks})
				total += c.msgs.len()
			}
		}
	}
	out := make([]*message, 0, min(total, 1<<20))
	for i := range h {
		h[i].skip()
	}
	heap.Init(&h)
	for len(h) > 0 {
		c := h[0]
		m := c.msg()
		if len(out) == 0 || out[len(out)-1].id != m.id {
			out = append(out, m)
		}
		if c.advance() {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return out
}

// cursor walks one backlog or one channel's records (skipping tombstones).
type cursor struct {
	backlog []*pending
	blocks  []*block  // the channel's blocks after set's
	set     []pending // what is left of the current block
}

func (c *cursor) skip() {
	for {
		for len(c.set) > 0 && c.set[0].msg == nil {
			c.set = c.set[1:]
		}
		if len(c.set) > 0 || len(c.blocks) == 0 {
			return
		}
		c.set, c.blocks = c.blocks[0].recs, c.blocks[1:]
	}
}

func (c *cursor) msg() *message {
	if c.backlog != nil {
		return c.backlog[0].msg
	}
	return c.set[0].msg
}

// advance moves to the next record; false when there is none.
func (c *cursor) advance() bool {
	if c.backlog != nil {
		c.backlog = c.backlog[1:]
		return len(c.backlog) > 0
	}
	c.set = c.set[1:]
	c.skip()
	return len(c.set) > 0
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return h[i].msg().id < h[j].msg().id }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

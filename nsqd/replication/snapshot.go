package replication

import (
	"bufio"
	"cmp"
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

func (w *snapWriter) refs(ps []*pending) {
	w.uv(uint64(len(ps)))
	for _, p := range ps {
		w.uv(p.msg.id)
		w.i64(p.deliverAt)
		w.uv(uint64(p.attempts))
	}
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
	bodies := make(map[uint64]*message)
	for _, t := range s.topics {
		for _, p := range t.backlog {
			bodies[p.msg.id] = p.msg
		}
		for _, c := range t.channels {
			for _, p := range c.msgs {
				bodies[p.msg.id] = p.msg
			}
		}
	}
	w.uv(uint64(len(bodies)))
	for _, id := range slices.Sorted(maps.Keys(bodies)) {
		m := bodies[id]
		w.uv(id)
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
		backlog := slices.Clone(t.backlog)
		slices.SortFunc(backlog, func(a, b *pending) int { return cmp.Compare(a.msg.id, b.msg.id) })
		w.refs(backlog)
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
			w.refs(sortedPending(c.msgs))
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

func (r *snapReader) refs(bodies map[uint64]*message) []*pending {
	n := r.count()
	var out []*pending
	for i := uint64(0); i < n && r.err == nil; i++ {
		id, deliverAt, attempts := r.uv(), r.i64(), r.uv()
		m := bodies[id]
		if r.err == nil && (m == nil || attempts > 0xffff) {
			r.fail(fmt.Errorf("reference to message %d (attempts %d)", id, attempts))
		}
		if r.err != nil {
			return nil
		}
		out = append(out, &pending{msg: m, deliverAt: deliverAt, attempts: uint16(attempts)})
	}
	return out
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
	bodies := make(map[uint64]*message)
	for n := r.count(); n > 0 && r.err == nil; n-- {
		m := &message{id: r.uv(), timestamp: r.i64()}
		size := r.uv()
		if size > maxSnapBody {
			r.fail(fmt.Errorf("body of %d bytes", size))
			break
		}
		// Read, not allocate, size bytes: a forged size costs only
		// what the input really holds.
		body, err := io.ReadAll(io.LimitReader(r.r, int64(size)))
		if err == nil && uint64(len(body)) != size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			r.fail(err)
			break
		}
		m.body = body
		bodies[m.id] = m
	}
	for n := r.count(); n > 0 && r.err == nil; n-- {
		name := r.str()
		t := &topicState{paused: r.byte1()&1 != 0, channels: make(map[string]*channelState)}
		if version >= 2 {
			t.config = r.str()
		}
		t.backlog = r.refs(bodies)
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
			c := &channelState{paused: r.byte1()&1 != 0, msgs: make(map[uint64]*pending)}
			if version >= 2 {
				c.config = r.str()
			}
			for _, p := range r.refs(bodies) {
				c.msgs[p.msg.id] = p
			}
			t.channels[cname] = c
		}
		s.topics[name] = t
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

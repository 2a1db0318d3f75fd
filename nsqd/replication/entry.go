package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Log entry format, version 1. Every raft log entry the package writes is
//
//	version (1 byte, 1) | kind (1 byte) | payload
//
// with integers as unsigned varints (uv) or big-endian fixed 8 bytes (i64),
// and strings as uv length + bytes:
//
//	Publish:  topic | timestamp i64 | deliverAt i64 | uv count | count × (uv len | body)
//	Meta:     op (1 byte) | topic | channel | arg
//	Progress: topic | channel | uv ranges | ranges × (uv gap | uv span)
//	          | uv requeues | requeues × (uv id | deliverAt i64 | attempts uv)
//	Settle:   a Progress (same fields) | time i64
//	          | uv dead | dead × (uv id | attempts uv | reason 1 byte)
//
// Settle (kind 4) is a Progress that also removes messages the leader
// dead-lettered (max attempts, TTL); AppendProgress writes kind 3 when it
// has none, so entries written before dead letters existed decode as they
// did.
//
// Progress ranges are sorted, disjoint runs of finished IDs: the first run
// starts at gap, every later one at previous end + 1 + gap, and each covers
// span+1 IDs. IDs grow by one per message across the whole set, so a batch
// of FINs compresses to a few ranges.
const (
	entryVersion = 1

	kindPublish  = 1
	kindMeta     = 2
	kindProgress = 3
	kindSettle   = 4
)

// maxName bounds a decoded topic, channel or meta argument: topic and
// channel names are at most 64 bytes, an argument is an address or an ID.
const maxName = 1024

// Publish is one PUB, MPUB or DPUB: the messages get consecutive IDs when the
// entry is applied, so every replica gives them the same ones.
type Publish struct {
	Topic     string
	Timestamp int64 // Unix ns, set by the node that proposed it
	DeliverAt int64 // Unix ns; 0: deliver at once
	Bodies    [][]byte
}

// MetaOp is what a Meta entry does.
type MetaOp byte

// Meta operations. Creating what exists and deleting what does not are
// no-ops, so a retried proposal is harmless.
const (
	OpCreateTopic MetaOp = iota + 1
	OpDeleteTopic
	OpPauseTopic
	OpUnpauseTopic
	OpEmptyTopic
	OpCreateChannel
	OpDeleteChannel
	OpPauseChannel
	OpUnpauseChannel
	OpEmptyChannel
	// OpLeader records the proposing leader's client addresses (Arg, as
	// "tcp-addr,http-addr") under its replica ID (Topic) so that followers
	// know where to forward.
	OpLeader
	// OpConfig replaces the limit overrides of a topic (Channel "") or of
	// a channel: Arg is nsqd's overrides as JSON (the body of POST
	// /topic/config, /channel/config), "" or "{}" for none.
	OpConfig
	// OpDefaults records the set's nsqd-wide limits (--max-channel-depth
	// and the like) as JSON (Defaults); the leader proposes its own when
	// it starts leading, if they differ from the recorded ones.
	OpDefaults
	opMax
)

var metaOpNames = [...]string{
	OpCreateTopic: "create-topic", OpDeleteTopic: "delete-topic", OpPauseTopic: "pause-topic",
	OpUnpauseTopic: "unpause-topic", OpEmptyTopic: "empty-topic", OpCreateChannel: "create-channel",
	OpDeleteChannel: "delete-channel", OpPauseChannel: "pause-channel", OpUnpauseChannel: "unpause-channel",
	OpEmptyChannel: "empty-channel", OpLeader: "leader", OpConfig: "config", OpDefaults: "defaults",
}

func (op MetaOp) String() string {
	if op > 0 && op < opMax {
		return metaOpNames[op]
	}
	return fmt.Sprintf("MetaOp(%d)", byte(op))
}

// Meta changes the set of topics and channels or their flags.
type Meta struct {
	Op      MetaOp
	Topic   string
	Channel string
	Arg     string
}

// Range is a run of IDs, First through Last inclusive.
type Range struct{ First, Last uint64 }

// Requeue records a message given back to its channel: its attempts so far
// and when it is due again.
type Requeue struct {
	ID        uint64
	DeliverAt int64
	Attempts  uint16
}

// DeadReason is why the leader removed a message from a channel to
// dead-letter it.
type DeadReason byte

// Dead-letter reasons; their names are nsqd's (DeadLetterOrigin.Reason).
const (
	ReasonMaxAttempts DeadReason = iota + 1 // REQ'd or timed out at max_attempts
	ReasonExpired                           // older than msg_ttl_ms, dead_letter_expired set
	ReasonMaxLen                            // drop-oldest (the FSM's own decision, never logged)
	reasonMax
)

func (r DeadReason) String() string {
	switch r {
	case ReasonMaxAttempts:
		return "max_attempts"
	case ReasonExpired:
		return "expired"
	case ReasonMaxLen:
		return "maxlen"
	}
	return fmt.Sprintf("DeadReason(%d)", byte(r))
}

// Dead is a message the leader takes out of its channel as a dead letter:
// the FSM moves it to the channel's dead-letter topic (or drops it when the
// channel has none).
type Dead struct {
	ID       uint64
	Attempts uint16
	Reason   DeadReason
}

// Progress is a batch of one channel's settlements: finished IDs as sorted,
// disjoint ranges, requeued messages and dead letters. Channel "" is the
// topic's backlog, of which only Finished applies (messages the leader took
// out of it: a redrive). Time (Unix ns, the
// leader's clock) stamps the dead letters' origins.
type Progress struct {
	Topic    string
	Channel  string
	Finished []Range
	Requeued []Requeue
	Time     int64
	Dead     []Dead
}

// Entry is a decoded log entry: exactly one field is set.
type Entry struct {
	Publish  *Publish
	Meta     *Meta
	Progress *Progress
}

// ErrBadEntry is wrapped by every decoding error.
var ErrBadEntry = errors.New("bad replication entry")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendI64(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

// AppendPublish appends p's encoding to b.
func AppendPublish(b []byte, p *Publish) []byte {
	size := 2 + len(p.Topic) + 24
	for _, body := range p.Bodies {
		size += len(body) + binary.MaxVarintLen32
	}
	b = growTo(b, size)
	b = append(b, entryVersion, kindPublish)
	b = appendString(b, p.Topic)
	b = appendI64(b, p.Timestamp)
	b = appendI64(b, p.DeliverAt)
	b = binary.AppendUvarint(b, uint64(len(p.Bodies)))
	for _, body := range p.Bodies {
		b = binary.AppendUvarint(b, uint64(len(body)))
		b = append(b, body...)
	}
	return b
}

func growTo(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		return nb
	}
	return b
}

// AppendMeta appends m's encoding to b.
func AppendMeta(b []byte, m *Meta) []byte {
	b = append(b, entryVersion, kindMeta, byte(m.Op))
	b = appendString(b, m.Topic)
	b = appendString(b, m.Channel)
	return appendString(b, m.Arg)
}

// AppendProgress appends p's encoding to b. p.Finished must be sorted and
// disjoint (see Ranges).
func AppendProgress(b []byte, p *Progress) []byte {
	kind := byte(kindProgress)
	if len(p.Dead) > 0 || p.Time != 0 {
		kind = kindSettle
	}
	b = append(b, entryVersion, kind)
	b = appendString(b, p.Topic)
	b = appendString(b, p.Channel)
	b = binary.AppendUvarint(b, uint64(len(p.Finished)))
	var next uint64
	for _, r := range p.Finished {
		b = binary.AppendUvarint(b, r.First-next)
		b = binary.AppendUvarint(b, r.Last-r.First)
		next = r.Last + 1
	}
	b = binary.AppendUvarint(b, uint64(len(p.Requeued)))
	for _, rq := range p.Requeued {
		b = binary.AppendUvarint(b, rq.ID)
		b = appendI64(b, rq.DeliverAt)
		b = binary.AppendUvarint(b, uint64(rq.Attempts))
	}
	if kind == kindSettle {
		b = appendI64(b, p.Time)
		b = binary.AppendUvarint(b, uint64(len(p.Dead)))
		for _, d := range p.Dead {
			b = binary.AppendUvarint(b, d.ID)
			b = binary.AppendUvarint(b, uint64(d.Attempts))
			b = append(b, byte(d.Reason))
		}
	}
	return b
}

// decoder reads an entry; the first error sticks and later reads return
// zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at %d bytes from the end", ErrBadEntry, what, len(d.b))
	}
	d.b = nil
}

func (d *decoder) byte1(what string) byte {
	if len(d.b) < 1 {
		d.fail("short " + what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) i64(what string) int64 {
	if len(d.b) < 8 {
		d.fail("short " + what)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return int64(v)
}

// bytes returns n bytes aliasing the input.
func (d *decoder) bytes(n uint64, what string) []byte {
	if n > uint64(len(d.b)) {
		d.fail("short " + what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(what string) string {
	n := d.uvarint(what + " length")
	if n > maxName {
		d.fail(what + " too long")
		return ""
	}
	return string(d.bytes(n, what))
}

// count reads a element count and checks that the rest of the input can hold
// that many elements of at least min bytes each, so a forged count cannot
// make the decoder allocate more than the input's size.
func (d *decoder) count(min int, what string) int {
	n := d.uvarint(what)
	if n > uint64(len(d.b)/min) {
		d.fail(what + " exceeds the input")
		return 0
	}
	return int(n)
}

// DecodeEntry parses one log entry. Publish bodies alias b.
func DecodeEntry(b []byte) (Entry, error) {
	d := &decoder{b: b}
	if v := d.byte1("version"); d.err == nil && v != entryVersion {
		return Entry{}, fmt.Errorf("%w: version %d", ErrBadEntry, v)
	}
	var e Entry
	switch kind := d.byte1("kind"); kind {
	case kindPublish:
		p := &Publish{Topic: d.str("topic"), Timestamp: d.i64("timestamp"), DeliverAt: d.i64("deliver-at")}
		n := d.count(1, "message count")
		if d.err == nil {
			p.Bodies = make([][]byte, n)
		}
		for i := range p.Bodies {
			p.Bodies[i] = d.bytes(d.uvarint("body length"), "body")
		}
		e.Publish = p
	case kindMeta:
		m := &Meta{Op: MetaOp(d.byte1("op"))}
		if d.err == nil && (m.Op == 0 || m.Op >= opMax) {
			d.fail(fmt.Sprintf("unknown meta op %d", m.Op))
		}
		m.Topic, m.Channel, m.Arg = d.str("topic"), d.str("channel"), d.str("arg")
		e.Meta = m
	case kindProgress, kindSettle:
		p := &Progress{Topic: d.str("topic"), Channel: d.str("channel")}
		if n := d.count(2, "range count"); n > 0 {
			p.Finished = make([]Range, n)
		}
		var next uint64
		for i := range p.Finished {
			gap, span := d.uvarint("range gap"), d.uvarint("range span")
			first := next + gap
			last := first + span
			if first < next || last < first || last == ^uint64(0) {
				d.fail("range overflows")
				break
			}
			p.Finished[i] = Range{first, last}
			next = last + 1
		}
		if n := d.count(10, "requeue count"); n > 0 {
			p.Requeued = make([]Requeue, n)
		}
		for i := range p.Requeued {
			rq := &p.Requeued[i]
			rq.ID, rq.DeliverAt = d.uvarint("requeue id"), d.i64("requeue deliver-at")
			a := d.uvarint("requeue attempts")
			if a > 0xffff {
				d.fail("attempts overflow")
			}
			rq.Attempts = uint16(a)
		}
		if kind == kindSettle {
			p.Time = d.i64("time")
			if n := d.count(3, "dead count"); n > 0 {
				p.Dead = make([]Dead, n)
			}
			for i := range p.Dead {
				dl := &p.Dead[i]
				dl.ID = d.uvarint("dead id")
				a := d.uvarint("dead attempts")
				dl.Reason = DeadReason(d.byte1("dead reason"))
				if d.err == nil && (a > 0xffff || dl.Reason == 0 || dl.Reason >= reasonMax) {
					d.fail("bad dead letter")
				}
				dl.Attempts = uint16(a)
			}
			if d.err == nil && p.Time == 0 && len(p.Dead) == 0 {
				d.fail("empty settle") // AppendProgress writes it as a Progress
			}
		}
		e.Progress = p
	default:
		if d.err == nil {
			d.fail(fmt.Sprintf("unknown kind %d", kind))
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return Entry{}, d.err
	}
	return e, nil
}

// Ranges turns IDs (in any order, duplicates allowed) into sorted, disjoint
// ranges. It sorts ids in place.
func Ranges(ids []uint64) []Range {
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	out := []Range{{ids[0], ids[0]}}
	for _, id := range ids[1:] {
		last := &out[len(out)-1]
		switch {
		case id <= last.Last:
		case id == last.Last+1:
			last.Last = id
		default:
			out = append(out, Range{id, id})
		}
	}
	return out
}

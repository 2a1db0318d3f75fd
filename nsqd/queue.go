package nsqd

import (
	"container/heap"
	"unsafe"
)

// msgQueue is a FIFO of messages: a ring buffer of runs that grows as
// needed and gives its memory back once drained, so idle topics and
// channels cost nothing. Not safe for concurrent use.
//
// A run is one *Message or a range of a pubBatch's messages, which become
// Messages only when they are popped: a publish waiting in memory costs its
// bodies and one 16-byte run, not a Message and a slot per message.
type msgQueue struct {
	runs  []queueRun // ring
	head  int        // index in runs of the first run
	nruns int
	n     int // messages
}

// queueRun is a *Message (from < 0) or messages [from, to) of a *pubBatch.
type queueRun struct {
	p        unsafe.Pointer
	from, to int32
}

// queueSlot is one popped message: a *Message (i < 0) or message i of a
// *pubBatch.
type queueSlot struct {
	p unsafe.Pointer
	i int
}

func (q *msgQueue) len() int { return q.n }

func (q *msgQueue) push(m *Message) {
	q.pushRun(queueRun{unsafe.Pointer(m), -1, 0})
	q.n++
}

// pushBatch queues every message of b.
func (q *msgQueue) pushBatch(b *pubBatch) {
	if len(b.bodies) == 0 {
		return
	}
	q.pushRun(queueRun{unsafe.Pointer(b), 0, int32(len(b.bodies))})
	q.n += len(b.bodies)
}

func (q *msgQueue) pushRun(r queueRun) {
	if q.nruns == len(q.runs) {
		nr := make([]queueRun, max(8, 2*len(q.runs)))
		for i := range q.nruns {
			nr[i] = q.runs[(q.head+i)%len(q.runs)]
		}
		q.runs, q.head = nr, 0
	}
	q.runs[(q.head+q.nruns)%len(q.runs)] = r
	q.nruns++
}

// first is the first message if it was queued alone (not as part of a
// publish batch); nil otherwise or when the queue is empty. shift removes
// it.
func (q *msgQueue) first() *Message {
	if q.nruns == 0 || q.runs[q.head].from >= 0 {
		return nil
	}
	return (*Message)(q.runs[q.head].p)
}

func (q *msgQueue) shift() {
	var s [1]queueSlot
	q.popSlots(s[:0], 1)
}

// popN appends up to max messages to dst.
func (q *msgQueue) popN(dst []*Message, max int) []*Message {
	slots := q.popSlots(make([]queueSlot, 0, min(max, q.n)), max)
	return materialize(dst, slots)
}

// popSlots appends up to max messages to dst as slots, for materialize to
// turn into Messages (outside the lock that guards the queue).
func (q *msgQueue) popSlots(dst []queueSlot, max int) []queueSlot {
	for max > 0 && q.nruns > 0 {
		r := &q.runs[q.head]
		if r.from < 0 {
			dst = append(dst, queueSlot{r.p, -1})
			r.from, r.to = 0, 0
			max--
			q.n--
		} else {
			k := min(max, int(r.to-r.from))
			for i := range k {
				dst = append(dst, queueSlot{r.p, int(r.from) + i})
			}
			r.from += int32(k)
			max -= k
			q.n -= k
		}
		if r.from == r.to {
			*r = queueRun{}
			q.head = (q.head + 1) % len(q.runs)
			q.nruns--
		}
	}
	if q.nruns == 0 {
		q.head = 0
		if len(q.runs) > 1024 {
			q.runs = nil
		}
	}
	return dst
}

// materialize appends the messages of slots to dst. Batch messages get
// Messages of their own, all in one allocation.
func materialize(dst []*Message, slots []queueSlot) []*Message {
	var block []Message
	for k, s := range slots {
		if s.i < 0 {
			dst = append(dst, (*Message)(s.p))
			continue
		}
		if len(block) == 0 {
			block = make([]Message, len(slots)-k)
		}
		m := &block[0]
		block = block[1:]
		(*pubBatch)(s.p).message(m, s.i)
		dst = append(dst, m)
	}
	return dst
}

// drain removes and returns everything.
func (q *msgQueue) drain() []*Message {
	out := q.popN(make([]*Message, 0, q.n), q.n)
	q.runs, q.head = nil, 0
	return out
}

// msgHeap orders messages by deadline: a channel's deferred messages by
// deliver-at time, a client's in-flight messages by timeout.
type msgHeap []*Message

func (h msgHeap) Len() int           { return len(h) }
func (h msgHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h msgHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *msgHeap) Push(x any) {
	m := x.(*Message)
	m.index = len(*h)
	*h = append(*h, m)
}
func (h *msgHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	m.index = -1
	return m
}

func (h *msgHeap) add(m *Message) { heap.Push(h, m) }

func (h *msgHeap) remove(m *Message) { heap.Remove(h, m.index) }

func (h *msgHeap) fix(m *Message) { heap.Fix(h, m.index) }

// popDue appends every message whose deadline is <= now.
func (h *msgHeap) popDue(dst []*Message, now int64) []*Message {
	for len(*h) > 0 && (*h)[0].deadline <= now {
		dst = append(dst, heap.Pop(h).(*Message))
	}
	return dst
}

// inFlightList holds a client's in-flight messages ordered by deadline.
// Deliveries append in deadline order (now + the client's msg_timeout), so
// add is O(1) except after a clock step or a capped TOUCH; the timeout scan
// pops from the front.
type inFlightList struct {
	head, tail *Message
	n          int
}

// add inserts m after the last message with a deadline <= m.deadline.
func (l *inFlightList) add(m *Message) {
	at := l.tail
	for at != nil && at.deadline > m.deadline {
		at = at.prev
	}
	m.prev = at
	if at == nil {
		m.next = l.head
		l.head = m
	} else {
		m.next = at.next
		at.next = m
	}
	if m.next == nil {
		l.tail = m
	} else {
		m.next.prev = m
	}
	l.n++
}

func (l *inFlightList) remove(m *Message) {
	if m.prev == nil {
		l.head = m.next
	} else {
		m.prev.next = m.next
	}
	if m.next == nil {
		l.tail = m.prev
	} else {
		m.next.prev = m.prev
	}
	m.prev, m.next = nil, nil
	l.n--
}

// popDue appends and removes every message whose deadline is <= now.
func (l *inFlightList) popDue(dst []*Message, now int64) []*Message {
	for l.head != nil && l.head.deadline <= now {
		m := l.head
		l.remove(m)
		dst = append(dst, m)
	}
	return dst
}

// takeAll empties the list.
func (l *inFlightList) takeAll() []*Message {
	out := make([]*Message, 0, l.n)
	for m := l.head; m != nil; {
		next := m.next
		m.prev, m.next = nil, nil
		out = append(out, m)
		m = next
	}
	*l = inFlightList{}
	return out
}

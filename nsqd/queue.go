package nsqd

import (
	"container/heap"
	"unsafe"
)

// msgQueue is a FIFO of messages: a ring buffer that grows as needed and
// gives its memory back once drained, so idle topics and channels cost
// nothing. Not safe for concurrent use.
//
// A slot holds either a *Message or one message of a pubBatch, which
// becomes a Message only when it is popped: a message waiting in memory
// costs its body, its slot and its share of the batch, not a Message.
type msgQueue struct {
	buf  []queueSlot
	head int
	n    int
}

// queueSlot is a *Message (i < 0) or message i of a *pubBatch, in 16 bytes.
type queueSlot struct {
	p unsafe.Pointer
	i int
}

func (q *msgQueue) len() int { return q.n }

func (q *msgQueue) push(m *Message) {
	if q.n == len(q.buf) {
		q.grow(1)
	}
	q.buf[(q.head+q.n)%len(q.buf)] = queueSlot{unsafe.Pointer(m), -1}
	q.n++
}

// pushBatch queues every message of b.
func (q *msgQueue) pushBatch(b *pubBatch) {
	if q.n+len(b.bodies) > len(q.buf) {
		q.grow(len(b.bodies))
	}
	for i := range b.bodies {
		q.buf[(q.head+q.n)%len(q.buf)] = queueSlot{unsafe.Pointer(b), i}
		q.n++
	}
}

// grow makes room for at least n more slots.
func (q *msgQueue) grow(n int) {
	size := max(16, 2*len(q.buf))
	for size < q.n+n {
		size *= 2
	}
	nb := make([]queueSlot, size)
	for i := range q.n {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

// popN appends up to max messages to dst.
func (q *msgQueue) popN(dst []*Message, max int) []*Message {
	slots := q.popSlots(make([]queueSlot, 0, min(max, q.n)), max)
	return materialize(dst, slots)
}

// popSlots appends up to max slots to dst, for materialize to turn into
// Messages (outside the lock that guards the queue).
func (q *msgQueue) popSlots(dst []queueSlot, max int) []queueSlot {
	for ; max > 0 && q.n > 0; max-- {
		dst = append(dst, q.buf[q.head])
		q.buf[q.head] = queueSlot{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
	}
	if q.n == 0 {
		q.head = 0
		if len(q.buf) > 1024 {
			q.buf = nil
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
	q.buf, q.head = nil, 0
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

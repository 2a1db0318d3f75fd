package nsqd

// pubBatch is the messages of one publish while they wait in memory queues:
// their bodies, one timestamp and a run of ID positions. Every channel that
// queues the batch shares it; a message gets a Message of its own (in that
// channel) only when it is taken from the queue. A batch is never modified
// after it is made.
type pubBatch struct {
	bodies    [][]byte
	timestamp int64 // Unix ns
	idStart   int64 // guid position of message 0; message i has idStart+i
	guid      *guidFactory
}

// message fills m with message i, as a new, never delivered message.
func (b *pubBatch) message(m *Message, i int) {
	b.guid.id(&m.ID, b.idStart+int64(i))
	m.Body = b.bodies[i]
	m.Timestamp = b.timestamp
}

// messages makes every message of the batch, for the paths that queue
// Messages (deferred, durable, disk, topic backlog).
func (b *pubBatch) messages(deliverAt int64) []*Message {
	block := make([]Message, len(b.bodies))
	msgs := make([]*Message, len(b.bodies))
	for i := range block {
		m := &block[i]
		b.message(m, i)
		m.deadline = deliverAt
		msgs[i] = m
	}
	return msgs
}

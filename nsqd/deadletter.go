package nsqd

import (
	"encoding/json"
	"sync"
	"time"
)

// Server-side max attempts and dead-letter topics (not in NSQ). A delivery
// at a channel's max_attempts that is requeued (REQ) or times out is not
// requeued: the message is published to the channel's dead-letter topic and
// only then finished in the channel. In --durable mode the publish is
// fsynced before the finish is journaled, so a crash may duplicate a dead
// letter but never lose one. Ephemeral channels, and dead_letter_topic "-",
// drop instead (counted).
//
// A dead letter keeps its body; it gets a new ID and timestamp in the
// dead-letter topic (IDs are per topic and NSQ's message record has no room
// for more), and its origin is kept beside it in the dead-letter topic's
// memory (the most recent ones, shown by GET /topic/config) and, with
// dead_letter_envelope, in-band as a JSON envelope.

// Dead-letter reasons.
const (
	reasonMaxAttempts = "max_attempts"
	reasonExpired     = "expired"
	reasonMaxLen      = "maxlen" // drop-oldest overflow
)

// DeadLetterOrigin is where a dead letter came from.
type DeadLetterOrigin struct {
	SourceTopic       string `json:"source_topic"`
	SourceChannel     string `json:"source_channel"`
	OriginalID        string `json:"original_id"`
	OriginalTimestamp int64  `json:"original_timestamp"`
	Attempts          uint16 `json:"attempts"`
	Reason            string `json:"reason"`
	Time              int64  `json:"time"`
	ID                string `json:"id,omitempty"` // in the dead-letter topic
}

// deadLetterEnvelope is the body of a dead letter with
// dead_letter_envelope: the original body (base64 in JSON) and its origin.
type deadLetterEnvelope struct {
	Origin DeadLetterOrigin `json:"origin"`
	Body   []byte           `json:"body"`
}

// deadLetterLog keeps the origins of the most recent dead letters of a
// dead-letter topic.
type deadLetterLog struct {
	mu      sync.Mutex
	recent  []DeadLetterOrigin // ring, at most maxRecentDeadLetters
	next    int
	counter uint64
}

const maxRecentDeadLetters = 100

func (d *deadLetterLog) add(o DeadLetterOrigin) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counter++
	if len(d.recent) < maxRecentDeadLetters {
		d.recent = append(d.recent, o)
		return
	}
	d.recent[d.next] = o
	d.next = (d.next + 1) % maxRecentDeadLetters
}

// list returns the kept origins, oldest first, and how many dead letters
// the topic received since start.
func (d *deadLetterLog) list() ([]DeadLetterOrigin, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := append([]DeadLetterOrigin(nil), d.recent[d.next:]...)
	return append(out, d.recent[:d.next]...), d.counter
}

// takeDeadLetters dead-letters the messages of msgs that reached the
// channel's max_attempts and returns the others, to be requeued. Called
// with messages that were REQ'd or timed out.
//
// In durable mode the others' journal records get their attempts now: the
// journal otherwise counts attempts only when a message is read from disk
// or deferred, so a crash after a REQ 0 or a timeout would forget
// deliveries and postpone the dead letter.
func (c *Channel) takeDeadLetters(l *limits, msgs []*Message) []*Message {
	if l.maxAttempts <= 0 {
		return msgs
	}
	var dead []*Message
	k := 0
	for _, m := range msgs {
		if int64(m.Attempts) >= l.maxAttempts {
			dead = append(dead, m)
			continue
		}
		msgs[k] = m
		k++
	}
	if len(dead) > 0 {
		c.deadLetter(l, dead, reasonMaxAttempts)
	}
	if c.journal != nil && k > 0 {
		c.journal.put(msgs[:k], 0) // deliverable at once, as requeue makes them
	}
	return msgs[:k]
}

// deadLetter publishes msgs to the dead-letter topic, then finishes them in
// the channel. If the publish fails (the dead-letter topic is full, the
// disk refuses it) they stay in the channel, deferred for a second.
func (c *Channel) deadLetter(l *limits, msgs []*Message, reason string) {
	if c.ephemeral || l.deadLetterTopic == "" {
		c.deadLetterDroppedCount.Add(uint64(len(msgs)))
		for _, m := range msgs {
			c.finished(m)
		}
		return
	}
	now := time.Now().UnixNano()
	origins := make([]DeadLetterOrigin, len(msgs))
	bodies := make([][]byte, len(msgs))
	for i, m := range msgs {
		origins[i] = DeadLetterOrigin{
			SourceTopic:       c.topicName,
			SourceChannel:     c.name,
			OriginalID:        string(m.ID[:]),
			OriginalTimestamp: m.Timestamp,
			Attempts:          m.Attempts,
			Reason:            reason,
			Time:              now,
		}
		bodies[i] = m.Body
		if l.envelope {
			b, err := json.Marshal(deadLetterEnvelope{Origin: origins[i], Body: m.Body})
			if err == nil {
				bodies[i] = b
			}
		}
	}
	err := c.publishDeadLetters(l.deadLetterTopic, bodies, origins)
	if err != nil {
		c.log.Error("CHANNEL: failed to publish dead letters; kept in the channel", "dead_letter_topic", l.deadLetterTopic, "count", len(msgs), "err", err)
		for _, m := range msgs {
			c.deferMessage(m, time.Second)
		}
		return
	}
	c.deadLetteredCount.Add(uint64(len(msgs)))
	for _, m := range msgs {
		c.finished(m)
	}
}

// publishDeadLetters publishes to the dead-letter topic (created if
// needed); in --durable mode it returns once the messages are fsynced.
func (c *Channel) publishDeadLetters(topic string, bodies [][]byte, origins []DeadLetterOrigin) error {
	t, err := c.nsqd.GetTopic(topic)
	if err != nil {
		return err
	}
	ids, err := t.publishIDs(bodies)
	if err != nil {
		return err
	}
	for i := range origins {
		origins[i].ID = string(ids[i][:])
		t.deadLetters.add(origins[i])
	}
	return nil
}

// publishIDs publishes like PublishMulti and returns the messages' IDs.
func (t *Topic) publishIDs(bodies [][]byte) ([]MessageID, error) {
	start := t.guid.reserve(len(bodies))
	if err := t.publishReserved(bodies, start, 0); err != nil {
		return nil, err
	}
	ids := make([]MessageID, len(bodies))
	for i := range ids {
		t.guid.id(&ids[i], start+int64(i))
	}
	return ids, nil
}

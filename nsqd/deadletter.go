package nsqd

import (
	"encoding/json"
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
// for more), and its origin is kept beside it, keyed by that new ID, in the
// dead-letter topic's death log (deathlog.go: on disk, shown by peek and GET
// /topic/config) and, with dead_letter_envelope, in-band as a JSON envelope.

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

// maxRecentDeadLetters is how many origins GET /topic/config lists.
const maxRecentDeadLetters = 100

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
	if replicated, leads := c.replicaRole(); replicated && !leads {
		return msgs // the leader counts attempts and decides
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
	if r := c.nsqd.repl.Load(); r != nil && !c.ephemeral && !c.topic.ephemeral {
		r.deadLetters(c, l, msgs, reason) // the set's FSM publishes them
		return
	}
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
// needed); in --durable mode it returns once the messages are fsynced. The
// origins are recorded first (fsynced in durable mode), under the IDs the
// dead letters will have (replica sets refuse dead letters for now).
func (c *Channel) publishDeadLetters(topic string, bodies [][]byte, origins []DeadLetterOrigin) error {
	t, err := c.nsqd.GetTopic(topic)
	if err != nil {
		return err
	}
	start := t.guid.reserve(len(bodies))
	ids := make([]MessageID, len(bodies))
	for i := range ids {
		t.guid.id(&ids[i], start+int64(i))
	}
	if err := t.deadLetters.add(ids, origins, t.durable()); err != nil {
		return err
	}
	return t.publishReserved(bodies, start, 0)
}

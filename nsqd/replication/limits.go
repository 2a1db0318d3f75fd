package replication

import (
	"encoding/json"
	"fmt"

	"github.com/nsqclone/nsq/internal/protocol"
)

// Limits, overflow and dead letters of a replica set (docs/replication.md,
// "Limits and dead letters"). The FSM enforces what only depends on the
// log, so that every replica decides the same:
//
//   - max_depth and max_bytes with overflow=reject: a Publish that would
//     not fit in a channel (or in the topic's backlog) is refused as a
//     whole (Apply returns a *FullError, no ID is given out);
//   - overflow=drop-oldest: after a Publish, the channel's oldest messages
//     (lowest IDs) leave it until it fits; with dead_letter_dropped they
//     become dead letters;
//   - dead letters: the leader decides max attempts and TTL (only it sees
//     deliveries and time) and logs them in Settle entries; the FSM moves
//     each such message, or each dropped one, to its channel's dead-letter
//     topic within the same apply, with new IDs of the set-wide sequence
//     and its Origin.
//
// A depth here counts every unfinished message of the channel, in flight
// and deferred ones included: in-flight is the leader's view only.
//
// The limits come from the same three layers as nsqd's: the set's
// Defaults (OpDefaults), the topic's and the channel's overrides
// (OpConfig, nsqd's JSON). msg_ttl_ms, max_attempts and
// dead_letter_expired are the leader's to apply; the FSM reads only what
// it enforces.

// Defaults are the set's nsqd-wide limits (OpDefaults), named as nsqd's
// flags.
type Defaults struct {
	MaxTopicDepth   int64  `json:"max_topic_depth,omitempty"`
	MaxTopicBytes   int64  `json:"max_topic_bytes,omitempty"`
	MaxChannelDepth int64  `json:"max_channel_depth,omitempty"`
	MaxChannelBytes int64  `json:"max_channel_bytes,omitempty"`
	Overflow        string `json:"overflow,omitempty"`
	MsgTTLMs        int64  `json:"msg_ttl_ms,omitempty"`
	MaxAttempts     int64  `json:"max_attempts,omitempty"`
}

// Encode returns d as an OpDefaults argument.
func (d Defaults) Encode() string {
	b, _ := json.Marshal(d)
	return string(b)
}

// ParseDefaults parses an OpDefaults argument; anything unparsable is the
// zero Defaults (on every replica alike).
func ParseDefaults(s string) Defaults {
	var d Defaults
	if s != "" && json.Unmarshal([]byte(s), &d) != nil {
		return Defaults{}
	}
	return d
}

// overrides are the fields of nsqd's overrides JSON that the FSM enforces.
type overrides struct {
	MaxDepth           *int64  `json:"max_depth"`
	MaxBytes           *int64  `json:"max_bytes"`
	Overflow           *string `json:"overflow"`
	DeadLetterTopic    *string `json:"dead_letter_topic"`
	DeadLetterEnvelope *bool   `json:"dead_letter_envelope"`
	DeadLetterDropped  *bool   `json:"dead_letter_dropped"`
}

func parseOverrides(s string) overrides {
	var o overrides
	if s != "" && json.Unmarshal([]byte(s), &o) != nil {
		return overrides{}
	}
	return o
}

// limits are what the FSM enforces on a channel or a topic's backlog.
type limits struct {
	maxDepth, maxBytes int64
	dropOldest         bool
	deadLetterTopic    string // "": dead letters are dropped
	envelope           bool
	deadLetterDropped  bool
}

func (l limits) bounded() bool { return l.maxDepth > 0 || l.maxBytes > 0 }
func (l limits) rejects() bool { return l.bounded() && !l.dropOldest }
func (l limits) drops() bool   { return l.bounded() && l.dropOldest }

func pick[T any](ps ...*T) *T {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

// resolveTopic gives the limits of a topic's backlog: its overrides, then
// the set's defaults. Dead letters are per channel.
func resolveTopic(d Defaults, tp overrides) limits {
	l := limits{maxDepth: d.MaxTopicDepth, maxBytes: d.MaxTopicBytes, dropOldest: d.Overflow == "drop-oldest"}
	if tp.MaxDepth != nil {
		l.maxDepth = *tp.MaxDepth
	}
	if tp.MaxBytes != nil {
		l.maxBytes = *tp.MaxBytes
	}
	if tp.Overflow != nil {
		l.dropOldest = *tp.Overflow == "drop-oldest"
	}
	return l
}

// resolveChannel gives a channel's limits: the channel's overrides, then
// its topic's (but max_depth and max_bytes), then the set's defaults, as
// nsqd resolves them.
func resolveChannel(d Defaults, topic, channel string, tp, ch overrides) limits {
	l := limits{maxDepth: d.MaxChannelDepth, maxBytes: d.MaxChannelBytes, dropOldest: d.Overflow == "drop-oldest"}
	if ch.MaxDepth != nil {
		l.maxDepth = *ch.MaxDepth
	}
	if ch.MaxBytes != nil {
		l.maxBytes = *ch.MaxBytes
	}
	if v := pick(ch.Overflow, tp.Overflow); v != nil {
		l.dropOldest = *v == "drop-oldest"
	}
	l.deadLetterTopic = DefaultDeadLetterTopic(topic, channel)
	if v := pick(ch.DeadLetterTopic, tp.DeadLetterTopic); v != nil && *v != "" {
		l.deadLetterTopic = *v
	}
	if l.deadLetterTopic == "-" || !protocol.IsValidTopicName(l.deadLetterTopic) || protocol.IsEphemeral(l.deadLetterTopic) {
		l.deadLetterTopic = ""
	}
	if v := pick(ch.DeadLetterEnvelope, tp.DeadLetterEnvelope); v != nil {
		l.envelope = *v
	}
	if v := pick(ch.DeadLetterDropped, tp.DeadLetterDropped); v != nil {
		l.deadLetterDropped = *v
	}
	return l
}

// DefaultDeadLetterTopic is <topic>.<channel>.dlq, or "-" (drop) when that
// is not a valid topic name.
func DefaultDeadLetterTopic(topic, channel string) string {
	name := topic + "." + channel + ".dlq"
	if protocol.IsEphemeral(topic) || !protocol.IsValidTopicName(name) {
		return "-"
	}
	return name
}

// FullError is a publish refused because a channel (or the topic's
// backlog, Channel "") with overflow=reject would pass its limit. Its text
// is nsqd's, as it follows "PUB failed " on the wire.
type FullError struct {
	Topic   string `json:"topic"`
	Channel string `json:"channel,omitempty"`
	Limit   string `json:"limit"` // max_depth or max_bytes
	Value   int64  `json:"value"`
}

func (e *FullError) Error() string {
	if e.Channel == "" {
		return fmt.Sprintf("topic %s is full (%s %d)", e.Topic, e.Limit, e.Value)
	}
	return fmt.Sprintf("channel %s:%s is full (%s %d)", e.Topic, e.Channel, e.Limit, e.Value)
}

func checkFits(l limits, depth, bytes, n, size int64) *FullError {
	if l.maxDepth > 0 && depth+n > l.maxDepth {
		return &FullError{Limit: "max_depth", Value: l.maxDepth}
	}
	if l.maxBytes > 0 && bytes+size > l.maxBytes {
		return &FullError{Limit: "max_bytes", Value: l.maxBytes}
	}
	return nil
}

// Origin is where a dead letter came from (nsqd's DeadLetterOrigin): ID is
// the dead letter's own ID in its dead-letter topic.
type Origin struct {
	ID                uint64
	Topic, Channel    string
	OriginalID        uint64
	OriginalTimestamp int64
	Attempts          uint16
	Reason            DeadReason
	Time              int64 // Unix ns
}

// maxOrigins is how many origins a dead-letter topic keeps, the most recent
// by ID (nsqd's death log keeps as many); a var for tests.
var maxOrigins = 10000

// envelope is the body of a dead letter with dead_letter_envelope, in
// nsqd's JSON form (its deadLetterEnvelope).
type envelope struct {
	Origin struct {
		SourceTopic       string `json:"source_topic"`
		SourceChannel     string `json:"source_channel"`
		OriginalID        string `json:"original_id"`
		OriginalTimestamp int64  `json:"original_timestamp"`
		Attempts          uint16 `json:"attempts"`
		Reason            string `json:"reason"`
		Time              int64  `json:"time"`
	} `json:"origin"`
	Body []byte `json:"body"`
}

func envelopeBody(o *Origin, body []byte) []byte {
	var e envelope
	e.Origin.SourceTopic, e.Origin.SourceChannel = o.Topic, o.Channel
	e.Origin.OriginalID = fmt.Sprintf("%016x", o.OriginalID)
	e.Origin.OriginalTimestamp, e.Origin.Attempts = o.OriginalTimestamp, o.Attempts
	e.Origin.Reason, e.Origin.Time = o.Reason.String(), o.Time
	e.Body = body
	b, err := json.Marshal(e)
	if err != nil {
		return body
	}
	return b
}

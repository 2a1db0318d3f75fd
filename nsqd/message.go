package nsqd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// MessageID is the 16-byte ID clients echo in FIN, REQ and TOUCH: the
// lower-case hex form of a 64-bit per-topic snowflake value.
type MessageID [16]byte

// messageHeaderLen is the size of timestamp, attempts and ID in front of the
// body, both on the wire and in disk-queue records.
const messageHeaderLen = 8 + 2 + 16

// Message is one copy of a published message as one topic or channel holds
// it. Copies in different channels share Body (never modified) but have
// their own delivery state.
type Message struct {
	ID        MessageID
	Body      []byte
	Timestamp int64 // publish time, Unix nanoseconds; never changes
	Attempts  uint16
	// journaled: the message is live in its channel's or topic's journal
	// (durable mode) and must be marked done there when finished.
	journaled bool
	// held: a topic keeps the message in its deferred list, whatever its
	// deadline, until a channel takes it. Set on messages restored from a
	// topic's journal or deferred file: in the topic's memory or disk
	// backlog they would be a second copy of a journaled message, or lose
	// their deliver-at time.
	held bool

	// Delivery state. A message is in at most one place at a time (a queue,
	// a deferred heap or one client's in-flight list); the owner's mutex
	// guards these fields.
	deadline   int64    // queued or deferred: deliver-at (0 = now); in flight: timeout
	deliveryTS int64    // in flight: Unix ns of the delivery; queued on a follower: of its arrival over the relay
	index      int      // deferred: position in the heap
	prev, next *Message // in flight: neighbours in the client's list
}

// writeFrame writes the message as a V2 message frame without allocating.
func (m *Message) writeFrame(w *bufio.Writer) error {
	b := w.AvailableBuffer()
	b = binary.BigEndian.AppendUint32(b, uint32(4+messageHeaderLen+len(m.Body)))
	b = binary.BigEndian.AppendUint32(b, 2) // FrameTypeMessage
	b = binary.BigEndian.AppendUint64(b, uint64(m.Timestamp))
	b = binary.BigEndian.AppendUint16(b, m.Attempts)
	b = append(b, m.ID[:]...)
	if _, err := w.Write(b); err != nil {
		return err
	}
	_, err := w.Write(m.Body)
	return err
}

// appendMessage appends the storage form (as in NSQ's disk queues):
// timestamp, attempts, ID, body.
func appendMessage(b []byte, m *Message) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(m.Timestamp))
	b = binary.BigEndian.AppendUint16(b, m.Attempts)
	b = append(b, m.ID[:]...)
	return append(b, m.Body...)
}

var errShortMessage = errors.New("message shorter than its header")

// decodeMessage parses the storage form. The body aliases b.
func decodeMessage(b []byte) (*Message, error) {
	if len(b) < messageHeaderLen {
		return nil, fmt.Errorf("decode message of %d bytes: %w", len(b), errShortMessage)
	}
	m := &Message{
		Timestamp: int64(binary.BigEndian.Uint64(b[0:8])),
		Attempts:  binary.BigEndian.Uint16(b[8:10]),
		Body:      b[messageHeaderLen:],
	}
	copy(m.ID[:], b[10:26])
	return m, nil
}

// minPlausibleTimestamp is 2000-01-01T00:00:00Z in Unix nanoseconds: no
// message nsqd (or NSQ) stored was published before it.
const minPlausibleTimestamp = 946684800 * int64(time.Second)

// plausibleHeader reports whether head, the first messageHeaderLen bytes of
// a disk-queue record, can be the header of a message that nsqd or NSQ
// wrote: a timestamp from 2000 to a year from now and an ID of 16 hex
// digits (NSQ's IDs and ours are lower case; upper case is accepted too).
// The disk queue uses it to tell damaged records from good ones, as records
// have no checksum (see newBackend).
func plausibleHeader(head []byte) bool {
	if len(head) < messageHeaderLen {
		return false
	}
	for _, c := range head[10:messageHeaderLen] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	ts := int64(binary.BigEndian.Uint64(head))
	return ts >= minPlausibleTimestamp && ts <= time.Now().Add(365*24*time.Hour).UnixNano()
}

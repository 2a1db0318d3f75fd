package nsqd

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"unicode/utf8"
)

// Peek shows the messages a channel or a topic holds without consuming them
// (not in NSQ: nsqio/nsq#848). It changes nothing: no order, attempts,
// timer, counter or disk-queue position moves. It takes the locks of what
// it reads, once per call and for as long as copying at most n entries
// takes (the deferred heap, which is not sorted, is copied whole), and
// reads disk queues through diskq.Queue.Peek, which holds the queue's lock
// only to copy its positions. The message path does no work for it.
//
// What peek returns is a snapshot of a moving queue: a message delivered
// while the peek runs can show up as queued and as in flight.

// Peek states.
const (
	PeekQueued   = "queued"
	PeekDeferred = "deferred"
	PeekInFlight = "in_flight"
	PeekAll      = "all"
)

// Peek limits and defaults.
const (
	peekDefaultN       = 10
	peekMaxN           = 1000
	peekDefaultMaxBody = 4096
)

// PeekRequest is what to show.
type PeekRequest struct {
	N        int    // messages per state, 1..1000
	State    string // PeekQueued, PeekDeferred, PeekInFlight or PeekAll
	MaxBody  int    // bytes of body shown at most
	Encoding string // "auto" (text if UTF-8, else base64), "text" or "base64"
}

// PeekMessage is one message as peek shows it. Times are Unix nanoseconds.
type PeekMessage struct {
	ID            string `json:"id"`
	Timestamp     int64  `json:"timestamp"`
	Attempts      uint16 `json:"attempts"`
	State         string `json:"state"`
	DeliverAt     int64  `json:"deliver_at,omitempty"`     // deferred
	ClientID      string `json:"client_id,omitempty"`      // in flight: the owner's IDENTIFY client_id
	ClientAddress string `json:"client_address,omitempty"` // in flight: the owner's address
	TimeoutAt     int64  `json:"timeout_at,omitempty"`     // in flight
	Size          int    `json:"size"`
	Body          string `json:"body"`
	BodyEncoding  string `json:"body_encoding"` // "text" or "base64"
	BodyTruncated bool   `json:"body_truncated"`
	// Death is where a dead letter came from (a message of a dead-letter
	// topic whose origin is kept).
	Death *DeadLetterOrigin `json:"death,omitempty"`
}

// PeekResult is GET /channel/peek and GET /topic/peek.
type PeekResult struct {
	Topic         string        `json:"topic"`
	Channel       string        `json:"channel,omitempty"`
	Depth         int64         `json:"depth"`
	InFlightCount int64         `json:"in_flight_count"`
	DeferredCount int64         `json:"deferred_count"`
	Messages      []PeekMessage `json:"messages"`
}

// peeked is a message copied under its owner's lock. body aliases the
// message's (bodies are never modified) or a copy read from disk.
type peeked struct {
	id         MessageID
	ts         int64
	attempts   uint16
	deadline   int64
	size       int
	body       []byte
	state      string
	clientID   string
	clientAddr string
}

func (p *peeked) fromMessage(m *Message, state string, maxBody int) {
	p.id, p.ts, p.attempts, p.deadline, p.state = m.ID, m.Timestamp, m.Attempts, m.deadline, state
	p.size = len(m.Body)
	p.body = m.Body[:min(len(m.Body), maxBody)]
}

// peekMemory copies up to n messages of q from its head. Callers hold the
// lock guarding q.
func peekMemory(dst []peeked, q *msgQueue, n, maxBody int) []peeked {
	for i := 0; i < q.nruns && n > 0; i++ {
		r := q.runs[(q.head+i)%len(q.runs)]
		if r.from < 0 {
			var p peeked
			p.fromMessage((*Message)(r.p), PeekQueued, maxBody)
			dst = append(dst, p)
			n--
			continue
		}
		b := (*pubBatch)(r.p)
		for j := r.from; j < r.to && n > 0; j++ {
			var p peeked
			b.guid.id(&p.id, b.idStart+int64(j))
			body := b.bodies[j]
			p.ts, p.size, p.body, p.state = b.timestamp, len(body), body[:min(len(body), maxBody)], PeekQueued
			dst = append(dst, p)
			n--
		}
	}
	return dst
}

// peekDisk appends up to n messages from the head of a disk queue.
func (n *NSQD) peekDisk(dst []peeked, t *Topic, c *Channel, count, maxBody int) []peeked {
	q := t.backend
	log := t.log
	if c != nil {
		q, log = c.backend, c.log
	}
	if q == nil || count <= 0 || q.Depth() <= 0 {
		return dst
	}
	recs, err := q.Peek(count, messageHeaderLen+maxBody)
	if err != nil {
		log.Warn("PEEK: reading disk queue failed", "err", err)
	}
	for _, r := range recs {
		if len(r.Data) < messageHeaderLen {
			continue
		}
		var p peeked
		p.ts = int64(binary.BigEndian.Uint64(r.Data[0:8]))
		p.attempts = binary.BigEndian.Uint16(r.Data[8:10])
		copy(p.id[:], r.Data[10:26])
		p.size, p.body, p.state = r.Size-messageHeaderLen, r.Data[messageHeaderLen:], PeekQueued
		dst = append(dst, p)
	}
	return dst
}

// peekDeferred copies every message of msgs (a heap or a slice, not in
// order) and returns the first n by deliver-at time. Callers hold the lock
// guarding msgs; the sort runs after.
func peekDeferred(msgs []*Message, maxBody int) []peeked {
	out := make([]peeked, len(msgs))
	for i, m := range msgs {
		out[i].fromMessage(m, PeekDeferred, maxBody)
	}
	return out
}

func sortPeeked(ps []peeked, n int) []peeked {
	slices.SortStableFunc(ps, func(a, b peeked) int { return cmp.Compare(a.deadline, b.deadline) })
	return ps[:min(len(ps), n)]
}

// PeekChannel shows a channel's messages: queued ones in delivery order
// (the memory queue, then the disk queue, as consumers' pumps take them),
// deferred ones by deliver-at time, in-flight ones by timeout.
func (c *Channel) Peek(req PeekRequest) PeekResult {
	res := PeekResult{
		Topic: c.topicName, Channel: c.name,
		Depth: c.Depth(), InFlightCount: c.inFlightCount.Load(), DeferredCount: c.deferredCount.Load(),
	}
	var out []peeked
	if req.State == PeekQueued || req.State == PeekAll {
		c.mu.Lock()
		out = peekMemory(out, &c.mem, req.N, req.MaxBody)
		c.mu.Unlock()
		out = c.nsqd.peekDisk(out, c.topic, c, req.N-len(out), req.MaxBody)
	}
	if req.State == PeekDeferred || req.State == PeekAll {
		c.mu.Lock()
		d := peekDeferred(c.deferred, req.MaxBody)
		c.mu.Unlock()
		out = append(out, sortPeeked(d, req.N)...)
	}
	if req.State == PeekInFlight || req.State == PeekAll {
		var fl []peeked
		for _, cl := range c.clientList() {
			cl.mu.Lock()
			k := 0
			for m := cl.inFlightList.head; m != nil && k < req.N; m = m.next {
				var p peeked
				p.fromMessage(m, PeekInFlight, req.MaxBody)
				p.clientID, p.clientAddr = cl.clientID, cl.remoteAddr
				fl = append(fl, p)
				k++
			}
			cl.mu.Unlock()
		}
		out = append(out, sortPeeked(fl, req.N)...)
	}
	res.Messages = renderPeeked(out, req.Encoding)
	c.topic.deadLetters.annotate(res.Messages, out)
	return res
}

// Peek shows the messages waiting in the topic itself (not yet given to a
// channel: the topic has none, is paused, or is passing them on): queued
// ones in order (memory, then disk), then deferred ones by deliver-at time.
func (t *Topic) Peek(req PeekRequest) PeekResult {
	t.backlogMu.Lock()
	deferredCount := int64(len(t.deferred))
	t.backlogMu.Unlock()
	res := PeekResult{Topic: t.name, Depth: t.Depth() - deferredCount, DeferredCount: deferredCount}
	var out []peeked
	if req.State == PeekQueued || req.State == PeekAll {
		t.backlogMu.Lock()
		out = peekMemory(out, &t.backlog, req.N, req.MaxBody)
		t.backlogMu.Unlock()
		out = t.nsqd.peekDisk(out, t, nil, req.N-len(out), req.MaxBody)
	}
	if req.State == PeekDeferred || req.State == PeekAll {
		t.backlogMu.Lock()
		d := peekDeferred(t.deferred, req.MaxBody)
		t.backlogMu.Unlock()
		for i := range d {
			if d[i].deadline <= 1 { // restored with its time lost: due now
				d[i].deadline = 0
			}
		}
		out = append(out, sortPeeked(d, req.N)...)
	}
	res.Messages = renderPeeked(out, req.Encoding)
	t.deadLetters.annotate(res.Messages, out)
	return res
}

// annotate sets the Death of the peeked messages (msgs[i] is ps[i]) whose
// origins d keeps.
func (d *deathLog) annotate(msgs []PeekMessage, ps []peeked) {
	if len(ps) == 0 {
		return
	}
	ids := make([]MessageID, len(ps))
	for i := range ps {
		ids[i] = ps[i].id
	}
	for i, o := range d.origins(ids) {
		msgs[i].Death = o
	}
}

// renderPeeked turns the copies into PeekMessages, bodies encoded.
func renderPeeked(ps []peeked, encoding string) []PeekMessage {
	out := make([]PeekMessage, len(ps))
	for i := range ps {
		p := &ps[i]
		m := PeekMessage{
			ID: string(p.id[:]), Timestamp: p.ts, Attempts: p.attempts, State: p.state,
			Size: p.size, BodyTruncated: len(p.body) < p.size,
		}
		switch p.state {
		case PeekDeferred:
			m.DeliverAt = p.deadline
		case PeekInFlight:
			m.TimeoutAt, m.ClientID, m.ClientAddress = p.deadline, p.clientID, p.clientAddr
		}
		m.Body, m.BodyEncoding = encodeBody(p.body, m.BodyTruncated, encoding)
		out[i] = m
	}
	return out
}

// encodeBody is the body as text (auto: when it is UTF-8, allowing a
// character cut by max_body) or base64.
func encodeBody(b []byte, truncated bool, encoding string) (string, string) {
	switch encoding {
	case "base64":
		return base64.StdEncoding.EncodeToString(b), "base64"
	case "text":
		return string(b), "text"
	}
	text := b
	if truncated {
		for k := 0; k < utf8.UTFMax-1 && len(text) > 0 && !utf8.Valid(text); k++ {
			text = text[:len(text)-1]
		}
	}
	if utf8.Valid(text) {
		return string(text), "text"
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

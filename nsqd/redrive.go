package nsqd

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"
	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/protocol"
)

// Redrive (not in NSQ): POST /topic/redrive?topic=D&to_topic=S[&channel=C]
// [&max=N] moves queued messages of a dead-letter topic D back to S: from
// D's own buffer, or from D's channel C when given. Each batch is
// published to S before it leaves D (in --durable mode: fsynced first), so
// a crash may duplicate a redriven message but never lose one. Bodies in
// the dead_letter_envelope form are unwrapped. Deferred messages stay.

// RedriveResponse is the JSON answer of POST /topic/redrive.
type RedriveResponse struct {
	Redriven int `json:"redriven"`
}

func (s *httpServer) topicRedrive(req *http.Request, _ httprouter.Params) (*RedriveResponse, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return nil, err
	}
	from, ok := q.Get("topic")
	if !ok {
		return nil, errHTTPMissingTopic
	}
	if !protocol.IsValidTopicName(from) {
		return nil, errHTTPInvalidArgTopic
	}
	to, ok := q.Get("to_topic")
	if !ok || !protocol.IsValidTopicName(to) || to == from {
		return nil, httpapi.Err(http.StatusBadRequest, "INVALID_ARG_TO_TOPIC")
	}
	limit := -1
	if v, ok := q.Get("max"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, httpapi.Err(http.StatusBadRequest, "INVALID_ARG_MAX")
		}
		limit = n
	}
	t, err := s.n.GetExistingTopic(from)
	if err != nil {
		return nil, errHTTPTopicNotFound
	}
	var c *Channel
	if name, ok := q.Get("channel"); ok {
		if c, err = t.GetExistingChannel(name); err != nil {
			return nil, errHTTPChanNotFound
		}
	}
	dst, err := s.n.GetTopic(to)
	if err != nil {
		return nil, publishError(err)
	}
	moved, err := redrive(t, c, dst, limit)
	if err != nil {
		s.log.Error("HTTP: redrive stopped", "topic", from, "to_topic", to, "redriven", moved, "err", err)
		return nil, publishError(err)
	}
	s.log.Info("HTTP: redrove messages", "topic", from, "to_topic", to, "count", moved)
	return &RedriveResponse{Redriven: moved}, nil
}

// redrive moves up to limit (< 0: all) queued messages of t's own buffer,
// or of its channel c, to dst.
func redrive(t *Topic, c *Channel, dst *Topic, limit int) (int, error) {
	moved := 0
	for limit < 0 || moved < limit {
		k := maxDeliverBatch
		if limit >= 0 {
			k = min(k, limit-moved)
		}
		var msgs []*Message
		if c != nil {
			msgs = c.popHead(k)
		} else {
			msgs = t.popHead(k)
		}
		if len(msgs) == 0 {
			return moved, nil
		}
		bodies := make([][]byte, len(msgs))
		for i, m := range msgs {
			bodies[i] = unwrapDeadLetter(m.Body)
		}
		if err := dst.PublishMulti(bodies); err != nil {
			// Back where they were (at the tail).
			if c != nil {
				c.requeue(msgs)
			} else {
				err = errors.Join(err, t.putBacklog(msgs))
			}
			return moved, err
		}
		if c != nil {
			for _, m := range msgs {
				c.finished(m)
			}
			if c.journal != nil {
				if err := c.flushJournal(); err != nil {
					return moved, err
				}
			}
		} else {
			if t.journal != nil {
				t.backend.Commit()
			}
			t.backlogTaken(msgs)
		}
		moved += len(msgs)
	}
	return moved, nil
}

// popHead takes up to k queued messages from the head of the channel (the
// disk queue first, as dropOldest does).
func (c *Channel) popHead(k int) []*Message {
	var msgs []*Message
	if c.backendDepth() > 0 {
		msgs = c.readDisk(nil, k)
	}
	if len(msgs) == 0 {
		c.mu.Lock()
		msgs = c.mem.popN(nil, k)
		c.mu.Unlock()
	}
	if c.lim.Load() != nil {
		c.addBytes(-bodyBytes(msgs))
	}
	return msgs
}

// popHead takes up to k messages from the topic's own buffer: memory, then
// disk (committed by the caller in durable mode).
func (t *Topic) popHead(k int) []*Message {
	t.backlogMu.Lock()
	msgs := t.backlog.popN(nil, k)
	t.backlogMu.Unlock()
	if len(msgs) == 0 && t.backend != nil {
		msgs = t.nsqd.readBackend(t.backend, nil, k, t.log)
	}
	if t.lim.Load() != nil {
		t.addBytes(-bodyBytes(msgs))
	}
	return msgs
}

// unwrapDeadLetter returns the original body of a dead letter in the
// envelope form, else body.
func unwrapDeadLetter(body []byte) []byte {
	if !bytes.HasPrefix(body, []byte(`{"origin":`)) {
		return body
	}
	var env deadLetterEnvelope
	if err := json.Unmarshal(body, &env); err != nil || env.Origin.SourceTopic == "" {
		return body
	}
	return env.Body
}

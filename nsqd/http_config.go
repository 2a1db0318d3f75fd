package nsqd

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/nsqd/replication"
)

// GET and POST /topic/config and /channel/config (not in NSQ): the limits
// of a topic's own buffer or of a channel. GET answers the overrides, the
// effective values and where each comes from; POST changes the overrides
// given in the query (an empty value goes back to inheriting) and answers
// as GET. See limits.go.

var errHTTPQueueFull = httpapi.Err(http.StatusServiceUnavailable, "QUEUE_FULL")

// ConfigResponse is the JSON of /topic/config and /channel/config.
type ConfigResponse struct {
	Topic     string          `json:"topic"`
	Channel   string          `json:"channel,omitempty"`
	Overrides Limits          `json:"overrides"`
	Effective EffectiveLimits `json:"effective"`
	// DeadLetters are the origins of the latest dead letters a topic
	// received (topic only).
	DeadLetters []DeadLetterOrigin `json:"dead_letters,omitempty"`
}

func (s *httpServer) topicConfig(req *http.Request, _ httprouter.Params) (*ConfigResponse, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return nil, err
	}
	name, ok := q.Get("topic")
	if !ok {
		return nil, errHTTPMissingTopic
	}
	if !protocol.IsValidTopicName(name) {
		return nil, errHTTPInvalidArgTopic
	}
	t, err := s.n.GetExistingTopic(name)
	if err != nil {
		return nil, errHTTPTopicNotFound
	}
	return s.configRequest(req, q, t, nil)
}

func (s *httpServer) channelConfig(req *http.Request, _ httprouter.Params) (*ConfigResponse, error) {
	t, name, err := s.existingTopic(req)
	if err != nil {
		return nil, err
	}
	c, err := t.GetExistingChannel(name)
	if err != nil {
		return nil, errHTTPChanNotFound
	}
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return nil, err
	}
	return s.configRequest(req, q, t, c)
}

func (s *httpServer) configRequest(req *http.Request, q httpapi.Query, t *Topic, c *Channel) (*ConfigResponse, error) {
	if req.Method == http.MethodPost {
		cur := t.overridesOf(c)
		var l Limits
		if cur != nil {
			l = *cur
		}
		if err := parseLimits(q, &l); err != nil {
			return nil, httpapi.Err(http.StatusBadRequest, "INVALID_ARG_CONFIG: "+err.Error())
		}
		cc := ConfigChange{Topic: t.name, Limits: l}
		if c != nil {
			cc.Channel = c.name
		}
		err := s.n.ApplyConfig(cc)
		switch {
		case errors.Is(err, ErrInvalidConfig):
			return nil, httpapi.Err(http.StatusBadRequest, "INVALID_ARG_CONFIG: "+err.Error())
		case errors.Is(err, ErrTopicNotFound):
			return nil, errHTTPTopicNotFound
		case errors.Is(err, ErrChannelNotFound):
			return nil, errHTTPChanNotFound
		case errors.Is(err, replication.ErrNoQuorum), errors.Is(err, replication.ErrNotLeader):
			return nil, fmt.Errorf("%w: %w", errHTTPNoQuorum, err) // a replica set without a quorum
		case err != nil:
			return nil, fmt.Errorf("apply config: %w", err)
		}
	}
	r := &ConfigResponse{Topic: t.name, Effective: t.effective(c)}
	if o := t.overridesOf(c); o != nil {
		r.Overrides = *o
	}
	if c != nil {
		r.Channel = c.name
	} else {
		r.DeadLetters, _ = t.deadLetters.list()
	}
	return r, nil
}

// parseLimits sets the fields of l the query names; an empty value clears
// the override. A topic may set every key: the channel-only ones
// (max_attempts, dead_letter_*) are inherited by its channels.
func parseLimits(q httpapi.Query, l *Limits) error {
	ints := []struct {
		key string
		p   **int64
	}{
		{"max_depth", &l.MaxDepth}, {"max_bytes", &l.MaxBytes}, {"max_attempts", &l.MaxAttempts},
	}
	for _, f := range ints {
		v, ok := q.Get(f.key)
		if !ok {
			continue
		}
		if v == "" {
			*f.p = nil
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not an integer", f.key, v)
		}
		*f.p = &n
	}
	if v, ok := q.Get("msg_ttl"); ok { // a duration ("30s") or milliseconds
		if v == "" {
			l.MsgTTLMs = nil
		} else {
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				d, derr := time.ParseDuration(v)
				if derr != nil {
					return fmt.Errorf("msg_ttl: %q is not a duration", v)
				}
				ms = d.Milliseconds()
			}
			l.MsgTTLMs = &ms
		}
	}
	strs := []struct {
		key string
		p   **string
	}{{"overflow", &l.Overflow}, {"dead_letter_topic", &l.DeadLetterTopic}}
	for _, f := range strs {
		if v, ok := q.Get(f.key); ok {
			if v == "" {
				*f.p = nil
			} else {
				*f.p = &v
			}
		}
	}
	bools := []struct {
		key string
		p   **bool
	}{{"dead_letter_envelope", &l.DeadLetterEnvelope}, {"dead_letter_expired", &l.DeadLetterExpired}, {"dead_letter_dropped", &l.DeadLetterDropped}}
	for _, f := range bools {
		v, ok := q.Get(f.key)
		if !ok {
			continue
		}
		if v == "" {
			*f.p = nil
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s: %q is not a boolean", f.key, v)
		}
		*f.p = &b
	}
	return nil
}

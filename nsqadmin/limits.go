package nsqadmin

import (
	"net/http"
	"net/url"

	"github.com/nsqclone/nsq/internal/httpapi"
)

// Limits and dead letters (issue 14; not in NSQ's nsqadmin): the channel
// action "limits" sets /channel/config keys on every nsqd holding the
// topic, like pause and empty; the topic action "redrive" moves a
// dead-letter topic's queued messages back to a topic on every nsqd.

// limitKeys are the /channel/config keys the Limits form may set.
var limitKeys = map[string]bool{
	"max_depth": true, "max_bytes": true, "overflow": true, "msg_ttl": true,
	"max_attempts": true, "dead_letter_topic": true,
}

var errInvalidLimits = httpapi.Err(http.StatusBadRequest, "INVALID_LIMITS")

func (s *httpServer) channelLimits(req *http.Request, topic, channel string, limits map[string]string) (any, error) {
	if len(limits) == 0 {
		return nil, errInvalidLimits
	}
	q := url.Values{}
	for k, v := range limits {
		if !limitKeys[k] {
			return nil, errInvalidLimits
		}
		q.Set(k, v)
	}
	resp, ok, err := actionResult(s.a.cluster.ChannelConfig(req.Context(), topic, channel, q))
	if ok {
		s.a.notifier.send(s.a.newAdminAction(req, "set_channel_limits", topic, channel, ""))
	}
	return resp, err
}

func (s *httpServer) topicRedrive(req *http.Request, topic, toTopic string) (any, error) {
	if !validTopic(toTopic) || toTopic == topic {
		return nil, errInvalidTopic
	}
	resp, ok, err := actionResult(s.a.cluster.TopicRedrive(req.Context(), topic, toTopic))
	if ok {
		s.a.notifier.send(s.a.newAdminAction(req, "redrive_topic", topic, "", ""))
	}
	return resp, err
}

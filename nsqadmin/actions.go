package nsqadmin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/protocol"
)

// The write actions of /api. Only admins reach them (adminOnly). Each
// answers {"message":""} or a warning naming the upstreams that failed, and
// is announced to --notification-http-endpoint unless it failed outright.

func validTopic(name string) bool   { return protocol.IsValidTopicName(name) }
func validChannel(name string) bool { return protocol.IsValidChannelName(name) }

// decodeBody decodes req's JSON body into v. A body that is not JSON is a
// 400 whose message is the decoder's error, as NSQ answers.
func decodeBody(req *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, req.Body, maxRequestBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return httpapi.Err(http.StatusRequestEntityTooLarge, "BODY_TOO_BIG")
		}
		return httpapi.Err(http.StatusBadRequest, err.Error())
	}
	if err := json.Unmarshal(body, v); err != nil {
		if len(body) == 0 {
			return httpapi.Err(http.StatusBadRequest, "EOF")
		}
		return httpapi.Err(http.StatusBadRequest, err.Error())
	}
	return nil
}

// actionResult turns an action's outcome into the handler's result: a
// warning envelope for a partial failure, the error otherwise. ok reports
// whether the action happened at all (so it must be notified).
func actionResult(err error) (resp any, ok bool, fatal error) {
	partial, err := partialOnly(err)
	if err != nil {
		return nil, false, err
	}
	return newEnvelope(partial), true, nil
}

// createTopicChannel is POST /api/topics {"topic":"T","channel":"C"}.
func (s *httpServer) createTopicChannel(req *http.Request, _ httprouter.Params) (any, error) {
	var body struct {
		Topic   string `json:"topic"`
		Channel string `json:"channel"`
	}
	if err := decodeBody(req, &body); err != nil {
		return nil, err
	}
	if !validTopic(body.Topic) {
		return nil, errInvalidTopic
	}
	if body.Channel != "" && !validChannel(body.Channel) {
		return nil, errInvalidChannel
	}
	resp, ok, err := actionResult(s.a.cluster.CreateTopicChannel(req.Context(), body.Topic, body.Channel))
	if ok {
		s.a.notifier.send(s.a.newAdminAction(req, "create_topic", body.Topic, "", ""))
		if body.Channel != "" {
			s.a.notifier.send(s.a.newAdminAction(req, "create_channel", body.Topic, body.Channel, ""))
		}
	}
	return resp, err
}

// actionBody is the body of POST /api/topics/:topic[/:channel].
type actionBody struct {
	Action string `json:"action"`
	// Limits are the /channel/config keys of action "limits" (channels).
	Limits map[string]string `json:"limits,omitempty"`
	// ToTopic is where action "redrive" (topics) moves messages.
	ToTopic string `json:"to_topic,omitempty"`
}

func (b *actionBody) validate() error {
	switch b.Action {
	case "pause", "unpause", "empty":
		return nil
	}
	return errInvalidAction
}

// topicAction is POST /api/topics/:topic {"action":"pause|unpause|empty"}.
func (s *httpServer) topicAction(req *http.Request, ps httprouter.Params) (any, error) {
	topic, err := pathTopic(ps)
	if err != nil {
		return nil, err
	}
	var body actionBody
	if err := decodeBody(req, &body); err != nil {
		return nil, err
	}
	if body.Action == "redrive" {
		return s.topicRedrive(req, topic, body.ToTopic)
	}
	if err := body.validate(); err != nil {
		return nil, err
	}
	resp, ok, err := actionResult(s.a.cluster.TopicAction(req.Context(), topic, body.Action))
	if ok {
		s.a.notifier.send(s.a.newAdminAction(req, body.Action+"_topic", topic, "", ""))
	}
	return resp, err
}

// channelAction is POST /api/topics/:topic/:channel {"action":...}.
func (s *httpServer) channelAction(req *http.Request, ps httprouter.Params) (any, error) {
	topic, channel, err := pathTopicChannel(ps)
	if err != nil {
		return nil, err
	}
	var body actionBody
	if err := decodeBody(req, &body); err != nil {
		return nil, err
	}
	if body.Action == "limits" {
		return s.channelLimits(req, topic, channel, body.Limits)
	}
	if err := body.validate(); err != nil {
		return nil, err
	}
	resp, ok, err := actionResult(s.a.cluster.ChannelAction(req.Context(), topic, channel, body.Action))
	if ok {
		s.a.notifier.send(s.a.newAdminAction(req, body.Action+"_channel", topic, channel, ""))
	}
	return resp, err
}

// deleteTopic is DELETE /api/topics/:topic.
func (s *httpServer) deleteTopic(req *http.Request, ps httprouter.Params) (any, error) {
	topic, err := pathTopic(ps)
	if err != nil {
		return nil, err
	}
	resp, ok, err := actionResult(s.a.cluster.DeleteTopic(req.Context(), topic))
	if ok {
		s.a.notifier.send(s.a.newAdminAction(req, "delete_topic", topic, "", ""))
	}
	return resp, err
}

// deleteChannel is DELETE /api/topics/:topic/:channel.
func (s *httpServer) deleteChannel(req *http.Request, ps httprouter.Params) (any, error) {
	topic, channel, err := pathTopicChannel(ps)
	if err != nil {
		return nil, err
	}
	resp, ok, err := actionResult(s.a.cluster.DeleteChannel(req.Context(), topic, channel))
	if ok {
		s.a.notifier.send(s.a.newAdminAction(req, "delete_channel", topic, channel, ""))
	}
	return resp, err
}

// tombstoneTopicProducer is DELETE /api/nodes/:node {"topic":"T"}: the node
// stops being a producer of T for consumers, and T is deleted on it.
func (s *httpServer) tombstoneTopicProducer(req *http.Request, ps httprouter.Params) (any, error) {
	node := ps.ByName("node")
	var body struct {
		Topic string `json:"topic"`
	}
	if err := decodeBody(req, &body); err != nil {
		if e, ok := errors.AsType[*httpapi.Error](err); ok && e.Status == http.StatusBadRequest {
			return nil, errInvalidBody
		}
		return nil, err
	}
	if !validTopic(body.Topic) {
		return nil, errInvalidTopic
	}
	resp, ok, err := actionResult(s.a.cluster.TombstoneTopicProducer(req.Context(), body.Topic, node))
	if ok {
		s.a.notifier.send(s.a.newAdminAction(req, "tombstone_topic_producer", body.Topic, "", node))
	}
	return resp, err
}

package nsqd

import (
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/protocol"
)

// Errors of GET /channel/peek and GET /topic/peek, in NSQ's style.
var (
	errHTTPPeekDisabled   = httpapi.Err(http.StatusForbidden, "PEEK_DISABLED")
	errHTTPInvalidN       = httpapi.Err(http.StatusBadRequest, "INVALID_ARG_N")
	errHTTPInvalidState   = httpapi.Err(http.StatusBadRequest, "INVALID_ARG_STATE")
	errHTTPInvalidMaxBody = httpapi.Err(http.StatusBadRequest, "INVALID_ARG_MAX_BODY")
	errHTTPInvalidEncode  = httpapi.Err(http.StatusBadRequest, "INVALID_ARG_ENCODING")
)

func (s *httpServer) peekRoutes(r *httprouter.Router, logged func(httprouter.Handle) httprouter.Handle) {
	r.GET("/channel/peek", logged(httpapi.V1(s.log, s.channelPeek)))
	r.GET("/topic/peek", logged(httpapi.V1(s.log, s.topicPeek)))
}

// parsePeekRequest reads n, state, max_body and encoding (all optional) of
// a peek; the topic and channel parameters are checked by the caller.
// forChannel allows state=in_flight.
func parsePeekRequest(q httpapi.Query, maxMsgSize int64, forChannel bool) (PeekRequest, error) {
	req := PeekRequest{N: peekDefaultN, State: PeekAll, MaxBody: peekDefaultMaxBody, Encoding: "auto"}
	if v, ok := q.Get("n"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > peekMaxN {
			return req, errHTTPInvalidN
		}
		req.N = n
	}
	if v, ok := q.Get("state"); ok {
		switch v {
		case PeekQueued, PeekDeferred, PeekAll:
		case PeekInFlight:
			if !forChannel {
				return req, errHTTPInvalidState
			}
		default:
			return req, errHTTPInvalidState
		}
		req.State = v
	}
	if v, ok := q.Get("max_body"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > maxMsgSize {
			return req, errHTTPInvalidMaxBody
		}
		req.MaxBody = int(n)
	}
	if v, ok := q.Get("encoding"); ok {
		switch v {
		case "auto", "text", "base64":
		default:
			return req, errHTTPInvalidEncode
		}
		req.Encoding = v
	}
	return req, nil
}

// peekTopic checks --enable-peek and the topic parameter, in NSQ's order
// (missing, invalid, not found), and parses the rest.
func (s *httpServer) peekTopic(req *http.Request, forChannel bool) (*Topic, httpapi.Query, PeekRequest, error) {
	if !s.n.opts.EnablePeek {
		return nil, nil, PeekRequest{}, errHTTPPeekDisabled
	}
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return nil, nil, PeekRequest{}, err
	}
	name, ok := q.Get("topic")
	if !ok {
		return nil, nil, PeekRequest{}, errHTTPMissingTopic
	}
	if !protocol.IsValidTopicName(name) {
		return nil, nil, PeekRequest{}, errHTTPInvalidArgTopic
	}
	pr, err := parsePeekRequest(q, s.n.opts.MaxMsgSize, forChannel)
	if err != nil {
		return nil, nil, pr, err
	}
	t, err := s.n.GetExistingTopic(name)
	if err != nil {
		return nil, nil, pr, errHTTPTopicNotFound
	}
	return t, q, pr, nil
}

// channelPeek is GET /channel/peek?topic=&channel=[&n=][&state=][&max_body=][&encoding=].
func (s *httpServer) channelPeek(req *http.Request, _ httprouter.Params) (PeekResult, error) {
	t, q, pr, err := s.peekTopic(req, true)
	if err != nil {
		return PeekResult{}, err
	}
	name, ok := q.Get("channel")
	if !ok {
		return PeekResult{}, errHTTPMissingChannel
	}
	if !protocol.IsValidChannelName(name) {
		return PeekResult{}, errHTTPInvalidArgChan
	}
	c, err := t.GetExistingChannel(name)
	if err != nil {
		return PeekResult{}, errHTTPChanNotFound
	}
	return c.Peek(pr), nil
}

// topicPeek is GET /topic/peek?topic=[&n=][&state=][&max_body=][&encoding=]:
// the messages the topic itself holds.
func (s *httpServer) topicPeek(req *http.Request, _ httprouter.Params) (PeekResult, error) {
	t, _, pr, err := s.peekTopic(req, false)
	if err != nil {
		return PeekResult{}, err
	}
	return t.Peek(pr), nil
}

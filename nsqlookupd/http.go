package nsqlookupd

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/internal/version"
)

// NSQ's HTTP API errors of this daemon.
var (
	errMissingTopic   = httpapi.Err(http.StatusBadRequest, "MISSING_ARG_TOPIC")
	errInvalidTopic   = httpapi.Err(http.StatusBadRequest, "INVALID_ARG_TOPIC")
	errMissingChannel = httpapi.Err(http.StatusBadRequest, "MISSING_ARG_CHANNEL")
	errInvalidChannel = httpapi.Err(http.StatusBadRequest, "INVALID_ARG_CHANNEL")
	errMissingNode    = httpapi.Err(http.StatusBadRequest, "MISSING_ARG_NODE")
	errTopicNotFound  = httpapi.Err(http.StatusNotFound, "TOPIC_NOT_FOUND")
	errChannelMissing = httpapi.Err(http.StatusNotFound, "CHANNEL_NOT_FOUND")
)

// newHTTPHandler routes NSQ 1.3's nsqlookupd API, plus GET /metrics. The
// pre-1.0 paths (/create_topic, /tombstone_topic_producer, ...) are gone in
// NSQ 1.x and answer 404 here too.
func (l *NSQLookupd) newHTTPHandler() http.Handler {
	log := l.logger
	r := httpapi.NewRouter(log)
	r.GET("/ping", httpapi.Log(log, httpapi.PlainText(log, l.ping)))
	r.GET("/info", httpapi.Log(log, httpapi.V1(log, l.info)))
	r.GET("/debug", httpapi.Log(log, httpapi.V1(log, l.debug)))
	r.GET("/lookup", httpapi.Log(log, httpapi.V1(log, l.lookup)))
	r.GET("/topics", httpapi.Log(log, httpapi.V1(log, l.topics)))
	r.GET("/channels", httpapi.Log(log, httpapi.V1(log, l.channels)))
	r.GET("/nodes", httpapi.Log(log, httpapi.V1(log, l.nodes)))
	r.POST("/topic/create", httpapi.Log(log, httpapi.V1(log, l.createTopic)))
	r.POST("/topic/delete", httpapi.Log(log, httpapi.V1(log, l.deleteTopic)))
	r.POST("/channel/create", httpapi.Log(log, httpapi.V1(log, l.createChannel)))
	r.POST("/channel/delete", httpapi.Log(log, httpapi.V1(log, l.deleteChannel)))
	r.POST("/topic/tombstone", httpapi.Log(log, httpapi.V1(log, l.tombstoneTopicProducer)))
	r.GET("/metrics", httpapi.Log(log, l.metrics))

	// NSQ serves the pprof index without a trailing slash here (so
	// /debug/pprof/ redirects to it) and only these profiles.
	r.HandlerFunc("GET", "/debug/pprof", pprof.Index)
	r.HandlerFunc("GET", "/debug/pprof/cmdline", pprof.Cmdline)
	r.HandlerFunc("GET", "/debug/pprof/symbol", pprof.Symbol)
	r.HandlerFunc("POST", "/debug/pprof/symbol", pprof.Symbol)
	r.HandlerFunc("GET", "/debug/pprof/profile", pprof.Profile)
	for _, name := range []string{"heap", "goroutine", "block", "threadcreate"} {
		r.Handler("GET", "/debug/pprof/"+name, pprof.Handler(name))
	}
	return r
}

func (l *NSQLookupd) ping(*http.Request, httprouter.Params) (string, error) { return "OK", nil }

type infoResponse struct {
	Version string `json:"version"`
}

func (l *NSQLookupd) info(*http.Request, httprouter.Params) (infoResponse, error) {
	return infoResponse{Version: version.Binary}, nil
}

func (l *NSQLookupd) debug(*http.Request, httprouter.Params) (map[string][]debugProducer, error) {
	return l.db.debug(), nil
}

type lookupResponse struct {
	Channels  []string   `json:"channels"`
	Producers []peerInfo `json:"producers"`
}

// lookup answers which nsqds have a topic: consumers connect to every
// producer's broadcast_address:tcp_port.
func (l *NSQLookupd) lookup(req *http.Request, _ httprouter.Params) (lookupResponse, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return lookupResponse{}, err
	}
	topic, ok := q.Get("topic")
	if !ok {
		return lookupResponse{}, errMissingTopic
	}
	channels, producers, ok := l.db.lookup(topic, time.Now())
	if !ok {
		return lookupResponse{}, errTopicNotFound
	}
	return lookupResponse{Channels: channels, Producers: producers}, nil
}

type topicsResponse struct {
	Topics []string `json:"topics"`
}

func (l *NSQLookupd) topics(*http.Request, httprouter.Params) (topicsResponse, error) {
	return topicsResponse{Topics: l.db.topicNames()}, nil
}

type channelsResponse struct {
	Channels []string `json:"channels"`
}

func (l *NSQLookupd) channels(req *http.Request, _ httprouter.Params) (channelsResponse, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return channelsResponse{}, err
	}
	topic, ok := q.Get("topic")
	if !ok {
		return channelsResponse{}, errMissingTopic
	}
	return channelsResponse{Channels: l.db.channelNames(topic)}, nil
}

type nodesResponse struct {
	Producers []node `json:"producers"`
}

func (l *NSQLookupd) nodes(*http.Request, httprouter.Params) (nodesResponse, error) {
	return nodesResponse{Producers: l.db.nodes(time.Now())}, nil
}

func (l *NSQLookupd) createTopic(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	topic, ok := q.Get("topic")
	if !ok {
		return httpapi.Empty{}, errMissingTopic
	}
	if !protocol.IsValidTopicName(topic) {
		return httpapi.Empty{}, errInvalidTopic
	}
	l.logger.Info("DB: adding topic", "topic", topic)
	l.db.createTopic(topic)
	return httpapi.Empty{}, nil
}

// deleteTopic forgets a topic and its channels. The name is not validated, as
// in NSQ; it is matched literally (in NSQ "*" matched every topic).
func (l *NSQLookupd) deleteTopic(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	topic, ok := q.Get("topic")
	if !ok {
		return httpapi.Empty{}, errMissingTopic
	}
	l.logger.Info("DB: removing topic", "topic", topic)
	l.db.deleteTopic(topic)
	return httpapi.Empty{}, nil
}

// topicChannelArgs reads and validates topic and channel, in NSQ's order.
func topicChannelArgs(req *http.Request) (topic, channel string, err error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return "", "", err
	}
	topic, ok := q.Get("topic")
	if !ok {
		return "", "", errMissingTopic
	}
	if !protocol.IsValidTopicName(topic) {
		return "", "", errInvalidTopic
	}
	channel, ok = q.Get("channel")
	if !ok {
		return "", "", errMissingChannel
	}
	if !protocol.IsValidChannelName(channel) {
		return "", "", errInvalidChannel
	}
	return topic, channel, nil
}

func (l *NSQLookupd) createChannel(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	topic, channel, err := topicChannelArgs(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	l.logger.Info("DB: adding channel", "topic", topic, "channel", channel)
	l.db.createChannel(topic, channel)
	return httpapi.Empty{}, nil
}

func (l *NSQLookupd) deleteChannel(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	topic, channel, err := topicChannelArgs(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	if !l.db.deleteChannel(topic, channel) {
		return httpapi.Empty{}, errChannelMissing
	}
	l.logger.Info("DB: removed channel", "topic", topic, "channel", channel)
	return httpapi.Empty{}, nil
}

// tombstoneTopicProducer hides the producer at node (broadcast_address:
// http_port) from /lookup?topic= for --tombstone-lifetime, typically while
// nsqadmin deletes the topic on that nsqd.
func (l *NSQLookupd) tombstoneTopicProducer(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	topic, ok := q.Get("topic")
	if !ok {
		return httpapi.Empty{}, errMissingTopic
	}
	node, ok := q.Get("node")
	if !ok {
		return httpapi.Empty{}, errMissingNode
	}
	n := l.db.tombstone(topic, node, time.Now())
	l.logger.Info("DB: setting tombstone", "topic", topic, "node", node, "matched", n)
	return httpapi.Empty{}, nil
}

// metrics writes the registration counts in the Prometheus text exposition
// format (version 0.0.4).
func (l *NSQLookupd) metrics(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	peers, topics, channels := l.db.counts()
	var b []byte
	gauge := func(name, help string, v int) {
		b = fmt.Appendf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	gauge("nsqlookupd_producers", "Number of identified nsqd producers connected.", peers)
	gauge("nsqlookupd_topics", "Number of registered topics.", topics)
	gauge("nsqlookupd_channels", "Number of registered channels.", channels)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

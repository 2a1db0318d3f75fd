package nsqadmin

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/clusterinfo"
	"github.com/nsqclone/nsq/internal/httpapi"
)

// The read endpoints of /api. Each answers what the upstreams that answered
// said, with the others named in the envelope; when none answered, 502.

// partialOnly passes a partial failure on to the envelope and returns any
// other error (nobody answered, not found) for the handler to return.
func partialOnly(err error) (partial, fatal error) {
	if _, ok := errors.AsType[*clusterinfo.PartialError](err); ok {
		return err, nil
	}
	return nil, err
}

type topicsResponse struct {
	Topics []string `json:"topics"`
	envelope
}

type inactiveTopicsResponse struct {
	Topics map[string][]string `json:"topics"`
	envelope
}

// topics is GET /api/topics: every topic, or with ?inactive=true the topics
// that lookupds know without producers, with their channels.
func (s *httpServer) topics(req *http.Request, _ httprouter.Params) (any, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return nil, err
	}
	if q.Bool("inactive", false) {
		topics, err := s.a.cluster.InactiveTopics(req.Context())
		partial, err := partialOnly(err)
		if err != nil {
			return nil, err
		}
		return inactiveTopicsResponse{Topics: topics, envelope: newEnvelope(partial)}, nil
	}
	topics, err := s.a.cluster.Topics(req.Context())
	partial, err := partialOnly(err)
	if err != nil {
		return nil, err
	}
	if topics == nil {
		topics = []string{}
	}
	return topicsResponse{Topics: topics, envelope: newEnvelope(partial)}, nil
}

type topicResponse struct {
	*clusterinfo.TopicStats
	envelope
}

// topic is GET /api/topics/:topic: the topic aggregated over its producers.
func (s *httpServer) topic(req *http.Request, ps httprouter.Params) (any, error) {
	topic, err := pathTopic(ps)
	if err != nil {
		return nil, err
	}
	ts, err := s.a.cluster.TopicStats(req.Context(), topic)
	partial, err := partialOnly(err)
	if err != nil {
		return nil, err
	}
	return topicResponse{TopicStats: ts, envelope: newEnvelope(partial)}, nil
}

type channelResponse struct {
	*clusterinfo.ChannelStats
	envelope
}

// channel is GET /api/topics/:topic/:channel: the channel aggregated over
// the topic's producers, with its clients.
func (s *httpServer) channel(req *http.Request, ps httprouter.Params) (any, error) {
	topic, channel, err := pathTopicChannel(ps)
	if err != nil {
		return nil, err
	}
	cs, err := s.a.cluster.ChannelStats(req.Context(), topic, channel)
	partial, err := partialOnly(err)
	if err != nil {
		return nil, err
	}
	return channelResponse{ChannelStats: cs, envelope: newEnvelope(partial)}, nil
}

type nodesResponse struct {
	Nodes []nodeWithState `json:"nodes"`
	envelope
}

// nodes is GET /api/nodes.
func (s *httpServer) nodes(req *http.Request, _ httprouter.Params) (any, error) {
	producers, err := s.a.cluster.Producers(req.Context())
	partial, err := partialOnly(err)
	if err != nil {
		return nil, err
	}
	return nodesResponse{Nodes: s.withStates(req, producers), envelope: newEnvelope(partial)}, nil
}

type nodeResponse struct {
	Node          string                    `json:"node"`
	Hostname      string                    `json:"hostname"`
	Version       string                    `json:"version"`
	Topics        []*clusterinfo.TopicStats `json:"topics"`
	TotalMessages int64                     `json:"total_messages"`
	TotalClients  int                       `json:"total_clients"`
	// Beyond NSQ: the node's drain (drainpeek.go).
	Draining     bool            `json:"draining,omitempty"`
	DrainStarted int64           `json:"drain_started,omitempty"`
	Blockers     json.RawMessage `json:"blockers,omitempty"`
	// Beyond NSQ: its replica set (GET /replication), nil if not replicated.
	Replication *clusterinfo.Replication `json:"replication,omitempty"`
	envelope
}

// node is GET /api/nodes/:node: one nsqd's topics, channels and clients.
func (s *httpServer) node(req *http.Request, ps httprouter.Params) (any, error) {
	node := ps.ByName("node")
	p, topics, err := s.a.cluster.NodeStats(req.Context(), node)
	partial, err := partialOnly(err)
	if err != nil {
		return nil, err
	}
	resp := nodeResponse{Node: p.Node(), Hostname: p.Hostname, Version: p.Version, Topics: topics, envelope: newEnvelope(partial)}
	if resp.Topics == nil {
		resp.Topics = []*clusterinfo.TopicStats{}
	}
	if st := s.a.cluster.NodeStates(req.Context(), []*clusterinfo.Producer{p})[0]; st != nil && st.Draining {
		resp.Draining, resp.DrainStarted, resp.Blockers = true, st.DrainStarted, st.Blockers
	}
	resp.Replication = s.a.cluster.NodeReplications(req.Context(), []*clusterinfo.Producer{p})[0]
	for _, t := range topics {
		resp.TotalMessages += t.MessageCount
		for _, c := range t.Channels {
			resp.TotalClients += len(c.Clients)
		}
	}
	return resp, nil
}

type counterResponse struct {
	Stats map[string]clusterinfo.ChannelCount `json:"stats"`
	envelope
}

// counter is GET /api/counter: the message count of every channel on every
// node.
func (s *httpServer) counter(req *http.Request, _ httprouter.Params) (any, error) {
	stats, err := s.a.cluster.Counter(req.Context())
	partial, err := partialOnly(err)
	if err != nil {
		return nil, err
	}
	return counterResponse{Stats: stats, envelope: newEnvelope(partial)}, nil
}

// history is GET /api/history[?topic=T[&channel=C]]: the sampled message
// rates and depths of the cluster, a topic or a channel (not in NSQ).
func (s *httpServer) history(req *http.Request, _ httprouter.Params) (any, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return nil, err
	}
	topic, _ := q.Get("topic")
	channel, _ := q.Get("channel")
	if topic != "" && !validTopic(topic) {
		return nil, errInvalidTopic
	}
	if channel != "" && (topic == "" || !validChannel(channel)) {
		return nil, errInvalidChannel
	}
	return s.a.sampler.history(topic, channel)
}

package nsqadmin

import (
	"net/http"
	"net/url"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/clusterinfo"
	"github.com/nsqclone/nsq/internal/httpapi"
)

// Drain and peek in nsqadmin (not in NSQ): nodes show whether they drain,
// admins can start a drain on a node, and topic and channel pages peek at
// the messages on each node. Peek shows message bodies, so it is an admin
// action too (--admin-user).

// nodeWithState is a /api/nodes entry with the node's drain state.
type nodeWithState struct {
	*clusterinfo.Producer
	Draining bool `json:"draining,omitempty"`
	// Replication is the node's replica-set view (GET /replication), nil
	// when it is not replicated.
	Replication *clusterinfo.Replication `json:"replication,omitempty"`
}

// withStates adds each producer's drain state.
func (s *httpServer) withStates(req *http.Request, ps []*clusterinfo.Producer) []nodeWithState {
	states := s.a.cluster.NodeStates(req.Context(), ps)
	repls := s.a.cluster.NodeReplications(req.Context(), ps)
	out := make([]nodeWithState, len(ps))
	for i, p := range ps {
		out[i] = nodeWithState{Producer: p, Draining: states[i] != nil && states[i].Draining, Replication: repls[i]}
	}
	return out
}

// nodeAction is POST /api/nodes/:node {"action":"drain"}: the nsqd stops
// taking publishes, lets its consumers empty its channels and exits.
func (s *httpServer) nodeAction(req *http.Request, ps httprouter.Params) (any, error) {
	node := ps.ByName("node")
	var body actionBody
	if err := decodeBody(req, &body); err != nil {
		return nil, err
	}
	if body.Action != "drain" {
		return nil, errInvalidAction
	}
	resp, ok, err := actionResult(s.a.cluster.DrainNode(req.Context(), node))
	if ok {
		s.a.notifier.send(s.a.newAdminAction(req, "drain_node", "", "", node))
	}
	return resp, err
}

type peekResponse struct {
	Nodes []clusterinfo.NodePeek `json:"nodes"`
	envelope
}

// peek is GET /api/peek?topic=T[&channel=C][&n=][&state=][&max_body=][&encoding=]:
// what each nsqd of the topic holds, without consuming it.
func (s *httpServer) peek(req *http.Request, _ httprouter.Params) (any, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return nil, err
	}
	topic, _ := q.Get("topic")
	channel, _ := q.Get("channel")
	if !validTopic(topic) {
		return nil, errInvalidTopic
	}
	if channel != "" && !validChannel(channel) {
		return nil, errInvalidChannel
	}
	nodes, err := s.a.cluster.Peek(req.Context(), topic, channel, url.Values(q))
	partial, err := partialOnly(err)
	if err != nil {
		return nil, err
	}
	if nodes == nil {
		nodes = []clusterinfo.NodePeek{}
	}
	return peekResponse{Nodes: nodes, envelope: newEnvelope(partial)}, nil
}

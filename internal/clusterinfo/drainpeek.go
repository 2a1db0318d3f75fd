package clusterinfo

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// Drain and peek are nsqd endpoints beyond NSQ (GET /state, PUT
// /state/drain, GET /channel/peek, GET /topic/peek); an NSQ nsqd answers
// them 404, which reads as "not draining" and "no peek".

// NodeState is an nsqd's GET /state.
type NodeState struct {
	State        string          `json:"state"`
	Draining     bool            `json:"draining"`
	DrainStarted int64           `json:"drain_started,omitempty"`
	Blockers     json.RawMessage `json:"blockers,omitempty"`
}

// NodeStates returns the GET /state of each producer, in order; nil where
// it did not answer (an NSQ nsqd, or a failure).
func (c *Cluster) NodeStates(ctx context.Context, ps []*Producer) []*NodeState {
	out := make([]*NodeState, len(ps))
	each(httpAddrs(ps), func(i int, addr string) {
		var st NodeState
		if err := c.client.getJSON(ctx, addr, "/state", &st); err == nil {
			out[i] = &st
		}
	})
	return out
}

// DrainNode starts a drain on the nsqd whose node address is node.
func (c *Cluster) DrainNode(ctx context.Context, node string) error {
	p, err := c.FindProducer(ctx, node)
	if p == nil {
		return err
	}
	if _, err := c.client.do(ctx, http.MethodPut, endpoint(p.HTTPAddr(), "/state/drain")); err != nil {
		return &UpstreamError{Kind: KindNSQD, Errors: Errors{{Kind: KindNSQD, Addr: p.HTTPAddr(), Err: err}}}
	}
	return nil
}

// NodePeek is one nsqd's answer to a peek.
type NodePeek struct {
	Node     string          `json:"node"`
	Hostname string          `json:"hostname"`
	Peek     json.RawMessage `json:"peek,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// Peek asks every producer of topic for its messages of channel ("" for the
// topic's own) with the peek parameters in params (n, state, max_body,
// encoding), one answer per node.
func (c *Cluster) Peek(ctx context.Context, topic, channel string, params url.Values) ([]NodePeek, error) {
	ps, err := c.TopicProducers(ctx, topic)
	if len(ps) == 0 {
		return nil, err
	}
	q := url.Values{"topic": {topic}}
	path := "/topic/peek?"
	if channel != "" {
		q.Set("channel", channel)
		path = "/channel/peek?"
	}
	for _, k := range []string{"n", "state", "max_body", "encoding"} {
		if v := params.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	out := make([]NodePeek, len(ps))
	each(httpAddrs(ps), func(i int, addr string) {
		out[i] = NodePeek{Node: ps[i].Node(), Hostname: ps[i].Hostname}
		body, err := c.client.do(ctx, http.MethodGet, endpoint(addr, path+q.Encode()))
		if err != nil {
			out[i].Error = err.Error()
			return
		}
		out[i].Peek = body
	})
	return out, nil
}

package clusterinfo

import (
	"context"
	"errors"
)

// Cluster answers nsqadmin's questions about a cluster found through
// nsqlookupds ("lookupd mode") or given as a fixed list of nsqds ("nsqd
// mode"), whichever has addresses.
type Cluster struct {
	client *Client
	// lookupds returns the current lookupd HTTP addresses; they change at
	// run time through PUT /config/nsqlookupd_http_addresses.
	lookupds func() []string
	nsqds    []string
}

// NewCluster returns a Cluster using client. lookupds returns the lookupd
// addresses (nil or empty: nsqd mode); nsqds is used in nsqd mode.
func NewCluster(client *Client, lookupds func() []string, nsqds []string) *Cluster {
	if lookupds == nil {
		lookupds = func() []string { return nil }
	}
	return &Cluster{client: client, lookupds: lookupds, nsqds: nsqds}
}

// Lookupds returns the lookupd addresses in use.
func (c *Cluster) Lookupds() []string { return c.lookupds() }

// LookupdMode reports whether the cluster is found through lookupds.
func (c *Cluster) LookupdMode() bool { return len(c.lookupds()) > 0 }

// Topics returns every topic, sorted: those registered with any lookupd, or
// those on any of the nsqds.
func (c *Cluster) Topics(ctx context.Context) ([]string, error) {
	if l := c.lookupds(); len(l) > 0 {
		return c.client.lookupdTopics(ctx, l)
	}
	return c.client.nsqdTopics(ctx, c.nsqds)
}

// Producers returns every nsqd, sorted by hostname.
func (c *Cluster) Producers(ctx context.Context) ([]*Producer, error) {
	if l := c.lookupds(); len(l) > 0 {
		return c.client.lookupdProducers(ctx, l)
	}
	return c.client.nsqdProducers(ctx, c.nsqds)
}

// TopicProducers returns the nsqds that have topic (not tombstoned ones).
// It returns ErrTopicNotFound when no upstream knows the topic; a topic
// registered in a lookupd without producers has none and no error.
func (c *Cluster) TopicProducers(ctx context.Context, topic string) ([]*Producer, error) {
	if l := c.lookupds(); len(l) > 0 {
		return c.client.lookupdTopicProducers(ctx, topic, l)
	}
	return c.client.nsqdTopicProducers(ctx, topic, c.nsqds)
}

// InactiveTopics maps each topic that a lookupd knows but no nsqd produces
// to its channels in the lookupds (nil when none). In nsqd mode it is empty.
func (c *Cluster) InactiveTopics(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	lookupds := c.lookupds()
	if len(lookupds) == 0 {
		return out, nil
	}
	topics, err := c.client.lookupdTopics(ctx, lookupds)
	if _, ok := errors.AsType[*UpstreamError](err); ok {
		return nil, err
	}
	errs := []error{err}
	type found struct {
		channels []string
		inactive bool
		err      error
	}
	results := make([]found, len(topics))
	each(topics, func(i int, topic string) {
		producers, err := c.client.lookupdTopicProducers(ctx, topic, lookupds)
		if errors.Is(err, ErrTopicNotFound) {
			return // deleted meanwhile
		}
		if _, ok := errors.AsType[*UpstreamError](err); ok || len(producers) > 0 {
			results[i] = found{err: err}
			return
		}
		channels, cerr := c.client.lookupdTopicChannels(ctx, topic, lookupds)
		if len(channels) == 0 {
			channels = nil
		}
		results[i] = found{channels: channels, inactive: true, err: errors.Join(err, cerr)}
	})
	for i, r := range results {
		if r.inactive {
			out[topics[i]] = r.channels
		}
		errs = append(errs, r.err)
	}
	return out, Merge(errs...)
}

// TopicStats returns topic aggregated over its producers.
func (c *Cluster) TopicStats(ctx context.Context, topic string) (*TopicStats, error) {
	producers, perr := c.TopicProducers(ctx, topic)
	if perr != nil && !isPartial(perr) {
		return nil, perr
	}
	nodes, serr := c.client.stats(ctx, producers, topic, "", false)
	if len(producers) > 0 && len(nodes) == 0 {
		return nil, &UpstreamError{Kind: KindNSQD, Errors: NodeErrors(errors.Join(perr, serr))}
	}
	var perNode []*TopicStats
	for _, n := range nodes {
		perNode = append(perNode, n.topics...) // at most the one topic
	}
	if len(producers) > 0 && len(perNode) == 0 && serr == nil {
		return nil, ErrTopicNotFound // deleted since the producers were listed
	}
	if perNode == nil {
		perNode = []*TopicStats{}
	}
	return aggregateTopic(topic, perNode), Merge(perr, serr)
}

// ChannelStats returns channel of topic aggregated over the producers of
// topic, with its clients.
func (c *Cluster) ChannelStats(ctx context.Context, topic, channel string) (*ChannelStats, error) {
	producers, perr := c.TopicProducers(ctx, topic)
	if perr != nil && !isPartial(perr) {
		return nil, perr
	}
	nodes, serr := c.client.stats(ctx, producers, topic, channel, true)
	if len(producers) > 0 && len(nodes) == 0 {
		return nil, &UpstreamError{Kind: KindNSQD, Errors: NodeErrors(errors.Join(perr, serr))}
	}
	var perNode []*ChannelStats
	for _, n := range nodes {
		for _, t := range n.topics {
			for _, ch := range t.Channels {
				if ch.ChannelName == channel {
					perNode = append(perNode, ch)
				}
			}
		}
	}
	if len(perNode) == 0 {
		if serr != nil || perr != nil {
			return nil, &UpstreamError{Kind: KindNSQD, Errors: NodeErrors(errors.Join(perr, serr))}
		}
		return nil, ErrChannelNotFound
	}
	agg := aggregateChannel(topic, channel, perNode)
	if agg.Clients == nil {
		agg.Clients = []*ClientStats{}
	}
	return agg, Merge(perr, serr)
}

// NodeStats returns the nsqd whose node address (broadcast_address:http_port)
// is node and its topics, with channels and clients. It returns
// ErrNodeNotFound when no nsqd has that address.
func (c *Cluster) NodeStats(ctx context.Context, node string) (*Producer, []*TopicStats, error) {
	p, perr := c.FindProducer(ctx, node)
	if perr != nil && !isPartial(perr) {
		return nil, nil, perr
	}
	nodes, serr := c.client.stats(ctx, []*Producer{p}, "", "", true)
	if len(nodes) == 0 {
		return p, nil, serr
	}
	return p, nodes[0].topics, Merge(perr, serr)
}

// FindProducer returns the nsqd whose node address is node, or
// ErrNodeNotFound (an *UpstreamError when nobody could be asked).
func (c *Cluster) FindProducer(ctx context.Context, node string) (*Producer, error) {
	producers, err := c.Producers(ctx)
	if _, ok := errors.AsType[*UpstreamError](err); ok {
		return nil, err
	}
	for _, p := range producers {
		if p.Node() == node || p.HTTPAddr() == node {
			return p, err
		}
	}
	if err != nil {
		// The node may be one of those that did not answer.
		return nil, &UpstreamError{Kind: KindNSQD, Errors: NodeErrors(err)}
	}
	return nil, ErrNodeNotFound
}

// Snapshot is the whole cluster at one moment: every nsqd and every topic
// aggregated over them (channels without clients).
type Snapshot struct {
	Producers []*Producer
	Topics    []*TopicStats // sorted by name
}

// Snapshot asks every nsqd for its stats. The error reports the upstreams
// that failed; the snapshot holds what the others said.
func (c *Cluster) Snapshot(ctx context.Context) (*Snapshot, error) {
	producers, perr := c.Producers(ctx)
	if _, ok := errors.AsType[*UpstreamError](perr); ok {
		return &Snapshot{}, perr
	}
	nodes, serr := c.client.stats(ctx, producers, "", "", false)
	if len(producers) > 0 && len(nodes) == 0 {
		return &Snapshot{Producers: producers}, &UpstreamError{Kind: KindNSQD, Errors: NodeErrors(errors.Join(perr, serr))}
	}
	byTopic := map[string][]*TopicStats{}
	for _, n := range nodes {
		for _, t := range n.topics {
			byTopic[t.TopicName] = append(byTopic[t.TopicName], t)
		}
	}
	s := &Snapshot{Producers: producers}
	for _, name := range sortedKeys(setOf(byTopic)) {
		s.Topics = append(s.Topics, aggregateTopic(name, byTopic[name]))
	}
	return s, Merge(perr, serr)
}

// Counter returns the message count of every channel on every node, keyed
// "topic:channel:node".
func (c *Cluster) Counter(ctx context.Context) (map[string]ChannelCount, error) {
	producers, perr := c.Producers(ctx)
	if _, ok := errors.AsType[*UpstreamError](perr); ok {
		return nil, perr
	}
	nodes, serr := c.client.stats(ctx, producers, "", "", false)
	if len(producers) > 0 && len(nodes) == 0 {
		return nil, &UpstreamError{Kind: KindNSQD, Errors: NodeErrors(errors.Join(perr, serr))}
	}
	out := map[string]ChannelCount{}
	for _, n := range nodes {
		for _, t := range n.topics {
			for _, ch := range t.Channels {
				key := t.TopicName + ":" + ch.ChannelName + ":" + ch.Node
				cc := out[key]
				cc.Node, cc.TopicName, cc.ChannelName = ch.Node, t.TopicName, ch.ChannelName
				cc.MessageCount += ch.MessageCount
				out[key] = cc
			}
		}
	}
	return out, Merge(perr, serr)
}

func isPartial(err error) bool {
	_, ok := errors.AsType[*PartialError](err)
	return ok
}

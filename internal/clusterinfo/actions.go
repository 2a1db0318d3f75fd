package clusterinfo

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// The write actions below post to every upstream that must see them and
// return nil, a *PartialError, an *UpstreamError when every request failed,
// or a not-found sentinel when every upstream answered 404.

// tally counts the requests of an action and their failures.
type tally struct {
	total, notFound int
	lastKind        string
	col             collector
}

// post sends POST addr+pathQuery to each addr; a 404 answer counts as "not
// there" rather than a failure when notFoundOK.
func (t *tally) post(ctx context.Context, c *Client, kind string, addrs []string, pathQuery string, notFoundOK bool) {
	var nf collector
	each(addrs, func(_ int, addr string) {
		err := c.post(ctx, addr, pathQuery)
		switch {
		case err == nil:
		case notFoundOK && isStatus(err, http.StatusNotFound):
			nf.add(kind, addr, err)
		default:
			t.col.add(kind, addr, err)
		}
	})
	t.total += len(addrs)
	t.notFound += len(nf.errs)
	if len(addrs) > 0 {
		t.lastKind = kind
	}
}

// err is the outcome: notFound when every request was answered 404.
func (t *tally) err(notFound error) error {
	errs := t.col.sorted()
	switch {
	case t.total > 0 && t.notFound == t.total && notFound != nil:
		return notFound
	case len(errs) == 0:
		return nil
	case len(errs)+t.notFound == t.total:
		return &UpstreamError{Kind: t.lastKind, Errors: errs}
	}
	return &PartialError{Errors: errs}
}

func httpAddrs(ps []*Producer) []string {
	addrs := make([]string, len(ps))
	for i, p := range ps {
		addrs[i] = p.HTTPAddr()
	}
	return addrs
}

func topicQuery(topic string) string { return "?topic=" + url.QueryEscape(topic) }

func channelQuery(topic, channel string) string {
	return "?topic=" + url.QueryEscape(topic) + "&channel=" + url.QueryEscape(channel)
}

// CreateTopicChannel registers topic (and channel, when not empty) with
// every lookupd, then creates the channel on every producer of the topic.
// No topic is created on an nsqd: it appears there when published to.
func (c *Cluster) CreateTopicChannel(ctx context.Context, topic, channel string) error {
	var t tally
	lookupds := c.lookupds()
	t.post(ctx, c.client, KindNSQLookupd, lookupds, "/topic/create"+topicQuery(topic), false)
	if channel == "" {
		return t.err(nil)
	}
	t.post(ctx, c.client, KindNSQLookupd, lookupds, "/channel/create"+channelQuery(topic, channel), false)
	producers, perr := c.TopicProducers(ctx, topic)
	if errors.Is(perr, ErrTopicNotFound) {
		perr = nil
	}
	t.post(ctx, c.client, KindNSQD, httpAddrs(producers), "/channel/create"+channelQuery(topic, channel), false)
	return joinTally(t.err(nil), perr)
}

// DeleteTopic deletes topic from every lookupd and every producer.
func (c *Cluster) DeleteTopic(ctx context.Context, topic string) error {
	producers, perr := c.TopicProducers(ctx, topic)
	if perr != nil && !isPartial(perr) {
		return perr
	}
	var t tally
	t.post(ctx, c.client, KindNSQLookupd, c.lookupds(), "/topic/delete"+topicQuery(topic), false)
	t.post(ctx, c.client, KindNSQD, httpAddrs(producers), "/topic/delete"+topicQuery(topic), true)
	return joinTally(t.err(nil), perr)
}

// DeleteChannel deletes channel from every lookupd and every producer of
// topic.
func (c *Cluster) DeleteChannel(ctx context.Context, topic, channel string) error {
	producers, perr := c.TopicProducers(ctx, topic)
	if perr != nil && !isPartial(perr) {
		return perr
	}
	var t tally
	t.post(ctx, c.client, KindNSQLookupd, c.lookupds(), "/channel/delete"+channelQuery(topic, channel), true)
	t.post(ctx, c.client, KindNSQD, httpAddrs(producers), "/channel/delete"+channelQuery(topic, channel), true)
	return joinTally(t.err(ErrChannelNotFound), perr)
}

// TopicAction runs action ("pause", "unpause" or "empty") on topic on every
// producer.
func (c *Cluster) TopicAction(ctx context.Context, topic, action string) error {
	producers, perr := c.TopicProducers(ctx, topic)
	if perr != nil && !isPartial(perr) {
		return perr
	}
	var t tally
	t.post(ctx, c.client, KindNSQD, httpAddrs(producers), "/topic/"+action+topicQuery(topic), true)
	return joinTally(t.err(ErrTopicNotFound), perr)
}

// ChannelAction runs action ("pause", "unpause" or "empty") on channel of
// topic on every producer of topic.
func (c *Cluster) ChannelAction(ctx context.Context, topic, channel, action string) error {
	producers, perr := c.TopicProducers(ctx, topic)
	if perr != nil && !isPartial(perr) {
		return perr
	}
	var t tally
	t.post(ctx, c.client, KindNSQD, httpAddrs(producers), "/channel/"+action+channelQuery(topic, channel), true)
	return joinTally(t.err(ErrChannelNotFound), perr)
}

// ChannelConfig sets limit overrides (query: max_depth=100&overflow=...) on
// channel of topic on every producer of topic (POST /channel/config, an
// addition of this project's nsqd).
func (c *Cluster) ChannelConfig(ctx context.Context, topic, channel string, query url.Values) error {
	producers, perr := c.TopicProducers(ctx, topic)
	if perr != nil && !isPartial(perr) {
		return perr
	}
	var t tally
	pq := "/channel/config" + channelQuery(topic, channel)
	if len(query) > 0 {
		pq += "&" + query.Encode()
	}
	t.post(ctx, c.client, KindNSQD, httpAddrs(producers), pq, true)
	return joinTally(t.err(ErrChannelNotFound), perr)
}

// TopicRedrive moves the queued messages of the dead-letter topic back to
// toTopic on every producer of topic (POST /topic/redrive).
func (c *Cluster) TopicRedrive(ctx context.Context, topic, toTopic string) error {
	producers, perr := c.TopicProducers(ctx, topic)
	if perr != nil && !isPartial(perr) {
		return perr
	}
	var t tally
	t.post(ctx, c.client, KindNSQD, httpAddrs(producers), "/topic/redrive"+topicQuery(topic)+"&to_topic="+url.QueryEscape(toTopic), true)
	return joinTally(t.err(ErrTopicNotFound), perr)
}

// TombstoneTopicProducer tombstones topic for node (broadcast_address:
// http_port) in every lookupd, so consumers stop finding it there, then
// deletes the topic on that nsqd.
func (c *Cluster) TombstoneTopicProducer(ctx context.Context, topic, node string) error {
	p, ferr := c.FindProducer(ctx, node)
	if ferr != nil && !isPartial(ferr) {
		return ferr
	}
	var t tally
	t.post(ctx, c.client, KindNSQLookupd, c.lookupds(),
		"/topic/tombstone"+topicQuery(topic)+"&node="+url.QueryEscape(p.Node()), false)
	t.post(ctx, c.client, KindNSQD, []string{p.HTTPAddr()}, "/topic/delete"+topicQuery(topic), true)
	return joinTally(t.err(nil), ferr)
}

// joinTally adds the failures of finding the producers to an action's
// outcome.
func joinTally(actionErr, findErr error) error {
	if findErr == nil || actionErr != nil && !isPartial(actionErr) {
		return actionErr
	}
	return Merge(actionErr, findErr)
}

package clusterinfo

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// maxParallel bounds the requests one fan-out has in flight.
const maxParallel = 32

// each calls f for every element of items concurrently (at most maxParallel
// at once) and returns when all calls have.
func each[T any](items []T, f func(i int, item T)) {
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, item := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i, item)
		})
	}
	wg.Wait()
}

// collector gathers the failures of concurrent requests.
type collector struct {
	mu   sync.Mutex
	errs Errors
}

func (c *collector) add(kind, addr string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, &NodeError{Kind: kind, Addr: addr, Err: err})
}

// sorted returns the failures ordered by address, so messages are stable.
func (c *collector) sorted() Errors {
	slices.SortStableFunc(c.errs, func(a, b *NodeError) int { return cmp.Compare(a.Addr, b.Addr) })
	return c.errs
}

// Lookupd queries.

// lookupdTopics is the sorted union of GET /topics of every lookupd.
func (c *Client) lookupdTopics(ctx context.Context, lookupds []string) ([]string, error) {
	var (
		mu  sync.Mutex
		set = map[string]bool{}
		col collector
	)
	each(lookupds, func(_ int, addr string) {
		var resp struct {
			Topics []string `json:"topics"`
		}
		if err := c.getJSON(ctx, addr, "/topics", &resp); err != nil {
			col.add(KindNSQLookupd, addr, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, t := range resp.Topics {
			set[t] = true
		}
	})
	return sortedKeys(set), result(KindNSQLookupd, len(lookupds), col.sorted())
}

// lookupdTopicChannels is the sorted union of GET /channels?topic= of every
// lookupd.
func (c *Client) lookupdTopicChannels(ctx context.Context, topic string, lookupds []string) ([]string, error) {
	var (
		mu  sync.Mutex
		set = map[string]bool{}
		col collector
	)
	each(lookupds, func(_ int, addr string) {
		var resp struct {
			Channels []string `json:"channels"`
		}
		if err := c.getJSON(ctx, addr, "/channels?topic="+url.QueryEscape(topic), &resp); err != nil {
			col.add(KindNSQLookupd, addr, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ch := range resp.Channels {
			set[ch] = true
		}
	})
	return sortedKeys(set), result(KindNSQLookupd, len(lookupds), col.sorted())
}

// lookupdProducers merges GET /nodes of every lookupd by the nsqds'
// broadcast_address:tcp_port.
func (c *Client) lookupdProducers(ctx context.Context, lookupds []string) ([]*Producer, error) {
	var (
		mu     sync.Mutex
		byAddr = map[string]*Producer{}
		col    collector
	)
	each(lookupds, func(_ int, addr string) {
		var resp struct {
			Producers []lookupdProducer `json:"producers"`
		}
		if err := c.getJSON(ctx, addr, "/nodes", &resp); err != nil {
			col.add(KindNSQLookupd, addr, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, lp := range resp.Producers {
			key := lp.BroadcastAddress + ":" + strconv.Itoa(lp.TCPPort)
			p, ok := byAddr[key]
			if !ok {
				p = producerFromLookupd(lp)
				byAddr[key] = p
			}
			p.RemoteAddresses = append(p.RemoteAddresses, addr+"/"+lp.RemoteAddress)
			for i, t := range lp.Topics {
				tomb := i < len(lp.Tombstones) && lp.Tombstones[i]
				if j := slices.IndexFunc(p.Topics, func(pt ProducerTopic) bool { return pt.Topic == t }); j >= 0 {
					p.Topics[j].Tombstoned = p.Topics[j].Tombstoned || tomb
				} else {
					p.Topics = append(p.Topics, ProducerTopic{Topic: t, Tombstoned: tomb})
				}
			}
		}
	})
	producers := make([]*Producer, 0, len(byAddr))
	for _, p := range byAddr {
		slices.Sort(p.RemoteAddresses)
		slices.SortFunc(p.Topics, func(a, b ProducerTopic) int { return cmp.Compare(a.Topic, b.Topic) })
		producers = append(producers, p)
	}
	markOutOfDate(producers)
	sortProducers(producers)
	return producers, result(KindNSQLookupd, len(lookupds), col.sorted())
}

// lookupdTopicProducers merges GET /lookup?topic= of every lookupd by the
// nsqds' broadcast_address:http_port. It returns ErrTopicNotFound when every
// lookupd answered that it does not know the topic.
func (c *Client) lookupdTopicProducers(ctx context.Context, topic string, lookupds []string) ([]*Producer, error) {
	var (
		mu       sync.Mutex
		byNode   = map[string]*Producer{}
		notFound int
		col      collector
	)
	each(lookupds, func(_ int, addr string) {
		var resp struct {
			Producers []lookupdProducer `json:"producers"`
		}
		err := c.getJSON(ctx, addr, "/lookup?topic="+url.QueryEscape(topic), &resp)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case isStatus(err, http.StatusNotFound):
			notFound++
			return
		case err != nil:
			col.add(KindNSQLookupd, addr, err)
			return
		}
		for _, lp := range resp.Producers {
			p := producerFromLookupd(lp)
			if _, ok := byNode[p.Node()]; !ok {
				byNode[p.Node()] = p
			}
		}
	})
	if notFound > 0 && notFound == len(lookupds) {
		return nil, ErrTopicNotFound
	}
	producers := make([]*Producer, 0, len(byNode))
	for _, p := range byNode {
		producers = append(producers, p)
	}
	sortProducers(producers)
	return producers, result(KindNSQLookupd, len(lookupds)-notFound, col.sorted())
}

func producerFromLookupd(lp lookupdProducer) *Producer {
	return &Producer{
		RemoteAddress:    lp.RemoteAddress,
		Hostname:         lp.Hostname,
		BroadcastAddress: lp.BroadcastAddress,
		TCPPort:          lp.TCPPort,
		HTTPPort:         lp.HTTPPort,
		Version:          lp.Version,
		TopologyZone:     lp.TopologyZone,
		TopologyRegion:   lp.TopologyRegion,
		Topics:           []ProducerTopic{},
	}
}

// nsqd queries.

// nsqdInfo returns a Producer for the nsqd at addr from GET /info.
func (c *Client) nsqdInfo(ctx context.Context, addr string) (*Producer, error) {
	var info nsqdInfo
	if err := c.getJSON(ctx, addr, "/info", &info); err != nil {
		return nil, err
	}
	return &Producer{
		Hostname:         info.Hostname,
		BroadcastAddress: info.BroadcastAddress,
		TCPPort:          info.TCPPort,
		HTTPPort:         info.HTTPPort,
		Version:          info.Version,
		TopologyZone:     info.TopologyZone,
		TopologyRegion:   info.TopologyRegion,
		Topics:           []ProducerTopic{},
		addr:             addr,
	}, nil
}

// nsqdStats returns GET /stats?format=json of the nsqd at addr, limited to
// topic and channel when not empty.
func (c *Client) nsqdStats(ctx context.Context, addr, topic, channel string, includeClients bool) (*nsqdStats, error) {
	q := url.Values{"format": {"json"}}
	if topic != "" {
		q.Set("topic", topic)
		if channel != "" {
			q.Set("channel", channel)
		}
	}
	if !includeClients {
		q.Set("include_clients", "false")
	}
	var s nsqdStats
	if err := c.getJSON(ctx, addr, "/stats?"+q.Encode(), &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// nsqdProducers returns a Producer for each nsqd, with its topics, from
// GET /info and GET /stats.
func (c *Client) nsqdProducers(ctx context.Context, nsqds []string) ([]*Producer, error) {
	var (
		mu        sync.Mutex
		producers []*Producer
		col       collector
	)
	each(nsqds, func(_ int, addr string) {
		p, err := c.nsqdInfo(ctx, addr)
		if err != nil {
			col.add(KindNSQD, addr, err)
			return
		}
		s, err := c.nsqdStats(ctx, addr, "", "", false)
		if err != nil {
			col.add(KindNSQD, addr, err)
			return
		}
		for _, t := range s.Topics {
			p.Topics = append(p.Topics, ProducerTopic{Topic: t.TopicName})
		}
		slices.SortFunc(p.Topics, func(a, b ProducerTopic) int { return cmp.Compare(a.Topic, b.Topic) })
		mu.Lock()
		producers = append(producers, p)
		mu.Unlock()
	})
	markOutOfDate(producers)
	sortProducers(producers)
	return producers, result(KindNSQD, len(nsqds), col.sorted())
}

// nsqdTopicProducers returns the nsqds that have topic. It returns
// ErrTopicNotFound when every nsqd answered and none has it.
func (c *Client) nsqdTopicProducers(ctx context.Context, topic string, nsqds []string) ([]*Producer, error) {
	var (
		mu        sync.Mutex
		producers []*Producer
		col       collector
	)
	each(nsqds, func(_ int, addr string) {
		s, err := c.nsqdStats(ctx, addr, topic, "", false)
		if err != nil {
			col.add(KindNSQD, addr, err)
			return
		}
		if len(s.Topics) == 0 {
			return
		}
		p, err := c.nsqdInfo(ctx, addr)
		if err != nil {
			col.add(KindNSQD, addr, err)
			return
		}
		p.Topics = append(p.Topics, ProducerTopic{Topic: topic})
		mu.Lock()
		producers = append(producers, p)
		mu.Unlock()
	})
	errs := col.sorted()
	switch {
	case len(producers) == 0 && len(errs) == 0:
		return nil, ErrTopicNotFound
	case len(producers) == 0:
		// Not on the nsqds that answered: it may be on those that did not.
		return nil, &UpstreamError{Kind: KindNSQD, Errors: errs}
	}
	sortProducers(producers)
	return producers, result(KindNSQD, len(nsqds), errs)
}

// nsqdTopics is the sorted union of the topics of every nsqd.
func (c *Client) nsqdTopics(ctx context.Context, nsqds []string) ([]string, error) {
	var (
		mu  sync.Mutex
		set = map[string]bool{}
		col collector
	)
	each(nsqds, func(_ int, addr string) {
		s, err := c.nsqdStats(ctx, addr, "", "", false)
		if err != nil {
			col.add(KindNSQD, addr, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, t := range s.Topics {
			set[t.TopicName] = true
		}
	})
	return sortedKeys(set), result(KindNSQD, len(nsqds), col.sorted())
}

// nodeStats is what one nsqd answered to GET /stats.
type nodeStats struct {
	producer *Producer
	topics   []*TopicStats
}

// stats gets GET /stats from every producer, limited to topic and channel
// when not empty, as per-node objects. Nodes that failed are left out.
func (c *Client) stats(ctx context.Context, producers []*Producer, topic, channel string, includeClients bool) ([]nodeStats, error) {
	out := make([]nodeStats, len(producers))
	var col collector
	each(producers, func(i int, p *Producer) {
		s, err := c.nsqdStats(ctx, p.HTTPAddr(), topic, channel, includeClients)
		if err != nil {
			col.add(KindNSQD, p.Node(), err)
			return
		}
		out[i] = nodeStats{producer: p, topics: convertTopics(p, s)}
	})
	out = slices.DeleteFunc(out, func(n nodeStats) bool { return n.producer == nil })
	return out, result(KindNSQD, len(producers), col.sorted())
}

// markOutOfDate flags the producers whose version is lower than the highest.
func markOutOfDate(producers []*Producer) {
	var newest string
	for _, p := range producers {
		if compareVersions(p.Version, newest) > 0 {
			newest = p.Version
		}
	}
	for _, p := range producers {
		p.OutOfDate = compareVersions(p.Version, newest) < 0
	}
}

// compareVersions compares dotted versions ("1.2.10" > "1.2.9"); a
// pre-release suffix ("1.3.0-alpha") sorts before the release.
func compareVersions(a, b string) int {
	ca, pa, _ := strings.Cut(strings.TrimPrefix(a, "v"), "-")
	cb, pb, _ := strings.Cut(strings.TrimPrefix(b, "v"), "-")
	fa, fb := strings.Split(ca, "."), strings.Split(cb, ".")
	for i := range max(len(fa), len(fb)) {
		var na, nb int
		if i < len(fa) {
			na, _ = strconv.Atoi(fa[i])
		}
		if i < len(fb) {
			nb, _ = strconv.Atoi(fb[i])
		}
		if c := cmp.Compare(na, nb); c != 0 {
			return c
		}
	}
	switch {
	case pa == pb:
		return 0
	case pa == "":
		return 1
	case pb == "":
		return -1
	}
	return cmp.Compare(pa, pb)
}

func sortProducers(ps []*Producer) {
	slices.SortFunc(ps, func(a, b *Producer) int {
		return cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Node(), b.Node()))
	})
}

func sortedKeys(set map[string]bool) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

package clusterinfo

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// convertTopics turns one nsqd's /stats into per-node objects.
func convertTopics(p *Producer, s *nsqdStats) []*TopicStats {
	node := p.Node()
	now := time.Now()
	var set string
	var leads bool
	if r := s.Replication; r != nil && r.LeaderID != "" {
		set = fmt.Sprintf("%s/%d", r.LeaderID, r.Term)
		leads = r.Role == "leader" && r.ID == r.LeaderID
	}
	topics := make([]*TopicStats, 0, len(s.Topics))
	for _, t := range s.Topics {
		ts := &TopicStats{
			Node:                 node,
			Hostname:             p.Hostname,
			TopicName:            t.TopicName,
			Depth:                t.Depth,
			MemoryDepth:          t.Depth - t.BackendDepth,
			BackendDepth:         t.BackendDepth,
			BackendSkipped:       t.BackendSkipped,
			MessageCount:         t.MessageCount,
			Channels:             make([]*ChannelStats, 0, len(t.Channels)),
			Paused:               t.Paused,
			E2eProcessingLatency: nodeE2e(t.E2e),
		}
		for _, c := range t.Channels {
			cs := &ChannelStats{
				Node:                 node,
				Hostname:             p.Hostname,
				TopicName:            t.TopicName,
				ChannelName:          c.ChannelName,
				Depth:                c.Depth,
				MemoryDepth:          c.Depth - c.BackendDepth,
				BackendDepth:         c.BackendDepth,
				BackendSkipped:       c.BackendSkipped,
				InFlightCount:        c.InFlightCount,
				DeferredCount:        c.DeferredCount,
				RequeueCount:         c.RequeueCount,
				TimeoutCount:         c.TimeoutCount,
				MessageCount:         c.MessageCount,
				DeliveryMsgCount:     c.ZoneLocalMsgCount + c.RegionLocalMsgCount + c.GlobalMsgCount,
				ZoneLocalMsgCount:    c.ZoneLocalMsgCount,
				RegionLocalMsgCount:  c.RegionLocalMsgCount,
				GlobalMsgCount:       c.GlobalMsgCount,
				ClientCount:          c.ClientCount,
				Paused:               c.Paused,
				E2eProcessingLatency: nodeE2e(c.E2e),
				Limits:               c.Config,
				DeadLetteredCount:    c.DeadLetteredCount,
				RejectedCount:        c.RejectedCount,
				DroppedCount:         c.DroppedCount,
				ExpiredCount:         c.ExpiredCount,
				replicaSet:           set,
				replicaLeader:        leads,
			}
			if c.Clients != nil {
				cs.Clients = make([]*ClientStats, 0, len(c.Clients))
			}
			for _, cl := range c.Clients {
				cs.Clients = append(cs.Clients, convertClient(p, cl, now))
			}
			sortClients(cs.Clients)
			ts.Channels = append(ts.Channels, cs)
		}
		topics = append(topics, ts)
	}
	return topics
}

func convertClient(p *Producer, c nsqdClient, now time.Time) *ClientStats {
	connected := now.Sub(time.Unix(c.ConnectTS, 0)).Truncate(time.Second)
	return &ClientStats{
		Node:                          p.Node(),
		RemoteAddress:                 c.RemoteAddress,
		Version:                       c.Version,
		ClientID:                      c.ClientID,
		Hostname:                      c.Hostname,
		UserAgent:                     c.UserAgent,
		ConnectTS:                     c.ConnectTS,
		Connected:                     int64(max(connected, 0)),
		InFlightCount:                 c.InFlightCount,
		ReadyCount:                    c.ReadyCount,
		FinishCount:                   c.FinishCount,
		RequeueCount:                  c.RequeueCount,
		MessageCount:                  c.MessageCount,
		SampleRate:                    c.SampleRate,
		Deflate:                       c.Deflate,
		Snappy:                        c.Snappy,
		Authed:                        c.Authed,
		AuthIdentity:                  c.AuthIdentity,
		AuthIdentityURL:               c.AuthIdentityURL,
		TLS:                           c.TLS,
		CipherSuite:                   c.CipherSuite,
		TLSVersion:                    c.TLSVersion,
		TLSNegotiatedProtocol:         c.TLSNegotiatedProtocol,
		TLSNegotiatedProtocolIsMutual: c.TLSNegotiatedProtocolIsMutual,
		NodeTopologyRegion:            p.TopologyRegion,
		NodeTopologyZone:              p.TopologyZone,
		TopologyRegion:                c.TopologyRegion,
		TopologyZone:                  c.TopologyZone,
	}
}

// nodeE2e is one node's latency object: each percentile carries its value,
// with min = max = average = value and count the node's sample count.
func nodeE2e(e nsqdE2e) *E2eLatency {
	out := &E2eLatency{Count: e.Count}
	if e.Percentiles == nil {
		return out
	}
	out.Percentiles = make([]E2ePercentile, 0, len(e.Percentiles))
	for _, p := range e.Percentiles {
		v := p.Value
		out.Percentiles = append(out.Percentiles, E2ePercentile{
			Quantile: p.Quantile, Value: &v, Count: e.Count, Min: v, Max: v, Average: v,
		})
	}
	return out
}

// aggregateE2e merges latency objects of several nodes quantile by
// quantile: counts add up, min and max are the extremes, average is weighted
// by the counts. The result has no per-quantile value.
func aggregateE2e(topic, channel string, es []*E2eLatency) *E2eLatency {
	out := &E2eLatency{Topic: topic, Channel: channel, Host: "*"}
	for _, e := range es {
		if e == nil {
			continue
		}
		out.Count += e.Count
		for _, p := range e.Percentiles {
			i := slices.IndexFunc(out.Percentiles, func(q E2ePercentile) bool { return q.Quantile == p.Quantile })
			if i < 0 {
				out.Percentiles = append(out.Percentiles, E2ePercentile{
					Quantile: p.Quantile, Count: p.Count, Min: p.Min, Max: p.Max, Average: p.Average,
				})
				continue
			}
			q := &out.Percentiles[i]
			total := q.Count + p.Count
			if total > 0 {
				q.Average = (q.Average*float64(q.Count) + p.Average*float64(p.Count)) / float64(total)
			} else {
				q.Average = (q.Average + p.Average) / 2
			}
			q.Count = total
			q.Min = min(q.Min, p.Min)
			q.Max = max(q.Max, p.Max)
		}
	}
	return out
}

// aggregateTopic merges the per-node objects of one topic. Its channels are
// merged by name: a channel on one node is that node's object, a channel on
// several is an aggregate (node "*") listing them.
func aggregateTopic(name string, nodes []*TopicStats) *TopicStats {
	agg := &TopicStats{
		Node:      "*",
		TopicName: name,
		Nodes:     nodes,
		Channels:  []*ChannelStats{},
	}
	slices.SortFunc(nodes, func(a, b *TopicStats) int {
		return cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Node, b.Node))
	})
	byChannel := map[string][]*ChannelStats{}
	var es []*E2eLatency
	for _, n := range nodes {
		agg.Depth += n.Depth
		agg.MemoryDepth += n.MemoryDepth
		agg.BackendDepth += n.BackendDepth
		agg.BackendSkipped.add(n.BackendSkipped)
		agg.MessageCount += n.MessageCount
		agg.Paused = agg.Paused || n.Paused
		es = append(es, n.E2eProcessingLatency)
		for _, c := range n.Channels {
			byChannel[c.ChannelName] = append(byChannel[c.ChannelName], c)
		}
	}
	agg.E2eProcessingLatency = aggregateE2e(name, "", es)
	for _, chName := range sortedKeys(setOf(byChannel)) {
		cs := byChannel[chName]
		if len(cs) == 1 {
			agg.Channels = append(agg.Channels, cs[0])
			continue
		}
		agg.Channels = append(agg.Channels, aggregateChannel(name, chName, cs))
	}
	// Topic-level nsqd stats have no delivery counts: NSQ reports 0 here.
	return agg
}

// aggregateChannel merges the per-node objects of one channel (node "*").
// Its clients are all the nodes' clients.
//
// Replica sets (docs/replication.md, "nsqadmin: totals counted once per
// set"): a follower's in-flight and deferred messages are ones its relay
// holds in flight on the leader, so a set whose leader is among nodes
// counts in-flight and deferred from the leader only. Everything else, and
// every unreplicated node, is summed as in NSQ.
func aggregateChannel(topic, channel string, nodes []*ChannelStats) *ChannelStats {
	slices.SortFunc(nodes, func(a, b *ChannelStats) int {
		return cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Node, b.Node))
	})
	agg := &ChannelStats{Node: "*", TopicName: topic, ChannelName: channel, Nodes: nodes}
	var led map[string]bool // replica sets whose leader is among nodes
	for _, n := range nodes {
		if n.replicaLeader {
			if led == nil {
				led = map[string]bool{}
			}
			led[n.replicaSet] = true
		}
	}
	var es []*E2eLatency
	for _, n := range nodes {
		agg.Depth += n.Depth
		agg.MemoryDepth += n.MemoryDepth
		agg.BackendDepth += n.BackendDepth
		agg.BackendSkipped.add(n.BackendSkipped)
		if n.replicaLeader || !led[n.replicaSet] {
			agg.InFlightCount += n.InFlightCount
			agg.DeferredCount += n.DeferredCount
		}
		agg.RequeueCount += n.RequeueCount
		agg.TimeoutCount += n.TimeoutCount
		agg.MessageCount += n.MessageCount
		agg.DeliveryMsgCount += n.DeliveryMsgCount
		agg.ZoneLocalMsgCount += n.ZoneLocalMsgCount
		agg.RegionLocalMsgCount += n.RegionLocalMsgCount
		agg.GlobalMsgCount += n.GlobalMsgCount
		agg.ClientCount += n.ClientCount
		agg.Paused = agg.Paused || n.Paused
		agg.DeadLetteredCount += n.DeadLetteredCount
		agg.RejectedCount += n.RejectedCount
		agg.DroppedCount += n.DroppedCount
		agg.ExpiredCount += n.ExpiredCount
		if n.Clients != nil && agg.Clients == nil {
			agg.Clients = []*ClientStats{}
		}
		agg.Clients = append(agg.Clients, n.Clients...)
		es = append(es, n.E2eProcessingLatency)
	}
	sortClients(agg.Clients)
	agg.E2eProcessingLatency = aggregateE2e(topic, channel, es)
	agg.Limits = aggregateLimits(nodes)
	return agg
}

// aggregateLimits is the cluster view of a channel's limits: the first
// node's, with max_depth and max_bytes summed over the nodes (0, unlimited,
// when a node has no such limit).
func aggregateLimits(nodes []*ChannelStats) *ChannelLimits {
	var agg *ChannelLimits
	for _, n := range nodes {
		if n.Limits != nil {
			l := *n.Limits
			agg = &l
			break
		}
	}
	if agg == nil {
		return nil
	}
	agg.MaxDepth, agg.MaxBytes = 0, 0
	sum := func(get func(*ChannelLimits) int64) int64 {
		var total int64
		for _, n := range nodes {
			if n.Limits == nil || get(n.Limits) == 0 {
				return 0
			}
			total += get(n.Limits)
		}
		return total
	}
	agg.MaxDepth = sum(func(l *ChannelLimits) int64 { return l.MaxDepth })
	agg.MaxBytes = sum(func(l *ChannelLimits) int64 { return l.MaxBytes })
	return agg
}

func sortClients(cs []*ClientStats) {
	slices.SortFunc(cs, func(a, b *ClientStats) int {
		return cmp.Or(
			cmp.Compare(a.Hostname, b.Hostname),
			cmp.Compare(a.Node, b.Node),
			cmp.Compare(a.RemoteAddress, b.RemoteAddress),
		)
	})
}

func setOf[V any](m map[string]V) map[string]bool {
	s := make(map[string]bool, len(m))
	for k := range m {
		s[k] = true
	}
	return s
}

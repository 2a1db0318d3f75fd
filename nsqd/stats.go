package nsqd

import (
	"sort"

	"github.com/bmizerany/perks/quantile"

	"github.com/nsqclone/nsq/internal/diskq"
	"github.com/nsqclone/nsq/internal/version"
	"github.com/nsqclone/nsq/nsqd/replication"
)

// The types below are the JSON of GET /stats?format=json; field order and
// names are NSQ's (nsq_stat and nsqadmin parse them).

// Stats is a point-in-time snapshot of the daemon.
type Stats struct {
	Version   string        `json:"version"`
	Health    string        `json:"health"`
	StartTime int64         `json:"start_time"`
	Topics    []TopicStats  `json:"topics"`
	Memory    *MemStats     `json:"memory,omitempty"`
	Producers []ClientStats `json:"producers"`
	// HealthConditions (an addition to NSQ's JSON) lists each part of the
	// daemon that health is made of; Health joins the failing ones.
	HealthConditions []HealthCondition `json:"health_conditions"`
	// Draining is set while the node drains (beyond NSQ; absent otherwise).
	Draining bool `json:"draining,omitempty"`
	// Replication is this replica's view of its set (not in NSQ; absent
	// without --replication-address).
	Replication *replication.Stats `json:"replication,omitempty"`
}

// TopicStats describes one topic.
type TopicStats struct {
	TopicName    string         `json:"topic_name"`
	Channels     []ChannelStats `json:"channels"`
	Depth        int64          `json:"depth"`
	BackendDepth int64          `json:"backend_depth"`
	BackendSkipped
	MessageCount         uint64      `json:"message_count"`
	MessageBytes         uint64      `json:"message_bytes"`
	Paused               bool        `json:"paused"`
	E2eProcessingLatency Percentiles `json:"e2e_processing_latency"`
	LimitStats
}

// ChannelStats describes one channel.
type ChannelStats struct {
	ChannelName  string `json:"channel_name"`
	Depth        int64  `json:"depth"`
	BackendDepth int64  `json:"backend_depth"`
	BackendSkipped
	InFlightCount        int           `json:"in_flight_count"`
	DeferredCount        int           `json:"deferred_count"`
	MessageCount         uint64        `json:"message_count"`
	ZoneLocalMsgCount    uint64        `json:"zone_local_msg_count,omitempty"`
	RegionLocalMsgCount  uint64        `json:"region_local_msg_count,omitempty"`
	GlobalMsgCount       uint64        `json:"global_msg_count,omitempty"`
	RequeueCount         uint64        `json:"requeue_count"`
	TimeoutCount         uint64        `json:"timeout_count"`
	ClientCount          int           `json:"client_count"`
	Clients              []ClientStats `json:"clients"`
	Paused               bool          `json:"paused"`
	E2eProcessingLatency Percentiles   `json:"e2e_processing_latency"`
	LimitStats
}

// BackendSkipped counts the damaged data the reader of a topic's or
// channel's disk queue skipped since the daemon started (beyond NSQ, which
// gives up the rest of a damaged file): regions are places where a damaged
// record was found and skipped up to the next record that decodes (each
// lost at least one message), bytes their total size. The fields are left
// out of the JSON while zero, so undamaged queues report as NSQ's do.
type BackendSkipped struct {
	SkippedRegions int64 `json:"backend_skipped_regions,omitempty"`
	SkippedBytes   int64 `json:"backend_skipped_bytes,omitempty"`
}

func backendSkipped(q *diskq.Queue) BackendSkipped {
	if q == nil {
		return BackendSkipped{}
	}
	r, b := q.Skipped()
	return BackendSkipped{SkippedRegions: r, SkippedBytes: b}
}

// ClientStats describes one TCP connection (a consumer or a producer).
type ClientStats struct {
	ClientID                      string     `json:"client_id"`
	Hostname                      string     `json:"hostname"`
	Version                       string     `json:"version"`
	RemoteAddress                 string     `json:"remote_address"`
	State                         int32      `json:"state"`
	ReadyCount                    int64      `json:"ready_count"`
	InFlightCount                 int64      `json:"in_flight_count"`
	MessageCount                  uint64     `json:"message_count"`
	ZoneLocalMsgCount             uint64     `json:"zone_local_msg_count,omitempty"`
	RegionLocalMsgCount           uint64     `json:"region_local_msg_count,omitempty"`
	GlobalMsgCount                uint64     `json:"global_msg_count,omitempty"`
	FinishCount                   uint64     `json:"finish_count"`
	RequeueCount                  uint64     `json:"requeue_count"`
	ConnectTime                   int64      `json:"connect_ts"`
	SampleRate                    int32      `json:"sample_rate"`
	Deflate                       bool       `json:"deflate"`
	Snappy                        bool       `json:"snappy"`
	UserAgent                     string     `json:"user_agent"`
	Authed                        bool       `json:"authed,omitempty"`
	AuthIdentity                  string     `json:"auth_identity,omitempty"`
	AuthIdentityURL               string     `json:"auth_identity_url,omitempty"`
	TopologyZone                  string     `json:"topology_zone"`
	TopologyRegion                string     `json:"topology_region"`
	PubCounts                     []PubCount `json:"pub_counts,omitempty"`
	TLS                           bool       `json:"tls"`
	CipherSuite                   string     `json:"tls_cipher_suite"`
	TLSVersion                    string     `json:"tls_version"`
	TLSNegotiatedProtocol         string     `json:"tls_negotiated_protocol"`
	TLSNegotiatedProtocolIsMutual bool       `json:"tls_negotiated_protocol_is_mutual"`
}

// PubCount is how many messages a producer published to one topic.
type PubCount struct {
	Topic string `json:"topic"`
	Count uint64 `json:"count"`
}

// Percentiles is the e2e_processing_latency object.
type Percentiles struct {
	Count       int64        `json:"count"`
	Percentiles []Percentile `json:"percentiles"`
}

// Percentile is one quantile's value in nanoseconds.
type Percentile struct {
	Quantile float64 `json:"quantile"`
	Value    float64 `json:"value"`
}

// MemStats is the "memory" object (GC pauses in microseconds).
type MemStats struct {
	HeapObjects       uint64 `json:"heap_objects"`
	HeapIdleBytes     uint64 `json:"heap_idle_bytes"`
	HeapInUseBytes    uint64 `json:"heap_in_use_bytes"`
	HeapReleasedBytes uint64 `json:"heap_released_bytes"`
	GCPauseUsec100    uint64 `json:"gc_pause_usec_100"`
	GCPauseUsec99     uint64 `json:"gc_pause_usec_99"`
	GCPauseUsec95     uint64 `json:"gc_pause_usec_95"`
	NextGCBytes       uint64 `json:"next_gc_bytes"`
	GCTotalRuns       uint32 `json:"gc_total_runs"`
}

// Stats snapshots the daemon for GET /stats. topic and channel ("" = all)
// filter; Memory is left nil for the HTTP layer. Topics is null when the
// named topic does not exist; Producers is null when there are none or
// clients are excluded.
func (n *NSQD) Stats(topic, channel string, includeClients bool) Stats {
	s := Stats{
		Version:   version.Binary,
		Health:    "OK",
		StartTime: n.startTime.Unix(),
		Draining:  n.Draining(),
	}
	if err := n.Health(); err != nil {
		s.Health = "NOK - " + err.Error()
	}
	s.HealthConditions = n.HealthConditions()
	var topics []*Topic
	if topic == "" {
		topics = n.topicList()
		s.Topics = make([]TopicStats, 0, len(topics))
	} else if t, err := n.GetExistingTopic(topic); err == nil {
		topics = []*Topic{t}
		s.Topics = make([]TopicStats, 0, 1)
	}
	for _, t := range topics {
		ts := t.stats(channel, includeClients)
		if channel != "" && len(ts.Channels) == 0 {
			continue // NSQ lists no topic when the named channel does not exist
		}
		s.Topics = append(s.Topics, ts)
	}
	if r := n.repl.Load(); r != nil {
		st := r.node.Stats()
		s.Replication = &st
	}
	if includeClients {
		for _, c := range n.clientList() {
			if c.published.Load() {
				s.Producers = append(s.Producers, c.stats(topic))
			}
		}
	}
	return s
}

func (t *Topic) stats(channel string, includeClients bool) TopicStats {
	ts := TopicStats{
		TopicName:            t.name,
		Channels:             []ChannelStats{},
		Depth:                t.Depth(),
		BackendDepth:         t.backendDepth(),
		BackendSkipped:       backendSkipped(t.backend),
		MessageCount:         t.messageCount.Load(),
		MessageBytes:         t.messageBytes.Load(),
		Paused:               t.IsPaused(),
		E2eProcessingLatency: Percentiles{},
		LimitStats:           t.limitStats(),
	}
	var samples quantile.Samples
	chans := t.channelList()
	for _, c := range chans {
		if c.e2e != nil {
			samples = append(samples, c.e2e.samples()...)
		}
		if channel != "" && c.name != channel {
			continue
		}
		ts.Channels = append(ts.Channels, c.stats(includeClients))
	}
	// NSQ: "percentiles" is null for a topic without channels.
	if qs := t.nsqd.opts.E2EProcessingLatencyPercentiles; len(qs) > 0 && len(chans) > 0 {
		ts.E2eProcessingLatency = latencyPercentiles(qs, samples)
	}
	return ts
}

func (c *Channel) stats(includeClients bool) ChannelStats {
	clients := c.clientList()
	cs := ChannelStats{
		ChannelName:          c.name,
		Depth:                c.Depth(),
		BackendDepth:         c.backendDepth(),
		BackendSkipped:       backendSkipped(c.backend),
		InFlightCount:        int(c.inFlightCount.Load()),
		DeferredCount:        int(c.deferredCount.Load()),
		MessageCount:         c.messageCount.Load(),
		RequeueCount:         c.requeueCount.Load(),
		TimeoutCount:         c.timeoutCount.Load(),
		ClientCount:          len(clients),
		Paused:               c.IsPaused(),
		E2eProcessingLatency: Percentiles{},
		LimitStats:           c.limitStats(),
	}
	if c.e2e != nil {
		cs.E2eProcessingLatency = latencyPercentiles(c.e2e.quantiles, c.e2e.samples())
	}
	if includeClients {
		cs.Clients = make([]ClientStats, 0, len(clients))
		for _, cl := range clients {
			cs.Clients = append(cs.Clients, cl.stats(""))
		}
	}
	return cs
}

// stats describes the client; pubTopic selects the pub_counts entry (NSQ
// reports at most one).
func (c *client) stats(pubTopic string) ClientStats {
	c.mu.Lock()
	s := ClientStats{
		ClientID:       c.clientID,
		Hostname:       c.hostname,
		UserAgent:      c.userAgent,
		SampleRate:     c.sampleRate,
		TopologyRegion: "",
		TopologyZone:   "",
	}
	if len(c.pubCounts) > 0 {
		// NSQ lists one topic; we list them all, sorted, with the filtered
		// topic first when one is named.
		for t, n := range c.pubCounts {
			if pubTopic == "" || t == pubTopic {
				s.PubCounts = append(s.PubCounts, PubCount{Topic: t, Count: n})
			}
		}
	}
	c.mu.Unlock()
	sort.Slice(s.PubCounts, func(i, j int) bool { return s.PubCounts[i].Topic < s.PubCounts[j].Topic })
	s.Version = "V2"
	s.RemoteAddress = c.remoteAddr
	s.State = c.state.Load()
	s.ReadyCount = c.rdy.Load()
	s.InFlightCount = c.inFlightCount.Load()
	s.MessageCount = c.messageCount.Load()
	s.FinishCount = c.finishCount.Load()
	s.RequeueCount = c.requeueCount.Load()
	s.ConnectTime = c.connectTime.Unix()
	s.Snappy = c.snappy.Load()
	s.Deflate = c.deflate.Load()
	c.mu.Lock()
	if a := c.authState; a != nil {
		s.Authed, s.AuthIdentity, s.AuthIdentityURL = true, a.Identity, a.IdentityURL
	}
	if st := c.tlsState; st != nil {
		s.TLS = true
		s.TLSVersion = tlsVersionName(st.Version)
		s.CipherSuite = cipherSuiteName(st.CipherSuite)
		s.TLSNegotiatedProtocol = st.NegotiatedProtocol
		s.TLSNegotiatedProtocolIsMutual = st.NegotiatedProtocolIsMutual
	}
	c.mu.Unlock()
	return s
}

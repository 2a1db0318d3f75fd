package clusterinfo

import (
	"net"
	"strconv"
)

// The types below are what nsqadmin's /api answers with; their JSON field
// names are NSQ's nsqadmin's, so its front-end and users' scripts read them.

// Producer is one nsqd: a node of GET /api/nodes and a producer of a topic.
type Producer struct {
	// RemoteAddresses has one "<lookupd>/<nsqd remote address>" per lookupd
	// that knows this nsqd; null in nsqd mode.
	RemoteAddresses  []string        `json:"remote_addresses"`
	RemoteAddress    string          `json:"remote_address"`
	Hostname         string          `json:"hostname"`
	BroadcastAddress string          `json:"broadcast_address"`
	TCPPort          int             `json:"tcp_port"`
	HTTPPort         int             `json:"http_port"`
	Version          string          `json:"version"`
	TopologyZone     string          `json:"topology_zone,omitempty"`
	TopologyRegion   string          `json:"topology_region,omitempty"`
	Topics           []ProducerTopic `json:"topics"`
	OutOfDate        bool            `json:"out_of_date"`

	// addr is where this nsqd's HTTP API is reached: its node address in
	// lookupd mode, the configured --nsqd-http-address in nsqd mode (which
	// works even when the broadcast address does not resolve here).
	addr string
}

// ProducerTopic is one topic of a Producer.
type ProducerTopic struct {
	Topic      string `json:"topic"`
	Tombstoned bool   `json:"tombstoned"`
}

// Node is the producer's identity in the API: broadcast_address:http_port.
func (p *Producer) Node() string {
	return net.JoinHostPort(p.BroadcastAddress, strconv.Itoa(p.HTTPPort))
}

// HTTPAddr is where the producer's HTTP API is reached.
func (p *Producer) HTTPAddr() string {
	if p.addr != "" {
		return p.addr
	}
	return p.Node()
}

// IsTombstoned reports whether topic is tombstoned on this producer.
func (p *Producer) IsTombstoned(topic string) bool {
	for _, t := range p.Topics {
		if t.Topic == topic {
			return t.Tombstoned
		}
	}
	return false
}

// TopicStats is a topic on one node (Node is its address) or aggregated over
// nodes (Node is "*" and Nodes lists the per-node objects).
type TopicStats struct {
	Node         string `json:"node"`
	Hostname     string `json:"hostname"`
	TopicName    string `json:"topic_name"`
	Depth        int64  `json:"depth"`
	MemoryDepth  int64  `json:"memory_depth"`
	BackendDepth int64  `json:"backend_depth"`
	BackendSkipped
	MessageCount         int64           `json:"message_count"`
	DeliveryMsgCount     int64           `json:"delivery_msg_count"`
	ZoneLocalMsgCount    int64           `json:"zone_local_msg_count,omitempty"`
	RegionLocalMsgCount  int64           `json:"region_local_msg_count,omitempty"`
	GlobalMsgCount       int64           `json:"global_msg_count,omitempty"`
	Nodes                []*TopicStats   `json:"nodes"`
	Channels             []*ChannelStats `json:"channels"`
	Paused               bool            `json:"paused"`
	E2eProcessingLatency *E2eLatency     `json:"e2e_processing_latency"`
}

// BackendSkipped is the damaged disk-queue data an nsqd skipped (its
// /stats backend_skipped_regions and backend_skipped_bytes; absent from
// NSQ's nsqd and while zero).
type BackendSkipped struct {
	BackendSkippedRegions int64 `json:"backend_skipped_regions,omitempty"`
	BackendSkippedBytes   int64 `json:"backend_skipped_bytes,omitempty"`
}

func (s *BackendSkipped) add(o BackendSkipped) {
	s.BackendSkippedRegions += o.BackendSkippedRegions
	s.BackendSkippedBytes += o.BackendSkippedBytes
}

// ChannelStats is a channel on one node or aggregated over nodes, like
// TopicStats.
type ChannelStats struct {
	Node         string `json:"node"`
	Hostname     string `json:"hostname"`
	TopicName    string `json:"topic_name"`
	ChannelName  string `json:"channel_name"`
	Depth        int64  `json:"depth"`
	MemoryDepth  int64  `json:"memory_depth"`
	BackendDepth int64  `json:"backend_depth"`
	BackendSkipped
	InFlightCount        int64           `json:"in_flight_count"`
	DeferredCount        int64           `json:"deferred_count"`
	RequeueCount         int64           `json:"requeue_count"`
	TimeoutCount         int64           `json:"timeout_count"`
	MessageCount         int64           `json:"message_count"`
	DeliveryMsgCount     int64           `json:"delivery_msg_count"`
	ZoneLocalMsgCount    int64           `json:"zone_local_msg_count,omitempty"`
	RegionLocalMsgCount  int64           `json:"region_local_msg_count,omitempty"`
	GlobalMsgCount       int64           `json:"global_msg_count,omitempty"`
	ClientCount          int             `json:"client_count"`
	Nodes                []*ChannelStats `json:"nodes"`
	Clients              []*ClientStats  `json:"clients"`
	Paused               bool            `json:"paused"`
	E2eProcessingLatency *E2eLatency     `json:"e2e_processing_latency"`
	// Limits (an nsqd of this project with limits set; nil otherwise). The
	// aggregate's MaxDepth is the sum of the nodes' (0 when any node is
	// unlimited).
	Limits            *ChannelLimits `json:"limits,omitempty"`
	DeadLetteredCount int64          `json:"dead_lettered_count,omitempty"`
	RejectedCount     int64          `json:"rejected_count,omitempty"`
	DroppedCount      int64          `json:"dropped_count,omitempty"`
	ExpiredCount      int64          `json:"expired_count,omitempty"`

	// replicaSet names the replica set of the node (its leader and term;
	// "" when not replicated) and replicaLeader says the node leads it:
	// aggregates take a set's in-flight and deferred counts from its leader.
	replicaSet    string
	replicaLeader bool
}

// ChannelLimits are the effective limits an nsqd reports for a channel.
type ChannelLimits struct {
	MaxDepth        int64  `json:"max_depth"`
	MaxBytes        int64  `json:"max_bytes"`
	Overflow        string `json:"overflow"`
	MsgTTLMs        int64  `json:"msg_ttl_ms"`
	MaxAttempts     int64  `json:"max_attempts"`
	DeadLetterTopic string `json:"dead_letter_topic"`
}

// ClientStats is one consumer connection, with the node it is connected to.
type ClientStats struct {
	Node                          string `json:"node"`
	RemoteAddress                 string `json:"remote_address"`
	Version                       string `json:"version"`
	ClientID                      string `json:"client_id"`
	Hostname                      string `json:"hostname"`
	UserAgent                     string `json:"user_agent"`
	ConnectTS                     int64  `json:"connect_ts"`
	Connected                     int64  `json:"connected"` // nanoseconds, whole seconds
	InFlightCount                 int64  `json:"in_flight_count"`
	ReadyCount                    int64  `json:"ready_count"`
	FinishCount                   int64  `json:"finish_count"`
	RequeueCount                  int64  `json:"requeue_count"`
	MessageCount                  int64  `json:"message_count"`
	SampleRate                    int32  `json:"sample_rate"`
	Deflate                       bool   `json:"deflate"`
	Snappy                        bool   `json:"snappy"`
	Authed                        bool   `json:"authed"`
	AuthIdentity                  string `json:"auth_identity"`
	AuthIdentityURL               string `json:"auth_identity_url"`
	TLS                           bool   `json:"tls"`
	CipherSuite                   string `json:"tls_cipher_suite"`
	TLSVersion                    string `json:"tls_version"`
	TLSNegotiatedProtocol         string `json:"tls_negotiated_protocol"`
	TLSNegotiatedProtocolIsMutual bool   `json:"tls_negotiated_protocol_is_mutual"`
	NodeTopologyRegion            string `json:"node_topology_region,omitempty"`
	NodeTopologyZone              string `json:"node_topology_zone,omitempty"`
	TopologyRegion                string `json:"topology_region,omitempty"`
	TopologyZone                  string `json:"topology_zone,omitempty"`
}

// E2eLatency is an e2e_processing_latency object. On one node each
// percentile has its value (and min = max = average = value); aggregated
// over nodes it has count, min, max and average but no value.
type E2eLatency struct {
	Count       int64           `json:"count"`
	Percentiles []E2ePercentile `json:"percentiles"`
	Topic       string          `json:"topic"`
	Channel     string          `json:"channel"`
	Host        string          `json:"host"`
}

// E2ePercentile is one quantile of an E2eLatency, in nanoseconds.
type E2ePercentile struct {
	Quantile float64  `json:"quantile"`
	Value    *float64 `json:"value,omitempty"`
	Count    int64    `json:"count"`
	Min      float64  `json:"min"`
	Max      float64  `json:"max"`
	Average  float64  `json:"average"`
}

// ChannelCount is one value of GET /api/counter: the messages a channel on
// one node has received.
type ChannelCount struct {
	Node         string `json:"node"`
	TopicName    string `json:"topic_name"`
	ChannelName  string `json:"channel_name"`
	MessageCount int64  `json:"message_count"`
}

// The upstream responses, decoded into our own types so nsqadmin does not
// depend on the daemons' packages.

type nsqdStats struct {
	Version string      `json:"version"`
	Health  string      `json:"health"`
	Topics  []nsqdTopic `json:"topics"`
	Memory  *nsqdMemory `json:"memory"`
	// Replication is set by a replica (docs/replication.md): the parts of
	// its set view the aggregates need.
	Replication *nsqdReplication `json:"replication"`
}

type nsqdReplication struct {
	ID       string `json:"id"`
	Role     string `json:"role"`
	LeaderID string `json:"leader_id"`
	Term     uint64 `json:"term"`
}

type nsqdMemory struct {
	HeapObjects    uint64 `json:"heap_objects"`
	HeapInUseBytes uint64 `json:"heap_in_use_bytes"`
	GCTotalRuns    uint64 `json:"gc_total_runs"`
}

type nsqdTopic struct {
	TopicName    string        `json:"topic_name"`
	Channels     []nsqdChannel `json:"channels"`
	Depth        int64         `json:"depth"`
	BackendDepth int64         `json:"backend_depth"`
	BackendSkipped
	MessageCount int64   `json:"message_count"`
	Paused       bool    `json:"paused"`
	E2e          nsqdE2e `json:"e2e_processing_latency"`
}

type nsqdChannel struct {
	ChannelName  string `json:"channel_name"`
	Depth        int64  `json:"depth"`
	BackendDepth int64  `json:"backend_depth"`
	BackendSkipped
	InFlightCount       int64        `json:"in_flight_count"`
	DeferredCount       int64        `json:"deferred_count"`
	MessageCount        int64        `json:"message_count"`
	ZoneLocalMsgCount   int64        `json:"zone_local_msg_count"`
	RegionLocalMsgCount int64        `json:"region_local_msg_count"`
	GlobalMsgCount      int64        `json:"global_msg_count"`
	RequeueCount        int64        `json:"requeue_count"`
	TimeoutCount        int64        `json:"timeout_count"`
	ClientCount         int          `json:"client_count"`
	Clients             []nsqdClient `json:"clients"`
	Paused              bool         `json:"paused"`
	E2e                 nsqdE2e      `json:"e2e_processing_latency"`
	// Limits and dead letters (not in NSQ's nsqd; absent there).
	Config            *ChannelLimits `json:"config"`
	DeadLetteredCount int64          `json:"dead_lettered_count"`
	RejectedCount     int64          `json:"rejected_count"`
	DroppedCount      int64          `json:"dropped_count"`
	ExpiredCount      int64          `json:"expired_count"`
}

type nsqdClient struct {
	ClientID                      string `json:"client_id"`
	Hostname                      string `json:"hostname"`
	Version                       string `json:"version"`
	RemoteAddress                 string `json:"remote_address"`
	ReadyCount                    int64  `json:"ready_count"`
	InFlightCount                 int64  `json:"in_flight_count"`
	MessageCount                  int64  `json:"message_count"`
	FinishCount                   int64  `json:"finish_count"`
	RequeueCount                  int64  `json:"requeue_count"`
	ConnectTS                     int64  `json:"connect_ts"`
	SampleRate                    int32  `json:"sample_rate"`
	Deflate                       bool   `json:"deflate"`
	Snappy                        bool   `json:"snappy"`
	UserAgent                     string `json:"user_agent"`
	Authed                        bool   `json:"authed"`
	AuthIdentity                  string `json:"auth_identity"`
	AuthIdentityURL               string `json:"auth_identity_url"`
	TopologyZone                  string `json:"topology_zone"`
	TopologyRegion                string `json:"topology_region"`
	TLS                           bool   `json:"tls"`
	CipherSuite                   string `json:"tls_cipher_suite"`
	TLSVersion                    string `json:"tls_version"`
	TLSNegotiatedProtocol         string `json:"tls_negotiated_protocol"`
	TLSNegotiatedProtocolIsMutual bool   `json:"tls_negotiated_protocol_is_mutual"`
}

type nsqdE2e struct {
	Count       int64 `json:"count"`
	Percentiles []struct {
		Quantile float64 `json:"quantile"`
		Value    float64 `json:"value"`
	} `json:"percentiles"`
}

type nsqdInfo struct {
	Version          string `json:"version"`
	BroadcastAddress string `json:"broadcast_address"`
	Hostname         string `json:"hostname"`
	HTTPPort         int    `json:"http_port"`
	TCPPort          int    `json:"tcp_port"`
	TopologyZone     string `json:"topology_zone"`
	TopologyRegion   string `json:"topology_region"`
}

type lookupdProducer struct {
	RemoteAddress    string   `json:"remote_address"`
	Hostname         string   `json:"hostname"`
	BroadcastAddress string   `json:"broadcast_address"`
	TCPPort          int      `json:"tcp_port"`
	HTTPPort         int      `json:"http_port"`
	Version          string   `json:"version"`
	TopologyZone     string   `json:"topology_zone"`
	TopologyRegion   string   `json:"topology_region"`
	Tombstones       []bool   `json:"tombstones"`
	Topics           []string `json:"topics"`
}

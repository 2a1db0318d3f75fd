package main

import (
	"cmp"
	"crypto/tls"
	"flag"
	"slices"
	"strconv"
	"strings"

	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/nsqd"
)

// nsqdFlagSet defines every nsqd flag, NSQ's names with defaults taken from
// opts (nsqd.NewOptions). Parsing the set does not change opts: the flags keep
// their own values, which options.Resolve then merges with the config file.
// The set is ContinueOnError; main turns errors into NSQ's exit codes.
func nsqdFlagSet(opts *nsqd.Options) *flag.FlagSet {
	fs := flag.NewFlagSet("nsqd", flag.ContinueOnError)

	// Not options: handled by main or kept for old command lines.
	fs.Bool("version", false, "print the version and exit")
	fs.String("config", "", "path to a TOML config file")
	fs.Bool("verbose", false, "[deprecated] no effect; use --log-level")
	fs.Bool("worker-id", false, "[deprecated] no effect; use --node-id")

	logLevel := opts.LogLevel
	fs.Var(&logLevel, "log-level", "log verbosity: debug, info, warn, error or fatal")
	fs.String("log-prefix", opts.LogPrefix, "text put at the start of every log line")
	fs.Int64("node-id", opts.ID, "this node's part of message IDs, in [0,1024), a hash of the hostname unless set")
	fs.String("data-path", opts.DataPath, "directory for disk-backed queues and metadata (default: the current directory)")

	// Listeners and what is announced to nsqlookupd.
	fs.String("tcp-address", opts.TCPAddress, "<addr>:<port> or unix socket path to listen on for TCP clients")
	fs.String("http-address", opts.HTTPAddress, "<addr>:<port> or unix socket path to listen on for HTTP clients (empty: no HTTP)")
	fs.String("https-address", opts.HTTPSAddress, "<addr>:<port> or unix socket path to listen on for HTTPS clients when a TLS cert and key are set (empty: no HTTPS)")
	fs.String("broadcast-address", opts.BroadcastAddress, "address registered with nsqlookupd, the OS hostname unless set")
	fs.Int("broadcast-tcp-port", opts.BroadcastTCPPort, "TCP port registered with nsqlookupd (default: the port actually bound)")
	fs.Int("broadcast-http-port", opts.BroadcastHTTPPort, "HTTP port registered with nsqlookupd (default: the port actually bound)")
	fs.Var(stringList(opts.NSQLookupdTCPAddresses), "lookupd-tcp-address", "nsqlookupd TCP address to register with (repeatable)")
	fs.Var(stringList(opts.AuthHTTPAddresses), "auth-http-address", "auth server as <addr>:<port> or a full URL (repeatable)")
	fs.String("auth-http-request-method", opts.AuthHTTPRequestMethod, "HTTP method of auth server requests: get or post")
	fs.Duration("http-client-connect-timeout", opts.HTTPClientConnectTimeout, "connect timeout of outbound HTTP requests (nsqlookupd, auth)")
	fs.Duration("http-client-request-timeout", opts.HTTPClientRequestTimeout, "total timeout of outbound HTTP requests (nsqlookupd, auth)")

	// Disk-backed queues.
	fs.Int64("mem-queue-size", opts.MemQueueSize, "messages kept in memory per topic and per channel before spilling to disk (0: disk only)")
	fs.Int64("max-bytes-per-file", opts.MaxBytesPerFile, "size in bytes at which a queue file is rolled")
	fs.Int64("sync-every", opts.SyncEvery, "fsync a disk queue after this many reads and writes")
	fs.Duration("sync-timeout", opts.SyncTimeout, "fsync an active disk queue at least this often")
	fs.Bool("durable", opts.Durable, "fsync every publish to a non-ephemeral topic before answering OK and journal in-flight and deferred messages, so nothing acknowledged is lost on a crash or power loss (not in NSQ)")
	fs.String("replication-address", opts.ReplicationAddress, "<addr>:<port> of this replica's raft transport; set to run as one replica of --replication-peers (not in NSQ)")
	fs.String("replication-peers", opts.ReplicationPeers, "the replica set as ID@<addr>:<port>,... (raft addresses, this replica included); a set whose data paths are empty bootstraps itself (not in NSQ)")
	fs.String("replication-id", opts.ReplicationID, "this replica's ID in --replication-peers (default: --node-id) (not in NSQ)")
	fs.Int64("min-free-disk-bytes", opts.MinFreeDiskBytes, "refuse publishes to non-ephemeral topics while the data path has less free space than this (0 = no limit; not in NSQ)")

	// Bounded queues, TTL and dead letters (not in NSQ).
	fs.Int64("max-topic-depth", opts.MaxTopicDepth, "most messages (queued and deferred) a topic may hold while it has no channel or is paused (0 = no limit; not in NSQ)")
	fs.Int64("max-topic-bytes", opts.MaxTopicBytes, "most body bytes a topic may hold while it has no channel or is paused (0 = no limit; not in NSQ)")
	fs.Int64("max-channel-depth", opts.MaxChannelDepth, "most messages (queued and deferred, not in flight) each channel may hold (0 = no limit; not in NSQ)")
	fs.Int64("max-channel-bytes", opts.MaxChannelBytes, "most body bytes (queued and deferred) each channel may hold (0 = no limit; not in NSQ)")
	fs.String("overflow", opts.Overflow, "what a full topic or channel does: reject (publishes fail with E_PUB_FAILED/HTTP 503) or drop-oldest (counted; channels only) (not in NSQ)")
	fs.Duration("msg-ttl", opts.MsgTTL, "drop queued messages older than this instead of delivering them (0 = never; not in NSQ)")
	fs.Int64("max-attempts", opts.MaxAttempts, "a delivery at this attempt that is requeued or times out goes to the channel's dead-letter topic (0 = off; not in NSQ)")

	// Queue scanning.
	fs.Int("queue-scan-selection-count", opts.QueueScanSelectionCount, "channels examined per scan cycle for in-flight and deferred timeouts")
	fs.Int("queue-scan-worker-pool-max", opts.QueueScanWorkerPoolMax, "most workers processing in-flight and deferred timeouts at once")

	// Messages and commands.
	fs.Duration("msg-timeout", opts.MsgTimeout, "time a client has to finish a message before it is requeued, unless it asks for another")
	fs.Duration("max-msg-timeout", opts.MaxMsgTimeout, "longest message timeout a client may ask for")
	fs.Int64("max-msg-size", opts.MaxMsgSize, "largest message in bytes")
	fs.Int64("max-body-size", opts.MaxBodySize, "largest command body in bytes (IDENTIFY, AUTH, MPUB)")
	fs.Duration("max-req-timeout", opts.MaxReqTimeout, "longest requeue or publish delay")

	// Limits on what clients may negotiate.
	fs.Duration("max-heartbeat-interval", opts.MaxHeartbeatInterval, "longest heartbeat interval a client may ask for")
	fs.Int64("max-rdy-count", opts.MaxRdyCount, "largest RDY count a client may send")
	fs.Int64("max-output-buffer-size", opts.MaxOutputBufferSize, "largest output buffer in bytes a client may ask for")
	fs.Duration("max-output-buffer-timeout", opts.MaxOutputBufferTimeout, "longest flush interval a client may ask for")
	fs.Duration("min-output-buffer-timeout", opts.MinOutputBufferTimeout, "shortest flush interval a client may ask for")
	fs.Duration("output-buffer-timeout", opts.OutputBufferTimeout, "flush interval of clients that do not ask for one")
	fs.Int("max-channel-consumers", opts.MaxChannelConsumers, "most consumers per channel on this nsqd (0: no limit)")

	// statsd.
	fs.String("statsd-address", opts.StatsdAddress, "UDP <addr>:<port> of a statsd daemon to push stats to (empty: off)")
	fs.String("statsd-prefix", opts.StatsdPrefix, "prefix of statsd keys; %s becomes this node's <broadcast-address>_<http-port>")
	fs.Duration("statsd-interval", opts.StatsdInterval, "time between two pushes to statsd")
	fs.Bool("statsd-mem-stats", opts.StatsdMemStats, "also push memory and GC stats to statsd")
	fs.Int("statsd-udp-packet-size", opts.StatsdUDPPacketSize, "largest statsd UDP packet in bytes")
	fs.Bool("statsd-exclude-ephemeral", opts.StatsdExcludeEphemeral, "leave ephemeral topics and channels out of statsd")

	// End-to-end processing latency.
	percentiles := floatList(slices.Clone(opts.E2EProcessingLatencyPercentiles))
	fs.Var(&percentiles, "e2e-processing-latency-percentile", "latency percentile to track, in (0,1]; repeatable or comma separated, e.g. 1.0,0.99,0.95")
	fs.Duration("e2e-processing-latency-window-time", opts.E2EProcessingLatencyWindowTime, "time window the latency percentiles are computed over")

	// TLS.
	fs.String("tls-cert", opts.TLSCert, "path to the TLS certificate file")
	fs.String("tls-key", opts.TLSKey, "path to the TLS key file")
	fs.String("tls-client-auth-policy", opts.TLSClientAuthPolicy, "client certificate policy, require or require-verify (implies --tls-required)")
	fs.String("tls-root-ca-file", opts.TLSRootCAFile, "path to the CA file for client certificates and auth server HTTPS")
	tlsReq := tlsRequiredFlag(opts.TLSRequired)
	fs.Var(&tlsReq, "tls-required", "require TLS from clients: true, false or tcp-https (TLS for TCP, HTTP allowed)")
	tlsMin := tlsMinVersionFlag(opts.TLSMinVersion)
	fs.Var(&tlsMin, "tls-min-version", "oldest TLS version accepted: tls1.0, tls1.1, tls1.2 or tls1.3")

	// Compression.
	fs.Bool("deflate", opts.DeflateEnabled, "let clients negotiate deflate compression")
	fs.Int("max-deflate-level", opts.MaxDeflateLevel, "highest deflate level a client may ask for, 1..9 (higher costs more CPU)")
	fs.Bool("snappy", opts.SnappyEnabled, "let clients negotiate snappy compression")

	// Drain and peek (not in NSQ).
	fs.String("sigterm-mode", opts.SigtermMode, "what SIGTERM does: shutdown (persist what is queued and exit, as NSQ) or drain (refuse publishes, let consumers empty every channel, then exit; a second SIGTERM or a SIGINT shuts down at once) (not in NSQ)")
	fs.Duration("drain-timeout", opts.DrainTimeout, "longest a drain waits for consumers to empty the channels before a clean shutdown that keeps what is left (0 = no limit; not in NSQ)")
	fs.Bool("enable-peek", opts.EnablePeek, "serve GET /channel/peek and /topic/peek, which show queued message bodies (not in NSQ)")

	// Topology-aware consumption.
	fs.String("topology-region", opts.TopologyRegion, "region of this nsqd, for topology-aware consumption")
	fs.String("topology-zone", opts.TopologyZone, "availability zone of this nsqd, for topology-aware consumption")
	fs.Var(stringList(opts.Experiments), "enable-experiment", "experimental feature to turn on (repeatable): topology-aware-consumption")

	return fs
}

// stringList returns a repeatable flag starting from a copy of def.
func stringList(def []string) *options.StringList {
	l := options.StringList(slices.Clone(def))
	return &l
}

// floatList is --e2e-processing-latency-percentile: repeatable, each value a
// comma-separated list, the whole kept sorted from highest to lowest as NSQ
// does. Its Get returns a []float64 (nil when never given).
type floatList []float64

func (l *floatList) Set(s string) error {
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return err
		}
		*l = append(*l, v)
	}
	slices.SortFunc(*l, func(a, b float64) int { return cmp.Compare(b, a) })
	return nil
}

func (l *floatList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}

func (l *floatList) Get() any { return []float64(*l) }

// tlsRequiredFlag is --tls-required. It is a bool flag for the flag package,
// so a bare -tls-required means true; tcp-https must be given with '='.
// Its Get returns the int stored in nsqd.Options.TLSRequired.
type tlsRequiredFlag int

func (t *tlsRequiredFlag) Set(s string) error {
	v, err := options.ParseTLSRequired(s)
	if err != nil {
		return err
	}
	*t = tlsRequiredFlag(v)
	return nil
}

func (t *tlsRequiredFlag) String() string {
	switch *t {
	case nsqd.TLSRequiredExceptHTTP:
		return "tcp-https"
	case nsqd.TLSRequired:
		return "true"
	}
	return "false"
}

func (t *tlsRequiredFlag) Get() any { return int(*t) }

func (t *tlsRequiredFlag) IsBoolFlag() bool { return true }

// tlsMinVersionFlag is --tls-min-version; an empty value keeps the default.
// Its Get returns the crypto/tls version number.
type tlsMinVersionFlag uint16

func (t *tlsMinVersionFlag) Set(s string) error {
	if s == "" {
		return nil
	}
	v, err := options.ParseTLSMinVersion(s)
	if err != nil {
		return err
	}
	*t = tlsMinVersionFlag(v)
	return nil
}

func (t *tlsMinVersionFlag) String() string {
	switch uint16(*t) {
	case tls.VersionTLS10:
		return "tls1.0"
	case tls.VersionTLS11:
		return "tls1.1"
	case tls.VersionTLS12:
		return "tls1.2"
	case tls.VersionTLS13:
		return "tls1.3"
	}
	return strconv.Itoa(int(*t))
}

func (t *tlsMinVersionFlag) Get() any { return uint16(*t) }

package nsqd

import (
	"crypto/md5"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nsqclone/nsq/internal/nsqlog"
)

// TLSRequired values, numbered as GET /config/tls_required reports them.
const (
	TLSNotRequired        = 0
	TLSRequiredExceptHTTP = 1 // --tls-required=tcp-https
	TLSRequired           = 2 // --tls-required=true
)

// Options configures an nsqd. The struct tags name the command-line flag and,
// where it is not the flag name with '_' for '-', the config-file key; they
// are read by go-options (internal/options) and by GET /config/:opt.
// Options are read-only once New has been called.
type Options struct {
	ID        int64        `flag:"node-id" cfg:"id"`
	LogLevel  nsqlog.Level `flag:"log-level"`
	LogPrefix string       `flag:"log-prefix"`
	// Logger receives every log line; nil means a logger built from
	// LogLevel and LogPrefix writing to stderr.
	Logger *slog.Logger

	TCPAddress               string        `flag:"tcp-address"`
	HTTPAddress              string        `flag:"http-address"`
	HTTPSAddress             string        `flag:"https-address"`
	BroadcastAddress         string        `flag:"broadcast-address"`
	BroadcastTCPPort         int           `flag:"broadcast-tcp-port"`
	BroadcastHTTPPort        int           `flag:"broadcast-http-port"`
	NSQLookupdTCPAddresses   []string      `flag:"lookupd-tcp-address" cfg:"nsqlookupd_tcp_addresses"`
	AuthHTTPAddresses        []string      `flag:"auth-http-address" cfg:"auth_http_addresses"`
	AuthHTTPRequestMethod    string        `flag:"auth-http-request-method"`
	HTTPClientConnectTimeout time.Duration `flag:"http-client-connect-timeout"`
	HTTPClientRequestTimeout time.Duration `flag:"http-client-request-timeout"`

	// Disk queues.
	DataPath        string        `flag:"data-path"`
	MemQueueSize    int64         `flag:"mem-queue-size"`
	MaxBytesPerFile int64         `flag:"max-bytes-per-file"`
	SyncEvery       int64         `flag:"sync-every"`
	SyncTimeout     time.Duration `flag:"sync-timeout"`
	// MinFreeDiskBytes refuses publishes to disk-backed topics while the
	// data path's file system has less free space (0 = no limit). Beyond NSQ.
	MinFreeDiskBytes int64 `flag:"min-free-disk-bytes"`
	// Durable makes every acknowledged publish to a non-ephemeral topic
	// survive a crash or power loss: messages go through the disk queues
	// (--mem-queue-size then applies to ephemeral topics and channels only),
	// are fsynced before the reply, and in-flight and deferred messages are
	// journaled. Not in NSQ.
	Durable bool `flag:"durable"`

	// Bounded queues, TTL and dead letters (limits.go); 0 = unlimited or
	// off, so the defaults are NSQ's. Topics and channels override them
	// with /topic/config and /channel/config. Not in NSQ.
	MaxTopicDepth   int64         `flag:"max-topic-depth"`
	MaxTopicBytes   int64         `flag:"max-topic-bytes"`
	MaxChannelDepth int64         `flag:"max-channel-depth"`
	MaxChannelBytes int64         `flag:"max-channel-bytes"`
	Overflow        string        `flag:"overflow"` // reject or drop-oldest
	MsgTTL          time.Duration `flag:"msg-ttl"`
	MaxAttempts     int64         `flag:"max-attempts"`

	// Replication (not in NSQ; see docs/replication.md). With
	// ReplicationAddress set, the daemon is one replica of the set listed
	// in ReplicationPeers ("ID@HOST:PORT,..."): non-ephemeral topics and
	// channels are the set's, a publish is answered OK once a quorum has
	// it on disk. ReplicationID defaults to the node ID.
	ReplicationAddress string `flag:"replication-address"`
	ReplicationPeers   string `flag:"replication-peers"`
	ReplicationID      string `flag:"replication-id"`
	// raftTune, if set (tests), adjusts the replica's raft settings
	// (timeouts) after the defaults; no flag sets it.
	raftTune func(*raft.Config)

	// Queue scanning. NSQ samples channels; we scan every client and channel
	// with pending timers each QueueScanInterval, so only the interval is used.
	QueueScanInterval       time.Duration
	QueueScanSelectionCount int `flag:"queue-scan-selection-count"`
	QueueScanWorkerPoolMax  int `flag:"queue-scan-worker-pool-max"`

	// Messages and commands.
	MsgTimeout    time.Duration `flag:"msg-timeout"`
	MaxMsgTimeout time.Duration `flag:"max-msg-timeout"`
	MaxMsgSize    int64         `flag:"max-msg-size"`
	MaxBodySize   int64         `flag:"max-body-size"`
	MaxReqTimeout time.Duration `flag:"max-req-timeout"`
	// ClientTimeout is NSQ's fixed 60s; the default heartbeat is half of it.
	ClientTimeout time.Duration

	// Limits on what clients may ask for in IDENTIFY.
	MaxHeartbeatInterval   time.Duration `flag:"max-heartbeat-interval"`
	MaxRdyCount            int64         `flag:"max-rdy-count"`
	MaxOutputBufferSize    int64         `flag:"max-output-buffer-size"`
	MaxOutputBufferTimeout time.Duration `flag:"max-output-buffer-timeout"`
	MinOutputBufferTimeout time.Duration `flag:"min-output-buffer-timeout"`
	OutputBufferTimeout    time.Duration `flag:"output-buffer-timeout"`
	MaxChannelConsumers    int           `flag:"max-channel-consumers"`

	// statsd.
	StatsdAddress          string        `flag:"statsd-address"`
	StatsdPrefix           string        `flag:"statsd-prefix"`
	StatsdInterval         time.Duration `flag:"statsd-interval"`
	StatsdMemStats         bool          `flag:"statsd-mem-stats"`
	StatsdUDPPacketSize    int           `flag:"statsd-udp-packet-size"`
	StatsdExcludeEphemeral bool          `flag:"statsd-exclude-ephemeral"`

	// End-to-end processing latency.
	E2EProcessingLatencyWindowTime  time.Duration `flag:"e2e-processing-latency-window-time"`
	E2EProcessingLatencyPercentiles []float64     `flag:"e2e-processing-latency-percentile" cfg:"e2e_processing_latency_percentiles"`

	// TLS.
	TLSCert             string `flag:"tls-cert"`
	TLSKey              string `flag:"tls-key"`
	TLSClientAuthPolicy string `flag:"tls-client-auth-policy"`
	TLSRootCAFile       string `flag:"tls-root-ca-file"`
	TLSRequired         int    `flag:"tls-required"`
	TLSMinVersion       uint16 `flag:"tls-min-version"`

	// Compression.
	DeflateEnabled  bool `flag:"deflate"`
	MaxDeflateLevel int  `flag:"max-deflate-level"`
	SnappyEnabled   bool `flag:"snappy"`

	// Drain and peek (beyond NSQ, see drain.go and peek.go). SigtermMode is
	// read by main: "shutdown" (NSQ's behaviour) or "drain".
	SigtermMode  string        `flag:"sigterm-mode"`
	DrainTimeout time.Duration `flag:"drain-timeout"`
	EnablePeek   bool          `flag:"enable-peek"`

	TopologyRegion string   `flag:"topology-region"`
	TopologyZone   string   `flag:"topology-zone"`
	Experiments    []string `flag:"enable-experiment" cfg:"enable_experiment"`
}

// NewOptions returns NSQ 1.3's defaults.
func NewOptions() *Options {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "localhost"
	}
	h := md5.Sum([]byte(hostname))
	return &Options{
		ID:        int64(crc32.ChecksumIEEE(h[:]) % 1024),
		LogLevel:  nsqlog.Info,
		LogPrefix: "[nsqd] ",

		TCPAddress:               "0.0.0.0:4150",
		HTTPAddress:              "0.0.0.0:4151",
		HTTPSAddress:             "0.0.0.0:4152",
		BroadcastAddress:         hostname,
		AuthHTTPRequestMethod:    "get",
		HTTPClientConnectTimeout: 2 * time.Second,
		HTTPClientRequestTimeout: 5 * time.Second,

		MemQueueSize:    10000,
		MaxBytesPerFile: 100 * 1024 * 1024,
		SyncEvery:       2500,
		SyncTimeout:     2 * time.Second,
		Overflow:        OverflowReject,

		QueueScanInterval:       100 * time.Millisecond,
		QueueScanSelectionCount: 20,
		QueueScanWorkerPoolMax:  4,

		MsgTimeout:    60 * time.Second,
		MaxMsgTimeout: 15 * time.Minute,
		MaxMsgSize:    1024 * 1024,
		MaxBodySize:   5 * 1024 * 1024,
		MaxReqTimeout: time.Hour,
		ClientTimeout: 60 * time.Second,

		MaxHeartbeatInterval:   60 * time.Second,
		MaxRdyCount:            2500,
		MaxOutputBufferSize:    64 * 1024,
		MaxOutputBufferTimeout: 30 * time.Second,
		MinOutputBufferTimeout: 25 * time.Millisecond,
		OutputBufferTimeout:    250 * time.Millisecond,

		StatsdPrefix:        "nsq.%s",
		StatsdInterval:      60 * time.Second,
		StatsdMemStats:      true,
		StatsdUDPPacketSize: 508,

		E2EProcessingLatencyWindowTime: 10 * time.Minute,

		TLSMinVersion: tls.VersionTLS10,

		DeflateEnabled:  true,
		MaxDeflateLevel: 6,
		SnappyEnabled:   true,

		SigtermMode: SigtermShutdown,
		EnablePeek:  true,
	}
}

// Validate reports every problem with the options at once. It does no I/O.
func (o *Options) Validate() error {
	var errs []error
	if o.ID < 0 || o.ID >= 1024 {
		errs = append(errs, errors.New("--node-id must be [0,1024)"))
	}
	if o.MaxDeflateLevel < 1 || o.MaxDeflateLevel > 9 {
		errs = append(errs, errors.New("--max-deflate-level must be [1,9]"))
	}
	if o.AuthHTTPRequestMethod != "get" && o.AuthHTTPRequestMethod != "post" {
		errs = append(errs, errors.New("--auth-http-request-method must be post or get"))
	}
	for _, p := range o.E2EProcessingLatencyPercentiles {
		if p <= 0 || p > 1 {
			errs = append(errs, fmt.Errorf("invalid E2E processing latency percentile: %v", p))
		}
	}
	if o.TLSRequired != TLSNotRequired && (o.TLSCert == "" || o.TLSKey == "") {
		errs = append(errs, errors.New("cannot require TLS client connections without TLS key and cert"))
	}
	if o.MemQueueSize < 0 {
		errs = append(errs, errors.New("--mem-queue-size must be >= 0"))
	}
	if o.SigtermMode != SigtermShutdown && o.SigtermMode != SigtermDrain {
		errs = append(errs, fmt.Errorf("--sigterm-mode must be %s or %s, not %q", SigtermShutdown, SigtermDrain, o.SigtermMode))
	}
	if o.DrainTimeout < 0 {
		errs = append(errs, errors.New("--drain-timeout must be >= 0"))
	}
	errs = append(errs, o.validateLimits()...)
	if o.MaxMsgSize <= 0 || o.MaxBodySize <= 0 {
		errs = append(errs, errors.New("--max-msg-size and --max-body-size must be > 0"))
	}
	errs = append(errs, o.validateReplication())
	return errors.Join(errs...)
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	var w io.Writer = os.Stderr
	return nsqlog.New(w, o.LogPrefix, o.LogLevel.Slog())
}

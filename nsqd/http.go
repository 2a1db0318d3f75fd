package nsqd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/internal/version"
	"github.com/nsqclone/nsq/nsqd/replication"
)

// Errors of the HTTP API whose status and message are NSQ's.
var (
	errHTTPMissingTopic    = httpapi.Err(http.StatusBadRequest, "MISSING_ARG_TOPIC")
	errHTTPInvalidTopic    = httpapi.Err(http.StatusBadRequest, "INVALID_TOPIC")
	errHTTPInvalidArgTopic = httpapi.Err(http.StatusBadRequest, "INVALID_ARG_TOPIC")
	errHTTPMissingChannel  = httpapi.Err(http.StatusBadRequest, "MISSING_ARG_CHANNEL")
	errHTTPInvalidArgChan  = httpapi.Err(http.StatusBadRequest, "INVALID_ARG_CHANNEL")
	errHTTPTopicNotFound   = httpapi.Err(http.StatusNotFound, "TOPIC_NOT_FOUND")
	errHTTPChanNotFound    = httpapi.Err(http.StatusNotFound, "CHANNEL_NOT_FOUND")
	errHTTPExiting         = httpapi.Err(http.StatusServiceUnavailable, "EXITING")
	errHTTPPubFailed       = httpapi.Err(http.StatusInternalServerError, "PUB_FAILED")
	errHTTPMsgEmpty        = httpapi.Err(http.StatusBadRequest, "MSG_EMPTY")
	errHTTPMsgTooBig       = httpapi.Err(http.StatusRequestEntityTooLarge, "MSG_TOO_BIG")
	errHTTPBodyTooBig      = httpapi.Err(http.StatusRequestEntityTooLarge, "BODY_TOO_BIG")
	errHTTPInvalidDefer    = httpapi.Err(http.StatusBadRequest, "INVALID_DEFER")
	errHTTPInvalidOption   = httpapi.Err(http.StatusBadRequest, "INVALID_OPTION")
	errHTTPInvalidValue    = httpapi.Err(http.StatusBadRequest, "INVALID_VALUE")
	errHTTPValueTooBig     = httpapi.Err(http.StatusRequestEntityTooLarge, "INVALID_VALUE")

	// errHTTPBodyOverLimit is readBody's; callers answer their own 413.
	errHTTPBodyOverLimit = errors.New("body over limit")
)

// httpServer holds the handlers of nsqd's HTTP API (as NSQ documents it,
// https://nsq.io/components/nsqd.html).
type httpServer struct {
	n   *NSQD
	log *slog.Logger
}

// newHTTPHandler returns nsqd's HTTP API. With tlsRequiredHTTPSPort > 0 (the
// plain HTTP listener under --tls-required=true) every request is refused
// with 403 TLS_REQUIRED pointing at that HTTPS port instead.
func (n *NSQD) newHTTPHandler(tlsRequiredHTTPSPort int) http.Handler {
	if tlsRequiredHTTPSPort > 0 {
		return tlsRequiredHandler(tlsRequiredHTTPSPort)
	}
	s := &httpServer{n: n, log: n.logger}
	log := n.logger
	r := httpapi.NewRouter(log)
	logged := func(h httprouter.Handle) httprouter.Handle { return httpapi.Log(log, h) }

	r.GET("/ping", logged(httpapi.PlainText(log, s.ping)))
	r.GET("/info", logged(httpapi.V1(log, s.info)))
	r.GET("/stats", logged(httpapi.V1(log, s.stats)))
	metrics := n.metricsHandler()
	r.GET("/metrics", logged(func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) { metrics.ServeHTTP(w, req) }))

	// NSQ does not log publishes. /put and /mput are the pre-1.0 names,
	// kept as aliases because users' scripts still call them (a deliberate
	// difference from NSQ 1.3, which answers 404).
	pub, mpub := httpapi.V1(log, s.pub), httpapi.V1(log, s.mpub)
	r.POST("/pub", pub)
	r.POST("/put", pub)
	r.POST("/mpub", mpub)
	r.POST("/mput", mpub)

	r.POST("/topic/create", logged(httpapi.V1(log, s.topicCreate)))
	r.POST("/topic/delete", logged(httpapi.V1(log, s.topicDelete)))
	r.POST("/topic/empty", logged(httpapi.V1(log, s.topicEmpty)))
	r.POST("/topic/pause", logged(httpapi.V1(log, s.topicPause((*Topic).Pause))))
	r.POST("/topic/unpause", logged(httpapi.V1(log, s.topicPause((*Topic).Unpause))))

	topicConfig, channelConfig := logged(httpapi.V1(log, s.topicConfig)), logged(httpapi.V1(log, s.channelConfig))
	r.GET("/topic/config", topicConfig)
	r.POST("/topic/config", topicConfig)
	r.POST("/topic/redrive", logged(httpapi.V1(log, s.topicRedrive)))
	r.GET("/channel/config", channelConfig)
	r.POST("/channel/config", channelConfig)

	r.POST("/channel/create", logged(httpapi.V1(log, s.channelCreate)))
	r.POST("/channel/delete", logged(httpapi.V1(log, s.channelDelete)))
	r.POST("/channel/empty", logged(httpapi.V1(log, s.channelOp((*Channel).Empty, false))))
	r.POST("/channel/pause", logged(httpapi.V1(log, s.channelOp((*Channel).Pause, true))))
	r.POST("/channel/unpause", logged(httpapi.V1(log, s.channelOp((*Channel).Unpause, true))))

	if n.repl.Load() != nil {
		s.replicationRoutes(r, logged)
	}

	config := logged(httpapi.V1(log, s.config))
	r.GET("/config/:opt", config)
	r.PUT("/config/:opt", config)
	s.drainRoutes(r, logged) // drain_http.go; peek too

	r.HandlerFunc("GET", "/debug/pprof/", pprof.Index)
	r.HandlerFunc("GET", "/debug/pprof/cmdline", pprof.Cmdline)
	r.HandlerFunc("GET", "/debug/pprof/symbol", pprof.Symbol)
	r.HandlerFunc("POST", "/debug/pprof/symbol", pprof.Symbol)
	r.HandlerFunc("GET", "/debug/pprof/profile", pprof.Profile)
	for _, p := range []string{"heap", "goroutine", "block", "threadcreate"} {
		r.Handler("GET", "/debug/pprof/"+p, pprof.Handler(p))
	}
	// NSQ answers these two 500 after applying them (a quirk); we answer 200.
	r.PUT("/debug/setblockrate", logged(httpapi.PlainText(log, setBlockRate)))
	r.POST("/debug/freememory", logged(httpapi.PlainText(log, freeMemory)))
	return r
}

// tlsRequiredHandler refuses every request. NSQ's HTTP clients retry a 403 on
// https://<same host>:<https_port>. The body has NSQ's spacing.
func tlsRequiredHandler(httpsPort int) http.Handler {
	body := fmt.Appendf(nil, `{"message": "TLS_REQUIRED", "https_port": %d}`, httpsPort)
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("X-NSQ-Content-Type", "nsq; version=1.0")
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Content-Length", length)
		w.WriteHeader(http.StatusForbidden)
		w.Write(body)
	})
}

func (s *httpServer) ping(*http.Request, httprouter.Params) (string, error) {
	if err := s.n.Health(); err != nil {
		return "", httpapi.Err(http.StatusInternalServerError, "NOK - "+err.Error())
	}
	return "OK", nil
}

// nodeInfo is GET /info.
type nodeInfo struct {
	Version                string        `json:"version"`
	BroadcastAddress       string        `json:"broadcast_address"`
	Hostname               string        `json:"hostname"`
	HTTPPort               int           `json:"http_port"`
	TCPPort                int           `json:"tcp_port"`
	StartTime              int64         `json:"start_time"`
	MaxHeartbeatInterval   time.Duration `json:"max_heartbeat_interval"`
	MaxOutputBufferSize    int64         `json:"max_output_buffer_size"`
	MaxOutputBufferTimeout time.Duration `json:"max_output_buffer_timeout"`
	MaxDeflateLevel        int           `json:"max_deflate_level"`
	TopologyZone           string        `json:"topology_zone"`
	TopologyRegion         string        `json:"topology_region"`
	// Beyond NSQ, present only while the node drains.
	Draining     bool  `json:"draining,omitempty"`
	DrainStarted int64 `json:"drain_started,omitempty"` // Unix seconds
	// Replication is this replica's view of its set (not in NSQ).
	Replication *replication.Stats `json:"replication,omitempty"`
}

func (s *httpServer) info(*http.Request, httprouter.Params) (*nodeInfo, error) {
	hostname, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("hostname: %w", err)
	}
	o := s.n.opts
	var repl *replication.Stats
	if r := s.n.repl.Load(); r != nil {
		st := r.node.Stats()
		repl = &st
	}
	return &nodeInfo{
		Replication:            repl,
		Version:                version.Binary,
		BroadcastAddress:       o.BroadcastAddress,
		Hostname:               hostname,
		HTTPPort:               addrPort(s.n.HTTPAddr()),
		TCPPort:                addrPort(s.n.TCPAddr()),
		StartTime:              s.n.StartTime().Unix(),
		MaxHeartbeatInterval:   o.MaxHeartbeatInterval,
		MaxOutputBufferSize:    o.MaxOutputBufferSize,
		MaxOutputBufferTimeout: o.MaxOutputBufferTimeout,
		MaxDeflateLevel:        o.MaxDeflateLevel,
		TopologyZone:           o.TopologyZone,
		TopologyRegion:         o.TopologyRegion,
		Draining:               s.n.Draining(),
		DrainStarted:           s.n.drainStartedUnix(),
	}, nil
}

// addrPort is a TCP address's port, -1 for a unix socket or no listener.
func addrPort(a net.Addr) int {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.Port
	}
	return -1
}

// readBody reads a request body of at most limit bytes; a longer one is
// errHTTPBodyOverLimit, detected from Content-Length before reading when
// the client sent one.
func readBody(req *http.Request, limit int64) ([]byte, error) {
	if req.ContentLength > limit {
		return nil, errHTTPBodyOverLimit
	}
	if req.ContentLength >= 0 {
		// net/http stops the body at Content-Length: one exact allocation.
		b := make([]byte, req.ContentLength)
		if _, err := io.ReadFull(req.Body, b); err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, errHTTPBodyOverLimit
	}
	return b, nil
}

// getTopic returns the topic named by the query's topic parameter, creating
// it (/pub, /mpub, /topic/create).
func (s *httpServer) getTopic(q httpapi.Query) (*Topic, error) {
	name, ok := q.Get("topic")
	if !ok {
		return nil, errHTTPMissingTopic
	}
	if !protocol.IsValidTopicName(name) {
		return nil, errHTTPInvalidTopic
	}
	t, err := s.n.GetTopic(name)
	if err != nil {
		return nil, publishError(err)
	}
	return t, nil
}

// publishError maps a failed topic creation or publish: 503 EXITING when the
// topic (or nsqd) is exiting; 500 PUB_FAILED when the disk refused it (a
// full or read-only disk, --min-free-disk-bytes, a failed durable fsync),
// where NSQ also answers 503 EXITING although nothing is exiting.
func publishError(err error) error {
	if _, ok := errors.AsType[*QueueFullError](err); ok {
		return fmt.Errorf("%w: %w", errHTTPQueueFull, err)
	}
	if errors.Is(err, ErrDraining) {
		return fmt.Errorf("%w: %w", errHTTPDraining, err)
	}
	if errors.Is(err, replication.ErrNoQuorum) || errors.Is(err, replication.ErrNotLeader) {
		return fmt.Errorf("%w: %w", errHTTPNoQuorum, err)
	}
	if errors.Is(err, ErrExiting) {
		return fmt.Errorf("%w: %w", errHTTPExiting, err)
	}
	return fmt.Errorf("%w: %w", errHTTPPubFailed, err)
}

func (s *httpServer) pub(req *http.Request, _ httprouter.Params) (string, error) {
	body, err := readBody(req, s.n.opts.MaxMsgSize)
	switch {
	case errors.Is(err, errHTTPBodyOverLimit):
		return "", errHTTPMsgTooBig
	case err != nil:
		return "", err
	case len(body) == 0:
		return "", errHTTPMsgEmpty
	}
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return "", err
	}
	t, err := s.getTopic(q)
	if err != nil {
		return "", err
	}
	var deferred time.Duration
	if v, ok := q.Get("defer"); ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 || ms > s.n.opts.MaxReqTimeout.Milliseconds() {
			return "", errHTTPInvalidDefer
		}
		deferred = time.Duration(ms) * time.Millisecond
	}
	if err := t.Publish(body, deferred); err != nil {
		return "", publishError(err)
	}
	return "OK", nil
}

func (s *httpServer) mpub(req *http.Request, _ httprouter.Params) (string, error) {
	o := s.n.opts
	if req.ContentLength > o.MaxBodySize {
		return "", errHTTPBodyTooBig
	}
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return "", err
	}
	t, err := s.getTopic(q) // NSQ creates the topic before reading the body
	if err != nil {
		return "", err
	}
	binaryMode := false
	if v, ok := q.Get("binary"); ok {
		var known bool
		if binaryMode, known = httpapi.ParseBool(v); !known {
			s.log.Warn("HTTP: deprecated value used for /mpub binary param", "value", v)
		}
	}
	var bodies [][]byte
	if binaryMode {
		bodySize := o.MaxBodySize
		if req.ContentLength > 0 {
			bodySize = min(req.ContentLength, bodySize)
		}
		bodies, err = readMPUBMessages(io.LimitReader(req.Body, o.MaxBodySize), o.MaxMsgSize, o.MaxBodySize, bodySize)
		if pe, ok := errors.AsType[*protocol.Error](err); ok {
			// The TCP error code without its "E_": BAD_BODY, BAD_MESSAGE.
			return "", httpapi.Err(http.StatusRequestEntityTooLarge, strings.TrimPrefix(pe.Code, "E_"))
		}
	} else {
		bodies, err = readMPUBText(req.Body, o.MaxMsgSize, o.MaxBodySize)
	}
	if err != nil {
		return "", err
	}
	if len(bodies) > 0 {
		if err := t.PublishMulti(bodies); err != nil {
			return "", publishError(err)
		}
	}
	return "OK", nil
}

func mpubError(code string, err error, format string, args ...any) *protocol.Error {
	return &protocol.Error{Code: code, Desc: fmt.Sprintf(format, args...), Fatal: true, Err: err}
}

// readMPUBText reads a text MPUB body (at most maxBodySize bytes) and splits
// it into messages with splitMPUBText.
func readMPUBText(r io.Reader, maxMsgSize, maxBodySize int64) ([][]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxBodySize+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return splitMPUBText(body, maxMsgSize, maxBodySize)
}

// splitMPUBText splits a text MPUB body on '\n'. Empty lines are skipped and
// '\r' is kept, as NSQ does. Lines are checked in order, so a line over
// maxMsgSize (413 MSG_TOO_BIG) is reported if it ends before the body passes
// maxBodySize (413 BODY_TOO_BIG). The messages alias body.
func splitMPUBText(body []byte, maxMsgSize, maxBodySize int64) ([][]byte, error) {
	var msgs [][]byte
	var total int64
	for len(body) > 0 {
		line := body
		next := len(body)
		if i := slices.Index(body, '\n'); i >= 0 {
			line, next = body[:i], i+1
		}
		body = body[next:]
		total += int64(next)
		if total > maxBodySize {
			return nil, errHTTPBodyTooBig
		}
		if len(line) == 0 {
			continue
		}
		if int64(len(line)) > maxMsgSize {
			return nil, errHTTPMsgTooBig
		}
		msgs = append(msgs, line[:len(line):len(line)])
	}
	return msgs, nil
}

func (s *httpServer) stats(req *http.Request, _ httprouter.Params) (any, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return nil, err
	}
	format, _ := q.Get("format")
	topic, _ := q.Get("topic")
	channel, _ := q.Get("channel")
	st := s.n.Stats(topic, channel, q.Bool("include_clients", true))
	if q.Bool("include_mem", true) {
		st.Memory = readMemStats()
	}
	if format == "json" {
		return &st, nil
	}
	var b strings.Builder
	writeStatsText(&b, &st, s.n.StartTime(), time.Now())
	return b.String(), nil
}

// readMemStats returns the "memory" object of /stats: heap figures and the
// 100th, 99th and 95th percentile (nearest rank) of the last ≤256 GC pauses,
// in microseconds.
func readMemStats() *MemStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// PauseNs is a ring of the last 256 pauses; all entries are recent
	// ones once NumGC ≥ 256, the first NumGC before.
	pauses := slices.Clone(ms.PauseNs[:min(int(ms.NumGC), len(ms.PauseNs))])
	slices.Sort(pauses)
	return &MemStats{
		HeapObjects:       ms.HeapObjects,
		HeapIdleBytes:     ms.HeapIdle,
		HeapInUseBytes:    ms.HeapInuse,
		HeapReleasedBytes: ms.HeapReleased,
		GCPauseUsec100:    percentile(pauses, 1.00) / 1000,
		GCPauseUsec99:     percentile(pauses, 0.99) / 1000,
		GCPauseUsec95:     percentile(pauses, 0.95) / 1000,
		NextGCBytes:       ms.NextGC,
		GCTotalRuns:       ms.NumGC,
	}
}

// percentile is the value at rank round(q·n) of sorted (clamped to the last),
// 0 for no values.
func percentile(sorted []uint64, q float64) uint64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.5)
	return sorted[min(i, len(sorted)-1)]
}

func (s *httpServer) topicCreate(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	_, err = s.getTopic(q)
	return httpapi.Empty{}, err
}

// topicDelete does not validate the name: an invalid one is simply not found.
func (s *httpServer) topicDelete(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	name, ok := q.Get("topic")
	if !ok {
		return httpapi.Empty{}, errHTTPMissingTopic
	}
	err = s.n.DeleteExistingTopic(name)
	if errors.Is(err, ErrTopicNotFound) {
		return httpapi.Empty{}, errHTTPTopicNotFound
	}
	if err != nil {
		return httpapi.Empty{}, fmt.Errorf("delete topic %q: %w", name, err)
	}
	return httpapi.Empty{}, nil
}

func (s *httpServer) topicEmpty(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	name, ok := q.Get("topic")
	if !ok {
		return httpapi.Empty{}, errHTTPMissingTopic
	}
	if !protocol.IsValidTopicName(name) {
		return httpapi.Empty{}, errHTTPInvalidTopic
	}
	t, err := s.n.GetExistingTopic(name)
	if err != nil {
		return httpapi.Empty{}, errHTTPTopicNotFound
	}
	if err := t.Empty(); err != nil {
		return httpapi.Empty{}, fmt.Errorf("empty topic %q: %w", name, err)
	}
	return httpapi.Empty{}, nil
}

// topicPause returns the handler of /topic/pause or /topic/unpause (op). Like
// NSQ it does not validate the name, and it rewrites nsqd.dat at once.
func (s *httpServer) topicPause(op func(*Topic) error) func(*http.Request, httprouter.Params) (httpapi.Empty, error) {
	return func(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
		q, err := httpapi.ParseQuery(req)
		if err != nil {
			return httpapi.Empty{}, err
		}
		name, ok := q.Get("topic")
		if !ok {
			return httpapi.Empty{}, errHTTPMissingTopic
		}
		t, err := s.n.GetExistingTopic(name)
		if err != nil {
			return httpapi.Empty{}, errHTTPTopicNotFound
		}
		if err := op(t); err != nil {
			return httpapi.Empty{}, fmt.Errorf("%s topic %q: %w", req.URL.Path, name, err)
		}
		s.persistMetadata()
		return httpapi.Empty{}, nil
	}
}

// persistMetadata rewrites nsqd.dat after a pause or unpause. The change is
// made either way, so a failure is logged rather than answered.
func (s *httpServer) persistMetadata() {
	if err := s.n.PersistMetadata(); err != nil {
		s.log.Error("NSQ: failed to persist metadata", "err", err)
	}
}

// existingTopic validates the topic and channel parameters of the /channel/*
// endpoints, in NSQ's order, and returns the existing topic.
func (s *httpServer) existingTopic(req *http.Request) (*Topic, string, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return nil, "", err
	}
	topic, ok := q.Get("topic")
	if !ok {
		return nil, "", errHTTPMissingTopic
	}
	if !protocol.IsValidTopicName(topic) {
		return nil, "", errHTTPInvalidArgTopic
	}
	channel, ok := q.Get("channel")
	if !ok {
		return nil, "", errHTTPMissingChannel
	}
	if !protocol.IsValidChannelName(channel) {
		return nil, "", errHTTPInvalidArgChan
	}
	t, err := s.n.GetExistingTopic(topic)
	if err != nil {
		return nil, "", errHTTPTopicNotFound
	}
	return t, channel, nil
}

func (s *httpServer) channelCreate(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	t, channel, err := s.existingTopic(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	if _, err := t.GetChannel(channel); err != nil {
		if errors.Is(err, ErrExiting) {
			return httpapi.Empty{}, errHTTPExiting
		}
		if errors.Is(err, ErrDraining) {
			return httpapi.Empty{}, errHTTPDraining
		}
		return httpapi.Empty{}, fmt.Errorf("create channel %q: %w", channel, err)
	}
	return httpapi.Empty{}, nil
}

func (s *httpServer) channelDelete(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	t, channel, err := s.existingTopic(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	err = t.DeleteExistingChannel(channel)
	if errors.Is(err, ErrChannelNotFound) {
		return httpapi.Empty{}, errHTTPChanNotFound
	}
	if err != nil {
		return httpapi.Empty{}, fmt.Errorf("delete channel %q: %w", channel, err)
	}
	return httpapi.Empty{}, nil
}

// channelOp returns the handler of /channel/empty, /channel/pause or
// /channel/unpause (op); persist rewrites nsqd.dat after the change.
func (s *httpServer) channelOp(op func(*Channel) error, persist bool) func(*http.Request, httprouter.Params) (httpapi.Empty, error) {
	return func(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
		t, channel, err := s.existingTopic(req)
		if err != nil {
			return httpapi.Empty{}, err
		}
		c, err := t.GetExistingChannel(channel)
		if err != nil {
			return httpapi.Empty{}, errHTTPChanNotFound
		}
		if err := op(c); err != nil {
			return httpapi.Empty{}, fmt.Errorf("%s channel %q: %w", req.URL.Path, channel, err)
		}
		if persist {
			s.persistMetadata()
		}
		return httpapi.Empty{}, nil
	}
}

// config serves GET and PUT /config/:opt. PUT changes nsqlookupd_tcp_addresses
// (JSON array) or log_level (a level name); both answer the option's value as
// GET does. NSQ checks the body before the option's name.
func (s *httpServer) config(req *http.Request, ps httprouter.Params) (any, error) {
	opt := ps.ByName("opt")
	if opt == "drain" { // the RFC's spelling of PUT /state/drain
		return s.configDrain(req)
	}
	if req.Method == http.MethodPut {
		body, err := readBody(req, s.n.opts.MaxMsgSize)
		switch {
		case errors.Is(err, errHTTPBodyOverLimit):
			return nil, errHTTPValueTooBig
		case err != nil:
			return nil, err
		case len(body) == 0:
			return nil, errHTTPValueTooBig
		}
		switch opt {
		case "nsqlookupd_tcp_addresses":
			var addrs []string
			if err := json.Unmarshal(body, &addrs); err != nil {
				return nil, errHTTPInvalidValue
			}
			s.n.SetLookupdTCPAddresses(addrs)
		case "log_level":
			l, err := nsqlog.ParseLevel(string(body))
			if err != nil {
				return nil, errHTTPInvalidValue
			}
			s.n.SetLogLevel(l)
		default:
			return nil, errHTTPInvalidOption
		}
	}
	return s.configValue(opt)
}

// configValue is the current value of the option whose config-file key is
// key: strings as raw text, everything else as JSON (durations in
// nanoseconds, log_level and tls_required as integers, lists as arrays).
func (s *httpServer) configValue(key string) (any, error) {
	switch key {
	case "log_level":
		return s.n.LogLevel(), nil
	case "nsqlookupd_tcp_addresses":
		return nonNil(s.n.LookupdTCPAddresses()), nil
	case "statsd_prefix":
		return s.n.statsdPrefix(), nil
	}
	v, ok := options.Value(s.n.opts, key)
	if !ok {
		return nil, errHTTPInvalidOption
	}
	return v, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func setBlockRate(req *http.Request, _ httprouter.Params) (string, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return "", err
	}
	v, _ := q.Get("rate")
	rate, err := strconv.Atoi(v)
	if err != nil {
		return "", httpapi.Err(http.StatusBadRequest, "invalid block rate : "+err.Error())
	}
	runtime.SetBlockProfileRate(rate)
	return "", nil
}

func freeMemory(*http.Request, httprouter.Params) (string, error) {
	debug.FreeOSMemory()
	return "", nil
}

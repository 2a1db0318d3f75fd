package nsqd

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/nsqd/replication"
)

// Replication mode (--replication-address; docs/replication.md). The
// replicated state lives in package replication; this file connects it to
// the daemon:
//
//   - hooks: a publish to a non-ephemeral topic and every create, delete,
//     pause, unpause and empty of a non-ephemeral topic or channel become
//     log entries, proposed on the leader or forwarded to it over HTTP
//     (POST /replication/apply); FIN and REQ on the leader are reported
//     for Progress entries. Each hook is one n.repl nil check on paths
//     that are otherwise unchanged.
//   - replicaSet implements replication.Dispatcher: applied entries change
//     the daemon's topics and channels through the unhooked, local
//     methods (getTopic, getChannel, deleteTopic, ...), and the leader
//     queues what is to be delivered.

// replicaSet is the daemon's side of its replica set.
type replicaSet struct {
	n            *NSQD
	id           string
	node         *replication.Node
	client       *http.Client // forwards proposals to the leader
	applyTimeout time.Duration
	commit       prometheus.Histogram

	// dispatching mirrors the FSM's: set by Sync, read by the FIN/REQ hooks
	// and the relays without taking FSM.mu.
	dispatching atomic.Bool
	// relaySync serialises relay management with Sync; relays is written
	// under relaySync and relayMu, read under either (see
	// replication_relay.go).
	relaySync sync.Mutex
	relayMu   sync.RWMutex
	relays    map[relayKey]*relay
	// relayGen counts stopRelays calls and relayCancel aborts the dials of
	// the current syncRelays (both under relaySync): a relay dialled before
	// a Sync is never installed after it.
	relayGen    uint64
	relayCancel context.CancelFunc
	// relayTarget, when set (tests), replaces the leader's TCP address.
	relayTarget atomic.Pointer[string]
	// relayWarned is when a failed relay dial was last logged; relayLoop
	// only.
	relayWarned time.Time
	exit        chan struct{} // closed by close: stops relayLoop and tuneLoop
	wg          sync.WaitGroup
	// noLeaderSince is when this replica last saw no leader (zero while
	// one is known); only relayLoop uses it (checkLeader).
	noLeaderSince time.Time
	leaderGrace   time.Duration // replicationLeaderGrace; shorter in tests
	// lastHandOff is when a draining leader last asked for a leadership
	// transfer; drainLoop only (handOff).
	lastHandOff time.Time
	handOffs    int

	// relayWake (one pending signal) asks tuneLoop to tune the relays
	// after a local RDY (rdyChanged). relayQueueWait is relayQueueWait in
	// nanoseconds; 0 turns give-backs off (tests).
	relayWake      chan struct{}
	relayQueueWait atomic.Int64
}

const replicationApplyTimeout = 5 * time.Second

// replicationLeaderGrace is how long a replica may know no leader before
// the replication health condition is set: longer than an election with
// its retries, so a failover alone does not make /ping NOK.
const replicationLeaderGrace = 5 * time.Second

// validateReplication checks the --replication-* options.
func (o *Options) validateReplication() error {
	if o.ReplicationAddress == "" {
		if o.ReplicationPeers != "" || o.ReplicationID != "" {
			return errors.New("--replication-peers and --replication-id need --replication-address")
		}
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(o.ReplicationAddress); err != nil {
		errs = append(errs, fmt.Errorf("--replication-address: %w", err))
	}
	if o.Durable {
		errs = append(errs, errors.New("--durable and --replication-address cannot be combined: replication makes publishes durable on a quorum"))
	}
	peers, err := replication.ParsePeers(o.ReplicationPeers)
	if err != nil {
		errs = append(errs, fmt.Errorf("--replication-peers: %w", err))
	}
	id := o.replicationID()
	found := false
	for _, p := range peers {
		found = found || p.ID == id
	}
	if err == nil && !found {
		errs = append(errs, fmt.Errorf("--replication-peers must list this replica (ID %q)", id))
	}
	return errors.Join(errs...)
}

func (o *Options) replicationID() string {
	return cmp.Or(o.ReplicationID, strconv.FormatInt(o.ID, 10))
}

// openReplication joins the replica set: the derived queues of replicated
// topics and channels are emptied (the log is the truth and the leader
// refills them), then raft starts and replays the log.
func (n *NSQD) openReplication() error {
	peers, err := replication.ParsePeers(n.opts.ReplicationPeers)
	if err != nil {
		return err
	}
	r := &replicaSet{
		n:            n,
		id:           n.opts.replicationID(),
		applyTimeout: replicationApplyTimeout,
		client: &http.Client{
			Timeout: replicationApplyTimeout + time.Second,
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: n.opts.HTTPClientConnectTimeout}).DialContext,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     90 * time.Second,
			},
		},
		relays:        make(map[relayKey]*relay),
		relayWake:     make(chan struct{}, 1),
		exit:          make(chan struct{}),
		noLeaderSince: time.Now(),
		leaderGrace:   replicationLeaderGrace,
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nsq_replication_commit_seconds",
			Help:    "Time from proposing a log entry on the leader to its commit by a quorum and local apply.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
	}
	for _, t := range n.topicList() {
		if t.ephemeral {
			continue
		}
		t.empty()
		for _, c := range t.channelList() {
			if !c.ephemeral {
				c.empty()
			}
		}
	}
	// Limits resolve against the set's defaults (OpDefaults), none until
	// the log says; this replica's flags become them when it leads.
	n.limitDefaults.Store(&replication.Defaults{})
	n.refreshAllLimits()
	r.node, err = replication.Open(replication.Config{
		ID:          r.id,
		Address:     n.opts.ReplicationAddress,
		Peers:       peers,
		Dir:         filepath.Join(n.dataPath(), "raft"),
		ClientAddrs: r.clientAddrs(),
		Defaults:    n.opts.limitDefaults(),
		Logger:      n.logger,
		OnCommit:    func(d time.Duration) { r.commit.Observe(d.Seconds()) },
		Tune:        n.opts.raftTune,
	}, r)
	if err != nil {
		return fmt.Errorf("replication: %w", err)
	}
	r.relayQueueWait.Store(int64(relayQueueWait))
	n.logger.Info("REPLICATION: joined replica set", "id", r.id, "address", n.opts.ReplicationAddress, "peers", len(peers))
	n.repl.Store(r)
	r.wg.Go(func() { r.relayLoop(r.exit) })
	r.wg.Go(func() { r.tuneLoop(r.exit) })
	return nil
}

// clientAddrs is what followers forward to: the broadcast address with the
// TCP and HTTP ports.
func (r *replicaSet) clientAddrs() string {
	host := r.n.opts.BroadcastAddress
	return net.JoinHostPort(host, strconv.Itoa(addrPort(r.n.TCPAddr()))) + "," +
		net.JoinHostPort(host, strconv.Itoa(r.n.broadcastHTTPPort()))
}

// checkLeader sets the replication health condition once no leader has
// been known for leaderGrace (a quorum is lost: a leader that cannot reach
// one steps down), and clears it when a leader is known again. relayLoop
// calls it every relayInterval.
func (r *replicaSet) checkLeader(now time.Time) {
	if _, id := r.node.Raft().LeaderWithID(); id != "" {
		if !r.noLeaderSince.IsZero() {
			r.noLeaderSince = time.Time{}
			if r.n.health.failing(healthReplication) {
				r.n.logger.Info("REPLICATION: leader known again", "leader", id)
				r.n.health.clear(healthReplication)
			}
		}
		return
	}
	if r.noLeaderSince.IsZero() {
		r.noLeaderSince = now
		return
	}
	if d := now.Sub(r.noLeaderSince); d > r.leaderGrace {
		st := r.node.Stats()
		first := !r.n.health.failing(healthReplication)
		err := fmt.Errorf("no leader of the replica set known for %s (no quorum of %d reachable; role %s, term %d)",
			d.Truncate(time.Second), len(st.Peers)/2+1, st.Role, st.Term)
		r.n.health.fail(healthReplication, err)
		if first {
			r.n.logger.Error("REPLICATION: no leader", "err", err)
		}
	}
}

// close stops the relays, then leaves the set.
func (r *replicaSet) close() error {
	close(r.exit)
	r.wg.Wait()
	r.client.CloseIdleConnections()
	return r.node.Close()
}

// errNotProposed marks a forwarding failure after which the entry was
// certainly not proposed, so it may be sent again.
var errNotProposed = errors.New("not proposed")

// propose gets an encoded entry committed: on this replica if it leads,
// else through the leader. Until ApplyTimeout it waits for a leader to be
// known; once an entry may have been proposed, a failure is returned, not
// retried (a retry could duplicate it).
func (r *replicaSet) propose(data []byte) (index uint64, err error) {
	deadline := time.Now().Add(r.applyTimeout)
	for {
		index, _, err = r.node.ApplyEncoded(data)
		if !errors.Is(err, replication.ErrNotLeader) {
			return index, err
		}
		if addrs := r.node.LeaderClientAddrs(); addrs != "" {
			index, err = r.forward(addrs, data)
			if !errors.Is(err, errNotProposed) {
				return index, err
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%w: no leader reachable: %w", replication.ErrNoQuorum, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// applyResponse is the JSON of POST /replication/apply. Full is set when
// the entry was a publish that a full channel refused (committed, applied
// as a refusal on every replica).
type applyResponse struct {
	Index uint64                 `json:"index"`
	Full  *replication.FullError `json:"full,omitempty"`
}

// forward proposes an entry through the leader's HTTP API.
func (r *replicaSet) forward(addrs string, data []byte) (uint64, error) {
	_, httpAddr, ok := strings.Cut(addrs, ",")
	if !ok {
		return 0, fmt.Errorf("%w: bad leader address %q", errNotProposed, addrs)
	}
	resp, err := r.client.Post("http://"+httpAddr+"/replication/apply", "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		if ne, ok := errors.AsType[*net.OpError](err); ok && ne.Op == "dial" {
			return 0, fmt.Errorf("%w: %w", errNotProposed, err)
		}
		return 0, fmt.Errorf("%w: forward to %s: %w", replication.ErrNoQuorum, httpAddr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusOK {
		var ar applyResponse
		if err := json.Unmarshal(body, &ar); err != nil {
			return 0, fmt.Errorf("%w: forward to %s: %w", replication.ErrNoQuorum, httpAddr, err)
		}
		if ar.Full != nil {
			return ar.Index, ar.Full
		}
		return ar.Index, nil
	}
	if bytes.Contains(body, []byte("NOT_LEADER")) {
		return 0, fmt.Errorf("%w: %s is not the leader", errNotProposed, httpAddr)
	}
	return 0, fmt.Errorf("%w: leader %s answered %d %s", replication.ErrNoQuorum, httpAddr, resp.StatusCode, bytes.TrimSpace(body))
}

// publish replicates a publish to a non-ephemeral topic: it returns once a
// quorum has it.
func (r *replicaSet) publish(t *Topic, bodies [][]byte, deferred time.Duration) error {
	p := &replication.Publish{Topic: t.name, Timestamp: time.Now().UnixNano(), Bodies: bodies}
	if deferred > 0 {
		p.DeliverAt = p.Timestamp + int64(deferred)
	}
	_, err := r.propose(replication.AppendPublish(nil, p))
	return err
}

// meta replicates a topic or channel change and waits until this replica
// applied it, so the caller sees its effect locally.
func (r *replicaSet) meta(op replication.MetaOp, topic, channel string) error {
	return r.metaArg(op, topic, channel, "")
}

func (r *replicaSet) metaArg(op replication.MetaOp, topic, channel, arg string) error {
	index, err := r.propose(replication.AppendMeta(nil, &replication.Meta{Op: op, Topic: topic, Channel: channel, Arg: arg}))
	if err != nil {
		return err
	}
	return r.node.WaitApplied(index, r.applyTimeout)
}

// getTopic returns the topic, creating it through the log if needed.
func (r *replicaSet) getTopic(name string) (*Topic, error) {
	if t, err := r.n.GetExistingTopic(name); err == nil {
		return t, nil
	}
	if err := r.meta(replication.OpCreateTopic, name, ""); err != nil {
		return nil, err
	}
	return r.n.GetExistingTopic(name)
}

// getChannel returns the channel, creating it through the log if needed.
func (r *replicaSet) getChannel(t *Topic, name string) (*Channel, error) {
	if c, err := t.GetExistingChannel(name); err == nil {
		return c, nil
	}
	if err := r.meta(replication.OpCreateChannel, t.name, name); err != nil {
		return nil, err
	}
	t, err := r.n.GetExistingTopic(t.name)
	if err != nil {
		return nil, err
	}
	return t.GetExistingChannel(name)
}

// messageID turns an ID the set gave out back into its number.
func messageIDValue(id MessageID) (uint64, bool) {
	var b [8]byte
	if _, err := hex.Decode(b[:], id[:]); err != nil {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[:]), true
}

// finished reports a FIN: on the leader for the next Progress entry, on a
// follower up the channel's relay.
func (r *replicaSet) finished(c *Channel, m *Message) {
	if !r.dispatching.Load() {
		r.relayFinish(c, m.ID)
		return
	}
	if id, ok := messageIDValue(m.ID); ok {
		r.node.Finish(c.topicName, c.name, id)
	}
	if c.hasForgotten.Load() {
		c.unforget(m.ID)
	}
}

// requeued reports a REQ or timeout on the leader: attempts so far and when
// the message is due (0: now). On a follower REQs, timeouts and
// disconnects went up the relay before this (relayRequeue); what a
// follower still requeues locally was never delivered (its consumer left
// first) and stays its own.
func (r *replicaSet) requeued(c *Channel, m *Message) {
	if !r.dispatching.Load() {
		return
	}
	if id, ok := messageIDValue(m.ID); ok {
		r.node.Requeue(c.topicName, c.name, id, m.deadline, m.Attempts)
	}
}

// Dispatcher: called by the FSM with its lock held, in log order. Only
// local (unhooked) methods are used here: a hooked one would propose to the
// log from inside its apply and wait for itself.

// localTopic returns the topic, creating it locally (and registering it
// with nsqlookupd) if needed.
func (r *replicaSet) localTopic(name string) *Topic {
	if t, err := r.n.GetExistingTopic(name); err == nil {
		return t
	}
	t, err := r.n.getTopic(name, false)
	if err != nil {
		r.n.logger.Error("REPLICATION: failed to create topic", "topic", name, "err", err)
		return nil
	}
	r.n.topicCreated(t)
	return t
}

func (r *replicaSet) localChannel(topic, name string) *Channel {
	t := r.localTopic(topic)
	if t == nil {
		return nil
	}
	c, err := t.getChannel(name)
	if err != nil {
		r.n.logger.Error("REPLICATION: failed to create channel", "topic", topic, "channel", name, "err", err)
		return nil
	}
	return c
}

// ApplyMeta implements replication.Dispatcher.
func (r *replicaSet) ApplyMeta(m replication.Meta) {
	n := r.n
	var err error
	switch m.Op {
	case replication.OpCreateTopic:
		r.localTopic(m.Topic)
	case replication.OpCreateChannel:
		r.localChannel(m.Topic, m.Channel)
	case replication.OpDeleteTopic:
		if err = n.deleteTopic(m.Topic); errors.Is(err, ErrTopicNotFound) {
			err = nil
		}
	case replication.OpDefaults:
		r.applyDefaults(m.Arg)
	case replication.OpConfig:
		err = r.applyConfig(m.Topic, m.Channel, m.Arg)
	default:
		t, terr := n.GetExistingTopic(m.Topic)
		if terr != nil {
			return
		}
		switch m.Op {
		case replication.OpPauseTopic:
			t.pause()
		case replication.OpUnpauseTopic:
			t.unpause()
		case replication.OpEmptyTopic:
			err = t.empty()
		case replication.OpDeleteChannel:
			if err = t.deleteChannel(m.Channel); errors.Is(err, ErrChannelNotFound) {
				err = nil
			}
		default:
			c, cerr := t.GetExistingChannel(m.Channel)
			if cerr != nil {
				return
			}
			switch m.Op {
			case replication.OpPauseChannel:
				c.pause()
			case replication.OpUnpauseChannel:
				c.unpause()
			case replication.OpEmptyChannel:
				err = c.empty()
			}
		}
	}
	if err != nil {
		n.logger.Error("REPLICATION: failed to apply", "op", m.Op.String(), "topic", m.Topic, "channel", m.Channel, "err", err)
	}
}

// toMessages makes the daemon's messages from the set's.
func toMessages(msgs []replication.Message) []*Message {
	block := make([]Message, len(msgs))
	out := make([]*Message, len(msgs))
	for i, m := range msgs {
		c := &block[i]
		hexID(&c.ID, m.ID)
		c.Body, c.Timestamp, c.Attempts, c.deadline = m.Body, m.Timestamp, m.Attempts, m.DeliverAt
		out[i] = c
	}
	return out
}

// Deliver implements replication.Dispatcher: the leader queues a publish.
func (r *replicaSet) Deliver(topic string, msgs []replication.Message) {
	t := r.localTopic(topic)
	if t == nil {
		return
	}
	if err := t.put(toMessages(msgs)); err != nil && !errors.Is(err, ErrExiting) {
		t.log.Error("REPLICATION: failed to queue replicated messages", "count", len(msgs), "err", err)
	}
}

// Sync implements replication.Dispatcher: the daemon's replicated topics
// and channels become the set's; their queues are emptied and, on the new
// dispatcher, refilled with every unfinished message.
func (r *replicaSet) Sync(topics []replication.TopicView, dispatch bool) {
	n := r.n
	// Relays end first: their deliveries would mix with what is queued
	// below; relayLoop starts them again where needed (on a follower).
	r.dispatching.Store(dispatch)
	r.stopRelays()
	want := make(map[string]*replication.TopicView, len(topics))
	for i := range topics {
		want[topics[i].Name] = &topics[i]
	}
	for _, t := range n.topicList() {
		if !t.ephemeral && want[t.name] == nil {
			n.deleteTopic(t.name)
		}
	}
	for _, tv := range topics {
		t := r.localTopic(tv.Name)
		if t == nil {
			continue
		}
		if tv.Paused {
			t.pause()
		} else {
			t.unpause()
		}
		t.setOverrides("", parseOverrides(tv.Config))
		r.syncOrigins(t, tv.Origins)
		t.empty()
		wantCh := make(map[string]bool, len(tv.Channels))
		for _, cv := range tv.Channels {
			wantCh[cv.Name] = true
		}
		for _, c := range t.channelList() {
			if !c.ephemeral && !wantCh[c.name] {
				t.deleteChannel(c.name)
			}
		}
		for _, cv := range tv.Channels {
			c := r.localChannel(tv.Name, cv.Name)
			if c == nil {
				continue
			}
			if cv.Paused {
				c.pause()
			} else {
				c.unpause()
			}
			t.setOverrides(cv.Name, parseOverrides(cv.Config))
			c.empty()
			c.clearForgotten()
			if dispatch && len(cv.Messages) > 0 {
				if _, err := c.enqueue(toMessages(cv.Messages)); err != nil {
					c.log.Error("REPLICATION: failed to queue unfinished messages", "count", len(cv.Messages), "err", err)
				}
			}
		}
		if dispatch && len(tv.Messages) > 0 {
			if err := t.putBacklog(toMessages(tv.Messages)); err != nil {
				t.log.Error("REPLICATION: failed to queue the topic's messages", "count", len(tv.Messages), "err", err)
			}
		}
	}
	n.logger.Info("REPLICATION: synced topics and channels with the set", "topics", len(topics), "dispatching", dispatch)
}

// HTTP API of replication mode.

var (
	errHTTPNotLeader = httpapi.Err(http.StatusServiceUnavailable, "NOT_LEADER")
	errHTTPNoQuorum  = httpapi.Err(http.StatusServiceUnavailable, "NO_QUORUM")
	errHTTPBadEntry  = httpapi.Err(http.StatusBadRequest, "BAD_ENTRY")
	errHTTPMissingID = httpapi.Err(http.StatusBadRequest, "MISSING_ARG_ID")
)

// replicationRoutes adds GET /replication (the set as this replica sees
// it), POST /replication/apply (a follower's forwarded entry) and the
// membership calls (leader only): POST /replication/join?id=&address=,
// /replication/remove?id=, /replication/transfer-leadership[?id=].
func (s *httpServer) replicationRoutes(r *httprouter.Router, logged func(httprouter.Handle) httprouter.Handle) {
	log := s.log
	r.GET("/replication", logged(httpapi.V1(log, s.replicationShow)))
	r.POST("/replication/apply", httpapi.V1(log, s.replicationApply))
	r.POST("/replication/join", logged(httpapi.V1(log, s.replicationJoin)))
	r.POST("/replication/remove", logged(httpapi.V1(log, s.replicationRemove)))
	r.POST("/replication/transfer-leadership", logged(httpapi.V1(log, s.replicationTransfer)))
}

func (s *httpServer) replicationShow(*http.Request, httprouter.Params) (*replication.Stats, error) {
	st := s.n.repl.Load().node.Stats()
	return &st, nil
}

func (s *httpServer) replicationApply(req *http.Request, _ httprouter.Params) (*applyResponse, error) {
	data, err := readBody(req, s.n.opts.MaxBodySize+64<<10)
	if err != nil {
		return nil, errHTTPBadEntry
	}
	index, _, err := s.n.repl.Load().node.ApplyEncoded(data)
	if full, ok := errors.AsType[*replication.FullError](err); ok {
		return &applyResponse{Index: index, Full: full}, nil
	}
	if err != nil {
		return nil, replicationError(err)
	}
	return &applyResponse{Index: index}, nil
}

func replicationError(err error) error {
	switch {
	case errors.Is(err, replication.ErrNotLeader):
		return fmt.Errorf("%w: %w", errHTTPNotLeader, err)
	case errors.Is(err, replication.ErrNoQuorum):
		return fmt.Errorf("%w: %w", errHTTPNoQuorum, err)
	case errors.Is(err, replication.ErrBadEntry):
		return fmt.Errorf("%w: %w", errHTTPBadEntry, err)
	}
	return err
}

func (s *httpServer) replicationJoin(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	id, _ := q.Get("id")
	addr, _ := q.Get("address")
	if id == "" || addr == "" {
		return httpapi.Empty{}, httpapi.Err(http.StatusBadRequest, "MISSING_ARG_ID_OR_ADDRESS")
	}
	return httpapi.Empty{}, replicationError(s.n.repl.Load().node.AddVoter(id, addr))
}

func (s *httpServer) replicationRemove(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	id, _ := q.Get("id")
	if id == "" {
		return httpapi.Empty{}, errHTTPMissingID
	}
	return httpapi.Empty{}, replicationError(s.n.repl.Load().node.RemoveServer(id))
}

func (s *httpServer) replicationTransfer(req *http.Request, _ httprouter.Params) (httpapi.Empty, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return httpapi.Empty{}, err
	}
	id, _ := q.Get("id")
	return httpapi.Empty{}, replicationError(s.n.repl.Load().node.TransferLeadership(id))
}

// replicationCollector adds the replica's figures to /metrics.
type replicationCollector struct{ r *replicaSet }

var (
	descReplLeader      = prometheus.NewDesc("nsq_replication_leader", "1 while this replica leads its set and dispatches, else 0.", nil, nil)
	descReplTerm        = prometheus.NewDesc("nsq_replication_term", "Current raft term.", nil, nil)
	descReplCommitIndex = prometheus.NewDesc("nsq_replication_commit_index", "Highest log index known committed.", nil, nil)
	descReplApplied     = prometheus.NewDesc("nsq_replication_applied_index", "Highest log index applied here.", nil, nil)
	descReplLastIndex   = prometheus.NewDesc("nsq_replication_last_index", "Highest log index stored here.", nil, nil)
	descReplPeerContact = prometheus.NewDesc("nsq_replication_peer_last_contact_seconds",
		"Leader: how long a follower has failed heartbeats (0 while it answers); follower: time since the leader's last contact; -1 unknown.", []string{"peer"}, nil)
)

func (c replicationCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReplLeader, descReplTerm, descReplCommitIndex, descReplApplied, descReplLastIndex, descReplPeerContact} {
		ch <- d
	}
	c.r.commit.Describe(ch)
}

func (c replicationCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.node.Stats()
	gauge := prometheus.GaugeValue
	ch <- prometheus.MustNewConstMetric(descReplLeader, gauge, boolValue(st.Dispatching))
	ch <- prometheus.MustNewConstMetric(descReplTerm, gauge, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(descReplCommitIndex, gauge, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(descReplApplied, gauge, float64(st.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(descReplLastIndex, gauge, float64(st.LastIndex))
	for _, p := range st.Peers {
		v := float64(p.LastContactMS) / 1000
		if p.LastContactMS < 0 {
			v = -1
		}
		ch <- prometheus.MustNewConstMetric(descReplPeerContact, gauge, v, p.ID)
	}
	c.r.commit.Collect(ch)
}

package replication

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Peer is one replica of the set: its replica ID and raft address.
type Peer struct {
	ID      string
	Address string
}

// ParsePeers parses --replication-peers: "ID@HOST:PORT,ID@HOST:PORT,...".
func ParsePeers(s string) ([]Peer, error) {
	var peers []Peer
	seen := make(map[string]bool)
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		id, addr, ok := strings.Cut(f, "@")
		if !ok || id == "" {
			return nil, fmt.Errorf("replication peer %q is not ID@HOST:PORT", f)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("replication peer %q: %w", f, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("replication peer ID %q given twice", id)
		}
		seen[id] = true
		peers = append(peers, Peer{ID: id, Address: addr})
	}
	return peers, nil
}

// Config configures a Node.
type Config struct {
	ID      string // this replica's ID, one of Peers
	Address string // raft transport address to bind (HOST:PORT)
	// Advertise is the address the other replicas reach this one at;
	// default: this replica's address in Peers, else Address.
	Advertise string
	Peers     []Peer // the initial set, this replica included
	// Dir holds log/ (the raft log, logstore.go), raft.db (term and
	// vote, bolt) and snapshots/.
	// Empty: in-memory stores (tests).
	Dir string
	// ClientAddrs is what followers forward to once this replica leads:
	// "tcp-addr,http-addr" (recorded with an OpLeader entry).
	ClientAddrs string
	// Defaults are this replica's nsqd-wide limits: when it starts
	// leading, it records them as the set's (OpDefaults) if they differ.
	Defaults Defaults
	// ApplyTimeout bounds how long a proposal may wait to be enqueued
	// and committed; default 5s.
	ApplyTimeout time.Duration
	// ProgressInterval is how often FIN/REQ batches are proposed;
	// default 100ms.
	ProgressInterval time.Duration
	Logger           *slog.Logger
	// OnCommit, if set, is told how long each proposal took to commit
	// and apply.
	OnCommit func(time.Duration)

	// Tests: a transport (raft.InmemTransport) instead of TCP and raft
	// settings to override.
	Transport raft.Transport
	Tune      func(*raft.Config)
	// wrapLogs, if set, wraps the on-disk log store (commit benchmarks
	// time its calls).
	wrapLogs func(raft.LogStore) raft.LogStore
}

// Errors a proposal can end with. ErrNotLeader: ask the leader (see
// LeaderClientAddrs). ErrNoQuorum: the entry may or may not have been
// committed; it was not acknowledged and a retry may duplicate it, never
// lose it.
var (
	ErrNotLeader = errors.New("not the replication leader")
	ErrNoQuorum  = errors.New("no replication quorum")
)

// Node is one replica: a raft instance, its stores and the FSM.
type Node struct {
	cfg   Config
	log   *slog.Logger
	raft  *raft.Raft
	fsm   *FSM
	trans raft.Transport
	store *raftboltdb.BoltStore // term and vote; nil in memory
	logs  *logStore             // nil in memory

	progress *progressBatcher

	// peersMu guards peerFails; a leaf (Stats calls raft's getters under
	// it, which take only raft's own locks).
	peersMu   sync.Mutex
	peerFails map[raft.ServerID]time.Time // leader: peers failing heartbeats, since

	observer *raft.Observer
	obsCh    chan raft.Observation
	exit     chan struct{}
	wg       sync.WaitGroup
	closeErr error
	closed   sync.Once
}

// Open starts the replica: it opens (or creates) the stores, bootstraps the
// set from cfg.Peers when there is no raft state yet, and joins the
// elections. d receives what to deliver when this replica leads.
func Open(cfg Config, d Dispatcher) (*Node, error) {
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 5 * time.Second
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 100 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: log, fsm: NewFSM(d, log), exit: make(chan struct{}), peerFails: make(map[raft.ServerID]time.Time)}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = newHCLogger(log)
	rc.BatchApplyCh = true // proposals queue up to MaxAppendEntries for one log write
	rc.SnapshotThreshold = 65536
	rc.TrailingLogs = 20480
	if cfg.Tune != nil {
		cfg.Tune(rc)
	}

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
		err    error
	)
	if cfg.Dir == "" {
		s := raft.NewInmemStore()
		logs, stable, snaps = s, s, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("create raft directory: %w", err)
		}
		// raft.db (bolt) keeps the term and vote; before the log moved
		// to logStore it held the log too, migrated once here. No
		// freelist written on each commit (rebuilt by a scan on open).
		n.store, err = raftboltdb.New(raftboltdb.Options{
			Path:        filepath.Join(cfg.Dir, "raft.db"),
			BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
		})
		if err != nil {
			return nil, fmt.Errorf("open raft stable store: %w", err)
		}
		stable = n.store
		if n.logs, err = openLog(cfg.Dir, n.store, log); err != nil {
			n.store.Close()
			return nil, err
		}
		var store raft.LogStore = n.logs
		if cfg.wrapLogs != nil {
			store = cfg.wrapLogs(store)
		}
		// The leader sends recent entries to followers from memory
		// rather than reading them back from disk.
		if logs, err = raft.NewLogCache(1024, store); err != nil {
			n.closeStore()
			return nil, fmt.Errorf("raft log cache: %w", err)
		}
		if snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, rc.Logger); err != nil {
			n.closeStore()
			return nil, fmt.Errorf("open raft snapshots: %w", err)
		}
	}
	n.trans = cfg.Transport
	if n.trans == nil {
		advertise := cfg.Advertise
		for _, p := range cfg.Peers {
			if p.ID == cfg.ID && advertise == "" {
				advertise = p.Address
			}
		}
		adv, err := net.ResolveTCPAddr("tcp", cmp.Or(advertise, cfg.Address))
		if err != nil {
			n.closeStore()
			return nil, fmt.Errorf("replication address: %w", err)
		}
		if n.trans, err = raft.NewTCPTransportWithLogger(cfg.Address, adv, 3, 10*time.Second, rc.Logger); err != nil {
			n.closeStore()
			return nil, fmt.Errorf("replication transport: %w", err)
		}
	}
	fail := func(err error) (*Node, error) {
		if c, ok := n.trans.(interface{ Close() error }); ok && cfg.Transport == nil {
			c.Close()
		}
		n.closeStore()
		return nil, err
	}
	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fail(fmt.Errorf("read raft state: %w", err))
	}
	if !existing {
		var servers []raft.Server
		for _, p := range cfg.Peers {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
		}
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
			return fail(fmt.Errorf("bootstrap replica set: %w", err))
		}
		log.Info("REPLICATION: bootstrapped replica set", "peers", len(servers))
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, logs, stable, snaps, n.trans); err != nil {
		return fail(fmt.Errorf("start raft: %w", err))
	}
	n.progress = newProgressBatcher(n)
	n.obsCh = make(chan raft.Observation, 64)
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.observer)
	n.wg.Go(n.leadershipLoop)
	n.wg.Go(n.observeLoop)
	n.wg.Go(n.progress.loop)
	return n, nil
}

func (n *Node) closeStore() {
	if n.logs != nil {
		n.logs.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
}

// Close leaves the set's elections and closes the stores. Safe to call
// more than once.
func (n *Node) Close() error {
	n.closed.Do(func() {
		close(n.exit)
		// The loops end once what they wait for commits (the progress
		// loop's last flush, promote's barrier), which a leader whose
		// followers answer heartbeats but cannot store entries (full
		// disks) never sees: after ApplyTimeout raft shuts down under
		// them, which fails those futures.
		loops := make(chan struct{})
		go func() {
			n.wg.Wait()
			close(loops)
		}()
		var err error
		select {
		case <-loops:
		case <-time.After(n.cfg.ApplyTimeout):
			n.log.Warn("REPLICATION: proposals not committed on close, shutting raft down under them", "timeout", n.cfg.ApplyTimeout)
			err = n.raft.Shutdown().Error()
			<-loops
		}
		n.raft.DeregisterObserver(n.observer)
		err = errors.Join(err, n.raft.Shutdown().Error())
		if c, ok := n.trans.(interface{ Close() error }); ok && n.cfg.Transport == nil {
			err = errors.Join(err, c.Close())
		}
		if n.logs != nil {
			err = errors.Join(err, n.logs.Close())
		}
		if n.store != nil {
			err = errors.Join(err, n.store.Close())
		}
		n.closeErr = err
	})
	return n.closeErr
}

// FSM returns the replica's state machine.
func (n *Node) FSM() *FSM { return n.fsm }

// Raft returns the raft instance (stats, tests).
func (n *Node) Raft() *raft.Raft { return n.raft }

// leadershipLoop makes this replica the dispatcher once it leads and has
// applied everything committed before (a barrier), and stops it dispatching
// when it loses the lead.
func (n *Node) leadershipLoop() {
	leaderCh := n.raft.LeaderCh()
	for {
		select {
		case <-n.exit:
			return
		case isLeader := <-leaderCh:
			if !isLeader {
				if n.fsm.Dispatching() {
					n.log.Info("REPLICATION: lost the lead, stopping dispatch")
					n.fsm.setDispatch(false)
				}
				continue
			}
			n.promote(leaderCh)
		}
	}
}

// promote waits for the barrier, retrying while this replica still leads.
func (n *Node) promote(leaderCh <-chan bool) {
	for n.raft.State() == raft.Leader {
		if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
			n.log.Warn("REPLICATION: barrier after election failed", "err", err)
			select {
			case <-n.exit:
				return
			case isLeader := <-leaderCh:
				if !isLeader {
					return
				}
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		n.fsm.setDispatch(true)
		n.log.Info("REPLICATION: leading the set, dispatching", "term", n.raft.CurrentTerm())
		if n.cfg.ClientAddrs != "" {
			n.raft.Apply(AppendMeta(nil, &Meta{Op: OpLeader, Topic: n.cfg.ID, Arg: n.cfg.ClientAddrs}), n.cfg.ApplyTimeout)
		}
		if n.fsm.Defaults() != n.cfg.Defaults {
			n.log.Info("REPLICATION: recording this replica's limit flags as the set's", "defaults", n.cfg.Defaults.Encode())
			n.raft.Apply(AppendMeta(nil, &Meta{Op: OpDefaults, Arg: n.cfg.Defaults.Encode()}), n.cfg.ApplyTimeout)
		}
		return
	}
}

func (n *Node) observeLoop() {
	for {
		select {
		case <-n.exit:
			return
		case o := <-n.obsCh:
			n.peersMu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				if _, ok := n.peerFails[d.PeerID]; !ok {
					n.peerFails[d.PeerID] = d.LastContact
				}
			case raft.ResumedHeartbeatObservation:
				delete(n.peerFails, d.PeerID)
			}
			n.peersMu.Unlock()
		}
	}
}

// apply proposes an entry and waits for it to be committed and applied; it
// returns the entry's log index.
func (n *Node) apply(data []byte) (applyResult, uint64, error) {
	start := time.Now()
	f := n.raft.Apply(data, n.cfg.ApplyTimeout)
	if err := n.wait(f, start.Add(n.cfg.ApplyTimeout)); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return applyResult{}, 0, ErrNotLeader
		}
		return applyResult{}, 0, fmt.Errorf("%w: %w", ErrNoQuorum, err)
	}
	if n.cfg.OnCommit != nil {
		n.cfg.OnCommit(time.Since(start))
	}
	r, _ := f.Response().(applyResult)
	return r, f.Index(), r.err
}

// errNotCommitted: a proposal was accepted by the leader but not committed
// by the deadline (followers that answer heartbeats but cannot store, say).
var errNotCommitted = errors.New("not committed in time")

// wait waits for f until deadline. raft's own timeout covers only the
// proposal's enqueueing: a leader whose followers answer heartbeats but
// store nothing (full disks) keeps leading and never resolves f, and a
// publisher would wait forever. The entry may still commit later, which
// is the "no quorum" answer's documented meaning (a retry can duplicate,
// never lose). One goroutine per proposal, in replication mode only.
func (n *Node) wait(f raft.ApplyFuture, deadline time.Time) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errNotCommitted
	}
}

// Publish proposes one PUB/MPUB/DPUB and returns once a quorum has it on
// disk and this replica has applied it: then it may be acknowledged. It
// returns the first message ID given out.
func (n *Node) Publish(p *Publish) (uint64, error) {
	r, _, err := n.apply(AppendPublish(nil, p))
	return r.firstID, err
}

// ApplyEncoded proposes an entry encoded by AppendPublish, AppendMeta or
// AppendProgress (one forwarded by a follower, say) after checking that it
// decodes. It returns the entry's log index and, for a publish, its first
// message ID.
func (n *Node) ApplyEncoded(data []byte) (index, firstID uint64, err error) {
	if _, err := DecodeEntry(data); err != nil {
		return 0, 0, err
	}
	r, index, err := n.apply(data)
	return index, r.firstID, err
}

// WaitApplied waits until this replica has applied the log up to index (an
// entry the leader committed), at most timeout.
func (n *Node) WaitApplied(index uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for n.fsm.AppliedIndex() < index {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: entry %d not applied here within %v", ErrNoQuorum, index, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// Meta proposes a topic or channel change and waits for it to be applied.
func (n *Node) Meta(m *Meta) error {
	_, _, err := n.apply(AppendMeta(nil, m))
	return err
}

// DeadLetter records that the leader took a message out of topic/channel
// as a dead letter (max attempts or TTL); it is proposed with the next
// Progress entry of the channel.
func (n *Node) DeadLetter(topic, channel string, id uint64, attempts uint16, reason DeadReason) {
	n.progress.dead(topic, channel, Dead{ID: id, Attempts: attempts, Reason: reason})
}

// Finish records that a message of topic/channel was finished; the leader
// proposes such records in batches (Progress entries).
func (n *Node) Finish(topic, channel string, id uint64) { n.progress.finish(topic, channel, id) }

// Requeue records a message given back to topic/channel with its attempts
// and deliver-at time.
func (n *Node) Requeue(topic, channel string, id uint64, deliverAt int64, attempts uint16) {
	n.progress.requeue(topic, channel, Requeue{ID: id, DeliverAt: deliverAt, Attempts: attempts})
}

// IsLeader reports whether this replica leads and dispatches.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader && n.fsm.Dispatching() }

// LeaderClientAddrs returns the leader's "tcp-addr,http-addr" as recorded in
// the log, or "" when unknown.
func (n *Node) LeaderClientAddrs() string {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	return n.fsm.Leader(string(id))
}

// AddVoter adds a replica to the set (leader only).
func (n *Node) AddVoter(id, addr string) error {
	return wrapLeaderErr(n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout).Error())
}

// RemoveServer removes a replica from the set (leader only).
func (n *Node) RemoveServer(id string) error {
	return wrapLeaderErr(n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error())
}

// TransferLeadership hands the lead to id, or to the most up-to-date
// follower when id is empty (leader only).
func (n *Node) TransferLeadership(id string) error {
	if id == "" {
		return wrapLeaderErr(n.raft.LeadershipTransfer().Error())
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == id {
			return wrapLeaderErr(n.raft.LeadershipTransferToServer(s.ID, s.Address).Error())
		}
	}
	return fmt.Errorf("no replica %q in the set", id)
}

func wrapLeaderErr(err error) error {
	if errors.Is(err, raft.ErrNotLeader) {
		return ErrNotLeader
	}
	return err
}

// PeerStats is one member of the set as this replica sees it.
type PeerStats struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	// LastContactMS: on the leader, how long a follower has failed
	// heartbeats (0 while it answers); on a follower, its last contact
	// with the leader for the leader's entry; -1 when unknown.
	LastContactMS int64 `json:"last_contact_ms"`
}

// Stats is the replica's part of /stats and /info.
type Stats struct {
	ID            string      `json:"id"`
	Role          string      `json:"role"` // leader, follower, candidate, shutdown
	Dispatching   bool        `json:"dispatching"`
	LeaderID      string      `json:"leader_id"`
	LeaderAddress string      `json:"leader_address"`
	Term          uint64      `json:"term"`
	CommitIndex   uint64      `json:"commit_index"`
	AppliedIndex  uint64      `json:"applied_index"`
	LastIndex     uint64      `json:"last_index"`
	LastMessageID uint64      `json:"last_message_id"`
	Peers         []PeerStats `json:"peers"`
}

// Stats reports role, leader, term, indexes and peers.
func (n *Node) Stats() Stats {
	addr, id := n.raft.LeaderWithID()
	state := n.raft.State()
	s := Stats{
		ID:            n.cfg.ID,
		Role:          strings.ToLower(state.String()),
		Dispatching:   n.fsm.Dispatching(),
		LeaderID:      string(id),
		LeaderAddress: string(addr),
		Term:          n.raft.CurrentTerm(),
		CommitIndex:   n.raft.CommitIndex(),
		AppliedIndex:  n.raft.AppliedIndex(),
		LastIndex:     n.raft.LastIndex(),
		LastMessageID: n.fsm.LastID(),
	}
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return s
	}
	now := time.Now()
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	for _, srv := range cf.Configuration().Servers {
		ps := PeerStats{ID: string(srv.ID), Address: string(srv.Address), Suffrage: srv.Suffrage.String(), LastContactMS: -1}
		switch {
		case string(srv.ID) == n.cfg.ID:
			ps.LastContactMS = 0
		case state == raft.Leader:
			ps.LastContactMS = 0
			if since, ok := n.peerFails[srv.ID]; ok {
				ps.LastContactMS = now.Sub(since).Milliseconds()
			}
		case srv.ID == id:
			if lc := n.raft.LastContact(); !lc.IsZero() {
				ps.LastContactMS = now.Sub(lc).Milliseconds()
			}
		}
		s.Peers = append(s.Peers, ps)
	}
	return s
}

// hcWriter turns hashicorp/raft's hclog lines into slog records with NSQ's
// "RAFT:" subsystem prefix.
type hcWriter struct{ log *slog.Logger }

func newHCLogger(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Info,
		Output:      hcWriter{log},
		DisableTime: true,
	})
}

func (w hcWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for tag, l := range map[string]slog.Level{"[WARN]": slog.LevelWarn, "[ERROR]": slog.LevelError, "[DEBUG]": slog.LevelDebug, "[TRACE]": slog.LevelDebug} {
		if strings.HasPrefix(line, tag) {
			level = l
			break
		}
	}
	if i := strings.Index(line, "raft: "); i >= 0 {
		line = line[i+len("raft: "):]
	}
	w.log.Log(context.Background(), level, "RAFT: "+line)
	return len(p), nil
}

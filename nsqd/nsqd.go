package nsqd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nsqclone/nsq/internal/diskq"
	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/internal/version"
	"github.com/nsqclone/nsq/nsqd/replication"
)

// ErrTopicNotFound is returned for a topic that does not exist.
var ErrTopicNotFound = errors.New("topic not found")

// NSQD is one nsqd daemon.
type NSQD struct {
	opts      *Options
	logger    *slog.Logger
	logLevel  *slog.LevelVar
	level     atomic.Int32 // nsqlog.Level behind logLevel
	startTime time.Time
	dirLock   *dirLock

	tcpListener   net.Listener
	httpListener  net.Listener
	httpsListener net.Listener // only with a TLS certificate

	// mu guards topics.
	mu     sync.RWMutex
	topics map[string]*Topic

	clientsMu  sync.RWMutex
	clients    map[int64]*client
	clientSeq  atomic.Int64
	connWG     sync.WaitGroup // one per TCP connection
	conns      sync.Map       // net.Conn → struct{}: connections not yet past the magic
	exiting    atomic.Bool
	persistCh  chan struct{} // cap 1: nsqd.dat needs rewriting
	persistMu  sync.Mutex
	health     health
	lookupAddr atomic.Pointer[[]string]
	lookup     *lookupManager
	tlsConfig  *tls.Config // nil without --tls-cert/--tls-key
	// httpClient makes the outbound calls (AUTH, lookupd's channels), with
	// the --http-client-*-timeout settings; its idle connections are
	// closed at shutdown.
	httpClient *http.Client
	// diskLow is set while free space is below --min-free-disk-bytes.
	diskLow  atomic.Bool
	freeDisk func(path string) (uint64, error) // statfs; replaced in tests
	// loaded is set once nsqd.dat has been loaded: from then on, durable
	// mode persists creations before they are used.
	loaded atomic.Bool
	drain  drainer // drain.go
	// journalWritten, set by benchmarks before Run, is called after the
	// sync loop writes a journal, with the time since it last wrote that
	// journal: how long a finished record waited at most.
	journalWritten func(interval time.Duration)
	// repl is the replica set (replication.go); nil without
	// --replication-address. Set by Run before it serves anything.
	repl atomic.Pointer[replicaSet]
	// limitDefaults, on a replica, are the set's nsqd-wide limits
	// (replication_limits.go); nil: this node's flags.
	limitDefaults atomic.Pointer[replication.Defaults]
}

// New validates opts, locks the data directory and binds the listeners. It
// starts nothing: Run does.
func New(opts *Options) (*NSQD, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	n := &NSQD{
		opts:      opts,
		logLevel:  new(slog.LevelVar),
		startTime: time.Now(),
		topics:    make(map[string]*Topic),
		clients:   make(map[int64]*client),
		persistCh: make(chan struct{}, 1),
		lookup:    &lookupManager{peers: make(map[string]*lookupPeer), changed: make(chan struct{}, 1)},
		freeDisk:  freeDiskSpace,
	}
	n.httpClient = httpapi.NewClient(opts.HTTPClientConnectTimeout, opts.HTTPClientRequestTimeout, nil)
	n.drain.init()
	n.logLevel.Set(opts.LogLevel.Slog())
	n.level.Store(int32(opts.LogLevel))
	n.logger = opts.Logger
	if n.logger == nil {
		n.logger = nsqlog.New(os.Stderr, opts.LogPrefix, n.logLevel)
	}
	addrs := append([]string(nil), opts.NSQLookupdTCPAddresses...)
	n.lookupAddr.Store(&addrs)

	tlsConfig, err := buildTLSConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("failed to build TLS config - %w", err)
	}
	n.tlsConfig = tlsConfig
	// NSQ refuses a missing --data-path; seed 001's `-data-path=./a` expects
	// it to be made, so it is (parents included).
	if err := os.MkdirAll(n.dataPath(), 0o755); err != nil {
		return nil, fmt.Errorf("failed to create data-path: %w", err)
	}
	dl, err := lockDir(n.dataPath())
	if err != nil {
		return nil, fmt.Errorf("failed to lock data-path: %w", err)
	}
	n.dirLock = dl
	if n.tcpListener, err = listen(opts.TCPAddress); err != nil {
		dl.unlock()
		return nil, err
	}
	if opts.HTTPAddress != "" {
		if n.httpListener, err = listen(opts.HTTPAddress); err != nil {
			n.tcpListener.Close()
			dl.unlock()
			return nil, err
		}
	}
	if tlsConfig != nil && opts.HTTPSAddress != "" {
		if n.httpsListener, err = listen(opts.HTTPSAddress); err != nil {
			n.shutdownListeners()
			dl.unlock()
			return nil, err
		}
	}
	if err := n.loadMetadata(); err != nil {
		n.shutdownListeners()
		return nil, errors.Join(fmt.Errorf("failed to load metadata - %w", err), n.closeTopics(), dl.unlock())
	}
	if err := n.PersistMetadata(); err != nil {
		n.logger.Error("NSQ: failed to persist metadata", "err", err)
	}
	n.loaded.Store(true)
	return n, nil
}

// listen binds host:port, or a unix socket for anything else.
func listen(addr string) (net.Listener, error) {
	network := "tcp"
	if _, _, err := net.SplitHostPort(addr); err != nil {
		network = "unix"
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen (%s) failed - %w", addr, err)
	}
	return l, nil
}

// TCPAddr is the address the TCP listener is bound to.
func (n *NSQD) TCPAddr() net.Addr { return n.tcpListener.Addr() }

// HTTPAddr is the HTTP listener's address, nil when HTTP is disabled.
func (n *NSQD) HTTPAddr() net.Addr {
	if n.httpListener == nil {
		return nil
	}
	return n.httpListener.Addr()
}

// HTTPSAddr is the HTTPS listener's address, nil without TLS.
func (n *NSQD) HTTPSAddr() net.Addr {
	if n.httpsListener == nil {
		return nil
	}
	return n.httpsListener.Addr()
}

// Options returns the options the daemon was built with (read-only).
func (n *NSQD) Options() *Options { return n.opts }

// StartTime is when New was called.
func (n *NSQD) StartTime() time.Time { return n.startTime }

// LogLevel is the current --log-level.
func (n *NSQD) LogLevel() nsqlog.Level { return nsqlog.Level(n.level.Load()) }

// SetLogLevel changes the log level at runtime (PUT /config/log_level).
func (n *NSQD) SetLogLevel(l nsqlog.Level) {
	n.level.Store(int32(l))
	n.logLevel.Set(l.Slog())
}

// LookupdTCPAddresses is the current set of nsqlookupd TCP addresses.
func (n *NSQD) LookupdTCPAddresses() []string { return *n.lookupAddr.Load() }

// SetLookupdTCPAddresses replaces the set (PUT /config/nsqlookupd_tcp_addresses).
func (n *NSQD) SetLookupdTCPAddresses(addrs []string) {
	a := append([]string(nil), addrs...)
	n.lookupAddr.Store(&a)
	select {
	case n.lookup.changed <- struct{}{}:
	default:
	}
}

func (n *NSQD) tlsRequiredTCP() bool { return n.opts.TLSRequired != TLSNotRequired }

// Run serves until ctx ends or a listener fails, then shuts down in order:
// listeners and connections, loops, nsqd.dat, topics (flushed to disk), the
// data-directory lock.
func (n *NSQD) Run(ctx context.Context) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	n.logger.Info(version.String("nsqd"))
	n.logger.Info(fmt.Sprintf("ID: %d", n.opts.ID))
	if n.opts.ReplicationAddress != "" {
		if err := n.openReplication(); err != nil {
			n.shutdownListeners()
			return errors.Join(err, n.closeTopics(), n.dirLock.unlock())
		}
	}

	var servers []*http.Server
	var wg sync.WaitGroup
	n.logger.Info("TCP: listening", "addr", n.tcpListener.Addr().String())
	wg.Go(func() { stop(n.serveTCP()) })
	serveHTTP := func(name string, l net.Listener, h http.Handler) {
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second, // slowloris: headers trickled forever
			ErrorLog:          slog.NewLogLogger(n.logger.Handler(), slog.LevelDebug),
		}
		servers = append(servers, srv)
		n.logger.Info(name+": listening", "addr", l.Addr().String())
		wg.Go(func() {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				stop(fmt.Errorf("%s server: %w", name, err))
			}
		})
	}
	if n.httpListener != nil {
		httpsPort := 0 // --tls-required=true: the plain port only points to HTTPS
		if n.opts.TLSRequired == TLSRequired && n.httpsListener != nil {
			httpsPort = addrPort(n.httpsListener.Addr())
		}
		serveHTTP("HTTP", n.httpListener, n.newHTTPHandler(httpsPort))
	}
	if n.httpsListener != nil {
		serveHTTP("HTTPS", tls.NewListener(n.httpsListener, n.tlsConfig), n.newHTTPHandler(0))
	}
	loopCtx, stopLoops := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	loops.Go(func() { n.queueScanLoop(loopCtx) })
	loops.Go(func() { n.persistLoop(loopCtx) })
	loops.Go(func() { n.lookupLoop(loopCtx) })
	loops.Go(func() { n.syncLoop(loopCtx) })
	loops.Go(func() { n.statsdLoop(loopCtx) })
	loops.Go(func() { n.drainLoop(loopCtx) })

	select {
	case <-ctx.Done():
	case <-n.drain.quit: // Shutdown: drained, --drain-timeout, PUT /state/shutdown
		stop(nil) // as if ctx ended: closing the listeners below is no failure
	}
	n.exiting.Store(true)
	n.logger.Info("NSQ: closing")

	n.shutdownListeners()
	n.closeClients()
	for _, srv := range servers {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(sctx)
		cancel()
	}
	wg.Wait()
	var replErr error
	if r := n.repl.Load(); r != nil {
		replErr = r.close()
	}
	stopLoops()
	loops.Wait()
	n.httpClient.CloseIdleConnections()

	err := errors.Join(replErr, n.PersistMetadata(), n.closeTopics(), n.dirLock.unlock())
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(cause, err)
	}
	return err
}

func (n *NSQD) shutdownListeners() {
	for _, l := range []net.Listener{n.tcpListener, n.httpListener, n.httpsListener} {
		if l != nil {
			l.Close()
		}
	}
}

// serveTCP accepts connections until the listener is closed (then nil).
func (n *NSQD) serveTCP() error {
	for {
		conn, err := n.tcpListener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("tcp accept: %w", err)
		}
		n.connWG.Go(func() { n.handleConn(conn) })
	}
}

// handleConn reads the protocol magic and serves the connection.
func (n *NSQD) handleConn(conn net.Conn) {
	// serveV2 deletes conn from n.conns when it ends; the paths that return
	// before it delete it here.
	n.conns.Store(conn, struct{}{})
	if n.exiting.Load() {
		n.conns.Delete(conn)
		conn.Close()
		return
	}
	// NSQ waits for the magic forever; a connection that never sends it is
	// closed after the client timeout (60 s) instead.
	conn.SetReadDeadline(time.Now().Add(n.opts.ClientTimeout))
	var magic [4]byte
	if _, err := io.ReadFull(conn, magic[:]); err != nil {
		n.conns.Delete(conn)
		conn.Close()
		return
	}
	if string(magic[:]) != protocol.MagicV2 {
		conn.Write(protocol.AppendFrame(nil, protocol.FrameTypeError, []byte("E_BAD_PROTOCOL")))
		n.conns.Delete(conn)
		conn.Close()
		return
	}
	c := newClient(n, n.clientSeq.Add(1), conn)
	n.serveV2(c)
}

func (n *NSQD) addClient(c *client) {
	n.clientsMu.Lock()
	n.clients[c.id] = c
	n.clientsMu.Unlock()
	if n.exiting.Load() {
		c.closeConn()
	}
}

func (n *NSQD) removeClient(c *client) {
	n.clientsMu.Lock()
	delete(n.clients, c.id)
	n.clientsMu.Unlock()
}

func (n *NSQD) clientList() []*client {
	n.clientsMu.RLock()
	defer n.clientsMu.RUnlock()
	out := make([]*client, 0, len(n.clients))
	for _, c := range n.clients {
		out = append(out, c)
	}
	return out
}

// closeClients closes every connection and waits for their goroutines, which
// requeue the clients' in-flight messages.
func (n *NSQD) closeClients() {
	n.conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	for _, c := range n.clientList() {
		c.closeConn()
	}
	n.connWG.Wait()
}

// GetTopic returns the topic, creating it if needed (in replication mode,
// a non-ephemeral one through the set's log).
func (n *NSQD) GetTopic(name string) (*Topic, error) {
	if n.repl.Load() != nil && !protocol.IsEphemeral(name) {
		return n.repl.Load().getTopic(name)
	}
	return n.getTopic(name, true)
}

func (n *NSQD) getTopic(name string, announce bool) (*Topic, error) {
	n.mu.RLock()
	t, ok := n.topics[name]
	n.mu.RUnlock()
	if ok {
		return t, nil
	}
	n.mu.Lock()
	if t, ok = n.topics[name]; ok {
		n.mu.Unlock()
		return t, nil
	}
	if n.exiting.Load() {
		n.mu.Unlock()
		return nil, ErrExiting
	}
	if n.drain.active.Load() {
		n.mu.Unlock()
		return nil, ErrDraining
	}
	t, err := newTopic(n, name)
	if err != nil {
		n.mu.Unlock()
		n.logger.Error("TOPIC: failed to create", "topic", name, "err", err)
		return nil, err
	}
	// A new topic holds its messages until the channels other nodes have
	// for it (as lookupd knows them) exist, so they all get the first one.
	t.holding = announce
	n.topics[name] = t
	n.mu.Unlock()
	t.log.Info("TOPIC: created")
	if announce {
		n.topicCreated(t)
		for _, c := range n.lookupChannels(name) {
			if protocol.IsValidChannelName(c) && !protocol.IsEphemeral(c) {
				if _, err := t.GetChannel(c); err != nil {
					t.log.Error("TOPIC: failed to pre-create channel", "channel", c, "err", err)
				}
			}
		}
		t.release()
	}
	return t, nil
}

// GetExistingTopic returns the topic or ErrTopicNotFound.
func (n *NSQD) GetExistingTopic(name string) (*Topic, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	t, ok := n.topics[name]
	if !ok {
		return nil, ErrTopicNotFound
	}
	return t, nil
}

// DeleteExistingTopic deletes the topic with its channels and data (in
// replication mode, a non-ephemeral one on every replica of the set).
func (n *NSQD) DeleteExistingTopic(name string) error {
	if n.repl.Load() != nil && !protocol.IsEphemeral(name) {
		if _, err := n.GetExistingTopic(name); err != nil {
			return err
		}
		return n.repl.Load().meta(replication.OpDeleteTopic, name, "")
	}
	return n.deleteTopic(name)
}

func (n *NSQD) deleteTopic(name string) error {
	n.mu.Lock()
	t, ok := n.topics[name]
	if !ok {
		n.mu.Unlock()
		return ErrTopicNotFound
	}
	delete(n.topics, name)
	n.mu.Unlock()
	err := t.delete()
	t.log.Info("TOPIC: deleted")
	n.topicDeleted(t)
	return err
}

// deleteEphemeralTopic deletes an ephemeral topic whose last channel went.
func (n *NSQD) deleteEphemeralTopic(t *Topic) {
	n.mu.Lock()
	if n.topics[t.name] != t {
		n.mu.Unlock()
		return
	}
	t.mu.RLock()
	busy := len(t.chans) > 0
	t.mu.RUnlock()
	if busy {
		n.mu.Unlock()
		return
	}
	delete(n.topics, t.name)
	n.mu.Unlock()
	if err := t.delete(); err != nil {
		t.log.Error("TOPIC: failed to delete", "err", err)
	}
	t.log.Info("TOPIC: deleted")
	n.topicDeleted(t)
}

// topicList returns the topics sorted by name.
func (n *NSQD) topicList() []*Topic {
	n.mu.RLock()
	out := make([]*Topic, 0, len(n.topics))
	for _, t := range n.topics {
		out = append(out, t)
	}
	n.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Hooks for topic and channel changes: lookupds are told, and nsqd.dat is
// rewritten for durable objects.
func (n *NSQD) topicCreated(t *Topic) {
	n.lookupSend("REGISTER " + t.name)
	if !t.ephemeral {
		n.persistCreated()
	}
}

func (n *NSQD) topicDeleted(t *Topic) {
	n.lookupSend("UNREGISTER " + t.name)
	if !t.ephemeral {
		n.persistSoon()
	}
}

func (n *NSQD) channelCreated(t *Topic, c *Channel) {
	n.lookupSend("REGISTER " + t.name + " " + c.name)
	if !c.ephemeral && !t.ephemeral {
		n.persistCreated()
	}
}

// persistCreated records a new topic or channel in nsqd.dat: in durable
// mode before the first message can be acknowledged in it (otherwise a
// crash could leave its queue unknown to the next start), else soon.
func (n *NSQD) persistCreated() {
	if !n.opts.Durable || !n.loaded.Load() {
		n.persistSoon()
		return
	}
	if err := n.PersistMetadata(); err != nil {
		n.logger.Error("NSQ: failed to persist metadata", "err", err)
	}
}

func (n *NSQD) channelDeleted(t *Topic, c *Channel) {
	n.lookupSend("UNREGISTER " + t.name + " " + c.name)
	if !c.ephemeral && !t.ephemeral {
		n.persistSoon()
	}
}

// persistSoon asks the persist loop to rewrite nsqd.dat. Bursts of creations
// share one write (NSQ rewrites and fsyncs the file for every one).
func (n *NSQD) persistSoon() {
	select {
	case n.persistCh <- struct{}{}:
	default:
	}
}

func (n *NSQD) persistLoop(ctx context.Context) {
	for {
		select {
		case <-n.persistCh:
			// A failed write is retried every sync-loop tick: log the
			// first failure, not every retry.
			retry := n.health.failing(healthMetadata)
			if err := n.PersistMetadata(); err != nil && !retry {
				n.logger.Error("NSQ: failed to persist metadata", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// queueScanLoop moves due deferred messages to their channels' queues and
// requeues timed-out in-flight messages, every QueueScanInterval. Only
// channels and clients with pending messages do any work.
func (n *NSQD) queueScanLoop(ctx context.Context) {
	ticker := time.NewTicker(n.opts.QueueScanInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
		now := time.Now().UnixNano()
		for _, t := range n.topicList() {
			t.mu.RLock()
			chans := append([]*Channel(nil), t.chans...)
			t.mu.RUnlock()
			for _, c := range chans {
				c.processDeferred(now)
				c.sweepExpired(now)
			}
			if t.dropsPending.Load() { // left by a publish that raced a limits change
				t.publishDrops()
			}
		}
		for _, c := range n.clientList() {
			c.processTimeouts(now)
		}
	}
}

// syncLoop fsyncs disk queues with unsynced activity older than
// --sync-timeout (go-diskqueue runs a ticker goroutine per queue for this).
// In durable mode it also writes the journals' records every 50 ms (a crash
// makes at most those finished messages come back) and compacts journals.
//
// A tick has two passes, so that thousands of queues do not wait for each
// other's disk time: the journal writes (a write system call each, no
// fsync), spread over journalWorkers goroutines, run in the loop and finish
// before the next tick; the sync pass (commits of durable reads, fsyncs,
// compactions), over syncWorkers goroutines, runs beside it, and a tick
// starts a new one only once the last has finished. A slow disk therefore
// delays fsyncs, never the 50 ms journal writes. Every goroutine is waited
// for before syncLoop returns.
func (n *NSQD) syncLoop(ctx context.Context) {
	interval := max(n.opts.SyncTimeout/4, 50*time.Millisecond)
	if n.opts.Durable {
		interval = 50 * time.Millisecond
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var syncPass sync.WaitGroup // the sync pass in progress, if any
	defer syncPass.Wait()
	var syncing atomic.Bool
	// syncOK: the last sync pass committed and compacted every journal it
	// had to; the journal health condition clears only then.
	var syncOK atomic.Bool
	syncOK.Store(true)
	for {
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
		n.checkFreeDisk()
		if n.health.failing(healthMetadata) {
			n.persistSoon() // retry a failed nsqd.dat write
		}
		stores := n.storeList()
		mark := n.health.mark(healthJournal)
		var writeFailed atomic.Bool
		inParallel(journalWorkers, stores, func(s store) {
			if !n.writeJournal(s) {
				writeFailed.Store(true)
			}
		})
		if n.opts.Durable && !writeFailed.Load() && syncOK.Load() {
			n.health.clearUnchanged(healthJournal, mark)
		}
		if syncing.CompareAndSwap(false, true) {
			syncPass.Go(func() {
				defer syncing.Store(false)
				now := time.Now()
				var failed atomic.Bool
				inParallel(syncWorkers, stores, func(s store) {
					if !n.syncStore(s, now) {
						failed.Store(true)
					}
				})
				syncOK.Store(!failed.Load())
			})
		}
	}
}

// journalWorkers and syncWorkers bound the goroutines of the sync loop's
// two passes. The sync pass stays narrow: each of its fsyncs competes with
// the fsyncs durable publishers wait for.
const journalWorkers, syncWorkers = 4, 2

// store is the disk storage of a topic (c nil) or channel: its disk queue
// and, in durable mode, its journal.
type store struct {
	q *diskq.Queue
	j *journal
	c *Channel
}

// storeList returns the stores of every non-ephemeral topic and channel.
func (n *NSQD) storeList() []store {
	var out []store
	for _, t := range n.topicList() {
		if t.backend != nil {
			out = append(out, store{t.backend, t.journal, nil})
		}
		for _, c := range t.channelList() {
			if c.backend != nil {
				out = append(out, store{c.backend, c.journal, c})
			}
		}
	}
	return out
}

// syncStore commits a durable channel's reads, fsyncs a disk queue if it
// is due and compacts its journal if it needs it. It reports false when a
// journal commit or compaction failed (the journal condition is set then).
func (n *NSQD) syncStore(s store, now time.Time) bool {
	ok := n.commitReads(s)
	if err := s.q.MaybeSync(now); err != nil && !errors.Is(err, diskq.ErrClosed) {
		n.health.fail(healthDiskQueue, err) // ErrClosed: deleted since the pass began
	}
	if s.j != nil && s.j.needsCompaction() {
		ok = n.compactJournal(s) && ok
	}
	return ok
}

// inParallel calls f for each item from at most workers goroutines and
// returns when every call has returned. A few items are done in place.
func inParallel[T any](workers int, items []T, f func(T)) {
	if len(items) < 2*workers {
		for _, it := range items {
			f(it)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(items); i = int(next.Add(1)) - 1 {
				f(items[i])
			}
		})
	}
	wg.Wait()
}

// ErrDiskLow refuses a publish while the data path's free space is below
// --min-free-disk-bytes, before the disk is actually full.
var ErrDiskLow = errors.New("disk free space below --min-free-disk-bytes")

// checkFreeDisk updates diskLow (and the free_disk health condition) from
// the data path's free space.
func (n *NSQD) checkFreeDisk() {
	min := n.opts.MinFreeDiskBytes
	if min <= 0 {
		return
	}
	free, err := n.freeDisk(n.dataPath())
	if err != nil {
		n.logger.Warn("NSQ: cannot read free disk space", "path", n.dataPath(), "err", err)
		return
	}
	low := free < uint64(min)
	if was := n.diskLow.Swap(low); low != was {
		if low {
			err := fmt.Errorf("%w: %d bytes free on %s", ErrDiskLow, free, n.dataPath())
			n.logger.Error("NSQ: refusing publishes", "err", err)
			n.health.fail(healthFreeDisk, err)
		} else {
			n.logger.Info("NSQ: accepting publishes again", "free", free)
			n.health.clear(healthFreeDisk)
		}
	}
}

func freeDiskSpace(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// closeTopics flushes and closes every topic. Each close fsyncs its disk
// queues, so eight run at once: with thousands of topics a sequential
// shutdown waits for thousands of fsyncs in a row.
func (n *NSQD) closeTopics() error {
	topics := n.topicList()
	errs := make([]error, len(topics))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(8, len(topics)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(topics); i = int(next.Add(1)) - 1 {
				if err := topics[i].close(); err != nil {
					errs[i] = fmt.Errorf("close topic %q: %w", topics[i].name, err)
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

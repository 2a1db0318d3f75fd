package nsqd

import (
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqclone/nsq/internal/diskq"
	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/nsqd/replication"
)

// Topic receives published messages and gives every one of its channels a
// copy.
//
// While the topic has channels and is not paused, a publish is handed to the
// channels directly by the publishing goroutine: no pump goroutine, no
// per-message channel send. Otherwise messages wait in the topic's backlog
// (memory up to --mem-queue-size, then disk; deferred ones in memory with
// their deliver-at time) and a drain goroutine, started when the topic gets a
// channel or is unpaused, moves the backlog to the channels.
type Topic struct {
	name      string
	ephemeral bool
	nsqd      *NSQD
	log       *slog.Logger
	backend   *diskq.Queue // nil for an ephemeral topic
	journal   *journal     // durable mode: the deferred backlog; nil for an ephemeral topic
	guid      *guidFactory

	// mu guards the fields below it. Publishers hold it for reading while
	// they hand messages over, so channel changes and pause wait for them.
	mu       sync.RWMutex
	channels map[string]*Channel
	chans    []*Channel // the same channels as a slice, for fan-out
	paused   bool
	exiting  bool
	draining bool
	holding  bool // new topic waiting for its pre-created channels

	// backlogMu guards the memory backlog and the deferred backlog.
	backlogMu sync.Mutex
	backlog   msgQueue
	deferred  []*Message

	exit chan struct{} // closed when the topic closes; stops the drain
	wg   sync.WaitGroup

	messageCount atomic.Uint64
	messageBytes atomic.Uint64

	// Limits (limits.go): overrides guarded by mu; guard and lim are nil
	// unless something is limited.
	overrides     Limits
	guard         atomic.Pointer[topicGuard]
	lim           atomic.Pointer[limits]
	depthBytes    atomic.Int64
	rejectedCount atomic.Uint64
	droppedCount  atomic.Uint64 // drop-oldest on the topic's own buffer
	deadLetters   deathLog      // origins of the dead letters published here

	// Messages dropped by drop-oldest to be dead-lettered, queued under
	// mu (read) and published once the publisher has released it
	// (publishDrops), so no source lock is held while the dead-letter topic
	// is looked up or created. dropsPending tells publishers there are some.
	dropMu       sync.Mutex
	drops        []pendingDrop
	dropsPending atomic.Bool
}

func newTopic(n *NSQD, name string) (*Topic, error) {
	t := &Topic{
		name:      name,
		ephemeral: protocol.IsEphemeral(name),
		nsqd:      n,
		log:       n.logger.With("topic", name),
		guid:      newGUIDFactory(n.opts.ID),
		channels:  make(map[string]*Channel),
		exit:      make(chan struct{}),
	}
	t.refreshLimitsLocked()
	t.deadLetters.log = t.log
	if !t.ephemeral {
		t.deadLetters.path = deathFileName(n.dataPath(), name)
		if err := t.openStorage(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// ErrChannelNotFound is returned for a channel that does not exist.
var ErrChannelNotFound = errors.New("channel not found")

// Name is the topic's name.
func (t *Topic) Name() string { return t.name }

// Publish accepts one message; deferred > 0 delays its delivery.
func (t *Topic) Publish(body []byte, deferred time.Duration) error {
	return t.publish([][]byte{body}, deferred)
}

// PublishMulti accepts several messages at once.
func (t *Topic) PublishMulti(bodies [][]byte) error {
	return t.publish(bodies, 0)
}

// publish puts the messages of one publish, as a pubBatch.
func (t *Topic) publish(bodies [][]byte, deferred time.Duration) error {
	return t.publishReserved(bodies, -1, deferred)
}

// publishReserved publishes with IDs from idStart (reserved by the caller),
// or new ones when idStart < 0.
func (t *Topic) publishReserved(bodies [][]byte, idStart int64, deferred time.Duration) error {
	if t.nsqd.drain.active.Load() {
		return ErrDraining
	}
	if !t.ephemeral && t.nsqd.diskLow.Load() {
		return ErrDiskLow
	}
	var size uint64
	for _, body := range bodies {
		size += uint64(len(body))
	}
	if r := t.nsqd.repl.Load(); r != nil && !t.ephemeral {
		// The set assigns the IDs (idStart is this node's own sequence)
		// and enforces the limits (replication_limits.go).
		if err := r.publish(t, bodies, deferred); err != nil {
			return t.fullError(err, len(bodies))
		}
		t.messageCount.Add(uint64(len(bodies)))
		t.messageBytes.Add(size)
		return nil
	}
	g := t.guard.Load()
	if g != nil && (g.own != nil || len(g.reject) > 0) {
		if err := t.admit(g, len(bodies), int64(size)); err != nil {
			return err
		}
	}
	if idStart < 0 {
		idStart = t.guid.reserve(len(bodies))
	}
	b := &pubBatch{bodies: bodies, idStart: idStart, guid: t.guid}
	b.timestamp = time.Now().UnixNano()
	var deliverAt int64
	if deferred > 0 {
		deliverAt = b.timestamp + int64(deferred)
	}
	err := t.putBatch(b, deliverAt)
	if g != nil && g.dropDL && t.dropsPending.Load() {
		t.publishDrops()
	}
	if err != nil {
		return err
	}
	t.messageCount.Add(uint64(len(bodies)))
	t.messageBytes.Add(size)
	return nil
}

// putBatch hands a publish to the channels as a batch when it is the plain
// case (channels to fan out to, nothing deferred, not durable). Otherwise
// the batch becomes Messages and goes through put.
func (t *Topic) putBatch(b *pubBatch, deliverAt int64) error {
	if deliverAt == 0 && !t.durable() {
		t.mu.RLock()
		if !t.exiting && len(t.chans) > 0 && !t.paused && !t.holding {
			var errs []error
			for _, c := range t.chans {
				if err := c.putBatch(b); err != nil && !errors.Is(err, ErrExiting) {
					errs = append(errs, err)
				}
			}
			t.mu.RUnlock()
			return errors.Join(errs...)
		}
		t.mu.RUnlock()
	}
	return t.put(b.messages(deliverAt))
}

// put hands messages to the channels or the backlog. What drop-oldest
// queued for dead-lettering meanwhile is published by the caller once no
// lock is held (publishReserved, the drain, loadDeferred, the queue scan).
func (t *Topic) put(msgs []*Message) error {
	t.mu.RLock()
	if t.exiting {
		t.mu.RUnlock()
		return ErrExiting
	}
	if len(t.chans) > 0 && !t.paused && !t.holding {
		err := t.fanOut(msgs)
		if err != nil || !t.durable() {
			t.mu.RUnlock()
			return err
		}
		chans := append([]*Channel(nil), t.chans...)
		t.mu.RUnlock()
		return syncChannels(chans)
	}
	err := t.putBacklog(msgs)
	t.mu.RUnlock()
	if err == nil {
		err = t.syncDurable() // nothing to do unless durable
	}
	return err
}

// release ends the hold of a new topic and lets its backlog flow.
func (t *Topic) release() {
	t.mu.Lock()
	t.holding = false
	t.startDrainLocked()
	t.mu.Unlock()
}

// fanOut gives each channel its copy. The first channel gets the original
// messages, last: once a channel has a message its consumers may change it,
// so every copy must be made before. Callers hold t.mu for reading.
func (t *Topic) fanOut(msgs []*Message) error {
	var errs []error
	for i := len(t.chans) - 1; i >= 0; i-- {
		c := t.chans[i]
		cm := msgs
		if i > 0 {
			cm = copyMessages(msgs)
		}
		if err := c.put(cm); err != nil && !errors.Is(err, ErrExiting) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func copyMessages(msgs []*Message) []*Message {
	block := make([]Message, len(msgs))
	out := make([]*Message, len(msgs))
	for i, m := range msgs {
		c := &block[i]
		c.ID, c.Body, c.Timestamp, c.Attempts, c.deadline = m.ID, m.Body, m.Timestamp, m.Attempts, m.deadline
		out[i] = c
	}
	return out
}

// putBacklog keeps messages in the topic until it has a channel and is not
// paused; an ephemeral topic drops what does not fit in memory. Deferred
// and held messages wait in the deferred list, the rest in memory and,
// past memQueueSize, on disk.
func (t *Topic) putBacklog(msgs []*Message) error {
	var overflow []*Message
	memMax := t.memQueueSize()
	l := t.lim.Load()
	if l != nil && l.dropOldest && t.backendDepth() > 0 {
		// Drop-oldest drops from memory first: keep memory older than
		// the disk queue, so what it drops is the oldest.
		memMax = 0
	}
	t.backlogMu.Lock()
	for _, m := range msgs {
		switch {
		case m.deadline > 0 || m.held:
			if !m.journaled {
				t.journalDeferred(m)
			}
			t.deferred = append(t.deferred, m)
		case t.backlog.len() < memMax:
			t.backlog.push(m)
		default:
			overflow = append(overflow, m)
		}
	}
	t.backlogMu.Unlock()
	if l != nil {
		t.depthBytes.Add(bodyBytes(msgs))
	}
	if len(overflow) > 0 && t.backend != nil {
		if err := t.nsqd.writeBackend(t.backend, overflow); err != nil {
			return err
		}
	}
	if l != nil && l.dropOldest && (l.maxDepth > 0 || l.maxBytes > 0) {
		t.dropOldest(l)
	}
	return nil
}

// startDrainLocked starts the drain goroutine if there is a backlog to move.
// Callers hold t.mu for writing.
func (t *Topic) startDrainLocked() {
	if t.draining || t.exiting || t.paused || t.holding || len(t.chans) == 0 {
		return
	}
	t.draining = true
	t.wg.Go(t.drain)
}

// drain moves the backlog to the channels until it is empty, the topic is
// paused or loses its channels, or the topic closes.
func (t *Topic) drain() {
	var buf []*Message
	for {
		t.mu.RLock()
		if t.exiting || t.paused || t.holding || len(t.chans) == 0 {
			t.mu.RUnlock()
			t.stopDraining()
			return
		}
		t.backlogMu.Lock()
		buf = t.backlog.popN(buf[:0], 256)
		buf = append(buf, t.deferred...)
		t.deferred = nil
		t.backlogMu.Unlock()
		if len(buf) > 0 && t.lim.Load() != nil {
			t.addBytes(-bodyBytes(buf))
		}
		if len(buf) > 0 {
			// Journaled messages leave the topic's journal once their
			// channels have them durably.
			done := unjournal(buf)
			err := t.fanOut(buf)
			var chans []*Channel
			if t.durable() {
				chans = append(chans, t.chans...)
			}
			t.mu.RUnlock()
			if t.dropsPending.Load() {
				t.publishDrops()
			}
			if err == nil {
				err = syncChannels(chans) // none unless durable
			}
			if err != nil {
				t.log.Error("TOPIC: failed to pass backlog to channels", "err", err)
			} else {
				t.journalDone(done)
			}
			clear(buf)
			continue
		}
		t.mu.RUnlock()

		buf = t.nsqd.readBackend(t.backend, buf[:0], t.diskBatch(), t.log)
		if len(buf) > 0 && t.lim.Load() != nil {
			t.addBytes(-bodyBytes(buf))
		}
		if len(buf) > 0 {
			err := t.put(buf)
			if t.dropsPending.Load() {
				t.publishDrops()
			}
			if err != nil {
				// Durable mode: not committed, so a restart reads them again.
				t.log.Error("TOPIC: failed to pass messages from disk to channels", "err", err)
			} else {
				t.commitDiskRead()
			}
			clear(buf)
			continue
		}
		if t.backend == nil || t.backend.Depth() <= 0 {
			if t.stopDrainingIfEmpty() {
				return
			}
			continue
		}
		// Depth says more but nothing could be read (a damaged file was
		// just skipped, or a read error): wait a little or for new data.
		select {
		case <-t.backend.Ready():
		case <-time.After(100 * time.Millisecond):
		case <-t.exit:
			t.stopDraining()
			return
		}
	}
}

func (t *Topic) stopDraining() {
	t.mu.Lock()
	t.draining = false
	t.mu.Unlock()
}

// stopDrainingIfEmpty ends the drain unless messages arrived in the backlog
// meanwhile.
func (t *Topic) stopDrainingIfEmpty() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.backlogMu.Lock()
	empty := t.backlog.len() == 0 && len(t.deferred) == 0
	t.backlogMu.Unlock()
	if !empty || (t.backend != nil && t.backend.Depth() > 0) {
		return false
	}
	t.draining = false
	return true
}

// GetChannel returns the channel, creating it if needed (in replication
// mode, a non-ephemeral one through the set's log).
func (t *Topic) GetChannel(name string) (*Channel, error) {
	if r := t.nsqd.repl.Load(); r != nil && !t.ephemeral && !protocol.IsEphemeral(name) {
		return r.getChannel(t, name)
	}
	return t.getChannel(name)
}

func (t *Topic) getChannel(name string) (*Channel, error) {
	t.mu.RLock()
	c, ok := t.channels[name]
	t.mu.RUnlock()
	if ok {
		return c, nil
	}
	t.mu.Lock()
	if t.exiting {
		t.mu.Unlock()
		return nil, ErrExiting
	}
	c, ok = t.channels[name]
	if ok {
		t.mu.Unlock()
		return c, nil
	}
	if t.nsqd.drain.active.Load() {
		t.mu.Unlock()
		return nil, ErrDraining
	}
	c, err := newChannel(t, name)
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	t.channels[name] = c
	t.chans = append(t.chans, c)
	t.refreshLimitsLocked()
	t.startDrainLocked()
	t.mu.Unlock()

	c.log.Info("CHANNEL: created")
	c.loadDeferred()
	t.nsqd.channelCreated(t, c)
	return c, nil
}

// GetExistingChannel returns the channel or ErrChannelNotFound.
func (t *Topic) GetExistingChannel(name string) (*Channel, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	c, ok := t.channels[name]
	if !ok {
		return nil, ErrChannelNotFound
	}
	return c, nil
}

// DeleteExistingChannel deletes the channel, disconnecting its consumers.
func (t *Topic) DeleteExistingChannel(name string) error {
	if r := t.nsqd.repl.Load(); r != nil && !t.ephemeral && !protocol.IsEphemeral(name) {
		if _, err := t.GetExistingChannel(name); err != nil {
			return err
		}
		return r.meta(replication.OpDeleteChannel, t.name, name)
	}
	return t.deleteChannel(name)
}

func (t *Topic) deleteChannel(name string) error {
	t.mu.Lock()
	c, ok := t.channels[name]
	if !ok {
		t.mu.Unlock()
		return ErrChannelNotFound
	}
	t.removeChannelLocked(c)
	t.mu.Unlock()
	return t.finishChannelDelete(c)
}

// deleteEphemeralChannel deletes an ephemeral channel whose last client
// left, unless a new client subscribed in the meantime.
func (t *Topic) deleteEphemeralChannel(c *Channel) {
	t.mu.Lock()
	if t.channels[c.name] != c {
		t.mu.Unlock()
		return
	}
	c.mu.Lock()
	busy := len(c.clients) > 0
	if !busy {
		c.exiting = true
	}
	c.mu.Unlock()
	if busy {
		t.mu.Unlock()
		return
	}
	t.removeChannelLocked(c)
	t.mu.Unlock()
	if err := t.finishChannelDelete(c); err != nil {
		c.log.Error("CHANNEL: failed to delete", "err", err)
	}
}

func (t *Topic) removeChannelLocked(c *Channel) {
	delete(t.channels, c.name)
	i := 0
	for _, o := range t.chans {
		if o != c {
			t.chans[i] = o
			i++
		}
	}
	clear(t.chans[i:])
	t.chans = t.chans[:i]
	t.refreshLimitsLocked()
}

func (t *Topic) finishChannelDelete(c *Channel) error {
	err := c.delete()
	c.log.Info("CHANNEL: deleted")
	t.nsqd.channelDeleted(t, c)
	if t.ephemeral {
		t.mu.RLock()
		empty := len(t.chans) == 0
		t.mu.RUnlock()
		if empty {
			t.nsqd.deleteEphemeralTopic(t)
		}
	}
	return err
}

// channelList returns the channels sorted by name.
func (t *Topic) channelList() []*Channel {
	t.mu.RLock()
	out := append([]*Channel(nil), t.chans...)
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Pause stops passing messages to the channels; they wait in the topic.
func (t *Topic) Pause() error {
	if r := t.nsqd.repl.Load(); r != nil && !t.ephemeral {
		return r.meta(replication.OpPauseTopic, t.name, "")
	}
	t.pause()
	return nil
}

func (t *Topic) pause() {
	t.mu.Lock()
	t.paused = true
	t.mu.Unlock()
}

// Unpause resumes passing messages to the channels.
func (t *Topic) Unpause() error {
	if r := t.nsqd.repl.Load(); r != nil && !t.ephemeral {
		return r.meta(replication.OpUnpauseTopic, t.name, "")
	}
	t.unpause()
	return nil
}

func (t *Topic) unpause() {
	t.mu.Lock()
	t.paused = false
	t.startDrainLocked()
	t.mu.Unlock()
}

// IsPaused reports whether the topic is paused.
func (t *Topic) IsPaused() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.paused
}

// Empty drops the messages waiting in the topic itself (not its channels').
func (t *Topic) Empty() error {
	if r := t.nsqd.repl.Load(); r != nil && !t.ephemeral {
		return r.meta(replication.OpEmptyTopic, t.name, "")
	}
	return t.empty()
}

func (t *Topic) empty() error {
	t.backlogMu.Lock()
	t.backlog.drain()
	t.deferred = nil
	t.backlogMu.Unlock()
	t.depthBytes.Store(0)
	err := t.journal.reset()
	if t.backend != nil {
		err = errors.Join(err, t.backend.Empty())
	}
	return err
}

// Depth is the number of messages waiting in the topic (memory and disk).
func (t *Topic) Depth() int64 {
	t.backlogMu.Lock()
	d := int64(t.backlog.len() + len(t.deferred))
	t.backlogMu.Unlock()
	return d + t.backendDepth()
}

func (t *Topic) backendDepth() int64 {
	if t.backend == nil {
		return 0
	}
	return t.backend.Depth()
}

// markExiting makes publishes fail and stops the drain.
func (t *Topic) markExiting() []*Channel {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.exiting {
		t.exiting = true
		close(t.exit)
	}
	return append([]*Channel(nil), t.chans...)
}

// delete removes the topic's channels and data.
func (t *Topic) delete() error {
	chans := t.markExiting()
	t.wg.Wait()
	var errs []error
	for _, c := range chans {
		t.mu.Lock()
		t.removeChannelLocked(c)
		t.mu.Unlock()
		errs = append(errs, c.delete())
		t.nsqd.channelDeleted(t, c)
	}
	t.backlogMu.Lock()
	t.backlog.drain()
	t.deferred = nil
	t.backlogMu.Unlock()
	removeDeferredFile(t.nsqd.dataPath(), t.name)
	errs = append(errs, t.journal.remove(), t.deadLetters.remove())
	if t.backend != nil {
		errs = append(errs, t.backend.Delete())
	}
	return errors.Join(errs...)
}

// close flushes the topic and its channels to disk at shutdown.
func (t *Topic) close() error {
	chans := t.markExiting()
	t.wg.Wait()
	var errs []error
	for _, c := range chans {
		errs = append(errs, c.close())
	}
	t.backlogMu.Lock()
	mem := notJournaled(t.backlog.drain())
	deferred := notJournaled(t.deferred)
	t.deferred = nil
	t.backlogMu.Unlock()
	errs = append(errs, t.deadLetters.close())
	if t.backend == nil {
		return errors.Join(errs...)
	}
	errs = append(errs,
		t.nsqd.writeBackend(t.backend, mem),
		writeDeferredFile(t.nsqd.dataPath(), t.name, deferred),
		t.backend.Close(),
		t.journal.close())
	return errors.Join(errs...)
}

// loadDeferred restores topic-level deferred messages saved at shutdown.
func (t *Topic) loadDeferred() {
	if t.backend == nil {
		return
	}
	msgs, err := readDeferredFile(t.nsqd.dataPath(), t.name)
	if err != nil {
		t.log.Error("TOPIC: failed to load deferred messages", "err", err)
	}
	if len(msgs) == 0 {
		return
	}
	err = t.put(msgs)
	if t.dropsPending.Load() {
		t.publishDrops()
	}
	if err != nil { // durable mode: journaled and synced
		t.log.Error("TOPIC: failed to restore deferred messages", "err", err)
		return
	}
	removeDeferredFile(t.nsqd.dataPath(), t.name)
}

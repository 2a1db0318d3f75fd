package nsqd

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqclone/nsq/internal/diskq"
	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/nsqd/replication"
)

// Channel is a topic's copy of the message stream, shared by the consumers
// subscribed to it: each message goes to one of them.
//
// Messages wait in a memory queue (at most --mem-queue-size, the rest in a
// disk queue), in the deferred heap until their deliver-at time, or in
// flight in the client that received them. Consumers pull: a client's pump
// takes as many messages as its RDY allows in one lock acquisition, and
// registers as a waiter when the memory queue is empty. Waiters are served
// first come, first served, as NSQ's pumps receiving from one Go channel
// are: a put wakes as many waiters as it added messages, oldest first, so
// idle consumers take turns. Disk-queued messages are read straight from
// the disk queue by whichever ready pump reads first.
type Channel struct {
	name      string
	topicName string
	ephemeral bool
	nsqd      *NSQD
	topic     *Topic
	log       *slog.Logger
	backend   *diskq.Queue // nil for an ephemeral channel
	journal   *journal     // durable mode only; nil for an ephemeral channel

	// diskMu makes a durable channel's read from its disk queue, the
	// journaling of what it read and the commit of the read one step, so a
	// committed read position never passes a message the journal lacks.
	diskMu sync.Mutex
	// recovered, guarded by diskMu, are the IDs of the messages the
	// journal held or had finished when the channel was opened. A crash can
	// leave the disk queue's persisted read position before messages that
	// were since read and journaled; until window more records are read
	// from the queue, copies of those are recognised and skipped.
	recovered *recoveredIDs

	paused       atomic.Bool
	hasRecovered atomic.Bool // recovered is set

	mu       sync.Mutex
	mem      msgQueue
	deferred msgHeap
	clients  map[int64]*client
	waiters  []*client // pumps waiting for a message, oldest first
	exiting  bool

	messageCount  atomic.Uint64
	requeueCount  atomic.Uint64
	timeoutCount  atomic.Uint64
	inFlightCount atomic.Int64
	deferredCount atomic.Int64
	e2e           *latencyWindow // nil unless percentiles are configured

	// Limits (limits.go, deadletter.go): overrides guarded by topic.mu;
	// lim is nil unless something is limited.
	overrides              Limits
	lim                    atomic.Pointer[limits]
	depthBytes             atomic.Int64
	rejectedCount          atomic.Uint64
	droppedCount           atomic.Uint64
	expiredCount           atomic.Uint64
	deadLetteredCount      atomic.Uint64
	deadLetterDroppedCount atomic.Uint64

	// On a replica set's leader: messages the FSM dropped that were not
	// at the head of the queue (replication_limits.go).
	forgot       forgotten
	hasForgotten atomic.Bool
}

func newChannel(t *Topic, name string) (*Channel, error) {
	n := t.nsqd
	c := &Channel{
		name:      name,
		topicName: t.name,
		ephemeral: protocol.IsEphemeral(name),
		nsqd:      n,
		topic:     t,
		log:       n.logger.With("topic", t.name, "channel", name),
		clients:   make(map[int64]*client),
	}
	if !c.ephemeral {
		if err := c.openStorage(); err != nil {
			return nil, err
		}
	}
	c.e2e = n.newLatencyWindow()
	return c, nil
}

// ErrExiting is returned for operations on a topic or channel being deleted
// or on a daemon shutting down.
var ErrExiting = errors.New("exiting")

// put queues new messages from the topic; message_count counts those
// accepted.
func (c *Channel) put(msgs []*Message) error {
	accepted, err := c.enqueue(msgs)
	c.messageCount.Add(uint64(accepted))
	if l := c.lim.Load(); l != nil {
		c.afterPut(l, 0) // enqueue counted the bytes
	}
	return err
}

// putBatch queues a new publish in the memory queue as it is, if it fits
// there whole; otherwise its messages go through put.
func (c *Channel) putBatch(b *pubBatch) error {
	n := len(b.bodies)
	c.mu.Lock()
	if !c.exiting && c.mem.len()+n <= c.memQueueSize() {
		c.mem.pushBatch(b)
		c.wakeWaitersLocked(n)
		c.mu.Unlock()
		c.messageCount.Add(uint64(n))
		if l := c.lim.Load(); l != nil {
			c.afterPut(l, batchBytes(b))
		}
		return nil
	}
	c.mu.Unlock()
	return c.put(b.messages(0))
}

// enqueue puts messages in the memory queue, the deferred heap (deadline in
// the future) or, past --mem-queue-size, the disk queue. An ephemeral
// channel has no disk: what does not fit in memory is handed to a waiting
// consumer if there is one (so --mem-queue-size=0 still delivers, as NSQ's
// direct hand-over does) and dropped otherwise. It returns how many
// messages were accepted.
//
// In durable mode new messages go to the disk queue (memQueueSize is 0)
// and new deferred ones to the journal; journaled messages (requeued,
// restored) stay in memory, since the journal already holds them. The
// caller then calls syncDurable.
func (c *Channel) enqueue(msgs []*Message) (int, error) {
	var overflow []*Message
	now := time.Now().UnixNano()
	memMax := c.memQueueSize()
	c.mu.Lock()
	if c.exiting {
		c.mu.Unlock()
		return 0, ErrExiting
	}
	if c.backend == nil {
		memMax += len(c.waiters)
	}
	added := 0
	for _, m := range msgs {
		switch {
		case m.deadline > now:
			if !m.journaled {
				c.journalDeferred(m)
			}
			c.deferred.add(m)
			c.deferredCount.Add(1)
		case m.journaled || c.mem.len() < memMax:
			c.mem.push(m)
			added++
		default:
			overflow = append(overflow, m)
		}
	}
	if added > 0 {
		c.wakeWaitersLocked(added)
	}
	c.mu.Unlock()
	if c.lim.Load() != nil {
		c.addBytes(bodyBytes(msgs))
		if c.backend == nil {
			c.addBytes(-bodyBytes(overflow)) // dropped below
		}
	}
	if len(overflow) == 0 {
		return len(msgs), nil
	}
	if c.backend == nil {
		return len(msgs) - len(overflow), nil
	}
	if err := c.nsqd.writeBackend(c.backend, overflow); err != nil {
		return len(msgs) - len(overflow), err
	}
	// Waiting pumps read the disk queue when they wake.
	c.mu.Lock()
	c.wakeWaitersLocked(len(overflow))
	c.mu.Unlock()
	return len(msgs), nil
}

// wakeWaitersLocked gives the turn to the k oldest waiting pumps (at most
// one per message added): each leaves the waiter list with its turn flag
// set and is woken. A pump with the turn either takes in take or, if it
// can no longer deliver, passes the turn on (passTurn); so a message never
// waits in the queue while a waiting pump sleeps. The sends never block:
// each client's wake channel has room for one pending signal.
func (c *Channel) wakeWaitersLocked(k int) {
	k = min(k, len(c.waiters))
	if k == 0 {
		return
	}
	for _, cl := range c.waiters[:k] {
		cl.waiting = false
		cl.turn.Store(true)
		cl.wakeUp()
	}
	n := copy(c.waiters, c.waiters[k:])
	clear(c.waiters[n:])
	c.waiters = c.waiters[:n]
}

// wakeAllWaitersLocked wakes every waiting pump (the channel is going away).
func (c *Channel) wakeAllWaitersLocked() { c.wakeWaitersLocked(len(c.waiters)) }

// take moves up to max messages from the memory queue to dst. When the
// queue is empty the client is registered to be woken by a later put: at
// the end of the waiter list, or at its head if the client had the turn
// and another pump took the messages first.
func (c *Channel) take(dst []*Message, max int, cl *client) []*Message {
	c.mu.Lock()
	turn := cl.turn.Load()
	if turn {
		cl.turn.Store(false)
	}
	if c.mem.len() == 0 {
		if !cl.waiting && !c.exiting {
			cl.waiting = true
			if turn {
				c.waiters = slices.Insert(c.waiters, 0, cl)
			} else {
				c.waiters = append(c.waiters, cl)
			}
		}
		c.mu.Unlock()
		return dst
	}
	cl.slots = c.mem.popSlots(cl.slots[:0], max)
	c.mu.Unlock()
	dst = materialize(dst, cl.slots)
	clear(cl.slots)
	return dst
}

// passTurn hands a turn that cl got (wakeWaitersLocked) but cannot use (its
// RDY went down, it is full or closing) to the next waiting pump.
func (c *Channel) passTurn(cl *client) {
	c.mu.Lock()
	if cl.turn.Load() {
		cl.turn.Store(false)
		if !c.paused.Load() && (c.mem.len() > 0 || c.backendDepth() > 0) {
			c.wakeWaitersLocked(1)
		}
	}
	c.mu.Unlock()
}

// readDisk appends up to max messages from the disk queue. A durable
// channel, or one still recognising copies of messages its journal had
// accounted for at startup, reads through readDiskChecked.
func (c *Channel) readDisk(dst []*Message, max int) []*Message {
	if c.journal == nil && !c.hasRecovered.Load() {
		return c.nsqd.readBackend(c.backend, dst, max, c.log)
	}
	return c.readDiskChecked(dst, max)
}

// requeue puts messages back after REQ 0, a timeout or a disconnect.
func (c *Channel) requeue(msgs []*Message) {
	r := c.nsqd.repl.Load()
	for _, m := range msgs {
		m.deadline = 0
		if r != nil && !c.ephemeral && !c.topic.ephemeral {
			r.requeued(c, m)
		}
	}
	if _, err := c.enqueue(msgs); err != nil && !errors.Is(err, ErrExiting) {
		c.log.Error("CHANNEL: failed to requeue messages", "count", len(msgs), "err", err)
	}
}

// takeQueued removes from a follower's relayed channel the messages its
// relay gives back (tuneRelays): from the head of the memory queue, every
// one beyond the first keep and every one that arrived (deliveryTS) at or
// before before. A follower's memory queue holds single relayed messages
// in arrival order; messages in the disk queue stay.
func (c *Channel) takeQueued(keep int, before int64) []*Message {
	var out []*Message
	c.mu.Lock()
	for {
		m := c.mem.first()
		if m == nil || (c.mem.len() <= keep && m.deliveryTS > before) {
			break
		}
		c.mem.shift()
		out = append(out, m)
	}
	c.mu.Unlock()
	if len(out) > 0 && c.lim.Load() != nil {
		c.addBytes(-bodyBytes(out))
	}
	return out
}

// deferMessage holds a message until now + d (REQ with a timeout). In
// durable mode its journal record gets the new deliver-at time; it reaches
// the disk with the next flush, and until then a crash only makes it
// deliverable at once.
func (c *Channel) deferMessage(m *Message, d time.Duration) {
	m.deadline = time.Now().Add(d).UnixNano()
	if r := c.nsqd.repl.Load(); r != nil && !c.ephemeral && !c.topic.ephemeral {
		r.requeued(c, m)
	}
	c.journalDeferred(m)
	if _, err := c.enqueue([]*Message{m}); err != nil && !errors.Is(err, ErrExiting) {
		c.log.Error("CHANNEL: failed to defer message", "err", err)
	}
}

// processDeferred moves due deferred messages to the queue. Called by the
// queue scan loop.
func (c *Channel) processDeferred(now int64) {
	if c.deferredCount.Load() == 0 {
		return
	}
	c.mu.Lock()
	due := c.deferred.popDue(nil, now)
	c.mu.Unlock()
	if len(due) == 0 {
		return
	}
	c.deferredCount.Add(-int64(len(due)))
	if c.lim.Load() != nil {
		c.addBytes(-bodyBytes(due)) // requeue counts them again
	}
	c.requeue(due)
}

// addClient subscribes cl, enforcing --max-channel-consumers.
func (c *Channel) addClient(cl *client) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exiting {
		return ErrExiting
	}
	if c.nsqd.drain.active.Load() && c.replicated() {
		// A draining replica takes nothing new from its set: a new
		// subscriber would get nothing here (replication_limits.go).
		return ErrDraining
	}
	if max := c.nsqd.opts.MaxChannelConsumers; max > 0 && len(c.clients) >= max {
		return fmt.Errorf("consumers for %s:%s exceeds limit of %d", c.topicName, c.name, max)
	}
	c.clients[cl.id] = cl
	return nil
}

// removeClient unsubscribes cl; an ephemeral channel left without clients
// deletes itself.
func (c *Channel) removeClient(cl *client) {
	c.mu.Lock()
	if _, ok := c.clients[cl.id]; !ok {
		c.mu.Unlock()
		return
	}
	delete(c.clients, cl.id)
	if cl.waiting {
		cl.waiting = false
		if i := slices.Index(c.waiters, cl); i >= 0 {
			c.waiters = slices.Delete(c.waiters, i, i+1)
		}
	}
	if cl.turn.Load() {
		cl.turn.Store(false)
		if c.mem.len() > 0 || c.backendDepth() > 0 {
			c.wakeWaitersLocked(1)
		}
	}
	empty := len(c.clients) == 0 && !c.exiting
	c.mu.Unlock()
	if empty && c.ephemeral {
		c.topic.deleteEphemeralChannel(c)
	}
}

func (c *Channel) clientList() []*client {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*client, 0, len(c.clients))
	for _, cl := range c.clients {
		out = append(out, cl)
	}
	return out
}

// ownerOf reports whether some other client of the channel has id in flight.
func (c *Channel) ownedByOther(id MessageID, self *client) bool {
	for _, cl := range c.clientList() {
		if cl != self && cl.hasInFlight(id) {
			return true
		}
	}
	return false
}

// Pause stops deliveries to every consumer of the channel.
func (c *Channel) Pause() error {
	if r := c.nsqd.repl.Load(); r != nil && !c.ephemeral && !c.topic.ephemeral {
		return r.meta(replication.OpPauseChannel, c.topicName, c.name)
	}
	c.pause()
	return nil
}

func (c *Channel) pause() { c.paused.Store(true) }

// Unpause resumes deliveries.
func (c *Channel) Unpause() error {
	if r := c.nsqd.repl.Load(); r != nil && !c.ephemeral && !c.topic.ephemeral {
		return r.meta(replication.OpUnpauseChannel, c.topicName, c.name)
	}
	c.unpause()
	return nil
}

func (c *Channel) unpause() {
	c.paused.Store(false)
	for _, cl := range c.clientList() {
		cl.wakeUp()
	}
}

func (c *Channel) isExiting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exiting
}

// IsPaused reports whether the channel is paused.
func (c *Channel) IsPaused() bool { return c.paused.Load() }

// Empty drops the channel's queued, deferred and in-flight messages.
func (c *Channel) Empty() error {
	if r := c.nsqd.repl.Load(); r != nil && !c.ephemeral && !c.topic.ephemeral {
		return r.meta(replication.OpEmptyChannel, c.topicName, c.name)
	}
	return c.empty()
}

func (c *Channel) empty() error {
	c.mu.Lock()
	c.mem.drain()
	c.deferred = nil
	c.deferredCount.Store(0)
	c.depthBytes.Store(0)
	clients := make([]*client, 0, len(c.clients))
	for _, cl := range c.clients {
		clients = append(clients, cl)
	}
	c.mu.Unlock()
	for _, cl := range clients {
		cl.dropInFlight()
	}
	err := c.journal.reset()
	if c.backend != nil {
		err = errors.Join(err, c.backend.Empty())
	}
	return err
}

// Depth is the number of queued messages (memory and disk), excluding
// in-flight and deferred ones.
func (c *Channel) Depth() int64 {
	c.mu.Lock()
	d := int64(c.mem.len())
	c.mu.Unlock()
	return d + c.backendDepth()
}

func (c *Channel) backendDepth() int64 {
	if c.backend == nil {
		return 0
	}
	return c.backend.Depth()
}

// markExiting stops the channel accepting messages and subscribers and
// returns its clients.
func (c *Channel) markExiting() []*client {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exiting = true
	out := make([]*client, 0, len(c.clients))
	for _, cl := range c.clients {
		out = append(out, cl)
	}
	c.wakeAllWaitersLocked()
	return out
}

// delete disconnects the channel's clients and removes its data.
func (c *Channel) delete() error {
	for _, cl := range c.markExiting() {
		cl.closeConn()
	}
	c.mu.Lock()
	c.mem.drain()
	c.deferred = nil
	c.mu.Unlock()
	removeDeferredFile(c.nsqd.dataPath(), c.backendName())
	err := c.journal.remove()
	if c.backend != nil {
		err = errors.Join(err, c.backend.Delete())
	}
	return err
}

func (c *Channel) backendName() string { return c.topicName + ":" + c.name }

// close flushes the memory queue to disk and the deferred heap to its side
// file, then closes the disk queue. The daemon calls it at shutdown after
// every client has gone (so their in-flight messages are back in the queue).
// Journaled messages (durable mode) stay in the journal instead.
func (c *Channel) close() error {
	c.mu.Lock()
	c.exiting = true
	mem := notJournaled(c.mem.drain())
	deferred := notJournaled(c.deferred)
	c.deferred = nil
	c.mu.Unlock()
	if c.backend == nil {
		return nil
	}
	if len(mem) > 0 || len(deferred) > 0 {
		c.log.Info("CHANNEL: flushing messages to backend", "memory", len(mem), "deferred", len(deferred))
	}
	err := errors.Join(
		c.nsqd.writeBackend(c.backend, mem),
		writeDeferredFile(c.nsqd.dataPath(), c.backendName(), deferred),
	)
	return errors.Join(err, c.flushJournal(), c.backend.Close(), c.journal.close())
}

// loadDeferred restores deferred messages saved by a previous shutdown.
func (c *Channel) loadDeferred() {
	if c.backend == nil {
		return
	}
	msgs, err := readDeferredFile(c.nsqd.dataPath(), c.backendName())
	if err != nil {
		c.log.Error("CHANNEL: failed to load deferred messages", "err", err)
	}
	if len(msgs) == 0 {
		return
	}
	if _, err := c.enqueue(msgs); err != nil {
		c.log.Error("CHANNEL: failed to restore deferred messages", "err", err)
		return
	}
	if err := c.syncDurable(); err != nil {
		c.log.Error("CHANNEL: failed to journal deferred messages", "err", err)
		return
	}
	removeDeferredFile(c.nsqd.dataPath(), c.backendName())
	c.log.Info("CHANNEL: restored deferred messages", "count", len(msgs))
}

package nsqd

import (
	"errors"
	"fmt"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/nsqd/replication"
)

// Bounded queues, message TTL and server-side max attempts (not in NSQ; see
// the README's "Beyond NSQ"). Everything here is off by default: a topic or
// channel with nothing limited has a nil effective-limits pointer, and the
// hot path pays one atomic pointer load for it (Topic.publish, Channel.put,
// client.deliver, REQ and timeouts).
//
// Configuration comes in three layers: nsqd-wide flags (Options), a topic's
// overrides and a channel's overrides (POST /topic/config, /channel/config),
// kept in nsqd.dat in "config" fields NSQ 1.3 ignores. A channel inherits
// overflow, msg_ttl_ms, max_attempts, dead_letter_topic,
// dead_letter_envelope, dead_letter_expired and dead_letter_dropped from its
// topic's overrides;
// max_depth and max_bytes of a topic bound the topic's own buffer only.
//
// Every change of overrides goes through NSQD.ApplyConfig with a
// ConfigChange, a plain value a replication log can carry.

// Overflow policies.
const (
	OverflowReject     = "reject"
	OverflowDropOldest = "drop-oldest"
)

// Limits are the overrides of one topic or channel. A nil field inherits
// (from the topic, then the nsqd-wide flag); 0 means unlimited or off.
type Limits struct {
	MaxDepth    *int64  `json:"max_depth,omitempty"`
	MaxBytes    *int64  `json:"max_bytes,omitempty"`
	Overflow    *string `json:"overflow,omitempty"`
	MsgTTLMs    *int64  `json:"msg_ttl_ms,omitempty"`
	MaxAttempts *int64  `json:"max_attempts,omitempty"`
	// DeadLetterTopic is where dead letters go; "" means the default
	// <topic>.<channel>.dlq and "-" drops them (counted).
	DeadLetterTopic *string `json:"dead_letter_topic,omitempty"`
	// DeadLetterEnvelope wraps a dead letter's body in a JSON envelope with
	// its origin.
	DeadLetterEnvelope *bool `json:"dead_letter_envelope,omitempty"`
	// DeadLetterExpired dead-letters messages expired by the TTL instead of
	// dropping them.
	DeadLetterExpired *bool `json:"dead_letter_expired,omitempty"`
	// DeadLetterDropped dead-letters messages drop-oldest removes instead
	// of dropping them.
	DeadLetterDropped *bool `json:"dead_letter_dropped,omitempty"`
}

func (l Limits) isZero() bool { return l == Limits{} }

// ConfigChange replaces the overrides of a topic (Channel empty) or of one
// of its channels with Limits.
type ConfigChange struct {
	Topic   string `json:"topic"`
	Channel string `json:"channel,omitempty"`
	Limits  Limits `json:"limits"`
}

// ErrInvalidConfig wraps every validation failure of a ConfigChange.
var ErrInvalidConfig = errors.New("invalid config")

// validate checks the values a change sets.
func (cc ConfigChange) validate() error {
	l := cc.Limits
	var errs []error
	for name, p := range map[string]*int64{"max_depth": l.MaxDepth, "max_bytes": l.MaxBytes, "msg_ttl_ms": l.MsgTTLMs, "max_attempts": l.MaxAttempts} {
		if p != nil && *p < 0 {
			errs = append(errs, fmt.Errorf("%s must be >= 0", name))
		}
	}
	if l.MaxAttempts != nil && *l.MaxAttempts > 65535 {
		errs = append(errs, errors.New("max_attempts must be <= 65535"))
	}
	if l.Overflow != nil && *l.Overflow != OverflowReject && *l.Overflow != OverflowDropOldest {
		errs = append(errs, fmt.Errorf("overflow must be %s or %s", OverflowReject, OverflowDropOldest))
	}
	if d := l.DeadLetterTopic; d != nil && *d != "" && *d != "-" && !protocol.IsValidTopicName(*d) {
		errs = append(errs, fmt.Errorf("dead_letter_topic %q is not a valid topic name", *d))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

func (o *Options) validateLimits() []error {
	var errs []error
	if o.MaxTopicDepth < 0 || o.MaxTopicBytes < 0 || o.MaxChannelDepth < 0 || o.MaxChannelBytes < 0 {
		errs = append(errs, errors.New("--max-topic-depth, --max-topic-bytes, --max-channel-depth and --max-channel-bytes must be >= 0"))
	}
	if o.Overflow != OverflowReject && o.Overflow != OverflowDropOldest {
		errs = append(errs, fmt.Errorf("--overflow must be %s or %s", OverflowReject, OverflowDropOldest))
	}
	if o.MsgTTL < 0 {
		errs = append(errs, errors.New("--msg-ttl must be >= 0"))
	}
	if o.MaxAttempts < 0 || o.MaxAttempts > 65535 {
		errs = append(errs, errors.New("--max-attempts must be [0,65535]"))
	}
	return errs
}

// limits are the effective limits of a topic's buffer or of a channel,
// resolved from the three layers; immutable once published in an
// atomic.Pointer. A nil *limits means nothing is limited.
type limits struct {
	maxDepth, maxBytes int64
	dropOldest         bool
	ttl                int64 // ns
	maxAttempts        int64
	deadLetterTopic    string // "" drops
	envelope           bool
	deadLetterExpired  bool
	deadLetterDropped  bool
}

// active reports whether anything is limited.
func (l *limits) active() bool {
	return l.maxDepth > 0 || l.maxBytes > 0 || l.ttl > 0 || l.maxAttempts > 0
}

// rejects reports whether a full queue refuses publishes.
func (l *limits) rejects() bool { return !l.dropOldest && (l.maxDepth > 0 || l.maxBytes > 0) }

// EffectiveLimits is the JSON of the effective configuration (GET
// /topic/config, /channel/config and /stats), with where each value came
// from: "default" (flag), "topic" or "channel".
type EffectiveLimits struct {
	MaxDepth           int64             `json:"max_depth"`
	MaxBytes           int64             `json:"max_bytes"`
	Overflow           string            `json:"overflow"`
	MsgTTLMs           int64             `json:"msg_ttl_ms"`
	MaxAttempts        int64             `json:"max_attempts,omitempty"`
	DeadLetterTopic    string            `json:"dead_letter_topic,omitempty"`
	DeadLetterEnvelope bool              `json:"dead_letter_envelope,omitempty"`
	DeadLetterExpired  bool              `json:"dead_letter_expired,omitempty"`
	DeadLetterDropped  bool              `json:"dead_letter_dropped,omitempty"`
	Source             map[string]string `json:"source,omitempty"`
}

// resolve computes the effective limits of the topic's buffer (channel nil)
// or of a channel, from the channel's overrides ch, the topic's tp and the
// flags.
func (n *NSQD) resolve(topic, channel string, tp, ch *Limits) EffectiveLimits {
	o := n.defaults()
	e := EffectiveLimits{Source: map[string]string{}}
	pick := func(chv, tpv bool) string {
		switch {
		case ch != nil && chv:
			return "channel"
		case tpv:
			return "topic"
		}
		return "default"
	}
	var c Limits
	if ch != nil {
		c = *ch
	}
	t := *tp
	if ch == nil { // the topic's own buffer
		e.MaxDepth, e.Source["max_depth"] = o.MaxTopicDepth, "default"
		if t.MaxDepth != nil {
			e.MaxDepth, e.Source["max_depth"] = *t.MaxDepth, "topic"
		}
		e.MaxBytes, e.Source["max_bytes"] = o.MaxTopicBytes, "default"
		if t.MaxBytes != nil {
			e.MaxBytes, e.Source["max_bytes"] = *t.MaxBytes, "topic"
		}
	} else {
		e.MaxDepth, e.Source["max_depth"] = o.MaxChannelDepth, "default"
		if c.MaxDepth != nil {
			e.MaxDepth, e.Source["max_depth"] = *c.MaxDepth, "channel"
		}
		e.MaxBytes, e.Source["max_bytes"] = o.MaxChannelBytes, "default"
		if c.MaxBytes != nil {
			e.MaxBytes, e.Source["max_bytes"] = *c.MaxBytes, "channel"
		}
	}
	e.Overflow = o.Overflow
	e.Source["overflow"] = pick(c.Overflow != nil, t.Overflow != nil)
	if v := firstNonNil(c.Overflow, t.Overflow); v != nil {
		e.Overflow = *v
	}
	e.MsgTTLMs = o.MsgTTLMs
	e.Source["msg_ttl_ms"] = pick(c.MsgTTLMs != nil, t.MsgTTLMs != nil)
	if v := firstNonNil(c.MsgTTLMs, t.MsgTTLMs); v != nil {
		e.MsgTTLMs = *v
	}
	if ch == nil {
		return e
	}
	e.MaxAttempts = o.MaxAttempts
	e.Source["max_attempts"] = pick(c.MaxAttempts != nil, t.MaxAttempts != nil)
	if v := firstNonNil(c.MaxAttempts, t.MaxAttempts); v != nil {
		e.MaxAttempts = *v
	}
	e.DeadLetterTopic = defaultDeadLetterTopic(topic, channel)
	e.Source["dead_letter_topic"] = pick(c.DeadLetterTopic != nil, t.DeadLetterTopic != nil)
	if v := firstNonNil(c.DeadLetterTopic, t.DeadLetterTopic); v != nil && *v != "" {
		e.DeadLetterTopic = *v
	}
	if v := firstNonNil(c.DeadLetterEnvelope, t.DeadLetterEnvelope); v != nil {
		e.DeadLetterEnvelope = *v
	}
	if v := firstNonNil(c.DeadLetterExpired, t.DeadLetterExpired); v != nil {
		e.DeadLetterExpired = *v
	}
	if v := firstNonNil(c.DeadLetterDropped, t.DeadLetterDropped); v != nil {
		e.DeadLetterDropped = *v
	}
	return e
}

func firstNonNil[T any](ps ...*T) *T {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

// defaultDeadLetterTopic is <topic>.<channel>.dlq, or "-" (drop) when that
// is not a valid topic name (too long); one rule for single nodes and
// replica sets.
func defaultDeadLetterTopic(topic, channel string) string {
	return replication.DefaultDeadLetterTopic(topic, channel)
}

// compile turns effective limits into the hot path's form; nil when
// nothing is limited.
func (e EffectiveLimits) compile() *limits {
	l := &limits{
		maxDepth:          e.MaxDepth,
		maxBytes:          e.MaxBytes,
		dropOldest:        e.Overflow == OverflowDropOldest,
		ttl:               e.MsgTTLMs * int64(time.Millisecond),
		maxAttempts:       e.MaxAttempts,
		envelope:          e.DeadLetterEnvelope,
		deadLetterExpired: e.DeadLetterExpired,
		deadLetterDropped: e.DeadLetterDropped,
	}
	if e.DeadLetterTopic != "-" {
		l.deadLetterTopic = e.DeadLetterTopic
	}
	if !l.active() {
		return nil
	}
	return l
}

// ApplyConfig replaces the overrides of a topic or channel, recomputes the
// effective limits of the topic and its channels and persists nsqd.dat.
// The topic (and channel) must exist.
func (n *NSQD) ApplyConfig(cc ConfigChange) error {
	if err := cc.validate(); err != nil {
		return err
	}
	t, err := n.GetExistingTopic(cc.Topic)
	if err != nil {
		return err
	}
	if r := n.repl.Load(); r != nil && !t.ephemeral && !protocol.IsEphemeral(cc.Channel) {
		return r.config(t, cc)
	}
	if err := t.setOverrides(cc.Channel, cc.Limits); err != nil {
		return err
	}
	return n.PersistMetadata()
}

// setOverrides stores the overrides (channel "" = the topic's) and
// recomputes the effective limits.
func (t *Topic) setOverrides(channel string, l Limits) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if channel == "" {
		t.overrides = l
	} else {
		c, ok := t.channels[channel]
		if !ok {
			return ErrChannelNotFound
		}
		c.overrides = l
	}
	t.refreshLimitsLocked()
	return nil
}

// refreshLimitsLocked recomputes the effective limits of the topic and of
// every channel. Callers hold t.mu for writing.
func (t *Topic) refreshLimitsLocked() {
	n := t.nsqd
	tl := n.resolve(t.name, "", &t.overrides, nil).compile()
	guard := &topicGuard{}
	if tl != nil && tl.rejects() {
		guard.own = tl
	}
	for _, c := range t.chans {
		cl := n.resolve(t.name, c.name, &t.overrides, &c.overrides).compile()
		c.lim.Store(cl)
		if cl != nil && cl.rejects() && !c.ephemeral {
			guard.reject = append(guard.reject, c)
		}
		if cl != nil && cl.dropOldest && cl.deadLetterDropped {
			guard.dropDL = true
		}
	}
	if guard.own == nil && len(guard.reject) == 0 && !guard.dropDL {
		guard = nil
	}
	t.guard.Store(guard)
	t.lim.Store(tl)
}

// topicGuard is what a publish must check before enqueuing anything: the
// topic's own buffer and the channels whose full queue rejects publishes.
// dropDL: a channel's drop-oldest dead-letters, so publishers publish
// what it queued (publishDrops) after a put.
type topicGuard struct {
	own    *limits // nil unless the topic's own buffer rejects
	reject []*Channel
	dropDL bool
}

// QueueFullError is a publish refused by a full topic or channel (overflow
// reject). Its text follows "PUB failed " on the wire.
type QueueFullError struct {
	Topic, Channel string // Channel "" = the topic's own buffer
	Limit          string // max_depth or max_bytes
	Value          int64
}

func (e *QueueFullError) Error() string {
	if e.Channel == "" {
		return fmt.Sprintf("topic %s is full (%s %d)", e.Topic, e.Limit, e.Value)
	}
	return fmt.Sprintf("channel %s:%s is full (%s %d)", e.Topic, e.Channel, e.Limit, e.Value)
}

// admit checks that a publish of n messages of size body bytes fits, all
// or nothing: in every rejecting channel when the topic hands messages to
// its channels, else in the topic's own buffer. Checks and puts are not one
// atomic step, so concurrent publishes may overshoot a limit by a batch
// each.
func (t *Topic) admit(g *topicGuard, n int, size int64) error {
	t.mu.RLock()
	toChannels := len(t.chans) > 0 && !t.paused && !t.holding
	t.mu.RUnlock()
	if !toChannels {
		if l := g.own; l != nil && l.rejects() {
			if err := checkFits(l, t.Depth(), t.depthBytes.Load(), n, size); err != nil {
				err.Topic = t.name
				t.rejectedCount.Add(uint64(n))
				return err
			}
		}
		return nil
	}
	for _, c := range g.reject {
		l := c.lim.Load()
		if l == nil || !l.rejects() || c.isExiting() {
			continue
		}
		if err := checkFits(l, c.limitDepth(), c.depthBytes.Load(), n, size); err != nil {
			err.Topic, err.Channel = t.name, c.name
			t.rejectedCount.Add(uint64(n))
			c.rejectedCount.Add(uint64(n))
			return err
		}
	}
	return nil
}

func checkFits(l *limits, depth, bytes int64, n int, size int64) *QueueFullError {
	if l.maxDepth > 0 && depth+int64(n) > l.maxDepth {
		return &QueueFullError{Limit: "max_depth", Value: l.maxDepth}
	}
	if l.maxBytes > 0 && bytes+size > l.maxBytes {
		return &QueueFullError{Limit: "max_bytes", Value: l.maxBytes}
	}
	return nil
}

// limitDepth is what a channel's max_depth counts: queued (memory and
// disk) and deferred messages, not those in flight.
func (c *Channel) limitDepth() int64 { return c.Depth() + c.deferredCount.Load() }

func bodyBytes(msgs []*Message) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m.Body))
	}
	return n
}

func batchBytes(b *pubBatch) int64 {
	var n int64
	for _, body := range b.bodies {
		n += int64(len(body))
	}
	return n
}

// Byte accounting. depth_bytes counts the body bytes of queued and deferred
// messages while the channel has limits (a nil limits pointer skips it, so
// the default path does not pay for it); bytes queued before limits were
// set, or restored from the data directory at start, are not counted, and
// the count never goes below 0 (README: "How depth_bytes is counted").
func (c *Channel) addBytes(n int64) {
	if c.depthBytes.Add(n) < 0 {
		c.depthBytes.Store(0)
	}
}

// afterPut applies drop-oldest once new messages are queued.
func (c *Channel) afterPut(l *limits, size int64) {
	c.addBytes(size)
	if l.dropOldest && (l.maxDepth > 0 || l.maxBytes > 0) && !c.replicated() { // a set's FSM drops
		c.dropOldest(l)
	}
}

// excess is how many messages drop-oldest removes from a queue holding
// depth messages of bytes body bytes: what passes max_depth, or at least
// one while max_bytes is passed (sizes are known only once popped).
func (l *limits) excess(depth, bytes int64) int64 {
	var n int64
	if l.maxDepth > 0 {
		n = depth - l.maxDepth
	}
	if l.maxBytes > 0 && bytes > l.maxBytes {
		n = max(n, 1)
	}
	return n
}

// dropOldest removes messages from the head of the queue (the disk queue
// first when it has any, as it holds what spilled past a full memory
// queue) until the channel is within its limits.
func (c *Channel) dropOldest(l *limits) {
	for {
		excess := l.excess(c.limitDepth(), c.depthBytes.Load())
		if excess <= 0 {
			return
		}
		msgs := c.popHead(int(min(excess, maxDeliverBatch)))
		if len(msgs) == 0 {
			return // what is left is deferred
		}
		c.droppedCount.Add(uint64(len(msgs)))
		if l.deadLetterDropped {
			// The caller holds the topic's mu: the dead letters are
			// published once it is released (Topic.publishDrops).
			c.topic.queueDrops(c, l, msgs)
			continue
		}
		for _, m := range msgs {
			c.finished(m)
		}
		if c.journal != nil {
			if err := c.flushJournal(); err != nil {
				c.log.Error("CHANNEL: failed to journal dropped messages", "err", err)
			}
		}
	}
}

// dropOldest bounds the topic's own buffer (while it has no channel or is
// paused): it discards messages from the head of the memory backlog, then
// of the disk queue, until the topic is within its limits. Deferred
// messages are not dropped. Dropped messages are counted in dropped_count;
// they are not dead-lettered (dead letters are per channel).
func (t *Topic) dropOldest(l *limits) {
	for {
		excess := l.excess(t.Depth(), t.depthBytes.Load())
		if excess <= 0 {
			return
		}
		msgs := t.popHead(int(min(excess, maxDeliverBatch)))
		if len(msgs) == 0 {
			return // what is left is deferred
		}
		t.commitDiskRead() // durable mode: the read from disk is final
		t.droppedCount.Add(uint64(len(msgs)))
	}
}

// pendingDrop is a batch dropped by drop-oldest, waiting to be
// dead-lettered.
type pendingDrop struct {
	c    *Channel
	l    *limits
	msgs []*Message
}

// queueDrops keeps messages dropped from c for publishDrops. They are out
// of c's queue but not finished: in --durable mode they stay in c's
// journal until their dead letters are fsynced.
func (t *Topic) queueDrops(c *Channel, l *limits, msgs []*Message) {
	t.dropMu.Lock()
	t.drops = append(t.drops, pendingDrop{c: c, l: l, msgs: msgs})
	t.dropsPending.Store(true)
	t.dropMu.Unlock()
}

// publishDrops dead-letters what drop-oldest queued. Callers hold no
// topic or channel lock (it takes NSQD.mu and the dead-letter topic's).
func (t *Topic) publishDrops() {
	t.dropMu.Lock()
	drops := t.drops
	t.drops = nil
	t.dropsPending.Store(false)
	t.dropMu.Unlock()
	for _, d := range drops {
		d.c.deadLetter(d.l, d.msgs, reasonMaxLen)
	}
}

// beforeDeliver runs when messages leave the queue for a client: their
// bytes leave depth_bytes, and those older than the TTL are expired instead
// of delivered.
func (c *Channel) beforeDeliver(l *limits, msgs []*Message, now int64) []*Message {
	c.addBytes(-bodyBytes(msgs))
	if replicated, leads := c.replicaRole(); replicated {
		if !leads {
			return msgs // the leader decided before it relayed them
		}
		if c.hasForgotten.Load() {
			msgs = c.skipForgotten(msgs)
		}
	}
	if l.ttl <= 0 {
		return msgs
	}
	k := 0
	var expired []*Message
	for _, m := range msgs {
		if now-m.Timestamp > l.ttl {
			expired = append(expired, m)
			continue
		}
		msgs[k] = m
		k++
	}
	clear(msgs[k:])
	if len(expired) > 0 {
		c.expire(l, expired)
	}
	return msgs[:k]
}

// expire drops or dead-letters messages past the TTL.
func (c *Channel) expire(l *limits, msgs []*Message) {
	c.expiredCount.Add(uint64(len(msgs)))
	if l.deadLetterExpired {
		c.deadLetter(l, msgs, reasonExpired)
		return
	}
	for _, m := range msgs {
		c.finished(m)
	}
}

// sweepExpired expires messages at the head of the memory queue, so an
// unconsumed channel does not keep them. Called by the queue scan loop.
func (c *Channel) sweepExpired(now int64) {
	l := c.lim.Load()
	if l == nil || l.ttl <= 0 {
		return
	}
	if replicated, leads := c.replicaRole(); replicated && !leads {
		return
	}
	for {
		c.mu.Lock()
		var msgs []*Message
		for c.mem.len() > 0 && len(msgs) < maxDeliverBatch {
			ts := c.mem.headTimestamp()
			if now-ts <= l.ttl {
				break
			}
			msgs = c.mem.popN(msgs, 1)
		}
		c.mu.Unlock()
		if len(msgs) == 0 {
			return
		}
		c.addBytes(-bodyBytes(msgs))
		c.expire(l, msgs)
	}
}

// headTimestamp is the timestamp of the first message. The queue must not
// be empty.
func (q *msgQueue) headTimestamp() int64 {
	r := q.runs[q.head]
	if r.from < 0 {
		return (*Message)(r.p).Timestamp
	}
	return (*pubBatch)(r.p).timestamp
}

func (t *Topic) addBytes(n int64) {
	if t.depthBytes.Add(n) < 0 {
		t.depthBytes.Store(0)
	}
}

// overridesOf returns a copy of the overrides of the topic (c nil) or of
// c; nil when there are none.
func (t *Topic) overridesOf(c *Channel) *Limits {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l := t.overrides
	if c != nil {
		l = c.overrides
	}
	if l.isZero() {
		return nil
	}
	return &l
}

// LimitStats are the /stats fields of limits and dead letters (not in
// NSQ); all omitted while a topic or channel has no limit and no count, so
// a default nsqd's /stats is NSQ's.
type LimitStats struct {
	Config                 *EffectiveLimits `json:"config,omitempty"`
	DepthBytes             int64            `json:"depth_bytes,omitempty"`
	RejectedCount          uint64           `json:"rejected_count,omitempty"`
	DroppedCount           uint64           `json:"dropped_count,omitempty"`
	ExpiredCount           uint64           `json:"expired_count,omitempty"`
	DeadLetteredCount      uint64           `json:"dead_lettered_count,omitempty"`
	DeadLetterDroppedCount uint64           `json:"dead_letter_dropped_count,omitempty"`
	// DeadLettersReceived counts the dead letters a dead-letter topic got
	// since start.
	DeadLettersReceived uint64 `json:"dead_letters_received,omitempty"`
}

func (t *Topic) limitStats() LimitStats {
	s := LimitStats{RejectedCount: t.rejectedCount.Load(), DroppedCount: t.droppedCount.Load()}
	if t.lim.Load() != nil {
		e := t.effective(nil)
		s.Config = &e
		s.DepthBytes = t.depthBytes.Load()
	}
	s.DeadLettersReceived = t.deadLetters.received()
	return s
}

func (c *Channel) limitStats() LimitStats {
	s := LimitStats{
		RejectedCount:          c.rejectedCount.Load(),
		DroppedCount:           c.droppedCount.Load(),
		ExpiredCount:           c.expiredCount.Load(),
		DeadLetteredCount:      c.deadLetteredCount.Load(),
		DeadLetterDroppedCount: c.deadLetterDroppedCount.Load(),
	}
	if c.lim.Load() != nil {
		e := c.topic.effective(c)
		s.Config = &e
		s.DepthBytes = c.depthBytes.Load()
	}
	return s
}

// effective resolves the effective limits of the topic's buffer (c nil) or
// of c.
func (t *Topic) effective(c *Channel) EffectiveLimits {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if c == nil {
		return t.nsqd.resolve(t.name, "", &t.overrides, nil)
	}
	return t.nsqd.resolve(t.name, c.name, &t.overrides, &c.overrides)
}

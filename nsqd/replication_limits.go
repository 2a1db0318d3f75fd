package nsqd

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nsqclone/nsq/nsqd/replication"
)

// Limits, TTL, max attempts and dead letters on a replica set
// (docs/replication.md, "Limits and dead letters"). The split:
//
//   - configuration is the set's: a topic's or channel's overrides are an
//     OpConfig entry (POST /topic/config, /channel/config on any replica)
//     that every replica applies through setOverrides, and the nsqd-wide
//     flags of the replica that leads are the set's defaults (OpDefaults):
//     every replica resolves its limits against those, not its own flags;
//   - the FSM enforces max_depth and max_bytes (reject, drop-oldest, dead
//     letters of dropped messages) on every replica alike; this node does
//     not, for a replicated topic or channel (no admit, no local
//     drop-oldest of a channel);
//   - the leader decides TTL and max attempts at delivery, REQ and timeout,
//     as a single node does, but instead of publishing the dead letter it
//     logs the decision (replication.Node.DeadLetter, a Settle entry); the
//     FSM moves the message to the dead-letter topic with its origin and
//     the leader delivers it from there. A follower decides nothing: its
//     channels only hold what its relay took from the leader.
//
// Counters (rejected, dropped, expired, dead-lettered) count on the replica
// where the event was decided: a refused publish where the client
// published, the rest on the leader; nsqadmin's sum counts each once.

// defaults are the nsqd-wide limits in force: the set's on a replica, the
// flags otherwise.
func (n *NSQD) defaults() replication.Defaults {
	d := n.opts.limitDefaults()
	if p := n.limitDefaults.Load(); p != nil {
		d = *p
	}
	if d.Overflow == "" {
		d.Overflow = OverflowReject
	}
	return d
}

// limitDefaults are the limit flags as the set's defaults (overflow reject,
// the default, as "").
func (o *Options) limitDefaults() replication.Defaults {
	d := replication.Defaults{
		MaxTopicDepth:   o.MaxTopicDepth,
		MaxTopicBytes:   o.MaxTopicBytes,
		MaxChannelDepth: o.MaxChannelDepth,
		MaxChannelBytes: o.MaxChannelBytes,
		Overflow:        o.Overflow,
		MsgTTLMs:        o.MsgTTL.Milliseconds(),
		MaxAttempts:     o.MaxAttempts,
	}
	if d.Overflow == OverflowReject {
		d.Overflow = ""
	}
	return d
}

// refreshAllLimits recomputes every topic's and channel's limits (the
// defaults changed).
func (n *NSQD) refreshAllLimits() {
	for _, t := range n.topicList() {
		t.mu.Lock()
		t.refreshLimitsLocked()
		t.mu.Unlock()
	}
}

// replicated reports whether the channel's state is the set's.
func (c *Channel) replicated() bool {
	return c.nsqd.repl.Load() != nil && !c.ephemeral && !c.topic.ephemeral
}

// replicaRole reports whether the channel's state is the set's and, if so,
// whether this replica is the set's dispatcher (its leader).
func (c *Channel) replicaRole() (replicated, leads bool) {
	r := c.nsqd.repl.Load()
	if r == nil || c.ephemeral || c.topic.ephemeral {
		return false, false
	}
	return true, r.dispatching.Load()
}

// config proposes a change of overrides to the set and waits until this
// replica applied it.
func (r *replicaSet) config(t *Topic, cc ConfigChange) error {
	if cc.Channel != "" {
		if _, err := t.GetExistingChannel(cc.Channel); err != nil {
			return err
		}
	}
	arg, err := json.Marshal(cc.Limits)
	if err != nil {
		return err
	}
	return r.metaArg(replication.OpConfig, cc.Topic, cc.Channel, string(arg))
}

// parseOverrides reads an OpConfig argument; the proposer validated it.
func parseOverrides(arg string) Limits {
	var l Limits
	if arg != "" {
		json.Unmarshal([]byte(arg), &l)
	}
	return l
}

// applyConfig applies an OpConfig entry (every replica).
func (r *replicaSet) applyConfig(topic, channel, arg string) error {
	t, err := r.n.GetExistingTopic(topic)
	if err != nil {
		return nil // as in the FSM: only what exists
	}
	if err := t.setOverrides(channel, parseOverrides(arg)); err != nil {
		if errors.Is(err, ErrChannelNotFound) {
			return nil
		}
		return err
	}
	return r.n.PersistMetadata()
}

// applyDefaults applies an OpDefaults entry (every replica).
func (r *replicaSet) applyDefaults(arg string) {
	d := replication.ParseDefaults(arg)
	if own := r.n.opts.limitDefaults(); own != d {
		r.n.logger.Warn("REPLICATION: the set's limit flags differ from this replica's; the set's apply",
			"set", d.Encode(), "own", own.Encode())
	}
	r.n.limitDefaults.Store(&d)
	r.n.refreshAllLimits()
}

// deadLetters reports messages that the leader takes out of c as dead
// letters (max attempts, TTL): the FSM moves them to the dead-letter topic.
// They are not finished here (no FIN): the Settle entry removes them.
func (r *replicaSet) deadLetters(c *Channel, l *limits, msgs []*Message, reason string) {
	if !r.dispatching.Load() {
		return // a follower's copies: the leader holds them in flight
	}
	why := replication.ReasonMaxAttempts
	switch reason {
	case reasonExpired:
		why = replication.ReasonExpired
	case reasonMaxLen:
		why = replication.ReasonMaxLen
	}
	for _, m := range msgs {
		if id, ok := messageIDValue(m.ID); ok {
			r.node.DeadLetter(c.topicName, c.name, id, m.Attempts, why)
		}
	}
	if l.deadLetterTopic == "" {
		c.deadLetterDroppedCount.Add(uint64(len(msgs)))
	} else {
		c.deadLetteredCount.Add(uint64(len(msgs)))
	}
}

// replicaSet is told what the set's limits do.
var _ replication.LimitDispatcher = (*replicaSet)(nil)

// Dropped implements replication.LimitDispatcher (leader only): the FSM removed
// ids from the channel (drop-oldest); the leader's copy forgets them.
func (r *replicaSet) Dropped(topic, channel string, ids []uint64, deadLettered bool) {
	t, err := r.n.GetExistingTopic(topic)
	if err != nil {
		return
	}
	c, err := t.GetExistingChannel(channel)
	if err != nil {
		return
	}
	c.droppedCount.Add(uint64(len(ids)))
	if deadLettered {
		c.deadLetteredCount.Add(uint64(len(ids)))
	}
	c.forget(ids)
}

// DeadLettered implements replication.LimitDispatcher (every replica): the
// origins go to the dead-letter topic's death log, as a single node's do,
// so peek and GET /topic/config show them on every replica.
func (r *replicaSet) DeadLettered(topic string, origins []replication.Origin) {
	t := r.localTopic(topic)
	if t == nil {
		return
	}
	ids, out := convertOrigins(origins)
	if err := t.deadLetters.record(ids, out, r.dispatching.Load()); err != nil {
		t.log.Error("REPLICATION: failed to record dead-letter origins", "count", len(ids), "err", err)
	}
	if r.dispatching.Load() {
		t.messageCount.Add(uint64(len(ids)))
	}
}

func convertOrigins(origins []replication.Origin) ([]MessageID, []DeadLetterOrigin) {
	ids := make([]MessageID, len(origins))
	out := make([]DeadLetterOrigin, len(origins))
	for i, o := range origins {
		hexID(&ids[i], o.ID)
		var orig MessageID
		hexID(&orig, o.OriginalID)
		out[i] = DeadLetterOrigin{
			SourceTopic:       o.Topic,
			SourceChannel:     o.Channel,
			OriginalID:        string(orig[:]),
			OriginalTimestamp: o.OriginalTimestamp,
			Attempts:          o.Attempts,
			Reason:            o.Reason.String(),
			Time:              o.Time,
		}
	}
	return ids, out
}

// syncOrigins adds the origins the set has and this replica's death log
// misses (a replica restored from a snapshot).
func (r *replicaSet) syncOrigins(t *Topic, origins []replication.Origin) {
	if len(origins) == 0 {
		return
	}
	ids, out := convertOrigins(origins)
	have := t.deadLetters.origins(ids)
	k := 0
	for i := range ids {
		if have[i] == nil {
			ids[k], out[k] = ids[i], out[i]
			k++
		}
	}
	if k == 0 {
		return
	}
	if err := t.deadLetters.record(ids[:k], out[:k], false); err != nil {
		t.log.Error("REPLICATION: failed to record dead-letter origins", "count", k, "err", err)
	}
}

// forgotten holds the IDs of a leader's channel that the FSM dropped but
// that were not at the head of its queue (in flight, deferred, requeued
// behind newer ones): they are discarded when they come up for delivery
// and forgotten when finished.
type forgotten struct {
	mu  sync.Mutex
	ids map[MessageID]struct{}
}

// forget removes messages the FSM dropped from the channel. They are the
// channel's oldest, so normally at the head of its queue: it takes as many
// from the head, keeps the others (queued again, at the tail) and remembers
// the IDs it did not find.
func (c *Channel) forget(ids []uint64) {
	want := make(map[MessageID]struct{}, len(ids))
	for _, v := range ids {
		var id MessageID
		hexID(&id, v)
		want[id] = struct{}{}
	}
	var keep []*Message
	for _, m := range c.popHead(len(ids)) {
		if _, ok := want[m.ID]; ok {
			delete(want, m.ID)
		} else {
			keep = append(keep, m)
		}
	}
	if len(keep) > 0 {
		if _, err := c.enqueue(keep); err != nil && !errors.Is(err, ErrExiting) {
			c.log.Error("CHANNEL: failed to queue messages again after a drop", "count", len(keep), "err", err)
		}
	}
	if len(want) == 0 {
		return
	}
	c.forgot.mu.Lock()
	if c.forgot.ids == nil {
		c.forgot.ids = make(map[MessageID]struct{})
	}
	for id := range want {
		c.forgot.ids[id] = struct{}{}
	}
	c.hasForgotten.Store(true)
	c.forgot.mu.Unlock()
}

// unforget drops id from the forgotten set (it was finished).
func (c *Channel) unforget(id MessageID) {
	c.forgot.mu.Lock()
	delete(c.forgot.ids, id)
	c.hasForgotten.Store(len(c.forgot.ids) > 0)
	c.forgot.mu.Unlock()
}

func (c *Channel) clearForgotten() {
	c.forgot.mu.Lock()
	c.forgot.ids = nil
	c.hasForgotten.Store(false)
	c.forgot.mu.Unlock()
}

// skipForgotten removes the forgotten messages from msgs (about to be
// delivered).
func (c *Channel) skipForgotten(msgs []*Message) []*Message {
	c.forgot.mu.Lock()
	defer c.forgot.mu.Unlock()
	k := 0
	for _, m := range msgs {
		if _, ok := c.forgot.ids[m.ID]; ok {
			delete(c.forgot.ids, m.ID)
			continue
		}
		msgs[k] = m
		k++
	}
	clear(msgs[k:])
	c.hasForgotten.Store(len(c.forgot.ids) > 0)
	return msgs[:k]
}

// fullError turns the set's refusal into nsqd's, counting it where the
// client published.
func (t *Topic) fullError(err error, n int) error {
	full, ok := errors.AsType[*replication.FullError](err)
	if !ok {
		return err
	}
	t.rejectedCount.Add(uint64(n))
	if full.Channel != "" {
		if c, cerr := t.GetExistingChannel(full.Channel); cerr == nil {
			c.rejectedCount.Add(uint64(n))
		}
	}
	return &QueueFullError{Topic: full.Topic, Channel: full.Channel, Limit: full.Limit, Value: full.Value}
}

// Drain on a replica (docs/replication.md, "Drain"). A draining follower
// refuses publishes (as any draining nsqd) and new subscribers to its
// replicated channels (unlike a single node, it has nothing left for them:
// E_SUB_FAILED), sets each relay's RDY to 0 so that it takes nothing new
// from the leader, lets its consumers settle what they hold, then ends the
// relay, which hands back whatever is still queued here (the leader
// requeues a relay's in-flight messages when it disconnects). Its channels are then empty and the drain ends as on a
// single node: exit 0. A draining leader first hands the lead to another
// replica (handOff); what it had in flight is delivered again by the new
// leader. Nothing is lost: the messages are the set's, in its log.

// handOffInterval spaces leadership transfer attempts of a draining leader.
const handOffInterval = time.Second

// handOff reports whether this replica can drain as a follower: it is
// not the set's leader, or it is alone in the set. A leader asks for a
// leadership transfer (at most every handOffInterval) and reports false.
func (r *replicaSet) handOff() bool {
	st := r.node.Stats()
	if (st.Role != "leader" && !r.dispatching.Load()) || len(st.Peers) <= 1 {
		return true
	}
	if time.Since(r.lastHandOff) < handOffInterval {
		return false
	}
	r.lastHandOff = time.Now()
	// To a replica that answers heartbeats (raft's own choice may be one
	// that is down), a different one at each attempt.
	var live []string
	for _, p := range st.Peers {
		if p.ID != r.id && p.LastContactMS == 0 {
			live = append(live, p.ID)
		}
	}
	if len(live) == 0 {
		r.n.logger.Warn("REPLICATION: draining: no other replica answers; keeping the lead for now")
		return false
	}
	r.handOffs++
	to := live[r.handOffs%len(live)]
	r.n.logger.Info("REPLICATION: draining: handing the lead to another replica", "to", to)
	if err := r.node.TransferLeadership(to); err != nil {
		r.n.logger.Warn("REPLICATION: leadership transfer failed; retrying", "to", to, "err", err)
	}
	return false
}

// backlogTaken reports messages the leader took out of a replicated topic's
// backlog (a redrive): the set's backlog loses them too, through a Progress
// entry of the topic (channel ""). On a follower the backlog is empty.
func (t *Topic) backlogTaken(msgs []*Message) {
	r := t.nsqd.repl.Load()
	if r == nil || t.ephemeral || !r.dispatching.Load() {
		return
	}
	for _, m := range msgs {
		if id, ok := messageIDValue(m.ID); ok {
			r.node.Finish(t.name, "", id)
		}
	}
}

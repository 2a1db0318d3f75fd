package replication

import (
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Message is one message as the set holds it for one channel (or for a
// topic without channels): its ID from the set-wide sequence, its publish
// time and body, and its delivery state.
type Message struct {
	ID        uint64
	Timestamp int64 // Unix ns
	DeliverAt int64 // Unix ns; 0: now
	Attempts  uint16
	Body      []byte // shared by every channel's copy; never modified
}

// TopicView and ChannelView describe the replicated topics and channels;
// Messages are filled in only for the leader (see Dispatcher.Sync).
type TopicView struct {
	Name     string
	Paused   bool
	Config   string    // limit overrides as nsqd's JSON (OpConfig); "" for none
	Messages []Message // the topic's backlog: published while it had no channel or was paused
	Channels []ChannelView
	Origins  []Origin // of the dead letters published to the topic, the most recent maxOrigins
}

// ChannelView is one channel of a TopicView.
type ChannelView struct {
	Name     string
	Paused   bool
	Config   string
	Messages []Message // unfinished, in ID order
}

// Dispatcher is nsqd as the FSM sees it. Its methods are called with FSM.mu
// held, in log order, and must not call back into the FSM.
type Dispatcher interface {
	// ApplyMeta is called on every replica for every Meta entry (but
	// OpLeader) so that each has the set's topics and channels (lookupd
	// registration, pause flags, /stats).
	ApplyMeta(m Meta)
	// Deliver is called on the leader only, for every Publish applied
	// while it dispatches: the messages to queue in the topic.
	Deliver(topic string, msgs []Message)
	// Sync replaces the daemon's replicated topics and channels with
	// topics. dispatch says whether the daemon is now the set's dispatcher:
	// then the views carry every unfinished message, to be queued afresh
	// (what was in flight under the previous leader is delivered again);
	// otherwise the daemon drops the replicated messages it holds.
	Sync(topics []TopicView, dispatch bool)
}

// LimitDispatcher is a Dispatcher that is also told what the FSM's limits
// do (nsqd is; a Dispatcher without limits need not be). Its methods are
// called as Dispatcher's.
type LimitDispatcher interface {
	Dispatcher
	// Dropped is called on the leader only when the FSM itself removed
	// messages from a channel (overflow=drop-oldest): the daemon forgets
	// them. deadLettered says whether they went to the dead-letter topic.
	Dropped(topic, channel string, ids []uint64, deadLettered bool)
	// DeadLettered is called on every replica when dead letters are added
	// to a topic, with their origins (in ID order); on the leader Deliver
	// follows with the messages.
	DeadLettered(topic string, origins []Origin)
}

type message struct {
	id        uint64
	timestamp int64
	body      []byte
}

type channelState struct {
	paused bool
	msgs   pendingSet // unfinished, in ID order
	config string     // overrides as nsqd's JSON (OpConfig)

	// Derived, rebuilt by refreshLimits after a restore: the limits in
	// force and the body bytes of msgs (while max_bytes is set).
	lim   limits
	bytes int64
}

type topicState struct {
	paused   bool
	backlog  []*pending // in ID order
	channels map[string]*channelState
	config   string
	origins  []Origin // dead letters published here, in ID order, the last maxOrigins

	lim   limits // of the backlog; derived
	bytes int64  // body bytes of the backlog; derived
	// limited: the backlog or a channel has max_depth or max_bytes
	// (derived), so a publish checks and drops; false costs nothing.
	limited bool
}

// state is the replicated state; equal logs give equal states.
type state struct {
	index    uint64 // the log index of the last entry applied
	lastID   uint64 // the last message ID given out
	topics   map[string]*topicState
	leaders  map[string]string // replica ID → "tcp-addr,http-addr" (OpLeader)
	defaults string            // the set's Defaults as JSON (OpDefaults)
}

func newState() *state {
	return &state{topics: make(map[string]*topicState), leaders: make(map[string]string)}
}

// FSM applies log entries to the replicated state and, on the leader, hands
// new messages to the Dispatcher. It implements raft.FSM.
type FSM struct {
	log *slog.Logger
	d   Dispatcher
	ld  LimitDispatcher // d, if it is one

	// mu guards the fields below; see the package doc for the lock order.
	mu       sync.Mutex
	s        *state
	dispatch bool // this replica dispatches (it leads and has caught up)

	// applied mirrors s.index for readers that must not wait for mu.
	// raft's own AppliedIndex runs ahead: it counts entries handed to the
	// FSM goroutine, not applied ones.
	applied atomic.Uint64
}

// NewFSM returns an FSM with an empty state; d may be nil (tests).
func NewFSM(d Dispatcher, log *slog.Logger) *FSM {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ld, _ := d.(LimitDispatcher)
	return &FSM{log: log, d: d, ld: ld, s: newState()}
}

// applyResult is what Apply returns for an entry: the first ID of a publish
// or the reason an entry was skipped.
type applyResult struct {
	firstID uint64
	err     error
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() {
		f.s.index = max(f.s.index, l.Index)
		f.applied.Store(f.s.index)
	}()
	if l.Type != raft.LogCommand {
		return nil
	}
	e, err := DecodeEntry(l.Data)
	if err != nil {
		// Deterministic on every replica: the entry is skipped everywhere.
		f.log.Error("REPLICATION: skipping undecodable log entry", "index", l.Index, "err", err)
		return applyResult{err: err}
	}
	return f.applyLocked(e)
}

// AppliedIndex is the log index of the last entry this FSM has applied
// (or restored from a snapshot).
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

func (f *FSM) applyLocked(e Entry) applyResult {
	switch {
	case e.Publish != nil:
		return f.applyPublish(e.Publish)
	case e.Meta != nil:
		f.applyMeta(e.Meta)
	case e.Progress != nil:
		f.applyProgress(e.Progress)
	}
	return applyResult{}
}

func (f *FSM) topic(name string) *topicState {
	t := f.s.topics[name]
	if t == nil {
		t = &topicState{channels: make(map[string]*channelState)}
		t.lim = resolveTopic(ParseDefaults(f.s.defaults), overrides{})
		t.limited = t.lim.bounded()
		f.s.topics[name] = t
		if f.d != nil {
			f.d.ApplyMeta(Meta{Op: OpCreateTopic, Topic: name})
		}
	}
	return t
}

// add puts p in the channel. bytes is kept only while max_bytes bounds the
// channel (refreshLimits recounts it when that changes).
func (c *channelState) add(p pending) {
	old, replaced := c.msgs.add(p)
	if c.lim.maxBytes > 0 {
		c.bytes += int64(len(p.msg.body))
		if replaced {
			c.bytes -= int64(len(old.msg.body))
		}
	}
}

// remove takes id out of the channel and returns it (ok false if absent).
func (c *channelState) remove(id uint64) (pending, bool) {
	p, ok := c.msgs.remove(id)
	if ok && c.lim.maxBytes > 0 {
		c.bytes -= int64(len(p.msg.body))
	}
	return p, ok
}

// finish takes the IDs of r out of the channel (a FIN).
func (c *channelState) finish(r Range) {
	if c.lim.maxBytes > 0 {
		c.msgs.removeRange(r.First, r.Last, func(p pending) { c.bytes -= int64(len(p.msg.body)) })
		return
	}
	c.msgs.removeRange(r.First, r.Last, nil)
}

func (c *channelState) clear() {
	c.msgs.clear()
	c.bytes = 0
}

// popOldest removes the unfinished message with the lowest ID.
func (c *channelState) popOldest() (pending, bool) {
	p, ok := c.msgs.popOldest()
	if ok && c.lim.maxBytes > 0 {
		c.bytes -= int64(len(p.msg.body))
	}
	return p, ok
}

// refreshLimits recomputes the limits of t and its channels (name is t's)
// after a change of defaults or overrides, or a restore.
func (f *FSM) refreshLimits(name string, t *topicState) {
	d := ParseDefaults(f.s.defaults)
	tp := parseOverrides(t.config)
	t.lim = resolveTopic(d, tp)
	t.bytes = 0
	for _, p := range t.backlog {
		t.bytes += int64(len(p.msg.body))
	}
	t.limited = t.lim.bounded()
	for cname, c := range t.channels {
		c.lim = resolveChannel(d, name, cname, tp, parseOverrides(c.config))
		t.limited = t.limited || c.lim.bounded()
		c.bytes = 0
		if c.lim.maxBytes > 0 {
			c.msgs.all(func(p *pending) bool {
				c.bytes += int64(len(p.msg.body))
				return true
			})
		}
	}
}

func (f *FSM) refreshAll() {
	for name, t := range f.s.topics {
		f.refreshLimits(name, t)
	}
}

// admit refuses a publish of n messages of size bytes that a rejecting
// channel, or the backlog when the topic does not hand messages to its
// channels, cannot take; when several cannot, the first by name is named.
func admit(name string, t *topicState, n, size int64) *FullError {
	if t.paused || len(t.channels) == 0 {
		if t.lim.rejects() {
			if err := checkFits(t.lim, int64(len(t.backlog)), t.bytes, n, size); err != nil {
				err.Topic = name
				return err
			}
		}
		return nil
	}
	var full *FullError
	for cname, c := range t.channels {
		if !c.lim.rejects() || (full != nil && cname > full.Channel) {
			continue
		}
		if err := checkFits(c.lim, int64(c.msgs.len()), c.bytes, n, size); err != nil {
			err.Topic, err.Channel = name, cname
			full = err
		}
	}
	return full
}

func (f *FSM) applyPublish(p *Publish) applyResult {
	t := f.topic(p.Topic) // a PUB creates its topic, as in NSQ
	if t.limited {
		var size int64
		for _, body := range p.Bodies {
			size += int64(len(body))
		}
		if err := admit(p.Topic, t, int64(len(p.Bodies)), size); err != nil {
			return applyResult{err: err}
		}
	}
	first := f.s.lastID + 1
	msgs := make([]message, len(p.Bodies))
	for i, body := range p.Bodies {
		msgs[i] = message{id: first + uint64(i), timestamp: p.Timestamp, body: body}
	}
	f.s.lastID += uint64(len(p.Bodies))
	f.put(p.Topic, t, msgs, p.DeliverAt, p.Timestamp, true)
	return applyResult{firstID: first}
}

// put adds new messages to the topic's channels, or its backlog, hands them
// to the leader's dispatcher and applies drop-oldest (deadLetter: the
// dropped messages may become dead letters; not for dead letters
// themselves, so that one apply moves a message at most once).
func (f *FSM) put(name string, t *topicState, msgs []message, deliverAt, now int64, deadLetter bool) {
	if t.paused || len(t.channels) == 0 {
		for i := range msgs {
			t.backlog = append(t.backlog, &pending{id: msgs[i].id, msg: &msgs[i], deliverAt: deliverAt})
			t.bytes += int64(len(msgs[i].body))
		}
	} else {
		for _, c := range t.channels {
			for i := range msgs {
				c.add(pending{msg: &msgs[i], deliverAt: deliverAt})
			}
		}
	}
	if f.dispatch && f.d != nil {
		out := make([]Message, len(msgs))
		for i := range msgs {
			out[i] = Message{ID: msgs[i].id, Timestamp: msgs[i].timestamp, DeliverAt: deliverAt, Body: msgs[i].body}
		}
		f.d.Deliver(name, out)
	}
	if !t.limited {
		return
	}
	if t.lim.drops() {
		f.dropBacklog(t)
	}
	var drops []string // by name: dead letters get their IDs in that order
	for cname, c := range t.channels {
		if c.lim.drops() {
			drops = append(drops, cname)
		}
	}
	slices.Sort(drops)
	for _, cname := range drops {
		f.dropOldest(name, cname, t.channels[cname], now, deadLetter)
	}
}

// dropBacklog applies drop-oldest to a topic's backlog (no dead letters:
// they are per channel, as in nsqd). The leader's dispatcher keeps its
// own copy of the backlog bounded by the same limits.
func (f *FSM) dropBacklog(t *topicState) {
	k := 0
	for k < len(t.backlog) && ((t.lim.maxDepth > 0 && int64(len(t.backlog)-k) > t.lim.maxDepth) ||
		(t.lim.maxBytes > 0 && t.bytes > t.lim.maxBytes)) {
		t.bytes -= int64(len(t.backlog[k].msg.body))
		k++
	}
	if k > 0 {
		clear(t.backlog[:k])
		t.backlog = t.backlog[k:]
	}
}

// dropOldest removes a channel's oldest messages until it fits its limits
// and dead-letters them when the channel says so.
func (f *FSM) dropOldest(topic, name string, c *channelState, now int64, deadLetter bool) {
	var dropped []pending
	for (c.lim.maxDepth > 0 && int64(c.msgs.len()) > c.lim.maxDepth) || (c.lim.maxBytes > 0 && c.bytes > c.lim.maxBytes) {
		p, ok := c.popOldest()
		if !ok {
			break
		}
		dropped = append(dropped, p)
	}
	if len(dropped) == 0 {
		return
	}
	dl := deadLetter && c.lim.deadLetterDropped && c.lim.deadLetterTopic != ""
	if f.dispatch && f.ld != nil {
		ids := make([]uint64, len(dropped))
		for i, p := range dropped {
			ids[i] = p.msg.id
		}
		f.ld.Dropped(topic, name, ids, dl)
	}
	if dl {
		reasons := make([]Dead, len(dropped))
		for i, p := range dropped {
			reasons[i] = Dead{ID: p.msg.id, Attempts: p.attempts, Reason: ReasonMaxLen}
		}
		f.deadLetter(topic, name, c.lim, dropped, reasons, now)
	}
}

// deadLetter publishes msgs, taken out of topic/channel, to the channel's
// dead-letter topic with new IDs and their origins. The dead-letter topic
// takes them whatever its limits (its own drop-oldest still applies): a
// dead letter is never refused back into its source.
func (f *FSM) deadLetter(topic, channel string, l limits, msgs []pending, why []Dead, now int64) {
	name := l.deadLetterTopic
	dt := f.topic(name)
	first := f.s.lastID + 1
	f.s.lastID += uint64(len(msgs))
	out := make([]message, len(msgs))
	origins := make([]Origin, len(msgs))
	for i, p := range msgs {
		o := &origins[i]
		*o = Origin{ID: first + uint64(i), Topic: topic, Channel: channel, OriginalID: p.msg.id,
			OriginalTimestamp: p.msg.timestamp, Attempts: why[i].Attempts, Reason: why[i].Reason, Time: now}
		body := p.msg.body
		if l.envelope {
			body = envelopeBody(o, body)
		}
		out[i] = message{id: o.ID, timestamp: now, body: body}
	}
	dt.origins = append(dt.origins, origins...)
	if extra := len(dt.origins) - maxOrigins; extra > 0 {
		dt.origins = slices.Delete(dt.origins, 0, extra)
	}
	if f.ld != nil {
		f.ld.DeadLettered(name, origins)
	}
	f.put(name, dt, out, 0, now, false)
}

// finishBacklog removes finished IDs from a topic's backlog: messages the
// leader took from it (POST /topic/redrive of a dead-letter topic).
func finishBacklog(t *topicState, finished []Range) {
	if len(finished) == 0 {
		return
	}
	kept := make([]*pending, 0, len(t.backlog))
	for _, p := range t.backlog {
		id := p.msg.id
		i, _ := slices.BinarySearchFunc(finished, id, func(r Range, id uint64) int {
			switch {
			case r.Last < id:
				return -1
			case r.First > id:
				return 1
			}
			return 0
		})
		if i < len(finished) && finished[i].First <= id && id <= finished[i].Last {
			t.bytes -= int64(len(p.msg.body))
			continue
		}
		kept = append(kept, p)
	}
	t.backlog = kept
}

// flushBacklog gives the topic's backlog to its channels, as nsqd does when
// a topic gets its first channel or is unpaused.
func flushBacklog(t *topicState) {
	if t.paused || len(t.channels) == 0 || len(t.backlog) == 0 {
		return
	}
	for _, c := range t.channels {
		for _, p := range t.backlog {
			c.add(*p)
		}
	}
	t.backlog = nil
	t.bytes = 0
}

func (f *FSM) applyMeta(m *Meta) {
	switch m.Op {
	case OpLeader:
		f.s.leaders[m.Topic] = m.Arg
		return
	case OpDefaults:
		f.s.defaults = m.Arg
		f.refreshAll()
		if f.d != nil {
			f.d.ApplyMeta(*m)
		}
		return
	}
	t := f.s.topics[m.Topic]
	switch m.Op {
	case OpCreateTopic:
		f.topic(m.Topic)
		return // topic() told the Dispatcher
	case OpCreateChannel:
		t = f.topic(m.Topic)
		if t.channels[m.Channel] == nil {
			t.channels[m.Channel] = &channelState{}
			f.refreshLimits(m.Topic, t)
			flushBacklog(t)
		}
	case OpDeleteTopic:
		delete(f.s.topics, m.Topic)
	case OpPauseTopic, OpUnpauseTopic:
		if t != nil {
			t.paused = m.Op == OpPauseTopic
			flushBacklog(t)
		}
	case OpEmptyTopic:
		if t != nil {
			t.backlog, t.bytes = nil, 0
		}
	case OpConfig:
		if t == nil || (m.Channel != "" && t.channels[m.Channel] == nil) {
			return // as nsqd's ApplyConfig: only what exists
		}
		if m.Channel == "" {
			t.config = m.Arg
		} else {
			t.channels[m.Channel].config = m.Arg
		}
		f.refreshLimits(m.Topic, t)
	case OpDeleteChannel, OpPauseChannel, OpUnpauseChannel, OpEmptyChannel:
		if t == nil || t.channels[m.Channel] == nil {
			break
		}
		c := t.channels[m.Channel]
		switch m.Op {
		case OpDeleteChannel:
			delete(t.channels, m.Channel)
		case OpPauseChannel, OpUnpauseChannel:
			c.paused = m.Op == OpPauseChannel
		case OpEmptyChannel:
			c.clear()
		}
	}
	if f.d != nil {
		f.d.ApplyMeta(*m)
	}
}

func (f *FSM) applyProgress(p *Progress) {
	t := f.s.topics[p.Topic]
	if t == nil {
		return
	}
	if p.Channel == "" {
		finishBacklog(t, p.Finished)
		return
	}
	c := t.channels[p.Channel]
	if c == nil {
		return
	}
	for _, r := range p.Finished {
		c.finish(r)
	}
	for _, rq := range p.Requeued {
		if m := c.msgs.get(rq.ID); m != nil { // in place: a snapshot has its own copy
			m.deliverAt, m.attempts = rq.DeliverAt, rq.Attempts
		}
	}
	var dead []pending
	var why []Dead
	for _, d := range p.Dead {
		if m, ok := c.remove(d.ID); ok {
			dead = append(dead, m)
			why = append(why, d)
		}
	}
	if len(dead) > 0 && c.lim.deadLetterTopic != "" {
		f.deadLetter(p.Topic, p.Channel, c.lim, dead, why, p.Time)
	}
}

// setDispatch makes this replica the dispatcher (or not) and hands the
// Dispatcher the state to dispatch from.
func (f *FSM) setDispatch(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dispatch = on
	if f.d != nil {
		f.d.Sync(f.viewLocked(on), on)
	}
}

// Dispatching reports whether this replica currently dispatches.
func (f *FSM) Dispatching() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dispatch
}

// Defaults are the set's nsqd-wide limits as last recorded (OpDefaults).
func (f *FSM) Defaults() Defaults {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ParseDefaults(f.s.defaults)
}

// LastID is the last message ID given out.
func (f *FSM) LastID() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s.lastID
}

// Leader returns the client addresses the replica with this ID recorded when
// it last became leader.
func (f *FSM) Leader(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s.leaders[id]
}

// View returns the replicated topics and channels, sorted, with their
// messages when withMessages.
func (f *FSM) View(withMessages bool) []TopicView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.viewLocked(withMessages)
}

func (f *FSM) viewLocked(withMessages bool) []TopicView {
	out := make([]TopicView, 0, len(f.s.topics))
	for _, name := range slices.Sorted(maps.Keys(f.s.topics)) {
		t := f.s.topics[name]
		tv := TopicView{Name: name, Paused: t.paused, Config: t.config, Origins: slices.Clone(t.origins)}
		if withMessages {
			tv.Messages = messagesOf(t.backlog)
		}
		for _, cname := range slices.Sorted(maps.Keys(t.channels)) {
			c := t.channels[cname]
			cv := ChannelView{Name: cname, Paused: c.paused, Config: c.config}
			if withMessages {
				cv.Messages = c.msgs.messages()
			}
			tv.Channels = append(tv.Channels, cv)
		}
		out = append(out, tv)
	}
	return out
}

func messagesOf(ps []*pending) []Message {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Message, len(ps))
	for i, p := range ps {
		out[i] = Message{ID: p.msg.id, Timestamp: p.msg.timestamp, DeliverAt: p.deliverAt, Attempts: p.attempts, Body: p.msg.body}
	}
	return out
}

// Snapshot implements raft.FSM: it copies the state's structure (bodies are
// shared, never modified) so that Persist runs without the lock.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &fsmSnapshot{s: f.s.clone()}, nil
}

// Restore implements raft.FSM: the state becomes the snapshot's and the
// Dispatcher is told (a follower that fell behind gets one from the leader).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := readState(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s = s
	f.refreshAll()
	if f.d != nil {
		f.d.ApplyMeta(Meta{Op: OpDefaults, Arg: s.defaults})
		f.d.Sync(f.viewLocked(f.dispatch), f.dispatch)
	}
	f.applied.Store(s.index) // after Sync: waiters then see its effect
	return nil
}

// clone copies the state's maps and slices for a snapshot. A channel's
// pending records are values, copied as one array of the live ones (no
// allocation per message: a backlog of 1,000,000 messages once held the FSM
// lock, and so every publish, for 0.8 s while it was copied message by
// message); messages and bodies are shared, never modified. A topic's
// backlog holds *pending that are never modified once added.
func (s *state) clone() *state {
	c := &state{index: s.index, lastID: s.lastID, topics: make(map[string]*topicState, len(s.topics)), leaders: maps.Clone(s.leaders), defaults: s.defaults}
	for name, t := range s.topics {
		ct := &topicState{paused: t.paused, backlog: slices.Clone(t.backlog), channels: make(map[string]*channelState, len(t.channels)),
			config: t.config, origins: slices.Clone(t.origins)}
		for cname, ch := range t.channels {
			ct.channels[cname] = &channelState{paused: ch.paused, msgs: ch.msgs.clone(), config: ch.config}
		}
		c.topics[name] = ct
	}
	return c
}

type fsmSnapshot struct{ s *state }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeState(sink, s.s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

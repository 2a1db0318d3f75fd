package replication

import (
	"cmp"
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
	Messages []Message // the topic's backlog: published while it had no channel or was paused
	Channels []ChannelView
}

// ChannelView is one channel of a TopicView.
type ChannelView struct {
	Name     string
	Paused   bool
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

type pending struct {
	msg       *message
	deliverAt int64
	attempts  uint16
}

type message struct {
	id        uint64
	timestamp int64
	body      []byte
}

type channelState struct {
	paused bool
	msgs   map[uint64]*pending
}

type topicState struct {
	paused   bool
	backlog  []*pending // in ID order
	channels map[string]*channelState
}

// state is the replicated state; equal logs give equal states.
type state struct {
	index   uint64 // the log index of the last entry applied
	lastID  uint64 // the last message ID given out
	topics  map[string]*topicState
	leaders map[string]string // replica ID → "tcp-addr,http-addr" (OpLeader)
}

func newState() *state {
	return &state{topics: make(map[string]*topicState), leaders: make(map[string]string)}
}

// FSM applies log entries to the replicated state and, on the leader, hands
// new messages to the Dispatcher. It implements raft.FSM.
type FSM struct {
	log *slog.Logger
	d   Dispatcher

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
	return &FSM{log: log, d: d, s: newState()}
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
		return applyResult{firstID: f.applyPublish(e.Publish)}
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
		f.s.topics[name] = t
		if f.d != nil {
			f.d.ApplyMeta(Meta{Op: OpCreateTopic, Topic: name})
		}
	}
	return t
}

func (f *FSM) applyPublish(p *Publish) uint64 {
	t := f.topic(p.Topic) // a PUB creates its topic, as in NSQ
	first := f.s.lastID + 1
	msgs := make([]message, len(p.Bodies))
	for i, body := range p.Bodies {
		msgs[i] = message{id: first + uint64(i), timestamp: p.Timestamp, body: body}
	}
	f.s.lastID += uint64(len(p.Bodies))
	if t.paused || len(t.channels) == 0 {
		for i := range msgs {
			t.backlog = append(t.backlog, &pending{msg: &msgs[i], deliverAt: p.DeliverAt})
		}
	} else {
		for _, c := range t.channels {
			ps := make([]pending, len(msgs)) // one allocation per channel
			for i := range msgs {
				ps[i] = pending{msg: &msgs[i], deliverAt: p.DeliverAt}
				c.msgs[msgs[i].id] = &ps[i]
			}
		}
	}
	if f.dispatch && f.d != nil {
		out := make([]Message, len(msgs))
		for i := range msgs {
			out[i] = Message{ID: msgs[i].id, Timestamp: p.Timestamp, DeliverAt: p.DeliverAt, Body: msgs[i].body}
		}
		f.d.Deliver(p.Topic, out)
	}
	return first
}

// flushBacklog gives the topic's backlog to its channels, as nsqd does when
// a topic gets its first channel or is unpaused.
func flushBacklog(t *topicState) {
	if t.paused || len(t.channels) == 0 || len(t.backlog) == 0 {
		return
	}
	for _, c := range t.channels {
		for _, p := range t.backlog {
			cp := *p
			c.msgs[p.msg.id] = &cp
		}
	}
	t.backlog = nil
}

func (f *FSM) applyMeta(m *Meta) {
	if m.Op == OpLeader {
		f.s.leaders[m.Topic] = m.Arg
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
			t.channels[m.Channel] = &channelState{msgs: make(map[uint64]*pending)}
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
			t.backlog = nil
		}
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
			clear(c.msgs)
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
	c := t.channels[p.Channel]
	if c == nil {
		return
	}
	for _, r := range p.Finished {
		if r.Last-r.First >= uint64(len(c.msgs)) {
			for id := range c.msgs {
				if id >= r.First && id <= r.Last {
					delete(c.msgs, id)
				}
			}
			continue
		}
		for id := r.First; ; id++ {
			delete(c.msgs, id)
			if id == r.Last {
				break
			}
		}
	}
	for _, rq := range p.Requeued {
		if m := c.msgs[rq.ID]; m != nil {
			cp := *m // copy on write: a snapshot may share m
			cp.deliverAt, cp.attempts = rq.DeliverAt, rq.Attempts
			c.msgs[rq.ID] = &cp
		}
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
		tv := TopicView{Name: name, Paused: t.paused}
		if withMessages {
			tv.Messages = messagesOf(t.backlog)
		}
		for _, cname := range slices.Sorted(maps.Keys(t.channels)) {
			c := t.channels[cname]
			cv := ChannelView{Name: cname, Paused: c.paused}
			if withMessages {
				cv.Messages = messagesOf(sortedPending(c.msgs))
			}
			tv.Channels = append(tv.Channels, cv)
		}
		out = append(out, tv)
	}
	return out
}

func sortedPending(m map[uint64]*pending) []*pending {
	ps := slices.Collect(maps.Values(m))
	slices.SortFunc(ps, func(a, b *pending) int { return cmp.Compare(a.msg.id, b.msg.id) })
	return ps
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
	if f.d != nil {
		f.d.Sync(f.viewLocked(f.dispatch), f.dispatch)
	}
	f.applied.Store(s.index) // after Sync: waiters then see its effect
	return nil
}

// clone copies the state's maps and slices for a snapshot. The pending
// records themselves are shared: once a *pending is in a channel's map or a
// backlog it is never modified (applyProgress replaces it), so sharing is
// safe and cloning a channel is one map copy rather than one allocation per
// message (a backlog of 1,000,000 messages held the FSM lock, and so every
// publish, for 0.8 s while it was copied message by message).
func (s *state) clone() *state {
	c := &state{index: s.index, lastID: s.lastID, topics: make(map[string]*topicState, len(s.topics)), leaders: maps.Clone(s.leaders)}
	for name, t := range s.topics {
		ct := &topicState{paused: t.paused, backlog: slices.Clone(t.backlog), channels: make(map[string]*channelState, len(t.channels))}
		for cname, ch := range t.channels {
			ct.channels[cname] = &channelState{paused: ch.paused, msgs: maps.Clone(ch.msgs)}
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

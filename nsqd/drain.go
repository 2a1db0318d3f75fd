package nsqd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Drain takes a node out of service without losing or stranding a message
// (not in NSQ; the RFC is nsqio/nsq#1302). While draining:
//
//   - publishes (PUB, MPUB, DPUB, HTTP /pub and /mpub) fail with ErrDraining,
//     and so does anything that would create a topic or a channel (a SUB to a
//     new one, /topic/create, /channel/create); a SUB to an existing channel,
//     FIN, REQ and TOUCH work as usual, so consumers empty the channels;
//   - ephemeral topics and channels are deleted at once;
//   - drainLoop checks every topic and channel each drainCheckInterval: a
//     channel seen empty (nothing queued, in flight or deferred, and nothing
//     left in its topic) on two checks in a row is unregistered from the
//     nsqlookupds, and so is a topic once all its channels are; when
//     everything is, Run ends and returns nil (exit status 0);
//   - after --drain-timeout (0 = no limit), or on Shutdown, Run ends with the
//     clean shutdown SIGTERM does, which persists what is left.
//
// A drain cannot be cancelled. The publish path pays one atomic load.
type drainer struct {
	active  atomic.Bool  // set once by Drain
	started atomic.Int64 // Unix ns when Drain was called

	begin     chan struct{} // closed by Drain: wakes drainLoop
	beginOnce sync.Once
	quit      chan struct{} // closed by Shutdown: Run shuts down
	quitOnce  sync.Once

	// mu guards gone: the "topic" and "topic channel" registrations the
	// drain has withdrawn from the nsqlookupds (and that a reconnecting
	// peer must not send again).
	mu   sync.Mutex
	gone map[string]bool
}

// --sigterm-mode values.
const (
	SigtermShutdown = "shutdown" // SIGTERM shuts down cleanly (NSQ)
	SigtermDrain    = "drain"    // SIGTERM starts a drain
)

// drainCheckInterval is how often a drain looks for emptied channels.
const drainCheckInterval = 100 * time.Millisecond

// ErrDraining refuses publishes and new topics and channels while the node
// drains. Its text follows "PUB failed " in E_PUB_FAILED.
var ErrDraining = errors.New("nsqd draining")

func (d *drainer) init() {
	d.begin = make(chan struct{})
	d.quit = make(chan struct{})
	d.gone = make(map[string]bool)
}

// Drain starts draining the node (PUT /state/drain, or SIGTERM with
// --sigterm-mode=drain). It reports false if a drain was already running.
func (n *NSQD) Drain() bool {
	if !n.drain.active.CompareAndSwap(false, true) {
		return false
	}
	n.drain.started.Store(time.Now().UnixNano())
	n.logger.Info("NSQ: draining: refusing publishes, waiting for consumers to empty every channel",
		"drain_timeout", n.opts.DrainTimeout)
	n.drain.beginOnce.Do(func() { close(n.drain.begin) })
	return true
}

// drainStartedUnix is when the drain started, Unix seconds (0: none).
func (n *NSQD) drainStartedUnix() int64 {
	if !n.drain.active.Load() {
		return 0
	}
	return time.Unix(0, n.drain.started.Load()).Unix()
}

// Draining reports whether a drain has started.
func (n *NSQD) Draining() bool { return n.drain.active.Load() }

// Shutdown asks Run for a clean shutdown, as the end of its context does
// (PUT /state/shutdown, the end of a drain). Run then returns nil.
func (n *NSQD) Shutdown() {
	n.drain.quitOnce.Do(func() { close(n.drain.quit) })
}

// drainLoop waits for a drain to start, then checks every
// drainCheckInterval what is left, until everything is empty or
// --drain-timeout passes; either way it asks Run to shut down.
func (n *NSQD) drainLoop(ctx context.Context) {
	select {
	case <-n.drain.begin:
	case <-ctx.Done():
		return
	}
	var timeout <-chan time.Time
	if d := n.opts.DrainTimeout; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	ticker := time.NewTicker(drainCheckInterval)
	defer ticker.Stop()
	seen := make(map[*Channel]int) // consecutive checks a channel was empty
	emptyRuns := 0
	for {
		if n.drainCheck(seen) {
			emptyRuns++
		} else {
			emptyRuns = 0
		}
		if emptyRuns >= 2 {
			n.logger.Info("NSQ: drained: every channel is empty, exiting")
			n.Shutdown()
			return
		}
		select {
		case <-ticker.C:
		case <-timeout:
			n.logger.Warn("NSQ: drain timeout reached, shutting down; what is left stays on disk",
				"drain_timeout", n.opts.DrainTimeout, "left", len(n.drainBlockers()))
			n.Shutdown()
			return
		case <-ctx.Done():
			return
		}
	}
}

// drainCheck deletes ephemeral topics and channels, withdraws the lookupd
// registrations of channels (and topics) found empty twice in a row, and
// reports whether everything is empty. A message moving between places (a
// pump between taking it and recording it in flight, a due deferred message
// on its way back to the queue) can be missed by one check, not by two
// 100 ms apart.
func (n *NSQD) drainCheck(seen map[*Channel]int) bool {
	if r := n.repl.Load(); r != nil && !r.handOff() {
		return false // still the set's leader
	}
	all := true
	for _, t := range n.topicList() {
		if t.ephemeral {
			if err := n.DeleteExistingTopic(t.name); err != nil && !errors.Is(err, ErrTopicNotFound) {
				t.log.Error("TOPIC: failed to delete ephemeral topic while draining", "err", err)
			}
			continue
		}
		topicEmpty := t.Depth() == 0
		chans := t.channelList()
		for _, c := range chans {
			if c.ephemeral {
				if err := t.DeleteExistingChannel(c.name); err != nil && !errors.Is(err, ErrChannelNotFound) {
					c.log.Error("CHANNEL: failed to delete ephemeral channel while draining", "err", err)
				}
				delete(seen, c)
				continue
			}
			if !topicEmpty || !c.drained() {
				seen[c] = 0
				all, topicEmpty = false, false
				continue
			}
			seen[c]++
			if seen[c] >= 2 {
				n.withdraw(t.name + " " + c.name)
			} else {
				all, topicEmpty = false, false
			}
		}
		if topicEmpty {
			n.withdraw(t.name)
		} else {
			all = false
		}
	}
	return all
}

// drained reports whether the channel holds nothing: queued, in flight or
// deferred.
func (c *Channel) drained() bool {
	return c.inFlightCount.Load() == 0 && c.deferredCount.Load() == 0 && c.Depth() == 0
}

// withdraw unregisters "topic" or "topic channel" from every nsqlookupd,
// once.
func (n *NSQD) withdraw(key string) {
	n.drain.mu.Lock()
	done := n.drain.gone[key]
	n.drain.gone[key] = true
	n.drain.mu.Unlock()
	if done {
		return
	}
	n.logger.Info("LOOKUP: drained, unregistering", "registration", key)
	n.lookupSend("UNREGISTER " + key)
}

// withdrawn reports whether a drain has unregistered "topic" or "topic
// channel" (lookup.go leaves it out when a peer reconnects).
func (n *NSQD) withdrawn(key string) bool {
	if !n.drain.active.Load() {
		return false
	}
	n.drain.mu.Lock()
	defer n.drain.mu.Unlock()
	return n.drain.gone[key]
}

// DrainBlocker is what still holds a drain: a channel with messages, or a
// topic with messages and no channel (Channel empty) to take them.
type DrainBlocker struct {
	Topic     string `json:"topic"`
	Channel   string `json:"channel,omitempty"`
	Depth     int64  `json:"depth"`
	InFlight  int64  `json:"in_flight_count"`
	Deferred  int64  `json:"deferred_count"`
	Paused    bool   `json:"paused"`
	Consumers int    `json:"client_count"`
}

// drainBlockers lists the non-empty channels, and the topics holding
// messages (which their channels have not received yet, or which no channel
// will take).
func (n *NSQD) drainBlockers() []DrainBlocker {
	out := []DrainBlocker{}
	for _, t := range n.topicList() {
		chans := t.channelList()
		if d := t.Depth(); d > 0 {
			out = append(out, DrainBlocker{Topic: t.name, Depth: d, Paused: t.IsPaused()})
		}
		for _, c := range chans {
			if c.drained() {
				continue
			}
			c.mu.Lock()
			consumers := len(c.clients)
			c.mu.Unlock()
			out = append(out, DrainBlocker{
				Topic:     t.name,
				Channel:   c.name,
				Depth:     c.Depth(),
				InFlight:  c.inFlightCount.Load(),
				Deferred:  c.deferredCount.Load(),
				Paused:    c.IsPaused(),
				Consumers: consumers,
			})
		}
	}
	return out
}

// NodeState is GET /state.
type NodeState struct {
	// State is "running", "draining" or "exiting".
	State        string `json:"state"`
	Draining     bool   `json:"draining"`
	DrainStarted int64  `json:"drain_started,omitempty"` // Unix seconds
	// DrainTimeout is --drain-timeout in nanoseconds (0: no limit).
	DrainTimeout time.Duration  `json:"drain_timeout"`
	SigtermMode  string         `json:"sigterm_mode"`
	Blockers     []DrainBlocker `json:"blockers"`
}

// State reports whether the node runs, drains or exits and, while it
// drains, what still holds the drain.
func (n *NSQD) State() NodeState {
	s := NodeState{State: "running", DrainTimeout: n.opts.DrainTimeout, SigtermMode: n.opts.SigtermMode, Blockers: []DrainBlocker{}}
	if n.Draining() {
		s.State, s.Draining = "draining", true
		s.DrainStarted = n.drainStartedUnix()
		s.Blockers = n.drainBlockers()
	}
	if n.shuttingDown() {
		s.State = "exiting"
	}
	return s
}

// shuttingDown reports whether Run is shutting down or was asked to.
func (n *NSQD) shuttingDown() bool {
	select {
	case <-n.drain.quit:
		return true
	default:
		return n.exiting.Load()
	}
}

package nsqd

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
)

// Consumers on followers (docs/replication.md, "Consuming"). Only the
// leader dispatches, yet go-nsq splits max_in_flight over every nsqd it is
// connected to, so each replica must deliver. A follower whose replicated
// channel has subscribers relays it: one V2 consumer connection to the
// leader, subscribed to the same topic and channel with RDY equal to the sum
// of the local subscribers' RDY, whose messages (IDs unchanged) go into the
// local channel, from which the local subscribers take them as usual.
//
// FIN, REQ (with its delay), TOUCH and timeouts are the set's: a local
// FIN, REQ or TOUCH is sent up the relay, and so are a local timeout and
// the in-flight messages of a consumer that disconnects (as REQ 0); the
// leader finishes, requeues, defers or touches its copy and logs FINs and
// REQs (attempts, deliver-at) in Progress entries. A REQ'd or timed-out
// message is dropped locally: it comes back through a relay (this one or
// another replica's) when the leader delivers it again, with the set's
// attempts. Message timeouts run here, on each consumer's own
// msg_timeout; the leader's timer for the relay is a backstop
// (relayMsgTimeout). If the follower dies, its relay connection ends and
// the leader requeues the relay's in-flight messages at once. When the
// relay ends (the leader changed, died or hung) the local channel is
// emptied: a FIN, REQ or TOUCH for what it held answers E_FIN_FAILED,
// E_REQ_FAILED or E_TOUCH_FAILED as for any unknown ID, and the next
// leader delivers every unfinished message again.
//
// relayLoop, owned by replicaSet, starts, retargets and stops relays every
// relayInterval.

const relayInterval = 100 * time.Millisecond

// relayUserAgent is what a relay identifies with; a replica that sees it
// treats the connection as a relay (client.relay).
const relayUserAgent = "nsqd-replication-relay"

// relayMsgTimeout is the leader's timer for a message in flight to a
// relay: twice --max-msg-timeout, restarted by every TOUCH the relay
// forwards (without NSQ's cap of delivery + --max-msg-timeout). A
// follower's consumer holds a message at most --max-msg-timeout after it
// got it (TOUCH included), and the follower settles or touches every
// message up the relay, so this timer fires only for a message that
// waited in the follower's queue for over --max-msg-timeout, or that the
// follower lost: a backstop, not the consumers' timeout. The relay cannot
// use a consumer's msg_timeout: the consumers of one follower may each
// identify with a different one, and the follower times them out itself.
func (r *replicaSet) relayMsgTimeout() time.Duration { return 2 * r.n.opts.MaxMsgTimeout }

type relayKey struct{ topic, channel string }

// relay is one upstream subscription of a follower.
type relay struct {
	key  relayKey
	addr string // the leader's TCP address
	c    *Channel
	conn net.Conn
	rdy  atomic.Int64 // last RDY sent; written by relayLoop only

	wmu sync.Mutex // guards w
	w   *bufio.Writer

	done chan struct{} // closed when the reader has ended
	err  error         // why the reader ended; read after done
}

// relayLoop keeps the relays in line with the local subscribers and the
// current leader until exit is closed.
func (r *replicaSet) relayLoop(exit <-chan struct{}) {
	t := time.NewTicker(relayInterval)
	defer t.Stop()
	for {
		select {
		case <-exit:
			r.stopRelays()
			return
		case <-t.C:
			r.syncRelays()
			r.checkLeader(time.Now())
		}
	}
}

// leaderTCPAddr is the leader's TCP address, "" when this replica leads or
// the leader is unknown.
func (r *replicaSet) leaderTCPAddr() string {
	if r.node.IsLeader() {
		return ""
	}
	tcp, _, _ := strings.Cut(r.node.LeaderClientAddrs(), ",")
	return tcp
}

// syncRelays starts, retargets and stops relays. No lock is held across
// network I/O: under relaySync it decides which relays go and which are
// wanted, then releases it; each missing relay is dialled and handshaken
// with no lock held (under a context that stopRelays cancels), then
// installed under relaySync again only if nothing changed meanwhile (no
// Sync, same leader, still wanted); RDY is written outside relaySync
// (relay.wmu only). relaySync is taken by Sync too: a relay never empties
// a channel that Sync has just filled on a new leader, and one dialled
// before a Sync is never installed after it. Nothing under relaySync takes
// FSM.mu (Sync holds it while it waits for relaySync).
func (r *replicaSet) syncRelays() {
	target := r.currentRelayTarget()
	type dial struct {
		k relayKey
		c *Channel
	}
	var dials []dial
	r.relaySync.Lock()
	if r.dispatching.Load() {
		target = ""
	}
	want := make(map[relayKey]*Channel)
	draining := r.n.drain.active.Load()
	if target != "" {
		for _, t := range r.n.topicList() {
			if t.ephemeral {
				continue
			}
			for _, c := range t.channelList() {
				if draining && (r.relays[relayKey{t.name, c.name}] == nil || c.inFlightCount.Load() == 0) {
					// Draining: no new relay; one whose local
					// deliveries are all settled ends, handing back
					// what it holds (replication_limits.go, "Drain").
					continue
				}
				if !c.ephemeral && len(c.clientList()) > 0 {
					want[relayKey{t.name, c.name}] = c
				}
			}
		}
	}
	for k, rl := range r.relays {
		dead := false
		select {
		case <-rl.done:
			dead = true
		default:
		}
		if !dead && want[k] == rl.c && rl.addr == target {
			continue
		}
		r.setRelay(k, nil)
		rl.close()
		<-rl.done // the reader ends at once (its connection is closed) and empties rl.c
		if rl.err != nil && !errors.Is(rl.err, net.ErrClosed) {
			rl.c.log.Warn("REPLICATION: relay ended", "leader", rl.addr, "err", rl.err)
		}
	}
	for k, c := range want {
		if r.relays[k] == nil {
			dials = append(dials, dial{k, c})
		}
	}
	gen := r.relayGen
	ctx, cancel := context.WithCancel(context.Background())
	r.relayCancel = cancel
	r.relaySync.Unlock()
	defer cancel()

	for _, d := range dials {
		rl, br, err := r.dialRelay(ctx, d.k, d.c, target)
		if err != nil {
			if ctx.Err() != nil {
				return // a Sync or stopRelays came: decide again next tick
			}
			// Until an election settles the leader may be known but
			// gone: warn once a second, not every attempt.
			if now := time.Now(); now.Sub(r.relayWarned) >= time.Second {
				r.relayWarned = now
				d.c.log.Warn("REPLICATION: cannot relay from the leader", "leader", target, "err", err)
			}
			continue
		}
		now := r.currentRelayTarget() // takes FSM.mu: not under relaySync
		r.relaySync.Lock()
		ok := r.relayGen == gen && !r.dispatching.Load() && r.relays[d.k] == nil &&
			target == now && len(d.c.clientList()) > 0
		if ok {
			r.setRelay(d.k, rl)
			go rl.read(br) // ends when conn is closed; waited for through done
		}
		r.relaySync.Unlock()
		if !ok {
			// Not wanted any more: never read from (RDY 0, nothing was
			// delivered). After a Sync the next dials fail at once (ctx).
			rl.close()
		}
	}

	// RDY: the sum of the local subscribers' RDY, written with no lock
	// but relay.wmu held. A relay stopped meanwhile fails the write
	// (closed connection) and is gone next tick.
	r.relayMu.RLock()
	rls := make([]*relay, 0, len(r.relays))
	for _, rl := range r.relays {
		rls = append(rls, rl)
	}
	r.relayMu.RUnlock()
	for _, rl := range rls {
		var rdy int64
		for _, cl := range rl.c.clientList() {
			rdy += cl.rdy.Load()
		}
		rdy = min(rdy, r.n.opts.MaxRdyCount)
		if draining {
			rdy = 0 // let what is in flight here finish, take nothing new
		}
		if rdy != rl.rdy.Load() {
			rl.rdy.Store(rdy)
			rl.send(fmt.Sprintf("RDY %d\n", rdy))
		}
	}
}

// currentRelayTarget is the address relays should follow now. It may take
// FSM.mu: never call it under relaySync.
func (r *replicaSet) currentRelayTarget() string {
	if p := r.relayTarget.Load(); p != nil {
		return *p
	}
	return r.leaderTCPAddr()
}

// stopRelays ends every relay (the local channels keep what they hold) and
// aborts a dial in progress without waiting for it: the dialled relay is
// not installed (relayGen changed). relaySync is never held across network
// I/O, so this waits only for local work (a relay's reader ends as soon as
// its connection is closed).
func (r *replicaSet) stopRelays() {
	r.relaySync.Lock()
	defer r.relaySync.Unlock()
	r.relayGen++
	if r.relayCancel != nil {
		r.relayCancel()
	}
	for k, rl := range r.relays {
		r.setRelay(k, nil)
		rl.close()
		<-rl.done
	}
}

// setRelay adds (rl) or removes (nil) a relay. The map is written under
// relaySync and relayMu, read under either.
func (r *replicaSet) setRelay(k relayKey, rl *relay) {
	r.relayMu.Lock()
	defer r.relayMu.Unlock()
	if rl == nil {
		delete(r.relays, k)
	} else {
		r.relays[k] = rl
	}
}

// relayOf is the relay of a follower's replicated channel c, nil on the
// leader, for an ephemeral channel or while c has no relay.
func (r *replicaSet) relayOf(c *Channel) *relay {
	if c == nil || c.ephemeral || c.topic.ephemeral || r.dispatching.Load() {
		return nil
	}
	r.relayMu.RLock()
	rl := r.relays[relayKey{c.topicName, c.name}]
	r.relayMu.RUnlock()
	if rl == nil || rl.c != c {
		return nil
	}
	return rl
}

// relayFinish sends a local FIN up the channel's relay, if it has one.
func (r *replicaSet) relayFinish(c *Channel, id MessageID) {
	if rl := r.relayOf(c); rl != nil {
		rl.send("FIN " + string(id[:]) + "\n")
	}
}

// relayTouch sends a local TOUCH up the channel's relay, if it has one.
func (r *replicaSet) relayTouch(c *Channel, id MessageID) {
	if rl := r.relayOf(c); rl != nil {
		rl.send("TOUCH " + string(id[:]) + "\n")
	}
}

// relayRequeue hands REQ'd (delay: the REQ's), timed-out or abandoned (a
// consumer disconnected; delay 0) messages of a follower's replicated
// channel to the set: they go up the relay as REQ, the leader requeues or
// defers them and logs their attempts, and they are dropped here. Without a relay (it ended: the
// channel is being emptied) they are dropped too; the next leader
// delivers them again. It reports false where the messages are this
// replica's to requeue: on the leader and in ephemeral channels.
func (r *replicaSet) relayRequeue(c *Channel, msgs []*Message, delay time.Duration) bool {
	if c.ephemeral || c.topic.ephemeral || r.dispatching.Load() {
		return false
	}
	rl := r.relayOf(c)
	if rl == nil || len(msgs) == 0 {
		return true
	}
	ms := strconv.FormatInt(delay.Milliseconds(), 10)
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("REQ ")
		b.Write(m.ID[:])
		b.WriteString(" " + ms + "\n")
	}
	rl.send(b.String())
	return true
}

// dialRelay connects to the leader, identifies and subscribes (RDY 0
// until syncRelays sets it). It runs with no lock held; cancelling ctx
// aborts the dial and closes the connection during the handshake. The
// caller starts the reader (rl.read(br)) once it installs the relay.
func (r *replicaSet) dialRelay(ctx context.Context, k relayKey, c *Channel, addr string) (*relay, *bufio.Reader, error) {
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	rl := &relay{key: k, addr: addr, c: c, conn: conn, w: bufio.NewWriter(conn), done: make(chan struct{})}
	br := bufio.NewReaderSize(conn, 64<<10)
	ident, _ := json.Marshal(map[string]any{
		"client_id":          "replica-" + r.id + "-relay",
		"hostname":           r.n.opts.BroadcastAddress,
		"user_agent":         relayUserAgent, // the leader sets relayMsgTimeout
		"heartbeat_interval": 5000,
	})
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	b := append([]byte("  V2IDENTIFY\n"), binary.BigEndian.AppendUint32(nil, uint32(len(ident)))...)
	b = append(b, ident...)
	b = append(b, "SUB "+k.topic+" "+k.channel+"\n"...)
	if _, err := conn.Write(b); err != nil {
		conn.Close()
		return nil, nil, cmp.Or(ctx.Err(), err)
	}
	for _, what := range []string{"IDENTIFY", "SUB"} {
		ft, data, err := protocol.ReadFrame(br, 1<<30)
		if err == nil && (ft != protocol.FrameTypeResponse || string(data) != "OK") {
			err = fmt.Errorf("%s answered %q", what, data)
		}
		if err != nil {
			conn.Close()
			return nil, nil, cmp.Or(ctx.Err(), err)
		}
	}
	if !stop() {
		return nil, nil, ctx.Err() // cancelled as the handshake ended: conn is closed
	}
	conn.SetDeadline(time.Time{})
	return rl, br, nil
}

func (rl *relay) send(line string) {
	rl.wmu.Lock()
	defer rl.wmu.Unlock()
	rl.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	rl.w.WriteString(line)
	rl.w.Flush()
}

func (rl *relay) close() { rl.conn.Close() }

// read puts the leader's deliveries into the local channel until the
// connection ends. A heartbeat from the leader is answered with NOP; none
// for three intervals (a hung leader) ends the relay. When it ends, the
// local channel is emptied before done is closed: what it held is the
// leader's to deliver again, and a FIN, REQ or TOUCH for it now fails
// locally (E_FIN_FAILED, ...) instead of going up a dead connection.
// Sync, which may fill the channel as the new leader, waits for done
// (stopRelays), so it never loses what it queued.
func (rl *relay) read(br *bufio.Reader) {
	defer close(rl.done)
	defer rl.c.empty()
	defer rl.conn.Close()
	for {
		rl.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		ft, data, err := protocol.ReadFrame(br, 1<<30)
		if err != nil {
			rl.err = err
			return
		}
		switch ft {
		case protocol.FrameTypeResponse:
			if string(data) == "_heartbeat_" {
				rl.send("NOP\n")
			}
		case protocol.FrameTypeError:
			// A FIN, REQ or TOUCH for a message the leader no longer
			// holds for this relay (sent just as the relay changed
			// leader, or after the backstop timer) is expected.
			if bytes.HasPrefix(data, []byte("E_FIN_FAILED")) || bytes.HasPrefix(data, []byte("E_REQ_FAILED")) ||
				bytes.HasPrefix(data, []byte("E_TOUCH_FAILED")) {
				rl.c.log.Debug("REPLICATION: leader answered the relay with an error", "err", string(data))
				continue
			}
			rl.c.log.Warn("REPLICATION: leader answered the relay with an error", "err", string(data))
		case protocol.FrameTypeMessage:
			if len(data) < messageHeaderLen {
				rl.err = fmt.Errorf("message frame of %d bytes", len(data))
				return
			}
			m, _ := decodeMessage(data) // the body aliases data, a fresh buffer
			// The local delivery counts an attempt again.
			m.Attempts = max(m.Attempts, 1) - 1
			if _, err := rl.c.enqueue([]*Message{m}); err != nil {
				rl.err = err
				return
			}
		}
	}
}

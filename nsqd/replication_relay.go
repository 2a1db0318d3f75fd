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
// Commands go up the relay without blocking whoever sends them (a
// consumer's command loop, the queue-scan loop, tuneLoop): relay.send
// appends to a bounded queue that the relay's writer goroutine writes to
// the leader. A leader that reads nothing for relayWriteTimeout, or leaves
// relayQueueMax bytes of commands unread, ends the relay as a hung leader
// does (see relay.send for what that costs).
//
// Messages that wait in the follower's queue, not handed to a consumer,
// are given back to the leader (REQ <id> 0 undelivered; relayUndelivered)
// when the local subscribers cannot take them (their RDY dropped: go-nsq's
// backoff, RDY 0) or after relayQueueWait, so consumers on other replicas
// get them; the leader does not count the relay's delivery of a given-back
// message as an attempt.
//
// relayLoop, owned by replicaSet, starts, retargets and stops relays every
// relayInterval; tuneLoop, owned by replicaSet too, sets their RDY and
// gives back (tuneRelays) every relayInterval and whenever a local
// consumer sends RDY. replicaSet.wg owns each relay's reader and writer
// goroutines.

const relayInterval = 100 * time.Millisecond

// relayUserAgent is what a relay identifies with; a replica that sees it
// treats the connection as a relay (client.relay).
const relayUserAgent = "nsqd-replication-relay"

// relayUndelivered, as a fourth parameter of a relay's REQ (REQ <id> 0
// undelivered), marks a message the follower gives back without having
// delivered it to a consumer: the leader requeues it without counting the
// relay's delivery in its attempts. Honoured only from a relay (user agent
// relayUserAgent); NSQ and older replicas ignore extra REQ parameters, so
// they count the attempt.
const relayUndelivered = "undelivered"

// relayQueueWait is how long a relayed message may wait in the follower's
// queue, with local subscribers that could take it, before it is given
// back: their pumps take what they can at once, so a message waits only
// behind a consumer that is slow to take (a blocked write) or a paused
// channel. A message the local subscribers cannot take (beyond the sum of
// their RDY less what they hold) is given back at the next tune.
const relayQueueWait = time.Second

// relayQueueMax bounds the commands (FIN, REQ, TOUCH, RDY, NOP) waiting for
// a relay's writer: 4 MiB, some 200,000 FINs beyond what the socket
// buffers hold. relayWriteTimeout bounds one write to the leader;
// relayFlushTimeout the last one, when a relay is closed on purpose.
const (
	relayQueueMax     = 4 << 20
	relayWriteTimeout = 5 * time.Second
	relayFlushTimeout = 200 * time.Millisecond
)

// errRelayQueueFull ends a relay whose leader left relayQueueMax bytes of
// commands unread.
var errRelayQueueFull = errors.New("leader left the relay's commands unread")

// relayMsgTimeout is the leader's timer for a message in flight to a
// relay: twice --max-msg-timeout, restarted by every TOUCH the relay
// forwards (without NSQ's cap of delivery + --max-msg-timeout). A
// follower's consumer holds a message at most --max-msg-timeout after it
// got it (TOUCH included), and the follower settles, touches or gives back
// every message up the relay, so this timer fires only for a message that
// the follower lost (a command dropped with an ended relay that the leader
// did not see end) or that waited in its disk queue, which give-backs do
// not reach: a backstop, not the consumers' timeout. The relay
// cannot use a consumer's msg_timeout: the consumers of one follower may
// each identify with a different one, and the follower times them out
// itself.
func (r *replicaSet) relayMsgTimeout() time.Duration { return 2 * r.n.opts.MaxMsgTimeout }

type relayKey struct{ topic, channel string }

// relay is one upstream subscription of a follower.
type relay struct {
	key  relayKey
	addr string // the leader's TCP address
	c    *Channel
	conn net.Conn
	rdy  atomic.Int64 // last RDY sent; written by tuneLoop only
	max  int          // bound of out in bytes: relayQueueMax (tests lower it)

	mu      sync.Mutex    // guards out, ended, cause, flushBy and conn's write deadline; a leaf
	out     []byte        // commands for the writer, in order
	ended   bool          // takes no more commands: the relay is ending
	cause   error         // why this side ended the relay (queue full, write failed)
	flushBy time.Time     // set by beginFlush: when the last write must be done
	wake    chan struct{} // one pending signal: out has commands
	flush   chan struct{} // closed by beginFlush: write what is queued, then close conn
	wdone   chan struct{} // closed when the writer has ended

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
			r.endRelays(true) // shutting down: what consumers settled goes up first
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
// Sync, same leader, still wanted); RDY and give-backs are queued outside
// relaySync (tuneRelays). relaySync is taken by Sync too: a relay never empties
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
	var ended []*relay
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
		ended = append(ended, rl)
	}
	// The FINs and REQs that consumers sent just before they left go up
	// before the connection closes (within relayFlushTimeout).
	closeRelays(ended, true)
	for _, rl := range ended {
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
			// Both end once conn is closed; syncRelays and stopRelays
			// wait for the reader (done), close for both (r.wg).
			r.wg.Go(func() { rl.read(br) })
			r.wg.Go(rl.write)
		}
		r.relaySync.Unlock()
		if !ok {
			// Not wanted any more: never read from (RDY 0, nothing was
			// delivered). After a Sync the next dials fail at once (ctx).
			rl.close()
		}
	}

	if len(dials) > 0 {
		r.rdyChanged() // a new relay gets its RDY now
	}
}

// tuneLoop tunes the relays (tuneRelays) every relayInterval and as soon
// as a local consumer sends RDY (rdyChanged), until exit is closed. It is
// apart from relayLoop so that a relay dialling a slow or hung leader (up
// to 3 s) delays no other relay's RDY or give-backs.
func (r *replicaSet) tuneLoop(exit <-chan struct{}) {
	t := time.NewTicker(relayInterval)
	defer t.Stop()
	for {
		select {
		case <-exit:
			return
		case <-t.C:
		case <-r.relayWake:
		}
		r.tuneRelays(time.Now())
	}
}

// rdyChanged wakes tuneLoop to tune the relays (tuneRelays) after a local
// consumer sent RDY: a drop reaches the leader and frees what the follower
// can no longer deliver at once, not a relayInterval later. It never
// blocks.
func (r *replicaSet) rdyChanged() {
	select {
	case r.relayWake <- struct{}{}:
	default:
	}
}

// tuneRelays sets each relay's RDY to the sum of its local subscribers'
// RDY (at most --max-rdy-count) and gives back to the leader the messages
// of the relay's channel that wait in its memory queue while the local
// subscribers cannot take them: those beyond the room they have (the sum
// over subscribers of RDY less in flight), so every queued message when
// none has RDY > 0, and those queued for longer than relayQueueWait. RDY
// goes first, so the leader does not send a given-back message straight
// back. Commands are queued (relay.send), never written here. It holds
// relaySync (only local work under it): a Sync that makes this replica
// the leader has stopped every relay before it queues the set's messages,
// so nothing it queued is ever taken here. tuneLoop only.
func (r *replicaSet) tuneRelays(now time.Time) {
	r.relaySync.Lock()
	defer r.relaySync.Unlock()
	if r.dispatching.Load() {
		return
	}
	wait := r.relayQueueWait.Load()
	draining := r.n.drain.active.Load()
	for _, rl := range r.relays {
		var rdy, room int64
		for _, cl := range rl.c.clientList() {
			n := cl.rdy.Load()
			rdy += n
			room += max(0, n-cl.inFlightCount.Load())
		}
		rdy = min(rdy, r.n.opts.MaxRdyCount)
		if draining {
			rdy = 0 // let what is in flight here finish, take nothing new
		}
		if rdy != rl.rdy.Load() {
			rl.rdy.Store(rdy)
			rl.send("RDY " + strconv.FormatInt(rdy, 10) + "\n")
		}
		if wait <= 0 {
			continue // give-backs off (tests)
		}
		if back := rl.c.takeQueued(int(room), now.UnixNano()-wait); len(back) > 0 {
			var b []byte
			for _, m := range back {
				b = append(b, "REQ "...)
				b = append(b, m.ID[:]...)
				b = append(b, " 0 "+relayUndelivered+"\n"...)
			}
			rl.push(b)
			rl.c.log.Debug("REPLICATION: relay gave back undelivered messages", "count", len(back))
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

// stopRelays ends every relay at once (their readers empty the local
// channels; commands still queued are dropped: the set is changing
// leader) and aborts a dial in progress without waiting for it: the
// dialled relay is not installed (relayGen changed). relaySync is never
// held across network I/O, so this waits only for local work (a relay's
// reader ends as soon as its connection is closed).
func (r *replicaSet) stopRelays() { r.endRelays(false) }

// endRelays is stopRelays; with flush, the relays first write what is
// queued (closeRelays).
func (r *replicaSet) endRelays(flush bool) {
	r.relaySync.Lock()
	defer r.relaySync.Unlock()
	r.relayGen++
	if r.relayCancel != nil {
		r.relayCancel()
	}
	var rls []*relay
	for k, rl := range r.relays {
		r.setRelay(k, nil)
		rls = append(rls, rl)
	}
	closeRelays(rls, flush)
}

// closeRelays ends installed relays, already out of r.relays, and waits
// for their readers, which empty their channels. With flush, each writer
// first writes what is queued, all of them within one relayFlushTimeout
// (a write under way is cut short to it): the only wait for network I/O
// under relaySync, bounded so, and needed so that a consumer's last FIN or
// REQ is not lost when its leaving ends the relay. Without, the
// connections are closed at once.
func closeRelays(rls []*relay, flush bool) {
	for _, rl := range rls {
		if flush {
			rl.beginFlush()
		} else {
			rl.close()
		}
	}
	for _, rl := range rls {
		if flush {
			<-rl.wdone // the writer closed conn, or ended before
			rl.close()
		}
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
		rl.sendID("FIN ", id)
	}
}

// relayTouch sends a local TOUCH up the channel's relay, if it has one.
func (r *replicaSet) relayTouch(c *Channel, id MessageID) {
	if rl := r.relayOf(c); rl != nil {
		rl.sendID("TOUCH ", id)
	}
}

// relayRequeue hands REQ'd (delay: the REQ's), timed-out or abandoned (a
// consumer disconnected; delay 0) messages of a follower's replicated
// channel to the set: they go up the relay as REQ, the leader requeues or
// defers them and logs their attempts, and they are dropped here. Without
// a relay (it ended: the channel is being emptied) they are dropped too;
// the next leader delivers them again. It reports false where the
// messages are this replica's to requeue: on the leader and in ephemeral
// channels.
func (r *replicaSet) relayRequeue(c *Channel, msgs []*Message, delay time.Duration) bool {
	if c.ephemeral || c.topic.ephemeral || r.dispatching.Load() {
		return false
	}
	rl := r.relayOf(c)
	if rl == nil || len(msgs) == 0 {
		return true
	}
	ms := strconv.FormatInt(delay.Milliseconds(), 10)
	var b []byte
	for _, m := range msgs {
		b = append(b, "REQ "...)
		b = append(b, m.ID[:]...)
		b = append(b, " "+ms+"\n"...)
	}
	rl.push(b)
	return true
}

// dialRelay connects to the leader, identifies and subscribes (RDY 0
// until tuneRelays sets it). It runs with no lock held; cancelling ctx
// aborts the dial and closes the connection during the handshake. The
// caller starts the reader (rl.read(br)) and the writer once it installs
// the relay.
func (r *replicaSet) dialRelay(ctx context.Context, k relayKey, c *Channel, addr string) (*relay, *bufio.Reader, error) {
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	rl := &relay{key: k, addr: addr, c: c, conn: conn, max: relayQueueMax, wake: make(chan struct{}, 1),
		flush: make(chan struct{}), wdone: make(chan struct{}), done: make(chan struct{})}
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

// send queues commands (each ending in '\n') for the leader; push and
// sendID do the same for bytes and for one FIN or TOUCH. None of them
// blocks or does I/O: the writer goroutine writes what is queued, in order.
// A relay that is ending takes nothing: its commands are lost with its
// connection, as they would be in flight. A queue that would pass rl.max
// (the leader reads nothing while commands keep coming) ends the relay:
// its connection is closed, the reader empties the local channel, the
// leader requeues what was in flight to the relay when it sees the
// connection end (or the next leader delivers it again), and relayLoop
// dials again. Nothing acknowledged is lost, but a FIN that was queued and
// not written means the message is delivered again: a duplicate, as
// across a failover.
func (rl *relay) send(line string) { rl.push([]byte(line)) }

// sendID queues cmd (with its space) followed by id and a newline.
func (rl *relay) sendID(cmd string, id MessageID) {
	var b [32]byte
	line := append(b[:0], cmd...)
	line = append(line, id[:]...)
	rl.push(append(line, '\n'))
}

func (rl *relay) push(cmds []byte) {
	rl.mu.Lock()
	if rl.ended {
		rl.mu.Unlock()
		return
	}
	full := len(rl.out)+len(cmds) > rl.max
	if full {
		rl.ended, rl.cause, rl.out = true, errRelayQueueFull, nil
	} else {
		rl.out = append(rl.out, cmds...)
	}
	rl.mu.Unlock()
	if full {
		rl.conn.Close()
		return
	}
	select {
	case rl.wake <- struct{}{}:
	default:
	}
}

// write writes the queued commands to the leader until the relay ends (the
// reader closes done) or is closed on purpose (beginFlush: it writes what
// is queued, then closes conn). A write that cannot finish within
// relayWriteTimeout (the leader reads nothing) ends the relay. Started by
// syncRelays on replicaSet.wg.
func (rl *relay) write() {
	defer close(rl.wdone)
	var buf []byte
	for {
		last := false
		select {
		case <-rl.wake:
		case <-rl.flush:
			last = true // nothing is queued after this: ended is set
		case <-rl.done:
			return
		}
		rl.mu.Lock()
		buf, rl.out = rl.out, buf[:0]
		if len(buf) > 0 {
			d := time.Now().Add(relayWriteTimeout)
			if !rl.flushBy.IsZero() && rl.flushBy.Before(d) {
				d = rl.flushBy
			}
			rl.conn.SetWriteDeadline(d)
		}
		rl.mu.Unlock()
		if len(buf) > 0 {
			if _, err := rl.conn.Write(buf); err != nil {
				rl.end(fmt.Errorf("write to the leader: %w", err))
				return
			}
		}
		if last {
			rl.conn.Close()
			return
		}
		if cap(buf) > 64<<10 {
			buf = nil // a burst is over: do not keep its buffer
		}
	}
}

// beginFlush starts closing the relay on purpose: it takes no more
// commands, and its writer writes what is queued within relayFlushTimeout
// (cutting short a write under way), then closes the connection, which
// ends the reader. closeRelays waits for both.
func (rl *relay) beginFlush() {
	rl.mu.Lock()
	if rl.flushBy.IsZero() {
		rl.ended = true
		rl.flushBy = time.Now().Add(relayFlushTimeout)
		rl.conn.SetWriteDeadline(rl.flushBy)
		close(rl.flush)
	}
	rl.mu.Unlock()
}

// close ends the relay on purpose (not wanted, leader changed): the reader
// ends with net.ErrClosed, which is not warned about.
func (rl *relay) close() { rl.conn.Close() }

// end ends the relay from this side: it takes no more commands and its
// connection is closed, which ends the reader.
func (rl *relay) end(cause error) {
	rl.mu.Lock()
	if !rl.ended {
		rl.ended, rl.cause, rl.out = true, cause, nil
	}
	rl.mu.Unlock()
	rl.conn.Close()
}

// read puts the leader's deliveries into the local channel until the
// connection ends. A heartbeat from the leader is answered with NOP; none
// for three intervals (a hung leader) ends the relay. When it ends, the
// local channel is emptied before done is closed: what it held is the
// leader's to deliver again, and a FIN, REQ or TOUCH for it now fails
// locally (E_FIN_FAILED, ...) instead of going up a dead connection.
// Sync, which may fill the channel as the new leader, waits for done
// (stopRelays), so it never loses what it queued.
func (rl *relay) read(br *bufio.Reader) {
	defer func() {
		rl.conn.Close()
		rl.mu.Lock()
		rl.ended, rl.out = true, nil
		if rl.cause != nil {
			rl.err = rl.cause // ended by send or the writer, which closed conn
		}
		rl.mu.Unlock()
		rl.c.empty()
		close(rl.done)
	}()
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
			// Until a consumer takes it, deliveryTS is when it arrived
			// (tuneRelays gives back what waits too long).
			m.deliveryTS = time.Now().UnixNano()
			if _, err := rl.c.enqueue([]*Message{m}); err != nil {
				rl.err = err
				return
			}
		}
	}
}

package nsqd

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
// A local FIN is sent up the relay. A local REQ or timeout requeues the
// message locally (the leader keeps it in flight: the relay identifies with
// the largest msg_timeout); if the follower dies, its relay connection
// ends and the leader requeues the relay's in-flight messages at once.
// When the relay ends (the leader changed, died or hung) the local channel
// is emptied: the next leader delivers every unfinished message again.
//
// relayLoop, owned by replicaSet, starts, retargets and stops relays every
// relayInterval.

const relayInterval = 100 * time.Millisecond

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
	if target != "" {
		for _, t := range r.n.topicList() {
			if t.ephemeral {
				continue
			}
			for _, c := range t.channelList() {
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
		<-rl.done // the reader ends at once: its connection is closed
		if !r.dispatching.Load() {
			// What it delivered locally and was not finished comes
			// again from the next leader.
			rl.c.empty()
		}
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

// relayFinish sends a local FIN up the channel's relay, if it has one.
func (r *replicaSet) relayFinish(c *Channel, id MessageID) {
	r.relayMu.RLock()
	rl := r.relays[relayKey{c.topicName, c.name}]
	r.relayMu.RUnlock()
	if rl != nil && rl.c == c {
		rl.send("FIN " + string(id[:]) + "\n")
	}
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
		"user_agent":         "nsqd-replication-relay",
		"heartbeat_interval": 5000,
		"msg_timeout":        r.n.opts.MaxMsgTimeout.Milliseconds(),
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
// for three intervals (a hung leader) ends the relay.
func (rl *relay) read(br *bufio.Reader) {
	defer close(rl.done)
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

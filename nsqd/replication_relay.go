package nsqd

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
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
	rdy  int64 // last RDY sent; relayLoop only

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

// syncRelays starts, retargets and stops relays. It runs under relaySync,
// which Sync also takes: a relay never empties a channel that Sync has just
// filled on a new leader. Nothing under relaySync takes FSM.mu (Sync holds
// it while it waits for relaySync).
func (r *replicaSet) syncRelays() {
	target := r.leaderTCPAddr()
	r.relaySync.Lock()
	defer r.relaySync.Unlock()
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
		<-rl.done
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
		rl := r.relays[k]
		if rl == nil {
			var err error
			if rl, err = r.dialRelay(k, c, target); err != nil {
				// Until an election settles the leader may be known
				// but gone: warn once a second, not every attempt.
				if now := time.Now(); now.Sub(r.relayWarned) >= time.Second {
					r.relayWarned = now
					c.log.Warn("REPLICATION: cannot relay from the leader", "leader", target, "err", err)
				}
				continue
			}
			r.setRelay(k, rl)
		}
		var rdy int64
		for _, cl := range c.clientList() {
			rdy += cl.rdy.Load()
		}
		rdy = min(rdy, r.n.opts.MaxRdyCount)
		if rdy != rl.rdy {
			rl.rdy = rdy
			rl.send(fmt.Sprintf("RDY %d\n", rdy))
		}
	}
}

// stopRelays ends every relay (the local channels keep what they hold).
func (r *replicaSet) stopRelays() {
	r.relaySync.Lock()
	defer r.relaySync.Unlock()
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

// dialRelay connects to the leader, identifies, subscribes and starts the
// reader (RDY 0 until syncRelays sets it).
func (r *replicaSet) dialRelay(k relayKey, c *Channel, addr string) (*relay, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
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
		return nil, err
	}
	for _, what := range []string{"IDENTIFY", "SUB"} {
		ft, data, err := readRelayFrame(br)
		if err == nil && (ft != frameTypeResponse || string(data) != "OK") {
			err = fmt.Errorf("%s answered %q", what, data)
		}
		if err != nil {
			conn.Close()
			return nil, err
		}
	}
	conn.SetDeadline(time.Time{})
	go rl.read(br) // ends when conn is closed; waited for through done
	return rl, nil
}

const (
	frameTypeResponse = 0
	frameTypeError    = 1
	frameTypeMessage  = 2
)

func readRelayFrame(r *bufio.Reader) (int32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 || size > 1<<30 {
		return 0, nil, fmt.Errorf("bad frame size %d", size)
	}
	data := make([]byte, size-4)
	if _, err := io.ReadFull(r, data); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(hdr[4:])), data, nil
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
		ft, data, err := readRelayFrame(br)
		if err != nil {
			rl.err = err
			return
		}
		switch ft {
		case frameTypeResponse:
			if string(data) == "_heartbeat_" {
				rl.send("NOP\n")
			}
		case frameTypeError:
			rl.c.log.Warn("REPLICATION: leader answered the relay with an error", "err", string(data))
		case frameTypeMessage:
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

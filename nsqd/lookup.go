package nsqd

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/internal/version"
)

// lookupd connection settings (NSQ's, not configurable).
const (
	lookupPingInterval = 15 * time.Second
	lookupDialTimeout  = time.Second
	lookupIOTimeout    = time.Second
	lookupQueueLen     = 4096
)

// lookupPeer is nsqd's connection to one nsqlookupd. Its goroutine (run)
// owns the connection: it connects, sends IDENTIFY and every current
// registration on each (re)connect, forwards REGISTER/UNREGISTER commands
// queued by the daemon, and PINGs every 15 s. A reader goroutine per
// connection hands over the responses and notices at once when lookupd
// closes the connection; then run reconnects every second until it
// succeeds (NSQ waits for the next PING, so a restarted lookupd is missing
// registrations for up to 30 s).
type lookupPeer struct {
	addr string
	n    *NSQD
	log  *slog.Logger

	cmds   chan string // "REGISTER t c" lines
	resync atomic.Bool // commands were dropped: resend everything
	stop   chan struct{}

	httpAddr atomic.Pointer[string] // lookupd's broadcast_address:http_port

	// Owned by run.
	conn       net.Conn
	resp       chan lookupResponse // from the connection's reader
	readerDone chan struct{}
}

// lookupResponse is one response payload, or the error that ended the
// connection.
type lookupResponse struct {
	data []byte
	err  error
}

func newLookupPeer(n *NSQD, addr string) *lookupPeer {
	return &lookupPeer{
		addr: addr,
		n:    n,
		log:  n.logger.With("lookupd", addr),
		cmds: make(chan string, lookupQueueLen),
		stop: make(chan struct{}),
	}
}

// send queues a command; when the queue is full the peer resyncs instead.
func (p *lookupPeer) send(cmd string) {
	select {
	case p.cmds <- cmd:
	default:
		p.resync.Store(true)
	}
}

const lookupRetryInterval = time.Second

func (p *lookupPeer) run(ctx context.Context) {
	p.log.Info("LOOKUP: adding peer")
	defer p.close()
	ping := time.NewTicker(lookupPingInterval)
	defer ping.Stop()
	retry := time.NewTimer(0) // connect at once
	defer retry.Stop()
	for {
		var resp <-chan lookupResponse
		if p.conn != nil {
			resp = p.resp
		}
		select {
		case cmd := <-p.cmds:
			p.command(cmd)
		case <-ping.C:
			p.command("PING")
		case <-retry.C:
			if p.conn == nil {
				p.command("PING")
			}
		case r := <-resp: // unsolicited: the connection ended
			p.log.Warn("LOOKUP: connection lost", "err", r.err)
			p.close()
		case <-p.stop:
			return
		case <-ctx.Done():
			return
		}
		if p.conn == nil {
			retry.Reset(lookupRetryInterval)
		}
	}
}

// close drops the connection and waits for its reader.
func (p *lookupPeer) close() {
	if p.conn == nil {
		return
	}
	p.conn.Close()
	for { // drain, so the reader is never stuck handing over a response
		select {
		case <-p.resp:
			continue
		case <-p.readerDone:
		}
		break
	}
	p.conn = nil
}

// command sends one command, connecting (and registering everything) first
// if needed. Errors drop the connection; run retries it.
func (p *lookupPeer) command(cmd string) {
	if p.conn == nil || p.resync.Swap(false) {
		p.close()
		if err := p.connect(); err != nil {
			p.log.Error("LOOKUP: connection failed", "err", err)
			p.close()
			return
		}
		if cmd != "PING" {
			return // the registrations just sent include this command's effect
		}
	}
	if _, err := p.roundTrip([]byte(cmd + "\n")); err != nil {
		p.log.Error("LOOKUP: command failed", "cmd", cmd, "err", err)
		p.close()
	}
}

// readLookupResponses hands over responses ([4-byte size][payload]) until the
// connection ends; the last item carries the error.
func readLookupResponses(conn net.Conn, out chan<- lookupResponse, done chan<- struct{}) {
	defer close(done)
	r := bufio.NewReader(conn)
	for {
		var sz [4]byte
		if _, err := io.ReadFull(r, sz[:]); err != nil {
			out <- lookupResponse{err: err}
			return
		}
		n := binary.BigEndian.Uint32(sz[:])
		if n > 1<<20 {
			out <- lookupResponse{err: fmt.Errorf("response of %d bytes", n)}
			return
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			out <- lookupResponse{err: err}
			return
		}
		out <- lookupResponse{data: b}
	}
}

func (p *lookupPeer) connect() error {
	conn, err := net.DialTimeout("tcp", p.addr, lookupDialTimeout)
	if err != nil {
		return err
	}
	p.conn = conn
	// Room for every response of a registration burst plus the final error,
	// so the reader never blocks while run is busy.
	p.resp = make(chan lookupResponse, 1)
	p.readerDone = make(chan struct{})
	go readLookupResponses(conn, p.resp, p.readerDone) // owned by run: close waits for it
	if _, err := conn.Write([]byte(protocol.MagicV1)); err != nil {
		return err
	}
	body, _ := json.Marshal(p.n.lookupIdentity())
	msg := binary.BigEndian.AppendUint32([]byte("IDENTIFY\n"), uint32(len(body)))
	resp, err := p.roundTrip(append(msg, body...))
	if err != nil {
		return fmt.Errorf("IDENTIFY: %w", err)
	}
	var info struct {
		BroadcastAddress string `json:"broadcast_address"`
		HTTPPort         int    `json:"http_port"`
	}
	if json.Unmarshal(resp, &info) == nil && info.BroadcastAddress != "" {
		ha := net.JoinHostPort(info.BroadcastAddress, strconv.Itoa(info.HTTPPort))
		p.httpAddr.Store(&ha)
	}
	p.log.Info("LOOKUP: connected and identified")
	// Register everything in one pipelined write, then read the replies.
	regs := p.n.registrations()
	if len(regs) == 0 {
		return nil
	}
	var batch []byte
	for _, r := range regs {
		batch = append(batch, r...)
		batch = append(batch, '\n')
	}
	deadline := time.Now().Add(lookupIOTimeout + time.Duration(len(regs))*time.Millisecond)
	conn.SetWriteDeadline(deadline)
	if _, err := conn.Write(batch); err != nil {
		return err
	}
	for range regs {
		if _, err := p.response(deadline); err != nil {
			return fmt.Errorf("REGISTER: %w", err)
		}
	}
	return nil
}

// roundTrip writes b and waits for one response, with NSQ's 1 s deadlines.
func (p *lookupPeer) roundTrip(b []byte) ([]byte, error) {
	deadline := time.Now().Add(lookupIOTimeout)
	p.conn.SetWriteDeadline(deadline)
	if _, err := p.conn.Write(b); err != nil {
		return nil, err
	}
	return p.response(deadline)
}

// response waits for the next response; an E_ payload is an error.
func (p *lookupPeer) response(deadline time.Time) ([]byte, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case r := <-p.resp:
		if r.err != nil {
			return nil, r.err
		}
		if len(r.data) > 2 && r.data[0] == 'E' && r.data[1] == '_' {
			return nil, errors.New(string(r.data))
		}
		return r.data, nil
	case <-t.C:
		return nil, errors.New("i/o timeout waiting for nsqlookupd")
	}
}

// lookupIdentity is the IDENTIFY body nsqd sends to lookupd.
func (n *NSQD) lookupIdentity() map[string]any {
	hostname, _ := os.Hostname()
	return map[string]any{
		"broadcast_address": n.opts.BroadcastAddress,
		"hostname":          hostname,
		"http_port":         n.broadcastHTTPPort(),
		"tcp_port":          n.broadcastTCPPort(),
		"topology_region":   n.opts.TopologyRegion,
		"topology_zone":     n.opts.TopologyZone,
		"version":           version.Binary,
	}
}

func (n *NSQD) broadcastTCPPort() int {
	if n.opts.BroadcastTCPPort != 0 {
		return n.opts.BroadcastTCPPort
	}
	return addrPort(n.TCPAddr())
}

func (n *NSQD) broadcastHTTPPort() int {
	if n.opts.BroadcastHTTPPort != 0 {
		return n.opts.BroadcastHTTPPort
	}
	return addrPort(n.HTTPAddr())
}

// registrations lists what a (re)connected lookupd must be told: each topic
// without channels, and each topic:channel pair.
func (n *NSQD) registrations() []string {
	var out []string
	for _, t := range n.topicList() {
		chans := t.channelList()
		if len(chans) == 0 && !n.withdrawn(t.name) {
			out = append(out, "REGISTER "+t.name)
		}
		for _, c := range chans {
			if !n.withdrawn(t.name + " " + c.name) {
				out = append(out, "REGISTER "+t.name+" "+c.name)
			}
		}
	}
	return out
}

// lookupManager keeps one lookupPeer per configured address.
type lookupManager struct {
	mu      sync.Mutex
	peers   map[string]*lookupPeer
	wg      sync.WaitGroup
	ctx     context.Context
	changed chan struct{} // cap 1: the address set changed
}

// lookupLoop runs the peers until ctx ends, adding and removing them when
// PUT /config/nsqlookupd_tcp_addresses changes the set.
func (n *NSQD) lookupLoop(ctx context.Context) {
	m := n.lookup
	m.ctx = ctx
	for {
		n.syncLookupPeers()
		select {
		case <-m.changed:
		case <-ctx.Done():
			m.wg.Wait()
			return
		}
	}
}

func (n *NSQD) syncLookupPeers() {
	m := n.lookup
	want := n.LookupdTCPAddresses()
	m.mu.Lock()
	defer m.mu.Unlock()
	for addr, p := range m.peers {
		if !slices.Contains(want, addr) {
			close(p.stop)
			delete(m.peers, addr)
			p.log.Info("LOOKUP: removing peer")
		}
	}
	for _, addr := range want {
		if _, ok := m.peers[addr]; !ok {
			p := newLookupPeer(n, addr)
			m.peers[addr] = p
			m.wg.Go(func() { p.run(m.ctx) })
		}
	}
}

// lookupSend queues a command for every lookupd.
func (n *NSQD) lookupSend(cmd string) {
	m := n.lookup
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		p.send(cmd)
	}
}

// lookupChannels asks every identified lookupd which channels it knows for
// a topic, so that they exist before the topic's first message.
func (n *NSQD) lookupChannels(topic string) []string {
	m := n.lookup
	m.mu.Lock()
	var addrs []string
	for _, p := range m.peers {
		if ha := p.httpAddr.Load(); ha != nil {
			addrs = append(addrs, *ha)
		}
	}
	peers := len(m.peers)
	m.mu.Unlock()
	if peers == 0 {
		return nil
	}
	if len(addrs) == 0 {
		n.logger.Warn("LOOKUP: no available nsqlookupd to query for channels to pre-create", "topic", topic)
		return nil
	}
	client := n.httpClient
	var out []string
	for _, a := range addrs {
		u := "http://" + a + "/channels?topic=" + url.QueryEscape(topic)
		resp, err := client.Get(u)
		if err != nil {
			n.logger.Warn("LOOKUP: failed to query channels", "url", u, "err", err)
			continue
		}
		var body struct {
			Channels []string `json:"channels"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body)
		resp.Body.Close()
		if err != nil {
			n.logger.Warn("LOOKUP: bad channels response", "url", u, "err", err)
			continue
		}
		for _, c := range body.Channels {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

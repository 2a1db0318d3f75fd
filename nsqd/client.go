package nsqd

import (
	"bufio"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
)

// Client states as /stats reports them.
const (
	stateInit       = 0
	stateSubscribed = 3
	stateClosing    = 4
)

const (
	defaultBufferSize = 16 * 1024 // default output buffer (IDENTIFY output_buffer_size)
	// A connection reads through a small buffer (command lines are under
	// 200 bytes; larger bodies are read straight into their slice) until it
	// does message traffic: then the buffer grows, once it is empty, to 4 KiB
	// for a consumer's FINs or 16 KiB for a publisher. Idle connections stay
	// small and busy ones read in large chunks.
	readBufferSize       = 256
	finReadBufferSize    = 4 * 1024 // a consumer's FINs: ~180 per read
	activeReadBufferSize = 16 * 1024
	maxDeliverBatch      = 256 // messages a pump takes from its channel at once
)

// client is one V2 TCP connection. Two goroutines serve it, both owned by the
// TCP server: the command loop (protocol_v2.go) reads and executes commands;
// the pump delivers messages, heartbeats and flushes. Writes to the socket go
// through wmu and a buffered writer.
type client struct {
	id          int64
	nsqd        *NSQD
	conn        net.Conn
	r           *bufio.Reader // used by the command loop only
	freshStack  bool          // command loop only: go on in a new goroutine (runV2)
	growTo      int           // command loop only: read buffer size wanted (wantReader)
	params      [][]byte      // command loop only: the current command's words
	pumpDone    chan struct{} // closed when the pump has returned
	rsrc        io.Reader     // what r reads from (the connection as upgraded)
	remoteAddr  string
	connectTime time.Time

	// Output. out is the connection as upgraded (TLS, snappy, deflate); w
	// buffers it and is allocated on the first buffered write, so an idle
	// connection holds no output buffer. wmu guards them.
	wmu       sync.Mutex
	out       io.Writer
	w         *bufio.Writer
	wSize     int  // output buffer size for w
	unflushed bool // a response waits in w for the command loop to flush
	// writeTimeout is the socket write deadline (the heartbeat interval).
	writeTimeout *atomic.Int64

	// Set by the command loop before SUB, read by the pump only after the
	// hand-over through settingsChanged; stats read them under mu.
	mu                sync.Mutex
	clientID          string
	hostname          string
	userAgent         string
	heartbeatInterval time.Duration
	msgTimeout        time.Duration
	outputBufferSize  int
	outputBufferTO    time.Duration
	sampleRate        int32
	identified        bool
	pubCounts         map[string]uint64
	tlsState          *tls.ConnectionState
	authSecret        string
	authState         *authState
	// relay is set at IDENTIFY for a follower's replication relay on a
	// replica (replication_relay.go): its REQs and FINs are not counted
	// again in the channel's requeue_count and e2e latency, and its TOUCH
	// is not capped.
	relay bool

	// In-flight messages, guarded by mu.
	inFlight     map[MessageID]*Message
	inFlightList inFlightList
	closed       bool // no more in-flight messages accepted

	state         atomic.Int32
	rdy           atomic.Int64
	inFlightCount atomic.Int64
	channel       atomic.Pointer[Channel]
	waiting       bool // registered in channel.waiters; guarded by channel.mu
	// turn is set (under channel.mu) when a put woke this pump as the
	// oldest waiter: it must take (Channel.take) or pass the turn on
	// (Channel.passTurn). Atomic so the pump checks it without the lock.
	turn  atomic.Bool
	slots []queueSlot // pump only: what Channel.take popped

	wake            chan struct{} // cap 1: something may be deliverable
	settingsChanged chan struct{} // cap 1: heartbeat interval changed
	exit            chan struct{} // closed when the connection ends
	closeOnce       sync.Once

	snappy       atomic.Bool
	deflate      atomic.Bool
	messageCount atomic.Uint64
	finishCount  atomic.Uint64
	requeueCount atomic.Uint64
	published    atomic.Bool
}

func newClient(n *NSQD, id int64, raw net.Conn) *client {
	host, _, _ := net.SplitHostPort(raw.RemoteAddr().String())
	conn := &deadlineConn{Conn: raw, readNext: -1} // handleConn set one for the magic
	c := &client{
		id:                id,
		nsqd:              n,
		conn:              conn,
		r:                 bufio.NewReaderSize(conn, readBufferSize),
		rsrc:              conn,
		out:               conn,
		wSize:             defaultBufferSize,
		remoteAddr:        conn.RemoteAddr().String(),
		connectTime:       time.Now(),
		clientID:          host,
		hostname:          host,
		heartbeatInterval: n.opts.ClientTimeout / 2,
		msgTimeout:        n.opts.MsgTimeout,
		outputBufferSize:  defaultBufferSize,
		outputBufferTO:    n.opts.OutputBufferTimeout,
		wake:              make(chan struct{}, 1),
		settingsChanged:   make(chan struct{}, 1),
		exit:              make(chan struct{}),
	}
	conn.timeout.Store(int64(c.heartbeatInterval))
	c.writeTimeout = &conn.timeout
	return c
}

// logger is the daemon's logger with this connection's address; built on
// use, since most connections never log.
func (c *client) logger() *slog.Logger {
	return c.nsqd.logger.With("client", c.remoteAddr)
}

// deadlineConn gives every write to the socket a deadline of one heartbeat
// interval (NSQ's rule), so a peer that stops reading cannot block the pump
// forever, and every read a deadline of two, so a peer that went silent
// (no command, not even NOP, for two heartbeats) is dropped. Moving a
// deadline costs a timer update, so it moves only once 1/16 of the interval
// has passed: a connection may be closed up to that much early. Writes
// happen under client.wmu, which guards next; reads only in the command
// loop, which owns readNext.
type deadlineConn struct {
	net.Conn
	timeout  atomic.Int64 // the heartbeat interval, ns; 0 = no deadlines
	next     time.Time    // write deadline last set
	readNext int64        // read deadline last set, Unix ns; 0 = none, -1 = unknown
	readHold bool         // reads leave the deadline alone (TLS handshake)
}

// Read refreshes the read deadline before each read from the socket (not
// before each command: most commands come from what is already buffered).
func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.readHold {
		return d.Conn.Read(p)
	}
	if t := d.timeout.Load(); t > 0 {
		now := time.Now().UnixNano()
		if left := d.readNext - now; left < 2*t-t/16 || left > 2*t {
			d.readNext = now + 2*t
			d.Conn.SetReadDeadline(time.Unix(0, d.readNext))
		}
	} else if d.readNext != 0 {
		d.readNext = 0
		d.Conn.SetReadDeadline(time.Time{})
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if t := time.Duration(d.timeout.Load()); t > 0 {
		now := time.Now()
		if left := d.next.Sub(now); left < t-t/16 || left > t {
			d.next = now.Add(t)
			d.Conn.SetWriteDeadline(d.next)
		}
	} else if !d.next.IsZero() {
		d.next = time.Time{}
		d.Conn.SetWriteDeadline(d.next)
	}
	return d.Conn.Write(p)
}

func (c *client) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// closeConn ends the connection; both goroutines then return.
func (c *client) closeConn() {
	c.closeOnce.Do(func() {
		close(c.exit)
		c.conn.Close()
	})
}

// wantReader asks for a read buffer of size bytes, which the command loop
// puts in place (resizeReader) once the current one holds nothing.
func (c *client) wantReader(size int) {
	if size > c.r.Size() {
		c.growTo = max(c.growTo, size)
	}
}

// resizeReader replaces the empty read buffer with the size wantReader
// asked for.
//
//go:noinline
func (c *client) resizeReader() {
	if c.growTo > c.r.Size() {
		c.r = bufio.NewReaderSize(c.rsrc, c.growTo)
	}
	c.growTo = 0
}

// outputBuffers holds the default-size output buffers of connections that
// have nothing to send: a consumer keeps one only while it is delivering.
var outputBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, defaultBufferSize) }}

// writer returns the output buffer, taking it on first use. Callers hold
// wmu.
func (c *client) writer() *bufio.Writer {
	if c.w == nil {
		if c.wSize == defaultBufferSize {
			c.w = outputBuffers.Get().(*bufio.Writer)
			c.w.Reset(c.out)
		} else {
			c.w = bufio.NewWriterSize(c.out, max(c.wSize, 64))
		}
	}
	return c.w
}

// releaseWriter gives an empty default-size output buffer back to
// outputBuffers; the pump calls it when it runs out of messages.
func (c *client) releaseWriter() {
	c.wmu.Lock()
	if c.w != nil && c.w.Buffered() == 0 && !c.unflushed && c.w.Size() == defaultBufferSize {
		c.w.Reset(nil)
		outputBuffers.Put(c.w)
		c.w = nil
	}
	c.wmu.Unlock()
}

// setOutput replaces the output (after an upgrade) or its buffer size; any
// buffered bytes are flushed first. Callers hold wmu.
func (c *client) setOutput(out io.Writer, size int) error {
	if c.w != nil {
		if err := c.w.Flush(); err != nil {
			return err
		}
	}
	c.out, c.wSize, c.w = out, size, nil
	return nil
}

// writeResponse buffers a response frame. The command loop flushes it
// before it waits for more input (flushResponses), so the responses to
// pipelined commands share one write.
func (c *client) writeResponse(data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w == nil && c.r.Buffered() == 0 {
		// Nothing buffered and no pipelined command waiting: one write, and
		// a connection that only subscribes never allocates a buffer.
		return c.writeDirect(protocol.FrameTypeResponse, data)
	}
	c.unflushed = true
	_, err := protocol.WriteFrame(c.writer(), protocol.FrameTypeResponse, data)
	return err
}

// flushResponses flushes buffered responses, if any.
func (c *client) flushResponses() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.unflushed {
		return nil
	}
	c.unflushed = false
	return c.w.Flush()
}

// writeDirect writes a frame with nothing buffered behind it straight to
// the output, without allocating a buffer. Callers hold wmu.
func (c *client) writeDirect(frameType int32, data []byte) error {
	var b [64]byte
	frame := protocol.AppendFrame(b[:0], frameType, data)
	_, err := c.out.Write(frame)
	return err
}

// writeFrameFlush sends a frame and flushes.
func (c *client) writeFrameFlush(frameType int32, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w == nil || c.w.Buffered() == 0 {
		return c.writeDirect(frameType, data)
	}
	if _, err := protocol.WriteFrame(c.w, frameType, data); err != nil {
		return err
	}
	c.unflushed = false
	return c.w.Flush()
}

func (c *client) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.unflushed = false
	if c.w == nil {
		return nil
	}
	return c.w.Flush()
}

// pump delivers messages while the client is ready, sends heartbeats and
// flushes the output buffer whenever it runs out of messages to send.
func (c *client) pump() {
	var (
		batch    []*Message
		pending  bool // unflushed messages in the buffer
		hb       *time.Ticker
		hbC      <-chan time.Time
		interval time.Duration
	)
	resetHeartbeat := func() {
		c.mu.Lock()
		iv := c.heartbeatInterval
		c.mu.Unlock()
		if iv == interval {
			return
		}
		interval = iv
		if hb != nil {
			hb.Stop()
			hb, hbC = nil, nil
		}
		if iv > 0 {
			hb = time.NewTicker(iv)
			hbC = hb.C
		}
	}
	resetHeartbeat()
	defer func() {
		if hb != nil {
			hb.Stop()
		}
	}()

	for {
		if ch := c.channel.Load(); ch != nil && c.state.Load() == stateSubscribed && !ch.paused.Load() {
			if want := c.rdy.Load() - c.inFlightCount.Load(); want > 0 {
				n := int(min(want, maxDeliverBatch))
				// Memory first; then the disk queue. take registers the pump
				// to be woken by the next put, to memory or to disk.
				batch = ch.take(batch[:0], n, c)
				if len(batch) == 0 {
					batch = ch.readDisk(batch, n)
				}
				if len(batch) > 0 {
					if err := c.deliver(ch, batch); err != nil {
						c.closeConn()
						return
					}
					pending = true
					clear(batch)
					select {
					case <-hbC:
						if c.writeFrameFlush(protocol.FrameTypeResponse, protocol.Heartbeat) != nil {
							c.closeConn()
							return
						}
						pending = false
					case <-c.exit:
						return
					default:
					}
					continue
				}
			}
		}
		if c.turn.Load() {
			// Woken for a message it cannot take now: the next waiter gets it.
			if ch := c.channel.Load(); ch != nil {
				ch.passTurn(c)
			}
		}
		if pending {
			if c.flush() != nil {
				c.closeConn()
				return
			}
			pending = false
			c.releaseWriter()
		}
		select {
		case <-c.wake:
		case <-hbC:
			if c.writeFrameFlush(protocol.FrameTypeResponse, protocol.Heartbeat) != nil {
				c.closeConn()
				return
			}
		case <-c.settingsChanged:
			resetHeartbeat()
		case <-c.exit:
			return
		}
	}
}

// deliver records msgs as in flight to this client and writes them. Messages
// dropped by the client's sample rate are discarded, as in NSQ.
func (c *client) deliver(ch *Channel, msgs []*Message) error {
	now := time.Now().UnixNano()
	if l := ch.lim.Load(); l != nil {
		if msgs = ch.beforeDeliver(l, msgs, now); len(msgs) == 0 {
			return nil
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		ch.requeue(msgs)
		return nil
	}
	timeout := int64(c.msgTimeout)
	rate := c.sampleRate
	n := 0
	var dropped []*Message
	for _, m := range msgs {
		if rate > 0 && sample() > rate {
			// Sampled out: finished for the journal and the replica set.
			if m.journaled || c.nsqd.repl.Load() != nil {
				dropped = append(dropped, m)
			}
			continue
		}
		m.Attempts++
		m.deliveryTS = now
		m.deadline = now + timeout
		if c.inFlight == nil { // made on first delivery: idle consumers hold none
			c.inFlight = make(map[MessageID]*Message)
		}
		c.inFlight[m.ID] = m
		c.inFlightList.add(m)
		msgs[n] = m
		n++
	}
	c.mu.Unlock()
	for _, m := range dropped {
		ch.finished(m)
	}
	msgs = msgs[:n]
	if n == 0 {
		return nil
	}
	c.inFlightCount.Add(int64(n))
	ch.inFlightCount.Add(int64(n))
	c.messageCount.Add(uint64(n))

	c.wmu.Lock()
	defer c.wmu.Unlock()
	w := c.writer()
	for _, m := range msgs {
		if err := m.writeFrame(w); err != nil {
			return err
		}
	}
	return nil
}

// finish removes id from flight (FIN). It returns the message, or an error
// text for E_FIN_FAILED.
func (c *client) popInFlight(id MessageID) (*Message, string) {
	c.mu.Lock()
	m, ok := c.inFlight[id]
	if ok {
		delete(c.inFlight, id)
		c.inFlightList.remove(m)
	}
	c.mu.Unlock()
	if !ok {
		if ch := c.channel.Load(); ch != nil && ch.ownedByOther(id, c) {
			return nil, "client does not own message"
		}
		return nil, "ID not in flight"
	}
	left := c.inFlightCount.Add(-1)
	if ch := c.channel.Load(); ch != nil {
		ch.inFlightCount.Add(-1)
	}
	// Only a pump that was full waits for capacity; otherwise it is
	// delivering or waiting for messages, and a wake would be wasted.
	if left+1 >= c.rdy.Load() {
		c.wakeUp()
	}
	return m, ""
}

// touch extends a message's timeout: now + msg_timeout, at most delivery time
// + --max-msg-timeout.
func (c *client) touch(id MessageID) string {
	now := time.Now().UnixNano()
	c.mu.Lock()
	m, ok := c.inFlight[id]
	if ok {
		c.inFlightList.remove(m)
		m.deadline = now + int64(c.msgTimeout)
		if !c.relay { // a relay's consumers are capped on their replica
			m.deadline = min(m.deadline, m.deliveryTS+int64(c.nsqd.opts.MaxMsgTimeout))
		}
		c.inFlightList.add(m)
	}
	c.mu.Unlock()
	if !ok {
		if ch := c.channel.Load(); ch != nil && ch.ownedByOther(id, c) {
			return "client does not own message"
		}
		return "ID not in flight"
	}
	return ""
}

func (c *client) hasInFlight(id MessageID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.inFlight[id]
	return ok
}

// processTimeouts requeues in-flight messages whose timeout passed.
func (c *client) processTimeouts(now int64) {
	if c.inFlightCount.Load() == 0 {
		return
	}
	c.mu.Lock()
	expired := c.inFlightList.popDue(nil, now)
	for _, m := range expired {
		delete(c.inFlight, m.ID)
	}
	c.mu.Unlock()
	if len(expired) == 0 {
		return
	}
	c.inFlightCount.Add(-int64(len(expired)))
	if ch := c.channel.Load(); ch != nil {
		ch.inFlightCount.Add(-int64(len(expired)))
		ch.timeoutCount.Add(uint64(len(expired)))
		if l := ch.lim.Load(); l != nil {
			expired = ch.takeDeadLetters(l, expired)
		}
		if r := c.nsqd.repl.Load(); r == nil || !r.relayRequeue(ch, expired, 0) {
			ch.requeue(expired)
		}
	}
	c.wakeUp()
}

// takeAllInFlight empties the in-flight set; closing stops further deliveries.
func (c *client) takeAllInFlight(closing bool) []*Message {
	c.mu.Lock()
	out := c.inFlightList.takeAll()
	clear(c.inFlight)
	if closing {
		c.closed = true
	}
	c.mu.Unlock()
	if len(out) > 0 {
		c.inFlightCount.Add(-int64(len(out)))
		if ch := c.channel.Load(); ch != nil {
			ch.inFlightCount.Add(-int64(len(out)))
		}
	}
	return out
}

// dropInFlight forgets every in-flight message (channel emptied).
func (c *client) dropInFlight() {
	c.takeAllInFlight(false)
	c.wakeUp()
}

// cleanup runs when the connection has ended: it unsubscribes the client
// and requeues its in-flight messages at once (NSQ waits for their timeout).
func (c *client) cleanup() {
	msgs := c.takeAllInFlight(true)
	ch := c.channel.Load()
	if ch == nil {
		return
	}
	if len(msgs) > 0 {
		if r := c.nsqd.repl.Load(); r == nil || !r.relayRequeue(ch, msgs, 0) {
			ch.requeue(msgs)
		}
	}
	ch.removeClient(c)
}

func (c *client) countPub(topic string, n int) {
	c.published.Store(true)
	c.mu.Lock()
	if c.pubCounts == nil {
		c.pubCounts = make(map[string]uint64)
	}
	c.pubCounts[topic] += uint64(n)
	c.mu.Unlock()
}

package main

// A lean NSQ V2 client, the same code for both daemons: it writes the frames
// itself ("  V2", MPUB, PUB, SUB, RDY, FIN, NOP), reads frames zero-copy from
// a bufio.Reader and keeps per-message work to a few loads and one FIN write.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Frame types of the V2 protocol.
const (
	frameResponse = 0
	frameError    = 1
	frameMessage  = 2
)

// A message frame's data: timestamp (8), attempts (2), ID (16), body.
const (
	msgHeaderLen = 8 + 2 + 16
	msgIDOffset  = 8 + 2
)

// The body of every message: sequence number (8), send time in ns since
// epoch0 (8), then filler up to the message size.
const (
	bodySeq  = 0
	bodyTime = 8
	bodyMin  = 16
)

var (
	respOK        = []byte("OK")
	respHeartbeat = []byte("_heartbeat_")
)

// epoch0 is the origin of the send times inside message bodies; the harness
// is both sender and receiver, so a monotonic offset is enough.
var epoch0 = time.Now()

func nowNanos() int64 { return int64(time.Since(epoch0)) }

// conn is one V2 connection.
type conn struct {
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	wmu sync.Mutex // w, when two goroutines write (publisher and heartbeat replies)
}

func dialV2(ctx context.Context, addr string) (*conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cn := &conn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}
	if _, err := cn.w.WriteString("  V2"); err != nil {
		c.Close()
		return nil, err
	}
	return cn, nil
}

func (c *conn) Close() error { return c.c.Close() }

// readFrame returns the next frame. data is valid until the next call: it
// points into the read buffer for frames that fit there.
func (c *conn) readFrame(scratch *[]byte) (typ int32, data []byte, err error) {
	hdr, err := c.r.Peek(4)
	if err != nil {
		return 0, nil, err
	}
	size := int(binary.BigEndian.Uint32(hdr))
	if size < 4 || size > 64<<20 {
		return 0, nil, fmt.Errorf("bad frame size %d", size)
	}
	if 4+size <= c.r.Size() {
		b, err := c.r.Peek(4 + size)
		if err != nil {
			return 0, nil, err
		}
		typ = int32(binary.BigEndian.Uint32(b[4:8]))
		data = b[8:]
		_, _ = c.r.Discard(4 + size)
		return typ, data, nil
	}
	if cap(*scratch) < 4+size {
		*scratch = make([]byte, 4+size)
	}
	b := (*scratch)[:4+size]
	if _, err := io.ReadFull(c.r, b); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(b[4:8])), b[8:], nil
}

// expectOK reads frames until a response, answering heartbeats, and fails
// unless it is OK.
func (c *conn) expectOK(what string) error {
	var scratch []byte
	for {
		typ, data, err := c.readFrame(&scratch)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		switch {
		case typ == frameResponse && bytes.Equal(data, respHeartbeat):
			c.w.WriteString("NOP\n")
			if err := c.w.Flush(); err != nil {
				return err
			}
		case typ == frameResponse && bytes.Equal(data, respOK):
			return nil
		default:
			return fmt.Errorf("%s: frame type %d %q", what, typ, data)
		}
	}
}

// subscribe sends SUB and waits for OK, then sends RDY (not flushed when
// rdy is 0).
func (c *conn) subscribe(topic, channel string, rdy int) error {
	fmt.Fprintf(c.w, "SUB %s %s\n", topic, channel)
	if err := c.w.Flush(); err != nil {
		return err
	}
	if err := c.expectOK("SUB " + topic + " " + channel); err != nil {
		return err
	}
	if rdy > 0 {
		c.w.WriteString("RDY " + strconv.Itoa(rdy) + "\n")
		return c.w.Flush()
	}
	return nil
}

// identify sends IDENTIFY with the given JSON and waits for its response
// (feature negotiation is off, so OK).
func (c *conn) identify(body string) error {
	c.w.WriteString("IDENTIFY\n")
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(body)))
	c.w.Write(n[:])
	c.w.WriteString(body)
	if err := c.w.Flush(); err != nil {
		return err
	}
	return c.expectOK("IDENTIFY")
}

// fillBody writes a message body: seq, a placeholder time and filler.
func fillBody(b []byte, seq uint64) {
	binary.BigEndian.PutUint64(b[bodySeq:], seq)
	binary.BigEndian.PutUint64(b[bodyTime:], 0)
	for i := bodyMin; i < len(b); i++ {
		b[i] = 'a' + byte(i%26)
	}
}

// mpubFrame is a reusable MPUB command of n messages of size bytes each, with
// the offsets of the message bodies so their sequence numbers can be patched
// in place before each send.
type mpubFrame struct {
	buf     []byte
	offsets []int
}

func newMPUB(topic string, n, size int) *mpubFrame {
	bodyLen := 4 + n*(4+size)
	f := &mpubFrame{offsets: make([]int, n)}
	b := make([]byte, 0, len("MPUB \n")+len(topic)+4+bodyLen)
	b = append(b, "MPUB "...)
	b = append(b, topic...)
	b = append(b, '\n')
	b = binary.BigEndian.AppendUint32(b, uint32(bodyLen))
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for i := range n {
		b = binary.BigEndian.AppendUint32(b, uint32(size))
		f.offsets[i] = len(b)
		b = append(b, make([]byte, size)...)
		fillBody(b[f.offsets[i]:f.offsets[i]+size], 0)
	}
	f.buf = b
	return f
}

// setSeqs numbers the messages base, base+1, ... and stamps the send time.
func (f *mpubFrame) setSeqs(base uint64) {
	now := uint64(nowNanos())
	for i, off := range f.offsets {
		binary.BigEndian.PutUint64(f.buf[off+bodySeq:], base+uint64(i))
		binary.BigEndian.PutUint64(f.buf[off+bodyTime:], now)
	}
}

// seqAlloc hands out dense sequence numbers in batches, up to limit.
type seqAlloc struct {
	next  atomic.Int64
	limit int64 // a multiple of every batch size taken
}

func (a *seqAlloc) take(n int64) (int64, bool) {
	v := a.next.Add(n)
	if v > a.limit {
		return 0, false
	}
	return v - n, true
}

// issued is how many sequence numbers were handed out (all sent or failed).
func (a *seqAlloc) issued() int64 { return min(a.next.Load(), a.limit) }

// pubResult is what a set of publishers did.
type pubResult struct {
	acked   int64 // messages confirmed with OK
	issued  int64 // sequence numbers handed out, [0, issued)
	elapsed time.Duration
}

// publish runs conns connections sending MPUB batches of batch messages to
// topic, at most outstanding unconfirmed batches each, until ctx ends or the
// allocator runs out; it waits for the outstanding confirmations.
func publish(ctx context.Context, addr, topic string, conns, batch, size, outstanding int, alloc *seqAlloc) (pubResult, error) {
	var (
		wg     sync.WaitGroup
		acked  atomic.Int64
		errMu  sync.Mutex
		first  error
		start  = time.Now()
		setErr = func(err error) {
			errMu.Lock()
			if first == nil {
				first = err
			}
			errMu.Unlock()
		}
	)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := publishConn(ctx, addr, topic, batch, size, outstanding, alloc, &acked); err != nil {
				setErr(err)
			}
		}()
	}
	wg.Wait()
	res := pubResult{acked: acked.Load(), issued: alloc.issued(), elapsed: time.Since(start)}
	if first != nil {
		return res, first
	}
	if res.acked != res.issued {
		return res, fmt.Errorf("published %d messages, %d confirmed", res.issued, res.acked)
	}
	return res, nil
}

func publishConn(ctx context.Context, addr, topic string, batch, size, outstanding int, alloc *seqAlloc, acked *atomic.Int64) error {
	c, err := dialV2(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.w.Flush(); err != nil {
		return err
	}
	frame := newMPUB(topic, batch, size)
	slots := make(chan struct{}, outstanding)
	readErr := make(chan error, 1)
	go func() {
		var scratch []byte
		for {
			typ, data, err := c.readFrame(&scratch)
			if err != nil {
				readErr <- err
				return
			}
			switch {
			case typ == frameResponse && bytes.Equal(data, respOK):
				acked.Add(int64(batch))
				<-slots
			case typ == frameResponse && bytes.Equal(data, respHeartbeat):
				c.wmu.Lock()
				c.w.WriteString("NOP\n")
				err := c.w.Flush()
				c.wmu.Unlock()
				if err != nil {
					readErr <- err
					return
				}
			default:
				readErr <- fmt.Errorf("MPUB: frame type %d %q", typ, data)
				return
			}
		}
	}()
	fail := func(err error) error {
		c.Close()
		<-readErr
		return err
	}
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			return err
		case <-ctx.Done():
			continue
		}
		base, ok := alloc.take(int64(batch))
		if !ok {
			<-slots
			break
		}
		frame.setSeqs(uint64(base))
		c.wmu.Lock()
		_, err := c.w.Write(frame.buf)
		if err == nil {
			err = c.w.Flush()
		}
		c.wmu.Unlock()
		if err != nil {
			return fail(err)
		}
	}
	// Wait for the outstanding confirmations.
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for range outstanding {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			return err
		case <-deadline.C:
			return fail(fmt.Errorf("MPUB: %d batches not confirmed after 30s", len(slots)))
		}
	}
	c.Close()
	<-readErr
	return nil
}

// tracker records which sequence numbers a channel delivered: each exactly
// once is the pass condition. done closes when target distinct ones arrived.
type tracker struct {
	seen       []atomic.Uint64
	capacity   int64
	distinct   atomic.Int64
	dups       atomic.Int64
	unexpected atomic.Int64
	redeliver  atomic.Int64 // attempts > 1
	target     atomic.Int64
	done       chan struct{}
	once       sync.Once
	doneAt     atomic.Int64 // nowNanos when done
	lat        []int64      // when non-nil: receive - send time, by seq
}

func newTracker(capacity int64) *tracker {
	t := &tracker{seen: make([]atomic.Uint64, (capacity+63)/64), capacity: capacity, done: make(chan struct{})}
	t.target.Store(1<<63 - 1)
	return t
}

func (t *tracker) setTarget(n int64) {
	t.target.Store(n)
	if t.distinct.Load() >= n {
		t.finish()
	}
}

func (t *tracker) finish() {
	t.once.Do(func() {
		t.doneAt.Store(nowNanos())
		close(t.done)
	})
}

// mark records one delivered message body.
func (t *tracker) mark(body []byte, attempts uint16) {
	if len(body) < bodyMin {
		t.unexpected.Add(1)
		return
	}
	seq := int64(binary.BigEndian.Uint64(body[bodySeq:]))
	if attempts > 1 {
		t.redeliver.Add(1)
	}
	if seq < 0 || seq >= t.capacity {
		t.unexpected.Add(1)
		return
	}
	bit := uint64(1) << (seq % 64)
	if t.seen[seq/64].Or(bit)&bit != 0 {
		t.dups.Add(1)
		return
	}
	if t.lat != nil {
		t.lat[seq] = nowNanos() - int64(binary.BigEndian.Uint64(body[bodyTime:]))
	}
	if t.distinct.Add(1) >= t.target.Load() {
		t.finish()
	}
}

// check reports lost, duplicated or unexpected messages against the n sent.
func (t *tracker) check(name string, sent int64) error {
	d, dup, un, re := t.distinct.Load(), t.dups.Load(), t.unexpected.Load(), t.redeliver.Load()
	if d != sent || dup != 0 || un != 0 {
		return fmt.Errorf("%s: sent %d, received %d distinct (lost %d), %d duplicates, %d unexpected, %d with attempts>1",
			name, sent, d, sent-d, dup, un, re)
	}
	return nil
}

// consumer is one subscribed connection finishing every message it gets.
type consumer struct {
	c      *conn
	t      *tracker
	errs   chan error
	closed atomic.Bool
}

// startConsumer subscribes to topic/channel with the given RDY and
// consumes into t until stopped. identify, when set, is sent first.
func startConsumer(ctx context.Context, addr, topic, channel string, rdy int, identify string, t *tracker) (*consumer, error) {
	c, err := dialV2(ctx, addr)
	if err != nil {
		return nil, err
	}
	if identify != "" {
		if err := c.identify(identify); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.subscribe(topic, channel, rdy); err != nil {
		c.Close()
		return nil, err
	}
	k := &consumer{c: c, t: t, errs: make(chan error, 1)}
	go k.loop()
	return k, nil
}

func (k *consumer) loop() {
	c := k.c
	var scratch []byte
	fin := []byte("FIN 0123456789abcdef\n")
	for {
		// Flush FINs before the read would block.
		if c.w.Buffered() > 0 {
			need := 4
			if c.r.Buffered() >= 4 {
				hdr, _ := c.r.Peek(4)
				need += int(binary.BigEndian.Uint32(hdr))
			}
			if c.r.Buffered() < need {
				if err := c.w.Flush(); err != nil {
					k.stop(err)
					return
				}
			}
		}
		typ, data, err := c.readFrame(&scratch)
		if err != nil {
			k.stop(err)
			return
		}
		switch typ {
		case frameMessage:
			if len(data) < msgHeaderLen {
				k.stop(fmt.Errorf("short message frame (%d bytes)", len(data)))
				return
			}
			attempts := binary.BigEndian.Uint16(data[8:10])
			copy(fin[4:20], data[msgIDOffset:msgIDOffset+16])
			c.w.Write(fin)
			k.t.mark(data[msgHeaderLen:], attempts)
		case frameResponse:
			if bytes.Equal(data, respHeartbeat) {
				c.w.WriteString("NOP\n")
			}
		default:
			k.stop(fmt.Errorf("error frame %q", data))
			return
		}
	}
}

func (k *consumer) stop(err error) {
	if k.closed.Load() {
		err = nil
	}
	k.errs <- err
}

// close ends the consumer and returns the error that stopped it before, if
// any.
func (k *consumer) close() error {
	k.closed.Store(true)
	k.c.Close()
	err := <-k.errs
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// closeAll closes consumers and returns the first error.
func closeAll(ks []*consumer) error {
	var first error
	for _, k := range ks {
		if k == nil {
			continue
		}
		if err := k.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// waitDone waits until every tracker is done, failing on a consumer error,
// on ctx, or when no tracker made progress for stall.
func waitDone(ctx context.Context, ts []*tracker, ks []*consumer, stall time.Duration) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	progress := func() (n int64) {
		for _, t := range ts {
			n += t.distinct.Load() + t.dups.Load()
		}
		return n
	}
	last, lastAt := progress(), time.Now()
	for _, t := range ts {
		for {
			select {
			case <-t.done:
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
				for _, k := range ks {
					select {
					case err := <-k.errs:
						k.errs <- err // close() reads it again
						if err == nil {
							err = errors.New("closed")
						}
						return fmt.Errorf("consumer stopped early: %w", err)
					default:
					}
				}
				if p := progress(); p != last {
					last, lastAt = p, time.Now()
				} else if time.Since(lastAt) > stall {
					return fmt.Errorf("no delivery for %v", stall)
				}
				continue
			}
			break
		}
	}
	return nil
}

// doneAt is the latest finish time of the trackers.
func doneAt(ts []*tracker) time.Time {
	var latest int64
	for _, t := range ts {
		latest = max(latest, t.doneAt.Load())
	}
	return epoch0.Add(time.Duration(latest))
}

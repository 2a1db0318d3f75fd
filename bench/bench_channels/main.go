// Command bench_channels loads nsqd with many subscriptions, as NSQ's
// bench_channels does: -num connections, opened 5 ms apart, each subscribes
// to channel "ch" of its own topic t0, t1, ... t<num-1>; once all are
// subscribed each sends RDY 1 and finishes every message it gets. It shows
// how nsqd copes with thousands of topics and channels with a consumer each,
// idle or busy (publish to the t<j> topics from elsewhere).
//
// Like NSQ's it runs until it is interrupted; -runfor (not in NSQ) stops it
// after a while. Unlike NSQ's, which prints nothing, it then prints
//
//	duration: 10.0s - 10000 topics - 52000 msgs - 5200.000ops/s
//
// and exits 0, or 1 when a connection failed or nsqd sent an error.
//
// It speaks the V2 protocol directly, one goroutine per connection.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	num        = flag.Int("num", 10000, "num channels (one topic t<N> with channel ch and one connection each)")
	tcpAddress = flag.String("nsqd-tcp-address", "127.0.0.1:4150", "<addr>:<port> to connect to nsqd")
	runfor     = flag.Duration("runfor", 0, "how long to run once subscribed (0: until interrupted)")
)

// dialSpacing is the pause between two connections, as in NSQ's tool.
const dialSpacing = 5 * time.Millisecond

func main() {
	flag.Parse()
	log.SetPrefix("bench_channels: ")
	log.SetFlags(0)
	if *num <= 0 {
		log.Fatal("-num must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *tcpAddress, *num, *runfor); err != nil {
		stop()
		log.Fatal(err)
	}
}

// run subscribes n connections, then consumes until ctx ends, runfor has
// passed (if positive) or a connection fails, and prints the result line.
func run(ctx context.Context, addr string, n int, runfor time.Duration) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	subs := make([]*subscriber, 0, n)
	defer func() {
		for _, s := range subs {
			s.c.Close()
		}
	}()
	for j := range n {
		if j > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("interrupted after %d of %d subscriptions", j, n)
			case <-time.After(dialSpacing):
			}
		}
		s, err := subscribe(ctx, addr, "t"+strconv.Itoa(j), "ch")
		if err != nil {
			return err
		}
		subs = append(subs, s)
	}
	log.Printf("%d connections subscribed to t0..t%d/ch", n, n-1)

	var (
		wg   sync.WaitGroup
		msgs atomic.Int64
	)
	start := time.Now()
	for _, s := range subs {
		wg.Go(func() {
			if err := s.consume(&msgs); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("%s: %w", s.topic, err))
			}
		})
	}
	if runfor > 0 {
		timer := time.AfterFunc(runfor, func() { cancel(nil) })
		defer timer.Stop()
	}
	<-ctx.Done()
	duration := time.Since(start)
	for _, s := range subs {
		s.c.Close() // ends each consume's blocked read
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	total := msgs.Load()
	fmt.Printf("duration: %.1fs - %d topics - %d msgs - %.03fops/s\n",
		duration.Seconds(), n, total, float64(total)/duration.Seconds())
	return nil
}

// subscriber is one connection subscribed to topic/ch.
type subscriber struct {
	topic string
	c     net.Conn
	r     *bufio.Reader
	buf   []byte // the last frame's data
}

// subscribe connects, identifies and subscribes, and waits for both OKs.
func subscribe(ctx context.Context, addr, topic, channel string) (*subscriber, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &subscriber{topic: topic, c: c, r: bufio.NewReaderSize(c, 4096)}
	identify := []byte(`{"client_id":"bench_channels","user_agent":"bench_channels"}`)
	cmd := []byte("  V2IDENTIFY\n")
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(len(identify)))
	cmd = append(cmd, identify...)
	cmd = fmt.Appendf(cmd, "SUB %s %s\n", topic, channel)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(cmd); err != nil {
		c.Close()
		return nil, err
	}
	for _, what := range []string{"IDENTIFY", "SUB " + topic + " " + channel} {
		frameType, data, err := s.readFrame()
		if err == nil && (frameType != frameResponse || string(data) != "OK") {
			err = fmt.Errorf("%s: %s", what, data)
		}
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	c.SetDeadline(time.Time{})
	return s, nil
}

// Frame types of the V2 protocol.
const (
	frameResponse = 0
	frameError    = 1
	frameMessage  = 2
)

// readFrame reads one frame; data is valid until the next read.
func (s *subscriber) readFrame() (frameType uint32, data []byte, err error) {
	var hdr [8]byte
	if _, err := io.ReadFull(s.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 || size > 64<<20 {
		return 0, nil, fmt.Errorf("bad frame size %d", size)
	}
	if cap(s.buf) < int(size-4) {
		s.buf = make([]byte, size-4)
	}
	data = s.buf[:size-4]
	if _, err := io.ReadFull(s.r, data); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(hdr[4:]), data, nil
}

// consume sends RDY 1 and finishes every message until the connection is
// closed or nsqd sends an error. RDY stays 1 after each FIN, so it is sent
// once.
func (s *subscriber) consume(msgs *atomic.Int64) error {
	if _, err := s.c.Write([]byte("RDY 1\n")); err != nil {
		return err
	}
	fin := []byte("FIN 0123456789abcdef\n")
	for {
		frameType, data, err := s.readFrame()
		if err != nil {
			return err
		}
		switch frameType {
		case frameMessage: // [8 timestamp][2 attempts][16 id][body]
			if len(data) < 26 {
				return fmt.Errorf("short message frame of %d bytes", len(data))
			}
			copy(fin[4:20], data[10:26])
			if _, err := s.c.Write(fin); err != nil {
				return err
			}
			msgs.Add(1)
		case frameResponse:
			if string(data) == "_heartbeat_" {
				if _, err := s.c.Write([]byte("NOP\n")); err != nil {
					return err
				}
			}
		case frameError:
			return fmt.Errorf("nsqd: %s", data)
		default:
			return fmt.Errorf("unexpected frame type %d", frameType)
		}
	}
}

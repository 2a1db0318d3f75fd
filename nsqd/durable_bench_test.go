package nsqd

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDurableJournalDelay measures how long a durable channel's
// finished records wait before the sync loop writes them (durable mode
// promises about 50 ms), with 2,000 durable channels (100 topics of 20)
// under load: publishers MPUB to the topics in turn while one consumer per
// channel FINs everything it gets. It reports the interval between two
// writes of the same journal (the longest a record waits) as percentiles
// and the maximum, and the messages consumed per second.
//
//	go test ./nsqd -run '^$' -bench DurableJournalDelay -benchtime 1x
//
// With -short (make test) it runs 50 channels for 1 s, to keep working.
func BenchmarkDurableJournalDelay(b *testing.B) {
	topics, perTopic, window := 100, 20, 5*time.Second
	if testing.Short() {
		topics, perTopic, window = 10, 5, time.Second
	}
	for b.Loop() {
		o := testOptions(b)
		o.Durable = true
		n, err := New(o)
		if err != nil {
			b.Fatal(err)
		}
		var (
			mu        sync.Mutex
			intervals []time.Duration
			measuring atomic.Bool
		)
		n.journalWritten = func(d time.Duration) {
			if measuring.Load() {
				mu.Lock()
				intervals = append(intervals, d)
				mu.Unlock()
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()

		// Create the channels, eight at a time (each persists nsqd.dat and
		// fsyncs a new journal).
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 8 {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < topics*perTopic; i = int(next.Add(1)) - 1 {
					t, err := n.GetTopic(fmt.Sprintf("t%d", i/perTopic))
					if err == nil {
						_, err = t.GetChannel(fmt.Sprintf("c%d", i%perTopic))
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()

		stop := make(chan struct{})
		var consumed atomic.Int64
		var conns []net.Conn
		for i := range topics * perTopic {
			c, err := net.Dial("tcp", n.TCPAddr().String())
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "  V2SUB t%d c%d\nRDY 50\n", i/perTopic, i%perTopic)
			wg.Go(func() { finAll(c, &consumed) })
		}
		for p := range 4 {
			c, err := net.Dial("tcp", n.TCPAddr().String())
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			wg.Go(func() { publishRoundRobin(b, c, p, topics, stop) })
		}

		time.Sleep(time.Second) // warm up
		measuring.Store(true)
		c0 := consumed.Load()
		start := time.Now()
		time.Sleep(window)
		measuring.Store(false)
		rate := float64(consumed.Load()-c0) / time.Since(start).Seconds()
		close(stop)
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}

		mu.Lock()
		slices.Sort(intervals)
		if len(intervals) == 0 {
			b.Fatal("no journal writes measured")
		}
		pct := func(p float64) float64 {
			return float64(intervals[int(p*float64(len(intervals)-1))]) / float64(time.Millisecond)
		}
		b.ReportMetric(pct(0.5), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		b.ReportMetric(pct(1), "max-ms")
		b.ReportMetric(rate, "msgs/s")
		mu.Unlock()
	}
}

// finAll reads messages from a subscribed connection and FINs each, until
// the connection closes.
func finAll(c net.Conn, consumed *atomic.Int64) {
	r := bufio.NewReaderSize(c, 16*1024)
	w := bufio.NewWriter(c)
	fin := []byte("FIN 0123456789abcdef\n")
	var hdr [8]byte
	buf := make([]byte, 4096)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		size := int(binary.BigEndian.Uint32(hdr[:4])) - 4
		if size > len(buf) {
			buf = make([]byte, size)
		}
		data := buf[:size]
		if _, err := io.ReadFull(r, data); err != nil {
			return
		}
		switch binary.BigEndian.Uint32(hdr[4:]) {
		case 2: // message
			copy(fin[4:20], data[10:26])
			w.Write(fin)
			consumed.Add(1)
		case 0:
			if string(data) == "_heartbeat_" {
				w.WriteString("NOP\n")
			}
		}
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
	}
}

// publishRoundRobin sends MPUBs of 10 messages to topics t<p>, t<p+4>, ...
// in turn, one at a time, until stop closes.
func publishRoundRobin(b *testing.B, c net.Conn, p, topics int, stop <-chan struct{}) {
	c.Write([]byte("  V2"))
	r := bufio.NewReader(c)
	frames := make([][]byte, topics)
	for i := range frames {
		frames[i] = mpubFrame(fmt.Sprintf("t%d", i), 10, 100)
	}
	var hdr [8]byte
	for i := p; ; i += 4 {
		select {
		case <-stop:
			return
		default:
		}
		if _, err := c.Write(frames[i%topics]); err != nil {
			return
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		size := int(binary.BigEndian.Uint32(hdr[:4])) - 4
		if _, err := r.Discard(size); err != nil {
			return
		}
		if binary.BigEndian.Uint32(hdr[4:]) != 0 {
			b.Errorf("MPUB failed")
			return
		}
	}
}

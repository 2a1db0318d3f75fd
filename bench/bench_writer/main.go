// Command bench_writer loads nsqd with publishes: GOMAXPROCS connections
// each send MPUB batches of -batch-size messages of -size bytes to -topic
// for -runfor, then it prints the publish rate as NSQ's bench_writer does:
//
//	duration: 10.0s - 95.367mb/s - 500000.000ops/s - 2.000us/op
//
// It speaks the V2 protocol directly. Every batch is the same bytes, built
// once, and each connection keeps up to two batches unacknowledged so the
// round trip does not idle the link; nothing is allocated per message.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime"
	"sync"
	"time"
)

var (
	runfor     = flag.Duration("runfor", 10*time.Second, "how long to publish")
	tcpAddress = flag.String("nsqd-tcp-address", "127.0.0.1:4150", "<addr>:<port> of the nsqd to publish to")
	topic      = flag.String("topic", "sub_bench", "topic to publish to")
	size       = flag.Int("size", 200, "bytes per message")
	batchSize  = flag.Int("batch-size", 200, "messages per MPUB")
	deadline   = flag.String("deadline", "", "local time to start at, as YYYY-MM-DD HH:MM:SS (to start several writers together)")
)

// window is the number of MPUBs a connection sends before it waits for the
// first one's OK.
const window = 2

func main() {
	flag.Parse()
	log.SetPrefix("bench_writer: ")
	log.SetFlags(0)
	if *size <= 0 || *batchSize <= 0 {
		log.Fatal("-size and -batch-size must be positive")
	}
	cmd := mpub(*topic, *size, *batchSize)
	waitDeadline(*deadline)

	n := runtime.GOMAXPROCS(0)
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", *tcpAddress)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := c.Write([]byte("  V2")); err != nil {
			log.Fatal(err)
		}
		conns[i] = c
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		batches int64
		errs    []error
	)
	start := time.Now()
	end := start.Add(*runfor)
	for _, c := range conns {
		wg.Go(func() {
			defer c.Close()
			k, err := publish(c, cmd, end)
			mu.Lock()
			defer mu.Unlock()
			batches += k
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	duration := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		log.Fatal(err)
	}
	report(duration, batches*int64(*batchSize), *size)
}

// mpub returns the bytes of one MPUB command carrying count messages of
// size bytes each.
func mpub(topic string, size, count int) []byte {
	bodySize := 4 + count*(4+size)
	b := make([]byte, 0, len("MPUB \n")+len(topic)+4+bodySize)
	b = append(b, "MPUB "...)
	b = append(b, topic...)
	b = append(b, '\n')
	b = binary.BigEndian.AppendUint32(b, uint32(bodySize))
	b = binary.BigEndian.AppendUint32(b, uint32(count))
	for range count {
		b = binary.BigEndian.AppendUint32(b, uint32(size))
		for i := range size {
			b = append(b, 'a'+byte(i%26))
		}
	}
	return b
}

// publish sends cmd on c until end, keeping up to window batches
// unacknowledged, and returns how many batches nsqd acknowledged.
func publish(c net.Conn, cmd []byte, end time.Time) (int64, error) {
	r := bufio.NewReaderSize(c, 4096)
	var acked int64
	outstanding := 0
	for time.Now().Before(end) {
		if _, err := c.Write(cmd); err != nil {
			return acked, err
		}
		if outstanding++; outstanding == window {
			if err := readOK(r, c); err != nil {
				return acked, err
			}
			outstanding--
			acked++
		}
	}
	for ; outstanding > 0; outstanding-- {
		if err := readOK(r, c); err != nil {
			return acked, err
		}
		acked++
	}
	return acked, nil
}

var (
	respOK        = []byte("OK")
	respHeartbeat = []byte("_heartbeat_")
)

// readOK reads frames until an OK response, answering heartbeats with NOP.
func readOK(r *bufio.Reader, w io.Writer) error {
	for {
		hdr, err := r.Peek(8)
		if err != nil {
			return err
		}
		frameSize := int(binary.BigEndian.Uint32(hdr[:4]))
		frameType := binary.BigEndian.Uint32(hdr[4:8])
		if frameSize < 4 || frameSize > r.Size()-4 {
			return fmt.Errorf("unexpected frame of %d bytes", frameSize)
		}
		frame, err := r.Peek(4 + frameSize)
		if err != nil {
			return err
		}
		data := frame[8:]
		switch {
		case frameType == 0 && string(data) == string(respOK):
			r.Discard(len(frame))
			return nil
		case frameType == 0 && string(data) == string(respHeartbeat):
			r.Discard(len(frame))
			if _, err := w.Write([]byte("NOP\n")); err != nil {
				return err
			}
		case frameType == 1:
			return fmt.Errorf("nsqd: %s", data)
		default:
			return fmt.Errorf("unexpected frame type %d: %q", frameType, data)
		}
	}
}

// waitDeadline sleeps until the local time s (YYYY-MM-DD HH:MM:SS), if set.
func waitDeadline(s string) {
	if s == "" {
		return
	}
	t, err := time.ParseInLocation(time.DateTime, s, time.Local)
	if err != nil {
		log.Fatalf("-deadline: %v", err)
	}
	d := time.Until(t)
	log.Printf("sleeping until %s (%s)", t.Format(time.DateTime), d.Round(time.Millisecond))
	time.Sleep(d)
}

// report prints the result line in NSQ's format.
func report(d time.Duration, msgs int64, size int) {
	secs := d.Seconds()
	usPerOp := 0.0
	if msgs > 0 {
		usPerOp = float64(d.Microseconds()) / float64(msgs)
	}
	fmt.Fprintf(os.Stdout, "duration: %.1fs - %.03fmb/s - %.03fops/s - %.03fus/op\n",
		secs, float64(msgs)*float64(size)/secs/1024/1024, float64(msgs)/secs, usPerOp)
}

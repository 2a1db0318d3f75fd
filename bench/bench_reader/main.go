// Command bench_reader loads nsqd with consumers: GOMAXPROCS connections
// subscribe to -topic/-channel with RDY -rdy and FIN every message for
// -runfor, then it prints the consume rate as NSQ's bench_reader does:
//
//	duration: 10.0s - 95.367mb/s - 500000.000ops/s - 2.000us/op
//
// The duration ends at the last message received, so a queue that drains
// before -runfor is over is measured at the rate it drained.
//
// It speaks the V2 protocol directly. Frames are parsed in place in the
// read buffer and FINs are batched in a write buffer that is flushed when
// the read buffer is drained; nothing is allocated per message.
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
	"strconv"
	"sync"
	"time"
)

var (
	runfor     = flag.Duration("runfor", 10*time.Second, "how long to consume")
	tcpAddress = flag.String("nsqd-tcp-address", "127.0.0.1:4150", "<addr>:<port> of the nsqd to consume from")
	size       = flag.Int("size", 200, "bytes per message (only for the mb/s figure)")
	topic      = flag.String("topic", "sub_bench", "topic to consume")
	channel    = flag.String("channel", "ch", "channel to consume")
	deadline   = flag.String("deadline", "", "local time to start at, as YYYY-MM-DD HH:MM:SS (to start several readers together)")
	rdy        = flag.Int("rdy", 2500, "RDY count per connection")
)

func main() {
	flag.Parse()
	log.SetPrefix("bench_reader: ")
	log.SetFlags(0)
	waitDeadline(*deadline)

	n := runtime.GOMAXPROCS(0)
	type sub struct {
		c net.Conn
		r *bufio.Reader
	}
	subs := make([]sub, n)
	for i := range subs {
		c, err := net.Dial("tcp", *tcpAddress)
		if err != nil {
			log.Fatal(err)
		}
		r := bufio.NewReaderSize(c, 256<<10)
		if err := subscribe(c, r, *topic, *channel); err != nil {
			log.Fatal(err)
		}
		subs[i] = sub{c, r}
	}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		msgs int64
		last time.Time // the last message seen by any connection
		errs []error
	)
	start := time.Now()
	end := start.Add(*runfor)
	for _, s := range subs {
		wg.Go(func() {
			defer s.c.Close()
			k, at, err := consume(s.c, s.r, end, *rdy)
			mu.Lock()
			defer mu.Unlock()
			msgs += k
			if at.After(last) {
				last = at
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	duration := time.Since(start)
	if msgs > 0 {
		duration = last.Sub(start)
	}
	if err := errors.Join(errs...); err != nil {
		log.Fatal(err)
	}
	report(duration, msgs, *size)
}

// subscribe sends the magic and SUB and waits for OK.
func subscribe(c net.Conn, r *bufio.Reader, topic, channel string) error {
	if _, err := fmt.Fprintf(c, "  V2SUB %s %s\n", topic, channel); err != nil {
		return err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	data := make([]byte, binary.BigEndian.Uint32(hdr[:4])-4)
	if _, err := io.ReadFull(r, data); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(hdr[4:]) != 0 || string(data) != "OK" {
		return fmt.Errorf("SUB %s %s: %s", topic, channel, data)
	}
	return nil
}

// consume sends RDY and FINs every message until end. It returns the count
// and when the last message was seen (to within one read buffer).
func consume(c net.Conn, r *bufio.Reader, end time.Time, rdy int) (msgs int64, last time.Time, err error) {
	c.SetReadDeadline(end) // the only way out of a blocked read when messages stop
	w := bufio.NewWriterSize(c, 64<<10)
	w.WriteString("RDY " + strconv.Itoa(rdy) + "\n")
	if err := w.Flush(); err != nil {
		return 0, last, err
	}
	var (
		seen    int64  // msgs when last was taken
		scratch []byte // frames larger than r's buffer
	)
	for {
		if r.Buffered() == 0 {
			if msgs != seen {
				seen, last = msgs, time.Now()
			}
			if err := w.Flush(); err != nil {
				return msgs, last, err
			}
		}
		hdr, err := r.Peek(8)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return msgs, last, nil
			}
			return msgs, last, err
		}
		frameLen := 4 + int(binary.BigEndian.Uint32(hdr[:4]))
		frameType := binary.BigEndian.Uint32(hdr[4:8])
		if frameLen < 8 {
			return msgs, last, fmt.Errorf("bad frame size %d", frameLen-4)
		}
		var frame []byte
		if frameLen <= r.Size() {
			frame, err = r.Peek(frameLen)
		} else {
			if cap(scratch) < frameLen {
				scratch = make([]byte, frameLen)
			}
			frame = scratch[:frameLen]
			_, err = io.ReadFull(r, frame)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return msgs, last, nil
			}
			return msgs, last, err
		}
		data := frame[8:]
		switch frameType {
		case 2: // message: [8 timestamp][2 attempts][16 id][body]
			if len(data) < 26 {
				return msgs, last, fmt.Errorf("short message frame of %d bytes", len(data))
			}
			w.WriteString("FIN ")
			w.Write(data[10:26])
			w.WriteByte('\n')
			msgs++
		case 0:
			if string(data) == "_heartbeat_" {
				w.WriteString("NOP\n")
			}
		case 1:
			return msgs, last, fmt.Errorf("nsqd: %s", data)
		}
		if frameLen <= r.Size() {
			r.Discard(frameLen)
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

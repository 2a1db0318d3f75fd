// Command latency-floor measures what end-to-end latency any relay process
// gets on this machine, as a floor for bench-compare's scenario 5: one
// connection writes 208-byte frames stamped with the send time at 20,000 a
// second (whatever is due every millisecond, as scenario 5's publisher
// does), a child process copies them to a second connection (flushing when
// it has nothing more to read), and the reader records arrival − send.
// The first and last 2 % are left out. No broker logic at all: if this
// shows millisecond tails, so will any broker here.
//
//	go build -C bench/compare -o "$PWD/bin/" ./cmd/latency-floor && bin/latency-floor
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"sort"
	"time"
)

// relay is the child: it accepts the writer, then the reader, and copies
// frames from one to the other.
func relay() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	in, err := ln.Accept()
	if err != nil {
		log.Fatal(err)
	}
	out, err := ln.Accept()
	if err != nil {
		log.Fatal(err)
	}
	r := bufio.NewReader(in)
	w := bufio.NewWriter(out)
	buf := make([]byte, 208)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		w.Write(buf)
		if r.Buffered() == 0 {
			w.Flush()
		}
	}
}

func main() {
	if len(os.Args) > 1 {
		relay()
		return
	}
	cmd := exec.Command(os.Args[0], "child")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer cmd.Process.Kill()
	var addr string
	if _, err := fmt.Fscanln(stdout, &addr); err != nil {
		log.Fatal("reading the relay's address: ", err)
	}
	pub, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	sub, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	const rate = 20000
	dur := 5 * time.Second
	n := int(rate * dur.Seconds())
	lat := make([]int64, 0, n)
	done := make(chan struct{})
	go func() {
		r := bufio.NewReader(sub)
		buf := make([]byte, 208)
		for len(lat) < n {
			if _, err := io.ReadFull(r, buf); err != nil {
				break
			}
			lat = append(lat, time.Now().UnixNano()-int64(binary.BigEndian.Uint64(buf)))
		}
		close(done)
	}()
	start := time.Now()
	sent := 0
	buf := make([]byte, 208)
	w := bufio.NewWriter(pub)
	for sent < n {
		due := int(time.Since(start).Seconds() * rate)
		for ; sent < due && sent < n; sent++ {
			binary.BigEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
			w.Write(buf)
		}
		if err := w.Flush(); err != nil {
			log.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	<-done
	if len(lat) < n {
		log.Fatalf("%d of %d frames arrived", len(lat), n)
	}
	lat = lat[n/50 : n-n/50]
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return time.Duration(lat[int(q*float64(len(lat)-1))]) }
	fmt.Println("p50", p(0.5), "p99", p(0.99), "p99.9", p(0.999))
}

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"slices"
	"testing"
)

func TestNewMPUB(t *testing.T) {
	f := newMPUB("top", 3, 20)
	f.setSeqs(7)
	r := bufio.NewReader(bytes.NewReader(f.buf))
	line, err := r.ReadString('\n')
	if err != nil || line != "MPUB top\n" {
		t.Fatalf("command line = %q, %v, want %q", line, err, "MPUB top\n")
	}
	var hdr [8]byte
	if _, err := r.Read(hdr[:]); err != nil {
		t.Fatal(err)
	}
	if got, want := binary.BigEndian.Uint32(hdr[:4]), uint32(4+3*(4+20)); got != want {
		t.Errorf("body size = %d, want %d", got, want)
	}
	if got := binary.BigEndian.Uint32(hdr[4:]); got != 3 {
		t.Errorf("message count = %d, want 3", got)
	}
	for i := range 3 {
		var size [4]byte
		r.Read(size[:])
		if got := binary.BigEndian.Uint32(size[:]); got != 20 {
			t.Fatalf("message %d size = %d, want 20", i, got)
		}
		body := make([]byte, 20)
		r.Read(body)
		if got := binary.BigEndian.Uint64(body); got != uint64(7+i) {
			t.Errorf("message %d seq = %d, want %d", i, got, 7+i)
		}
	}
	if r.Buffered() != 0 {
		t.Errorf("%d bytes left over", r.Buffered())
	}
}

func TestReadFrame(t *testing.T) {
	var wire []byte
	frame := func(typ int32, data []byte) {
		wire = binary.BigEndian.AppendUint32(wire, uint32(4+len(data)))
		wire = binary.BigEndian.AppendUint32(wire, uint32(typ))
		wire = append(wire, data...)
	}
	big := bytes.Repeat([]byte("x"), 100<<10) // larger than the read buffer
	frame(frameResponse, respOK)
	frame(frameMessage, []byte("0123456789abcdefghijklmnopbody"))
	frame(frameError, big)
	c1, c2 := net.Pipe()
	defer c1.Close()
	go func() { c2.Write(wire); c2.Close() }()
	c := &conn{c: c1, r: bufio.NewReaderSize(c1, 64<<10)}
	var scratch []byte
	for _, want := range []struct {
		typ  int32
		data []byte
	}{{frameResponse, respOK}, {frameMessage, []byte("0123456789abcdefghijklmnopbody")}, {frameError, big}} {
		typ, data, err := c.readFrame(&scratch)
		if err != nil || typ != want.typ || !bytes.Equal(data, want.data) {
			t.Fatalf("readFrame = %d, %d bytes, %v; want %d, %d bytes", typ, len(data), err, want.typ, len(want.data))
		}
	}
}

func TestTracker(t *testing.T) {
	body := func(seq uint64) []byte {
		b := make([]byte, 32)
		fillBody(b, seq)
		return b
	}
	tr := newTracker(10)
	for _, s := range []uint64{0, 1, 2, 2, 3, 42} {
		tr.mark(body(s), 1)
	}
	tr.mark([]byte("short"), 1)
	err := tr.check("ch", 5)
	if err == nil {
		t.Fatal("check passed with a loss, a duplicate and unexpected messages")
	}
	if got, want := err.Error(), "ch: sent 5, received 4 distinct (lost 1), 1 duplicates, 2 unexpected, 0 with attempts>1"; got != want {
		t.Errorf("check = %q, want %q", got, want)
	}

	tr = newTracker(10)
	for s := range uint64(4) {
		tr.mark(body(s), 1)
	}
	select {
	case <-tr.done:
		t.Fatal("done before a target was set")
	default:
	}
	tr.setTarget(4)
	<-tr.done
	if err := tr.check("ch", 4); err != nil {
		t.Errorf("check = %v, want nil", err)
	}
}

func TestSeqAlloc(t *testing.T) {
	a := &seqAlloc{limit: 400}
	for _, want := range []int64{0, 200} {
		if got, ok := a.take(200); !ok || got != want {
			t.Errorf("take(200) = %d, %v, want %d, true", got, ok, want)
		}
	}
	if _, ok := a.take(200); ok {
		t.Error("take beyond the limit succeeded")
	}
	if got := a.issued(); got != 400 {
		t.Errorf("issued() = %d, want 400", got)
	}
}

func TestMedianOf(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := medianOf(tc.in); got != tc.want {
			t.Errorf("medianOf(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSelectScenarios(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"pub", []string{"pub-sub"}},
		{"4", []string{"disk-pub-sub", "disk-pubsub"}},
		{"latency,scale", []string{"latency", "latency-unbuffered", "topics", "conns"}},
	} {
		got, err := selectScenarios(tc.in)
		if err != nil {
			t.Fatalf("selectScenarios(%q): %v", tc.in, err)
		}
		var names []string
		for _, sc := range got {
			names = append(names, sc.name)
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("selectScenarios(%q) = %v, want %v", tc.in, names, tc.want)
		}
	}
	if _, err := selectScenarios("nope"); err == nil {
		t.Error("selectScenarios(nope) succeeded")
	}
}

func TestListensOn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if _, err := os.Stat("/proc/net/tcp"); errors.Is(err, os.ErrNotExist) {
		t.Skip("no /proc/net/tcp")
	}
	if !listensOn(os.Getpid(), port) {
		t.Errorf("listensOn(self, %d) = false, want true", port)
	}
	if listensOn(1, port) {
		t.Errorf("listensOn(1, %d) = true, want false", port)
	}
	if listensOn(os.Getpid(), 1) {
		t.Error("listensOn(self, 1) = true, want false")
	}
}

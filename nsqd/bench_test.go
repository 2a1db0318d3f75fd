package nsqd

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
)

// mpubFrame builds an MPUB command of n messages of size bytes.
func mpubFrame(topic string, n, size int) []byte {
	body := make([]byte, 0, 4+n*(4+size))
	body = binary.BigEndian.AppendUint32(body, uint32(n))
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = 'a' + byte(i%26)
	}
	for range n {
		body = binary.BigEndian.AppendUint32(body, uint32(size))
		body = append(body, msg...)
	}
	cmd := []byte("MPUB " + topic + "\n")
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(len(body)))
	return append(cmd, body...)
}

// publishN sends total messages over conns connections in MPUB batches,
// keeping two batches outstanding per connection.
func publishN(b *testing.B, addr, topic string, total, conns int) {
	const batch = 200
	frame := mpubFrame(topic, batch, 200)
	var wg sync.WaitGroup
	per := total / batch / conns
	for range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			c.Write([]byte("  V2"))
			r := bufio.NewReader(c)
			done := make(chan struct{})
			go func() {
				defer close(done)
				var hdr [10]byte
				for range per {
					if _, err := io.ReadFull(r, hdr[:]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			for range per {
				if _, err := c.Write(frame); err != nil {
					b.Error(err)
					return
				}
			}
			<-done
		})
	}
	wg.Wait()
}

// consumeN reads total messages on one connection, FINning each.
func consumeN(b *testing.B, addr, topic, channel string, total int, ready chan<- struct{}) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Error(err)
		return
	}
	defer c.Close()
	w := bufio.NewWriter(c)
	w.WriteString("  V2SUB " + topic + " " + channel + "\nRDY 2500\n")
	w.Flush()
	r := bufio.NewReaderSize(c, 64*1024)
	var hdr [8]byte
	io.ReadFull(r, hdr[:]) // OK
	io.ReadFull(r, hdr[:2])
	if ready != nil {
		close(ready)
	}
	fin := []byte("FIN 0123456789abcdef\n")
	buf := make([]byte, 64*1024)
	for got := 0; got < total; {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			b.Error(err)
			return
		}
		size := int(binary.BigEndian.Uint32(hdr[:4])) - 4
		data := buf[:size]
		if _, err := io.ReadFull(r, data); err != nil {
			b.Error(err)
			return
		}
		if binary.BigEndian.Uint32(hdr[4:]) != 2 {
			continue
		}
		copy(fin[4:20], data[10:26])
		w.Write(fin)
		got++
		if r.Buffered() == 0 {
			w.Flush()
		}
	}
	w.Flush()
}

func benchOptions(b *testing.B) *Options {
	o := testOptions(b)
	o.MemQueueSize = 1 << 30
	return o
}

func BenchmarkPUB(b *testing.B) {
	n := startNSQD(b, benchOptions(b))
	b.SetBytes(200)
	b.ReportAllocs()
	total := max(b.N, 200*runtime.GOMAXPROCS(0))
	b.ResetTimer()
	publishN(b, n.TCPAddr().String(), "bench", total, runtime.GOMAXPROCS(0))
}

func BenchmarkSUB(b *testing.B) {
	n := startNSQD(b, benchOptions(b))
	total := max(b.N, 200*runtime.GOMAXPROCS(0))
	total -= total % (200 * runtime.GOMAXPROCS(0))
	topic, _ := n.GetTopic("bench")
	topic.GetChannel("ch")
	publishN(b, n.TCPAddr().String(), "bench", total, runtime.GOMAXPROCS(0))
	b.SetBytes(200)
	b.ReportAllocs()
	b.ResetTimer()
	consumeN(b, n.TCPAddr().String(), "bench", "ch", total, nil)
}

func BenchmarkPUBSUB(b *testing.B) {
	n := startNSQD(b, benchOptions(b))
	total := max(b.N, 200*runtime.GOMAXPROCS(0))
	total -= total % (200 * runtime.GOMAXPROCS(0))
	b.SetBytes(200)
	b.ReportAllocs()
	ready := make(chan struct{})
	var wg sync.WaitGroup
	b.ResetTimer()
	wg.Go(func() { consumeN(b, n.TCPAddr().String(), "bench", "ch", total, ready) })
	<-ready
	publishN(b, n.TCPAddr().String(), "bench", total, runtime.GOMAXPROCS(0))
	wg.Wait()
}

func BenchmarkPUBSUBDisk(b *testing.B) {
	o := testOptions(b)
	o.MemQueueSize = 0
	n := startNSQD(b, o)
	total := max(b.N, 200*runtime.GOMAXPROCS(0))
	total -= total % (200 * runtime.GOMAXPROCS(0))
	b.SetBytes(200)
	b.ReportAllocs()
	ready := make(chan struct{})
	var wg sync.WaitGroup
	b.ResetTimer()
	wg.Go(func() { consumeN(b, n.TCPAddr().String(), "bench", "ch", total, ready) })
	<-ready
	publishN(b, n.TCPAddr().String(), "bench", total, runtime.GOMAXPROCS(0))
	wg.Wait()
}

package nsqd

import (
	"bufio"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
)

// Hot-path micro-benchmarks. make test runs them once (-benchtime=1x) so
// they keep compiling and working; run them longer to compare changes.

func BenchmarkCommandParse(b *testing.B) {
	line := []byte("FIN 0123456789abcdef\r\n")
	var params [][]byte
	b.ReportAllocs()
	for b.Loop() {
		params = protocol.SplitParams(protocol.TrimLine(line), params)
		if _, err := messageID("FIN", params); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMessageEncodeDecode(b *testing.B) {
	for _, size := range []int{200, 1024} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			m := &Message{Body: make([]byte, size), Timestamp: time.Now().UnixNano()}
			hexID(&m.ID, 12345)
			buf := make([]byte, 0, size+messageHeaderLen)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				buf = appendMessage(buf[:0], m)
				if _, err := decodeMessage(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClientWritePath is the frame encoding into a client's buffered
// writer, as the pump does it.
func BenchmarkClientWritePath(b *testing.B) {
	w := bufio.NewWriterSize(io.Discard, defaultBufferSize)
	m := &Message{Body: make([]byte, 200), Timestamp: time.Now().UnixNano()}
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		if err := m.writeFrame(w); err != nil {
			b.Fatal(err)
		}
	}
	w.Flush()
}

// BenchmarkTopicFanOut publishes batches of 200 into a topic with 1 and 8
// channels (memory queues only, nothing consuming).
func BenchmarkTopicFanOut(b *testing.B) {
	for _, chans := range []int{1, 8} {
		b.Run(fmt.Sprintf("channels=%d", chans), func(b *testing.B) {
			o := testOptions(b)
			o.MemQueueSize = 1 << 30
			n := startNSQD(b, o)
			t, _ := n.GetTopic("fan")
			for i := range chans {
				t.GetChannel(fmt.Sprintf("c%d", i))
			}
			bodies := make([][]byte, 200)
			for i := range bodies {
				bodies[i] = make([]byte, 200)
			}
			b.SetBytes(200 * 200)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := t.PublishMulti(bodies); err != nil {
					b.Fatal(err)
				}
				if i++; i%256 == 0 { // keep memory bounded: nothing consumes
					b.StopTimer()
					for _, c := range t.channelList() {
						c.Empty()
					}
					b.StartTimer()
				}
			}
		})
	}
}

// BenchmarkInFlight is one FIN and one delivery in a client's in-flight set
// with 2,500 messages outstanding.
func BenchmarkInFlight(b *testing.B) {
	c := &client{inFlight: make(map[MessageID]*Message)}
	const window = 2500
	msgs := make([]*Message, window)
	now := time.Now().UnixNano()
	for i := range msgs {
		msgs[i] = &Message{deadline: now + int64(i)}
		hexID(&msgs[i].ID, uint64(i))
		c.inFlight[msgs[i].ID] = msgs[i]
		c.inFlightList.add(msgs[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m := msgs[i%window]
		if c.inFlight[m.ID] != m {
			b.Fatal("in-flight message not found")
		}
		delete(c.inFlight, m.ID)
		c.inFlightList.remove(m)
		m.deadline = now + int64(window+i)
		hexID(&m.ID, uint64(window+i)) // every delivery has a new ID, as in nsqd
		c.inFlight[m.ID] = m
		c.inFlightList.add(m)
		i++
	}
}

// BenchmarkDeferredHeap is one REQ with a delay and one due message
// leaving, with 10,000 deferred messages waiting.
func BenchmarkDeferredHeap(b *testing.B) {
	var h msgHeap
	const waiting = 10000
	for i := range waiting {
		h.add(&Message{deadline: int64(i * 7919 % waiting)})
	}
	b.ReportAllocs()
	i := waiting
	var due []*Message
	for b.Loop() {
		h.add(&Message{deadline: int64(i)})
		due = h.popDue(due[:0], h[0].deadline)
		i++
	}
}

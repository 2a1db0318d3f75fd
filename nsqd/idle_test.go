package nsqd

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// BenchmarkIdleConsumerMemory reports the heap and stack cost of an idle
// subscribed consumer connection, and fails if its goroutine stacks grew
// (make test runs it once, without -race).
func BenchmarkIdleConsumerMemory(b *testing.B) {
	const conns = 2000
	for b.Loop() {
		n := startNSQD(b, testOptions(b))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		cs := make([]net.Conn, 0, conns)
		for range conns {
			c, err := net.Dial("tcp", n.TCPAddr().String())
			if err != nil {
				b.Fatal(err)
			}
			// As go-nsq does: IDENTIFY, then SUB, then RDY, each once the
			// previous one is answered.
			identify := `{"client_id":"idle","feature_negotiation":true,"heartbeat_interval":30000}`
			fmt.Fprintf(c, "  V2IDENTIFY\n%s%s", binary.BigEndian.AppendUint32(nil, uint32(len(identify))), identify)
			cs = append(cs, c)
		}
		eventually(b, 30*time.Second, func() bool { return len(n.clientList()) == conns }, "all connected")
		all := func(what string, cond func(c *client) bool) {
			eventually(b, 30*time.Second, func() bool {
				for _, c := range n.clientList() {
					if !cond(c) {
						return false
					}
				}
				return true
			}, "every connection %s", what)
		}
		all("identified", func(c *client) bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.identified
		})
		for i, c := range cs {
			fmt.Fprintf(c, "SUB idle ch%d\n", i%10)
		}
		all("subscribed", func(c *client) bool { return c.state.Load() == stateSubscribed })
		for _, c := range cs {
			fmt.Fprintf(c, "RDY 1\n")
		}
		all("at RDY 1", func(c *client) bool { return c.rdy.Load() == 1 })
		for range 4 { // each GC may halve a mostly unused stack
			runtime.GC()
		}
		runtime.ReadMemStats(&after)
		per := float64((after.HeapInuse+after.StackInuse)-(before.HeapInuse+before.StackInuse)) / conns
		b.ReportMetric(per, "bytes/conn")
		stack := float64(after.StackInuse-before.StackInuse) / conns
		b.ReportMetric(stack, "stack-bytes/conn")
		// Two 2 KiB stacks, the pump's and the command loop's (runV2); 4 KiB
		// more means the command loop kept a grown stack.
		if !raceEnabled && stack > 5<<10 {
			b.Errorf("%.0f bytes of goroutine stack per idle connection, want two 2 KiB stacks", stack)
		}
		for _, c := range cs {
			c.Close()
		}
	}
}

// BenchmarkQueuedMessageMemory reports the heap cost of a 200-byte message
// waiting in a channel's memory queue, published in MPUB batches of 200.
func BenchmarkQueuedMessageMemory(b *testing.B) {
	const total = 200_000
	for b.Loop() {
		o := testOptions(b)
		o.MemQueueSize = total
		n := startNSQD(b, o)
		topic, _ := n.GetTopic("mem")
		topic.GetChannel("ch")
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		publishN(b, n.TCPAddr().String(), "mem", total, 1)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if d := topic.channels["ch"].Depth(); d != total {
			b.Fatalf("depth %d, want %d", d, total)
		}
		perMsg := float64(after.HeapInuse-before.HeapInuse) / total
		b.ReportMetric(perMsg, "bytes/msg")
		// The body, its slice header in the batch and a share of the batch
		// and its queue run (~230 B); a Message per queued message would
		// add 96 more, a queue slot per message 16.
		if !raceEnabled && perMsg > 245 {
			b.Errorf("%.0f heap bytes per queued 200-byte message, want ≤ 245", perMsg)
		}
	}
}

// A consumer holds its output buffer only while it delivers: once its pump
// runs out of messages the buffer goes back to the pool, and the next
// delivery takes one again.
func TestIdleConsumerReleasesOutputBuffer(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	topic, _ := n.GetTopic("t")
	topic.GetChannel("c")
	c := dialRaw(t, n)
	c.send("SUB t c")
	c.expect(frameResponse, "OK")
	c.send("RDY 10")
	cl := n.clientList()[0]
	holding := func() bool {
		cl.wmu.Lock()
		defer cl.wmu.Unlock()
		return cl.w != nil
	}
	for round := range 3 {
		bodies := [][]byte{[]byte("a"), []byte("b"), []byte("c")}
		if err := topic.PublishMulti(bodies); err != nil {
			t.Fatal(err)
		}
		for _, want := range bodies {
			m := c.readMsg(5 * time.Second)
			if m.body != string(want) {
				t.Fatalf("round %d: got %q, want %q", round, m.body, want)
			}
			c.send("FIN " + m.id)
		}
		eventually(t, 5*time.Second, func() bool { return !holding() }, "round %d: output buffer released after delivery", round)
	}
}

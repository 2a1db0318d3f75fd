package nsqd

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// BenchmarkIdleConsumerMemory reports the heap and stack cost of an idle
// subscribed consumer connection.
func BenchmarkIdleConsumerMemory(b *testing.B) {
	const conns = 2000
	for b.Loop() {
		n := startNSQD(b, testOptions(b))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		cs := make([]net.Conn, 0, conns)
		for i := range conns {
			c, err := net.Dial("tcp", n.TCPAddr().String())
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(c, "  V2SUB idle ch%d\n", i%10)
			cs = append(cs, c)
		}
		eventually(b, 30*time.Second, func() bool { return len(n.clientList()) == conns }, "all connected")
		for _, c := range n.clientList() {
			for c.state.Load() != stateSubscribed {
				time.Sleep(time.Millisecond)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64((after.HeapInuse+after.StackInuse)-(before.HeapInuse+before.StackInuse)) / conns
		b.ReportMetric(per, "bytes/conn")
		for _, c := range cs {
			c.Close()
		}
	}
}

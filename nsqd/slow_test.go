package nsqd

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// A consumer that stops reading is disconnected once a write has been
// blocked for a heartbeat interval, and its messages go to another consumer.
func TestStalledConsumerIsDropped(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	topic, _ := n.GetTopic("slow")
	stalled := dialRaw(t, n)
	stalled.send("IDENTIFY", []byte(`{"heartbeat_interval":1000}`))
	stalled.expect(0, "OK")
	stalled.send("SUB slow c")
	stalled.expect(0, "OK")
	stalled.send("RDY 2500")
	// Never read again, but keep answering heartbeats blindly, so only the
	// write deadline can notice: 2500 x 16 KiB is more than loopback holds.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
				if _, err := stalled.Write([]byte("NOP\n")); err != nil {
					return
				}
			}
		}
	}()
	body := bytes.Repeat([]byte("x"), 16*1024)
	const total = 3000
	for i := range total {
		topic.Publish(fmt.Appendf(append([]byte(nil), body...), "%d", i), 0)
	}
	eventually(t, 15*time.Second, func() bool {
		ch, _ := topic.GetExistingChannel("c")
		return len(ch.clientList()) == 0
	}, "stalled consumer disconnected")

	c := dialRaw(t, n)
	c.send("SUB slow c")
	c.expect(0, "OK")
	c.send("RDY 2500")
	seen := map[string]bool{}
	for len(seen) < total {
		ft, data := c.readFrame()
		if ft != 2 {
			t.Fatalf("frame %d %q", ft, data)
		}
		m, _ := decodeMessage(data)
		seen[string(m.Body[len(body):])] = true
		c.send("FIN " + string(m.ID[:]))
	}
}

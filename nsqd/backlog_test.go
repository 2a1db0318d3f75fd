package nsqd

import (
	"testing"
)

// A backlog published before any channel exists goes to the first channel.
func TestBacklogReachesFirstChannel(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	topic, _ := n.GetTopic("bl")
	for range 3 {
		topic.Publish([]byte("x"), 0)
	}
	topic.Pause()
	topic.Unpause()
	c := dialRaw(t, n)
	c.send("SUB bl ch")
	c.expect(0, "OK")
	c.send("RDY 10")
	for range 3 {
		if ft, _ := c.readFrame(); ft != 2 {
			t.Fatalf("frame type %d, want message", ft)
		}
	}
}

package nsqd

import (
	"bytes"
	"testing"
	"time"
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

// With --mem-queue-size=0 an ephemeral channel has neither memory nor disk:
// a message is handed to a consumer waiting for it (NSQ's direct hand-over)
// instead of being dropped.
func TestEphemeralMemQueueZeroHandsOver(t *testing.T) {
	o := testOptions(t)
	o.MemQueueSize = 0
	n := startNSQD(t, o)
	c := dialRaw(t, n)
	c.send("SUB eph#ephemeral c#ephemeral")
	c.expect(0, "OK")
	c.send("RDY 10")
	topic, _ := n.GetTopic("eph#ephemeral")
	ch, _ := topic.GetExistingChannel("c#ephemeral")
	eventually(t, 5*time.Second, func() bool {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		return len(ch.waiters) == 1
	}, "consumer waiting")
	topic.Publish([]byte("direct"), 0)
	if ft, data := c.readFrame(); ft != 2 || !bytes.HasSuffix(data, []byte("direct")) {
		t.Fatalf("frame %d %q, want the message", ft, data)
	}
}

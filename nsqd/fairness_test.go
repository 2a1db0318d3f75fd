package nsqd

import (
	"fmt"
	"testing"
	"time"
)

// Consumers waiting on one channel are served first come, first served, as
// NSQ's pumps receiving from one Go channel are: two idle consumers at RDY 1
// take turns, message by message.
func TestIdleConsumersTakeTurns(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	topic, _ := n.GetTopic("turns")
	ch, _ := topic.GetChannel("ch")
	conns := []*rawConn{dialRaw(t, n), dialRaw(t, n)}
	for _, c := range conns {
		c.send("SUB turns ch")
		c.expect(frameResponse, "OK")
		c.send("RDY 1")
	}
	waiters := func() int {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		return len(ch.waiters)
	}
	got := make([]int, len(conns))
	const total = 20
	var order []int
	for i := range total {
		// Both consumers idle and waiting, as between messages 100 ms apart.
		eventually(t, 5*time.Second, func() bool { return waiters() == 2 }, "message %d: both consumers waiting", i)
		body := fmt.Sprintf("m%d", i)
		if err := topic.Publish([]byte(body), 0); err != nil {
			t.Fatal(err)
		}
		who := receiveOne(t, n, conns, body)
		got[who]++
		order = append(order, who)
	}
	for i := 1; i < total; i++ {
		if order[i] == order[i-1] {
			t.Fatalf("deliveries by consumer %v: consumer %d got messages %d and %d in a row; want strict turns", order, order[i], i-1, i)
		}
	}
	for _, c := range conns {
		c.expectNothing(50 * time.Millisecond) // every message went to one consumer only
	}
	if got[0] != total/2 || got[1] != total/2 {
		t.Fatalf("consumers got %v of %d messages, want %d each", got, total, total/2)
	}
}

// receiveOne waits for the one consumer of conns that gets the message body
// (the one whose client has it in flight), reads and FINs it and returns
// its index.
func receiveOne(t *testing.T, n *NSQD, conns []*rawConn, body string) int {
	t.Helper()
	who := -1
	eventually(t, 5*time.Second, func() bool {
		for i, c := range conns {
			for _, cl := range n.clientList() {
				if cl.remoteAddr == c.LocalAddr().String() && cl.inFlightCount.Load() > 0 {
					who = i
					return true
				}
			}
		}
		return false
	}, "%q in flight", body)
	m := conns[who].readMsg(5 * time.Second)
	if m.body != body {
		t.Fatalf("consumer %d got %q, want %q", who, m.body, body)
	}
	conns[who].send("FIN " + m.id)
	return who
}

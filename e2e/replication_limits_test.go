package e2e

// Limits, dead letters and drain on a replica set, end to end
// (docs/replication.md, "Limits and dead letters", "Drain"): the limit
// flags of the built nsqd are the set's, a message at --max-attempts
// becomes a dead letter consumed once through go-nsq, a full channel
// refuses publishes on a follower with single-node's error, and SIGTERM
// with --sigterm-mode=drain takes a follower, then the leader, out with
// exit status 0 while the set keeps every message.

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqio/go-nsq"
)

func TestReplicationLimitsDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	lookupd := clSeedLookupd(t, t.TempDir())
	rs := startReplicaSet(t, lookupd.TCPAddr, "--max-attempts=2", "--max-channel-depth=20",
		"--sigterm-mode=drain", "--drain-timeout=5s") // bounded: the test's cleanup SIGTERMs every replica
	l := leader(t, rs)
	var fs []*rsReplica
	for _, r := range rs {
		if r != l {
			fs = append(fs, r)
		}
	}
	postOK(t, l.http, "/topic/create?topic=work", "/channel/create?topic=work&channel=c",
		"/topic/create?topic=work.c.dlq", "/channel/create?topic=work.c.dlq&channel=ops")
	caughtUp(t, rs, l)

	// Publish through a follower: "poison" fails every time, the rest
	// succeed; then the channel is full (20, in flight included).
	p := newProducer(t, fs[0].tcp)
	for i := range 19 {
		if err := p.Publish("work", fmt.Appendf(nil, "m%02d", i)); err != nil {
			t.Fatalf("publish m%02d: %v", i, err)
		}
	}
	if err := p.Publish("work", []byte("poison")); err != nil {
		t.Fatal(err)
	}
	full := newProducer(t, fs[1].tcp)
	if err := full.Publish("work", []byte("over")); err == nil || !strings.Contains(err.Error(), "E_PUB_FAILED PUB failed channel work:c is full (max_depth 20)") {
		t.Fatalf("publish to a full channel through a follower = %v, want E_PUB_FAILED ... is full (max_depth 20)", err)
	}

	var mu sync.Mutex
	got := map[string]int{}
	poisoned := 0
	cfg := nsq.NewConfig()
	cfg.DefaultRequeueDelay = 0
	cfg.MaxBackoffDuration = 0
	c := newConsumer(t, "work", "c", cfg, func(m *nsq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if string(m.Body) == "poison" {
			poisoned++
			return fmt.Errorf("poison")
		}
		got[string(m.Body)]++
		return nil
	})
	connect(t, c, l.tcp)
	dead := newInbox(1)
	dc := newConsumer(t, "work.c.dlq", "ops", nil, dead.handle)
	connect(t, dc, fs[0].tcp) // through the follower's relay
	dead.wait(t, 20*time.Second, "the dead letter")
	nsqtest.Eventually(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 19
	}, "19 messages consumed")
	mu.Lock()
	if poisoned != 2 {
		t.Errorf("poison delivered %d times, want 2 (--max-attempts=2)", poisoned)
	}
	mu.Unlock()
	if counts, _ := dead.snapshot(); counts["poison"] != 1 {
		t.Errorf("dead letters %v, want poison once", counts)
	}

	// Drain a follower: exit status 0; the set goes on.
	dc.Stop()
	<-dc.StopChan
	f := fs[0]
	f.p.Signal(syscall.SIGTERM)
	select {
	case <-f.p.Exited():
	case <-time.After(20 * time.Second):
		t.Fatalf("draining follower still running:\n%s", f.p.Output())
	}
	if code := f.p.ExitCode(); code != 0 {
		t.Fatalf("draining follower exited with %d:\n%s", code, f.p.Output())
	}
	f.running.Store(false)
	if err := p2(t, fs[1].tcp).Publish("work", []byte("after-follower")); err != nil {
		t.Fatalf("publish with a follower drained: %v", err)
	}
	nsqtest.Eventually(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got["after-follower"] == 1
	}, "after-follower consumed")
	f.start(t)

	// Drain the leader: it hands the lead over first, exits 0, and the
	// new leader delivers what is left.
	caughtUp(t, rs, l)
	c.Stop()
	<-c.StopChan
	if err := p2(t, fs[1].tcp).Publish("work", []byte("after-leader")); err != nil {
		t.Fatal(err)
	}
	l.p.Signal(syscall.SIGTERM)
	select {
	case <-l.p.Exited():
	case <-time.After(20 * time.Second):
		t.Fatalf("draining leader still running:\n%s", l.p.Output())
	}
	if code := l.p.ExitCode(); code != 0 {
		t.Fatalf("draining leader exited with %d:\n%s", code, l.p.Output())
	}
	l.running.Store(false)
	l2 := leader(t, rs)
	rest := newInbox(1)
	rc := newConsumer(t, "work", "c", nil, rest.handle)
	connect(t, rc, l2.tcp)
	rest.wait(t, 20*time.Second, "the message published before the leader drained")
	if counts, _ := rest.snapshot(); counts["after-leader"] != 1 {
		t.Errorf("from the new leader got %v, want after-leader", counts)
	}
	l.start(t)
}

// p2 is a fresh producer to addr (an error closes a producer's connection).
func p2(t *testing.T, addr string) *nsq.Producer { return newProducer(t, addr) }

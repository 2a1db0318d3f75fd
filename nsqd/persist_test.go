package nsqd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// runNSQD runs a daemon until stop is called, which shuts it down cleanly.
func runNSQD(t *testing.T, o *Options) (n *NSQD, stop func()) {
	t.Helper()
	n, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return n, stop
}

func TestShutdownPersistsQueuedInFlightAndDeferred(t *testing.T) {
	for _, mode := range []struct {
		memQueue int64
		durable  bool
	}{{0, false}, {10000, false}, {10000, true}} {
		memQueue := mode.memQueue
		t.Run(fmt.Sprintf("mem-queue-size=%d/durable=%v", memQueue, mode.durable), func(t *testing.T) {
			o := testOptions(t)
			o.MemQueueSize, o.Durable = memQueue, mode.durable
			n, stop := runNSQD(t, o)

			topic, _ := n.GetTopic("p")
			ch, _ := topic.GetChannel("c")
			ch.Pause()
			for i := range 10 {
				topic.Publish(fmt.Appendf(nil, "q%d", i), 0)
			}
			topic.Publish([]byte("deferred"), 3*time.Second)
			// three in flight
			c := dialRaw(t, n)
			c.send("SUB p c")
			c.expect(0, "OK")
			ch.Unpause()
			c.send("RDY 3")
			for range 3 {
				if ft, _ := c.readFrame(); ft != 2 {
					t.Fatalf("frame %d, want message", ft)
				}
			}
			eventually(t, 5*time.Second, func() bool { return ch.inFlightCount.Load() == 3 }, "3 in flight")
			ch.Pause()
			if err := topic.Pause(); err != nil {
				t.Fatal(err)
			}
			if err := n.PersistMetadata(); err != nil {
				t.Fatal(err)
			}
			stop()
			// Durable mode keeps deferred messages in the journal instead.
			if _, err := os.Stat(filepath.Join(o.DataPath, "p:c.diskqueue.deferred.dat")); (err == nil) == mode.durable {
				t.Errorf("deferred side file: %v (durable %v)", err, mode.durable)
			}

			o2 := testOptions(t)
			o2.DataPath, o2.MemQueueSize, o2.Durable = o.DataPath, memQueue, mode.durable
			n2, _ := runNSQD(t, o2)
			st := n2.Stats("p", "", false)
			if len(st.Topics) != 1 || len(st.Topics[0].Channels) != 1 {
				t.Fatalf("after restart stats = %+v", st)
			}
			if !st.Topics[0].Paused || !st.Topics[0].Channels[0].Paused {
				t.Errorf("paused state not restored: %+v", st.Topics[0])
			}
			cs := st.Topics[0].Channels[0]
			if cs.Depth != 10 || cs.DeferredCount != 1 {
				t.Errorf("depth %d deferred %d, want 10 and 1", cs.Depth, cs.DeferredCount)
			}
			t2, _ := n2.GetExistingTopic("p")
			ch2, _ := t2.GetExistingChannel("c")
			ch2.Unpause()
			c2 := dialRaw(t, n2)
			c2.send("SUB p c")
			c2.expect(0, "OK")
			c2.send("RDY 100")
			seen := map[string]uint16{}
			start := time.Now()
			for len(seen) < 11 {
				ft, data := c2.readFrame()
				if ft != 2 {
					t.Fatalf("frame %d %q", ft, data)
				}
				m, _ := decodeMessage(data)
				body := string(m.Body)
				if _, dup := seen[body]; dup {
					t.Fatalf("duplicate %q", body)
				}
				seen[body] = m.Attempts
				c2.send("FIN " + string(m.ID[:]))
				if body == "deferred" && time.Since(start) < 1500*time.Millisecond {
					t.Errorf("deferred message delivered after %v, before its remaining delay", time.Since(start))
				}
			}
			inflightAgain := 0
			for body, att := range seen {
				if att == 2 {
					inflightAgain++
				} else if att != 1 {
					t.Errorf("%s attempts %d", body, att)
				}
			}
			if inflightAgain != 3 {
				t.Errorf("%d messages with attempts 2, want the 3 that were in flight", inflightAgain)
			}
		})
	}
}

func TestDataPathCreatedAndLocked(t *testing.T) {
	o := testOptions(t)
	o.DataPath = filepath.Join(o.DataPath, "a", "b")
	runNSQD(t, o)
	if _, err := os.Stat(o.DataPath); err != nil {
		t.Fatalf("data path not created: %v", err)
	}
	o2 := testOptions(t)
	o2.DataPath = o.DataPath
	if _, err := New(o2); err == nil || !strings.Contains(err.Error(), "possibly in use by another instance of nsqd") {
		t.Fatalf("second nsqd on the same data path: %v, want a lock error", err)
	}
}

// A damaged nsqd.dat does not stop nsqd: topics and channels come back from
// their disk queues, with their messages, and the file is kept as .bad.
func TestCorruptMetadataRecovered(t *testing.T) {
	o := testOptions(t)
	o.MemQueueSize = 0
	n, stop := runNSQD(t, o)
	topic, _ := n.GetTopic("rec")
	topic.GetChannel("c1")
	for range 5 {
		topic.Publish([]byte("m"), 0)
	}
	stop()
	fn := filepath.Join(o.DataPath, "nsqd.dat")
	if err := os.WriteFile(fn, []byte(`{"topics":[{"name":`), 0o600); err != nil {
		t.Fatal(err)
	}
	o2 := testOptions(t)
	o2.DataPath, o2.MemQueueSize = o.DataPath, 0
	n2, _ := runNSQD(t, o2)
	if _, err := os.Stat(fn + ".bad"); err != nil {
		t.Errorf("damaged file not kept: %v", err)
	}
	if n2.Health() == nil {
		t.Error("health is OK after recovering from a damaged nsqd.dat")
	}
	st := n2.Stats("rec", "c1", false)
	if len(st.Topics) != 1 || st.Topics[0].Channels[0].Depth != 5 {
		t.Fatalf("recovered stats = %+v, want rec/c1 with depth 5", st.Topics)
	}
}

// --min-free-disk-bytes refuses publishes to durable topics (not ephemeral
// ones) while free space is low, and accepts them again once it is back.
func TestMinFreeDiskBytes(t *testing.T) {
	o := testOptions(t)
	o.MinFreeDiskBytes = 1 << 20
	o.SyncTimeout = 200 * time.Millisecond // the sync loop checks free space
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var free atomic.Uint64
	free.Store(1 << 30)
	n.freeDisk = func(string) (uint64, error) { return free.Load(), nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	c := dialRaw(t, n)
	c.send("PUB disk", []byte("a"))
	c.expect(0, "OK")
	free.Store(1 << 10)
	eventually(t, 5*time.Second, func() bool { return n.diskLow.Load() }, "disk low noticed")
	c.send("PUB disk", []byte("b"))
	c.expect(1, "E_PUB_FAILED PUB failed disk free space below --min-free-disk-bytes")
	c.expectClosed()
	if n.Health() == nil {
		t.Error("health OK while refusing publishes")
	}
	resp, err := http.Post("http://"+n.HTTPAddr().String()+"/pub?topic=disk", "text/plain", strings.NewReader("h"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || string(body) != `{"message":"PUB_FAILED"}` {
		t.Errorf("POST /pub while disk low: %d %s, want 500 PUB_FAILED", resp.StatusCode, body)
	}
	e := dialRaw(t, n)
	e.send("PUB mem#ephemeral", []byte("c"))
	e.expect(0, "OK")

	free.Store(1 << 30)
	eventually(t, 5*time.Second, func() bool { return !n.diskLow.Load() }, "disk space back")
	c2 := dialRaw(t, n)
	c2.send("PUB disk", []byte("d"))
	c2.expect(0, "OK")
	if n.Health() != nil {
		t.Errorf("health %v after space came back", n.Health())
	}
}

package nsqd

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Health is a set of conditions, each cleared only by its own source: a
// successful disk-queue write must not hide any of the others (see the
// README's "Health" section). These tests use only the daemon's own API,
// so each shows the difference to a single last-writer-wins slot.

// getPing returns GET /ping's status and body.
func getPing(t *testing.T, n *NSQD) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr().String() + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// damageMetadata runs a daemon that leaves topic "rec" with channel c1 in
// nsqd.dat, then damages the file; it returns the data path.
func damageMetadata(t *testing.T) string {
	t.Helper()
	o := testOptions(t)
	n, stop := runNSQD(t, o)
	topic, _ := n.GetTopic("rec")
	topic.GetChannel("c1")
	stop()
	fn := filepath.Join(o.DataPath, "nsqd.dat")
	if err := os.WriteFile(fn, []byte(`{"topics":[{"name":`), 0o600); err != nil {
		t.Fatal(err)
	}
	return o.DataPath
}

// A damaged nsqd.dat stays reported after a publish has written a disk queue
// and nsqd.dat has been rewritten; a restart (with the rewritten file)
// clears it.
func TestHealthDamagedMetadataSurvivesPublish(t *testing.T) {
	dataPath := damageMetadata(t)
	o := testOptions(t)
	o.DataPath, o.MemQueueSize = dataPath, 0
	n, stop := runNSQD(t, o)
	status, body := getPing(t, n)
	if status != 500 || !strings.HasPrefix(body, "NOK - ") || !strings.Contains(body, "nsqd.dat was damaged") {
		t.Fatalf("GET /ping after a damaged nsqd.dat = %d %q, want 500 \"NOK - ...nsqd.dat was damaged...\"", status, body)
	}

	pub := dialRaw(t, n)
	pub.send("PUB other", []byte("one message, written to the disk queue"))
	pub.expect(0, "OK")
	if err := n.PersistMetadata(); err != nil {
		t.Fatal(err)
	}
	status, body = getPing(t, n)
	if status != 500 || !strings.Contains(body, "nsqd.dat was damaged") {
		t.Errorf("GET /ping after a publish and a nsqd.dat write = %d %q, want the damage still reported", status, body)
	}
	if h := n.Stats("", "", false).Health; !strings.Contains(h, "nsqd.dat was damaged") {
		t.Errorf("/stats health = %q, want the damage still reported", h)
	}
	stop()

	o2 := testOptions(t)
	o2.DataPath = dataPath
	n2, _ := runNSQD(t, o2)
	if status, body := getPing(t, n2); status != 200 || body != "OK" {
		t.Errorf("GET /ping after a restart on the rewritten nsqd.dat = %d %q, want 200 OK", status, body)
	}
}

// A journal that keeps failing stays reported while other topics' disk
// queues are written, and clears once it writes again.
func TestHealthJournalFailureSurvivesPublish(t *testing.T) {
	o := durableOptions(t, "")
	n, _ := runNSQD(t, o)
	tp, err := n.GetTopic("jt")
	if err != nil {
		t.Fatal(err)
	}
	other, err := n.GetTopic("other")
	if err != nil {
		t.Fatal(err)
	}
	// Writes to the journal fail: its file is swapped for a read-only one.
	j := tp.journal
	ro, err := os.Open(j.path)
	if err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	rw := j.f
	j.f = ro
	j.mu.Unlock()
	restore := func() {
		j.mu.Lock()
		if j.f == ro {
			j.f = rw
		}
		j.mu.Unlock()
		ro.Close()
	}
	defer restore()

	// A deferred message goes to the topic's journal.
	if err := tp.Publish([]byte("deferred"), time.Hour); err == nil {
		t.Log("deferred publish acknowledged before its journal write (written by the sync loop)")
	}
	eventually(t, 5*time.Second, func() bool {
		err := n.Health()
		return err != nil && strings.Contains(err.Error(), j.path)
	}, "the failing journal %s reported", j.path)

	for i := range 20 {
		if err := other.Publish([]byte("to the disk queue"), 0); err != nil {
			t.Fatalf("publish to another topic: %v", err)
		}
		if err := n.Health(); err == nil || !strings.Contains(err.Error(), j.path) {
			t.Fatalf("health after publish %d to another topic = %v, want the failing journal %s", i+1, err, j.path)
		}
	}

	restore()
	eventually(t, 5*time.Second, func() bool { return n.Health() == nil }, "health OK once the journal writes again (now %v)", n.Health())
}

// Free space below --min-free-disk-bytes stays reported while a disk queue
// is written (a channel created meanwhile takes its topic's messages from
// disk into its own disk queue), and clears once space is back.
func TestHealthFreeDiskSurvivesDiskWrite(t *testing.T) {
	o := testOptions(t)
	o.MemQueueSize = 0
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

	tp, err := n.GetTopic("low")
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Publish([]byte("queued before the disk filled"), 0); err != nil {
		t.Fatal(err)
	}
	free.Store(1 << 10)
	eventually(t, 5*time.Second, func() bool { return n.Health() != nil }, "low free space reported")

	c, err := tp.GetChannel("c")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return c.backend != nil && c.backend.Depth() == 1 }, "the message written to the channel's disk queue")
	if err := n.Health(); err == nil || !strings.Contains(err.Error(), "min-free-disk-bytes") {
		t.Errorf("health after a disk-queue write while free space is still low = %v, want the low space reported", err)
	}
	if status, body := getPing(t, n); status != 500 || !strings.Contains(body, "min-free-disk-bytes") {
		t.Errorf("GET /ping = %d %q, want 500 with the low space", status, body)
	}

	free.Store(1 << 30)
	eventually(t, 5*time.Second, func() bool { return n.Health() == nil }, "health OK once space is back (now %v)", n.Health())
}

// A failed nsqd.dat write is reported (also from the background writer),
// survives disk-queue writes, is retried, and clears once the write works.
func TestHealthMetadataWriteFailure(t *testing.T) {
	o := testOptions(t)
	o.MemQueueSize = 0
	n, _ := runNSQD(t, o)
	// nsqd.dat replaced by a non-empty directory: the rename onto it fails.
	fn := filepath.Join(o.DataPath, "nsqd.dat")
	if err := os.Remove(fn); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(fn, "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	tp, err := n.GetTopic("meta") // its creation asks for a nsqd.dat write
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return n.Health() != nil }, "the failed nsqd.dat write reported")
	if err := tp.Publish([]byte("to the disk queue"), 0); err != nil {
		t.Fatal(err)
	}
	if err := n.Health(); err == nil || !strings.Contains(err.Error(), "persist metadata") {
		t.Errorf("health after a disk-queue write = %v, want the failed nsqd.dat write", err)
	}

	if err := os.RemoveAll(fn); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return n.Health() == nil }, "health OK once nsqd.dat can be written (now %v)", n.Health())
	b, err := os.ReadFile(fn)
	if err != nil || !strings.Contains(string(b), `"meta"`) {
		t.Errorf("nsqd.dat after the retry = %q (%v), want topic meta listed", b, err)
	}
}

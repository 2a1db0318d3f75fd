package nsqd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// snapshotDir copies the data directory as a SIGKILL would leave it: what
// was written to the files, nothing kept in memory. The daemon must be
// quiet while it runs.
func snapshotDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if errors.Is(err, fs.ErrNotExist) && strings.HasSuffix(e.Name(), ".tmp") {
			// A metadata write renamed its temporary file away while we
			// listed: a crash at this moment would leave either file, and
			// nsqd ignores a leftover .tmp.
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	return dst
}

func durableOptions(t *testing.T, dataPath string) *Options {
	o := testOptions(t)
	o.Durable = true
	if dataPath != "" {
		o.DataPath = dataPath
	}
	return o
}

// journalsWritten waits until every journal of the daemon has written what
// was appended to it (the sync loop does so every 50 ms).
func journalsWritten(t *testing.T, n *NSQD) {
	t.Helper()
	eventually(t, 5*time.Second, func() bool {
		for _, tp := range n.topicList() {
			js := []*journal{tp.journal}
			for _, c := range tp.channelList() {
				js = append(js, c.journal)
			}
			for _, j := range js {
				if j == nil {
					continue
				}
				j.mu.Lock()
				pending := len(j.buf) + len(j.pending)
				j.mu.Unlock()
				if pending > 0 {
					return false
				}
			}
		}
		return true
	}, "journals written")
}

// consumeAll subscribes with RDY rdy and returns the bodies delivered until
// want messages arrived, FINing each.
func consumeAll(t *testing.T, n *NSQD, topic, channel string, rdy, want int) []string {
	t.Helper()
	c := dialRaw(t, n)
	c.send("SUB " + topic + " " + channel)
	c.expect(0, "OK")
	c.send(fmt.Sprintf("RDY %d", rdy))
	var got []string
	for len(got) < want {
		m := c.readMsg(5 * time.Second)
		got = append(got, string(m.body))
		c.send("FIN " + m.id)
	}
	c.expectNothing(300 * time.Millisecond)
	sort.Strings(got)
	return got
}

// TestDurableCrashKeepsUnfinished simulates a crash (a copy of the data
// directory taken while nsqd runs) after publishes, deliveries, FINs, a
// REQ with a delay and a DPUB: the copy must hold every unfinished message
// once and none of the finished ones.
func TestDurableCrashKeepsUnfinished(t *testing.T) {
	o := durableOptions(t, "")
	n, _ := runNSQD(t, o)

	cons := dialRaw(t, n)
	cons.send("SUB d c")
	cons.expect(0, "OK")
	pub := dialRaw(t, n)
	for i := range 10 {
		pub.send("PUB d", fmt.Appendf(nil, "m%d", i))
		pub.expect(0, "OK")
	}
	pub.send("DPUB d 3600000", []byte("later"))
	pub.expect(0, "OK")
	// The crash will leave the disk queue's metadata as it is now, before
	// the reads: the restart reads copies of what the journal holds.
	ch, _ := n.topicList()[0].GetExistingChannel("c")
	if err := ch.backend.Sync(); err != nil {
		t.Fatal(err)
	}
	metaName := filepath.Join(o.DataPath, "d:c.diskqueue.meta.dat")
	oldMeta, err := os.ReadFile(metaName)
	if err != nil {
		t.Fatal(err)
	}

	cons.send("RDY 5")
	var got []wireMsg
	for range 5 {
		got = append(got, cons.readMsg(5*time.Second))
	}
	cons.send("RDY 0")
	cons.send("FIN " + got[0].id)
	cons.send("FIN " + got[1].id)
	cons.send("REQ " + got[2].id + " 3600000")
	cons.send("NOP")
	eventually(t, 5*time.Second, func() bool { return ch.inFlightCount.Load() == 2 }, "2 in flight")
	journalsWritten(t, n)

	crashed := snapshotDir(t, o.DataPath)
	if err := os.WriteFile(filepath.Join(crashed, "d:c.diskqueue.meta.dat"), oldMeta, 0o600); err != nil {
		t.Fatal(err)
	}
	n2, _ := runNSQD(t, durableOptions(t, crashed))
	st := n2.Stats("d", "c", false)
	cs := st.Topics[0].Channels[0]
	// 5 never delivered + 2 in flight (the depth may also count disk queue
	// copies of messages the journal holds, skipped when read); the REQ'd
	// one and the DPUB deferred.
	if cs.Depth < 7 || cs.DeferredCount != 2 {
		t.Errorf("after crash: depth %d deferred %d, want >= 7 and 2", cs.Depth, cs.DeferredCount)
	}
	var want []string
	for i := 3; i < 10; i++ {
		want = append(want, fmt.Sprintf("m%d", i))
	}
	if i := slices.Index(want, string(got[3].body)); i < 0 {
		t.Fatalf("in-flight message %q not among %v", got[3].body, want)
	}
	// RDY 1: reads of one disk-queue record that is a copy to skip must
	// not leave the consumer waiting.
	if got := consumeAll(t, n2, "d", "c", 1, 7); !slices.Equal(got, want) {
		t.Errorf("delivered after crash %v, want %v", got, want)
	}
	if got[2].body != "m2" {
		t.Errorf("third delivery %q, want m2", got[2].body)
	}
}

// TestDurableDeferredKeepsDeliverAt checks a DPUB's deliver-at time survives
// a crash: not delivered early, delivered once due.
func TestDurableDeferredKeepsDeliverAt(t *testing.T) {
	o := durableOptions(t, "")
	n, _ := runNSQD(t, o)
	c := dialRaw(t, n)
	c.send("DPUB soon 1500", []byte("x")) // topic without channel: topic journal
	c.expect(0, "OK")
	start := time.Now()
	journalsWritten(t, n)
	crashed := snapshotDir(t, o.DataPath)
	n2, _ := runNSQD(t, durableOptions(t, crashed))
	cons := dialRaw(t, n2)
	cons.send("SUB soon c")
	cons.expect(0, "OK")
	cons.send("RDY 1")
	m := cons.readMsg(5 * time.Second)
	if string(m.body) != "x" {
		t.Fatalf("body %q", m.body)
	}
	if d := time.Since(start); d < 1400*time.Millisecond {
		t.Errorf("deferred message delivered after %v, want >= 1.5s", d)
	}
}

// TestDurableJournalReadByDefaultMode checks a data directory left by a
// durable crash is whole for a daemon started without --durable.
func TestDurableJournalReadByDefaultMode(t *testing.T) {
	o := durableOptions(t, "")
	n, _ := runNSQD(t, o)
	cons := dialRaw(t, n)
	cons.send("SUB sw c")
	cons.expect(0, "OK")
	pub := dialRaw(t, n)
	pub.write(cmd("MPUB sw", mpubBody("a", "b", "c")))
	pub.expect(0, "OK")
	cons.send("RDY 2")
	cons.readMsg(5 * time.Second)
	cons.readMsg(5 * time.Second)
	journalsWritten(t, n)
	crashed := snapshotDir(t, o.DataPath)

	o2 := testOptions(t)
	o2.DataPath = crashed
	n2, _ := runNSQD(t, o2)
	if got := consumeAll(t, n2, "sw", "c", 100, 3); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("delivered %v, want a b c", got)
	}
	if _, err := os.Stat(journalFileName(crashed, "sw:c")); !os.IsNotExist(err) {
		t.Errorf("journal left after a default-mode start: %v", err)
	}
}

// TestDurableTopicBacklogSurvivesCrash: messages acknowledged while a topic
// has no channel are on disk, and reach a channel created after the crash.
func TestDurableTopicBacklogSurvivesCrash(t *testing.T) {
	o := durableOptions(t, "")
	n, _ := runNSQD(t, o)
	pub := dialRaw(t, n)
	pub.write(cmd("MPUB nochan", mpubBody("a", "b", "c")))
	pub.expect(0, "OK")
	pub.send("PUB nochan", []byte("d"))
	pub.expect(0, "OK")
	crashed := snapshotDir(t, o.DataPath)

	n2, _ := runNSQD(t, durableOptions(t, crashed))
	if got := consumeAll(t, n2, "nochan", "late", 100, 4); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("delivered %v, want a b c d", got)
	}
}

// TestDurableDamagedJournal: a journal damaged in the middle (not a torn
// last record) keeps the records before the damage, and nsqd reports it as
// health.
func TestDurableDamagedJournal(t *testing.T) {
	o := durableOptions(t, "")
	n, _ := runNSQD(t, o)
	pub := dialRaw(t, n)
	pub.send("DPUB dj 3600000", []byte("one"))
	pub.expect(0, "OK")
	pub.send("DPUB dj 3600000", []byte("two"))
	pub.expect(0, "OK")
	crashed := snapshotDir(t, o.DataPath)
	fn := journalFileName(crashed, "dj")
	b, err := os.ReadFile(fn)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte inside the second record's body, then add a third record
	// after it: damage, not a torn tail.
	b[len(b)-6] ^= 0xff
	b = append(b, b[len(journalMagic):]...)
	os.WriteFile(fn, b, 0o600)

	n2, _ := runNSQD(t, durableOptions(t, crashed))
	if n2.Health() == nil || !strings.Contains(n2.Health().Error(), fn) {
		t.Errorf("health = %v, want the damaged journal named", n2.Health())
	}
	st := n2.Stats("dj", "", false)
	if got := st.Topics[0].Depth; got != 1 {
		t.Errorf("topic depth %d after a damaged journal, want the 1 message before the damage", got)
	}
}

// TestDurableFanOutSurvivesCrash: an acknowledged publish is in every
// channel after a crash.
func TestDurableFanOutSurvivesCrash(t *testing.T) {
	o := durableOptions(t, "")
	n, _ := runNSQD(t, o)
	topic, _ := n.GetTopic("fan")
	for _, c := range []string{"a", "b", "c"} {
		topic.GetChannel(c)
	}
	pub := dialRaw(t, n)
	pub.write(cmd("MPUB fan", mpubBody("x", "y")))
	pub.expect(0, "OK")
	crashed := snapshotDir(t, o.DataPath)
	n2, _ := runNSQD(t, durableOptions(t, crashed))
	for _, c := range []string{"a", "b", "c"} {
		if got := consumeAll(t, n2, "fan", c, 10, 2); !slices.Equal(got, []string{"x", "y"}) {
			t.Errorf("channel %s delivered %v after the crash, want x y", c, got)
		}
	}
}

package nsqd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A disk-queue file damaged while nsqd was stopped loses only its damaged
// records: those whose size or message header the damage touched. A record
// damaged only in its body cannot be seen (the format has no checksum) and
// is delivered as it is. NSQ gives up the rest of the file.
func TestDamagedDiskQueue(t *testing.T) {
	const n = 1000
	mid := func(_ []int64, size int64) int64 { return size / 2 }
	rec := func(i int, delta int64) func([]int64, int64) int64 {
		return func(starts []int64, _ int64) int64 { return starts[i] + delta }
	}
	type flip struct {
		name string
		off  func(starts []int64, size int64) int64
		len  int64
	}
	flips := []flip{
		{"start", rec(0, 0), 32},
		{"middle", mid, 32},
		{"across record boundary", rec(500, -16), 32},
		{"last record", rec(n-1, 0), 32},
		{"size field", rec(300, 0), 4},
		{"message ID", rec(300, 4+10+3), 1},
	}
	for _, queue := range []string{"channel", "topic", "durable channel"} {
		for _, f := range flips {
			if queue != "channel" && f.name != "middle" && f.name != "across record boundary" {
				continue
			}
			t.Run(queue+"/"+f.name, func(t *testing.T) {
				testDamagedDiskQueue(t, queue, n, f.off, f.len)
			})
		}
	}
}

func testDamagedDiskQueue(t *testing.T, queue string, n int, where func([]int64, int64) int64, flipLen int64) {
	const topicName = "dq"
	durable := queue == "durable channel"
	o := testOptions(t)
	o.MemQueueSize, o.Durable = 0, durable
	nd, stop := runNSQD(t, o)
	topic, _ := nd.GetTopic(topicName)
	var ch *Channel
	file := topicName + ".diskqueue.000000.dat"
	if queue != "topic" {
		ch, _ = topic.GetChannel("c")
		file = topicName + ":c.diskqueue.000000.dat"
	}
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, "msg-%06d-%s", i, strings.Repeat("p", 40))
		if err := topic.Publish(bodies[i], 0); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() bool {
		if ch != nil {
			return topic.Depth() == 0 && ch.backendDepth() == int64(n)
		}
		return topic.backendDepth() == int64(n)
	}, "%d messages in the %s's disk queue", n, queue)
	stop()

	// Flip flipLen bytes of the data file and work out which records lose
	// their size or header: those are the ones not delivered.
	fn := filepath.Join(o.DataPath, file)
	data, err := os.ReadFile(fn)
	if err != nil {
		t.Fatal(err)
	}
	var starts []int64
	for p := int64(0); p < int64(len(data)); p += 4 + int64(binary.BigEndian.Uint32(data[p:])) {
		starts = append(starts, p)
	}
	if len(starts) != n {
		t.Fatalf("%s holds %d records, want %d", file, len(starts), n)
	}
	off := where(starts, int64(len(data)))
	for i := off; i < off+flipLen; i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(fn, data, 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{} // intact bodies
	damagedBodies := 0
	for i, s := range starts {
		if s < off+flipLen && off < s+4+messageHeaderLen {
			continue // size or header damaged: lost
		}
		if s+4+messageHeaderLen+int64(len(bodies[i])) > off && s < off+flipLen {
			damagedBodies++ // delivered, but not as published
			continue
		}
		want[string(bodies[i])] = true
	}
	wantDelivered := len(want) + damagedBodies

	o2 := testOptions(t)
	o2.DataPath, o2.MemQueueSize, o2.Durable = o.DataPath, 0, durable
	nd2, _ := runNSQD(t, o2)
	c := dialRaw(t, nd2)
	c.send("SUB " + topicName + " c")
	c.expect(0, "OK")
	c.send("RDY 100")
	got := map[string]int{}
	delivered := 0
	for delivered < wantDelivered {
		ft, frame := c.readFrame()
		if ft != 2 {
			t.Fatalf("frame %d %q, want a message", ft, frame)
		}
		m, err := decodeMessage(frame)
		if err != nil {
			t.Fatal(err)
		}
		delivered++
		got[string(m.Body)]++
		c.send("FIN " + string(m.ID[:]))
	}
	t2, _ := nd2.GetExistingTopic(topicName)
	ch2, _ := t2.GetExistingChannel("c")
	eventually(t, 5*time.Second, func() bool {
		return t2.Depth() == 0 && ch2.Depth() == 0 && ch2.inFlightCount.Load() == 0
	}, "topic and channel drained after %d deliveries (more than %d?)", delivered, wantDelivered)
	for b := range want {
		if got[b] != 1 {
			t.Errorf("intact message %q delivered %d times", b, got[b])
		}
	}
	lost := n - wantDelivered
	t.Logf("%d bytes flipped at %d of %d: %d of %d messages delivered (%d with a damaged body), %d lost",
		flipLen, off, len(data), delivered, n, damagedBodies, lost)

	st := nd2.Stats(topicName, "", false).Topics[0]
	skipped := st.BackendSkipped
	if queue != "topic" {
		skipped = st.Channels[0].BackendSkipped
	}
	if wantRegions := int64(min(lost, 1)); skipped.SkippedRegions != wantRegions || (skipped.SkippedBytes > 0) != (lost > 0) {
		t.Errorf("/stats backend_skipped_regions %d, backend_skipped_bytes %d; want %d regions", skipped.SkippedRegions, skipped.SkippedBytes, wantRegions)
	}
	if err := nd2.Health(); (err != nil) != (lost > 0) || (err != nil && (!strings.Contains(err.Error(), "disk_queue: ") || !strings.Contains(err.Error(), file))) {
		t.Errorf("Health() = %v, want the disk_queue condition naming %s only if messages were lost", err, file)
	}
	if _, err := os.Stat(fn + ".bad"); (err == nil) != (lost > 0) {
		t.Errorf("%s.bad: %v, want it saved only with damage seen", file, err)
	}
	// The queue goes on working.
	if err := t2.Publish([]byte("after"), 0); err != nil {
		t.Fatal(err)
	}
	if _, m := c.readFrame(); !bytes.HasSuffix(m, []byte("after")) {
		t.Errorf("after the damage: got %q, want the message \"after\"", m)
	}
}

func TestPlausibleHeader(t *testing.T) {
	id := MessageID{}
	hexID(&id, 0x1234abcd5678ef90)
	now := time.Now().UnixNano()
	good := appendMessage(nil, &Message{ID: id, Timestamp: now, Body: []byte("x")})
	tests := []struct {
		name string
		edit func(b []byte)
		want bool
	}{
		{"good", func([]byte) {}, true},
		{"upper-case ID", func(b []byte) { copy(b[10:], "1234ABCD5678EF90") }, true},
		{"ID not hex", func(b []byte) { b[20] = 'g' }, false},
		{"timestamp zero", func(b []byte) { binary.BigEndian.PutUint64(b, 0) }, false},
		{"timestamp 1999", func(b []byte) { binary.BigEndian.PutUint64(b, uint64(minPlausibleTimestamp-1)) }, false},
		{"timestamp 2000", func(b []byte) { binary.BigEndian.PutUint64(b, uint64(minPlausibleTimestamp)) }, true},
		{"timestamp in 2 years", func(b []byte) { binary.BigEndian.PutUint64(b, uint64(now+2*365*24*int64(time.Hour))) }, false},
		{"negative timestamp", func(b []byte) { binary.BigEndian.PutUint64(b, 1<<63) }, false},
		{"short", func(b []byte) {}, false},
	}
	for _, tt := range tests {
		b := bytes.Clone(good)
		tt.edit(b)
		head := b[:messageHeaderLen]
		if tt.name == "short" {
			head = head[:messageHeaderLen-1]
		}
		if got := plausibleHeader(head); got != tt.want {
			t.Errorf("%s: plausibleHeader(%x) = %v, want %v", tt.name, head, got, tt.want)
		}
	}
}

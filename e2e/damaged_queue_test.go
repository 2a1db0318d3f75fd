package e2e

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqio/go-nsq"
)

// A channel's disk-queue file damaged while nsqd is stopped (32 bytes
// flipped in the middle of 10,000 queued messages) loses only the messages
// whose record size or header the flip touched; every other message is
// delivered, a message damaged only in its body as it is on disk (the
// format has no checksum). NSQ 1.3 delivers the messages before the damage
// and renames the file to .bad, losing the ~5,000 after it.
func TestRobustDamagedDiskQueue(t *testing.T) {
	const (
		topic, channel = "damaged", "c"
		total          = 10000
		flipLen        = 32
		headerLen      = 4 + 8 + 2 + 16 // record size, then timestamp, attempts, ID
	)
	n := nsqtest.StartNSQD(t, "--mem-queue-size=0")
	dir := n.DataPath
	post(t, n, "/topic/create?topic="+topic)
	post(t, n, "/channel/create?topic="+topic+"&channel="+channel)
	bodies := make([][]byte, total)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, "dq-%06d-%s", i, strings.Repeat("x", 90))
	}
	publishBodies(t, newProducer(t, n.TCPAddr), topic, bodies, 500)
	nsqtest.Eventually(t, 30*time.Second, func() bool {
		tp := n.Stats(t).Topic(topic)
		ch := tp.Channel(channel)
		return tp.Depth == 0 && ch != nil && ch.BackendDepth == total
	}, fmt.Sprintf("%d messages in the channel's disk queue", total))
	if code := n.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsqd exited with %d on SIGTERM", code)
	}

	// Flip 32 bytes mid-file; the records whose size or message header they
	// touch are the ones lost.
	fn := filepath.Join(dir, topic+":"+channel+".diskqueue.000000.dat")
	data, err := os.ReadFile(fn)
	if err != nil {
		t.Fatal(err)
	}
	var starts []int
	for p := 0; p+4 <= len(data); p += 4 + int(binary.BigEndian.Uint32(data[p:])) {
		starts = append(starts, p)
	}
	if len(starts) != total {
		t.Fatalf("%s holds %d records, want %d", fn, len(starts), total)
	}
	// Across the middle record boundary: the end of one body and the next
	// record's size and header (NSQ stops reading the file at that size).
	off := starts[total/2] - flipLen/2
	for i := off; i < off+flipLen; i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(fn, data, 0o600); err != nil {
		t.Fatal(err)
	}
	intact := map[string]bool{}
	lost, bodyDamaged := 0, 0
	for i, s := range starts {
		switch end := s + headerLen + len(bodies[i]); {
		case s < off+flipLen && off < s+headerLen:
			lost++
		case s < off+flipLen && off < end:
			bodyDamaged++
		default:
			intact[string(bodies[i])] = true
		}
	}
	wantDelivered := total - lost

	n2 := nsqtest.StartNSQD(t, "--data-path="+dir, "--mem-queue-size=0")
	var mu sync.Mutex
	got := map[string]int{}
	delivered := 0
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 500
	c := newConsumer(t, topic, channel, cfg, func(m *nsq.Message) error {
		mu.Lock()
		got[string(m.Body)]++
		delivered++
		mu.Unlock()
		return nil
	})
	connect(t, c, n2.TCPAddr)
	// A message published now is queued behind everything on disk and the
	// only consumer handles messages in order: once it has it, every
	// delivery of the old messages has been counted.
	const last = "published-after-restart"
	if err := newProducer(t, n2.TCPAddr).Publish(topic, []byte(last)); err != nil {
		t.Fatal(err)
	}
	nsqtest.Eventually(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[last] == 1
	}, fmt.Sprintf("%q delivered after the messages on disk", last))
	var ch *nsqtest.ChannelStats
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		ch = n2.Channel(t, topic, channel)
		return ch != nil && ch.Depth == 0 && ch.InFlightCount == 0
	}, fmt.Sprintf("%s/%s drained", topic, channel))

	mu.Lock()
	t.Logf("%d bytes flipped at %d of %d: %d of %d messages delivered (%d with a damaged body), %d lost; skipped %d bytes in %d region(s)",
		flipLen, off, len(data), delivered, total, bodyDamaged, lost, ch.BackendSkippedBytes, ch.BackendSkippedRegions)
	delivered-- // the one published after the restart
	if delivered != wantDelivered {
		t.Errorf("delivered %d messages, want %d (published %d minus %d damaged)", delivered, wantDelivered, total, lost)
	}
	wrong := 0
	for b := range intact {
		if got[b] != 1 {
			if wrong++; wrong <= 5 {
				t.Errorf("intact message %.12q... delivered %d times, want once", b, got[b])
			}
		}
	}
	if wrong > 5 {
		t.Errorf("... %d intact messages in all not delivered exactly once", wrong)
	}
	mu.Unlock()
	if lost == 0 || ch.BackendSkippedRegions != 1 || ch.BackendSkippedBytes <= 0 {
		t.Errorf("/stats backend_skipped_regions %d, backend_skipped_bytes %d; want 1 region (%d records lost)",
			ch.BackendSkippedRegions, ch.BackendSkippedBytes, lost)
	}
	if _, err := os.Stat(fn + ".bad"); err != nil {
		t.Errorf("damaged file not kept for inspection: %v", err)
	}
	if out := n2.Output(); !strings.Contains(out, "damaged record") || !strings.Contains(out, filepath.Base(fn)) {
		t.Errorf("nsqd logged no damaged-record line naming %s:\n%s", filepath.Base(fn), out)
	}
	// Lost messages stay reported as health until restart.
	if status, body := nsqtest.HTTP(t, "GET", n2.URL("/ping"), nil); status != 500 ||
		!strings.HasPrefix(body, "NOK - disk_queue: ") || !strings.Contains(body, filepath.Base(fn)) {
		t.Errorf("GET /ping: %d %q, want 500 \"NOK - disk_queue: ...\" naming %s", status, body, filepath.Base(fn))
	}
	status, metrics := nsqtest.HTTP(t, "GET", n2.URL("/metrics"), nil)
	wantMetric := fmt.Sprintf(`nsq_channel_backend_skipped_regions_total{channel=%q,topic=%q} 1`, channel, topic)
	if status != 200 || !strings.Contains(metrics, wantMetric) {
		t.Errorf("GET /metrics: status %d, no line %s", status, wantMetric)
	}

	// nsqadmin marks the damaged queue on the topic and channel pages.
	t.Run("nsqadmin", func(t *testing.T) {
		base := adminStart(t, "", "--nsqd-http-address="+n2.HTTPAddr)
		b := newBrowser(t)
		const badge = `[...document.querySelectorAll('.badge.danger')].some(e => e.textContent === 'damaged' && e.title.includes('bytes'))`
		b.run("open topic", chromedp.Navigate(base+"/topics/"+topic))
		b.poll("damaged badge on the topic page", badge)
		b.run("open channel", chromedp.Navigate(base+"/topics/"+topic+"/"+channel))
		b.poll("damaged badge on the channel page", badge)
		b.screenshot("channel-damaged-disk-queue")
		b.checkNoErrors()
	})
}

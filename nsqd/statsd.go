package nsqd

import (
	"cmp"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
)

// statsdLoop pushes the daemon's counters and gauges to --statsd-address over
// UDP every --statsd-interval (as NSQ does, https://nsq.io/components/nsqd.html) until ctx ends. Each push
// is one Stats snapshot turned into statsd lines (statsdMetrics), packed into
// datagrams (packStatsd) and sent spread evenly over interval − 1 s
// (sendSpread), so a large daemon does not burst thousands of datagrams at
// the statsd server at once. The push runs on this goroutine: a tick that
// falls while a push is still spreading is dropped, as NSQ's ticker does.
func (n *NSQD) statsdLoop(ctx context.Context) {
	o := n.opts
	if o.StatsdAddress == "" {
		return
	}
	if o.StatsdInterval <= 0 {
		// NSQ panics here (time.NewTicker); Options.Validate is not ours.
		n.logger.Error("STATSD: not pushing stats: --statsd-interval must be > 0", "interval", o.StatsdInterval)
		return
	}
	prefix := n.statsdPrefix()
	ticker := time.NewTicker(o.StatsdInterval)
	defer ticker.Stop()
	var prev statsdCounters
	for {
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
		st := n.Stats("", "", false)
		var mem *MemStats
		if o.StatsdMemStats {
			mem = readMemStats()
		}
		var lines []string
		lines, prev = statsdMetrics(prefix, &st, mem, prev, o.StatsdExcludeEphemeral)
		n.statsdPush(ctx, packStatsd(lines, o.StatsdUDPPacketSize), o.StatsdInterval-time.Second)
	}
}

// statsdPush sends one push's datagrams over a fresh UDP socket (a new
// socket per push follows a statsd host whose address changes, as NSQ
// does). Failures are logged: statsd is best effort.
func (n *NSQD) statsdPush(ctx context.Context, packets [][]byte, spread time.Duration) {
	addr := n.opts.StatsdAddress
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		if ctx.Err() == nil {
			n.logger.Error("STATSD: failed to create UDP socket", "addr", addr, "err", err)
		}
		return
	}
	defer conn.Close()
	n.logger.Info("STATSD: pushing stats", "addr", addr, "datagrams", len(packets))
	if failed, err := sendSpread(ctx, conn, packets, spread); err != nil {
		n.logger.Error("STATSD: failed to send stats", "addr", addr, "failed", failed, "datagrams", len(packets), "err", err)
	}
}

// sendSpread writes each packet to w, the first at once and packet i at
// i·spread/len(packets) after it, so the last one goes out before spread
// has passed. Once ctx ends the remaining packets are written without
// waiting (a push in progress at shutdown still completes, promptly). A
// failed write does not stop the others: it returns how many failed and the
// first error.
func sendSpread(ctx context.Context, w io.Writer, packets [][]byte, spread time.Duration) (failed int, err error) {
	var gap time.Duration
	if len(packets) > 0 && spread > 0 {
		gap = spread / time.Duration(len(packets))
	}
	start := time.Now()
	var timer *time.Timer
	for i, p := range packets {
		if i > 0 && gap > 0 && ctx.Err() == nil {
			wait := time.Until(start.Add(time.Duration(i) * gap))
			if timer == nil {
				timer = time.NewTimer(wait)
				defer timer.Stop()
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if _, werr := w.Write(p); werr != nil {
			failed++
			err = cmp.Or(err, werr)
		}
	}
	return failed, err
}

// statsdPrefix is --statsd-prefix with %s expanded to the host key
// "<broadcast address>_<broadcast HTTP port>" ('.' and ':' → '_') and a
// trailing '.' added when missing; "" stays "" (no prefix).
func (n *NSQD) statsdPrefix() string {
	o := n.opts
	if o.StatsdPrefix == "" {
		return ""
	}
	port := o.BroadcastHTTPPort
	if port == 0 {
		port = addrPort(n.HTTPAddr())
	}
	host := net.JoinHostPort(o.BroadcastAddress, strconv.Itoa(port))
	p := strings.ReplaceAll(o.StatsdPrefix, "%s", strings.NewReplacer(".", "_", ":", "_").Replace(host))
	if !strings.HasSuffix(p, ".") {
		p += "."
	}
	return p
}

// statsdCounters are the counters of the previous push, from which the next
// push's deltas are taken. A topic or channel missing from it (new, or gone
// at the previous push and back since) counts from 0.
type statsdCounters struct {
	topics   map[string]topicCounters
	channels map[channelKey]channelCounters
	gcRuns   uint32
}

type topicCounters struct{ messages, bytes uint64 }

type channelKey struct{ topic, channel string }

type channelCounters struct{ messages, requeues, timeouts uint64 }

// counterDelta is cur − prev, or cur when the counter went down (the topic or
// channel was deleted and recreated between two pushes): never negative.
func counterDelta(cur, prev uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// statsdMetrics turns a snapshot into statsd lines (without '\n') in NSQ's
// order: topics by name, each topic's metrics then its channels' by name,
// then mem.* when mem is non-nil. Counters (|c) are deltas against prev;
// it returns the counters for the next push. Ephemeral topics (with all
// their channels) and ephemeral channels are left out with
// excludeEphemeral, and then also from the returned counters. It only reads
// st, mem and prev.
func statsdMetrics(prefix string, st *Stats, mem *MemStats, prev statsdCounters, excludeEphemeral bool) ([]string, statsdCounters) {
	next := statsdCounters{
		topics:   make(map[string]topicCounters, len(st.Topics)),
		channels: make(map[channelKey]channelCounters),
	}
	w := statsdWriter{prefix: prefix}
	for i := range st.Topics {
		t := &st.Topics[i]
		if excludeEphemeral && protocol.IsEphemeral(t.TopicName) {
			continue
		}
		tc := topicCounters{messages: t.MessageCount, bytes: t.MessageBytes}
		last := prev.topics[t.TopicName]
		next.topics[t.TopicName] = tc
		base := "topic." + t.TopicName + "."
		w.counter(base, "message_count", counterDelta(tc.messages, last.messages))
		w.counter(base, "message_bytes", counterDelta(tc.bytes, last.bytes))
		w.gauge(base, "depth", t.Depth)
		w.gauge(base, "backend_depth", t.BackendDepth)
		w.percentiles(base, t.E2eProcessingLatency.Percentiles)
		for j := range t.Channels {
			c := &t.Channels[j]
			if excludeEphemeral && protocol.IsEphemeral(c.ChannelName) {
				continue
			}
			key := channelKey{t.TopicName, c.ChannelName}
			cc := channelCounters{messages: c.MessageCount, requeues: c.RequeueCount, timeouts: c.TimeoutCount}
			lastc := prev.channels[key]
			next.channels[key] = cc
			cbase := base + "channel." + c.ChannelName + "."
			w.counter(cbase, "message_count", counterDelta(cc.messages, lastc.messages))
			w.gauge(cbase, "depth", c.Depth)
			w.gauge(cbase, "backend_depth", c.BackendDepth)
			w.gauge(cbase, "in_flight_count", int64(c.InFlightCount))
			w.gauge(cbase, "deferred_count", int64(c.DeferredCount))
			w.counter(cbase, "requeue_count", counterDelta(cc.requeues, lastc.requeues))
			w.counter(cbase, "timeout_count", counterDelta(cc.timeouts, lastc.timeouts))
			w.gauge(cbase, "clients", int64(c.ClientCount))
			w.percentiles(cbase, c.E2eProcessingLatency.Percentiles)
		}
	}
	next.gcRuns = prev.gcRuns
	if mem != nil {
		w.ugauge("mem.", "heap_objects", mem.HeapObjects)
		w.ugauge("mem.", "heap_idle_bytes", mem.HeapIdleBytes)
		w.ugauge("mem.", "heap_in_use_bytes", mem.HeapInUseBytes)
		w.ugauge("mem.", "heap_released_bytes", mem.HeapReleasedBytes)
		w.ugauge("mem.", "gc_pause_usec_100", mem.GCPauseUsec100)
		w.ugauge("mem.", "gc_pause_usec_99", mem.GCPauseUsec99)
		w.ugauge("mem.", "gc_pause_usec_95", mem.GCPauseUsec95)
		w.ugauge("mem.", "next_gc_bytes", mem.NextGCBytes)
		// NumGC is a uint32 that wraps; the modular difference is right.
		w.counter("mem.", "gc_runs", uint64(mem.GCTotalRuns-prev.gcRuns))
		next.gcRuns = mem.GCTotalRuns
	}
	return w.lines, next
}

// statsdWriter accumulates "<prefix><base><name>:<value>|<type>" lines.
type statsdWriter struct {
	prefix string
	lines  []string
	buf    []byte
}

// start begins a line in the reused buffer; end finishes and keeps it.
func (w *statsdWriter) start(base, name string) []byte {
	b := append(w.buf[:0], w.prefix...)
	b = append(b, base...)
	b = append(b, name...)
	return append(b, ':')
}

func (w *statsdWriter) end(b []byte, typ byte) {
	b = append(b, '|', typ)
	w.lines = append(w.lines, string(b))
	w.buf = b
}

func (w *statsdWriter) counter(base, name string, v uint64) {
	w.end(strconv.AppendUint(w.start(base, name), v, 10), 'c')
}

func (w *statsdWriter) gauge(base, name string, v int64) {
	w.end(strconv.AppendInt(w.start(base, name), v, 10), 'g')
}

func (w *statsdWriter) ugauge(base, name string, v uint64) {
	w.end(strconv.AppendUint(w.start(base, name), v, 10), 'g')
}

// percentiles writes e2e_processing_latency_<P> gauges in nanoseconds
// (truncated), P = quantile×100 rounded to an integer as %.0f does
// (0.99 → 99, 1 → 100).
func (w *statsdWriter) percentiles(base string, ps []Percentile) {
	for _, p := range ps {
		name := "e2e_processing_latency_" + strconv.FormatFloat(p.Quantile*100, 'f', 0, 64)
		w.gauge(base, name, int64(p.Value))
	}
}

// defaultStatsdPacketSize is the datagram size used for a
// --statsd-udp-packet-size ≤ 0 (NSQ's buffered writer falls back to 4096).
const defaultStatsdPacketSize = 4096

// packStatsd packs lines, each followed by '\n', into datagrams of at most
// size bytes, in order, never splitting a line. A line longer than size on
// its own is sent alone in a datagram of its own (as NSQ does), not dropped.
func packStatsd(lines []string, size int) [][]byte {
	if size <= 0 {
		size = defaultStatsdPacketSize
	}
	var packets [][]byte
	var cur []byte
	for _, l := range lines {
		n := len(l) + 1
		if len(cur) > 0 && len(cur)+n > size {
			packets = append(packets, cur)
			cur = nil
		}
		if cur == nil {
			cur = make([]byte, 0, max(size, n))
		}
		cur = append(cur, l...)
		cur = append(cur, '\n')
	}
	if len(cur) > 0 {
		packets = append(packets, cur)
	}
	return packets
}

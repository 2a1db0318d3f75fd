package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// config holds the sizes of one run of the harness.
type config struct {
	duration    time.Duration // publishing time of each throughput run
	conns       int           // publishers and consumers per run: GOMAXPROCS
	batch       int           // messages per MPUB
	size        int           // message body size
	outstanding int           // unconfirmed MPUBs per publisher
	rdy         int           // RDY of throughput consumers
	maxMsgs     int64         // most messages one in-memory throughput run publishes
	fanoutMsgs  int64         // most messages the fan-out run publishes
	fanout      int           // channels in the fan-out run
	memMsgs     int64         // messages queued in the memory run
	latRate     int           // msgs/s of the latency run
	latRdy      int           // RDY of the latency consumer
	topics      int           // topics (with a channel each) of the scale run
	idleConns   int           // idle consumer connections of the scale run
	stall       time.Duration // no delivery for this long fails a run
}

// metric is one row of the table.
type metric struct {
	key    string
	label  string
	higher bool    // higher is better
	target float64 // ratio ours/baseline to reach: ≥ when higher, ≤ otherwise; 0 for none
	format func(float64) string
}

// scenario is one kind of run: a fresh nsqd, a load, some metrics.
type scenario struct {
	name     string
	aliases  []string // names and numbers of -scenarios selecting it
	memQueue func(*config) int64
	metrics  []metric
	run      func(context.Context, *server, *config) (map[string]float64, error)
}

func defaultMemQueue(*config) int64 { return -1 }

var scenarios = []scenario{
	{
		name:     "pub-sub",
		aliases:  []string{"1", "2", "pub", "sub"},
		memQueue: func(c *config) int64 { return c.maxMsgs },
		metrics: []metric{
			{key: "pub", label: "1 PUB: MPUB×200, GOMAXPROCS conns (msgs/s)", higher: true, target: 2, format: fmtRate},
			{key: "pub_cpu", label: "1 PUB: nsqd CPU per msg (ns)", format: fmtInt},
			{key: "sub", label: "2 SUB: drain, RDY 2500, FIN each (msgs/s)", higher: true, target: 2, format: fmtRate},
			{key: "sub_cpu", label: "2 SUB: nsqd CPU per msg (ns)", format: fmtInt},
		},
		run: func(ctx context.Context, s *server, c *config) (map[string]float64, error) {
			return runPubThenSub(ctx, s, c, c.maxMsgs)
		},
	},
	{
		name:     "pubsub",
		aliases:  []string{"3"},
		memQueue: func(c *config) int64 { return c.maxMsgs },
		metrics: []metric{
			{key: "pubsub", label: "3 PUB+SUB at once (delivered msgs/s)", higher: true, target: 2, format: fmtRate},
			{key: "pubsub_cpu", label: "3 PUB+SUB: nsqd CPU per msg (ns)", format: fmtInt},
		},
		run: func(ctx context.Context, s *server, c *config) (map[string]float64, error) {
			return runPubAndSub(ctx, s, c, c.maxMsgs, "pubsub")
		},
	},
	{
		name:     "disk-pub-sub",
		aliases:  []string{"4", "disk"},
		memQueue: func(*config) int64 { return 0 },
		metrics: []metric{
			{key: "pub", label: "4 disk (--mem-queue-size=0) PUB (msgs/s)", higher: true, target: 2, format: fmtRate},
			{key: "pub_cpu", label: "4 disk PUB: nsqd CPU per msg (ns)", format: fmtInt},
			{key: "sub", label: "4 disk SUB (msgs/s)", higher: true, target: 2, format: fmtRate},
			{key: "sub_cpu", label: "4 disk SUB: nsqd CPU per msg (ns)", format: fmtInt},
		},
		run: func(ctx context.Context, s *server, c *config) (map[string]float64, error) {
			return runPubThenSub(ctx, s, c, c.maxMsgs)
		},
	},
	{
		name:     "disk-pubsub",
		aliases:  []string{"4", "disk"},
		memQueue: func(*config) int64 { return 0 },
		metrics: []metric{
			{key: "pubsub", label: "4 disk PUB+SUB at once (delivered msgs/s)", higher: true, target: 2, format: fmtRate},
			{key: "pubsub_cpu", label: "4 disk PUB+SUB: nsqd CPU per msg (ns)", format: fmtInt},
		},
		run: func(ctx context.Context, s *server, c *config) (map[string]float64, error) {
			return runPubAndSub(ctx, s, c, c.maxMsgs, "pubsub")
		},
	},
	{
		name:     "latency",
		aliases:  []string{"5"},
		memQueue: defaultMemQueue,
		metrics: []metric{
			{key: "p50", label: "5 latency p50, {rate} msgs/s, RDY 100 (µs)", format: fmtMicros},
			{key: "p99", label: "5 latency p99 (µs)", target: 0.5, format: fmtMicros},
			{key: "p999", label: "5 latency p99.9 (µs)", format: fmtMicros},
		},
		run: func(ctx context.Context, s *server, c *config) (map[string]float64, error) {
			return runLatency(ctx, s, c, "")
		},
	},
	{
		name:     "latency-unbuffered",
		aliases:  []string{"5", "latency"},
		memQueue: defaultMemQueue,
		metrics: []metric{
			{key: "p50", label: "5b same, consumer IDENTIFY output_buffer_size=-1: p50 (µs)", format: fmtMicros},
			{key: "p99", label: "5b p99 (µs)", target: 0.5, format: fmtMicros},
			{key: "p999", label: "5b p99.9 (µs)", format: fmtMicros},
		},
		run: func(ctx context.Context, s *server, c *config) (map[string]float64, error) {
			return runLatency(ctx, s, c, `{"output_buffer_size":-1}`)
		},
	},
	{
		name:     "memory",
		aliases:  []string{"6", "mem"},
		memQueue: func(c *config) int64 { return c.memMsgs + c.memMsgs/10 },
		metrics: []metric{
			{key: "hwm", label: "6 peak RSS (VmHWM), {mem} msgs queued (MiB)", format: fmtMiB},
			{key: "bpm", label: "6 RSS per queued msg (bytes)", target: 0.5, format: fmtInt},
		},
		run: runMemory,
	},
	{
		name:     "fanout",
		aliases:  []string{"7"},
		memQueue: func(c *config) int64 { return c.fanoutMsgs },
		metrics: []metric{
			{key: "fanout", label: "7 fan-out: 1 topic, 8 channels (deliveries/s)", higher: true, target: 2, format: fmtRate},
			{key: "fanout_cpu", label: "7 fan-out: nsqd CPU per delivery (ns)", format: fmtInt},
		},
		run: runFanout,
	},
	{
		name:     "topics",
		aliases:  []string{"8", "scale"},
		memQueue: defaultMemQueue,
		metrics: []metric{
			{key: "time", label: "8 {topics} topics+channels: create over HTTP (s)", format: fmtSeconds},
			{key: "rss", label: "8 {topics} topics+channels: RSS (MiB)", target: 0.5, format: fmtMiB},
			{key: "idlecpu", label: "8 {topics} topics+channels: CPU when idle (% of a core)", format: fmtPercent},
		},
		run: runTopics,
	},
	{
		name:     "conns",
		aliases:  []string{"8", "scale"},
		memQueue: defaultMemQueue,
		metrics: []metric{
			{key: "rss", label: "8 {conns} idle consumer conns: RSS (MiB)", target: 0.5, format: fmtMiB},
			{key: "perconn", label: "8 RSS per idle consumer conn (KiB)", format: fmtKiB},
		},
		run: runConns,
	},
}

// invalid marks a run whose counts are wrong (lost, duplicated, unexpected
// messages), as opposed to one that could not run.
type invalidError struct{ err error }

func (e invalidError) Error() string { return e.err.Error() }
func (e invalidError) Unwrap() error { return e.err }

func invalid(err error) error {
	if err == nil {
		return nil
	}
	return invalidError{err}
}

func isInvalid(err error) bool {
	var ie invalidError
	return errors.As(err, &ie)
}

func roundDown(n int64, m int) int64 { return n / int64(m) * int64(m) }

// perMsg is CPU time per message in ns.
func perMsg(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / float64(n)
}

const grace = 100 * time.Millisecond // after the last message, for late duplicates

// startConsumers subscribes n consumers of topic/channel into t.
func startConsumers(ctx context.Context, s *server, topic, channel string, n, rdy int, identify string, t *tracker) ([]*consumer, error) {
	var ks []*consumer
	for range n {
		k, err := startConsumer(ctx, s.tcpAddr, topic, channel, rdy, identify, t)
		if err != nil {
			closeAll(ks)
			return nil, err
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// finishDelivery closes the consumers after a grace period (werr is what
// waitDone returned) and checks counts and the server's view of the channels.
func finishDelivery(ctx context.Context, s *server, c *config, topic string, ts []*tracker, ks []*consumer, sent int64, werr error) error {
	if werr == nil {
		time.Sleep(grace)
	}
	cerr := closeAll(ks)
	if err := s.alive(); err != nil {
		return err
	}
	for i, t := range ts {
		if err := t.check(fmt.Sprintf("channel %d", i), sent); err != nil {
			if werr != nil {
				err = fmt.Errorf("%w (%v)", err, werr)
			}
			return invalid(err)
		}
	}
	if werr != nil {
		return werr
	}
	if cerr != nil {
		return cerr
	}
	if err := s.drained(topic); err != nil {
		return invalid(err)
	}
	return nil
}

// runPubThenSub publishes for the duration (or up to limit messages) to a
// topic with one channel, then drains the channel.
func runPubThenSub(ctx context.Context, s *server, c *config, limit int64) (map[string]float64, error) {
	const topic, channel = "bench", "ch"
	if err := s.createChannel(topic, channel); err != nil {
		return nil, err
	}
	alloc := &seqAlloc{limit: roundDown(limit, c.batch)}
	m0 := s.markCPU()
	pctx, cancel := context.WithTimeout(ctx, c.duration)
	pr, err := publish(pctx, s.tcpAddr, topic, c.conns, c.batch, c.size, c.outstanding, alloc)
	cancel()
	if err != nil {
		return nil, invalid(fmt.Errorf("publish: %w", err))
	}
	pubSrv, pubGen := s.cpuSince(m0)
	n := pr.acked
	t := newTracker(alloc.limit)
	t.setTarget(n)
	m1 := s.markCPU()
	start := time.Now()
	ks, err := startConsumers(ctx, s, topic, channel, c.conns, c.rdy, "", t)
	if err != nil {
		return nil, err
	}
	werr := waitDone(ctx, []*tracker{t}, ks, c.stall)
	subSrv, subGen := s.cpuSince(m1)
	if err := finishDelivery(ctx, s, c, topic, []*tracker{t}, ks, n, werr); err != nil {
		return nil, err
	}
	return map[string]float64{
		"pub":         float64(n) / pr.elapsed.Seconds(),
		"sub":         float64(n) / doneAt([]*tracker{t}).Sub(start).Seconds(),
		"pub_cpu":     perMsg(pubSrv, n),
		"sub_cpu":     perMsg(subSrv, n),
		"gen_pub_cpu": perMsg(pubGen, n),
		"gen_sub_cpu": perMsg(subGen, n),
	}, nil
}

// runPubAndSub publishes for the duration (or up to limit messages) while
// consumers drain; the rate is messages delivered over the time from the
// first publish to the last delivery.
func runPubAndSub(ctx context.Context, s *server, c *config, limit int64, key string) (map[string]float64, error) {
	const topic, channel = "bench", "ch"
	if err := s.createChannel(topic, channel); err != nil {
		return nil, err
	}
	alloc := &seqAlloc{limit: roundDown(limit, c.batch)}
	t := newTracker(alloc.limit)
	ks, err := startConsumers(ctx, s, topic, channel, c.conns, c.rdy, "", t)
	if err != nil {
		return nil, err
	}
	m0 := s.markCPU()
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, c.duration)
	pr, err := publish(pctx, s.tcpAddr, topic, c.conns, c.batch, c.size, c.outstanding, alloc)
	cancel()
	if err != nil {
		closeAll(ks)
		return nil, invalid(fmt.Errorf("publish: %w", err))
	}
	t.setTarget(pr.acked)
	werr := waitDone(ctx, []*tracker{t}, ks, c.stall)
	srv, gen := s.cpuSince(m0)
	if err := finishDelivery(ctx, s, c, topic, []*tracker{t}, ks, pr.acked, werr); err != nil {
		return nil, err
	}
	return map[string]float64{
		key:                   float64(pr.acked) / doneAt([]*tracker{t}).Sub(start).Seconds(),
		key + "_cpu":          perMsg(srv, pr.acked),
		"gen_" + key + "_cpu": perMsg(gen, pr.acked),
	}, nil
}

// runFanout publishes to one topic with c.fanout channels, one consumer each.
func runFanout(ctx context.Context, s *server, c *config) (map[string]float64, error) {
	const topic = "fan"
	var ts []*tracker
	alloc := &seqAlloc{limit: roundDown(c.fanoutMsgs, c.batch)}
	for i := range c.fanout {
		if err := s.createChannel(topic, "ch"+strconv.Itoa(i)); err != nil {
			return nil, err
		}
		ts = append(ts, newTracker(alloc.limit))
	}
	var ks []*consumer
	for i, t := range ts {
		k, err := startConsumer(ctx, s.tcpAddr, topic, "ch"+strconv.Itoa(i), c.rdy, "", t)
		if err != nil {
			closeAll(ks)
			return nil, err
		}
		ks = append(ks, k)
	}
	m0 := s.markCPU()
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, c.duration)
	pr, err := publish(pctx, s.tcpAddr, topic, c.conns, c.batch, c.size, c.outstanding, alloc)
	cancel()
	if err != nil {
		closeAll(ks)
		return nil, invalid(fmt.Errorf("publish: %w", err))
	}
	for _, t := range ts {
		t.setTarget(pr.acked)
	}
	werr := waitDone(ctx, ts, ks, c.stall)
	srv, gen := s.cpuSince(m0)
	if err := finishDelivery(ctx, s, c, topic, ts, ks, pr.acked, werr); err != nil {
		return nil, err
	}
	deliveries := pr.acked * int64(len(ts))
	return map[string]float64{
		"fanout":         float64(deliveries) / doneAt(ts).Sub(start).Seconds(),
		"fanout_cpu":     perMsg(srv, deliveries),
		"gen_fanout_cpu": perMsg(gen, deliveries),
	}, nil
}

// runLatency publishes PUBs paced at c.latRate for the duration to one
// consumer (RDY c.latRdy) and reports latency percentiles from the send time
// in each body to its arrival. The publisher sends whatever is due each
// time it wakes (timers tick at about 1ms), each message stamped as it is
// written.
func runLatency(ctx context.Context, s *server, c *config, identify string) (map[string]float64, error) {
	const topic, channel = "lat", "ch"
	if err := s.createChannel(topic, channel); err != nil {
		return nil, err
	}
	n := int64(float64(c.latRate) * c.duration.Seconds())
	t := newTracker(n)
	t.lat = make([]int64, n)
	k, err := startConsumer(ctx, s.tcpAddr, topic, channel, c.latRdy, identify, t)
	if err != nil {
		return nil, err
	}
	ks := []*consumer{k}
	if err := publishPaced(ctx, s.tcpAddr, topic, c.size, c.latRate, n); err != nil {
		closeAll(ks)
		return nil, invalid(fmt.Errorf("publish: %w", err))
	}
	t.setTarget(n)
	if err := finishDelivery(ctx, s, c, topic, []*tracker{t}, ks, n, waitDone(ctx, []*tracker{t}, ks, c.stall)); err != nil {
		return nil, err
	}
	// Leave out the first and last tenth of a second: connection warm-up,
	// and the end of the stream, where the last messages can wait for an
	// output buffer flush timer (250ms by default) instead of the next
	// message filling the buffer; the steady state is what is measured.
	edge := min(n/4, int64(c.latRate/10))
	lat := slices.Clone(t.lat[edge : n-edge])
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e3
	}
	return map[string]float64{"p50": pct(0.50), "p99": pct(0.99), "p999": pct(0.999)}, nil
}

// publishPaced sends n PUBs at rate msgs/s on one connection and waits for
// their OKs.
func publishPaced(ctx context.Context, addr, topic string, size, rate int, n int64) error {
	c, err := dialV2(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var acked atomic.Int64
	allAcked := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		var scratch []byte
		for {
			typ, data, err := c.readFrame(&scratch)
			if err != nil {
				readErr <- err
				return
			}
			switch {
			case typ == frameResponse && string(data) == "OK":
				if acked.Add(1) == n {
					close(allAcked)
				}
			case typ == frameResponse && string(data) == "_heartbeat_":
				c.wmu.Lock()
				c.w.WriteString("NOP\n")
				err = c.w.Flush()
				c.wmu.Unlock()
				if err != nil {
					readErr <- err
					return
				}
			default:
				readErr <- fmt.Errorf("PUB: frame type %d %q", typ, data)
				return
			}
		}
	}()
	cmd := make([]byte, 0, 64+size)
	cmd = append(cmd, "PUB "+topic+"\n"...)
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(size))
	bodyAt := len(cmd)
	cmd = append(cmd, make([]byte, size)...)
	fillBody(cmd[bodyAt:], 0)

	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := int64(0); i < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case err := <-readErr:
			return err
		default:
		}
		due := min(n, int64(time.Since(start)/interval)+1)
		if due > i {
			c.wmu.Lock()
			for ; i < due; i++ {
				binary.BigEndian.PutUint64(cmd[bodyAt+bodySeq:], uint64(i))
				binary.BigEndian.PutUint64(cmd[bodyAt+bodyTime:], uint64(nowNanos()))
				c.w.Write(cmd)
			}
			err := c.w.Flush()
			c.wmu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
	}
	select {
	case <-allAcked:
		return nil
	case err := <-readErr:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("PUB: %d of %d confirmed after 30s", acked.Load(), n)
	}
}

// runMemory queues c.memMsgs messages in one channel and reads RSS before
// and after; then drains them to check the count.
func runMemory(ctx context.Context, s *server, c *config) (map[string]float64, error) {
	const topic, channel = "mem", "ch"
	if err := s.createChannel(topic, channel); err != nil {
		return nil, err
	}
	s.settle(5 * time.Second)
	before, err := s.memory()
	if err != nil {
		return nil, err
	}
	alloc := &seqAlloc{limit: roundDown(c.memMsgs, c.batch)}
	pr, err := publish(ctx, s.tcpAddr, topic, c.conns, c.batch, c.size, c.outstanding, alloc)
	if err != nil {
		return nil, invalid(fmt.Errorf("publish: %w", err))
	}
	n := pr.acked
	if chans, err := s.waitChannels(topic, 30*time.Second, func(cs []channelStats) bool {
		return len(cs) == 1 && cs[0].Depth == n
	}); err != nil {
		return nil, invalid(fmt.Errorf("published %d, /stats shows %+v: %v", n, chans, err))
	}
	s.settle(10 * time.Second)
	after, err := s.memory()
	if err != nil {
		return nil, err
	}
	t := newTracker(alloc.limit)
	t.setTarget(n)
	ks, err := startConsumers(ctx, s, topic, channel, c.conns, c.rdy, "", t)
	if err != nil {
		return nil, err
	}
	if err := finishDelivery(ctx, s, c, topic, []*tracker{t}, ks, n, waitDone(ctx, []*tracker{t}, ks, c.stall)); err != nil {
		return nil, err
	}
	return map[string]float64{
		"hwm": float64(after.hwm),
		"bpm": float64(after.rss-before.rss) / float64(n),
	}, nil
}

// runTopics creates c.topics topics with one channel each over HTTP (four
// requests at a time) and reads RSS once the process is idle again.
func runTopics(ctx context.Context, s *server, c *config) (map[string]float64, error) {
	names := make(chan string)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	start := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				if err := s.createChannel(name, "ch"); err != nil {
					errs <- err
					for range names {
					}
					return
				}
			}
		}()
	}
	go func() {
		defer close(names)
		for i := range c.topics {
			select {
			case names <- fmt.Sprintf("topic%05d", i):
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.settle(30 * time.Second)
	mem, err := s.memory()
	if err != nil {
		return nil, err
	}
	idle, err := s.cpuShare(2 * time.Second)
	if err != nil {
		return nil, err
	}
	ts, err := s.stats("")
	if err != nil {
		return nil, err
	}
	got := 0
	for _, t := range ts {
		if strings.HasPrefix(t.Name, "topic") && len(t.Channels) == 1 {
			got++
		}
	}
	if got != c.topics {
		return nil, invalid(fmt.Errorf("created %d topics with a channel each, /stats lists %d (of %d topics)", c.topics, got, len(ts)))
	}
	return map[string]float64{"time": elapsed.Seconds(), "rss": float64(mem.rss), "idlecpu": 100 * idle}, nil
}

// runConns opens c.idleConns consumer connections (SUB, RDY 1) on one
// channel that never gets a message, and reads RSS before and after.
func runConns(ctx context.Context, s *server, c *config) (map[string]float64, error) {
	const topic, channel = "idle", "ch"
	if err := s.createChannel(topic, channel); err != nil {
		return nil, err
	}
	s.settle(5 * time.Second)
	before, err := s.memory()
	if err != nil {
		return nil, err
	}
	conns := make([]*conn, c.idleConns)
	defer func() {
		// The caller kills the server right after; closing here first is
		// fine too: nothing is measured any more.
		for _, cn := range conns {
			if cn != nil {
				cn.Close()
			}
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(conns)) {
					return
				}
				cn, err := dialV2(ctx, s.tcpAddr)
				if err == nil {
					conns[i] = cn
					err = cn.subscribe(topic, channel, 1)
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					next.Store(int64(len(conns)))
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	if chans, err := s.waitChannels(topic, 30*time.Second, func(cs []channelStats) bool {
		return len(cs) == 1 && cs[0].ClientCount == c.idleConns
	}); err != nil {
		return nil, invalid(fmt.Errorf("opened %d consumer connections, /stats shows %+v: %v", c.idleConns, chans, err))
	}
	s.settle(10 * time.Second)
	after, err := s.memory()
	if err != nil {
		return nil, err
	}
	return map[string]float64{
		"rss":     float64(after.rss),
		"perconn": float64(after.rss-before.rss) / float64(c.idleConns),
	}, nil
}

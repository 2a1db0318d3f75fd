package nsqadmin

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/nsqclone/nsq/internal/clusterinfo"
)

// point is one sample of a topic, a channel or the whole cluster.
type point struct {
	depth    int64 // a topic's: its own depth plus its channels'
	inFlight int64
	messages int64 // message_count
	clients  int
}

// sample is the cluster at one moment.
type sample struct {
	at       time.Time
	total    point
	topics   map[string]point
	channels map[string]map[string]point // topic → channel → point
}

// sampler keeps the recent history of the cluster's stats, for charts. It
// samples every interval and forgets samples older than window.
type sampler struct {
	cluster  *clusterinfo.Cluster
	interval time.Duration // 0: sampling is off
	window   time.Duration
	timeout  time.Duration // of one round of requests
	log      *slog.Logger

	mu      sync.Mutex
	samples []*sample // oldest first
	lastErr error     // of the newest sample: the nodes that did not answer
}

func newSampler(cluster *clusterinfo.Cluster, interval, window, requestTimeout time.Duration, log *slog.Logger) *sampler {
	return &sampler{
		cluster:  cluster,
		interval: interval,
		window:   window,
		timeout:  max(requestTimeout*2, time.Second),
		log:      log,
	}
}

// loop samples at once and then every interval until ctx ends.
func (s *sampler) loop(ctx context.Context) {
	if s.interval <= 0 {
		return
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.sampleOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) sampleOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	snap, err := s.cluster.Snapshot(ctx)
	if ctx.Err() != nil && context.Cause(ctx) == context.Canceled {
		return // shutting down
	}
	smp := newSample(time.Now(), snap)
	if err != nil {
		s.log.Debug("STATS: sample incomplete", "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, smp)
	cutoff := smp.at.Add(-s.window)
	drop := 0
	for drop < len(s.samples) && s.samples[drop].at.Before(cutoff) {
		drop++
	}
	s.samples = append(s.samples[:0], s.samples[drop:]...)
	s.lastErr = err
}

func newSample(at time.Time, snap *clusterinfo.Snapshot) *sample {
	smp := &sample{at: at, topics: map[string]point{}, channels: map[string]map[string]point{}}
	for _, t := range snap.Topics {
		tp := point{depth: t.Depth, messages: t.MessageCount}
		chans := make(map[string]point, len(t.Channels))
		for _, c := range t.Channels {
			cp := point{depth: c.Depth, inFlight: c.InFlightCount, messages: c.MessageCount, clients: c.ClientCount}
			chans[c.ChannelName] = cp
			tp.depth += c.Depth
			tp.inFlight += c.InFlightCount
			tp.clients += c.ClientCount
		}
		smp.topics[t.TopicName] = tp
		smp.channels[t.TopicName] = chans
		smp.total.depth += tp.depth
		smp.total.inFlight += tp.inFlight
		smp.total.messages += tp.messages
		smp.total.clients += tp.clients
	}
	return smp
}

// series is the history of one topic, channel or the cluster: one value per
// sample time, null where it did not exist (or, for rate, where there is no
// earlier value or the counter went back, as after an nsqd restart).
type series struct {
	Depth    []*int64   `json:"depth"`
	InFlight []*int64   `json:"in_flight"`
	Messages []*int64   `json:"messages"`
	Rate     []*float64 `json:"rate"` // messages per second since the previous sample
}

// historyResponse is GET /api/history: Series is the cluster's (no topic),
// a topic's or a channel's; Children are the topics of the cluster or the
// channels of a topic.
type historyResponse struct {
	IntervalMS int64              `json:"interval_ms"`
	WindowMS   int64              `json:"window_ms"`
	Times      []int64            `json:"times"` // Unix milliseconds
	Series     *series            `json:"series"`
	Children   map[string]*series `json:"children,omitempty"`
	envelope
}

// history answers GET /api/history for topic and channel ("" for all).
func (s *sampler) history(topic, channel string) (*historyResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &historyResponse{
		IntervalMS: s.interval.Milliseconds(),
		WindowMS:   s.window.Milliseconds(),
		Times:      make([]int64, len(s.samples)),
		envelope:   newEnvelope(s.lastErr),
	}
	for i, smp := range s.samples {
		resp.Times[i] = smp.at.UnixMilli()
	}
	switch {
	case topic == "":
		resp.Series = s.build(func(smp *sample) (point, bool) { return smp.total, true })
		resp.Children = map[string]*series{}
		for _, name := range s.names(func(smp *sample) map[string]point { return smp.topics }) {
			resp.Children[name] = s.build(func(smp *sample) (point, bool) {
				p, ok := smp.topics[name]
				return p, ok
			})
		}
	case channel == "":
		resp.Series = s.build(func(smp *sample) (point, bool) {
			p, ok := smp.topics[topic]
			return p, ok
		})
		resp.Children = map[string]*series{}
		for _, name := range s.names(func(smp *sample) map[string]point { return smp.channels[topic] }) {
			resp.Children[name] = s.build(func(smp *sample) (point, bool) {
				p, ok := smp.channels[topic][name]
				return p, ok
			})
		}
	default:
		resp.Series = s.build(func(smp *sample) (point, bool) {
			p, ok := smp.channels[topic][channel]
			return p, ok
		})
	}
	return resp, nil
}

// names lists the keys that appear in any sample's map.
func (s *sampler) names(m func(*sample) map[string]point) []string {
	set := map[string]bool{}
	for _, smp := range s.samples {
		for k := range m(smp) {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}

// build makes the series of the value get picks from each sample. s.mu is
// held.
func (s *sampler) build(get func(*sample) (point, bool)) *series {
	n := len(s.samples)
	out := &series{
		Depth:    make([]*int64, n),
		InFlight: make([]*int64, n),
		Messages: make([]*int64, n),
		Rate:     make([]*float64, n),
	}
	var prev *point
	var prevAt time.Time
	for i, smp := range s.samples {
		p, ok := get(smp)
		if !ok {
			prev = nil
			continue
		}
		out.Depth[i] = &p.depth
		out.InFlight[i] = &p.inFlight
		out.Messages[i] = &p.messages
		if prev != nil && p.messages >= prev.messages {
			if dt := smp.at.Sub(prevAt).Seconds(); dt > 0 {
				r := math.Round(float64(p.messages-prev.messages)/dt*100) / 100
				out.Rate[i] = &r
			}
		}
		prev, prevAt = &p, smp.at
	}
	return out
}

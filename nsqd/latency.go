package nsqd

import (
	"sync"
	"time"

	"github.com/bmizerany/perks/quantile"
)

// latencyWindow estimates quantiles of end-to-end processing latency (FIN
// time minus publish time) over a sliding window: two perks streams, the
// older one reset and reused every half window.
type latencyWindow struct {
	quantiles []float64
	half      time.Duration

	mu      sync.Mutex
	streams [2]*quantile.Stream
	cur     int
	rotated time.Time
}

// newLatencyWindow returns nil when no percentiles are configured.
func (n *NSQD) newLatencyWindow() *latencyWindow {
	qs := n.opts.E2EProcessingLatencyPercentiles
	if len(qs) == 0 {
		return nil
	}
	w := &latencyWindow{quantiles: qs, half: max(n.opts.E2EProcessingLatencyWindowTime/2, time.Second), rotated: time.Now()}
	for i := range w.streams {
		w.streams[i] = newTargetedStream(qs)
	}
	return w
}

func newTargetedStream(qs []float64) *quantile.Stream {
	return quantile.NewTargeted(qs...)
}

func (w *latencyWindow) rotateLocked(now time.Time) {
	for now.Sub(w.rotated) >= w.half {
		w.cur ^= 1
		w.streams[w.cur].Reset()
		w.rotated = w.rotated.Add(w.half)
		if now.Sub(w.rotated) >= 2*w.half { // idle for a whole window
			w.streams[w.cur^1].Reset()
			w.rotated = now
		}
	}
}

func (w *latencyWindow) record(now time.Time, latency int64) {
	w.mu.Lock()
	w.rotateLocked(now)
	w.streams[w.cur].Insert(float64(latency))
	w.mu.Unlock()
}

// samples returns the window's samples (for merging into a topic's view).
func (w *latencyWindow) samples() quantile.Samples {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotateLocked(time.Now())
	// Samples returns the streams' own slices, and Merge sorts what it is
	// given: hand out a copy.
	a, b := w.streams[0].Samples(), w.streams[1].Samples()
	out := make(quantile.Samples, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

// percentiles computes the stats object from samples, in configured order.
func latencyPercentiles(qs []float64, samples quantile.Samples) Percentiles {
	s := newTargetedStream(qs)
	s.Merge(samples)
	p := Percentiles{Count: int64(s.Count()), Percentiles: make([]Percentile, 0, len(qs))}
	for _, q := range qs {
		v := 0.0
		if s.Count() > 0 {
			v = s.Query(q)
		}
		p.Percentiles = append(p.Percentiles, Percentile{Quantile: q, Value: v})
	}
	return p
}

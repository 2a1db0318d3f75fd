package apputil

import (
	"slices"
	"sync"
	"time"
)

// TimerMetrics collects request durations and, every `every` requests, logs a
// summary: "<prefix> finished 250 - 99th: 3.21ms - 95th: 2.05ms - avg: 1.10ms"
// (--status-every of nsq_to_http and nsq_to_nsq). A nil *TimerMetrics or
// every <= 0 records nothing. Safe for concurrent use.
type TimerMetrics struct {
	prefix string
	every  int
	logf   func(format string, args ...any)

	mu      sync.Mutex
	timings []time.Duration // since the last summary
}

// NewTimerMetrics returns metrics logging through logf (log.Printf's shape).
func NewTimerMetrics(every int, prefix string, logf func(string, ...any)) *TimerMetrics {
	return &TimerMetrics{prefix: prefix, every: every, logf: logf}
}

// Status records one request that started at start.
func (m *TimerMetrics) Status(start time.Time) {
	if m == nil || m.every <= 0 {
		return
	}
	d := time.Since(start)
	m.mu.Lock()
	m.timings = append(m.timings, d)
	if len(m.timings) < m.every {
		m.mu.Unlock()
		return
	}
	timings := m.timings
	m.timings = make([]time.Duration, 0, m.every)
	m.mu.Unlock()

	p99, p95, avg := summarize(timings)
	m.logf("%s finished %d - 99th: %.02fms - 95th: %.02fms - avg: %.02fms",
		m.prefix, len(timings), ms(p99), ms(p95), ms(avg))
}

// summarize returns the 99th and 95th percentiles and the mean of d (which
// it sorts), nearest-rank.
func summarize(d []time.Duration) (p99, p95, avg time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	rank := func(p float64) time.Duration {
		i := int(float64(len(d))*p+0.5) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return rank(0.99), rank(0.95), sum / time.Duration(len(d))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package apputil

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff of a failing host in a HostPool: the first failure keeps it out of
// rotation for hostRetryMin, each further failure doubles that up to
// hostRetryMax.
const (
	hostRetryMin = time.Second
	hostRetryMax = time.Minute
)

// Epsilon-greedy selection (NewEpsilonGreedyHostPool): response times count
// for five minutes, the decay NSQ's utilities give their epsilon-greedy pool;
// exploration starts at 30 % of the requests and falls by a tenth every 100
// requests down to 1 %, so a host that got faster is still noticed.
const (
	// Response times are kept in scoreBuckets buckets of scoreBucketSpan; the
	// newest bucket weighs scoreBuckets, the oldest 1, older ones nothing.
	scoreBuckets    = 120
	scoreBucketSpan = 5 * time.Minute / scoreBuckets

	epsilonInitial = 0.3  // share of requests sent to a random host at first
	epsilonMin     = 0.01 // the share it decays to
	epsilonDecay   = 0.9  // factor applied every epsilonEvery picks
	epsilonEvery   = 100
)

// HostPool chooses the host of each request among several, skipping hosts
// that failed recently. A failed host gets one request again once its
// backoff has passed; success brings it back, failure doubles its backoff.
// When every host is backing off, the one due first is used, so requests
// always go somewhere.
//
// Among the healthy hosts, a pool from NewHostPool takes them in turn
// (--mode=hostpool of nsq_to_http and nsq_to_nsq). One from
// NewEpsilonGreedyHostPool (--mode=epsilon-greedy) weights them by response
// time: with probability epsilon it explores a random host, otherwise it
// picks a host with probability proportional to 1 / its decayed average
// response time, so a host ten times slower gets about a tenth of those
// requests. A host without a recent response time is tried first.
//
// Safe for concurrent use.
type HostPool struct {
	now    func() time.Time // time.Now; replaced by tests
	rand   func() float64   // rand.Float64; replaced by tests
	greedy bool             // epsilon-greedy, else round-robin

	mu      sync.Mutex
	hosts   []poolHost
	next    int     // index where the round-robin scan starts
	epsilon float64 // greedy: current exploration probability
	picks   int     // greedy: picks since epsilon last decayed
}

type poolHost struct {
	addr    string
	failing bool
	retryAt time.Time     // when failing: first time it may be tried again
	backoff time.Duration // when failing: the current backoff

	times [scoreBuckets]timeBucket // greedy: successful response times
}

// timeBucket sums the response times recorded during bucket number n (the
// time since the Unix epoch divided by scoreBucketSpan).
type timeBucket struct {
	n     int64
	total time.Duration
	count int
}

// NewHostPool returns a round-robin pool of hosts, all healthy.
func NewHostPool(hosts []string) *HostPool {
	p := &HostPool{now: time.Now, rand: rand.Float64, hosts: make([]poolHost, len(hosts))}
	for i, h := range hosts {
		p.hosts[i].addr = h
	}
	return p
}

// NewEpsilonGreedyHostPool returns a pool of hosts, all healthy, that
// prefers the hosts that answer faster.
func NewEpsilonGreedyHostPool(hosts []string) *HostPool {
	p := NewHostPool(hosts)
	p.greedy, p.epsilon = true, epsilonInitial
	return p
}

// Get returns the host for the next request.
func (p *HostPool) Get() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.greedy {
		if i := p.greedyPick(now); i >= 0 {
			return p.hosts[i].addr
		}
		// Every host is backing off: below, the one due first.
	}
	n := len(p.hosts)
	best := -1
	for k := range n {
		i := (p.next + k) % n
		h := &p.hosts[i]
		if !h.failing || !now.Before(h.retryAt) {
			if h.failing {
				// One probe per backoff period: the next Get skips it again
				// until Mark reports how the probe went.
				h.retryAt = now.Add(h.backoff)
			}
			p.next = (i + 1) % n
			return h.addr
		}
		if best < 0 || h.retryAt.Before(p.hosts[best].retryAt) {
			best = i
		}
	}
	p.next = (best + 1) % n
	return p.hosts[best].addr
}

// greedyPick returns the index of the epsilon-greedy choice, or -1 when every
// host is failing and none is due for a probe.
func (p *HostPool) greedyPick(now time.Time) int {
	p.picks++
	if p.picks >= epsilonEvery {
		p.picks = 0
		p.epsilon = max(p.epsilon*epsilonDecay, epsilonMin)
	}
	n := len(p.hosts)
	bucket := now.UnixNano() / int64(scoreBucketSpan)
	var scores [16]float64 // by index: 1/average response time, 0 if failing
	score := scores[:0]
	if n > len(scores) {
		score = make([]float64, 0, n)
	}
	score = score[:n]
	healthy := 0
	for k := range n {
		i := (p.next + k) % n
		h := &p.hosts[i]
		if h.failing {
			if !now.Before(h.retryAt) {
				h.retryAt = now.Add(h.backoff) // one probe per backoff period
				p.next = (i + 1) % n
				return i
			}
			continue
		}
		healthy++
		avg, ok := h.averageTime(bucket)
		if !ok {
			p.next = (i + 1) % n // measure every host before weighting them
			return i
		}
		score[i] = 1 / max(avg.Seconds(), 1e-9)
	}
	if healthy == 0 {
		return -1
	}
	if p.rand() < p.epsilon {
		k := min(int(p.rand()*float64(healthy)), healthy-1)
		for i := range p.hosts {
			if !p.hosts[i].failing {
				if k == 0 {
					return i
				}
				k--
			}
		}
	}
	// Weighted choice: each healthy host's share is its score over the sum.
	sum := 0.0
	for _, s := range score {
		sum += s
	}
	r := p.rand() * sum
	last := -1
	for i, s := range score {
		if s == 0 {
			continue
		}
		if r < s {
			return i
		}
		r -= s
		last = i
	}
	return last // rounding left r just above the total
}

// averageTime returns the host's response time over the last scoreBuckets
// buckets before and including bucket, newer buckets weighing more, and
// whether it has any.
func (h *poolHost) averageTime(bucket int64) (time.Duration, bool) {
	var weighted, weights float64
	for _, b := range h.times {
		age := bucket - b.n
		if b.count == 0 || age < 0 || age >= scoreBuckets {
			continue
		}
		w := float64(scoreBuckets - age)
		weighted += w * float64(b.total) / float64(b.count)
		weights += w
	}
	if weights == 0 {
		return 0, false
	}
	return time.Duration(weighted / weights), true
}

// Mark records the outcome of a request to host that took d (err nil for
// success). Only an epsilon-greedy pool uses d.
func (p *HostPool) Mark(host string, d time.Duration, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.hosts {
		h := &p.hosts[i]
		if h.addr != host {
			continue
		}
		switch {
		case err == nil:
			h.failing, h.backoff = false, 0
			if p.greedy {
				n := p.now().UnixNano() / int64(scoreBucketSpan)
				b := &h.times[n%scoreBuckets]
				if b.n != n {
					*b = timeBucket{n: n}
				}
				b.total += max(d, 0)
				b.count++
			}
		case !h.failing:
			h.failing, h.backoff = true, hostRetryMin
			h.retryAt = p.now().Add(h.backoff)
		default:
			h.backoff = min(2*h.backoff, hostRetryMax)
			h.retryAt = p.now().Add(h.backoff)
		}
		return
	}
}

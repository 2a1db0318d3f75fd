package apputil

import (
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

// HostPool spreads requests over hosts in turn, skipping hosts that failed
// recently. A failed host gets one request again once its backoff has passed;
// success brings it back into rotation, failure doubles its backoff. When
// every host is backing off, the one due first is used, so requests always
// go somewhere. It is the --mode=hostpool (and epsilon-greedy) of
// nsq_to_http and nsq_to_nsq. Safe for concurrent use.
type HostPool struct {
	now func() time.Time // time.Now; replaced by tests

	mu    sync.Mutex
	hosts []poolHost
	next  int // index where the round-robin scan starts
}

type poolHost struct {
	addr    string
	failing bool
	retryAt time.Time     // when failing: first time it may be tried again
	backoff time.Duration // when failing: the current backoff
}

// NewHostPool returns a pool of hosts, all healthy.
func NewHostPool(hosts []string) *HostPool {
	p := &HostPool{now: time.Now, hosts: make([]poolHost, len(hosts))}
	for i, h := range hosts {
		p.hosts[i].addr = h
	}
	return p
}

// Get returns the host for the next request.
func (p *HostPool) Get() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
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

// Mark records the outcome of a request to host (err nil for success).
func (p *HostPool) Mark(host string, err error) {
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

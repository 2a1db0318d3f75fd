package main

import (
	"sync/atomic"
	"time"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqio/go-nsq"
)

// Publishing modes of --mode.
const (
	modeRoundRobin    = iota // round-robin, and any unknown value
	modeHostPool             // hostpool: in turn, skipping failing hosts
	modeEpsilonGreedy        // epsilon-greedy: faster destinations get more
)

func parseMode(s string) int {
	switch s {
	case "hostpool":
		return modeHostPool
	case "epsilon-greedy":
		return modeEpsilonGreedy
	}
	return modeRoundRobin
}

// forwarder republishes messages. Handlers publish asynchronously; respond
// finishes each source message once its publish is acknowledged and requeues
// it when the publish failed.
type forwarder struct {
	addrs     []string
	producers map[string]*nsq.Producer // read-only
	mode      int
	filter    *jsonFilter // nil: bodies pass unchanged
	counter   atomic.Uint64
	pool      *apputil.HostPool
	metrics   *apputil.TimerMetrics            // all destinations
	perAddr   map[string]*apputil.TimerMetrics // read-only
	logf      func(string, ...any)

	// responses receives every publish's outcome; closed by the owner once
	// the producers have stopped.
	responses chan *nsq.ProducerTransaction
}

func newForwarder(addrs []string, producers map[string]*nsq.Producer, mode int, filter *jsonFilter, statusEvery int, logf func(string, ...any)) *forwarder {
	pool := apputil.NewHostPool(addrs)
	if mode == modeEpsilonGreedy {
		pool = apputil.NewEpsilonGreedyHostPool(addrs)
	}
	f := &forwarder{
		addrs:     addrs,
		producers: producers,
		mode:      mode,
		filter:    filter,
		pool:      pool,
		metrics:   apputil.NewTimerMetrics(statusEvery, "[aggregate]:", logf),
		logf:      logf,
		perAddr:   map[string]*apputil.TimerMetrics{},
		responses: make(chan *nsq.ProducerTransaction, 256),
	}
	for _, a := range addrs {
		f.perAddr[a] = apputil.NewTimerMetrics(statusEvery, "["+a+"]:", logf)
	}
	return f
}

// handler returns the message handler of a consumer whose messages go to
// destTopic.
func (f *forwarder) handler(destTopic string) nsq.HandlerFunc {
	return func(m *nsq.Message) error {
		body := m.Body
		if f.filter != nil {
			out, verdict := f.filter.apply(body)
			switch verdict {
			case dropNotJSON:
				f.logf("ERROR: Unable to decode json: %s", body)
				return nil
			case dropMissingField:
				if f.filter.requireValue != "" {
					f.logf("ERROR: missing field to check required value")
				}
				return nil
			case dropValue:
				return nil
			}
			body = out
		}

		var addr string
		if f.mode == modeRoundRobin {
			// The first message goes to the first address.
			addr = f.addrs[(f.counter.Add(1)-1)%uint64(len(f.addrs))]
		} else {
			addr = f.pool.Get()
		}
		err := f.producers[addr].PublishAsync(destTopic, body, f.responses, m, time.Now(), addr)
		if err != nil {
			f.pool.Mark(addr, 0, err)
			return err // go-nsq requeues with backoff
		}
		m.DisableAutoResponse()
		return nil
	}
}

// respond answers source messages as their publishes complete, until
// responses is closed.
func (f *forwarder) respond() {
	for t := range f.responses {
		m := t.Args[0].(*nsq.Message)
		start := t.Args[1].(time.Time)
		addr := t.Args[2].(string)
		if f.mode != modeRoundRobin {
			f.pool.Mark(addr, time.Since(start), t.Error) // publish to acknowledgement
		}
		if t.Error != nil {
			f.logf("ERROR: publishing to %s failed - %s", addr, t.Error)
			m.Requeue(-1)
			continue
		}
		m.Finish()
		f.perAddr[addr].Status(start)
		f.metrics.Status(start)
	}
}

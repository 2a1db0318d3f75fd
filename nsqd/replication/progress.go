package replication

import (
	"errors"
	"sync"
	"time"
)

// maxProgressBatch is how many settlements of one channel make a Progress
// entry be proposed before the next tick.
const maxProgressBatch = 4096

type channelKey struct{ topic, channel string }

type progressBatch struct {
	finished []uint64
	requeued []Requeue
	dead     []Dead
}

// progressBatcher collects FIN and REQ settlements and proposes them as
// Progress entries every ProgressInterval, or sooner when a channel has
// maxProgressBatch of them, so that settling never waits for raft. What is
// collected but not yet committed when the leader dies is delivered again by
// the next leader (the at-least-once window of docs/replication.md).
type progressBatcher struct {
	n *Node

	// mu guards batches and count; taken alone.
	mu      sync.Mutex
	batches map[channelKey]*progressBatch
	count   int
	full    chan struct{} // cap 1: a batch reached maxProgressBatch
}

func newProgressBatcher(n *Node) *progressBatcher {
	return &progressBatcher{n: n, batches: make(map[channelKey]*progressBatch), full: make(chan struct{}, 1)}
}

func (p *progressBatcher) batch(topic, channel string) *progressBatch {
	k := channelKey{topic, channel}
	b := p.batches[k]
	if b == nil {
		b = &progressBatch{}
		p.batches[k] = b
	}
	return b
}

func (p *progressBatcher) added() {
	p.count++
	if p.count == maxProgressBatch {
		select {
		case p.full <- struct{}{}:
		default:
		}
	}
}

func (p *progressBatcher) finish(topic, channel string, id uint64) {
	p.mu.Lock()
	b := p.batch(topic, channel)
	b.finished = append(b.finished, id)
	p.added()
	p.mu.Unlock()
}

func (p *progressBatcher) requeue(topic, channel string, rq Requeue) {
	p.mu.Lock()
	b := p.batch(topic, channel)
	b.requeued = append(b.requeued, rq)
	p.added()
	p.mu.Unlock()
}

func (p *progressBatcher) dead(topic, channel string, d Dead) {
	p.mu.Lock()
	b := p.batch(topic, channel)
	b.dead = append(b.dead, d)
	p.added()
	p.mu.Unlock()
}

func (p *progressBatcher) loop() {
	t := time.NewTicker(p.n.cfg.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-p.n.exit:
			p.flush() // best effort: what does not commit is redelivered
			return
		case <-t.C:
		case <-p.full:
		}
		p.flush()
	}
}

// flush proposes every collected batch and waits for them. Proposals that
// fail are dropped: a follower's settlements never commit (it does not
// dispatch), a deposed leader's are redelivered by the next.
func (p *progressBatcher) flush() {
	p.mu.Lock()
	batches := p.batches
	if len(batches) == 0 {
		p.mu.Unlock()
		return
	}
	p.batches = make(map[channelKey]*progressBatch)
	p.count = 0
	p.mu.Unlock()

	var errs []error
	type pending interface{ Error() error }
	var futures []pending
	for k, b := range batches {
		e := &Progress{Topic: k.topic, Channel: k.channel, Finished: Ranges(b.finished), Requeued: b.requeued, Dead: b.dead}
		if len(b.dead) > 0 {
			e.Time = time.Now().UnixNano() // the dead letters' origin time
		}
		futures = append(futures, p.n.raft.Apply(AppendProgress(nil, e), p.n.cfg.ApplyTimeout))
	}
	for _, f := range futures {
		if err := f.Error(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		p.n.log.Debug("REPLICATION: progress not committed", "err", err)
	}
}

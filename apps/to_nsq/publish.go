package main

import (
	"context"
	"time"

	"github.com/nsqio/go-nsq"
)

// window is how many publishes may await nsqd's answer per producer. Each
// producer has one connection, so records still arrive in input order.
const window = 128

// publisher publishes records to every producer, pipelining up to window
// unacknowledged PUBs per producer instead of waiting for each answer.
type publisher struct {
	topic       string
	producers   []*nsq.Producer
	done        chan *nsq.ProducerTransaction
	outstanding int
}

func newPublisher(topic string, producers []*nsq.Producer) *publisher {
	return &publisher{
		topic:     topic,
		producers: producers,
		done:      make(chan *nsq.ProducerTransaction, window*len(producers)),
	}
}

// run publishes the records until the channel is closed or ctx ends, then
// waits for every answer. It returns the first publish error.
func (p *publisher) run(ctx context.Context, records <-chan []byte, limit *bucket) error {
	err := p.publishAll(ctx, records, limit)
	for p.outstanding > 0 {
		if e := p.await(); err == nil {
			err = e
		}
	}
	return err
}

func (p *publisher) publishAll(ctx context.Context, records <-chan []byte, limit *bucket) error {
	for {
		var rec []byte
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case rec, ok = <-records:
			if !ok {
				return nil
			}
		}
		if limit != nil && !limit.wait(ctx) {
			return nil
		}
		for _, prod := range p.producers {
			for p.outstanding >= cap(p.done) {
				if err := p.await(); err != nil {
					return err
				}
			}
			if err := prod.PublishAsync(p.topic, rec, p.done); err != nil {
				return err
			}
			p.outstanding++
		}
	}
}

// await waits for one answer.
func (p *publisher) await() error {
	t := <-p.done
	p.outstanding--
	return t.Error
}

// bucket is a token bucket for --rate: it holds at most rate tokens, starts
// with one and gains rate tokens a second; each record takes one.
type bucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

func newBucket(rate int64) *bucket {
	return &bucket{rate: float64(rate), tokens: 1, last: time.Now()}
}

// wait takes a token, sleeping until one is available. It returns false if
// ctx ends first.
func (b *bucket) wait(ctx context.Context) bool {
	now := time.Now()
	b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	d := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	b.tokens, b.last = 0, now.Add(d)
	return true
}

package main

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/nsqio/go-nsq"
)

// printer writes message bodies to its writer, one per line, for every
// topic's consumer. After limit messages (0: no limit) it closes done;
// messages delivered beyond the limit are requeued at once for the next
// consumer of the channel rather than dropped.
type printer struct {
	printTopic bool
	limit      int64
	shown      atomic.Int64
	done       chan struct{} // closed when limit messages have been printed
	closeDone  func()
	failed     chan error // receives the first write error

	mu  sync.Mutex // guards w and buf: lines of concurrent consumers never interleave
	w   io.Writer
	buf []byte
}

func newPrinter(w io.Writer, printTopic bool, limit int) *printer {
	p := &printer{
		printTopic: printTopic,
		limit:      int64(limit),
		done:       make(chan struct{}),
		failed:     make(chan error, 1),
		w:          w,
	}
	p.closeDone = sync.OnceFunc(func() { close(p.done) })
	return p
}

// handler returns the message handler of topic's consumer.
func (p *printer) handler(topic string) nsq.HandlerFunc {
	return func(m *nsq.Message) error {
		n := p.shown.Add(1)
		if p.limit > 0 && n > p.limit {
			m.DisableAutoResponse()
			m.RequeueWithoutBackoff(0)
			return nil
		}
		if err := p.print(topic, m.Body); err != nil {
			select {
			case p.failed <- err:
			default:
			}
			return err
		}
		if p.limit > 0 && n == p.limit {
			p.closeDone()
		}
		return nil
	}
}

// print writes one line with a single Write.
func (p *printer) print(topic string, body []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.buf[:0]
	if p.printTopic {
		b = append(b, topic...)
		b = append(b, " | "...)
	}
	b = append(b, body...)
	b = append(b, '\n')
	p.buf = b
	_, err := p.w.Write(b)
	return err
}

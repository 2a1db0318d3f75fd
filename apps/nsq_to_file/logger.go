package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nsqio/go-nsq"
)

// logFunc logs one line in NSQ's format at level.
type logFunc func(level slog.Level, format string, args ...any)

// flushDelay is how long written messages may wait in memory when no more
// are arriving, before they are handed to the file (not synced) so that
// readers of the file see them.
const flushDelay = 50 * time.Millisecond

// topicLogger consumes one topic and writes its messages to an outFile.
//
// go-nsq's handler goroutine hands each message over on msgs without
// answering it; run writes it and finishes it only once the file is synced,
// so a message is never finished before it is on disk. A sync happens every
// --sync-interval, when --max-in-flight messages await one, when the
// consumer is starved (nsqd sends no more until some are finished), before
// a rotation, on SIGHUP and when stopping.
type topicLogger struct {
	topic    string
	cfg      *config
	logf     logFunc
	consumer *nsq.Consumer
	file     *outFile
	msgs     chan *nsq.Message
	quit     chan struct{} // closed when run returns; the handler stops handing over

	pending []*nsq.Message // written, awaiting a sync to be finished
}

func newTopicLogger(topic string, cfg *config, nsqCfg *nsq.Config, logf logFunc, host string, nsqLogger nsqLogger) (*topicLogger, error) {
	consumer, err := nsq.NewConsumer(topic, cfg.channel, nsqCfg)
	if err != nil {
		return nil, err
	}
	consumer.SetLogger(nsqLogger.logger, nsqLogger.level)
	l := &topicLogger{
		topic:    topic,
		cfg:      cfg,
		logf:     logf,
		consumer: consumer,
		file:     newOutFile(cfg, logf, topic, host),
		msgs:     make(chan *nsq.Message, cfg.maxInFlight),
		quit:     make(chan struct{}),
	}
	consumer.AddHandler(l)
	return l, nil
}

// connect connects the consumer to nsqd or lookupd; call it once, before run.
func (l *topicLogger) connect() error {
	var err error
	if len(l.cfg.nsqdTCPAddrs) > 0 {
		err = l.consumer.ConnectToNSQDs(l.cfg.nsqdTCPAddrs)
	} else {
		err = l.consumer.ConnectToNSQLookupds(l.cfg.lookupdHTTPAddrs)
	}
	if err != nil {
		l.consumer.Stop()
		return err
	}
	return nil
}

// HandleMessage implements nsq.Handler: it hands m to run unanswered.
func (l *topicLogger) HandleMessage(m *nsq.Message) error {
	m.DisableAutoResponse()
	select {
	case l.msgs <- m:
	case <-l.quit: // the connection is gone or going; nsqd requeues m
	}
	return nil
}

// run writes messages until ctx ends (or a write fails) and the consumer has
// stopped, then syncs and closes the file. hup asks for the current file to
// be synced and closed. It returns the first write, sync or file error;
// messages not known to be on disk are then requeued.
func (l *topicLogger) run(ctx context.Context, hup <-chan struct{}) error {
	defer close(l.quit)
	ticker := time.NewTicker(l.cfg.syncInterval)
	defer ticker.Stop()
	flushTimer := time.NewTimer(flushDelay)
	flushTimer.Stop()
	flushArmed := false

	done := ctx.Done()
	stopping := false
	var failed error
	fail := func(err error) {
		if failed != nil || err == nil {
			return
		}
		failed = err // logged by main
		for _, m := range l.pending {
			m.RequeueWithoutBackoff(0)
		}
		l.pending = l.pending[:0]
		l.file.close() // best effort; the error is already reported
		l.consumer.Stop()
		stopping, done = true, nil
	}

	for {
		select {
		case <-done:
			done, stopping = nil, true
			l.consumer.Stop()

		case <-l.consumer.StopChan:
			if failed == nil {
				fail(l.syncPending())
			}
			if failed == nil {
				fail(l.file.close())
			}
			// Anything still queued arrived after go-nsq gave up waiting for
			// it; its connection is closed and nsqd requeues it.
			return failed

		case <-hup:
			if failed == nil {
				fail(l.syncPending())
			}
			if failed == nil {
				fail(l.file.close())
			}

		case <-ticker.C:
			if failed != nil {
				break
			}
			fail(l.syncPending())
			if failed == nil && l.file.needsRotation() {
				if l.cfg.skipEmptyFiles {
					fail(l.file.close())
				} else {
					fail(l.file.rotate())
				}
			}

		case <-flushTimer.C:
			flushArmed = false
			if failed == nil {
				fail(l.file.flush())
			}

		case m := <-l.msgs:
			if failed != nil {
				m.RequeueWithoutBackoff(0)
				break
			}
			if err := l.write(m); err != nil {
				m.RequeueWithoutBackoff(0) // unless it was already answered
				fail(err)
			}
		}

		if failed != nil || len(l.msgs) > 0 || len(l.pending) == 0 {
			continue
		}
		// Caught up with the messages received so far.
		if stopping || l.consumer.IsStarved() {
			fail(l.syncPending())
		} else if !flushArmed {
			flushTimer.Reset(flushDelay)
			flushArmed = true
		}
	}
}

// write writes m to the file, rotating first if needed, and syncs when
// --max-in-flight messages await a sync.
func (l *topicLogger) write(m *nsq.Message) error {
	if l.file.needsRotation() {
		if err := l.syncPending(); err != nil {
			return err
		}
		if err := l.file.rotate(); err != nil {
			return err
		}
	}
	if err := l.file.write(m.Body); err != nil {
		return err
	}
	l.pending = append(l.pending, m)
	if len(l.pending) >= l.cfg.maxInFlight {
		return l.syncPending()
	}
	return nil
}

// syncPending syncs the file and finishes the messages written to it.
func (l *topicLogger) syncPending() error {
	if len(l.pending) == 0 {
		return nil
	}
	l.logf(slog.LevelInfo, "%s syncing %d records to disk", l.file.tag, len(l.pending))
	if err := l.file.sync(); err != nil {
		return err
	}
	for i, m := range l.pending {
		m.Finish()
		l.pending[i] = nil
	}
	l.pending = l.pending[:0]
	return nil
}

// String names the logger in messages.
func (l *topicLogger) String() string { return fmt.Sprintf("[%s/%s]", l.topic, l.cfg.channel) }

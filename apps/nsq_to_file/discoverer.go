package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqio/go-nsq"
)

// nsqLogger is the logger and level given to go-nsq consumers.
type nsqLogger struct {
	logger *log.Logger
	level  nsq.LogLevel
}

// discoverer owns the topic loggers: the --topic ones, or those of the
// topics lookupd lists that match --topic-pattern, looked up at start and
// every --topic-refresh. Topics are never removed.
type discoverer struct {
	cfg       *config
	nsqCfg    *nsq.Config
	logf      logFunc
	nsqLogger nsqLogger
	host      string
	client    *http.Client

	hups map[string]chan struct{} // topic → its logger's SIGHUP channel
}

// run runs loggers until ctx ends, then waits for them to stop. hup
// delivers SIGHUP. It returns the first logger error or, for explicit
// --topic values, a consumer that cannot be created or connected.
func (d *discoverer) run(ctx context.Context, hup <-chan struct{}) error {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel below: loggers stop when ctx ends
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// start starts a logger for each new topic; a topic whose consumer
	// cannot be created or connected is left for the next refresh.
	start := func(topics []string) error {
		var errs []error
		for _, topic := range topics {
			if _, ok := d.hups[topic]; ok {
				continue
			}
			if !d.cfg.topicAllowed(topic) {
				d.logf(slog.LevelWarn, "skipping topic %s (doesn't match pattern %s)", topic, d.cfg.topicPattern)
				continue
			}
			l, err := newTopicLogger(topic, d.cfg, d.nsqCfg, d.logf, d.host, d.nsqLogger)
			if err == nil {
				err = l.connect()
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("couldn't create logger for new topic %s: %w", topic, err))
				continue
			}
			h := make(chan struct{}, 1)
			d.hups[topic] = h
			wg.Go(func() {
				if err := l.run(ctx, h); err != nil {
					cancel(err)
				}
			})
		}
		return errors.Join(errs...)
	}

	var refresh <-chan time.Time
	if len(d.cfg.topics) > 0 {
		if err := start(d.cfg.topics); err != nil {
			return err
		}
	} else {
		t := time.NewTicker(d.cfg.topicRefresh)
		defer t.Stop()
		refresh = t.C
		d.discover(ctx, start)
	}

	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		case <-refresh:
			d.discover(ctx, start)
		case <-hup:
			for _, h := range d.hups {
				select {
				case h <- struct{}{}:
				default: // one is already pending
				}
			}
		}
	}
}

// discover starts loggers for the topics lookupd knows. Failures are
// logged and retried at the next refresh.
func (d *discoverer) discover(ctx context.Context, start func([]string) error) {
	topics, err := lookupdTopics(ctx, d.client, d.cfg.lookupdHTTPAddrs)
	if err != nil {
		d.logf(slog.LevelError, "could not retrieve topic list: %s", err)
	}
	if err := start(topics); err != nil {
		d.logf(slog.LevelError, "%s", err)
	}
}

// lookupdTopics returns the union of GET /topics of every lookupd, sorted.
// It fails only when no lookupd answered.
func lookupdTopics(ctx context.Context, client *http.Client, addrs []string) ([]string, error) {
	var topics []string
	var errs []error
	for _, addr := range addrs {
		var resp struct {
			Topics []string `json:"topics"`
		}
		if err := apputil.GetJSON(ctx, client, apputil.HTTPURL(addr, "/topics"), &resp); err != nil {
			errs = append(errs, err)
			continue
		}
		topics = append(topics, resp.Topics...)
	}
	if len(errs) == len(addrs) && len(addrs) > 0 {
		return nil, fmt.Errorf("failed to query any nsqlookupd: %w", errors.Join(errs...))
	}
	slices.Sort(topics)
	return slices.Compact(topics), nil
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqclone/nsq/internal/version"
	"github.com/nsqio/go-nsq"
)

// Request modes of --mode.
const (
	modeAll           = iota // any other value: every address, in order
	modeRoundRobin           // round-robin
	modeHostPool             // hostpool: in turn, skipping failing hosts
	modeEpsilonGreedy        // epsilon-greedy: faster hosts get more requests
)

func parseMode(s string) int {
	switch s {
	case "round-robin":
		return modeRoundRobin
	case "hostpool":
		return modeHostPool
	case "epsilon-greedy":
		return modeEpsilonGreedy
	}
	return modeAll
}

// publisher is the message handler: it sends each message to the addresses
// as --mode says. An error makes go-nsq requeue the message with backoff.
// It runs on --n goroutines at once.
type publisher struct {
	client      *http.Client
	get         bool // --get, else --post
	addrs       []string
	mode        int
	contentType string
	header      http.Header // --header values plus User-Agent
	sample      float64

	counter atomic.Uint64
	pool    *apputil.HostPool

	perAddr map[string]*apputil.TimerMetrics // read-only after newPublisher
	all     *apputil.TimerMetrics
}

func newPublisher(c *config, client *http.Client, logf func(string, ...any)) *publisher {
	p := &publisher{
		client:      client,
		get:         len(c.getAddrs) > 0,
		addrs:       c.postAddrs,
		mode:        parseMode(c.mode),
		contentType: c.contentType,
		header:      c.header.Clone(),
		sample:      c.sample,
		perAddr:     map[string]*apputil.TimerMetrics{},
		all:         apputil.NewTimerMetrics(c.statusEvery, "[aggregate]:", logf),
	}
	if p.get {
		p.addrs = c.getAddrs
	}
	p.header.Set("User-Agent", fmt.Sprintf("%s v%s", tool, version.Binary))
	if p.mode == modeEpsilonGreedy {
		p.pool = apputil.NewEpsilonGreedyHostPool(p.addrs)
	} else {
		p.pool = apputil.NewHostPool(p.addrs)
	}
	for _, a := range p.addrs {
		p.perAddr[a] = apputil.NewTimerMetrics(c.statusEvery, fmt.Sprintf("[%s]:", a), logf)
	}
	return p
}

// HandleMessage implements nsq.Handler.
func (p *publisher) HandleMessage(m *nsq.Message) error {
	if p.sample < 1.0 && rand.Float64() > p.sample {
		return nil // not sampled: finished without a request
	}
	start := time.Now()
	switch p.mode {
	case modeRoundRobin:
		// The first message goes to the first address.
		addr := p.addrs[(p.counter.Add(1)-1)%uint64(len(p.addrs))]
		if err := p.send(addr, m.Body); err != nil {
			return err
		}
	case modeHostPool, modeEpsilonGreedy:
		addr := p.pool.Get()
		sent := time.Now()
		err := p.send(addr, m.Body)
		p.pool.Mark(addr, time.Since(sent), err)
		if err != nil {
			return err
		}
	default:
		for _, addr := range p.addrs {
			if err := p.send(addr, m.Body); err != nil {
				return err
			}
		}
	}
	p.all.Status(start)
	return nil
}

// send makes one request and reports whether it succeeded (any 2xx).
func (p *publisher) send(addr string, body []byte) error {
	start := time.Now()
	var req *http.Request
	var err error
	if p.get {
		req, err = http.NewRequestWithContext(context.Background(), http.MethodGet, getURL(addr, body), nil)
	} else {
		req, err = http.NewRequestWithContext(context.Background(), http.MethodPost, addr, bytes.NewReader(body))
	}
	if err != nil {
		return err
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	if !p.get {
		req.Header.Set("Content-Type", p.contentType)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	// Read (a bounded part of) the body so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("got status code %d", resp.StatusCode)
	}
	p.perAddr[addr].Status(start)
	return nil
}

// getURL substitutes the query-escaped body for the "%s" of a --get address
// and "%%" by "%", as printf would; any other "%" is kept as it is (NSQ's
// printf turned "%20" and the like into garbage).
func getURL(format string, body []byte) string {
	var b strings.Builder
	b.Grow(len(format) + 3*len(body))
	for i := 0; i < len(format); i++ {
		if format[i] == '%' && i+1 < len(format) {
			switch format[i+1] {
			case 's':
				b.WriteString(url.QueryEscape(string(body)))
				i++
				continue
			case '%':
				b.WriteByte('%')
				i++
				continue
			}
		}
		b.WriteByte(format[i])
	}
	return b.String()
}

// countVerbs counts the "%s" of a --get address as getURL reads it.
func countVerbs(format string) int {
	n := 0
	for i := 0; i+1 < len(format); i++ {
		if format[i] == '%' {
			if format[i+1] == 's' {
				n++
			}
			if format[i+1] == 's' || format[i+1] == '%' {
				i++
			}
		}
	}
	return n
}

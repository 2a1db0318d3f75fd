// Command nsq_stat polls the stats of one topic/channel across every nsqd
// that has the topic and prints a table row per interval: rates, depths and
// counters summed over the nodes.
//
// It exits 0 after --count rows or on SIGHUP/SIGINT/SIGTERM, 1 on a
// start-up or polling error, 2 on a bad flag.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqclone/nsq/internal/options"
)

const tool = "nsq_stat"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := run(ctx, os.Args[0], os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// count is the --count flag: unset means unlimited.
type count struct {
	set   bool
	value int
}

func (c *count) Set(s string) error {
	v, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return errors.New("parse error")
	}
	c.set, c.value = true, int(v)
	return nil
}

func (c *count) String() string {
	if c == nil || !c.set {
		return ""
	}
	return strconv.Itoa(c.value)
}

// config is nsq_stat's command line.
type config struct {
	showVersion      bool
	topic            string
	channel          string
	interval         time.Duration
	count            count
	connectTimeout   time.Duration
	requestTimeout   time.Duration
	nsqdHTTPAddrs    options.StringList
	lookupdHTTPAddrs options.StringList
}

func newFlagSet(name string, c *config) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.BoolVar(&c.showVersion, "version", false, "print version")
	fs.StringVar(&c.topic, "topic", "", "NSQ topic")
	fs.StringVar(&c.channel, "channel", "", "NSQ channel")
	fs.DurationVar(&c.interval, "interval", 2*time.Second, "duration of time between polling/printing output")
	fs.DurationVar(&c.connectTimeout, "http-client-connect-timeout", 2*time.Second, "timeout for HTTP connect")
	fs.DurationVar(&c.requestTimeout, "http-client-request-timeout", 5*time.Second, "timeout for HTTP request")
	fs.Var(&c.count, "count", "number of reports")
	fs.Var(&c.nsqdHTTPAddrs, "nsqd-http-address", "nsqd HTTP address (may be given multiple times)")
	fs.Var(&c.lookupdHTTPAddrs, "lookupd-http-address", "lookupd HTTP address (may be given multiple times)")
	return fs
}

// validate checks the command line in NSQ's order and returns the first
// problem.
func (c *config) validate() error {
	switch {
	case c.topic == "" || c.channel == "":
		return errors.New("--topic and --channel are required")
	case c.interval <= 0:
		return errors.New("--interval should be positive")
	case c.connectTimeout <= 0:
		return errors.New("--http-client-connect-timeout should be positive")
	case c.requestTimeout <= 0:
		return errors.New("--http-client-request-timeout should be positive")
	case c.count.set && c.count.value <= 0:
		return errors.New("--count should be positive")
	}
	if err := apputil.CheckSources("nsqd-http-address", c.nsqdHTTPAddrs, c.lookupdHTTPAddrs); err != nil {
		return err
	}
	for _, a := range c.nsqdHTTPAddrs {
		if strings.Contains(a, "://") {
			return errors.New("--nsqd-http-address error - address should not contain scheme")
		}
	}
	for _, a := range c.lookupdHTTPAddrs {
		if strings.Contains(a, "://") {
			return errors.New("--lookupd-http-address error - address should not contain scheme")
		}
	}
	return nil
}

func run(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	var c config
	logger, code, ok := apputil.Start(newFlagSet(name, &c), args, tool, &c.showVersion, c.validate, stdout, stderr)
	if !ok {
		return code
	}
	p := &poller{
		client:       apputil.NewHTTPClient(c.connectTimeout, c.requestTimeout, 2),
		topic:        c.topic,
		channel:      c.channel,
		nsqdAddrs:    apputil.Dedupe(c.nsqdHTTPAddrs),
		lookupdAddrs: apputil.Dedupe(c.lookupdHTTPAddrs),
		warnf:        logger.Printf,
	}
	rows := -1 // unlimited
	if c.count.set {
		rows = c.count.value
	}
	if err := statLoop(ctx, p, c.interval, rows, stdout); err != nil {
		logger.Print(err)
		return 1
	}
	return 0
}

// statLoop polls every interval and prints a row per poll after the first,
// which only records a baseline, until rows rows were printed (never, if
// rows < 0) or ctx ends. The header is printed before the first row and
// again every 25 polls.
func statLoop(ctx context.Context, p *poller, interval time.Duration, rows int, w io.Writer) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var prev *channelStats
	for i := 0; rows < 0 || i <= rows; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-ticker.C:
			}
		}
		cur, err := p.poll(ctx)
		if ctx.Err() != nil {
			return nil // interrupted mid-poll
		}
		if err != nil {
			return err
		}
		if i%25 == 0 {
			io.WriteString(w, header)
		}
		if prev != nil {
			io.WriteString(w, formatRow(prev, cur, interval))
		}
		prev = cur
	}
	return nil
}

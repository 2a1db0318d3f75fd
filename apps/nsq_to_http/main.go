// Command nsq_to_http consumes one topic/channel and performs an HTTP request
// per message: a GET with the body in the URL, or a POST with the body as
// request body, to one or more addresses. A failed request requeues the
// message (with go-nsq's backoff).
//
// It exits 0 after SIGINT/SIGTERM once its consumer has stopped, 1 on a
// start-up error, 2 on a bad flag.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqio/go-nsq"
)

const (
	tool               = "nsq_to_http"
	defaultContentType = "application/octet-stream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[0], os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is nsq_to_http's command line.
type config struct {
	showVersion bool

	topic            string
	channel          string
	maxInFlight      int
	nsqdTCPAddrs     options.StringList
	lookupdHTTPAddrs options.StringList
	consumerCfg      *nsq.Config

	getAddrs       options.StringList
	postAddrs      options.StringList
	contentType    string
	headers        options.StringList
	mode           string
	numPublishers  int
	sample         float64
	statusEvery    int
	connectTimeout time.Duration
	requestTimeout time.Duration

	// Derived by validate.
	header http.Header
}

func newFlagSet(name string, c *config) *flag.FlagSet {
	c.consumerCfg = nsq.NewConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.BoolVar(&c.showVersion, "version", false, "print version string")
	fs.StringVar(&c.topic, "topic", "", "nsq topic")
	fs.StringVar(&c.channel, "channel", "nsq_to_http", "nsq channel")
	fs.IntVar(&c.maxInFlight, "max-in-flight", 200, "max number of messages to allow in flight")
	fs.Var(&c.nsqdTCPAddrs, "nsqd-tcp-address", "nsqd TCP address (may be given multiple times)")
	fs.Var(&c.lookupdHTTPAddrs, "lookupd-http-address", "lookupd HTTP address (may be given multiple times)")
	fs.Var(apputil.ConfigFlag{Config: c.consumerCfg}, "consumer-opt", "option to passthrough to nsq.Consumer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)")

	fs.Var(&c.getAddrs, "get", "HTTP address to make a GET request to. '%s' will be printf replaced with data (may be given multiple times)")
	fs.Var(&c.postAddrs, "post", "HTTP address to make a POST request to.  data will be in the body (may be given multiple times)")
	fs.StringVar(&c.contentType, "content-type", defaultContentType, "the Content-Type used for POST requests")
	fs.Var(&c.headers, "header", "Custom header for HTTP requests (may be given multiple times)")
	fs.StringVar(&c.mode, "mode", "hostpool", "the upstream request mode options: round-robin, hostpool (default), epsilon-greedy")
	fs.IntVar(&c.numPublishers, "n", 100, "number of concurrent publishers")
	fs.Float64Var(&c.sample, "sample", 1.0, "% of messages to publish (float b/w 0 -> 1)")
	fs.IntVar(&c.statusEvery, "status-every", 250, "the # of requests between logging status (per handler), 0 disables")
	fs.DurationVar(&c.connectTimeout, "http-client-connect-timeout", 2*time.Second, "timeout for HTTP connect")
	fs.DurationVar(&c.requestTimeout, "http-client-request-timeout", 20*time.Second, "timeout for HTTP request")
	return fs
}

// validate checks the command line in NSQ's order and returns the first
// problem.
func (c *config) validate() error {
	if c.topic == "" || c.channel == "" {
		return errors.New("--topic and --channel are required")
	}
	if c.contentType != defaultContentType && len(c.postAddrs) == 0 {
		return errors.New("--content-type only used with --post")
	}
	if err := apputil.CheckSources("nsqd-tcp-address", c.nsqdTCPAddrs, c.lookupdHTTPAddrs); err != nil {
		return err
	}
	switch {
	case len(c.getAddrs) == 0 && len(c.postAddrs) == 0:
		return errors.New("--get or --post required")
	case len(c.getAddrs) > 0 && len(c.postAddrs) > 0:
		return errors.New("use --get or --post not both")
	}
	for _, get := range c.getAddrs {
		if countVerbs(get) != 1 {
			return errors.New("invalid GET address - must be a printf string")
		}
	}
	if c.sample > 1.0 || c.sample < 0.0 {
		return errors.New("ERROR: --sample must be between 0.0 and 1.0")
	}
	switch {
	case c.numPublishers < 1:
		return errors.New("--n should be positive")
	case c.connectTimeout <= 0:
		return errors.New("--http-client-connect-timeout should be positive")
	case c.requestTimeout <= 0:
		return errors.New("--http-client-request-timeout should be positive")
	}
	c.header = http.Header{}
	for _, h := range c.headers {
		k, v, ok := strings.Cut(h, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return errors.New("--header value format should be 'key=value'")
		}
		c.header.Add(k, v)
	}
	return nil
}

func run(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	var c config
	logger, code, ok := apputil.Start(newFlagSet(name, &c), args, tool, &c.showVersion, c.validate, stdout, stderr)
	if !ok {
		return code
	}
	c.consumerCfg.UserAgent = apputil.UserAgent(tool)
	c.consumerCfg.MaxInFlight = c.maxInFlight

	consumer, err := nsq.NewConsumer(c.topic, c.channel, c.consumerCfg)
	if err != nil {
		logger.Print(err)
		return 1
	}
	pub := newPublisher(&c, apputil.NewHTTPClient(c.connectTimeout, c.requestTimeout, c.numPublishers), logger.Printf)
	consumer.AddConcurrentHandlers(pub, c.numPublishers)
	if err := apputil.Connect(consumer, c.nsqdTCPAddrs, c.lookupdHTTPAddrs); err != nil {
		consumer.Stop()
		logger.Print(err)
		return 1
	}

	select {
	case <-consumer.StopChan:
		return 0
	case <-ctx.Done():
	}
	consumer.Stop()
	<-consumer.StopChan
	return 0
}

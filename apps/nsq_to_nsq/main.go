// Command nsq_to_nsq consumes topics from one set of nsqd and republishes
// their messages to destination nsqd, optionally filtering and trimming JSON
// bodies. A message is finished once its republication is acknowledged and
// requeued when it fails.
//
// It exits 0 after SIGINT/SIGTERM once its consumers have stopped and every
// publish was answered, 1 on a start-up error, 2 on a bad flag.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqio/go-nsq"
)

const tool = "nsq_to_nsq"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[0], os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is nsq_to_nsq's command line.
type config struct {
	showVersion bool

	topics           options.StringList
	channel          string
	maxInFlight      int
	nsqdTCPAddrs     options.StringList
	lookupdHTTPAddrs options.StringList
	consumerCfg      *nsq.Config

	destAddrs   options.StringList
	destTopic   string
	producerCfg *nsq.Config
	mode        string
	statusEvery int

	requireJSONField string
	requireJSONValue string
	whitelistFields  options.StringList
}

func newFlagSet(name string, c *config) *flag.FlagSet {
	c.consumerCfg = nsq.NewConfig()
	c.producerCfg = nsq.NewConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.BoolVar(&c.showVersion, "version", false, "print version string")
	fs.StringVar(&c.channel, "channel", "nsq_to_nsq", "nsq channel")
	fs.IntVar(&c.maxInFlight, "max-in-flight", 200, "max number of messages to allow in flight")
	fs.Var(&c.topics, "topic", "nsq topic (may be given multiple times)")
	fs.Var(&c.nsqdTCPAddrs, "nsqd-tcp-address", "nsqd TCP address (may be given multiple times)")
	fs.Var(&c.lookupdHTTPAddrs, "lookupd-http-address", "lookupd HTTP address (may be given multiple times)")
	fs.Var(apputil.ConfigFlag{Config: c.consumerCfg}, "consumer-opt", "option to passthrough to nsq.Consumer (may be given multiple times, see http://godoc.org/github.com/nsqio/go-nsq#Config)")

	fs.Var(&c.destAddrs, "destination-nsqd-tcp-address", "destination nsqd TCP address (may be given multiple times)")
	fs.StringVar(&c.destTopic, "destination-topic", "", "use this destination topic for all consumed topics (default is consumed topic name)")
	fs.Var(apputil.ConfigFlag{Config: c.producerCfg}, "producer-opt", "option to passthrough to nsq.Producer (may be given multiple times, see http://godoc.org/github.com/nsqio/go-nsq#Config)")
	fs.StringVar(&c.mode, "mode", "hostpool", "the upstream request mode options: round-robin, hostpool (default), epsilon-greedy")
	fs.IntVar(&c.statusEvery, "status-every", 250, "the # of requests between logging status (per destination), 0 disables")

	fs.StringVar(&c.requireJSONField, "require-json-field", "", "for JSON messages: only pass messages that contain this field")
	fs.StringVar(&c.requireJSONValue, "require-json-value", "", "for JSON messages: only pass messages in which the required field has this value")
	fs.Var(&c.whitelistFields, "whitelist-json-field", "for JSON messages: pass this field (may be given multiple times)")
	return fs
}

// validate checks the command line in NSQ's order and returns the first
// problem.
func (c *config) validate() error {
	if len(c.topics) == 0 || c.channel == "" {
		return errors.New("--topic and --channel are required")
	}
	for _, t := range c.topics {
		if !protocol.IsValidTopicName(t) {
			return errors.New("--topic is invalid")
		}
	}
	if c.destTopic != "" && !protocol.IsValidTopicName(c.destTopic) {
		return errors.New("--destination-topic is invalid")
	}
	if !protocol.IsValidChannelName(c.channel) {
		return errors.New("--channel is invalid")
	}
	if err := apputil.CheckSources("nsqd-tcp-address", c.nsqdTCPAddrs, c.lookupdHTTPAddrs); err != nil {
		return err
	}
	if len(c.destAddrs) == 0 {
		return errors.New("--destination-nsqd-tcp-address required")
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
	c.producerCfg.UserAgent = apputil.UserAgent(tool)

	destAddrs := apputil.Dedupe(c.destAddrs)
	producers := make(map[string]*nsq.Producer, len(destAddrs))
	for _, addr := range destAddrs {
		p, err := nsq.NewProducer(addr, c.producerCfg)
		if err != nil {
			logger.Printf("failed creating producer %s", err)
			return 1
		}
		producers[addr] = p
	}
	f := newForwarder(destAddrs, producers, parseMode(c.mode), newJSONFilter(c.requireJSONField, c.requireJSONValue, c.whitelistFields), c.statusEvery, logger.Printf)

	// The responder answers source messages as publishes complete; it runs
	// until every consumer and then every producer has stopped.
	var wg sync.WaitGroup
	wg.Go(f.respond)
	var consumers []*nsq.Consumer
	shutdown := func() {
		for _, cons := range consumers {
			cons.Stop()
		}
		for _, cons := range consumers {
			<-cons.StopChan
		}
		for _, p := range producers {
			p.Stop() // answers what is still pending with an error
		}
		close(f.responses)
		wg.Wait()
	}

	for _, topic := range c.topics {
		cons, err := nsq.NewConsumer(topic, c.channel, c.consumerCfg)
		if err != nil {
			logger.Print(err)
			shutdown()
			return 1
		}
		dest := topic
		if c.destTopic != "" {
			dest = c.destTopic
		}
		cons.AddConcurrentHandlers(f.handler(dest), len(destAddrs))
		if err := apputil.Connect(cons, c.nsqdTCPAddrs, c.lookupdHTTPAddrs); err != nil {
			cons.Stop()
			logger.Print(err)
			shutdown()
			return 1
		}
		consumers = append(consumers, cons)
	}

	<-ctx.Done()
	shutdown()
	return 0
}

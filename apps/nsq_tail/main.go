// Command nsq_tail prints the messages of one or more topics to stdout, one
// per line (optionally prefixed with "<topic> | "), finishing each once it
// is printed. It exits 0 after --n messages or on SIGINT/SIGTERM once its
// consumers have stopped, 1 on a start-up or write error, 2 on a bad flag.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqio/go-nsq"
)

const tool = "nsq_tail"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[0], os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is nsq_tail's command line.
type config struct {
	channel      string
	maxInFlight  int
	total        int
	printTopic   bool
	topics       options.StringList
	nsqdTCPAddrs options.StringList
	lookupdAddrs options.StringList
	consumerCfg  *nsq.Config
	showVersion  bool
}

func newFlagSet(name string, c *config) *flag.FlagSet {
	c.consumerCfg = nsq.NewConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.BoolVar(&c.showVersion, "version", false, "print version string")
	fs.StringVar(&c.channel, "channel", "", "NSQ channel")
	fs.IntVar(&c.maxInFlight, "max-in-flight", 200, "max number of messages to allow in flight")
	fs.IntVar(&c.total, "n", 0, "total messages to show (will wait if starved)")
	fs.BoolVar(&c.printTopic, "print-topic", false, "print topic name where message was received")
	fs.Var(&c.nsqdTCPAddrs, "nsqd-tcp-address", "nsqd TCP address (may be given multiple times)")
	fs.Var(&c.lookupdAddrs, "lookupd-http-address", "lookupd HTTP address (may be given multiple times)")
	fs.Var(&c.topics, "topic", "NSQ topic (may be given multiple times)")
	fs.Var(apputil.ConfigFlag{Config: c.consumerCfg}, "consumer-opt", "option to passthrough to nsq.Consumer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)")
	return fs
}

// validate checks the command line in NSQ's order and returns the first
// problem.
func (c *config) validate() error {
	if err := apputil.CheckSources("nsqd-tcp-address", c.nsqdTCPAddrs, c.lookupdAddrs); err != nil {
		return err
	}
	if len(c.topics) == 0 {
		return fmt.Errorf("--topic required")
	}
	return nil
}

func run(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	var c config
	validate := func() error {
		if c.channel == "" {
			c.channel = fmt.Sprintf("tail%06d#ephemeral", rand.IntN(1000000))
		}
		return c.validate()
	}
	logger, code, ok := apputil.Start(newFlagSet(name, &c), args, tool, &c.showVersion, validate, stdout, stderr)
	if !ok {
		return code
	}

	// Don't ask for more messages than we want.
	if c.total > 0 && c.total < c.maxInFlight {
		c.maxInFlight = c.total
	}
	c.consumerCfg.UserAgent = apputil.UserAgent(tool)
	c.consumerCfg.MaxInFlight = c.maxInFlight

	p := newPrinter(stdout, c.printTopic, c.total)
	var consumers []*nsq.Consumer
	stopAll := func() {
		for _, cons := range consumers {
			cons.Stop()
		}
		for _, cons := range consumers {
			<-cons.StopChan
		}
	}
	for _, topic := range c.topics {
		logger.Printf("Adding consumer for topic: %s", topic)
		cons, err := nsq.NewConsumer(topic, c.channel, c.consumerCfg)
		if err != nil {
			logger.Print(err)
			return 1
		}
		cons.AddHandler(p.handler(topic))
		if err := apputil.Connect(cons, c.nsqdTCPAddrs, c.lookupdAddrs); err != nil {
			cons.Stop()
			logger.Print(err)
			return 1
		}
		consumers = append(consumers, cons)
	}

	select {
	case <-ctx.Done():
	case <-p.done:
	case err := <-p.failed:
		// Unfinished messages go back to the channel when the process exits
		// and nsqd sees the connections close.
		logger.Printf("ERROR: failed to write to os.Stdout - %s", err)
		return 1
	}
	stopAll()
	return 0
}

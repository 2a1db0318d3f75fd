// Command to_nsq reads records from stdin, split on --delimiter, and
// publishes each to --topic on every --nsqd-tcp-address. It exits 0 at the
// end of its input or on SIGINT/SIGTERM once what it sent is acknowledged,
// 1 on a start-up or publish error, 2 on a bad flag.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqio/go-nsq"
)

const tool = "to_nsq"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[0], os.Args[1:], os.Stdin, os.Stderr)
	stop()
	os.Exit(code)
}

// config is to_nsq's command line.
type config struct {
	topic       string
	delimiter   string
	rate        int64
	nsqdAddrs   options.StringList
	producerCfg *nsq.Config
}

func newFlagSet(name string, c *config) *flag.FlagSet {
	c.producerCfg = nsq.NewConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.topic, "topic", "", "NSQ topic to publish to")
	fs.StringVar(&c.delimiter, "delimiter", "\n", "character to split input from stdin")
	fs.Int64Var(&c.rate, "rate", 0, "Throttle messages to n/second. 0 to disable")
	fs.Var(&c.nsqdAddrs, "nsqd-tcp-address", "destination nsqd TCP address (may be given multiple times)")
	fs.Var(apputil.ConfigFlag{Config: c.producerCfg}, "producer-opt", "option to passthrough to nsq.Producer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)")
	return fs
}

func (c *config) validate() error {
	switch {
	case c.topic == "":
		return errors.New("--topic required")
	case len(c.delimiter) != 1:
		return errors.New("--delimiter must be a single byte")
	case len(c.nsqdAddrs) == 0:
		return errors.New("--nsqd-tcp-address required")
	}
	return nil
}

func run(ctx context.Context, name string, args []string, stdin io.Reader, stderr io.Writer) int {
	var c config
	logger, code, ok := apputil.Start(newFlagSet(name, &c), args, tool, nil, c.validate, io.Discard, stderr)
	if !ok {
		return code
	}
	c.producerCfg.UserAgent = apputil.UserAgent(tool)

	var producers []*nsq.Producer
	defer func() {
		for _, p := range producers {
			p.Stop()
		}
	}()
	for _, addr := range apputil.Dedupe(c.nsqdAddrs) {
		p, err := nsq.NewProducer(addr, c.producerCfg)
		if err != nil {
			logger.Printf("failed to create nsq.Producer - %s", err)
			return 1
		}
		producers = append(producers, p)
	}

	var limit *bucket
	if c.rate > 0 {
		logger.Printf("Throttling messages rate to max:%d/second", c.rate)
		limit = newBucket(c.rate)
	}

	// The reader blocks in stdin, which cannot be interrupted: on a signal it
	// is left behind and ends with the process.
	records := make(chan []byte, 256)
	readErr := make(chan error, 1)
	go func() {
		readErr <- readRecords(bufio.NewReaderSize(stdin, 64<<10), c.delimiter[0], records)
		close(records)
	}()

	pub := newPublisher(c.topic, producers)
	err := pub.run(ctx, records, limit)
	if err == nil {
		select {
		case err = <-readErr:
		default: // interrupted before the end of the input
		}
	}
	if err != nil {
		logger.Print(err)
		return 1
	}
	return 0
}

// readRecords sends every non-empty record of r, split on delim, to out. The
// delimiter is removed; a final record without one is sent whole. It returns
// nil at the end of the input.
func readRecords(r *bufio.Reader, delim byte, out chan<- []byte) error {
	for {
		rec, err := r.ReadBytes(delim)
		if len(rec) > 0 && rec[len(rec)-1] == delim {
			rec = rec[:len(rec)-1]
		}
		if len(rec) > 0 {
			out <- rec
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
	}
}

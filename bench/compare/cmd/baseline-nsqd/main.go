// Command baseline-nsqd is NSQ 1.3.0's nsqd, built from the module proxy, for
// bench-compare to measure our nsqd against. It takes only the flags the
// scenarios need and keeps NSQ's defaults for everything else.
//
// It starts the way NSQ's own apps/nsqd does (LoadMetadata, PersistMetadata,
// Main) and exits on SIGINT or SIGTERM via Exit.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsqio/nsq/nsqd"
)

func main() {
	opts := nsqd.NewOptions()
	fs := flag.NewFlagSet("baseline-nsqd", flag.ExitOnError)
	fs.StringVar(&opts.TCPAddress, "tcp-address", opts.TCPAddress, "<addr>:<port> to listen on for TCP clients")
	fs.StringVar(&opts.HTTPAddress, "http-address", opts.HTTPAddress, "<addr>:<port> to listen on for HTTP clients")
	fs.StringVar(&opts.DataPath, "data-path", opts.DataPath, "directory for disk-backed queues and metadata")
	fs.Int64Var(&opts.MemQueueSize, "mem-queue-size", opts.MemQueueSize, "messages kept in memory per topic and per channel")
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fatalf("unexpected arguments: %q", fs.Args())
	}

	n, err := nsqd.New(opts)
	if err != nil {
		fatalf("nsqd.New: %v", err)
	}
	if err := n.LoadMetadata(); err != nil {
		fatalf("LoadMetadata: %v", err)
	}
	if err := n.PersistMetadata(); err != nil {
		fatalf("PersistMetadata: %v", err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- n.Main() }()

	select {
	case <-sig:
		n.Exit()
	case err := <-done:
		n.Exit()
		if err != nil {
			fatalf("nsqd: %v", err)
		}
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "baseline-nsqd: "+format+"\n", args...)
	os.Exit(1)
}

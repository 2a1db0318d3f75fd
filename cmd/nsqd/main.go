// Command nsqd is the NSQ messaging daemon. It reads its flags and --config
// file, runs an nsqd.NSQD until SIGINT or SIGTERM and exits 0, or 1 when
// start-up or a listener fails (2 for a bad command line).
//
// With --sigterm-mode=drain (not in NSQ) the first SIGTERM starts a drain
// instead: the daemon exits 0 once consumers have emptied every channel (or
// after --drain-timeout, keeping what is left). A second SIGTERM, or a
// SIGINT, shuts down cleanly at once.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/nsqd"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	code := runWithSignals(sigs, os.Args[1:], os.Stdout, os.Stderr)
	signal.Stop(sigs)
	os.Exit(code)
}

// runWithSignals is run with the daemon's context ended by the signals
// received on sigs, as --sigterm-mode says.
func runWithSignals(sigs <-chan os.Signal, args []string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var daemon atomic.Pointer[nsqd.NSQD]
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { handleSignals(sigs, done, cancel, &daemon) })
	code := runDaemon(ctx, args, stdout, stderr, &daemon)
	close(done)
	wg.Wait()
	return code
}

// handleSignals turns signals into a drain or a clean shutdown (cancel)
// until done is closed. Only a SIGTERM to a running daemon started with
// --sigterm-mode=drain that is not draining yet starts a drain.
func handleSignals(sigs <-chan os.Signal, done <-chan struct{}, cancel func(), daemon *atomic.Pointer[nsqd.NSQD]) {
	for {
		select {
		case sig := <-sigs:
			n := daemon.Load()
			if sig == syscall.SIGTERM && n != nil && n.Options().SigtermMode == nsqd.SigtermDrain && n.Drain() {
				continue
			}
			cancel()
		case <-done:
			return
		}
	}
}

// run is nsqd's main with its exit status as result: it returns when ctx
// ends and the daemon has shut down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runDaemon(ctx, args, stdout, stderr, new(atomic.Pointer[nsqd.NSQD]))
}

// runDaemon is run; the daemon, once built, is stored in daemon.
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer, daemon *atomic.Pointer[nsqd.NSQD]) int {
	opts := nsqd.NewOptions()
	return options.Main(ctx, options.MainSpec{
		Name:    "nsqd",
		FlagSet: nsqdFlagSet(opts),
		Options: opts,
		Logging: func() (string, nsqlog.Level) { return opts.LogPrefix, opts.LogLevel },
		Prepare: func(io.Writer) {
			// A client-certificate policy implies TLS is required.
			if opts.TLSClientAuthPolicy != "" && opts.TLSRequired == nsqd.TLSNotRequired {
				opts.TLSRequired = nsqd.TLSRequired
			}
			// opts.Logger stays nil: nsqd then builds its own logger, whose
			// level PUT /config/log_level can change.
		},
		New: func() (options.Daemon, error) {
			n, err := nsqd.New(opts)
			if err != nil {
				return nil, err
			}
			daemon.Store(n)
			return n, nil
		},
	}, args, stdout, stderr)
}

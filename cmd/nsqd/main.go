// Command nsqd is the NSQ messaging daemon. It reads its flags and --config
// file, runs an nsqd.NSQD until SIGINT or SIGTERM and exits 0, or 1 when
// start-up or a listener fails (2 for a bad command line).
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/nsqd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is nsqd's main with its exit status as result: it returns when ctx
// ends and the daemon has shut down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
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
		New: func() (options.Daemon, error) { return nsqd.New(opts) },
	}, args, stdout, stderr)
}

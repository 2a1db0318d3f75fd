// Command nsqadmin is NSQ's cluster web UI. It reads its flags and --config
// file, runs an nsqadmin.NSQAdmin until SIGINT or SIGTERM and exits 0, or 1
// when start-up or the listener fails (2 for a bad command line).
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/nsqadmin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is nsqadmin's main with its exit status as result: it returns when ctx
// ends and the daemon has shut down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts := nsqadmin.NewOptions()
	return options.Main(ctx, options.MainSpec{
		Name:    "nsqadmin",
		FlagSet: adminFlagSet(opts),
		Options: opts,
		Logging: func() (string, nsqlog.Level) { return opts.LogPrefix, opts.LogLevel },
		Prepare: func(stderr io.Writer) {
			// opts.Logger stays nil unless stderr is not the process's:
			// nsqadmin then builds its own logger, whose level
			// PUT /config/log_level changes.
			if stderr != os.Stderr {
				opts.Logger = nsqlog.New(stderr, opts.LogPrefix, opts.LogLevel.Slog())
			}
		},
		New: func() (options.Daemon, error) { return nsqadmin.New(opts) },
	}, args, stdout, stderr)
}

// Command nsqadmin is NSQ's cluster web UI. It reads its flags and --config
// file, runs an nsqadmin.NSQAdmin until SIGINT or SIGTERM and exits 0, or 1
// when start-up or the listener fails (2 for a bad command line).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/internal/version"
	"github.com/nsqclone/nsq/nsqadmin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is nsqadmin's main with its exit status as result: it returns when
// ctx ends and the daemon has shut down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts := nsqadmin.NewOptions()
	fs := adminFlagSet(opts)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil { // the flag package has printed why
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.Lookup("version").Value.(flag.Getter).Get().(bool) {
		fmt.Fprintln(stdout, version.String("nsqadmin"))
		return 0
	}

	if err := options.Resolve(opts, fs, fs.Lookup("config").Value.String()); err != nil {
		fatal(ctx, stderr, opts, err.Error()) // opts still holds the defaults
		return 1
	}
	// opts.Logger stays nil unless stderr is not the process's: nsqadmin
	// then builds its own logger, whose level PUT /config/log_level changes.
	if stderr != os.Stderr {
		opts.Logger = nsqlog.New(stderr, opts.LogPrefix, opts.LogLevel.Slog())
	}

	a, err := nsqadmin.New(opts)
	if err != nil {
		fatal(ctx, stderr, opts, "failed to instantiate nsqadmin - "+err.Error())
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fatal(ctx, stderr, opts, err.Error())
		return 1
	}
	return 0
}

// fatal writes msg as an NSQ FATAL line with the configured prefix.
func fatal(ctx context.Context, w io.Writer, opts *nsqadmin.Options, msg string) {
	nsqlog.New(w, opts.LogPrefix, opts.LogLevel.Slog()).Log(ctx, nsqlog.LevelFatal, msg)
}

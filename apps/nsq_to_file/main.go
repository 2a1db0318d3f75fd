// Command nsq_to_file consumes topics and writes their message bodies, one
// per line, to files: one current file per topic, named by
// --filename-format, optionally gzipped, rotated by time, size or name, and
// moved from --work-dir to --output-dir when finished. A message is finished
// only once it is synced to disk.
//
// It exits 0 after SIGINT/SIGTERM once its consumers have stopped and its
// files are synced and closed, 1 on a start-up, write or sync error, 2 on a
// bad flag. SIGHUP syncs and closes the current files.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqio/go-nsq"
)

const tool = "nsq_to_file"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	sighup := make(chan os.Signal, 1)
	signal.Notify(sighup, syscall.SIGHUP)
	hup := make(chan struct{})
	go func() { // ends with the process
		for range sighup {
			hup <- struct{}{}
		}
	}()
	code := run(ctx, os.Args[1:], hup, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is nsq_to_file's main; hup delivers SIGHUP.
func run(ctx context.Context, args []string, hup <-chan struct{}, stdout, stderr io.Writer) int {
	var c config
	fs := newFlagSet(&c)
	fs.SetOutput(stderr)
	if code, ok := apputil.ParseFlags(fs, args); !ok {
		return code
	}
	std := apputil.NewLogger(stderr)
	if fs.NArg() > 0 {
		std.Printf("unknown arguments: %s", fs.Args())
		return 1
	}
	if c.showVersion {
		fmt.Fprintln(stdout, apputil.VersionLine(tool))
		return 0
	}
	if err := c.validate(); err != nil {
		std.Print(err)
		return 1
	}
	c.consumerCfg.UserAgent = apputil.UserAgent(tool)
	c.consumerCfg.MaxInFlight = c.maxInFlight

	logger := nsqlog.New(stderr, c.logPrefix, c.level.Slog())
	logf := func(level slog.Level, format string, args ...any) {
		if logger.Enabled(context.Background(), level) {
			logger.Log(context.Background(), level, fmt.Sprintf(format, args...))
		}
	}
	d := &discoverer{
		cfg:       &c,
		nsqCfg:    c.consumerCfg,
		logf:      logf,
		nsqLogger: nsqLogger{log.New(stderr, "", log.LstdFlags), nsqLevel(c.level)},
		host:      hostIdentifier(c.hostIdentifier, localHostname()),
		client:    apputil.NewHTTPClient(c.httpConnectTimeout, c.httpRequestTimeout, 2),
		hups:      map[string]chan struct{}{},
	}
	if err := d.run(ctx, hup); err != nil {
		logger.Log(context.Background(), nsqlog.LevelFatal, err.Error())
		return 1
	}
	return 0
}

// nsqLevel maps --log-level to go-nsq's levels for its consumers' lines.
func nsqLevel(l nsqlog.Level) nsq.LogLevel {
	switch l {
	case nsqlog.Debug:
		return nsq.LogLevelDebug
	case nsqlog.Info:
		return nsq.LogLevelInfo
	case nsqlog.Warn:
		return nsq.LogLevelWarning
	}
	return nsq.LogLevelError
}

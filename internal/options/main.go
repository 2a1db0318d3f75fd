package options

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/version"
)

// Daemon is what a daemon's main runs.
type Daemon interface {
	Run(context.Context) error
}

// MainSpec describes one daemon's main for Main.
type MainSpec struct {
	Name    string        // "nsqd": the --version line and "failed to instantiate <name>"
	FlagSet *flag.FlagSet // every flag, including -version and -config
	Options any           // pointer to the options the flags fill
	// Logging reads the log prefix and level from Options once they are
	// resolved (for FATAL lines).
	Logging func() (prefix string, level nsqlog.Level)
	// Prepare derives settings after resolution; it may be nil.
	Prepare func(stderr io.Writer)
	New     func() (Daemon, error)
}

// Main is the body of a daemon's main: parse args, answer --version, resolve
// --config into the options, build the daemon and run it until ctx ends. It
// returns the exit status: 0, 1 after a start-up or runtime failure (logged
// as an NSQ FATAL line), 2 for a bad command line (the flag package has
// printed why).
func Main(ctx context.Context, s MainSpec, args []string, stdout, stderr io.Writer) int {
	fs := s.FlagSet
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if v, ok := fs.Lookup("version").Value.(flag.Getter); ok && v.Get() == true {
		fmt.Fprintln(stdout, version.String(s.Name))
		return 0
	}
	fatal := func(msg string) int {
		prefix, level := s.Logging()
		nsqlog.New(stderr, prefix, level.Slog()).Log(ctx, nsqlog.LevelFatal, msg)
		return 1
	}
	if err := Resolve(s.Options, fs, fs.Lookup("config").Value.String()); err != nil {
		return fatal(err.Error()) // the options still hold the defaults
	}
	if s.Prepare != nil {
		s.Prepare(stderr)
	}
	d, err := s.New()
	if err != nil {
		return fatal("failed to instantiate " + s.Name + " - " + err.Error())
	}
	if err := d.Run(ctx); err != nil {
		return fatal(err.Error())
	}
	return 0
}

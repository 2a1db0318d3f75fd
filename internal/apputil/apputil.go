// Package apputil holds what NSQ's utilities (apps/nsq_tail, nsq_to_file,
// nsq_to_http, nsq_to_nsq, nsq_stat, to_nsq) share: start-up (Start), flag parsing with the
// flag package's exit codes, --consumer-opt/--producer-opt, the version line
// and go-nsq user agent, the "nsqd or lookupd" rule, a host pool, request
// timing summaries and an HTTP client for NSQ's JSON endpoints.
package apputil

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/nsqclone/nsq/internal/version"
	"github.com/nsqio/go-nsq"
)

// VersionLine returns the --version output of a utility: "nsq_tail v1.3.0".
func VersionLine(tool string) string { return fmt.Sprintf("%s v%s", tool, version.Binary) }

// UserAgent returns the user agent a utility sends in IDENTIFY:
// "nsq_tail/1.3.0 go-nsq/1.1.0".
func UserAgent(tool string) string {
	return fmt.Sprintf("%s/%s go-nsq/%s", tool, version.Binary, nsq.VERSION)
}

// NewLogger returns the logger a utility reports start-up errors and
// progress with: the standard log format ("2006/01/02 15:04:05 msg"), as
// NSQ's log.Fatal calls print.
func NewLogger(w io.Writer) *log.Logger { return log.New(w, "", log.LstdFlags) }

// ParseFlags parses args with fs, which must use flag.ContinueOnError. When
// ok is false the caller exits with code: 0 after -h/--help, 2 after a bad
// flag (the flag package has printed why and the usage).
func ParseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	default:
		return 2, false
	}
}

// Start does what every utility does first: it parses args with fs
// (printing usage and errors to stderr), prints the version line to stdout
// when showVersion is set after parsing, and runs validate, logging its
// error. When ok is false the caller exits with code.
func Start(fs *flag.FlagSet, args []string, tool string, showVersion *bool, validate func() error, stdout, stderr io.Writer) (logger *log.Logger, code int, ok bool) {
	fs.SetOutput(stderr)
	if code, ok := ParseFlags(fs, args); !ok {
		return nil, code, false
	}
	if showVersion != nil && *showVersion {
		fmt.Fprintln(stdout, VersionLine(tool))
		return nil, 0, false
	}
	logger = NewLogger(stderr)
	if err := validate(); err != nil {
		logger.Print(err)
		return nil, 1, false
	}
	return logger, 0, true
}

// CheckSources applies the rule of the consuming utilities: nsqd addresses
// (flag --<nsqdFlag>) or lookupd HTTP addresses, exactly one of the two.
func CheckSources(nsqdFlag string, nsqdAddrs, lookupdAddrs []string) error {
	switch {
	case len(nsqdAddrs) == 0 && len(lookupdAddrs) == 0:
		return fmt.Errorf("--%s or --lookupd-http-address required", nsqdFlag)
	case len(nsqdAddrs) > 0 && len(lookupdAddrs) > 0:
		return fmt.Errorf("use --%s or --lookupd-http-address not both", nsqdFlag)
	}
	return nil
}

// Connect connects c to the nsqd TCP addresses, or else discovers producers
// through the lookupd HTTP addresses.
func Connect(c *nsq.Consumer, nsqdTCPAddrs, lookupdHTTPAddrs []string) error {
	if len(nsqdTCPAddrs) > 0 {
		return c.ConnectToNSQDs(nsqdTCPAddrs)
	}
	return c.ConnectToNSQLookupds(lookupdHTTPAddrs)
}

// ConfigFlag is the flag.Value of --consumer-opt and --producer-opt: each
// occurrence, "key,value" or just "key" (meaning true), sets the go-nsq
// Config option of that name (dial_timeout, max_attempts, tls_v1, ...) with
// go-nsq's own conversion and range checks.
type ConfigFlag struct {
	Config *nsq.Config
}

// Set implements flag.Value.
func (f ConfigFlag) Set(opt string) error {
	key, value, hasValue := strings.Cut(opt, ",")
	if !hasValue {
		return f.Config.Set(key, true)
	}
	return f.Config.Set(key, value)
}

// String implements flag.Value; options have no textual default.
func (f ConfigFlag) String() string { return "" }

// Dedupe returns addrs without repeated entries, first occurrence first.
func Dedupe(addrs []string) []string {
	seen := make(map[string]bool, len(addrs))
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

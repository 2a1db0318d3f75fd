package main

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqio/go-nsq"
)

// config is nsq_to_file's command line.
type config struct {
	showVersion bool
	logLevel    string
	logPrefix   string

	channel          string
	maxInFlight      int
	nsqdTCPAddrs     options.StringList
	lookupdHTTPAddrs options.StringList
	topics           options.StringList
	topicPattern     string
	topicRefresh     time.Duration
	consumerCfg      *nsq.Config

	httpConnectTimeout time.Duration
	httpRequestTimeout time.Duration

	outputDir      string
	workDir        string
	datetimeFormat string
	filenameFormat string
	hostIdentifier string
	gzip           bool
	gzipLevel      int
	skipEmptyFiles bool
	rotateSize     int64
	rotateInterval time.Duration
	syncInterval   time.Duration

	// Derived by validate.
	level   nsqlog.Level
	pattern *regexp.Regexp // nil: every topic
}

// newFlagSet returns nsq_to_file's flags. The set is named "nsqd", so --help
// prints "Usage of nsqd:" as NSQ's nsq_to_file does.
func newFlagSet(c *config) *flag.FlagSet {
	c.consumerCfg = nsq.NewConfig()
	fs := flag.NewFlagSet("nsqd", flag.ContinueOnError)
	fs.BoolVar(&c.showVersion, "version", false, "print version string")
	fs.StringVar(&c.logLevel, "log-level", "info", "set log verbosity: debug, info, warn, error, or fatal")
	fs.StringVar(&c.logPrefix, "log-prefix", "[nsq_to_file] ", "log message prefix")

	fs.StringVar(&c.channel, "channel", "nsq_to_file", "nsq channel")
	fs.IntVar(&c.maxInFlight, "max-in-flight", 200, "max number of messages to allow in flight")
	fs.Var(&c.nsqdTCPAddrs, "nsqd-tcp-address", "nsqd TCP address (may be given multiple times)")
	fs.Var(&c.lookupdHTTPAddrs, "lookupd-http-address", "lookupd HTTP address (may be given multiple times)")
	fs.Var(&c.topics, "topic", "nsq topic (may be given multiple times)")
	fs.StringVar(&c.topicPattern, "topic-pattern", "", "only log topics matching the following pattern")
	fs.DurationVar(&c.topicRefresh, "topic-refresh", time.Minute, "how frequently the topic list should be refreshed")
	fs.Var(apputil.ConfigFlag{Config: c.consumerCfg}, "consumer-opt", "option to passthrough to nsq.Consumer (may be given multiple times, http://godoc.org/github.com/nsqio/go-nsq#Config)")

	fs.DurationVar(&c.httpConnectTimeout, "http-client-connect-timeout", 2*time.Second, "timeout for HTTP connect")
	fs.DurationVar(&c.httpRequestTimeout, "http-client-request-timeout", 5*time.Second, "timeout for HTTP request")

	fs.StringVar(&c.outputDir, "output-dir", "/tmp", "directory to write output files to")
	fs.StringVar(&c.workDir, "work-dir", "", "directory for in-progress files before moving to output-dir")
	fs.StringVar(&c.datetimeFormat, "datetime-format", "%Y-%m-%d_%H", "strftime compatible format for <DATETIME> in filename format")
	fs.StringVar(&c.filenameFormat, "filename-format", "<TOPIC>.<HOST><REV>.<DATETIME>.log", "output filename format (<TOPIC>, <HOST>, <PID>, <DATETIME>, <REV> are replaced. <REV> is increased when file already exists)")
	fs.StringVar(&c.hostIdentifier, "host-identifier", "", "value to output in log filename in place of hostname. <SHORT_HOST> and <HOSTNAME> are valid replacement tokens")
	fs.BoolVar(&c.gzip, "gzip", false, "gzip output files.")
	fs.IntVar(&c.gzipLevel, "gzip-level", 6, "gzip compression level (1-9, 1=BestSpeed, 9=BestCompression)")
	fs.BoolVar(&c.skipEmptyFiles, "skip-empty-files", false, "skip writing empty files")
	fs.Int64Var(&c.rotateSize, "rotate-size", 0, "rotate the file when it grows bigger than `rotate-size` bytes")
	fs.DurationVar(&c.rotateInterval, "rotate-interval", 0, "rotate the file every duration")
	fs.DurationVar(&c.syncInterval, "sync-interval", 30*time.Second, "sync file to disk every duration")
	return fs
}

// validate checks the command line, in NSQ's order, and fills in the
// derived fields. It returns the first problem.
func (c *config) validate() error {
	level, err := nsqlog.ParseLevel(c.logLevel)
	if err != nil {
		return errors.New("--log-level is invalid")
	}
	c.level = level
	switch {
	case c.channel == "":
		return errors.New("--channel is required")
	case c.httpConnectTimeout <= 0:
		return errors.New("--http-client-connect-timeout should be positive")
	case c.httpRequestTimeout <= 0:
		return errors.New("--http-client-request-timeout should be positive")
	}
	if err := apputil.CheckSources("nsqd-tcp-address", c.nsqdTCPAddrs, c.lookupdHTTPAddrs); err != nil {
		return err
	}
	switch {
	case c.gzipLevel < 1 || c.gzipLevel > 9:
		return fmt.Errorf("invalid --gzip-level value (%d), should be 1-9", c.gzipLevel)
	case len(c.topics) == 0 && c.topicPattern == "":
		return errors.New("--topic or --topic-pattern required")
	case len(c.topics) == 0 && len(c.lookupdHTTPAddrs) == 0:
		return errors.New("--lookupd-http-address must be specified when no --topic specified")
	case c.syncInterval <= 0:
		return errors.New("--sync-interval should be positive")
	case len(c.topics) == 0 && c.topicRefresh <= 0:
		return errors.New("--topic-refresh should be positive")
	}
	if c.topicPattern != "" {
		re, err := regexp.Compile(c.topicPattern)
		if err != nil {
			return fmt.Errorf("invalid --topic-pattern %q - %s", c.topicPattern, err)
		}
		c.pattern = re
	}
	if c.workDir == "" {
		c.workDir = c.outputDir
	}
	if c.gzip && !strings.HasSuffix(c.filenameFormat, ".gz") {
		c.filenameFormat += ".gz"
	}
	if c.needsRev() {
		if !strings.Contains(c.filenameFormat, "<REV>") {
			return errors.New("missing <REV> in --filename-format when gzip, rotation, or work dir enabled")
		}
	} else {
		c.filenameFormat = strings.ReplaceAll(c.filenameFormat, "<REV>", "")
	}
	return nil
}

// needsRev reports whether file names need a revision number: when the
// same name can be opened more than once, or files are moved.
func (c *config) needsRev() bool {
	return c.gzip || c.rotateSize > 0 || c.rotateInterval > 0 || c.workDir != c.outputDir
}

// topicAllowed reports whether topic matches --topic-pattern.
func (c *config) topicAllowed(topic string) bool {
	return c.pattern == nil || c.pattern.MatchString(topic)
}

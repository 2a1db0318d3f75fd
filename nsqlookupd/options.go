package nsqlookupd

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
)

// Options configures an nsqlookupd. The struct tags name the command-line flag;
// the config-file key is the flag name with '_' for '-'. They are read by
// go-options (internal/options). Options are read-only once New has been
// called.
type Options struct {
	LogLevel  nsqlog.Level `flag:"log-level"`
	LogPrefix string       `flag:"log-prefix"`
	// Logger receives every log line; nil means a logger built from
	// LogLevel and LogPrefix writing to stderr.
	Logger *slog.Logger

	// TCPAddress and HTTPAddress are host:port; port 0 picks a free port.
	TCPAddress  string `flag:"tcp-address"`
	HTTPAddress string `flag:"http-address"`
	// BroadcastAddress is sent to nsqds in the IDENTIFY response; they call
	// GET /channels on BroadcastAddress:<HTTP port>.
	BroadcastAddress string `flag:"broadcast-address"`

	// InactiveProducerTimeout hides a producer from /lookup and /nodes when
	// its last IDENTIFY or PING is older than this.
	InactiveProducerTimeout time.Duration `flag:"inactive-producer-timeout"`
	// TombstoneLifetime is how long /topic/tombstone hides a producer of a
	// topic from /lookup.
	TombstoneLifetime time.Duration `flag:"tombstone-lifetime"`
}

// NewOptions returns NSQ 1.3's defaults.
func NewOptions() *Options {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "localhost"
	}
	return &Options{
		LogLevel:                nsqlog.Info,
		LogPrefix:               "[nsqlookupd] ",
		TCPAddress:              "0.0.0.0:4160",
		HTTPAddress:             "0.0.0.0:4161",
		BroadcastAddress:        hostname,
		InactiveProducerTimeout: 300 * time.Second,
		TombstoneLifetime:       45 * time.Second,
	}
}

// Validate reports every problem with the options at once. It does no I/O.
//
// NSQ accepts an empty address (net.Listen then picks a random port on every
// interface) and a zero or negative inactive-producer timeout (every producer
// is then always inactive, so /lookup is always empty); both are mistakes, so
// they are rejected here.
func (o *Options) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(o.TCPAddress); err != nil {
		errs = append(errs, errors.New("--tcp-address must be <addr>:<port>"))
	}
	if _, _, err := net.SplitHostPort(o.HTTPAddress); err != nil {
		errs = append(errs, errors.New("--http-address must be <addr>:<port>"))
	}
	if o.InactiveProducerTimeout <= 0 {
		errs = append(errs, errors.New("--inactive-producer-timeout must be > 0"))
	}
	if o.TombstoneLifetime < 0 {
		errs = append(errs, errors.New("--tombstone-lifetime must be >= 0"))
	}
	return errors.Join(errs...)
}

package nsqadmin

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
)

// Options configures an nsqadmin. The struct tags name the command-line flag
// and, where it is not the flag name with '_' for '-', the config-file key;
// they are read by go-options (internal/options) and by GET /config/:opt.
// Options are read-only once New has been called.
type Options struct {
	LogLevel  nsqlog.Level `flag:"log-level"`
	LogPrefix string       `flag:"log-prefix"`
	// Logger receives every log line; nil means a logger built from
	// LogLevel and LogPrefix writing to stderr (whose level PUT
	// /config/log_level then changes).
	Logger *slog.Logger

	HTTPAddress  string `flag:"http-address"`
	BasePath     string `flag:"base-path"`
	DevStaticDir string `flag:"dev-static-dir"`

	// Exactly one of the two lists is given.
	NSQLookupdHTTPAddresses []string `flag:"lookupd-http-address" cfg:"nsqlookupd_http_addresses"`
	NSQDHTTPAddresses       []string `flag:"nsqd-http-address" cfg:"nsqd_http_addresses"`

	HTTPClientConnectTimeout        time.Duration `flag:"http-client-connect-timeout"`
	HTTPClientRequestTimeout        time.Duration `flag:"http-client-request-timeout"`
	HTTPClientTLSInsecureSkipVerify bool          `flag:"http-client-tls-insecure-skip-verify"`
	HTTPClientTLSRootCAFile         string        `flag:"http-client-tls-root-ca-file"`
	HTTPClientTLSCert               string        `flag:"http-client-tls-cert"`
	HTTPClientTLSKey                string        `flag:"http-client-tls-key"`

	// Graphite and the statsd naming scheme of the nsqds feeding it.
	GraphiteURL         string        `flag:"graphite-url"`
	ProxyGraphite       bool          `flag:"proxy-graphite"`
	StatsdPrefix        string        `flag:"statsd-prefix"`
	StatsdCounterFormat string        `flag:"statsd-counter-format"`
	StatsdGaugeFormat   string        `flag:"statsd-gauge-format"`
	StatsdInterval      time.Duration `flag:"statsd-interval"`

	// Access control and auditing.
	AllowConfigFromCIDR      string   `flag:"allow-config-from-cidr"`
	NotificationHTTPEndpoint string   `flag:"notification-http-endpoint"`
	ACLHTTPHeader            string   `flag:"acl-http-header"`
	AdminUsers               []string `flag:"admin-user" cfg:"admin_users"`

	// Live charts without Graphite (not in NSQ): every StatsSampleInterval
	// (0 turns sampling off) the nsqds' stats are sampled, and the samples
	// of the last StatsSampleWindow are kept in memory.
	StatsSampleInterval time.Duration `flag:"stats-sample-interval"`
	StatsSampleWindow   time.Duration `flag:"stats-sample-window"`
}

// NewOptions returns NSQ 1.3's defaults, plus ours for the sampler.
func NewOptions() *Options {
	return &Options{
		LogLevel:                 nsqlog.Info,
		LogPrefix:                "[nsqadmin] ",
		HTTPAddress:              "0.0.0.0:4171",
		BasePath:                 "/",
		HTTPClientConnectTimeout: 2 * time.Second,
		HTTPClientRequestTimeout: 5 * time.Second,
		StatsdPrefix:             "nsq.%s",
		StatsdCounterFormat:      "stats.counters.%s.count",
		StatsdGaugeFormat:        "stats.gauges.%s",
		StatsdInterval:           60 * time.Second,
		AllowConfigFromCIDR:      "127.0.0.1/8",
		ACLHTTPHeader:            "X-Forwarded-User",
		StatsSampleInterval:      5 * time.Second,
		StatsSampleWindow:        10 * time.Minute,
	}
}

// Validate reports every problem of the options at once, with NSQ's
// messages. It does no I/O: New resolves the addresses.
func (o *Options) Validate() error {
	var errs []error
	switch {
	case len(o.NSQDHTTPAddresses) == 0 && len(o.NSQLookupdHTTPAddresses) == 0:
		errs = append(errs, errors.New("--nsqd-http-address or --lookupd-http-address required"))
	case len(o.NSQDHTTPAddresses) > 0 && len(o.NSQLookupdHTTPAddresses) > 0:
		errs = append(errs, errors.New("use --nsqd-http-address or --lookupd-http-address not both"))
	}
	if o.HTTPClientTLSKey != "" && o.HTTPClientTLSCert == "" {
		errs = append(errs, errors.New("--http-client-tls-key must be specified with --http-client-tls-cert"))
	}
	if o.HTTPClientTLSCert != "" && o.HTTPClientTLSKey == "" {
		errs = append(errs, errors.New("--http-client-tls-cert must be specified with --http-client-tls-key"))
	}
	if o.GraphiteURL != "" {
		if _, err := url.Parse(o.GraphiteURL); err != nil {
			errs = append(errs, fmt.Errorf("failed to parse --graphite-url (%s) - %w", o.GraphiteURL, err))
		}
	}
	if _, _, err := net.ParseCIDR(o.AllowConfigFromCIDR); err != nil {
		errs = append(errs, fmt.Errorf("failed to parse --allow-config-from-cidr (%s) - %w", o.AllowConfigFromCIDR, err))
	}
	if o.NotificationHTTPEndpoint != "" {
		if u, err := url.Parse(o.NotificationHTTPEndpoint); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("failed to parse --notification-http-endpoint (%s)", o.NotificationHTTPEndpoint))
		}
	}
	if o.StatsSampleInterval < 0 {
		errs = append(errs, fmt.Errorf("--stats-sample-interval (%v) must not be negative", o.StatsSampleInterval))
	}
	if o.StatsSampleInterval > 0 && o.StatsSampleWindow < 2*o.StatsSampleInterval {
		errs = append(errs, fmt.Errorf("--stats-sample-window (%v) must hold at least two samples of --stats-sample-interval (%v)",
			o.StatsSampleWindow, o.StatsSampleInterval))
	}
	return errors.Join(errs...)
}

// normalizeBasePath gives a base path a leading '/' and no trailing one
// ("" and "/" are "/", "admin/" is "/admin").
func normalizeBasePath(p string) string {
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return p
}

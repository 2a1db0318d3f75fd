package main

import (
	"flag"
	"slices"

	"github.com/nsqclone/nsq/internal/options"
	"github.com/nsqclone/nsq/nsqadmin"
)

// adminFlagSet defines every nsqadmin flag, NSQ's names with defaults taken
// from opts (nsqadmin.NewOptions), plus --stats-sample-interval and
// --stats-sample-window for the live charts. Parsing the set does not change
// opts: options.Resolve merges the flags with the config file afterwards.
// The set is ContinueOnError; main turns errors into NSQ's exit codes.
func adminFlagSet(opts *nsqadmin.Options) *flag.FlagSet {
	fs := flag.NewFlagSet("nsqadmin", flag.ContinueOnError)

	// Not options: handled by main or kept for old command lines.
	fs.Bool("version", false, "print the version and exit")
	fs.String("config", "", "path to a TOML config file")
	fs.Bool("verbose", false, "[deprecated] no effect; use --log-level")

	logLevel := opts.LogLevel
	fs.Var(&logLevel, "log-level", "log verbosity: debug, info, warn, error or fatal")
	fs.String("log-prefix", opts.LogPrefix, "text put at the start of every log line")

	fs.String("http-address", opts.HTTPAddress, "<addr>:<port> to listen on for HTTP clients")
	fs.String("base-path", opts.BasePath, "URL path prefix under which nsqadmin serves everything (behind a proxy)")
	fs.String("dev-static-dir", opts.DevStaticDir, "serve the UI's files from this directory instead of the built-in ones (development)")

	fs.Var(stringList(opts.NSQLookupdHTTPAddresses), "lookupd-http-address", "nsqlookupd HTTP address (repeatable)")
	fs.Var(stringList(opts.NSQDHTTPAddresses), "nsqd-http-address", "nsqd HTTP address (repeatable)")

	fs.Duration("http-client-connect-timeout", opts.HTTPClientConnectTimeout, "timeout of connecting to nsqd and nsqlookupd")
	fs.Duration("http-client-request-timeout", opts.HTTPClientRequestTimeout, "timeout of a whole request to nsqd and nsqlookupd")
	fs.Bool("http-client-tls-insecure-skip-verify", opts.HTTPClientTLSInsecureSkipVerify, "do not verify the certificates of HTTPS upstreams")
	fs.String("http-client-tls-root-ca-file", opts.HTTPClientTLSRootCAFile, "CA file to verify HTTPS upstreams with")
	fs.String("http-client-tls-cert", opts.HTTPClientTLSCert, "client certificate for HTTPS upstreams (with --http-client-tls-key)")
	fs.String("http-client-tls-key", opts.HTTPClientTLSKey, "client key for HTTPS upstreams (with --http-client-tls-cert)")

	fs.String("graphite-url", opts.GraphiteURL, "graphite HTTP address (enables Graphite graphs)")
	fs.Bool("proxy-graphite", opts.ProxyGraphite, "proxy Graphite requests through nsqadmin's /render")
	fs.String("statsd-prefix", opts.StatsdPrefix, "prefix of the nsqds' statsd keys (%s is the node); must match nsqd")
	fs.String("statsd-counter-format", opts.StatsdCounterFormat, "Graphite name of a statsd counter; %s is the key")
	fs.String("statsd-gauge-format", opts.StatsdGaugeFormat, "Graphite name of a statsd gauge; %s is the key")
	fs.Duration("statsd-interval", opts.StatsdInterval, "time between the nsqds' statsd pushes; must match nsqd")

	fs.String("allow-config-from-cidr", opts.AllowConfigFromCIDR, "CIDR range allowed to read and change /config")
	fs.String("notification-http-endpoint", opts.NotificationHTTPEndpoint, "URL to which a JSON event is POSTed after each admin action")
	fs.String("acl-http-header", opts.ACLHTTPHeader, "HTTP header naming the user, compared with --admin-user")
	fs.Var(stringList(opts.AdminUsers), "admin-user", "user allowed to run admin actions (repeatable; none: everyone)")

	fs.Duration("stats-sample-interval", opts.StatsSampleInterval, "how often the nsqds' stats are sampled for the live charts (0: off)")
	fs.Duration("stats-sample-window", opts.StatsSampleWindow, "how much sampled history the live charts keep")
	return fs
}

// stringList returns a repeatable flag starting from a copy of def.
func stringList(def []string) *options.StringList {
	l := options.StringList(slices.Clone(def))
	return &l
}

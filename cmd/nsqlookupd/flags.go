package main

import (
	"flag"

	"github.com/nsqclone/nsq/nsqlookupd"
)

// lookupdFlagSet defines every nsqlookupd flag, NSQ's names with defaults
// taken from opts (nsqlookupd.NewOptions). Parsing the set does not change
// opts: options.Resolve merges the flags with the config file afterwards.
// The set is ContinueOnError; main turns errors into NSQ's exit codes.
func lookupdFlagSet(opts *nsqlookupd.Options) *flag.FlagSet {
	fs := flag.NewFlagSet("nsqlookupd", flag.ContinueOnError)

	// Not options: handled by main or kept for old command lines.
	fs.Bool("version", false, "print the version and exit")
	fs.String("config", "", "path to a TOML config file")
	fs.Bool("verbose", false, "[deprecated] no effect; use --log-level")

	logLevel := opts.LogLevel
	fs.Var(&logLevel, "log-level", "log verbosity: debug, info, warn, error or fatal")
	fs.String("log-prefix", opts.LogPrefix, "text put at the start of every log line")

	fs.String("tcp-address", opts.TCPAddress, "<addr>:<port> to listen on for nsqd (V1 protocol) connections")
	fs.String("http-address", opts.HTTPAddress, "<addr>:<port> to listen on for HTTP clients")
	fs.String("broadcast-address", opts.BroadcastAddress, "address of this nsqlookupd given to nsqds, the OS hostname unless set")

	fs.Duration("inactive-producer-timeout", opts.InactiveProducerTimeout, "time a producer stays in /lookup and /nodes after its last ping")
	fs.Duration("tombstone-lifetime", opts.TombstoneLifetime, "time a tombstoned producer stays hidden from /lookup while still registered")
	return fs
}

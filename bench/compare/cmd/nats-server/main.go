// Command nats-server runs NATS server v2.15.3 (github.com/nats-io/nats-server/v2,
// from the module proxy) from a configuration file, for bench-compare's
// replicated scenarios (JetStream R3 beside our replica sets; see
// bench/README.md). Only the -c flag: the harness writes the file.
//
//	nats-server -c server.conf
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	conf := flag.String("c", "", "configuration file (required)")
	flag.Parse()
	if *conf == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	opts, err := server.ProcessConfigFile(*conf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats-server:", err)
		os.Exit(1)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats-server:", err)
		os.Exit(1)
	}
	s.ConfigureLogger()
	// Run starts the server; it handles SIGINT/SIGTERM (shutdown) itself.
	if err := server.Run(s); err != nil {
		fmt.Fprintln(os.Stderr, "nats-server:", err)
		os.Exit(1)
	}
	if !s.ReadyForConnections(30 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats-server: not ready for connections after 30s")
		os.Exit(1)
	}
	s.WaitForShutdown()
}

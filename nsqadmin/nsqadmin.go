package nsqadmin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqclone/nsq/internal/clusterinfo"
	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/version"
)

// NSQAdmin is the web UI daemon. Create it with New and run it once with Run.
type NSQAdmin struct {
	opts     *Options
	log      *slog.Logger
	levelVar *slog.LevelVar // nil when Options.Logger was given
	level    atomic.Int32   // nsqlog.Level, as GET /config/log_level reports it

	// lookupds are the lookupd HTTP addresses in use; PUT
	// /config/nsqlookupd_http_addresses replaces them.
	lookupds atomic.Pointer[[]string]

	basePath        string
	graphiteURL     *url.URL // nil without --graphite-url
	allowConfigFrom *net.IPNet
	hostname        string

	client   *clusterinfo.Client
	cluster  *clusterinfo.Cluster
	sampler  *sampler
	notifier *notifier

	// outbound posts notifications (with the --http-client-tls-* options),
	// graphite queries --graphite-url (with Go's TLS defaults); both with
	// the --http-client-*-timeout options, built once, their idle
	// connections closed at shutdown.
	outbound *http.Client
	graphite *http.Client

	listener net.Listener
	server   *http.Server
}

// New validates opts, resolves the upstream addresses, builds the HTTP client
// (with its TLS options) and binds the HTTP listener. It starts nothing.
func New(opts *Options) (*NSQAdmin, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	a := &NSQAdmin{opts: opts, basePath: normalizeBasePath(opts.BasePath)}
	a.level.Store(int32(opts.LogLevel))
	a.log = opts.Logger
	if a.log == nil {
		a.levelVar = new(slog.LevelVar)
		a.levelVar.Set(opts.LogLevel.Slog())
		a.log = nsqlog.New(os.Stderr, opts.LogPrefix, a.levelVar)
	}

	for _, addr := range opts.NSQLookupdHTTPAddresses {
		if _, err := net.ResolveTCPAddr("tcp", addr); err != nil {
			return nil, fmt.Errorf("failed to resolve --lookupd-http-address (%s) - %w", addr, err)
		}
	}
	for _, addr := range opts.NSQDHTTPAddresses {
		if _, err := net.ResolveTCPAddr("tcp", addr); err != nil {
			return nil, fmt.Errorf("failed to resolve --nsqd-http-address (%s) - %w", addr, err)
		}
	}
	lookupds := slices.Clone(opts.NSQLookupdHTTPAddresses)
	a.lookupds.Store(&lookupds)

	if opts.GraphiteURL != "" {
		u, err := url.Parse(opts.GraphiteURL)
		if err != nil {
			return nil, fmt.Errorf("failed to parse --graphite-url (%s) - %w", opts.GraphiteURL, err)
		}
		a.graphiteURL = u
	}
	_, ipnet, err := net.ParseCIDR(opts.AllowConfigFromCIDR)
	if err != nil {
		return nil, fmt.Errorf("failed to parse --allow-config-from-cidr (%s) - %w", opts.AllowConfigFromCIDR, err)
	}
	a.allowConfigFrom = ipnet
	if a.hostname, err = os.Hostname(); err != nil {
		a.hostname = "localhost"
	}

	tlsConfig, err := clientTLSConfig(opts)
	if err != nil {
		return nil, err
	}
	a.client = clusterinfo.New(clusterinfo.Config{
		ConnectTimeout: opts.HTTPClientConnectTimeout,
		RequestTimeout: opts.HTTPClientRequestTimeout,
		TLS:            tlsConfig,
		UserAgent:      "nsqadmin/" + version.Binary,
		Logger:         a.log,
	})
	a.cluster = clusterinfo.NewCluster(a.client, a.Lookupds, opts.NSQDHTTPAddresses)
	a.sampler = newSampler(a.cluster, opts.StatsSampleInterval, opts.StatsSampleWindow, opts.HTTPClientRequestTimeout, a.log)
	a.outbound = httpapi.NewClient(opts.HTTPClientConnectTimeout, opts.HTTPClientRequestTimeout, tlsConfig)
	a.notifier = newNotifier(opts.NotificationHTTPEndpoint, a.outbound, a.log)
	a.graphite = httpapi.NewClient(opts.HTTPClientConnectTimeout, opts.HTTPClientRequestTimeout, nil)

	a.listener, err = net.Listen("tcp", opts.HTTPAddress)
	if err != nil {
		return nil, fmt.Errorf("listen (%s) failed - %w", opts.HTTPAddress, err)
	}
	a.server = &http.Server{
		Handler:           a.newHTTPHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	return a, nil
}

// clientTLSConfig builds the TLS configuration of upstream requests from the
// --http-client-tls-* options; nil when none is set.
func clientTLSConfig(opts *Options) (*tls.Config, error) {
	if !opts.HTTPClientTLSInsecureSkipVerify && opts.HTTPClientTLSRootCAFile == "" && opts.HTTPClientTLSCert == "" {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: opts.HTTPClientTLSInsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if opts.HTTPClientTLSRootCAFile != "" {
		pem, err := os.ReadFile(opts.HTTPClientTLSRootCAFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read --http-client-tls-root-ca-file (%s) - %w", opts.HTTPClientTLSRootCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("failed to parse --http-client-tls-root-ca-file (%s) - no certificates found", opts.HTTPClientTLSRootCAFile)
		}
		cfg.RootCAs = pool
	}
	if opts.HTTPClientTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.HTTPClientTLSCert, opts.HTTPClientTLSKey)
		if err != nil {
			return nil, fmt.Errorf("failed to load --http-client-tls-cert/--http-client-tls-key - %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// HTTPAddr is the address the HTTP listener is bound to.
func (a *NSQAdmin) HTTPAddr() net.Addr { return a.listener.Addr() }

// Lookupds returns the lookupd HTTP addresses in use.
func (a *NSQAdmin) Lookupds() []string { return *a.lookupds.Load() }

// setLookupds replaces the lookupd HTTP addresses.
func (a *NSQAdmin) setLookupds(addrs []string) {
	addrs = slices.Clone(addrs)
	a.lookupds.Store(&addrs)
}

// logLevel is the current --log-level.
func (a *NSQAdmin) logLevel() nsqlog.Level { return nsqlog.Level(a.level.Load()) }

// setLogLevel changes the log level (of the logger nsqadmin built itself).
func (a *NSQAdmin) setLogLevel(l nsqlog.Level) {
	a.level.Store(int32(l))
	if a.levelVar != nil {
		a.levelVar.Set(l.Slog())
	}
}

// Run serves HTTP, samples the cluster's stats and sends notifications
// until ctx ends or the listener fails, then shuts down and returns. It
// returns an error only when the listener failed.
func (a *NSQAdmin) Run(ctx context.Context) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	a.log.Info(version.String("nsqadmin"))
	a.log.Info("HTTP: listening on " + a.listener.Addr().String())

	var wg sync.WaitGroup
	wg.Go(func() {
		err := a.server.Serve(a.listener)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		stop(err)
	})
	wg.Go(func() { a.sampler.loop(ctx) })
	wg.Go(func() { a.notifier.loop(ctx) })

	<-ctx.Done()
	a.log.Info("HTTP: closing " + a.listener.Addr().String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.server.Shutdown(shutdownCtx); err != nil {
		a.server.Close()
	}
	wg.Wait()
	a.client.Close()
	a.outbound.CloseIdleConnections()
	a.graphite.CloseIdleConnections()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("http server failed - %w", cause)
	}
	return nil
}

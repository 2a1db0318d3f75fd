package nsqlookupd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/version"
)

// shutdownTimeout bounds how long Run waits for HTTP requests in progress
// (a 30 s CPU profile, say) before closing their connections.
const shutdownTimeout = 5 * time.Second

// NSQLookupd is one nsqlookupd daemon.
type NSQLookupd struct {
	opts   *Options
	logger *slog.Logger
	db     *registrationDB

	tcpListener  net.Listener
	httpListener net.Listener
	// identifyResponse is the JSON answer to every IDENTIFY: this daemon's
	// broadcast address, hostname, real ports and version.
	identifyResponse []byte
	started          atomic.Bool

	// mu guards conns and closing: the open V1 connections, which Run closes
	// when it stops.
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool
}

// New validates opts and binds the TCP and HTTP listeners. It starts nothing:
// Run does. If New succeeds, Run must be called to release the listeners.
func New(opts *Options) (*NSQLookupd, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	l := &NSQLookupd{
		opts:   opts,
		logger: opts.Logger,
		db:     newRegistrationDB(opts.InactiveProducerTimeout, opts.TombstoneLifetime),
		conns:  make(map[net.Conn]struct{}),
	}
	if l.logger == nil {
		l.logger = nsqlog.New(os.Stderr, opts.LogPrefix, opts.LogLevel.Slog())
	}
	var err error
	if l.tcpListener, err = listen(opts.TCPAddress); err != nil {
		return nil, err
	}
	if l.httpListener, err = listen(opts.HTTPAddress); err != nil {
		l.tcpListener.Close()
		return nil, err
	}
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "localhost"
	}
	l.identifyResponse, err = json.Marshal(struct { // fields in NSQ's (alphabetical) order
		BroadcastAddress string `json:"broadcast_address"`
		Hostname         string `json:"hostname"`
		HTTPPort         int    `json:"http_port"`
		TCPPort          int    `json:"tcp_port"`
		Version          string `json:"version"`
	}{opts.BroadcastAddress, hostname, port(l.httpListener), port(l.tcpListener), version.Binary})
	if err != nil { // cannot happen: strings and ints
		l.tcpListener.Close()
		l.httpListener.Close()
		return nil, err
	}
	return l, nil
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen (%s) failed - %w", addr, err)
	}
	return ln, nil
}

func port(ln net.Listener) int {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// TCPAddr is the address the TCP (V1 protocol) listener is bound to.
func (l *NSQLookupd) TCPAddr() net.Addr { return l.tcpListener.Addr() }

// HTTPAddr is the address the HTTP listener is bound to.
func (l *NSQLookupd) HTTPAddr() net.Addr { return l.httpListener.Addr() }

// Run serves the TCP and HTTP listeners until ctx ends or one of them fails.
// It then closes the listeners and every connection, waits for every
// goroutine it started and returns: nil after ctx ended, the listener's error
// otherwise. Run may be called once.
func (l *NSQLookupd) Run(ctx context.Context) error {
	if !l.started.CompareAndSwap(false, true) {
		return errors.New("nsqlookupd: Run called twice")
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	failures := make(chan error, 2) // one per listener
	fail := func(err error) {
		failures <- err
		stop(err)
	}

	l.logger.Info(version.String("nsqlookupd"))
	l.logger.Info("TCP: listening", "addr", l.tcpListener.Addr().String())
	l.logger.Info("HTTP: listening", "addr", l.httpListener.Addr().String())
	httpServer := &http.Server{
		Handler:           l.newHTTPHandler(),
		ErrorLog:          slog.NewLogLogger(l.logger.Handler(), slog.LevelDebug),
		ReadHeaderTimeout: 10 * time.Second,
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.serveTCP(ctx); err != nil {
			fail(err)
		}
	})
	wg.Go(func() {
		if err := httpServer.Serve(l.httpListener); !errors.Is(err, http.ErrServerClosed) {
			fail(fmt.Errorf("http server: %w", err))
		}
	})

	<-ctx.Done()
	l.logger.Info("NSQLOOKUPD: closing")
	l.closeTCP()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	if err := httpServer.Shutdown(sctx); err != nil {
		httpServer.Close()
	}
	cancel()
	wg.Wait()
	close(failures)
	var errs []error
	for err := range failures {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

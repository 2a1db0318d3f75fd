package httpapi

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// IdleConnTimeout is how long a kept-alive outbound connection may stay
// unused before it is closed (NSQ's daemons use 90 s).
const IdleConnTimeout = 90 * time.Second

// MaxIdleConnsPerHost is how many idle connections to one peer are kept:
// enough for a burst of AUTHs from reconnecting clients to reuse them
// (Go's default of 2 closes the rest after each burst).
const MaxIdleConnsPerHost = 8

// NewClient returns the outbound client of a daemon (nsqd's AUTH and
// lookupd queries, nsqadmin's notifications and Graphite queries): connect
// bounds dialing and the TLS handshake (--http-client-connect-timeout),
// request the whole exchange (--http-client-request-timeout). Build it
// once per daemon, so that calls share kept-alive connections, and call
// CloseIdleConnections at shutdown; idle connections also close after
// IdleConnTimeout, and at most MaxIdleConnsPerHost per peer stay. tlsConfig may be nil (Go's defaults). No proxy is used,
// as NSQ's daemons use none.
func NewClient(connect, request time.Duration, tlsConfig *tls.Config) *http.Client {
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: request,
		Transport: &http.Transport{
			DialContext:           dialer.DialContext,
			TLSClientConfig:       tlsConfig,
			TLSHandshakeTimeout:   connect,
			ResponseHeaderTimeout: request,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   MaxIdleConnsPerHost,
			IdleConnTimeout:       IdleConnTimeout,
		},
	}
}

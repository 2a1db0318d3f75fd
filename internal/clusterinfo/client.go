// Package clusterinfo queries a cluster's nsqlookupds and nsqds over HTTP for
// nsqadmin: it finds the nodes and the producers of a topic, gathers and
// aggregates /stats, and fans write actions (pause, empty, delete, tombstone,
// create) out to every node that must see them.
//
// Every fan-out asks all its upstreams at once and keeps going when some of
// them fail: a result comes with a *PartialError naming each node that did
// not answer, or an *UpstreamError when none did. Callers show the good part
// and the failures side by side.
package clusterinfo

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// acceptV1 asks NSQ daemons for their V1 JSON responses.
const acceptV1 = "application/vnd.nsq; version=1.0"

// maxBody bounds what is read from an upstream response.
const maxBody = 64 << 20

// Config configures a Client.
type Config struct {
	// ConnectTimeout bounds dialing an upstream, RequestTimeout a whole
	// request (--http-client-connect-timeout, --http-client-request-timeout).
	ConnectTimeout time.Duration
	RequestTimeout time.Duration
	// TLS is used for https:// upstreams (and for the retry on an nsqd that
	// requires TLS); nil means Go's defaults.
	TLS *tls.Config
	// UserAgent is sent with every request.
	UserAgent string
	// Logger receives DEBUG lines per request; nil discards them.
	Logger *slog.Logger
}

// Client queries nsqlookupds and nsqds. It is safe for concurrent use.
type Client struct {
	http *http.Client
	ua   string
	log  *slog.Logger
}

// New returns a Client.
func New(cfg Config) *Client {
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       cfg.TLS,
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.RequestTimeout,
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		http: &http.Client{Transport: tr, Timeout: cfg.RequestTimeout},
		ua:   cfg.UserAgent,
		log:  log,
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// StatusError is a non-2xx answer from an upstream. Message is the
// "message" of its V1 error body, or the body itself.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("got response %d %s", e.Status, e.Message)
}

// endpoint makes a URL of addr ("host:port" or a full URL) and pathQuery.
func endpoint(addr, pathQuery string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimSuffix(addr, "/") + pathQuery
	}
	return "http://" + addr + pathQuery
}

// getJSON GETs addr+pathQuery and decodes the JSON body into v.
func (c *Client) getJSON(ctx context.Context, addr, pathQuery string, v any) error {
	body, err := c.do(ctx, http.MethodGet, endpoint(addr, pathQuery))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", endpoint(addr, pathQuery), err)
	}
	return nil
}

// post POSTs to addr+pathQuery with an empty body.
func (c *Client) post(ctx context.Context, addr, pathQuery string) error {
	_, err := c.do(ctx, http.MethodPost, endpoint(addr, pathQuery))
	return err
}

// do sends one request. A 403 from an http:// URL whose body names an
// https_port (nsqd with --tls-required) is retried once on https:// with that
// port, as NSQ's clients do.
func (c *Client) do(ctx context.Context, method, rawURL string) ([]byte, error) {
	status, body, err := c.send(ctx, method, rawURL)
	if err != nil {
		return nil, err
	}
	if status == http.StatusForbidden && strings.HasPrefix(rawURL, "http://") {
		var tlsRequired struct {
			HTTPSPort int `json:"https_port"`
		}
		if json.Unmarshal(body, &tlsRequired) == nil && tlsRequired.HTTPSPort > 0 {
			if u, perr := url.Parse(rawURL); perr == nil {
				u.Scheme = "https"
				u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(tlsRequired.HTTPSPort))
				rawURL = u.String()
				if status, body, err = c.send(ctx, method, rawURL); err != nil {
					return nil, err
				}
			}
		}
	}
	if status < 200 || status > 299 {
		return nil, &url.Error{Op: opName(method), URL: rawURL, Err: &StatusError{Status: status, Message: errorMessage(body)}}
	}
	return body, nil
}

func (c *Client) send(ctx context.Context, method, rawURL string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", acceptV1)
	if c.ua != "" {
		req.Header.Set("User-Agent", c.ua)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.log.Debug("HTTP: upstream request failed", "method", method, "url", rawURL, "err", err)
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, &url.Error{Op: opName(method), URL: rawURL, Err: err}
	}
	c.log.Debug("HTTP: upstream request", "method", method, "url", rawURL, "status", resp.StatusCode, "elapsed", time.Since(start))
	return resp.StatusCode, body, nil
}

// opName is the Op of a url.Error as net/http spells it ("Get", "Post").
func opName(method string) string {
	return method[:1] + strings.ToLower(method[1:])
}

// errorMessage returns the "message" of an NSQ V1 error body, or the body.
func errorMessage(body []byte) string {
	var v struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &v) == nil && v.Message != "" {
		return v.Message
	}
	return string(bytes.TrimSpace(body))
}

// isStatus reports whether err is an upstream answer with the given status.
func isStatus(err error, status int) bool {
	se, ok := errors.AsType[*StatusError](err)
	return ok && se.Status == status
}

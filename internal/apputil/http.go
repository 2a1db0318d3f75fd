package apputil

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// NewHTTPClient returns the client of the --http-client-connect-timeout and
// --http-client-request-timeout flags: connect bounds dialing, request bounds
// the whole exchange. idlePerHost keep-alive connections are kept per host,
// enough for the tool's concurrency.
func NewHTTPClient(connect, request time.Duration, idlePerHost int) *http.Client {
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: request,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			ResponseHeaderTimeout: request,
			MaxIdleConns:          max(idlePerHost, 100),
			MaxIdleConnsPerHost:   max(idlePerHost, 2),
			IdleConnTimeout:       90 * time.Second,
		},
	}
}

// GetJSON performs GET url on an NSQ daemon and decodes its JSON answer into
// v. It asks for the V1 format and also accepts the legacy envelope
// {"status_code":200,"status_txt":"OK","data":...}. A non-200 answer is an
// error carrying the status and NSQ's message.
func GetJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.nsq; version=1.0")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: got response %s %q", url, resp.Status, bytes.TrimSpace(body))
	}
	if resp.Header.Get("X-NSQ-Content-Type") == "" {
		var env struct {
			StatusCode *int            `json:"status_code"`
			Data       json.RawMessage `json:"data"`
		}
		if json.Unmarshal(body, &env) == nil && env.StatusCode != nil && env.Data != nil {
			body = env.Data
		}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decoding %q: %w", url, truncate(body, 200), err)
	}
	return nil
}

// HTTPURL returns "http://" + addr + pathQuery unless addr already has a
// scheme.
func HTTPURL(addr, pathQuery string) string {
	if strings.Contains(addr, "://") {
		return addr + pathQuery
	}
	return "http://" + addr + pathQuery
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

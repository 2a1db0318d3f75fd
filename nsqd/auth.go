package nsqd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
)

// authState is what the auth server granted a client.
type authState struct {
	Identity    string
	IdentityURL string
	expires     time.Time
	grants      []authGrant
}

type authGrant struct {
	topic     *regexp.Regexp
	channels  []*regexp.Regexp
	subscribe bool
	publish   bool
}

// allows reports whether some grant has the permission for topic and
// channel (publishes use the channel "").
func (a *authState) allows(publish bool, topic, channel string) bool {
	for _, g := range a.grants {
		if (publish && !g.publish) || (!publish && !g.subscribe) || !g.topic.MatchString(topic) {
			continue
		}
		for _, c := range g.channels {
			if c.MatchString(channel) {
				return true
			}
		}
	}
	return false
}

func (n *NSQD) authEnabled() bool { return len(n.opts.AuthHTTPAddresses) > 0 }

var errNoAuthorizations = errors.New("no authorizations")

// queryAuth asks the auth servers (from a random one on, first success
// wins) what the secret grants.
func (n *NSQD) queryAuth(secret, remoteIP, commonName string, tlsOn bool) (*authState, error) {
	addrs := n.opts.AuthHTTPAddresses
	start := rand.IntN(len(addrs))
	var errs []error
	for i := range addrs {
		st, err := n.queryAuthServer(addrs[(start+i)%len(addrs)], secret, remoteIP, commonName, tlsOn)
		if err == nil || errors.Is(err, errNoAuthorizations) {
			return st, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (n *NSQD) queryAuthServer(addr, secret, remoteIP, commonName string, tlsOn bool) (*authState, error) {
	endpoint := addr
	if !strings.Contains(addr, "://") {
		endpoint = "http://" + addr + "/auth"
	}
	v := url.Values{}
	v.Set("common_name", commonName)
	v.Set("remote_ip", remoteIP)
	v.Set("secret", secret)
	v.Set("tls", fmt.Sprint(tlsOn))
	var req *http.Request
	var err error
	if n.opts.AuthHTTPRequestMethod == "post" {
		body, _ := json.Marshal(v)
		req, err = http.NewRequest("POST", endpoint, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	} else {
		req, err = http.NewRequest("GET", endpoint+"?"+v.Encode(), nil)
	}
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.nsq; version=1.0")
	resp, err := n.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("auth server %s answered %d", endpoint, resp.StatusCode)
	}
	st, err := parseAuthResponse(body, time.Now())
	if err != nil && !errors.Is(err, errNoAuthorizations) {
		return nil, fmt.Errorf("auth server %s: %w", endpoint, err)
	}
	return st, err
}

// parseAuthResponse turns an auth server's JSON into the grants: ttl > 0,
// permissions only "subscribe" and "publish", topic and channel patterns
// valid Go regexps. No grants is errNoAuthorizations.
func parseAuthResponse(body []byte, now time.Time) (*authState, error) {
	var ar struct {
		TTL            int    `json:"ttl"`
		Identity       string `json:"identity"`
		IdentityURL    string `json:"identity_url"`
		Authorizations []struct {
			Topic       string   `json:"topic"`
			Channels    []string `json:"channels"`
			Permissions []string `json:"permissions"`
		} `json:"authorizations"`
	}
	if err := json.Unmarshal(body, &ar); err != nil {
		return nil, err
	}
	if ar.TTL <= 0 {
		return nil, fmt.Errorf("invalid ttl %d", ar.TTL)
	}
	st := &authState{Identity: ar.Identity, IdentityURL: ar.IdentityURL, expires: now.Add(time.Duration(ar.TTL) * time.Second)}
	for _, a := range ar.Authorizations {
		g := authGrant{}
		var err error
		if g.topic, err = regexp.Compile(a.Topic); err != nil {
			return nil, fmt.Errorf("topic %q: %w", a.Topic, err)
		}
		for _, c := range a.Channels {
			re, err := regexp.Compile(c)
			if err != nil {
				return nil, fmt.Errorf("channel %q: %w", c, err)
			}
			g.channels = append(g.channels, re)
		}
		for _, p := range a.Permissions {
			switch p {
			case "subscribe":
				g.subscribe = true
			case "publish":
				g.publish = true
			default:
				return nil, fmt.Errorf("unknown permission %q", p)
			}
		}
		st.grants = append(st.grants, g)
	}
	if len(st.grants) == 0 {
		return st, errNoAuthorizations
	}
	return st, nil
}

// authQuery asks the auth servers about this client's secret.
func (c *client) authQuery(secret string) (*authState, error) {
	host, _, _ := net.SplitHostPort(c.remoteAddr)
	c.mu.Lock()
	st := c.tlsState
	c.mu.Unlock()
	cn := ""
	if st != nil && len(st.PeerCertificates) > 0 {
		cn = st.PeerCertificates[0].Subject.CommonName
	}
	return c.nsqd.queryAuth(secret, host, cn, st != nil)
}

func (c *client) auth(params [][]byte) ([]byte, error) {
	if c.state.Load() != stateInit {
		return nil, protocol.Fatal("E_INVALID", "cannot AUTH in current state")
	}
	if len(params) != 1 {
		return nil, protocol.Fatal("E_INVALID", "AUTH invalid number of parameters")
	}
	body, err := c.readBody("E_BAD_BODY", "AUTH", c.nsqd.opts.MaxBodySize)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	already := c.authState != nil
	c.mu.Unlock()
	if already {
		return nil, protocol.Fatal("E_INVALID", "AUTH already set")
	}
	if !c.nsqd.authEnabled() {
		return nil, protocol.Fatal("E_AUTH_DISABLED", "AUTH disabled")
	}
	st, err := c.authQuery(string(body))
	if errors.Is(err, errNoAuthorizations) {
		return nil, protocol.Fatal("E_UNAUTHORIZED", "AUTH no authorizations found")
	}
	if err != nil {
		c.logger().Warn("AUTH: failed", "err", err)
		return nil, protocol.Fatal("E_AUTH_FAILED", "AUTH failed")
	}
	c.mu.Lock()
	c.authSecret, c.authState = string(body), st
	c.mu.Unlock()
	resp, err := json.Marshal(struct {
		Identity        string `json:"identity"`
		IdentityURL     string `json:"identity_url"`
		PermissionCount int    `json:"permission_count"`
	}{st.Identity, st.IdentityURL, len(st.grants)})
	if err != nil {
		return nil, protocol.Fatal("E_AUTH_ERROR", "AUTH error "+err.Error())
	}
	return resp, nil
}

// checkAuth authorizes cmd on topic/channel when auth is enabled, fetching
// the grants again once their TTL has passed.
func (c *client) checkAuth(cmd, topic, channel string) error {
	if !c.nsqd.authEnabled() {
		return nil
	}
	c.mu.Lock()
	st, secret := c.authState, c.authSecret
	c.mu.Unlock()
	if st == nil {
		return protocol.Fatal("E_AUTH_FIRST", "AUTH required before "+cmd)
	}
	if time.Now().After(st.expires) {
		fresh, err := c.authQuery(secret)
		if err != nil && !errors.Is(err, errNoAuthorizations) {
			c.logger().Warn("AUTH: refresh failed", "err", err)
			return protocol.Fatal("E_AUTH_FAILED", "AUTH failed")
		}
		c.mu.Lock()
		c.authState = fresh
		c.mu.Unlock()
		st = fresh
	}
	if !st.allows(cmd != "SUB", topic, channel) {
		return protocol.Fatal("E_UNAUTHORIZED", fmt.Sprintf("AUTH failed for %s on %q %q", cmd, topic, channel))
	}
	return nil
}

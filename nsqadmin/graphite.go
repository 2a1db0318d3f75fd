package nsqadmin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/httpapi"
)

// graphite is GET /api/graphite?metric=rate&target=<target>: the rate of a
// statsd counter over the last complete statsd interval, read from Graphite.
func (s *httpServer) graphite(req *http.Request, _ httprouter.Params) (any, error) {
	q, err := httpapi.ParseQuery(req)
	if err != nil {
		return nil, err
	}
	if metric, _ := q.Get("metric"); metric != "rate" {
		return nil, httpapi.Err(http.StatusBadRequest, "INVALID_ARG_METRIC")
	}
	target, _ := q.Get("target")
	if target == "" {
		return nil, httpapi.Err(http.StatusBadRequest, "INVALID_ARG_TARGET")
	}
	if s.a.graphiteURL == nil {
		return nil, fmt.Errorf("graphite query for %q: no --graphite-url", target)
	}
	interval := int64(s.a.opts.StatsdInterval.Seconds())
	if interval <= 0 {
		interval = 1
	}
	params := url.Values{
		"from":   {fmt.Sprintf("-%dsec", 2*interval)},
		"until":  {fmt.Sprintf("-%dsec", interval)},
		"format": {"json"},
		"target": {target},
	}
	u := *s.a.graphiteURL
	u.User = nil
	u.Path = strings.TrimSuffix(u.Path, "/") + "/render"
	u.RawQuery = params.Encode()
	r, err := http.NewRequestWithContext(req.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if user := s.a.graphiteURL.User; user != nil {
		pw, _ := user.Password()
		r.SetBasicAuth(user.Username(), pw)
	}
	resp, err := s.a.graphite.Do(r)
	if err != nil {
		return nil, fmt.Errorf("graphite query: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("graphite query: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("graphite query: status %d", resp.StatusCode)
	}
	var data []struct {
		Datapoints [][]*float64 `json:"datapoints"`
	}
	if err := json.Unmarshal(body, &data); err != nil {
		return nil, fmt.Errorf("graphite query: %w", err)
	}
	rate := "N/A"
	if len(data) > 0 && len(data[0].Datapoints) > 0 && len(data[0].Datapoints[0]) > 0 {
		if v := data[0].Datapoints[0][0]; v != nil && *v >= 0 {
			rate = fmt.Sprintf("%.2f", *v/float64(interval))
		}
	}
	return struct {
		Rate string `json:"rate"`
	}{rate}, nil
}

// graphiteProxy is GET /render with --proxy-graphite: the request goes to
// --graphite-url's /render, with its user:password as basic auth.
func (a *NSQAdmin) graphiteProxy() http.Handler {
	target := *a.graphiteURL
	user := target.User
	target.User = nil
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = target.Scheme
			r.Out.URL.Host = target.Host
			r.Out.URL.Path = strings.TrimSuffix(target.Path, "/") + "/render"
			r.Out.URL.RawPath = ""
			r.Out.URL.RawQuery = r.In.URL.RawQuery
			r.Out.Host = target.Host
			r.Out.Header.Del("Accept-Encoding")
			if user != nil {
				pw, _ := user.Password()
				r.Out.SetBasicAuth(user.Username(), pw)
			}
		},
		ErrorLog: nil,
	}
}

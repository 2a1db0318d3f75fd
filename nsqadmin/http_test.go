package nsqadmin_test

import (
	"compress/flate"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqclone/nsq/nsqadmin"
)

func TestNotifications(t *testing.T) {
	var (
		mu     sync.Mutex
		events []map[string]any
		ctypes []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		json.NewDecoder(r.Body).Decode(&v)
		mu.Lock()
		events = append(events, v)
		ctypes = append(ctypes, r.Header.Get("Content-Type"))
		mu.Unlock()
	}))
	defer hook.Close()
	c := startCluster(t)
	a := c.admin(t, func(o *nsqadmin.Options) { o.NotificationHTTPEndpoint = hook.URL + "/notify" })

	send := func(method, path string, body any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, a.base+path, strings.NewReader(mustJSON(t, body)))
		req.SetBasicAuth("bob", "secret")
		req.Header.Set("User-Agent", "curl/7.88.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
		}
	}
	send("POST", "/api/topics", map[string]string{"topic": "admtopic", "channel": "admch"})
	send("POST", "/api/topics/orders/billing", map[string]string{"action": "empty"})
	send("DELETE", "/api/nodes/"+c.node2(), map[string]string{"topic": "orders"})
	waitFor(t, "four notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 4
	})
	mu.Lock()
	defer mu.Unlock()
	want := []map[string]any{
		{"action": "create_topic", "topic": "admtopic"},
		{"action": "create_channel", "topic": "admtopic", "channel": "admch"},
		{"action": "empty_channel", "topic": "orders", "channel": "billing"},
		{"action": "tombstone_topic_producer", "topic": "orders", "node": c.node2()},
	}
	for i, w := range want {
		e := events[i]
		for k, v := range w {
			if e[k] != v {
				t.Errorf("event %d %s = %v, want %v (%v)", i, k, e[k], v, e)
			}
		}
		if _, ok := e["channel"]; !ok && w["channel"] != nil {
			t.Errorf("event %d lacks channel", i)
		}
		if _, ok := e["channel"]; ok && w["channel"] == nil {
			t.Errorf("event %d has channel %v, want it omitted", i, e["channel"])
		}
		if e["user"] != "bob" || e["user_agent"] != "curl/7.88.1" || !strings.HasPrefix(e["remote_ip"].(string), "127.0.0.1:") ||
			!strings.HasPrefix(e["url"].(string), "http://"+a.HTTPAddr().String()+"/api/") || e["via"] == "" {
			t.Errorf("event %d = %v", i, e)
		}
		if ts, _ := e["timestamp"].(float64); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
			t.Errorf("event %d timestamp = %v", i, e["timestamp"])
		}
		if ctypes[i] != "application/json" {
			t.Errorf("event %d Content-Type = %q", i, ctypes[i])
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfig(t *testing.T) {
	c := startCluster(t)
	lookupd := c.lookupd.HTTPAddr().String()
	a := c.admin(t, func(o *nsqadmin.Options) { o.BasePath = "admin" })
	for _, tc := range []struct{ path, body, ctype string }{
		{"/config/base_path", "/admin", "text/plain; charset=utf-8"},
		{"/config/nsqlookupd_http_addresses", `["` + lookupd + `"]`, "application/json; charset=utf-8"},
		{"/config/nsqd_http_addresses", `[]`, "application/json; charset=utf-8"},
		{"/config/admin_users", `[]`, "application/json; charset=utf-8"},
		{"/config/log_level", `2`, "application/json; charset=utf-8"},
		{"/config/http_client_request_timeout", `2000000000`, "application/json; charset=utf-8"},
		{"/config/acl_http_header", `X-Forwarded-User`, "text/plain; charset=utf-8"},
		{"/config/stats_sample_interval", `50000000`, "application/json; charset=utf-8"},
	} {
		r := a.get(t, tc.path)
		if r.status != 200 || string(r.body) != tc.body || r.header.Get("Content-Type") != tc.ctype {
			t.Errorf("GET %s = %d %q %q, want %q %q", tc.path, r.status, r.body, r.header.Get("Content-Type"), tc.body, tc.ctype)
		}
	}
	wantError(t, "unknown option", a.get(t, "/config/nope"), 400, "INVALID_OPTION")
	r := do(t, "PUT", a.base+"/config/log_level", "warn")
	if r.status != 200 || string(r.body) != "3" {
		t.Errorf("PUT log_level warn = %d %s", r.status, r.body)
	}
	wantError(t, "PUT bad level", do(t, "PUT", a.base+"/config/log_level", "loud"), 400, "INVALID_VALUE")
	wantError(t, "PUT empty", do(t, "PUT", a.base+"/config/log_level", ""), 413, "INVALID_VALUE")
	wantError(t, "PUT other option", do(t, "PUT", a.base+"/config/base_path", "/x"), 400, "INVALID_OPTION")

	// Replacing the lookupds takes effect at once.
	dead := deadAddr(t)
	r = do(t, "PUT", a.base+"/config/nsqlookupd_http_addresses", `["`+dead+`"]`)
	if r.status != 200 || string(r.body) != `["`+dead+`"]` {
		t.Fatalf("PUT nsqlookupd_http_addresses = %d %s", r.status, r.body)
	}
	if r := a.get(t, "/api/topics"); r.status != http.StatusBadGateway {
		t.Errorf("topics after switching to a dead lookupd: %d %s", r.status, r.body)
	}
	wantError(t, "PUT bad JSON", do(t, "PUT", a.base+"/config/nsqlookupd_http_addresses", `nope`), 400, "INVALID_VALUE")

	// Outside --allow-config-from-cidr.
	b := startAdmin(t, func(o *nsqadmin.Options) {
		o.NSQLookupdHTTPAddresses = []string{lookupd}
		o.AllowConfigFromCIDR = "10.0.0.0/8"
	})
	wantError(t, "config from outside the CIDR", b.get(t, "/config/log_level"), 403, "FORBIDDEN")
}

func TestBasePathAndStatic(t *testing.T) {
	c := startCluster(t)
	a := c.admin(t, func(o *nsqadmin.Options) { o.BasePath = "/admin/" })
	root := "http://" + a.HTTPAddr().String()
	if r := do(t, "GET", root+"/admin/ping", nil); r.status != 200 || string(r.body) != "OK" {
		t.Errorf("GET /admin/ping = %d %q", r.status, r.body)
	}
	for _, p := range []string{"/ping", "/api/topics", "/", "/static/app.js"} {
		wantError(t, "GET "+p+" outside the base path", do(t, "GET", root+p, nil), 404, "NOT_FOUND")
	}
	for _, p := range []string{"/admin", "/admin/topics", "/admin/topics/orders", "/admin/topics/orders/billing", "/admin/nodes",
		"/admin/nodes/" + c.node1(), "/admin/counter", "/admin/lookup"} {
		r := do(t, "GET", root+p, nil)
		page := string(r.body)
		if r.status != 200 || r.header.Get("Content-Type") != "text/html; charset=utf-8" ||
			!strings.Contains(page, `var BASE_PATH = "/admin";`) || !strings.Contains(page, `src="/admin/static/app.js"`) {
			t.Errorf("GET %s = %d %s\n%.400s", p, r.status, r.header.Get("Content-Type"), page)
		}
	}
	page := string(do(t, "GET", root+"/admin", nil).body)
	for _, want := range []string{`var USER_AGENT = "nsqadmin/v1.3.0";`, `var VERSION = "1.3.0";`, `var GRAPH_ENABLED = false;`,
		`var NSQLOOKUPD = ["` + c.lookupd.HTTPAddr().String() + `"];`, `var IS_ADMIN = true;`, `var STATSD_INTERVAL = 60;`,
		`var STATSD_PREFIX = "nsq.%s";`, `var SAMPLE_INTERVAL_MS = 50;`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	for _, tc := range []struct{ asset, ctype string }{
		{"app.js", "text/javascript; charset=utf-8"},
		{"app.css", "text/css; charset=utf-8"},
		{"favicon.svg", "image/svg+xml"},
	} {
		r := do(t, "GET", root+"/admin/static/"+tc.asset, nil)
		if r.status != 200 || r.header.Get("Content-Type") != tc.ctype || len(r.body) == 0 {
			t.Errorf("GET static/%s = %d %q", tc.asset, r.status, r.header.Get("Content-Type"))
		}
	}
	for _, p := range []string{"/admin/static/nope.js", "/admin/static/index.html", "/admin/fonts/x.woff"} {
		r := do(t, "GET", root+p, nil)
		if r.status != 404 || string(r.body) != "NOT_FOUND" || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("GET %s = %d %q %q", p, r.status, r.body, r.header.Get("Content-Type"))
		}
	}
}

func TestCompression(t *testing.T) {
	c := startCluster(t)
	a := c.admin(t, nil)
	for _, enc := range []string{"gzip", "deflate"} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", a.base+"/api/topics", nil)
		req.Header.Set("Accept-Encoding", enc)
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = resp.Body
		if enc == "gzip" {
			if r, err = gzip.NewReader(resp.Body); err != nil {
				t.Fatal(err)
			}
		} else {
			r = flate.NewReader(resp.Body)
		}
		body, err := io.ReadAll(r)
		resp.Body.Close()
		if err != nil || string(body) != `{"topics":["orders"],"message":""}` ||
			resp.Header.Get("Content-Encoding") != enc || resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("%s: %q %v %v", enc, body, err, resp.Header)
		}
	}
}

func TestMetrics(t *testing.T) {
	c := startCluster(t)
	a := c.admin(t, nil)
	r := a.get(t, "/metrics")
	if r.status != 200 || r.header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("GET /metrics: %d %v", r.status, r.header)
	}
	body := string(r.body)
	for _, want := range []string{
		"# TYPE nsqadmin_nodes gauge\nnsqadmin_nodes 2\n",
		"nsqadmin_topics 1\n",
		"nsqadmin_channels 2\n",
		"# TYPE nsqadmin_messages_total counter\nnsqadmin_messages_total 5\n",
		"nsqadmin_depth ",
		"nsqadmin_clients 1\n",
		"nsqadmin_upstream_errors 0\n",
		`nsqadmin_topic_messages_total{topic="orders"} 5`,
		`nsqadmin_channel_clients{topic="orders",channel="billing"} 1`,
		`nsqadmin_channel_messages_total{topic="orders",channel="billing"} 5`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestGraphite(t *testing.T) {
	var gotQuery, gotAuth string
	graphite := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.RawQuery
		u, p, _ := r.BasicAuth()
		gotAuth = u + ":" + p
		if r.URL.Path != "/render" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`[{"target":"x","datapoints":[[120.0, 1700000000]]}]`))
	}))
	defer graphite.Close()
	c := startCluster(t)
	u := strings.Replace(graphite.URL, "http://", "http://user:pw@", 1)
	a := c.admin(t, func(o *nsqadmin.Options) { o.GraphiteURL = u; o.ProxyGraphite = true })
	v := a.getOK(t, "/api/graphite?metric=rate&target=sumSeries(foo)")
	if v["rate"] != "2.00" {
		t.Errorf("rate = %v", v)
	}
	if gotQuery != "format=json&from=-120sec&target=sumSeries%28foo%29&until=-60sec" || gotAuth != "user:pw" {
		t.Errorf("graphite got %q auth %q", gotQuery, gotAuth)
	}
	r := a.get(t, "/render?target=a&format=json")
	if r.status != 200 || !strings.Contains(string(r.body), "datapoints") || gotQuery != "target=a&format=json" {
		t.Errorf("GET /render = %d %s (graphite saw %q)", r.status, r.body, gotQuery)
	}
	page := string(a.get(t, "/").body)
	if !strings.Contains(page, `var GRAPHITE_URL = "";`) || !strings.Contains(page, `var GRAPH_ENABLED = true;`) {
		t.Error("page globals wrong with --proxy-graphite")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*nsqadmin.Options)
		want   string
	}{
		{"no upstream", func(o *nsqadmin.Options) {}, "--nsqd-http-address or --lookupd-http-address required"},
		{"both", func(o *nsqadmin.Options) {
			o.NSQDHTTPAddresses = []string{"a:1"}
			o.NSQLookupdHTTPAddresses = []string{"b:1"}
		}, "use --nsqd-http-address or --lookupd-http-address not both"},
		{"key without cert", func(o *nsqadmin.Options) { o.NSQDHTTPAddresses = []string{"a:1"}; o.HTTPClientTLSKey = "k" },
			"--http-client-tls-key must be specified with --http-client-tls-cert"},
		{"cert without key", func(o *nsqadmin.Options) { o.NSQDHTTPAddresses = []string{"a:1"}; o.HTTPClientTLSCert = "c" },
			"--http-client-tls-cert must be specified with --http-client-tls-key"},
		{"bad cidr", func(o *nsqadmin.Options) { o.NSQDHTTPAddresses = []string{"a:1"}; o.AllowConfigFromCIDR = "nope" },
			"failed to parse --allow-config-from-cidr (nope) - invalid CIDR address: nope"},
		{"bad graphite", func(o *nsqadmin.Options) { o.NSQDHTTPAddresses = []string{"a:1"}; o.GraphiteURL = "http://[::1" },
			"failed to parse --graphite-url (http://[::1) - "},
		{"window too short", func(o *nsqadmin.Options) { o.NSQDHTTPAddresses = []string{"a:1"}; o.StatsSampleWindow = time.Second },
			"--stats-sample-window (1s) must hold at least two samples"},
	} {
		o := nsqadmin.NewOptions()
		tc.modify(o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
	o := nsqadmin.NewOptions()
	o.NSQDHTTPAddresses = []string{"127.0.0.1:4151"}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate(defaults + nsqd) = %v", err)
	}
	o.HTTPAddress = "127.0.0.1:-5"
	if _, err := nsqadmin.New(o); err == nil || !strings.HasPrefix(err.Error(), "listen (127.0.0.1:-5) failed - ") {
		t.Errorf("New with a bad address = %v", err)
	}
}

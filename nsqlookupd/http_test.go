package nsqlookupd_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsqclone/nsq/nsqlookupd"
)

// Header kinds of NSQ's responses.
const (
	jsonV1  = "json"  // V1 JSON: Content-Type json, X-NSQ-Content-Type
	emptyV1 = "empty" // V1 empty: X-NSQ-Content-Type, Content-Length 0, no Content-Type
	text    = "text"  // plain text: text/plain, no X-NSQ-Content-Type
)

func checkHeaders(t *testing.T, r response, kind string) {
	t.Helper()
	ct, nsq := r.header.Get("Content-Type"), r.header.Get("X-NSQ-Content-Type")
	switch kind {
	case jsonV1:
		if ct != "application/json; charset=utf-8" || nsq != "nsq; version=1.0" {
			t.Errorf("Content-Type %q, X-NSQ-Content-Type %q, want JSON and nsq; version=1.0", ct, nsq)
		}
	case emptyV1:
		if ct != "" || nsq != "nsq; version=1.0" || r.header.Get("Content-Length") != "0" {
			t.Errorf("Content-Type %q, X-NSQ-Content-Type %q, Content-Length %q, want none, nsq; version=1.0, 0",
				ct, nsq, r.header.Get("Content-Length"))
		}
	case text:
		if ct != "text/plain; charset=utf-8" || nsq != "" {
			t.Errorf("Content-Type %q, X-NSQ-Content-Type %q, want text/plain and none", ct, nsq)
		}
	}
}

func TestHTTPEndpoints(t *testing.T) {
	l := startLookupd(t, nil)
	c := dialV1(t, l)
	c.identify(4151)
	c.mustOK("REGISTER orders billing")
	post(t, l, "/topic/create?topic=empty")
	remote := c.conn.LocalAddr().String()
	prod := fmt.Sprintf(`{"remote_address":%q,"hostname":"vm","broadcast_address":"127.0.0.1","tcp_port":4150,"http_port":4151,"version":"1.3.0","topology_zone":"","topology_region":""`, remote)

	tests := []struct {
		method, path string
		status       int
		body         string
		kind         string
		allow        string // the Allow header, if any
	}{
		{"GET", "/ping", 200, "OK", text, ""},
		{"GET", "/info", 200, `{"version":"1.3.0"}`, jsonV1, ""},
		{"GET", "/lookup?topic=orders", 200, `{"channels":["billing"],"producers":[` + prod + `}]}`, jsonV1, ""},
		{"GET", "/lookup?topic=orders&topic=nope", 200, `{"channels":["billing"],"producers":[` + prod + `}]}`, jsonV1, ""},
		{"GET", "/lookup?topic=empty", 200, `{"channels":[],"producers":[]}`, jsonV1, ""},
		{"GET", "/lookup?topic=nope", 404, `{"message":"TOPIC_NOT_FOUND"}`, jsonV1, ""},
		{"GET", "/lookup?topic=", 404, `{"message":"TOPIC_NOT_FOUND"}`, jsonV1, ""},
		{"GET", "/lookup?topic=*", 404, `{"message":"TOPIC_NOT_FOUND"}`, jsonV1, ""},
		{"GET", "/lookup", 400, `{"message":"MISSING_ARG_TOPIC"}`, jsonV1, ""},
		{"GET", "/lookup?topic=%zz", 400, `{"message":"INVALID_REQUEST"}`, jsonV1, ""},
		{"GET", "/topics", 200, `{"topics":["empty","orders"]}`, jsonV1, ""},
		{"GET", "/channels?topic=orders", 200, `{"channels":["billing"]}`, jsonV1, ""},
		{"GET", "/channels?topic=nope", 200, `{"channels":[]}`, jsonV1, ""},
		{"GET", "/channels", 400, `{"message":"MISSING_ARG_TOPIC"}`, jsonV1, ""},
		{"GET", "/nodes", 200, `{"producers":[` + prod + `,"tombstones":[false],"topics":["orders"]}]}`, jsonV1, ""},
		{"POST", "/topic/create", 400, `{"message":"MISSING_ARG_TOPIC"}`, jsonV1, ""},
		{"POST", "/topic/create?topic=bad*t", 400, `{"message":"INVALID_ARG_TOPIC"}`, jsonV1, ""},
		{"POST", "/topic/create?topic=", 400, `{"message":"INVALID_ARG_TOPIC"}`, jsonV1, ""},
		{"POST", "/topic/delete", 400, `{"message":"MISSING_ARG_TOPIC"}`, jsonV1, ""},
		{"POST", "/topic/delete?topic=nope", 200, "", emptyV1, ""},
		{"POST", "/channel/create", 400, `{"message":"MISSING_ARG_TOPIC"}`, jsonV1, ""},
		{"POST", "/channel/create?topic=b*d&channel=c", 400, `{"message":"INVALID_ARG_TOPIC"}`, jsonV1, ""},
		{"POST", "/channel/create?topic=t", 400, `{"message":"MISSING_ARG_CHANNEL"}`, jsonV1, ""},
		{"POST", "/channel/create?topic=t&channel=b*d", 400, `{"message":"INVALID_ARG_CHANNEL"}`, jsonV1, ""},
		{"POST", "/channel/delete", 400, `{"message":"MISSING_ARG_TOPIC"}`, jsonV1, ""},
		{"POST", "/channel/delete?topic=b*d", 400, `{"message":"INVALID_ARG_TOPIC"}`, jsonV1, ""},
		{"POST", "/channel/delete?topic=orders", 400, `{"message":"MISSING_ARG_CHANNEL"}`, jsonV1, ""},
		{"POST", "/channel/delete?topic=orders&channel=", 400, `{"message":"INVALID_ARG_CHANNEL"}`, jsonV1, ""},
		{"POST", "/channel/delete?topic=orders&channel=nope", 404, `{"message":"CHANNEL_NOT_FOUND"}`, jsonV1, ""},
		{"POST", "/channel/delete?topic=nope&channel=nope", 404, `{"message":"CHANNEL_NOT_FOUND"}`, jsonV1, ""},
		{"POST", "/topic/tombstone", 400, `{"message":"MISSING_ARG_TOPIC"}`, jsonV1, ""},
		{"POST", "/topic/tombstone?topic=orders", 400, `{"message":"MISSING_ARG_NODE"}`, jsonV1, ""},
		{"POST", "/topic/tombstone?topic=nope&node=127.0.0.1:4151", 200, "", emptyV1, ""},
		{"POST", "/topic/tombstone?topic=orders&node=127.0.0.1:9", 200, "", emptyV1, ""},

		// Router behaviour shared with nsqd.
		{"GET", "/nope", 404, `{"message":"NOT_FOUND"}`, jsonV1, ""},
		{"GET", "/topic/create?topic=x", 405, `{"message":"METHOD_NOT_ALLOWED"}`, jsonV1, "OPTIONS, POST"},
		{"POST", "/lookup?topic=orders", 405, `{"message":"METHOD_NOT_ALLOWED"}`, jsonV1, "GET, OPTIONS"},
		{"HEAD", "/ping", 405, "", "", "GET, OPTIONS"},
		{"OPTIONS", "/channel/delete", 200, "", "", "OPTIONS, POST"},
		{"PUT", "/metrics", 405, `{"message":"METHOD_NOT_ALLOWED"}`, jsonV1, "GET, OPTIONS"},

		// The pre-1.0 paths are gone.
		{"GET", "/create_topic?topic=x", 404, `{"message":"NOT_FOUND"}`, jsonV1, ""},
		{"POST", "/create_topic?topic=x", 404, `{"message":"NOT_FOUND"}`, jsonV1, ""},
		{"POST", "/delete_topic?topic=x", 404, `{"message":"NOT_FOUND"}`, jsonV1, ""},
		{"POST", "/create_channel?topic=x&channel=y", 404, `{"message":"NOT_FOUND"}`, jsonV1, ""},
		{"POST", "/delete_channel?topic=x&channel=y", 404, `{"message":"NOT_FOUND"}`, jsonV1, ""},
		{"POST", "/tombstone_topic_producer?topic=x&node=y", 404, `{"message":"NOT_FOUND"}`, jsonV1, ""},

		{"GET", "/metrics", 200, "# HELP nsqlookupd_producers Number of identified nsqd producers connected.\n" +
			"# TYPE nsqlookupd_producers gauge\nnsqlookupd_producers 1\n" +
			"# HELP nsqlookupd_topics Number of registered topics.\n" +
			"# TYPE nsqlookupd_topics gauge\nnsqlookupd_topics 2\n" +
			"# HELP nsqlookupd_channels Number of registered channels.\n" +
			"# TYPE nsqlookupd_channels gauge\nnsqlookupd_channels 1\n", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := do(t, l, tc.method, tc.path)
			if r.status != tc.status || r.body != tc.body {
				t.Errorf("= %d %s\nwant %d %s", r.status, r.body, tc.status, tc.body)
			}
			checkHeaders(t, r, tc.kind)
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestHTTPRedirectsAndPprof(t *testing.T) {
	l := startLookupd(t, nil)
	tests := []struct {
		method, path string
		status       int
		location     string
	}{
		{"GET", "/lookup/?topic=x", 301, "/lookup?topic=x"},
		{"POST", "/topic/create/?topic=x", 307, "/topic/create?topic=x"},
		{"GET", "/debug/pprof/", 301, "/debug/pprof"},
		{"GET", "/debug/pprof", 200, ""},
		{"GET", "/debug/pprof/cmdline", 200, ""},
		{"GET", "/debug/pprof/symbol", 200, ""},
		{"POST", "/debug/pprof/symbol", 200, ""},
		{"GET", "/debug/pprof/heap", 200, ""},
		{"GET", "/debug/pprof/goroutine", 200, ""},
		{"GET", "/debug/pprof/block", 200, ""},
		{"GET", "/debug/pprof/threadcreate", 200, ""},
		{"GET", "/debug/pprof/profile?seconds=1", 200, ""},
		{"GET", "/debug/pprof/allocs", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := do(t, l, tc.method, tc.path)
			if r.status != tc.status || r.header.Get("Location") != tc.location {
				t.Errorf("= %d Location %q, want %d %q", r.status, r.header.Get("Location"), tc.status, tc.location)
			}
		})
	}
}

func TestHTTPDebug(t *testing.T) {
	l := startLookupd(t, nil)
	if r := get(t, l, "/debug"); r.status != 200 || r.body != "{}" {
		t.Errorf("/debug with nothing registered = %d %s, want 200 {}", r.status, r.body)
	}
	c := dialV1(t, l)
	c.identify(4151)
	c.mustOK("REGISTER orders billing")
	post(t, l, "/topic/create?topic=empty")
	post(t, l, "/topic/tombstone?topic=orders&node=127.0.0.1:4151")

	r := get(t, l, "/debug")
	checkHeaders(t, r, jsonV1)
	var dbg map[string][]json.RawMessage
	if err := json.Unmarshal([]byte(r.body), &dbg); err != nil {
		t.Fatalf("/debug %q: %v", r.body, err)
	}
	var keys []string
	for k := range dbg {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"channel:orders:billing", "client::", "topic:orders:"}; !slices.Equal(keys, want) {
		t.Errorf("/debug keys = %q, want %q (keys without producers are left out)", keys, want)
	}
	remote := c.conn.LocalAddr().String()
	entry := func(key string) string {
		if len(dbg[key]) != 1 {
			t.Fatalf("/debug %s = %s, want one producer", key, dbg[key])
		}
		return string(dbg[key][0])
	}
	var lastUpdate int64
	var e struct {
		LastUpdate int64 `json:"last_update"`
	}
	json.Unmarshal(dbg["client::"][0], &e)
	lastUpdate = e.LastUpdate
	if lastUpdate < time.Now().Add(-time.Minute).UnixNano() {
		t.Errorf("last_update = %d, want about now", lastUpdate)
	}
	plain := fmt.Sprintf(`{"broadcast_address":"127.0.0.1","hostname":"vm","http_port":4151,"id":%q,"last_update":%d,"tcp_port":4150,"tombstoned":false,"tombstoned_at":-6795364578871345152,"topology_region":"","topology_zone":"","version":"1.3.0"}`, remote, lastUpdate)
	for _, key := range []string{"client::", "channel:orders:billing"} {
		if got := entry(key); got != plain {
			t.Errorf("/debug %s = %s\nwant %s", key, got, plain)
		}
	}
	got := entry("topic:orders:")
	if !strings.Contains(got, `"tombstoned":true,"tombstoned_at":`) || strings.Contains(got, "-6795364578871345152") {
		t.Errorf("/debug topic:orders: = %s, want tombstoned with a real time", got)
	}
}

func TestHTTPCreateDelete(t *testing.T) {
	l := startLookupd(t, nil)
	c := dialV1(t, l)
	c.identify(4151)
	c.mustOK("REGISTER orders billing")

	post(t, l, "/topic/create?topic=new")
	post(t, l, "/topic/create?topic=new") // idempotent
	post(t, l, "/channel/create?topic=t2&channel=c2")
	if got, want := topics(t, l), []string{"new", "orders", "t2"}; !slices.Equal(got, want) {
		t.Errorf("/topics = %q, want %q", got, want)
	}
	if res := lookup(t, l, "t2"); res.status != 200 || !slices.Equal(res.Channels, []string{"c2"}) || len(res.Producers) != 0 {
		t.Errorf("/lookup?topic=t2 = %+v, want channels [c2], no producers", res)
	}
	post(t, l, "/channel/delete?topic=t2&channel=c2")
	if got := channels(t, l, "t2"); len(got) != 0 {
		t.Errorf("/channels?topic=t2 after delete = %q", got)
	}
	if r := do(t, l, "POST", "/channel/delete?topic=t2&channel=c2"); r.status != 404 {
		t.Errorf("second /channel/delete = %d, want 404", r.status)
	}

	// Deleting a topic drops its channels and producers in nsqlookupd only:
	// the nsqd comes back when it registers again.
	post(t, l, "/topic/delete?topic=orders")
	if res := lookup(t, l, "orders"); res.status != 404 {
		t.Errorf("/lookup of a deleted topic = %d, want 404", res.status)
	}
	if got := channels(t, l, "orders"); len(got) != 0 {
		t.Errorf("/channels of a deleted topic = %q", got)
	}
	if n := nodes(t, l); len(n) != 1 || len(n[0].Topics) != 0 || n[0].Tombstones == nil {
		t.Errorf("/nodes = %+v, want the nsqd with topics [] and tombstones []", n)
	}
	c.mustOK("REGISTER orders billing")
	if res := lookup(t, l, "orders"); !slices.Equal(httpPorts(res.Producers), []int{4151}) || !slices.Equal(res.Channels, []string{"billing"}) {
		t.Errorf("/lookup after re-registration = %+v", res)
	}
}

func TestHTTPEmptyLists(t *testing.T) {
	l := startLookupd(t, nil)
	for path, want := range map[string]string{
		"/topics":          `{"topics":[]}`,
		"/nodes":           `{"producers":[]}`,
		"/channels?topic=": `{"channels":[]}`,
	} {
		if r := get(t, l, path); r.status != 200 || r.body != want {
			t.Errorf("GET %s = %d %s, want 200 %s", path, r.status, r.body, want)
		}
	}
	c := dialV1(t, l)
	c.identify(4151)
	want := fmt.Sprintf(`{"producers":[{"remote_address":%q,"hostname":"vm","broadcast_address":"127.0.0.1","tcp_port":4150,"http_port":4151,"version":"1.3.0","topology_zone":"","topology_region":"","tombstones":[],"topics":[]}]}`, c.conn.LocalAddr())
	if r := get(t, l, "/nodes"); r.body != want {
		t.Errorf("/nodes with a fresh nsqd = %s\nwant %s", r.body, want)
	}
}

func TestHTTPTombstone(t *testing.T) {
	const lifetime = 500 * time.Millisecond
	l := startLookupd(t, func(o *nsqlookupd.Options) { o.TombstoneLifetime = lifetime })
	a, b := dialV1(t, l), dialV1(t, l)
	a.identify(4151)
	b.identify(5151)
	a.mustOK("REGISTER t")
	a.mustOK("REGISTER u")
	b.mustOK("REGISTER t")

	start := time.Now()
	post(t, l, "/topic/tombstone?topic=t&node=127.0.0.1:4151")
	if got := httpPorts(lookup(t, l, "t").Producers); !slices.Equal(got, []int{5151}) {
		if time.Since(start) < lifetime {
			t.Errorf("/lookup?topic=t = %v, want the tombstoned 4151 hidden", got)
		}
	}
	if got := httpPorts(lookup(t, l, "u").Producers); !slices.Equal(got, []int{4151}) {
		t.Errorf("/lookup?topic=u = %v, want 4151 (tombstones are per topic)", got)
	}
	n := nodes(t, l)
	if len(n) != 2 || n[0].HTTPPort != 4151 || !slices.Equal(n[0].Topics, []string{"t", "u"}) || !slices.Equal(n[0].Tombstones, []bool{true, false}) {
		if time.Since(start) < lifetime {
			t.Errorf("/nodes = %+v, want 4151 listed with tombstones [true false]", n)
		}
	}
	eventually(t, "the tombstone to expire", func() bool {
		return slices.Equal(httpPorts(lookup(t, l, "t").Producers), []int{4151, 5151})
	})
	if time.Since(start) < lifetime {
		t.Errorf("tombstone expired after %v, want %v", time.Since(start), lifetime)
	}
}

// The usual sequence: nsqadmin tombstones a node and deletes the topic there;
// the nsqd unregisters; when it gets the topic again it registers again and
// is found at once.
func TestTombstoneThenReRegister(t *testing.T) {
	l := startLookupd(t, func(o *nsqlookupd.Options) { o.TombstoneLifetime = time.Hour })
	c := dialV1(t, l)
	c.identify(4151)
	c.mustOK("REGISTER t c")
	post(t, l, "/topic/tombstone?topic=t&node=127.0.0.1:4151")
	if got := lookup(t, l, "t").Producers; len(got) != 0 {
		t.Fatalf("/lookup after tombstone = %v, want none", got)
	}
	c.mustOK("REGISTER t") // still registered: the tombstone stays
	if got := lookup(t, l, "t").Producers; len(got) != 0 {
		t.Fatalf("/lookup after REGISTER of a tombstoned topic = %v, want none", got)
	}
	c.mustOK("UNREGISTER t c")
	c.mustOK("UNREGISTER t")
	c.mustOK("REGISTER t c")
	if got := httpPorts(lookup(t, l, "t").Producers); !slices.Equal(got, []int{4151}) {
		t.Errorf("/lookup after re-registration = %v, want [4151]", got)
	}
}

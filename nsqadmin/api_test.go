package nsqadmin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqclone/nsq/nsqadmin"
	"github.com/nsqclone/nsq/nsqd"
	"github.com/nsqclone/nsq/nsqlookupd"
)

// cluster is a lookupd with two nsqds: topic "orders" on both, channel
// "billing" on both (with a consumer on the first) and "archive" on the
// second; 3 messages published to the first nsqd and 2 to the second.
type cluster struct {
	lookupd *nsqlookupd.NSQLookupd
	n1, n2  *nsqd.NSQD
}

func (c *cluster) node1() string { return c.n1.HTTPAddr().String() }
func (c *cluster) node2() string { return c.n2.HTTPAddr().String() }

func startCluster(t *testing.T) *cluster {
	t.Helper()
	l := startLookupd(t)
	c := &cluster{lookupd: l}
	c.n1 = startNSQD(t, l.TCPAddr().String())
	c.n2 = startNSQD(t, l.TCPAddr().String())
	for i := range 3 {
		nsqdPost(t, c.n1, "/pub?topic=orders", fmt.Sprint("m", i))
	}
	for i := range 2 {
		nsqdPost(t, c.n2, "/pub?topic=orders", fmt.Sprint("n", i))
	}
	nsqdPost(t, c.n1, "/channel/create?topic=orders&channel=billing", "")
	nsqdPost(t, c.n2, "/channel/create?topic=orders&channel=billing", "")
	nsqdPost(t, c.n2, "/channel/create?topic=orders&channel=archive", "")

	cfg := nsq.NewConfig()
	cfg.ClientID = "worker-1"
	cfg.Hostname = "worker1.example.com"
	cfg.UserAgent = "admin-test/1.0"
	cons, err := nsq.NewConsumer("orders", "billing", cfg)
	if err != nil {
		t.Fatal(err)
	}
	cons.SetLogger(nsqtest.ClientLogger(t), nsq.LogLevelWarning)
	cons.AddHandler(nsq.HandlerFunc(func(*nsq.Message) error { return nil }))
	if err := cons.ConnectToNSQD(c.n1.TCPAddr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cons.Stop()
		select {
		case <-cons.StopChan:
		case <-time.After(5 * time.Second):
		}
	})
	lookupdHTTP := "http://" + l.HTTPAddr().String()
	waitFor(t, "both nsqds to register orders in nsqlookupd", func() bool {
		r := do(t, http.MethodGet, lookupdHTTP+"/lookup?topic=orders", nil)
		var v struct {
			Producers []any `json:"producers"`
		}
		json.Unmarshal(r.body, &v)
		return len(v.Producers) == 2
	})
	waitFor(t, "the consumer to subscribe", func() bool {
		cs := channelStats(c.n1, "orders", "billing")
		return cs != nil && cs.ClientCount == 1
	})
	return c
}

func (c *cluster) admin(t *testing.T, modify func(*nsqadmin.Options)) *admin {
	return startAdmin(t, func(o *nsqadmin.Options) {
		o.NSQLookupdHTTPAddresses = []string{c.lookupd.HTTPAddr().String()}
		if modify != nil {
			modify(o)
		}
	})
}

// get digs a value out of decoded JSON: keys for objects, ints for arrays.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func TestAPIReadLookupdMode(t *testing.T) {
	c := startCluster(t)
	a := c.admin(t, nil)

	topics := a.getOK(t, "/api/topics")
	if got := fmt.Sprint(topics["topics"]); got != "[orders]" || topics["message"] != "" {
		t.Errorf("GET /api/topics = %v", topics)
	}

	topic := a.getOK(t, "/api/topics/orders")
	for k, want := range map[string]any{"node": "*", "topic_name": "orders", "message_count": 5.0, "paused": false, "message": ""} {
		if topic[k] != want {
			t.Errorf("topic %s = %v, want %v", k, topic[k], want)
		}
	}
	nodes := topic["nodes"].([]any)
	if len(nodes) != 2 {
		t.Fatalf("topic nodes = %v", nodes)
	}
	gotNodes := []string{get(nodes, 0, "node").(string), get(nodes, 1, "node").(string)}
	slices.Sort(gotNodes)
	wantNodes := []string{c.node1(), c.node2()}
	slices.Sort(wantNodes)
	if !slices.Equal(gotNodes, wantNodes) {
		t.Errorf("topic nodes = %v, want %v", gotNodes, wantNodes)
	}
	if get(nodes, 0, "nodes") != nil {
		t.Errorf("per-node topic has nodes %v, want null", get(nodes, 0, "nodes"))
	}
	chans := topic["channels"].([]any)
	if len(chans) != 2 || get(chans, 0, "channel_name") != "archive" || get(chans, 1, "channel_name") != "billing" {
		t.Fatalf("topic channels = %v", chans)
	}
	if get(chans, 1, "node") != "*" || get(chans, 1, "message_count") != 5.0 || get(chans, 1, "client_count") != 1.0 {
		t.Errorf("billing (on both nodes) = %v", chans[1])
	}
	if get(chans, 0, "node") != c.node2() || get(chans, 0, "nodes") != nil {
		t.Errorf("archive (on one node) = %v", chans[0])
	}
	e2e := topic["e2e_processing_latency"]
	if get(e2e, "host") != "*" || get(e2e, "topic") != "orders" {
		t.Errorf("topic e2e_processing_latency = %v", e2e)
	}
	if p := get(e2e, "percentiles", 0); p == nil || get(p, "value") != nil || get(p, "quantile") != 0.99 {
		t.Errorf("aggregate percentile = %v, want quantile 0.99 without value", p)
	}

	ch := a.getOK(t, "/api/topics/orders/billing")
	if ch["node"] != "*" || ch["channel_name"] != "billing" || ch["client_count"] != 1.0 || len(ch["nodes"].([]any)) != 2 {
		t.Errorf("GET /api/topics/orders/billing = %v", ch)
	}
	clients := ch["clients"].([]any)
	if len(clients) != 1 {
		t.Fatalf("clients = %v", clients)
	}
	cl := clients[0].(map[string]any)
	for k, want := range map[string]any{
		"node": c.node1(), "client_id": "worker-1", "hostname": "worker1.example.com", "user_agent": "admin-test/1.0",
		"version": "V2", "authed": false, "auth_identity": "", "tls": false,
	} {
		if cl[k] != want {
			t.Errorf("client %s = %v, want %v", k, cl[k], want)
		}
	}
	if _, ok := cl["connected"].(float64); !ok {
		t.Errorf("client has no connected: %v", cl)
	}

	nodesResp := a.getOK(t, "/api/nodes")
	ns := nodesResp["nodes"].([]any)
	if len(ns) != 2 {
		t.Fatalf("GET /api/nodes = %v", nodesResp)
	}
	for _, n := range ns {
		n := n.(map[string]any)
		if len(n["remote_addresses"].([]any)) != 1 || n["broadcast_address"] != "127.0.0.1" || n["out_of_date"] != false ||
			fmt.Sprint(n["topics"]) != "[map[tombstoned:false topic:orders]]" {
			t.Errorf("node = %v", n)
		}
	}

	node := a.getOK(t, "/api/nodes/"+c.node1())
	if node["node"] != c.node1() || node["total_messages"] != 3.0 || node["total_clients"] != 1.0 {
		t.Errorf("GET /api/nodes/%s = %v", c.node1(), node)
	}
	if get(node, "topics", 0, "channels", 0, "clients", 0, "client_id") != "worker-1" {
		t.Errorf("node topics lack the client: %v", node["topics"])
	}

	counter := a.getOK(t, "/api/counter")
	stats := counter["stats"].(map[string]any)
	key := "orders:billing:" + c.node1()
	if get(stats, key, "message_count") != 3.0 || get(stats, key, "node") != c.node1() || len(stats) != 3 {
		t.Errorf("GET /api/counter = %v", counter)
	}

	// POST /api/topics registers in nsqlookupd only: the topic is inactive.
	r := do(t, http.MethodPost, a.base+"/api/topics", map[string]string{"topic": "idle", "channel": "c1"})
	if r.status != http.StatusOK || string(r.body) != `{"message":""}` {
		t.Fatalf("POST /api/topics: %d %s", r.status, r.body)
	}
	inactive := a.getOK(t, "/api/topics?inactive=true")
	if fmt.Sprint(inactive["topics"]) != "map[idle:[c1]]" {
		t.Errorf("GET /api/topics?inactive=true = %v", inactive)
	}
	if got := fmt.Sprint(a.getOK(t, "/api/topics")["topics"]); got != "[idle orders]" {
		t.Errorf("topics after create = %v", got)
	}
	// A registered topic without producers has an empty aggregate.
	idle := a.getOK(t, "/api/topics/idle")
	if len(idle["nodes"].([]any)) != 0 || idle["message_count"] != 0.0 {
		t.Errorf("GET /api/topics/idle = %v", idle)
	}
}

func TestAPIHistory(t *testing.T) {
	c := startCluster(t)
	a := c.admin(t, nil)
	waitFor(t, "two samples with the topic", func() bool {
		h := a.getOK(t, "/api/history?topic=orders")
		msgs, _ := get(h, "series", "messages").([]any)
		n := 0
		for _, m := range msgs {
			if m != nil {
				n++
			}
		}
		return n >= 2
	})
	nsqdPost(t, c.n1, "/pub?topic=orders", "more")
	waitFor(t, "the new message in the history", func() bool {
		h := a.getOK(t, "/api/history?topic=orders&channel=billing")
		msgs, _ := get(h, "series", "messages").([]any)
		return len(msgs) > 0 && msgs[len(msgs)-1] == 6.0
	})
	h := a.getOK(t, "/api/history")
	if h["interval_ms"] != 50.0 || h["window_ms"] != 600000.0 {
		t.Errorf("history interval/window = %v/%v", h["interval_ms"], h["window_ms"])
	}
	times := h["times"].([]any)
	if len(times) < 2 || len(get(h, "series", "rate").([]any)) != len(times) {
		t.Errorf("history = %v", h)
	}
	if get(h, "children", "orders", "depth") == nil {
		t.Errorf("history has no series for orders: %v", h["children"])
	}
	th := a.getOK(t, "/api/history?topic=orders")
	if get(th, "children", "billing") == nil || get(th, "children", "archive") == nil {
		t.Errorf("topic history children = %v", th["children"])
	}
	wantError(t, "history of a bad topic name", a.get(t, "/api/history?topic=bad*name"), 400, "INVALID_TOPIC")
	wantError(t, "history of a channel without topic", a.get(t, "/api/history?channel=x"), 400, "INVALID_CHANNEL")
}

func TestAPIActions(t *testing.T) {
	c := startCluster(t)
	a := c.admin(t, nil)
	post := func(path string, body any) {
		t.Helper()
		r := do(t, http.MethodPost, a.base+path, body)
		if r.status != http.StatusOK || string(r.body) != `{"message":""}` {
			t.Fatalf("POST %s %v: %d %s", path, body, r.status, r.body)
		}
	}
	del := func(path string, body any) {
		t.Helper()
		r := do(t, http.MethodDelete, a.base+path, body)
		if r.status != http.StatusOK || string(r.body) != `{"message":""}` {
			t.Fatalf("DELETE %s: %d %s", path, r.status, r.body)
		}
	}

	post("/api/topics/orders/billing", map[string]string{"action": "pause"})
	for _, n := range []*nsqd.NSQD{c.n1, c.n2} {
		if cs := channelStats(n, "orders", "billing"); cs == nil || !cs.Paused {
			t.Errorf("billing not paused on %s: %+v", n.HTTPAddr(), cs)
		}
	}
	if !a.getOK(t, "/api/topics/orders/billing")["paused"].(bool) {
		t.Error("API does not report billing paused")
	}
	post("/api/topics/orders/billing", map[string]string{"action": "unpause"})
	if cs := channelStats(c.n2, "orders", "billing"); cs.Paused {
		t.Error("billing still paused after unpause")
	}
	post("/api/topics/orders/billing", map[string]string{"action": "empty"})
	if cs := channelStats(c.n2, "orders", "billing"); cs.Depth != 0 {
		t.Errorf("billing depth after empty = %d", cs.Depth)
	}

	post("/api/topics/orders", map[string]string{"action": "pause"})
	if ts := topicStats(c.n1, "orders"); !ts.Paused {
		t.Error("orders not paused")
	}
	post("/api/topics/orders", map[string]string{"action": "unpause"})
	post("/api/topics/orders", map[string]string{"action": "empty"})
	if ts := topicStats(c.n1, "orders"); ts.Paused {
		t.Error("orders still paused")
	}

	// A channel created through the API lands on the topic's producers.
	post("/api/topics", map[string]string{"topic": "orders", "channel": "audit"})
	for _, n := range []*nsqd.NSQD{c.n1, c.n2} {
		if channelStats(n, "orders", "audit") == nil {
			t.Errorf("audit not created on %s", n.HTTPAddr())
		}
	}
	del("/api/topics/orders/archive", nil)
	if channelStats(c.n2, "orders", "archive") != nil {
		t.Error("archive not deleted")
	}
	wantError(t, "deleting it again", do(t, http.MethodDelete, a.base+"/api/topics/orders/archive", nil), 404, "CHANNEL_NOT_FOUND")

	del("/api/nodes/"+c.node2(), map[string]string{"topic": "orders"})
	if topicStats(c.n2, "orders") != nil {
		t.Error("orders not deleted on the tombstoned node")
	}
	del("/api/topics/orders", nil)
	if topicStats(c.n1, "orders") != nil {
		t.Error("orders not deleted")
	}
	waitFor(t, "orders to leave the topic list", func() bool {
		return !strings.Contains(fmt.Sprint(a.getOK(t, "/api/topics")["topics"]), "orders")
	})
}

func TestAPIBadRequests(t *testing.T) {
	c := startCluster(t)
	a := c.admin(t, nil)
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		message      string
	}{
		{"GET", "/api/topics/nope", nil, 404, "TOPIC_NOT_FOUND"},
		{"GET", "/api/topics/orders/nope", nil, 404, "CHANNEL_NOT_FOUND"},
		{"GET", "/api/topics/nope/billing", nil, 404, "TOPIC_NOT_FOUND"},
		{"GET", "/api/nodes/127.0.0.1:1", nil, 404, "NODE_NOT_FOUND"},
		{"GET", "/api/topics/bad*topic", nil, 400, "INVALID_TOPIC"},
		{"GET", "/api/topics/orders/bad*chan", nil, 400, "INVALID_CHANNEL"},
		{"GET", "/api/topics?inactive=%zz", nil, 400, "INVALID_REQUEST"},
		{"GET", "/api/nothing", nil, 404, "NOT_FOUND"},
		{"PUT", "/api/topics", "{}", 405, "METHOD_NOT_ALLOWED"},
		{"POST", "/api/topics", "nope", 400, "invalid character 'o' in literal null (expecting 'u')"},
		{"POST", "/api/topics", "", 400, "EOF"},
		{"POST", "/api/topics", map[string]string{"topic": ""}, 400, "INVALID_TOPIC"},
		{"POST", "/api/topics", map[string]string{"topic": "bad*name"}, 400, "INVALID_TOPIC"},
		{"POST", "/api/topics", map[string]string{"topic": "ok", "channel": "bad*name"}, 400, "INVALID_CHANNEL"},
		{"POST", "/api/topics/orders", map[string]string{"action": "explode"}, 400, "INVALID_ACTION"},
		{"POST", "/api/topics/orders", "[", 400, "unexpected end of JSON input"},
		{"POST", "/api/topics/orders/billing", map[string]string{}, 400, "INVALID_ACTION"},
		{"POST", "/api/topics/nope", map[string]string{"action": "pause"}, 404, "TOPIC_NOT_FOUND"},
		{"POST", "/api/topics/orders/nope", map[string]string{"action": "pause"}, 404, "CHANNEL_NOT_FOUND"},
		{"DELETE", "/api/topics/nope", nil, 404, "TOPIC_NOT_FOUND"},
		{"DELETE", "/api/nodes/" + c.node1(), "not json", 400, "INVALID_BODY"},
		{"DELETE", "/api/nodes/" + c.node1(), map[string]string{"topic": "bad*"}, 400, "INVALID_TOPIC"},
		{"DELETE", "/api/nodes/127.0.0.1:1", map[string]string{"topic": "orders"}, 404, "NODE_NOT_FOUND"},
		{"GET", "/api/graphite?metric=rate&target=x", nil, 500, "INTERNAL_ERROR"},
		{"GET", "/api/graphite?target=x", nil, 400, "INVALID_ARG_METRIC"},
		{"GET", "/api/graphite?metric=rate", nil, 400, "INVALID_ARG_TARGET"},
	} {
		wantError(t, tc.method+" "+tc.path, do(t, tc.method, a.base+tc.path, tc.body), tc.status, tc.message)
	}
}

func TestAPIAdminOnly(t *testing.T) {
	c := startCluster(t)
	a := c.admin(t, func(o *nsqadmin.Options) { o.AdminUsers = []string{"alice"} })
	for _, tc := range []struct{ method, path string }{
		{"POST", "/api/topics"}, {"POST", "/api/topics/orders"}, {"POST", "/api/topics/orders/billing"},
		{"DELETE", "/api/topics/orders"}, {"DELETE", "/api/topics/orders/billing"}, {"DELETE", "/api/nodes/" + c.node1()},
	} {
		wantError(t, tc.method+" "+tc.path+" without user", do(t, tc.method, a.base+tc.path, map[string]string{"action": "pause", "topic": "orders"}), 403, "FORBIDDEN")
		wantError(t, tc.method+" "+tc.path+" as bob", do(t, tc.method, a.base+tc.path, map[string]string{"action": "pause", "topic": "orders"},
			"X-Forwarded-User", "bob"), 403, "FORBIDDEN")
	}
	if cs := channelStats(c.n1, "orders", "billing"); cs == nil || cs.Paused {
		t.Fatal("a refused action had an effect")
	}
	r := do(t, "POST", a.base+"/api/topics/orders/billing", map[string]string{"action": "pause"}, "X-Forwarded-User", "alice")
	if r.status != 200 {
		t.Fatalf("admin pause: %d %s", r.status, r.body)
	}
	if !channelStats(c.n1, "orders", "billing").Paused {
		t.Error("admin pause had no effect")
	}
	// Reads stay open; the page tells the UI who is admin.
	a.getOK(t, "/api/topics")
	if page := a.get(t, "/"); !strings.Contains(string(page.body), "var IS_ADMIN = false;") {
		t.Errorf("page for a non-admin lacks IS_ADMIN = false")
	}
	if page := do(t, "GET", a.base+"/", nil, "X-Forwarded-User", "alice"); !strings.Contains(string(page.body), "var IS_ADMIN = true;") {
		t.Errorf("page for an admin lacks IS_ADMIN = true")
	}
}

// A node that does not answer is named in a warning; the others still count.
func TestAPINodeDownNSQDMode(t *testing.T) {
	n := startNSQD(t)
	nsqdPost(t, n, "/pub?topic=orders", "x")
	nsqdPost(t, n, "/channel/create?topic=orders&channel=billing", "")
	dead := deadAddr(t)
	a := startAdmin(t, func(o *nsqadmin.Options) { o.NSQDHTTPAddresses = []string{n.HTTPAddr().String(), dead} })

	for _, path := range []string{"/api/topics", "/api/topics/orders", "/api/topics/orders/billing", "/api/nodes", "/api/counter"} {
		v := a.getOK(t, path)
		msg, _ := v["message"].(string)
		if !strings.HasPrefix(msg, "WARNING: ") || !strings.Contains(msg, dead) {
			t.Errorf("GET %s: message %q, want a warning naming %s", path, msg, dead)
		}
		ue := get(v, "upstream_errors", 0)
		if get(ue, "node") != dead || get(ue, "kind") != "nsqd" || !strings.Contains(fmt.Sprint(get(ue, "error")), "refused") {
			t.Errorf("GET %s: upstream_errors = %v", path, v["upstream_errors"])
		}
	}
	if got := a.getOK(t, "/api/topics/orders")["message_count"]; got != 1.0 {
		t.Errorf("message_count with a node down = %v, want 1", got)
	}
	if got := fmt.Sprint(a.getOK(t, "/api/topics")["topics"]); got != "[orders]" {
		t.Errorf("topics with a node down = %v", got)
	}
	// The live node is found; a pause reaches it with a warning about the other.
	r := do(t, "POST", a.base+"/api/topics/orders/billing", map[string]string{"action": "pause"})
	if r.status != 200 || !strings.Contains(string(r.body), "WARNING") {
		t.Errorf("pause with a node down: %d %s", r.status, r.body)
	}
	if !channelStats(n, "orders", "billing").Paused {
		t.Error("pause did not reach the live node")
	}
	node := a.getOK(t, "/api/nodes/"+n.HTTPAddr().String())
	if node["total_messages"] != 1.0 {
		t.Errorf("node = %v", node)
	}
	// The dead node's own page says who failed.
	r = a.get(t, "/api/nodes/"+dead)
	if r.status != http.StatusBadGateway || !strings.Contains(string(r.body), "UPSTREAM_ERROR: failed to query any nsqd") {
		t.Errorf("GET /api/nodes/<dead>: %d %s", r.status, r.body)
	}
}

func TestAPIAllUpstreamsDown(t *testing.T) {
	dead1, dead2 := deadAddr(t), deadAddr(t)
	a := startAdmin(t, func(o *nsqadmin.Options) { o.NSQLookupdHTTPAddresses = []string{dead1, dead2} })
	for _, path := range []string{"/api/topics", "/api/nodes", "/api/counter", "/api/topics/orders", "/api/topics?inactive=true"} {
		r := a.get(t, path)
		v := r.json(t)
		msg, _ := v["message"].(string)
		if r.status != http.StatusBadGateway || !strings.HasPrefix(msg, "UPSTREAM_ERROR: failed to query any nsqlookupd: ") ||
			!strings.Contains(msg, dead1) || !strings.Contains(msg, dead2) {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
		if errs, _ := v["upstream_errors"].([]any); len(errs) != 2 || get(errs, 0, "kind") != "nsqlookupd" {
			t.Errorf("GET %s: upstream_errors = %v", path, v["upstream_errors"])
		}
	}
	r := do(t, "POST", a.base+"/api/topics", map[string]string{"topic": "t"})
	if r.status != http.StatusBadGateway {
		t.Errorf("create with every lookupd down: %d %s", r.status, r.body)
	}
}

// Seed 001 runs nsqadmin with two lookupds; one of them may be down.
func TestAPITwoLookupds(t *testing.T) {
	l1, l2 := startLookupd(t), startLookupd(t)
	n := startNSQD(t, l1.TCPAddr().String(), l2.TCPAddr().String())
	nsqdPost(t, n, "/pub?topic=testTopic1", "hello")
	dead := deadAddr(t)
	a := startAdmin(t, func(o *nsqadmin.Options) {
		o.NSQLookupdHTTPAddresses = []string{l1.HTTPAddr().String(), l2.HTTPAddr().String(), dead}
	})
	waitFor(t, "the node to be known to both lookupds", func() bool {
		// Until the first lookupd has the node, "nodes" is empty.
		addrs, _ := get(a.getOK(t, "/api/nodes"), "nodes", 0, "remote_addresses").([]any)
		return len(addrs) == 2
	})
	v := a.getOK(t, "/api/nodes")
	if len(v["nodes"].([]any)) != 1 || !strings.Contains(v["message"].(string), dead) {
		t.Errorf("nodes with two lookupds and a dead one = %v", v)
	}
	topic := a.getOK(t, "/api/topics/testTopic1")
	if topic["message_count"] != 1.0 || len(topic["nodes"].([]any)) != 1 {
		t.Errorf("topic seen through two lookupds = %v", topic)
	}
}

package clusterinfo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.3.0", "1.3.0", 0},
		{"1.2.0", "1.3.0", -1},
		{"1.2.10", "1.2.9", 1},
		{"1.3.0-alpha", "1.3.0", -1},
		{"v1.3.0", "1.3", 0},
		{"1.3.0", "", 1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestAggregateE2e(t *testing.T) {
	node := func(count int64, v99, v50 float64) *E2eLatency {
		e := nsqdE2e{Count: count}
		e.Percentiles = append(e.Percentiles, struct {
			Quantile float64 `json:"quantile"`
			Value    float64 `json:"value"`
		}{0.99, v99}, struct {
			Quantile float64 `json:"quantile"`
			Value    float64 `json:"value"`
		}{0.5, v50})
		return nodeE2e(e)
	}
	a, b := node(1, 100, 10), node(3, 200, 20)
	if p := a.Percentiles[0]; *p.Value != 100 || p.Min != 100 || p.Max != 100 || p.Average != 100 || p.Count != 1 {
		t.Errorf("per-node percentile = %+v", p)
	}
	agg := aggregateE2e("t", "c", []*E2eLatency{a, b, nil})
	if agg.Count != 4 || agg.Topic != "t" || agg.Channel != "c" || agg.Host != "*" || len(agg.Percentiles) != 2 {
		t.Fatalf("aggregate = %+v", agg)
	}
	p := agg.Percentiles[0]
	if p.Value != nil || p.Quantile != 0.99 || p.Count != 4 || p.Min != 100 || p.Max != 200 || p.Average != 175 {
		t.Errorf("aggregate p99 = %+v", p)
	}
	if got := aggregateE2e("t", "", []*E2eLatency{nodeE2e(nsqdE2e{})}); got.Percentiles != nil {
		t.Errorf("aggregate of nodes without percentiles = %+v", got)
	}
}

func TestErrors(t *testing.T) {
	e1 := &NodeError{Kind: KindNSQD, Addr: "a:1", Err: errors.New("boom")}
	e2 := &NodeError{Kind: KindNSQD, Addr: "b:2", Err: errors.New("bang")}
	if err := result(KindNSQD, 2, nil); err != nil {
		t.Errorf("result with no failures = %v", err)
	}
	partial := result(KindNSQD, 2, Errors{e1})
	if _, ok := errors.AsType[*PartialError](partial); !ok || partial.Error() != "boom" {
		t.Errorf("result with one of two failed = %#v", partial)
	}
	all := result(KindNSQD, 2, Errors{e1, e2})
	if _, ok := errors.AsType[*UpstreamError](all); !ok || all.Error() != "failed to query any nsqd: boom; bang" {
		t.Errorf("result with all failed = %v", all)
	}
	if none := result(KindNSQD, 0, nil); none.Error() != "failed to query any nsqd: " {
		t.Errorf("result with nothing to ask = %q", none)
	}
	if got := NodeErrors(errors.Join(partial, all)); len(got) != 3 {
		t.Errorf("NodeErrors = %v", got)
	}
	if err := Merge(nil, nil); err != nil {
		t.Errorf("Merge(nil, nil) = %v", err)
	}
}

// fakeNSQD serves /info and /stats like an nsqd on addr's port.
func fakeNSQD(t *testing.T, stats string, hits *sync.Map) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.Store(r.URL.Path+" "+r.Header.Get("Accept"), true)
		}
		port := r.Host[strings.LastIndex(r.Host, ":")+1:]
		switch r.URL.Path {
		case "/info":
			fmt.Fprintf(w, `{"version":"1.3.0","broadcast_address":"127.0.0.1","hostname":"h-%s","http_port":%s,"tcp_port":4150}`, port, port)
		case "/stats":
			w.Write([]byte(stats))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func newTestClient() *Client {
	return New(Config{ConnectTimeout: time.Second, RequestTimeout: 2 * time.Second, UserAgent: "test"})
}

func TestNSQDModeAggregation(t *testing.T) {
	const stats = `{"version":"1.3.0","health":"OK","topics":[{"topic_name":"t","channels":[` +
		`{"channel_name":"c","depth":3,"backend_depth":1,"backend_skipped_regions":1,"backend_skipped_bytes":130,` +
		`"in_flight_count":2,"deferred_count":0,"message_count":10,` +
		`"global_msg_count":4,"requeue_count":1,"timeout_count":0,"client_count":1,"clients":[` +
		`{"client_id":"x","hostname":"cons","version":"V2","remote_address":"127.0.0.1:5555","connect_ts":1,"user_agent":"ua"}],` +
		`"paused":true,"e2e_processing_latency":{"count":0,"percentiles":null}}],` +
		`"depth":0,"backend_depth":0,"backend_skipped_regions":2,"backend_skipped_bytes":7,` +
		`"message_count":10,"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}}]}`
	var hits sync.Map
	s1, s2 := fakeNSQD(t, stats, &hits), fakeNSQD(t, stats, nil)
	addr1, addr2 := strings.TrimPrefix(s1.URL, "http://"), strings.TrimPrefix(s2.URL, "http://")
	c := NewCluster(newTestClient(), nil, []string{addr1, addr2})
	ctx := context.Background()

	ts, err := c.TopicStats(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if ts.Node != "*" || ts.MessageCount != 20 || len(ts.Nodes) != 2 || len(ts.Channels) != 1 {
		t.Fatalf("topic = %+v", ts)
	}
	ch := ts.Channels[0]
	if ch.Node != "*" || ch.Depth != 6 || ch.MemoryDepth != 4 || ch.InFlightCount != 4 || ch.DeliveryMsgCount != 8 ||
		ch.GlobalMsgCount != 8 || ch.ClientCount != 2 || !ch.Paused || len(ch.Nodes) != 2 {
		t.Errorf("merged channel = %+v", ch)
	}
	// Damaged disk-queue data skipped (nsqd's backend_skipped_*) adds up.
	if want := (BackendSkipped{2, 260}); ch.BackendSkipped != want || ch.Nodes[0].BackendSkipped != (BackendSkipped{1, 130}) {
		t.Errorf("channel backend skipped = %+v (node %+v), want %+v", ch.BackendSkipped, ch.Nodes[0].BackendSkipped, want)
	}
	if want := (BackendSkipped{4, 14}); ts.BackendSkipped != want {
		t.Errorf("topic backend skipped = %+v, want %+v", ts.BackendSkipped, want)
	}
	cs, err := c.ChannelStats(ctx, "t", "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Clients) != 2 || cs.Clients[0].Node == cs.Clients[1].Node || cs.Clients[0].Connected <= 0 ||
		cs.Clients[0].Connected%int64(time.Second) != 0 {
		t.Errorf("channel clients = %+v %+v", cs.Clients[0], cs.Clients[1])
	}
	if _, err := c.ChannelStats(ctx, "t", "nope"); !errors.Is(err, ErrChannelNotFound) {
		t.Errorf("unknown channel: %v", err)
	}
	producers, err := c.Producers(ctx)
	if err != nil || len(producers) != 2 || producers[0].RemoteAddresses != nil || producers[0].Topics[0].Topic != "t" {
		t.Errorf("producers = %+v, %v", producers, err)
	}
	if _, ok := hits.Load("/stats application/vnd.nsq; version=1.0"); !ok {
		t.Error("requests lack the V1 Accept header")
	}
}

func TestLookupdMerge(t *testing.T) {
	lookupd := func(remote string, tomb bool) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/nodes":
				fmt.Fprintf(w, `{"producers":[{"remote_address":%q,"hostname":"h","broadcast_address":"10.0.0.1","tcp_port":4150,"http_port":4151,"version":"1.3.0","tombstones":[%v],"topics":["a"]},`+
					`{"remote_address":"r","hostname":"g","broadcast_address":"10.0.0.2","tcp_port":4150,"http_port":4151,"version":"1.2.0","tombstones":[],"topics":[]}]}`, remote, tomb)
			case "/topics":
				fmt.Fprintf(w, `{"topics":["b","a"]}`)
			case "/lookup":
				http.Error(w, `{"message":"TOPIC_NOT_FOUND"}`, 404)
			}
		}))
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	l1, l2 := lookupd("1.1.1.1:1", false), lookupd("1.1.1.1:2", true)
	c := NewCluster(newTestClient(), func() []string { return []string{l1, l2} }, nil)
	ps, err := c.Producers(context.Background())
	if err != nil || len(ps) != 2 {
		t.Fatalf("producers = %v, %v", ps, err)
	}
	g, h := ps[0], ps[1] // sorted by hostname
	if h.Hostname != "h" || len(h.RemoteAddresses) != 2 || !h.Topics[0].Tombstoned || h.OutOfDate || !g.OutOfDate {
		t.Errorf("merged producers = %+v %+v", h, g)
	}
	topics, err := c.Topics(context.Background())
	if err != nil || fmt.Sprint(topics) != "[a b]" {
		t.Errorf("topics = %v, %v", topics, err)
	}
	if _, err := c.TopicStats(context.Background(), "zzz"); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("unknown topic: %v", err)
	}
}

// An nsqd with --tls-required answers 403 with its HTTPS port on plain HTTP:
// the request is retried there.
func TestTLSRequiredRetry(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"topics":["secure"]}`))
	}))
	defer tlsSrv.Close()
	_, httpsPort, _ := net.SplitHostPort(strings.TrimPrefix(tlsSrv.URL, "https://"))
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(403)
		fmt.Fprintf(w, `{"message": "TLS_REQUIRED", "https_port": %s}`, httpsPort)
	}))
	defer plain.Close()
	c := New(Config{ConnectTimeout: time.Second, RequestTimeout: time.Second, TLS: tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig})
	var v struct {
		Topics []string `json:"topics"`
	}
	if err := c.getJSON(context.Background(), strings.TrimPrefix(plain.URL, "http://"), "/topics", &v); err != nil || fmt.Sprint(v.Topics) != "[secure]" {
		t.Errorf("getJSON = %v, %v", v, err)
	}
}

func TestUpstreamDown(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	c := NewCluster(newTestClient(), nil, []string{dead})
	_, err := c.Topics(context.Background())
	ue, ok := errors.AsType[*UpstreamError](err)
	if !ok || len(ue.Errors) != 1 || ue.Errors[0].Addr != dead || ue.Errors[0].Kind != KindNSQD ||
		!strings.Contains(ue.Errors[0].Reason(), "connection refused") || strings.Contains(ue.Errors[0].Reason(), "Get ") {
		t.Errorf("Topics with the only nsqd down = %#v", err)
	}
	if !strings.Contains(err.Error(), `Get "http://`+dead+`/stats`) {
		t.Errorf("error text %q does not name the URL", err)
	}
}

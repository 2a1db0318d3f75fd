package nsqd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches url and parses the text exposition format.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// metricValue is the value of the sample of family name with exactly the
// given labels (name=value pairs); ok is false when there is none.
func metricValue(mfs map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	want := make(map[string]string)
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_UNTYPED:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// requeuer finishes every message but "r", which it requeues for 10 min.
type requeuer struct{ collector }

func (h *requeuer) HandleMessage(m *nsq.Message) error {
	if string(m.Body) == "r" {
		m.DisableAutoResponse()
		m.RequeueWithoutBackoff(10 * time.Minute)
		return nil
	}
	return h.collector.HandleMessage(m)
}

func TestMetrics(t *testing.T) {
	o := testOptions(t)
	o.E2EProcessingLatencyPercentiles = []float64{1, 0.99, 0.5}
	n := startNSQD(t, o)
	url := "http://" + n.HTTPAddr().String() + "/metrics"

	topic, _ := n.GetTopic("orders")
	audit, _ := topic.GetChannel("audit")
	audit.Pause()
	var h requeuer
	newConsumer(t, n, "orders", "billing", &h, nil)
	p := newProducer(t, n)
	if err := p.MultiPublish("orders", [][]byte{[]byte("a"), []byte("bb"), []byte("r")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		c := n.Stats("orders", "billing", false).Topics[0].Channels[0]
		return h.count() == 2 && c.RequeueCount == 1 && c.DeferredCount == 1 && c.InFlightCount == 0
	}, "2 finished, 1 requeued")

	mfs := scrape(t, url)
	orders := []string{"topic", "orders"}
	billing := []string{"topic", "orders", "channel", "billing"}
	auditL := []string{"topic", "orders", "channel", "audit"}
	for _, c := range []struct {
		name   string
		labels []string
		typ    dto.MetricType
		want   float64
	}{
		{"nsq_topic_depth", orders, dto.MetricType_GAUGE, 0},
		{"nsq_topic_backend_depth", orders, dto.MetricType_GAUGE, 0},
		{"nsq_topic_messages_total", orders, dto.MetricType_COUNTER, 3},
		{"nsq_topic_message_bytes_total", orders, dto.MetricType_COUNTER, 4},
		{"nsq_topic_paused", orders, dto.MetricType_GAUGE, 0},
		{"nsq_channel_depth", billing, dto.MetricType_GAUGE, 0},
		{"nsq_channel_backend_depth", billing, dto.MetricType_GAUGE, 0},
		{"nsq_channel_in_flight", billing, dto.MetricType_GAUGE, 0},
		{"nsq_channel_deferred", billing, dto.MetricType_GAUGE, 1},
		{"nsq_channel_messages_total", billing, dto.MetricType_COUNTER, 3},
		{"nsq_channel_requeued_total", billing, dto.MetricType_COUNTER, 1},
		{"nsq_channel_timed_out_total", billing, dto.MetricType_COUNTER, 0},
		{"nsq_channel_clients", billing, dto.MetricType_GAUGE, 1},
		{"nsq_channel_paused", billing, dto.MetricType_GAUGE, 0},
		{"nsq_channel_depth", auditL, dto.MetricType_GAUGE, 3},
		{"nsq_channel_messages_total", auditL, dto.MetricType_COUNTER, 3},
		{"nsq_channel_clients", auditL, dto.MetricType_GAUGE, 0},
		{"nsq_channel_paused", auditL, dto.MetricType_GAUGE, 1},
		{"nsq_producers", nil, dto.MetricType_GAUGE, 1},
		{"nsq_health", nil, dto.MetricType_GAUGE, 1},
	} {
		got, ok := metricValue(mfs, c.name, c.labels...)
		if !ok {
			t.Errorf("%s%v missing", c.name, c.labels)
			continue
		}
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
		if typ := mfs[c.name].GetType(); typ != c.typ {
			t.Errorf("%s is a %v, want %v", c.name, typ, c.typ)
		}
	}
	for _, q := range []string{"1", "0.99", "0.5"} {
		for _, c := range []struct {
			name   string
			labels []string
		}{
			{"nsq_channel_e2e_processing_latency_seconds", append(billing[:4:4], "quantile", q)},
			{"nsq_topic_e2e_processing_latency_seconds", append(orders[:2:2], "quantile", q)},
		} {
			// Two FINs within a few seconds of publishing.
			if got, ok := metricValue(mfs, c.name, c.labels...); !ok || got <= 0 || got > 5 {
				t.Errorf("%s%v = %v (found %v), want in (0, 5] seconds", c.name, c.labels, got, ok)
			}
		}
	}
	// The audit channel has no FIN yet: its quantiles are 0.
	if got, ok := metricValue(mfs, "nsq_channel_e2e_processing_latency_seconds", append(auditL[:4:4], "quantile", "0.5")...); !ok || got != 0 {
		t.Errorf("audit latency = %v (found %v), want 0", got, ok)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_open_fds"} {
		if mfs[name] == nil {
			t.Errorf("%s missing (Go and process collectors)", name)
		}
	}

	// Counters follow the daemon: a second scrape sees new messages.
	if err := p.Publish("orders", []byte("ccc")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return h.count() == 3 }, "third message finished")
	mfs = scrape(t, url)
	if got, _ := metricValue(mfs, "nsq_topic_messages_total", orders...); got != 4 {
		t.Errorf("nsq_topic_messages_total after one more = %v, want 4", got)
	}
	if got, _ := metricValue(mfs, "nsq_topic_message_bytes_total", orders...); got != 7 {
		t.Errorf("nsq_topic_message_bytes_total after one more = %v, want 7", got)
	}
}

// An unhealthy daemon reports nsq_health 0, and nsq_health_condition 0 for
// the failing condition only.
func TestMetricsHealth(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	srv := httptest.NewServer(n.metricsHandler())
	defer srv.Close()
	mfs := scrape(t, srv.URL)
	for _, c := range healthConditionNames {
		if got, ok := metricValue(mfs, "nsq_health_condition", "condition", c); !ok || got != 1 {
			t.Errorf("nsq_health_condition{condition=%q} = %v (found %v), want 1", c, got, ok)
		}
	}
	n.health.fail(healthMetadata, errors.New("disk full"))
	mfs = scrape(t, srv.URL)
	if got, ok := metricValue(mfs, "nsq_health"); !ok || got != 0 {
		t.Errorf("nsq_health = %v (found %v), want 0", got, ok)
	}
	for _, c := range healthConditionNames {
		want := 1.0
		if c == "metadata" {
			want = 0
		}
		if got, _ := metricValue(mfs, "nsq_health_condition", "condition", c); got != want {
			t.Errorf("nsq_health_condition{condition=%q} = %v, want %v", c, got, want)
		}
	}
	n.health.clear(healthMetadata)
	mfs = scrape(t, srv.URL)
	if got, _ := metricValue(mfs, "nsq_health"); got != 1 {
		t.Errorf("nsq_health = %v, want 1", got)
	}
	if got, _ := metricValue(mfs, "nsq_health_condition", "condition", "metadata"); got != 1 {
		t.Errorf("nsq_health_condition{condition=\"metadata\"} = %v after clearing, want 1", got)
	}
	if got, _ := metricValue(scrape(t, srv.URL), "nsq_producers"); got != 0 {
		t.Errorf("nsq_producers = %v, want 0", got)
	}
}

// manyTopics creates count topics with one channel each. They are
// ephemeral, so that creating and closing them costs no disk queues; a scrape
// reads them as it reads any other.
func manyTopics(t testing.TB, n *NSQD, count int) {
	t.Helper()
	for i := range count {
		topic, err := n.GetTopic(fmt.Sprintf("topic%04d#ephemeral", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := topic.GetChannel("ch#ephemeral"); err != nil {
			t.Fatal(err)
		}
	}
}

// A scrape of a daemon with 1,000 topics (and 1,000 channels) is quick.
func TestMetricsManyTopics(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	manyTopics(t, n, 1000)
	url := "http://" + n.HTTPAddr().String() + "/metrics"
	scrape(t, url) // warm up connections and the collectors
	start := time.Now()
	mfs := scrape(t, url)
	d := time.Since(start)
	t.Logf("scrape of 1,000 topics and 1,000 channels: %v", d)
	if got := len(mfs["nsq_channel_depth"].GetMetric()); got != 1000 {
		t.Errorf("%d nsq_channel_depth samples, want 1000", got)
	}
	// Tens of ms on an idle machine, seconds under -race on a busy one: the
	// bound only catches pathological (say quadratic) costs.
	if d > 30*time.Second {
		t.Errorf("scrape took %v, want < 30s", d)
	}
}

func BenchmarkMetricsScrape(b *testing.B) {
	n := startNSQD(b, testOptions(b))
	manyTopics(b, n, 1000)
	h := n.metricsHandler()
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
		io.Copy(io.Discard, w.Body)
	}
}

// Free space on the data path and --min-free-disk-bytes are exported, so an
// alert can compare them before publishes are refused.
func TestMetricsFreeDisk(t *testing.T) {
	o := testOptions(t)
	o.MinFreeDiskBytes = 1 << 20
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var free atomic.Uint64
	free.Store(5 << 20)
	var failed atomic.Bool
	n.freeDisk = func(path string) (uint64, error) {
		if path != o.DataPath {
			t.Errorf("freeDisk(%q), want the data path %q", path, o.DataPath)
		}
		if failed.Load() {
			return 0, errors.New("statfs failed")
		}
		return free.Load(), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }() // after freeDisk is replaced: the sync loop calls it
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(n.metricsHandler())
	defer srv.Close()

	mfs := scrape(t, srv.URL)
	if got, ok := metricValue(mfs, "nsq_data_path_free_bytes"); !ok || got != 5<<20 {
		t.Errorf("nsq_data_path_free_bytes = %v (found %v), want %v", got, ok, 5<<20)
	}
	if got, ok := metricValue(mfs, "nsq_min_free_disk_bytes"); !ok || got != 1<<20 {
		t.Errorf("nsq_min_free_disk_bytes = %v (found %v), want %v", got, ok, 1<<20)
	}
	free.Store(1 << 10)
	if got, _ := metricValue(scrape(t, srv.URL), "nsq_data_path_free_bytes"); got != 1<<10 {
		t.Errorf("nsq_data_path_free_bytes = %v, want %v", got, 1<<10)
	}
	failed.Store(true)
	if _, ok := metricValue(scrape(t, srv.URL), "nsq_data_path_free_bytes"); ok {
		t.Error("nsq_data_path_free_bytes present when statfs fails, want no sample")
	}
}

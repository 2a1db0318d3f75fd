package nsqd

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// GET /metrics serves the daemon's state in Prometheus' text format. It is
// an addition to NSQ's API (NSQ has only /stats and statsd).
//
// Nothing is instrumented on the message path: each scrape takes one Stats
// snapshot (the counters topics and channels keep anyway) and turns it into
// constant metrics, so scraping costs the scraper, not message flow.

// metricsHandler returns the /metrics handler over a private registry with
// the daemon's collector and the Go runtime and process collectors.
func (n *NSQD) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&metricsCollector{n: n},
		drainCollector{n: n}, // drain_http.go
	)
	if r := n.repl.Load(); r != nil {
		reg.MustRegister(replicationCollector{r})
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(n.logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Metric descriptions. Depths are messages in memory and on disk; counters
// count since the topic or channel was created (or the daemon started);
// latencies are in seconds.
var (
	topicLabels   = []string{"topic"}
	channelLabels = []string{"topic", "channel"}

	descTopicDepth          = prometheus.NewDesc("nsq_topic_depth", "Messages queued in the topic, in memory and on disk.", topicLabels, nil)
	descTopicBackendDepth   = prometheus.NewDesc("nsq_topic_backend_depth", "Messages queued in the topic on disk.", topicLabels, nil)
	descTopicSkippedRegions = prometheus.NewDesc("nsq_topic_backend_skipped_regions_total",
		"Damaged places in the topic's disk queue that the reader skipped up to the next record that decodes (each lost at least one message).", topicLabels, nil)
	descTopicSkippedBytes = prometheus.NewDesc("nsq_topic_backend_skipped_bytes_total",
		"Bytes of damaged data skipped in the topic's disk queue.", topicLabels, nil)
	descTopicMessages     = prometheus.NewDesc("nsq_topic_messages_total", "Messages published to the topic.", topicLabels, nil)
	descTopicMessageBytes = prometheus.NewDesc("nsq_topic_message_bytes_total", "Bytes of message bodies published to the topic.", topicLabels, nil)
	descTopicPaused       = prometheus.NewDesc("nsq_topic_paused", "1 if the topic is paused, else 0.", topicLabels, nil)
	descTopicLatency      = prometheus.NewDesc("nsq_topic_e2e_processing_latency_seconds",
		"Quantiles of the time from publish to FIN over the topic's channels, in the --e2e-processing-latency-window-time window.",
		[]string{"topic", "quantile"}, nil)

	descChannelDepth          = prometheus.NewDesc("nsq_channel_depth", "Messages queued in the channel, in memory and on disk.", channelLabels, nil)
	descChannelBackendDepth   = prometheus.NewDesc("nsq_channel_backend_depth", "Messages queued in the channel on disk.", channelLabels, nil)
	descChannelSkippedRegions = prometheus.NewDesc("nsq_channel_backend_skipped_regions_total",
		"Damaged places in the channel's disk queue that the reader skipped up to the next record that decodes (each lost at least one message).", channelLabels, nil)
	descChannelSkippedBytes = prometheus.NewDesc("nsq_channel_backend_skipped_bytes_total",
		"Bytes of damaged data skipped in the channel's disk queue.", channelLabels, nil)
	descChannelInFlight = prometheus.NewDesc("nsq_channel_in_flight", "Messages sent to consumers and not yet finished, requeued or timed out.", channelLabels, nil)
	descChannelDeferred = prometheus.NewDesc("nsq_channel_deferred", "Deferred messages waiting for their time.", channelLabels, nil)
	descChannelMessages = prometheus.NewDesc("nsq_channel_messages_total", "Messages the channel received from its topic.", channelLabels, nil)
	descChannelRequeued = prometheus.NewDesc("nsq_channel_requeued_total", "Messages requeued by consumers (REQ).", channelLabels, nil)
	descChannelTimedOut = prometheus.NewDesc("nsq_channel_timed_out_total", "In-flight messages that timed out.", channelLabels, nil)
	descChannelClients  = prometheus.NewDesc("nsq_channel_clients", "Consumers subscribed to the channel.", channelLabels, nil)
	descChannelPaused   = prometheus.NewDesc("nsq_channel_paused", "1 if the channel is paused, else 0.", channelLabels, nil)
	descChannelLatency  = prometheus.NewDesc("nsq_channel_e2e_processing_latency_seconds",
		"Quantiles of the time from publish to FIN on the channel, in the --e2e-processing-latency-window-time window.",
		[]string{"topic", "channel", "quantile"}, nil)

	descProducers       = prometheus.NewDesc("nsq_producers", "Connected clients that have published.", nil, nil)
	descHealth          = prometheus.NewDesc("nsq_health", "1 while every health condition is healthy (as /ping answers OK), else 0.", nil, nil)
	descHealthCondition = prometheus.NewDesc("nsq_health_condition",
		"1 while the named part of the daemon is healthy, else 0 (disk_queue: the last disk-queue write failed; journal: a durable journal write failed; metadata: nsqd.dat could not be written, or was found damaged at startup; free_disk: below --min-free-disk-bytes; replication: no leader of the replica set known for over 5s).",
		[]string{"condition"}, nil)

	// Free space, so that an alert can fire before --min-free-disk-bytes
	// starts refusing publishes (contrib/prometheus/nsq-alerts.yml).
	descDataPathFree = prometheus.NewDesc("nsq_data_path_free_bytes",
		"Free space for unprivileged users on the file system of --data-path, in bytes.", nil, nil)
	descMinFreeDisk = prometheus.NewDesc("nsq_min_free_disk_bytes",
		"--min-free-disk-bytes: publishes to disk-backed topics are refused below this free space (0 = no limit).", nil, nil)
)

// metricsCollector turns one Stats snapshot per scrape into metrics.
type metricsCollector struct{ n *NSQD }

func (m *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descTopicDepth, descTopicBackendDepth, descTopicMessages, descTopicMessageBytes, descTopicPaused, descTopicLatency,
		descChannelDepth, descChannelBackendDepth, descChannelInFlight, descChannelDeferred, descChannelMessages,
		descChannelRequeued, descChannelTimedOut, descChannelClients, descChannelPaused, descChannelLatency,
		descProducers, descHealth, descHealthCondition, descDataPathFree, descMinFreeDisk,
		descTopicSkippedRegions, descTopicSkippedBytes, descChannelSkippedRegions, descChannelSkippedBytes,
		descTopicRejected, descTopicDeadLetters, descChannelDepthBytes, descChannelMaxDepth, descChannelMaxBytes,
		descChannelRejected, descChannelDropped, descChannelDeadLettered,
	} {
		ch <- d
	}
}

func (m *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	st := m.n.Stats("", "", false)
	emit := func(d *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, typ, v, labels...)
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	for i := range st.Topics {
		t := &st.Topics[i]
		emit(descTopicDepth, gauge, float64(t.Depth), t.TopicName)
		emit(descTopicBackendDepth, gauge, float64(t.BackendDepth), t.TopicName)
		emit(descTopicSkippedRegions, counter, float64(t.SkippedRegions), t.TopicName)
		emit(descTopicSkippedBytes, counter, float64(t.SkippedBytes), t.TopicName)
		emit(descTopicMessages, counter, float64(t.MessageCount), t.TopicName)
		emit(descTopicMessageBytes, counter, float64(t.MessageBytes), t.TopicName)
		emit(descTopicPaused, gauge, boolValue(t.Paused), t.TopicName)
		for _, p := range t.E2eProcessingLatency.Percentiles {
			emit(descTopicLatency, gauge, p.Value/1e9, t.TopicName, quantileLabel(p.Quantile))
		}
		emitTopicLimits(emit, t)
		for j := range t.Channels {
			c := &t.Channels[j]
			emit(descChannelDepth, gauge, float64(c.Depth), t.TopicName, c.ChannelName)
			emit(descChannelBackendDepth, gauge, float64(c.BackendDepth), t.TopicName, c.ChannelName)
			emit(descChannelSkippedRegions, counter, float64(c.SkippedRegions), t.TopicName, c.ChannelName)
			emit(descChannelSkippedBytes, counter, float64(c.SkippedBytes), t.TopicName, c.ChannelName)
			emit(descChannelInFlight, gauge, float64(c.InFlightCount), t.TopicName, c.ChannelName)
			emit(descChannelDeferred, gauge, float64(c.DeferredCount), t.TopicName, c.ChannelName)
			emit(descChannelMessages, counter, float64(c.MessageCount), t.TopicName, c.ChannelName)
			emit(descChannelRequeued, counter, float64(c.RequeueCount), t.TopicName, c.ChannelName)
			emit(descChannelTimedOut, counter, float64(c.TimeoutCount), t.TopicName, c.ChannelName)
			emit(descChannelClients, gauge, float64(c.ClientCount), t.TopicName, c.ChannelName)
			emit(descChannelPaused, gauge, boolValue(c.Paused), t.TopicName, c.ChannelName)
			for _, p := range c.E2eProcessingLatency.Percentiles {
				emit(descChannelLatency, gauge, p.Value/1e9, t.TopicName, c.ChannelName, quantileLabel(p.Quantile))
			}
			emitChannelLimits(emit, t.TopicName, c)
		}
	}
	producers := 0
	for _, c := range m.n.clientList() {
		if c.published.Load() {
			producers++
		}
	}
	emit(descProducers, gauge, float64(producers))
	emit(descHealth, gauge, boolValue(st.Health == "OK"))
	for _, hc := range st.HealthConditions {
		emit(descHealthCondition, gauge, boolValue(hc.OK), hc.Condition)
	}
	if free, err := m.n.freeDisk(m.n.dataPath()); err == nil { // no sample rather than a wrong one
		emit(descDataPathFree, gauge, float64(free))
	}
	emit(descMinFreeDisk, gauge, float64(m.n.opts.MinFreeDiskBytes))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// quantileLabel formats a quantile as Prometheus summaries do ("0.99", "1").
func quantileLabel(q float64) string { return strconv.FormatFloat(q, 'g', -1, 64) }

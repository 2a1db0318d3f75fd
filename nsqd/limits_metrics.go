package nsqd

import "github.com/prometheus/client_golang/prometheus"

// Prometheus series of limits and dead letters (not in NSQ). They appear
// only for topics and channels that have a limit or a non-zero count, so a
// default nsqd's /metrics is unchanged.
var (
	descTopicRejected = prometheus.NewDesc("nsq_topic_rejected_total",
		"Messages refused because the topic or one of its channels was full (overflow reject).", topicLabels, nil)
	descTopicDropped = prometheus.NewDesc("nsq_topic_dropped_total",
		"Messages dropped from the topic's own buffer (overflow drop-oldest while it has no channel or is paused).", topicLabels, nil)
	descTopicDeadLetters = prometheus.NewDesc("nsq_topic_dead_letters_received_total",
		"Dead letters published to this (dead-letter) topic.", topicLabels, nil)
	descChannelDepthBytes = prometheus.NewDesc("nsq_channel_depth_bytes",
		"Body bytes of the channel's queued and deferred messages, counted while it has limits.", channelLabels, nil)
	descChannelMaxDepth = prometheus.NewDesc("nsq_channel_max_depth", "The channel's effective max_depth (0 = unlimited).", channelLabels, nil)
	descChannelMaxBytes = prometheus.NewDesc("nsq_channel_max_bytes", "The channel's effective max_bytes (0 = unlimited).", channelLabels, nil)
	descChannelRejected = prometheus.NewDesc("nsq_channel_rejected_total",
		"Messages refused because this channel was full (overflow reject).", channelLabels, nil)
	descChannelDropped = prometheus.NewDesc("nsq_channel_dropped_total",
		"Messages dropped: reason maxlen (drop-oldest), expired (TTL), dead_letter (dead-letter topic \"-\" or an ephemeral channel).",
		append(append([]string(nil), channelLabels...), "reason"), nil)
	descChannelDeadLettered = prometheus.NewDesc("nsq_channel_dead_lettered_total",
		"Messages published to the channel's dead-letter topic.", channelLabels, nil)
)

type emitFunc func(d *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string)

func emitTopicLimits(emit emitFunc, t *TopicStats) {
	if t.Config != nil || t.RejectedCount > 0 {
		emit(descTopicRejected, prometheus.CounterValue, float64(t.RejectedCount), t.TopicName)
	}
	if t.DroppedCount > 0 {
		emit(descTopicDropped, prometheus.CounterValue, float64(t.DroppedCount), t.TopicName)
	}
	if t.DeadLettersReceived > 0 {
		emit(descTopicDeadLetters, prometheus.CounterValue, float64(t.DeadLettersReceived), t.TopicName)
	}
}

func emitChannelLimits(emit emitFunc, topic string, c *ChannelStats) {
	s := c.LimitStats
	if s == (LimitStats{}) {
		return
	}
	name := c.ChannelName
	counter := prometheus.CounterValue
	if s.Config != nil {
		emit(descChannelDepthBytes, prometheus.GaugeValue, float64(s.DepthBytes), topic, name)
		emit(descChannelMaxDepth, prometheus.GaugeValue, float64(s.Config.MaxDepth), topic, name)
		emit(descChannelMaxBytes, prometheus.GaugeValue, float64(s.Config.MaxBytes), topic, name)
	}
	emit(descChannelRejected, counter, float64(s.RejectedCount), topic, name)
	emit(descChannelDropped, counter, float64(s.DroppedCount), topic, name, "maxlen")
	emit(descChannelDropped, counter, float64(s.ExpiredCount), topic, name, "expired")
	emit(descChannelDropped, counter, float64(s.DeadLetterDroppedCount), topic, name, "dead_letter")
	emit(descChannelDeadLettered, counter, float64(s.DeadLetteredCount), topic, name)
}

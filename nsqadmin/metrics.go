package nsqadmin

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/clusterinfo"
)

// metrics is GET /metrics: cluster totals, per topic and per channel, in
// Prometheus' text exposition format, from the nsqds' stats at scrape time.
// Nodes that do not answer are counted in nsqadmin_upstream_errors.
func (s *httpServer) metrics(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	snap, err := s.a.cluster.Snapshot(req.Context())
	if snap == nil {
		snap = &clusterinfo.Snapshot{}
	}
	if err != nil {
		s.log.Warn("METRICS: incomplete stats", "err", err)
	}
	upErrs := len(clusterinfo.NodeErrors(err))
	if err != nil && upErrs == 0 {
		upErrs = 1
	}
	_, allFailed := errors.AsType[*clusterinfo.UpstreamError](err)

	var b bytes.Buffer
	m := &promWriter{b: &b}

	var channels, clients int
	var depth, inFlight, deferred, requeued, timedOut, messages int64
	for _, t := range snap.Topics {
		depth += t.Depth
		messages += t.MessageCount
		for _, c := range t.Channels {
			channels++
			clients += c.ClientCount
			depth += c.Depth
			inFlight += c.InFlightCount
			deferred += c.DeferredCount
			requeued += c.RequeueCount
			timedOut += c.TimeoutCount
		}
	}
	m.metric("nsqadmin_up", "gauge", "1 if at least one upstream answered this scrape, else 0.", nil, boolInt(!allFailed))
	m.metric("nsqadmin_upstream_errors", "gauge", "Upstreams (nsqd or nsqlookupd) that failed to answer this scrape.", nil, int64(upErrs))
	m.metric("nsqadmin_nodes", "gauge", "nsqd nodes in the cluster.", nil, int64(len(snap.Producers)))
	m.metric("nsqadmin_topics", "gauge", "Topics on the nsqd nodes.", nil, int64(len(snap.Topics)))
	m.metric("nsqadmin_channels", "gauge", "Channels on the nsqd nodes.", nil, int64(channels))
	m.metric("nsqadmin_clients", "gauge", "Consumers connected to the channels.", nil, int64(clients))
	m.metric("nsqadmin_messages_total", "counter", "Messages published to the topics since their nsqd started.", nil, messages)
	m.metric("nsqadmin_depth", "gauge", "Messages queued in topics and channels (memory and disk).", nil, depth)
	m.metric("nsqadmin_in_flight", "gauge", "Messages sent to consumers and not yet finished.", nil, inFlight)
	m.metric("nsqadmin_deferred", "gauge", "Deferred messages.", nil, deferred)
	m.metric("nsqadmin_requeued_total", "counter", "Messages requeued by consumers.", nil, requeued)
	m.metric("nsqadmin_timed_out_total", "counter", "Messages that timed out in flight.", nil, timedOut)

	m.header("nsqadmin_topic_depth", "gauge", "Messages queued in a topic itself, summed over nodes.")
	for _, t := range snap.Topics {
		m.sample("nsqadmin_topic_depth", []string{"topic", t.TopicName}, t.Depth)
	}
	m.header("nsqadmin_topic_messages_total", "counter", "Messages published to a topic, summed over nodes.")
	for _, t := range snap.Topics {
		m.sample("nsqadmin_topic_messages_total", []string{"topic", t.TopicName}, t.MessageCount)
	}
	m.header("nsqadmin_topic_paused", "gauge", "1 if a topic is paused on any node.")
	for _, t := range snap.Topics {
		m.sample("nsqadmin_topic_paused", []string{"topic", t.TopicName}, boolInt(t.Paused))
	}
	channelMetric := func(name, typ, help string, v func(*clusterinfo.ChannelStats) int64) {
		m.header(name, typ, help)
		for _, t := range snap.Topics {
			for _, c := range t.Channels {
				m.sample(name, []string{"topic", t.TopicName, "channel", c.ChannelName}, v(c))
			}
		}
	}
	channelMetric("nsqadmin_channel_depth", "gauge", "Messages queued in a channel, summed over nodes.",
		func(c *clusterinfo.ChannelStats) int64 { return c.Depth })
	channelMetric("nsqadmin_channel_in_flight", "gauge", "Messages in flight on a channel.",
		func(c *clusterinfo.ChannelStats) int64 { return c.InFlightCount })
	channelMetric("nsqadmin_channel_deferred", "gauge", "Deferred messages of a channel.",
		func(c *clusterinfo.ChannelStats) int64 { return c.DeferredCount })
	channelMetric("nsqadmin_channel_messages_total", "counter", "Messages put into a channel.",
		func(c *clusterinfo.ChannelStats) int64 { return c.MessageCount })
	channelMetric("nsqadmin_channel_requeued_total", "counter", "Messages requeued on a channel.",
		func(c *clusterinfo.ChannelStats) int64 { return c.RequeueCount })
	channelMetric("nsqadmin_channel_timed_out_total", "counter", "Messages of a channel that timed out in flight.",
		func(c *clusterinfo.ChannelStats) int64 { return c.TimeoutCount })
	channelMetric("nsqadmin_channel_clients", "gauge", "Consumers connected to a channel.",
		func(c *clusterinfo.ChannelStats) int64 { return int64(c.ClientCount) })
	channelMetric("nsqadmin_channel_paused", "gauge", "1 if a channel is paused on any node.",
		func(c *clusterinfo.ChannelStats) int64 { return boolInt(c.Paused) })

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.Write(b.Bytes())
}

// promWriter writes Prometheus' text format.
type promWriter struct{ b *bytes.Buffer }

func (m *promWriter) header(name, typ, help string) {
	fmt.Fprintf(m.b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (m *promWriter) metric(name, typ, help string, labels []string, v int64) {
	m.header(name, typ, help)
	m.sample(name, labels, v)
}

// sample writes one line; labels alternate names and values.
func (m *promWriter) sample(name string, labels []string, v int64) {
	m.b.WriteString(name)
	if len(labels) > 0 {
		m.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.b.WriteByte(',')
			}
			fmt.Fprintf(m.b, `%s="%s"`, labels[i], escapeLabel(labels[i+1]))
		}
		m.b.WriteByte('}')
	}
	fmt.Fprintf(m.b, " %d\n", v)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

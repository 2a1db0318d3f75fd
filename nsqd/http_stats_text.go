package nsqd

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nsqclone/nsq/internal/version"
)

// writeStatsText renders GET /stats without format=json, in NSQ's layout
// (monitoring scripts parse it): a header, the memory block when s.Memory is
// set, topics with their channels and consumers, then producers. Durations
// (uptime, connected) are measured to now.
func writeStatsText(b *strings.Builder, s *Stats, startTime, now time.Time) {
	fmt.Fprintf(b, "%s\n", version.String("nsqd"))
	fmt.Fprintf(b, "start_time %s\n", startTime.Format(time.RFC3339))
	fmt.Fprintf(b, "uptime %s\n", now.Sub(startTime))
	fmt.Fprintf(b, "\nHealth: %s\n", s.Health)
	if s.Draining {
		b.WriteString("Draining: true\n") // beyond NSQ, only while draining
	}

	if m := s.Memory; m != nil {
		b.WriteString("\nMemory:\n")
		for _, f := range []struct {
			name  string
			value uint64
		}{
			{"heap_objects", m.HeapObjects},
			{"heap_idle_bytes", m.HeapIdleBytes},
			{"heap_in_use_bytes", m.HeapInUseBytes},
			{"heap_released_bytes", m.HeapReleasedBytes},
			{"gc_pause_usec_100", m.GCPauseUsec100},
			{"gc_pause_usec_99", m.GCPauseUsec99},
			{"gc_pause_usec_95", m.GCPauseUsec95},
			{"next_gc_bytes", m.NextGCBytes},
			{"gc_total_runs", uint64(m.GCTotalRuns)},
		} {
			fmt.Fprintf(b, "   %-25s\t%d\n", f.name, f.value)
		}
	}

	if len(s.Topics) == 0 {
		b.WriteString("\nTopics: None\n")
	} else {
		b.WriteString("\nTopics:")
	}
	for _, t := range s.Topics {
		// Each topic line starts with a newline: topics are separated by
		// a blank line, and the first follows "Topics:" directly.
		fmt.Fprintf(b, "\n%s[%-15s] depth: %-5d be-depth: %-5d msgs: %-8d e2e%%: %s\n",
			pausedMark(t.Paused, "   "), t.TopicName, t.Depth, t.BackendDepth, t.MessageCount,
			formatPercentiles(t.E2eProcessingLatency))
		for _, c := range t.Channels {
			fmt.Fprintf(b, "%s[%-25s] depth: %-5d be-depth: %-5d inflt: %-4d def: %-4d re-q: %-5d timeout: %-5d msgs: %-8d e2e%%: %s\n",
				pausedMark(c.Paused, "      "), c.ChannelName, c.Depth, c.BackendDepth, c.InFlightCount,
				c.DeferredCount, c.RequeueCount, c.TimeoutCount, c.MessageCount,
				formatPercentiles(c.E2eProcessingLatency))
			if l := c.Config; l != nil { // beyond NSQ, only with limits set
				fmt.Fprintf(b, "          limits: max_depth: %d max_bytes: %d overflow: %s msg_ttl_ms: %d max_attempts: %d rejected: %d dropped: %d expired: %d dead-lettered: %d\n",
					l.MaxDepth, l.MaxBytes, l.Overflow, l.MsgTTLMs, l.MaxAttempts, c.RejectedCount, c.DroppedCount, c.ExpiredCount, c.DeadLetteredCount)
			}
			for _, cl := range c.Clients {
				fmt.Fprintf(b, "        [%s %-21s] state: %d inflt: %-4d rdy: %-4d fin: %-8d re-q: %-8d msgs: %-8d connected: %s\n",
					cl.Version, clientLabel(&cl), cl.State, cl.InFlightCount, cl.ReadyCount,
					cl.FinishCount, cl.RequeueCount, cl.MessageCount, connectedFor(&cl, now))
			}
		}
	}

	if len(s.Producers) == 0 {
		b.WriteString("\nProducers: None\n")
		return
	}
	b.WriteString("\nProducers:\n")
	for _, p := range s.Producers {
		var total uint64
		topics := make([]string, 0, len(p.PubCounts))
		for _, pc := range p.PubCounts {
			total += pc.Count
			topics = append(topics, pc.Topic+"="+strconv.FormatUint(pc.Count, 10))
		}
		fmt.Fprintf(b, "   [%s %-21s] msgs: %-8d topics: %s connected: %s\n",
			p.Version, clientLabel(&p), total, strings.Join(topics, ","), connectedFor(&p, now))
	}
}

// pausedMark is the line prefix: "*P " right-aligned in the indentation of
// a paused topic or channel.
func pausedMark(paused bool, indent string) string {
	if !paused {
		return indent
	}
	return indent[:len(indent)-3] + "*P "
}

// clientLabel is "<hostname>:<remote port> <user agent>".
func clientLabel(c *ClientStats) string {
	_, port, _ := net.SplitHostPort(c.RemoteAddress)
	return c.Hostname + ":" + port + " " + c.UserAgent
}

func connectedFor(c *ClientStats, now time.Time) time.Duration {
	return now.Sub(time.Unix(c.ConnectTime, 0)).Truncate(time.Second)
}

// formatPercentiles lists the latency quantiles in the configured order,
// each scaled to s, ms, us or ns with one decimal.
func formatPercentiles(p Percentiles) string {
	parts := make([]string, len(p.Percentiles))
	for i, q := range p.Percentiles {
		v := q.Value
		switch {
		case v > 1e9:
			parts[i] = fmt.Sprintf("%.1fs", v/1e9)
		case v > 1e6:
			parts[i] = fmt.Sprintf("%.1fms", v/1e6)
		case v > 1e3:
			parts[i] = fmt.Sprintf("%.1fus", v/1e3)
		default:
			parts[i] = fmt.Sprintf("%.1fns", v)
		}
	}
	return strings.Join(parts, ", ")
}

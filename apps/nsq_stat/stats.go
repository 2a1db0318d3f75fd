package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nsqclone/nsq/internal/apputil"
)

// header is printed before the first row and every 25 polls.
const header = "------rate------+----------------depth----------------+--------------metadata---------------\n" +
	"ingress  egress |   total     mem    disk inflt   def |     req     t-o         msgs clients\n"

// channelStats is a channel's stats summed over the nsqd that have it.
type channelStats struct {
	Depth         int64 `json:"depth"`
	BackendDepth  int64 `json:"backend_depth"`
	InFlightCount int64 `json:"in_flight_count"`
	DeferredCount int64 `json:"deferred_count"`
	MessageCount  int64 `json:"message_count"`
	RequeueCount  int64 `json:"requeue_count"`
	TimeoutCount  int64 `json:"timeout_count"`
	ClientCount   int64 `json:"client_count"`
}

func (s *channelStats) add(o *channelStats) {
	s.Depth += o.Depth
	s.BackendDepth += o.BackendDepth
	s.InFlightCount += o.InFlightCount
	s.DeferredCount += o.DeferredCount
	s.MessageCount += o.MessageCount
	s.RequeueCount += o.RequeueCount
	s.TimeoutCount += o.TimeoutCount
	s.ClientCount += o.ClientCount
}

// formatRow returns the row for the change from prev to cur over interval:
// ingress = new messages per second, egress = messages per second that left
// the queue (new messages minus depth growth), truncated to integers.
func formatRow(prev, cur *channelStats, interval time.Duration) string {
	secs := interval.Seconds()
	in := cur.MessageCount - prev.MessageCount
	out := in - (cur.Depth - prev.Depth)
	return fmt.Sprintf("%7d %7d | %7d %7d %7d %5d %5d | %7d %7d %12d %7d\n",
		int64(float64(in)/secs),
		int64(float64(out)/secs),
		cur.Depth,
		cur.Depth-cur.BackendDepth,
		cur.BackendDepth,
		cur.InFlightCount,
		cur.DeferredCount,
		cur.RequeueCount,
		cur.TimeoutCount,
		cur.MessageCount,
		cur.ClientCount)
}

// statsResponse is the part of nsqd's GET /stats?format=json nsq_stat reads.
type statsResponse struct {
	Topics []struct {
		Name     string `json:"topic_name"`
		Channels []struct {
			Name string `json:"channel_name"`
			channelStats
		} `json:"channels"`
	} `json:"topics"`
}

// poller gathers the channel's stats: from the given nsqd, or from the
// producers of the topic that lookupd lists.
type poller struct {
	client         *http.Client
	topic, channel string
	nsqdAddrs      []string // HTTP addresses
	lookupdAddrs   []string
	warnf          func(string, ...any)
}

// poll returns the channel's stats summed over the nodes that have it.
// Nodes that cannot be reached are reported and left out; it fails when
// none answered or none has the channel.
func (p *poller) poll(ctx context.Context) (*channelStats, error) {
	nodes := p.nsqdAddrs
	if len(p.lookupdAddrs) > 0 {
		var err error
		if nodes, err = p.producers(ctx); err != nil {
			return nil, fmt.Errorf("ERROR: failed to get topic producers - %w", err)
		}
	}
	var total channelStats
	found := false
	var errs []error
	query := "/stats?format=json&topic=" + url.QueryEscape(p.topic) +
		"&channel=" + url.QueryEscape(p.channel) + "&include_clients=false"
	for _, addr := range nodes {
		var resp statsResponse
		if err := apputil.GetJSON(ctx, p.client, apputil.HTTPURL(addr, query), &resp); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range resp.Topics {
			if t.Name != p.topic {
				continue
			}
			for _, c := range t.Channels {
				if c.Name == p.channel {
					total.add(&c.channelStats)
					found = true
				}
			}
		}
	}
	if len(errs) > 0 {
		if len(errs) == len(nodes) {
			return nil, fmt.Errorf("ERROR: failed to get nsqd stats - %w", errors.Join(errs...))
		}
		p.warnf("WARNING: partial stats, some nsqd did not answer - %s", errors.Join(errs...))
	}
	if !found {
		return nil, fmt.Errorf("ERROR: failed to find channel(%s) in stats metadata for topic(%s)", p.channel, p.topic)
	}
	return &total, nil
}

// producers returns the HTTP addresses (broadcast_address:http_port) of the
// topic's producers according to lookupd, each once.
func (p *poller) producers(ctx context.Context) ([]string, error) {
	var addrs []string
	seen := map[string]bool{}
	var errs []error
	for _, l := range p.lookupdAddrs {
		var resp struct {
			Producers []struct {
				BroadcastAddress string `json:"broadcast_address"`
				HTTPPort         int    `json:"http_port"`
			} `json:"producers"`
		}
		if err := apputil.GetJSON(ctx, p.client, apputil.HTTPURL(l, "/lookup?topic="+url.QueryEscape(p.topic)), &resp); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, pr := range resp.Producers {
			a := net.JoinHostPort(pr.BroadcastAddress, strconv.Itoa(pr.HTTPPort))
			if !seen[a] {
				seen[a] = true
				addrs = append(addrs, a)
			}
		}
	}
	if len(errs) > 0 {
		if len(errs) == len(p.lookupdAddrs) {
			return nil, fmt.Errorf("failed to query any nsqlookupd: %w", errors.Join(errs...))
		}
		p.warnf("WARNING: some nsqlookupd did not answer - %s", errors.Join(errs...))
	}
	return addrs, nil
}

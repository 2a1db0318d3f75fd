package clusterinfo

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// A replica set (docs/replication.md, "nsqadmin: totals counted once per
// set"): leader 1 and followers 2
// and 3, plus one unreplicated nsqd. 4 messages were published to the
// leader and 3 to follower 2 (a topic counts the publishes it accepted from
// clients; the leader's channel counts every message it queued). The leader
// holds 5 in flight: 2 to its own consumer, 3 to follower 2's relay, of
// which follower 2 has 2 in flight to its consumer and 1 deferred.
func TestAggregateReplicaSet(t *testing.T) {
	node := func(port int, repl, topic, channel string) nodeStats {
		p := &Producer{BroadcastAddress: "127.0.0.1", HTTPPort: port, Hostname: fmt.Sprint("h", port)}
		var s nsqdStats
		js := `{"topics":[{"topic_name":"orders",` + topic + `,"channels":[{"channel_name":"billing",` + channel + `}]}]` + repl + `}`
		if err := json.Unmarshal([]byte(js), &s); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return nodeStats{producer: p, topics: convertTopics(p, &s)}
	}
	repl := func(id, role string) string {
		return `,"replication":{"id":"` + id + `","role":"` + role + `","leader_id":"1","term":4,"commit_index":9}`
	}
	leader := node(1, repl("1", "leader"), `"depth":0,"message_count":4`,
		`"depth":2,"in_flight_count":5,"deferred_count":1,"requeue_count":1,"timeout_count":1,"message_count":7,"client_count":2`)
	f2 := node(2, repl("2", "follower"), `"depth":0,"message_count":3`,
		`"depth":0,"in_flight_count":2,"deferred_count":1,"requeue_count":1,"message_count":0,"client_count":1`)
	f3 := node(3, repl("3", "follower"), `"depth":0,"message_count":0`, `"depth":0,"message_count":0`)
	plain := node(4, "", `"depth":10,"message_count":20`,
		`"depth":10,"in_flight_count":4,"deferred_count":2,"requeue_count":3,"timeout_count":1,"message_count":20,"client_count":1`)

	topicOf := func(ns ...nodeStats) *TopicStats {
		var per []*TopicStats
		for _, n := range ns {
			per = append(per, n.topics...)
		}
		return aggregateTopic("orders", per)
	}
	type counts struct{ depth, msgs, inFlight, deferred, requeue, timeout, clients int64 }
	for _, tc := range []struct {
		name      string
		nodes     []nodeStats
		topicMsgs int64
		ch        counts
	}{
		{"set and plain node", []nodeStats{f3, plain, leader, f2}, 27, counts{12, 27, 9, 3, 5, 2, 4}},
		// Unreplicated nodes are summed as in NSQ.
		{"plain only", []nodeStats{plain, plain}, 40, counts{20, 40, 8, 4, 6, 2, 2}},
		// Without its leader, a set's followers are summed (all there is).
		{"followers without their leader", []nodeStats{f2, f3, plain}, 23, counts{10, 20, 6, 3, 4, 1, 2}},
	} {
		agg := topicOf(tc.nodes...)
		if agg.MessageCount != tc.topicMsgs {
			t.Errorf("%s: topic message_count = %d, want %d", tc.name, agg.MessageCount, tc.topicMsgs)
		}
		if len(agg.Channels) != 1 {
			t.Fatalf("%s: channels = %+v", tc.name, agg.Channels)
		}
		c := agg.Channels[0]
		got := counts{c.Depth, c.MessageCount, c.InFlightCount, c.DeferredCount, c.RequeueCount, c.TimeoutCount, int64(c.ClientCount)}
		if got != tc.ch {
			t.Errorf("%s: billing (depth, messages, in flight, deferred, requeued, timed out, clients) = %+v, want %+v", tc.name, got, tc.ch)
		}
	}
	// The set's view stays out of the JSON.
	b, _ := json.Marshal(leader.topics[0].Channels[0])
	if s := string(b); strings.Contains(s, "replica") {
		t.Errorf("channel JSON = %s, want no replica fields", s)
	}
}

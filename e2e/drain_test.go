package e2e

// Draining an nsqd out of service (README "Beyond NSQ"): publishes are
// refused with NSQ's error codes, consumers empty the channels, nsqlookupd
// stops listing each channel as it empties, and nsqd exits 0; with
// --drain-timeout or a second signal it shuts down cleanly, keeping what is
// left.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

const drainMessages = 1000

// drainFill creates topic with channels a and b and publishes drainMessages
// bodies "m<i>" to it.
func drainFill(t *testing.T, n *nsqtest.NSQD, topic string) {
	t.Helper()
	for _, u := range []string{"/topic/create?topic=" + topic, "/channel/create?topic=" + topic + "&channel=a", "/channel/create?topic=" + topic + "&channel=b"} {
		if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL(u), nil); status != http.StatusOK {
			t.Fatalf("POST %s = %d %q", u, status, body)
		}
	}
	var b strings.Builder
	for i := range drainMessages {
		fmt.Fprintf(&b, "m%d\n", i)
	}
	if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL("/mpub?topic="+topic), []byte(b.String())); status != http.StatusOK {
		t.Fatalf("POST /mpub = %d %q", status, body)
	}
	drainDepths(t, n, topic, drainMessages)
}

// drainDepths checks that channels a and b each hold want messages.
func drainDepths(t *testing.T, n *nsqtest.NSQD, topic string, want int64) {
	t.Helper()
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		tp := n.Stats(t).Topic(topic)
		a, b := tp.Channel("a"), tp.Channel("b")
		return a != nil && b != nil && a.Depth == want && b.Depth == want
	}, fmt.Sprintf("depth %d in %s/a and %s/b", want, topic, topic))
}

// drainConsume connects a go-nsq consumer to topic/channel and waits for
// drainMessages distinct bodies, each delivered once.
func drainConsume(t *testing.T, n *nsqtest.NSQD, topic, channel string) {
	t.Helper()
	in := newInbox(drainMessages)
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 200
	c := newConsumer(t, topic, channel, cfg, in.handle)
	connect(t, c, n.TCPAddr)
	in.wait(t, 30*time.Second, topic+"/"+channel)
	counts, total := in.snapshot()
	if len(counts) != drainMessages || total != drainMessages {
		t.Fatalf("%s/%s: %d distinct bodies in %d deliveries, want %d once each", topic, channel, len(counts), total, drainMessages)
	}
}

// lookupdDebug returns the registrations nsqlookupd lists with at least one
// producer ("topic:T:", "channel:T:C").
func lookupdDebug(t *testing.T, l adminLookupd) map[string]bool {
	t.Helper()
	status, body := nsqtest.HTTP(t, http.MethodGet, "http://"+l.HTTPAddr+"/debug", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /debug = %d %q", status, body)
	}
	var v map[string][]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET /debug: %v in %q", err, body)
	}
	out := map[string]bool{}
	for k, ps := range v {
		if len(ps) > 0 {
			out[k] = true
		}
	}
	return out
}

func waitLookupd(t *testing.T, l adminLookupd, key string, listed bool) {
	t.Helper()
	nsqtest.Eventually(t, 10*time.Second, func() bool { return lookupdDebug(t, l)[key] == listed },
		fmt.Sprintf("nsqlookupd listing %q = %v", key, listed))
}

// waitExit waits for n to exit by itself and checks its status is 0.
func waitExit(t *testing.T, n *nsqtest.NSQD, within time.Duration) {
	t.Helper()
	select {
	case <-n.Exited():
	case <-time.After(within):
		t.Fatalf("nsqd still running %v after the drain should have ended", within)
	}
	if code := n.ExitCode(); code != 0 {
		t.Fatalf("nsqd exited with status %d, want 0:\n%s", code, n.Output())
	}
}

// drainPublishRefused checks what publishers see from a draining nsqd: the
// exact errors through go-nsq, 503 over HTTP, /ready 503 and /ping 200.
func drainPublishRefused(t *testing.T, n *nsqtest.NSQD, topic string) {
	t.Helper()
	// Each error closes the connection, as NSQ's do: a producer per publish.
	for _, tc := range []struct {
		name    string
		publish func(p *nsq.Producer) error
		want    string
	}{
		{"PUB", func(p *nsq.Producer) error { return p.Publish(topic, []byte("late")) }, "E_PUB_FAILED PUB failed nsqd draining"},
		{"MPUB", func(p *nsq.Producer) error { return p.MultiPublish(topic, [][]byte{[]byte("late1"), []byte("late2")}) }, "E_MPUB_FAILED MPUB failed nsqd draining"},
		{"DPUB", func(p *nsq.Producer) error { return p.DeferredPublish(topic, time.Second, []byte("late")) }, "E_DPUB_FAILED DPUB failed nsqd draining"},
		{"PUB new topic", func(p *nsq.Producer) error { return p.Publish("other", []byte("late")) }, "E_PUB_FAILED PUB failed nsqd draining"},
	} {
		if err := tc.publish(newProducer(t, n.TCPAddr)); err == nil || err.Error() != tc.want {
			t.Errorf("go-nsq %s while draining: error %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{http.MethodPost, "/pub?topic=" + topic, "late", `{"message":"DRAINING"}`},
		{http.MethodPost, "/mpub?topic=" + topic, "late1\nlate2", `{"message":"DRAINING"}`},
		{http.MethodGet, "/ready", "", "DRAINING"},
	} {
		if status, body := nsqtest.HTTP(t, tc.method, n.URL(tc.path), []byte(tc.body)); status != http.StatusServiceUnavailable || body != tc.want {
			t.Errorf("%s %s while draining = %d %q, want 503 %q", tc.method, tc.path, status, body, tc.want)
		}
	}
	if status, body := nsqtest.HTTP(t, http.MethodGet, n.URL("/ping"), nil); status != http.StatusOK || body != "OK" {
		t.Errorf("GET /ping while draining = %d %q, want 200 OK (liveness)", status, body)
	}
}

// A drain started over HTTP: publishers are refused, consumers get every
// message on both channels, nsqlookupd stops listing each channel once it
// is empty, and nsqd exits 0. Also with every message on disk.
func TestDrainOverHTTP(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"memory", nil},
		{"disk", []string{"--mem-queue-size=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := adminStartLookupd(t)
			n := nsqtest.StartNSQD(t, append([]string{"--broadcast-address=127.0.0.1", "--lookupd-tcp-address=" + l.TCPAddr}, tc.extra...)...)
			const topic = "drained"
			drainFill(t, n, topic)
			if tc.name == "disk" {
				if a := n.Channel(t, topic, "a"); a.BackendDepth != drainMessages {
					t.Fatalf("backend_depth of %s/a = %d, want %d on disk", topic, a.BackendDepth, drainMessages)
				}
			}
			waitLookupd(t, l, "channel:"+topic+":a", true)
			waitLookupd(t, l, "channel:"+topic+":b", true)

			status, body := nsqtest.HTTP(t, http.MethodPut, n.URL("/state/drain"), nil)
			if status != http.StatusOK || !strings.Contains(body, `"state":"draining"`) {
				t.Fatalf("PUT /state/drain = %d %q", status, body)
			}
			drainPublishRefused(t, n, topic)
			_, st := nsqtest.HTTP(t, http.MethodGet, n.URL("/state"), nil)
			for _, want := range []string{`"channel":"a","depth":1000`, `"channel":"b","depth":1000`} {
				if !strings.Contains(st, want) {
					t.Errorf("GET /state = %s, want a blocker %s", st, want)
				}
			}

			drainConsume(t, n, topic, "a")
			waitLookupd(t, l, "channel:"+topic+":a", false)
			if reg := lookupdDebug(t, l); !reg["channel:"+topic+":b"] || !reg["topic:"+topic+":"] {
				t.Errorf("nsqlookupd stopped listing %s/b or the topic before b was empty: %v", topic, reg)
			}
			select {
			case <-n.Exited():
				t.Fatalf("nsqd exited with %s/b still holding messages", topic)
			default:
			}

			drainConsume(t, n, topic, "b")
			waitExit(t, n, 15*time.Second)
			reg := lookupdDebug(t, l)
			if reg["channel:"+topic+":b"] || reg["topic:"+topic+":"] {
				t.Errorf("nsqlookupd still lists the drained node: %v", reg)
			}
		})
	}
}

// With no consumer, --drain-timeout ends the drain with a clean shutdown
// and a restart has every message.
func TestDrainTimeout(t *testing.T) {
	n := nsqtest.StartNSQD(t, "--drain-timeout=2s")
	const topic = "stuck"
	drainFill(t, n, topic)
	start := time.Now()
	if status, body := nsqtest.HTTP(t, http.MethodPut, n.URL("/config/drain"), nil); status != http.StatusOK || body != "true" {
		t.Fatalf("PUT /config/drain = %d %q", status, body)
	}
	waitExit(t, n, 20*time.Second)
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("nsqd exited %v after the drain started, before --drain-timeout=2s", d)
	}
	if !strings.Contains(n.Output(), "drain timeout reached") {
		t.Errorf("no drain timeout log line in:\n%s", n.Output())
	}
	n2 := nsqtest.StartNSQD(t, "--data-path="+n.DataPath)
	drainDepths(t, n2, topic, drainMessages)
	drainConsume(t, n2, topic, "a")
}

// --sigterm-mode=drain: SIGTERM drains; the node exits 0 once consumers
// have emptied its channels. A second SIGTERM (or a SIGINT) during the
// drain shuts down at once, and a restart has everything left.
func TestDrainSigterm(t *testing.T) {
	t.Run("drain", func(t *testing.T) {
		n := nsqtest.StartNSQD(t, "--sigterm-mode=drain")
		const topic = "sig"
		drainFill(t, n, topic)
		n.Signal(syscall.SIGTERM)
		nsqtest.Eventually(t, 10*time.Second, func() bool {
			status, _ := nsqtest.HTTP(t, http.MethodGet, n.URL("/ready"), nil)
			return status == http.StatusServiceUnavailable
		}, "GET /ready to answer 503 after SIGTERM")
		drainPublishRefused(t, n, topic)
		drainConsume(t, n, topic, "a")
		drainConsume(t, n, topic, "b")
		waitExit(t, n, 15*time.Second)
	})
	for _, second := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run("then "+second.String(), func(t *testing.T) {
			n := nsqtest.StartNSQD(t, "--sigterm-mode=drain")
			const topic = "sig"
			drainFill(t, n, topic)
			n.Signal(syscall.SIGTERM)
			nsqtest.Eventually(t, 10*time.Second, func() bool {
				_, body := nsqtest.HTTP(t, http.MethodGet, n.URL("/state"), nil)
				return strings.Contains(body, `"state":"draining"`)
			}, "GET /state to report draining after SIGTERM")
			start := time.Now()
			n.Signal(second)
			waitExit(t, n, 10*time.Second)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("nsqd took %v to exit after the second signal", d)
			}
			n2 := nsqtest.StartNSQD(t, "--data-path="+n.DataPath)
			drainDepths(t, n2, topic, drainMessages)
		})
	}
}

package nsqd

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A drain refuses publishes and creations with NSQ's error codes, keeps
// serving the consumers of existing channels, drops ephemeral topics and
// channels, reports itself and its blockers, and ends Run once the
// channels are empty.
func TestDrain(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)
	n := h.n
	for _, c := range []httpCase{
		{"POST", "/channel/create?topic=t&channel=c", reqBody{}, 404, msg("TOPIC_NOT_FOUND")},
		{"POST", "/topic/create?topic=t", reqBody{}, 200, ""},
		{"POST", "/channel/create?topic=t&channel=c", reqBody{}, 200, ""},
		{"POST", "/channel/create?topic=t&channel=e%23ephemeral", reqBody{}, 200, ""},
		{"POST", "/topic/create?topic=x%23ephemeral", reqBody{}, 200, ""},
		{"POST", "/pub?topic=t", reqBody{s: "m1"}, 200, "OK"},
		{"POST", "/pub?topic=t", reqBody{s: "m2"}, 200, "OK"},
		{"POST", "/pub?topic=t", reqBody{s: "m3"}, 200, "OK"},
		{"GET", "/ready", reqBody{}, 200, "OK"},
		{"GET", "/config/drain", reqBody{}, 200, "false"},
	} {
		h.check(t, c)
	}
	if st := n.State(); st.State != "running" || st.Draining || len(st.Blockers) != 0 {
		t.Fatalf("State() before the drain = %+v", st)
	}
	_, _, info := h.do("GET", "/info", reqBody{})
	_, _, stats := h.do("GET", "/stats?format=json", reqBody{})
	if strings.Contains(info, "draining") || strings.Contains(stats, "draining") {
		t.Errorf("/info or /stats mention draining before a drain (NSQ's JSON must stay as it is):\n%s\n%s", info, stats)
	}

	status, _, body := h.do("PUT", "/state/drain", reqBody{})
	var st NodeState
	if err := json.Unmarshal([]byte(body), &st); status != 200 || err != nil {
		t.Fatalf("PUT /state/drain = %d %q (%v)", status, body, err)
	}
	if st.State != "draining" || !st.Draining || st.DrainStarted == 0 {
		t.Errorf("PUT /state/drain state = %+v", st)
	}
	found := false
	for _, b := range st.Blockers {
		if b.Topic == "t" && b.Channel == "c" {
			found = b.Depth == 3 && b.Consumers == 0 && !b.Paused
		}
	}
	if !found {
		t.Errorf("blockers = %+v, want t/c with depth 3", st.Blockers)
	}
	for _, c := range []httpCase{
		{"GET", "/ready", reqBody{}, 503, "DRAINING"},
		{"GET", "/ping", reqBody{}, 200, "OK"},
		{"POST", "/pub?topic=t", reqBody{s: "m4"}, 503, msg("DRAINING")},
		{"POST", "/mpub?topic=t", reqBody{s: "m4\nm5"}, 503, msg("DRAINING")},
		{"POST", "/pub?topic=new", reqBody{s: "m4"}, 503, msg("DRAINING")},
		{"POST", "/topic/create?topic=new", reqBody{}, 503, msg("DRAINING")},
		{"POST", "/channel/create?topic=t&channel=new", reqBody{}, 503, msg("DRAINING")},
		{"PUT", "/config/drain", reqBody{}, 200, "true"},
	} {
		h.check(t, c)
	}
	_, _, info = h.do("GET", "/info", reqBody{})
	_, _, stats = h.do("GET", "/stats?format=json", reqBody{})
	_, _, text := h.do("GET", "/stats", reqBody{})
	_, _, metrics := h.do("GET", "/metrics", reqBody{})
	if !strings.Contains(info, `"draining":true`) || !strings.Contains(info, `"drain_started":`) {
		t.Errorf("/info while draining = %s", info)
	}
	if !strings.Contains(stats, `"draining":true`) || !strings.Contains(text, "Draining: true") {
		t.Errorf("/stats while draining = %s\n%s", stats, text)
	}
	if !strings.Contains(metrics, "\nnsq_draining 1\n") {
		t.Errorf("/metrics has no nsq_draining 1")
	}

	// Exact TCP errors; each closes the connection, as in NSQ.
	for _, tc := range []struct {
		cmd  string
		body []byte
		want string
	}{
		{"PUB t", []byte("x"), "E_PUB_FAILED PUB failed nsqd draining"},
		{"PUB brandnew", []byte("x"), "E_PUB_FAILED PUB failed nsqd draining"},
		{"DPUB t 1000", []byte("x"), "E_DPUB_FAILED DPUB failed nsqd draining"},
		{"MPUB t", encodeMPUB("x", "y"), "E_MPUB_FAILED MPUB failed nsqd draining"},
		{"SUB t new", nil, "E_SUB_FAILED SUB failed nsqd draining"},
		{"SUB brandnew c", nil, "E_SUB_FAILED SUB failed nsqd draining"},
	} {
		c := dialRaw(t, n)
		if tc.body != nil {
			c.send(tc.cmd, tc.body)
		} else {
			c.send(tc.cmd)
		}
		c.expect(1, tc.want)
		c.expectClosed()
	}

	// Ephemeral topics and channels go at once.
	eventually(t, 5*time.Second, func() bool {
		_, errT := n.GetExistingTopic("x#ephemeral")
		t1, _ := n.GetExistingTopic("t")
		_, errC := t1.GetExistingChannel("e#ephemeral")
		return errT != nil && errC != nil
	}, "ephemeral topic and channel deleted")

	// A consumer of the existing channel empties it; then Run ends.
	c := dialRaw(t, n)
	c.send("SUB t c")
	c.expect(0, "OK")
	c.send("RDY 10")
	var got []string
	for range 3 {
		ft, data := c.readFrame()
		if ft != 2 {
			t.Fatalf("frame type %d %q, want a message", ft, data)
		}
		got = append(got, string(data[26:]))
		select {
		case <-n.drain.quit:
			t.Fatal("drain ended with messages in flight")
		default:
		}
		c.send("FIN " + string(data[10:26]))
	}
	if strings.Join(got, ",") != "m1,m2,m3" {
		t.Errorf("consumer got %v, want m1,m2,m3", got)
	}
	select {
	case <-n.drain.quit:
	case <-time.After(10 * time.Second):
		t.Fatalf("drain did not end after the channel was emptied: %+v", n.State())
	}
	if s := n.State().State; s != "exiting" {
		t.Errorf("state after the drain = %q, want exiting", s)
	}
}

// --drain-timeout ends a drain that cannot finish (no consumer) with a clean
// shutdown.
func TestDrainTimeout(t *testing.T) {
	h := startHTTPNSQD(t, nil, func(o *Options) { o.DrainTimeout = 300 * time.Millisecond })
	h.check(t, httpCase{"POST", "/channel/create?topic=t&channel=c", reqBody{}, 404, msg("TOPIC_NOT_FOUND")})
	h.check(t, httpCase{"POST", "/pub?topic=t", reqBody{s: "m"}, 200, "OK"})
	if _, err := h.n.GetTopic("t"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !h.n.Drain() || h.n.Drain() {
		t.Fatal("Drain() = false the first time or true the second")
	}
	select {
	case <-h.n.drain.quit:
	case <-time.After(10 * time.Second):
		t.Fatal("--drain-timeout did not end the drain")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("drain ended after %v, before --drain-timeout", d)
	}
	if bl := h.n.drainBlockers(); len(bl) != 1 || bl[0].Topic != "t" || bl[0].Channel != "" || bl[0].Depth != 1 {
		t.Errorf("blockers = %+v, want topic t with depth 1", bl)
	}
}

func TestSigtermModeValidation(t *testing.T) {
	o := NewOptions()
	o.SigtermMode = "later"
	o.DrainTimeout = -time.Second
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), "--sigterm-mode must be shutdown or drain") || !strings.Contains(err.Error(), "--drain-timeout") {
		t.Errorf("Validate() = %v", err)
	}
}

// PUT /state/shutdown ends Run with the clean shutdown SIGTERM does.
func TestStateShutdown(t *testing.T) {
	h := startHTTPNSQD(t, nil, nil)
	status, _, body := h.do("PUT", "/state/shutdown", reqBody{})
	if status != 200 || !strings.Contains(body, `"state":"exiting"`) {
		t.Fatalf("PUT /state/shutdown = %d %q", status, body)
	}
	select {
	case <-h.n.drain.quit:
	case <-time.After(5 * time.Second):
		t.Fatal("PUT /state/shutdown did not ask Run to shut down")
	}
	if h.n.Draining() {
		t.Error("a shutdown is not a drain")
	}
}

package nsqd

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// publishAcked PUBs body on replica r until it is acknowledged, at most d:
// E_PUB_FAILED (fatal: a new connection) during an election means the
// publish was not acknowledged and the client retries, which is what the
// product promises (docs/replication.md, "Publishing"). It returns how
// many attempts were refused; each of them may still have been committed.
func publishAcked(t *testing.T, r *replica, topic, body string, d time.Duration) (refused int) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c := dialRaw(t, r.n)
		c.send("PUB "+topic, []byte(body))
		ft, data, err := c.nextFrame(deadline)
		c.Close()
		switch {
		case err != nil:
			t.Fatalf("PUB %s %q on replica %d: %v (%d refused before)", topic, body, r.opts.ID, err, refused)
		case ft == frameResponse && string(data) == "OK":
			return refused
		case ft != frameError || !strings.HasPrefix(string(data), "E_PUB_FAILED "):
			t.Fatalf("PUB %s %q on replica %d = %d %q, want OK or E_PUB_FAILED", topic, body, r.opts.ID, ft, data)
		}
		refused++
		if time.Now().After(deadline) {
			t.Fatalf("PUB %s %q on replica %d not acknowledged within %v: %d refused, last %q", topic, body, r.opts.ID, d, refused, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicationLeaderLosesQuorum: a PUB on a leader whose followers are
// gone is answered E_PUB_FAILED (its entry cannot commit: raft's
// "leadership lost while committing log", or no leader once it stepped
// down), HTTP /pub 503, never OK. Once the followers are back, a publish
// is acknowledged after retries and reaches the consumer that stayed
// connected to the old leader (leading again or relaying from the new
// one); the refused publish may arrive too, an acknowledged and finished
// one does not come back.
func TestReplicationLeaderLosesQuorum(t *testing.T) {
	rs := startReplicaSet(t, 3)
	l := leaderOf(t, rs)
	c := subscribe(t, l.n, "q", "c", "")
	c.send("RDY 10")
	publish(t, l.n, "q", "before")
	m := c.readMsg(10 * time.Second)
	if m.body != "before" {
		t.Fatalf("got %q, want before", m.body)
	}
	c.send("FIN " + m.id)
	for _, r := range rs {
		eventually(t, 10*time.Second, func() bool { return r.unfinished("q", "c") == 0 }, "FIN in the set's state on replica %d", r.opts.ID)
	}

	fs := followersOf(rs, l)
	for _, f := range fs {
		f.stop()
		f.n = nil
	}
	pc := dialRaw(t, l.n)
	pc.send("PUB q", []byte("refused"))
	// The entry waits for a quorum until the leader steps down (its lease
	// runs out), then for a new leader up to the apply timeout (5 s).
	ft, data, err := pc.nextFrame(time.Now().Add(15 * time.Second))
	if err != nil {
		t.Fatalf("PUB on a leader without followers: %v", err)
	}
	if ft != frameError || !strings.HasPrefix(string(data), "E_PUB_FAILED PUB failed no replication quorum") {
		t.Fatalf("PUB on a leader without followers = %d %q, want E_PUB_FAILED ... no replication quorum", ft, data)
	}
	t.Logf("PUB without a quorum: %s", data)
	if code, body := httpPost(t, base(l)+"/pub?topic=q", "refused-http"); code != http.StatusServiceUnavailable {
		t.Errorf("/pub on a leader without followers = %d %s, want 503", code, body)
	}

	for _, f := range fs {
		f.start()
	}
	leaderOf(t, rs)
	if refused := publishAcked(t, l, "q", "after", 20*time.Second); refused > 0 {
		t.Logf("after: %d publishes refused before one was acknowledged", refused)
	}
	seen := map[string]int{}
	for seen["after"] == 0 {
		m := c.readMsg(30 * time.Second)
		seen[m.body]++
		c.send("FIN " + m.id)
	}
	for b := range seen {
		if b != "after" && b != "refused" && b != "refused-http" {
			t.Errorf("delivered %q: neither acknowledged nor a refused publish (a finished one came back?)", b)
		}
	}
}

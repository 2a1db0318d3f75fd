package e2e

// nsqadmin shows replica sets (not in NSQ; docs/replication.md): each
// node's role badge, its leader, term, commit/applied index and lag, on the
// nodes list and the node page; depth sums count a replicated message once;
// the Limits form sets a channel's limits for the whole set.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

func TestAdminBrowserReplicaSet(t *testing.T) {
	nsqtest.Binary(t, "nsqadmin")
	l := adminStartLookupd(t)
	rs := startReplicaSet(t, l.TCPAddr)
	ld := leader(t, rs)
	var follower *rsReplica
	for _, r := range rs {
		if r != ld {
			follower = r
			break
		}
	}
	for _, path := range []string{"/topic/create?topic=orders", "/channel/create?topic=orders&channel=billing"} {
		if status, body := nsqtest.HTTP(t, http.MethodPost, "http://"+ld.http+path, nil); status != http.StatusOK {
			t.Fatalf("POST %s on the leader: %d %s", path, status, body)
		}
	}
	const published = 7
	for i := range published {
		if status, body := nsqtest.HTTP(t, http.MethodPost, "http://"+follower.http+"/pub?topic=orders", fmt.Appendf(nil, "m%d", i)); status != http.StatusOK {
			t.Fatalf("POST /pub on a follower: %d %s", status, body)
		}
	}
	caughtUp(t, rs, ld)
	adminWaitProducers(t, l, "orders", 3)
	base := adminStart(t, "", "--lookupd-http-address="+l.HTTPAddr)

	// /api/nodes: every node with its replica-set view, one leader.
	ls, _ := ld.state()
	nsqtest.Eventually(t, adminTimeout, func() bool {
		status, body := adminJSON(t, http.MethodGet, base+"/api/nodes", "")
		nodes, _ := body["nodes"].([]any)
		if status != http.StatusOK || len(nodes) != 3 {
			return false
		}
		roles := map[string]int{}
		for _, n := range nodes {
			r, _ := n.(map[string]any)["replication"].(map[string]any)
			if r == nil || r["leader_id"] != fmt.Sprint(ld.id) || r["term"] != float64(ls.Term) || r["lag"] != float64(0) ||
				r["commit_index"].(float64) < float64(ls.LastIndex) {
				return false
			}
			roles[r["role"].(string)]++
		}
		return roles["leader"] == 1 && roles["follower"] == 2
	}, "/api/nodes with one leader, two followers, all caught up")

	// Depth sums: the set holds each message once (followers hold none).
	for _, r := range rs {
		s := (&nsqtest.NSQD{HTTPAddr: r.http}).Stats(t)
		want := 0
		if r == ld {
			want = published
		}
		if c := s.Topic("orders").Channel("billing"); c == nil || c.Depth != int64(want) {
			t.Errorf("replica %d (leader %v): billing = %+v, want depth %d", r.id, r == ld, c, want)
		}
	}
	status, ch := adminJSON(t, http.MethodGet, base+"/api/topics/orders/billing", "")
	if status != http.StatusOK || ch["depth"] != float64(published) {
		t.Errorf("nsqadmin /api/topics/orders/billing = %d, depth %v, want %d", status, ch["depth"], published)
	}

	// Message totals: each published message counts once per set (the
	// follower that took the publishes counts them on the topic, the leader
	// on the channel). A consumer on the follower holds 3 messages in
	// flight, which its relay holds in flight on the leader: the set has 3
	// in flight, not 6.
	const held = 3
	c := nsqtest.DialV2(t, follower.tcp)
	c.Command("SUB orders billing")
	c.Expect(nsqtest.FrameTypeResponse, "OK")
	c.Command(fmt.Sprintf("RDY %d", held))
	for range held {
		c.ExpectMessage()
	}
	var top, billing map[string]any
	defer func() {
		if t.Failed() {
			t.Logf("nsqadmin topic %s\nchannel %s", mustJSON(t, top), mustJSON(t, billing))
		}
	}()
	nsqtest.Eventually(t, adminTimeout, func() bool {
		_, top = adminJSON(t, http.MethodGet, base+"/api/topics/orders", "")
		_, billing = adminJSON(t, http.MethodGet, base+"/api/topics/orders/billing", "")
		return top["message_count"] == float64(published) && billing["message_count"] == float64(published) &&
			billing["in_flight_count"] == float64(held) && billing["depth"] == float64(published-held)
	}, fmt.Sprintf("nsqadmin's totals of the set: messages %d, in flight %d, depth %d", published, held, published-held))

	b := newBrowser(t)
	b.run("open nodes", chromedp.Navigate(base+"/nodes"))
	b.poll("one LEADER and two FOLLOWER badges", `document.querySelectorAll('.badge.role-leader').length === 1 && document.querySelectorAll('.badge.role-follower').length === 2`)
	b.poll("the leader's row", `document.querySelector('.badge.role-leader').closest('tr').innerText.includes('`+ld.http+`')`)
	b.poll("Lag column", `[...document.querySelectorAll('th')].some(th => th.textContent === 'Lag')`)
	b.poll("every row names the leader", `[...document.querySelectorAll('td.repl-leader')].filter(td => td.textContent === '`+fmt.Sprint(ld.id)+`').length === 3`)
	b.screenshot("nodes-replica-set")

	b.run("open follower", chromedp.Navigate(base+"/nodes/"+follower.http))
	b.waitText("Replica set")
	b.poll("FOLLOWER badge in the title", `!!document.querySelector('#role .badge.role-follower')`)
	b.poll("its view of the set", `document.querySelector('#replication td.repl-leader').textContent === '`+fmt.Sprint(ld.id)+`'`)
	b.screenshot("node-follower")
	b.run("open leader", chromedp.Navigate(base+"/nodes/"+ld.http))
	b.poll("LEADER badge in the title", `!!document.querySelector('#role .badge.role-leader')`)

	// The Limits form posts to every replica holding the topic; the set
	// logs the config once per post, and every replica shows the same.
	b.run("open channel", chromedp.Navigate(base+"/topics/orders/billing"), chromedp.WaitVisible(chromedp.CSS(`#limits-form`)))
	b.run("fill the Limits form",
		chromedp.SendKeys(chromedp.CSS(`#limits-form input[name="max_depth"]`), "50"),
		chromedp.Click(chromedp.CSS(`#limits-save`)),
		chromedp.WaitVisible(chromedp.CSS(`#modal-confirm`)))
	b.run("confirm", chromedp.Click(chromedp.CSS(`#modal-confirm`)))
	for _, r := range rs {
		nsqtest.Eventually(t, adminTimeout, func() bool {
			_, body := nsqtest.HTTP(t, http.MethodGet, "http://"+r.http+"/channel/config?topic=orders&channel=billing", nil)
			return strings.Contains(body, `"overrides":{"max_depth":50}`)
		}, fmt.Sprintf("the limit on replica %d", r.id))
	}
	b.checkNoErrors()

	// A node without replication has no replication object and no badge.
	n := adminStartNSQD(t, l)
	nsqtest.HTTP(t, http.MethodPost, n.URL("/topic/create?topic=plain"), nil)
	adminWaitProducers(t, l, "plain", 1)
	_, node := adminJSON(t, http.MethodGet, base+"/api/nodes/"+n.HTTPAddr, "")
	if _, ok := node["replication"]; ok || !strings.Contains(mustJSON(t, node), `"node"`) {
		t.Errorf("/api/nodes/%s of an unreplicated nsqd = %v, want no replication", n.HTTPAddr, node)
	}
}

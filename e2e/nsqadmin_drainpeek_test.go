package e2e

// nsqadmin's Peek tab and Drain action (not in NSQ) in headless Chromium,
// with screenshots kept as artifacts like the other browser tests.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

func TestAdminBrowserPeekAndDrain(t *testing.T) {
	nsqtest.Binary(t, "nsqadmin")
	l := adminStartLookupd(t)
	n := adminStartNSQD(t, l)
	nsqtest.HTTP(t, "POST", n.URL("/topic/create?topic=orders"), nil)
	nsqtest.HTTP(t, "POST", n.URL("/channel/create?topic=orders&channel=billing"), nil)
	for _, body := range []string{`{"order":42,"item":"tea"}`, "plain text order", "\x00\x01binary\xff"} {
		if status, _ := nsqtest.HTTP(t, "POST", n.URL("/pub?topic=orders"), []byte(body)); status != http.StatusOK {
			t.Fatal("publish failed")
		}
	}
	nsqtest.HTTP(t, "POST", n.URL("/pub?topic=backlog"), []byte("waiting at the topic"))
	adminWaitProducers(t, l, "orders", 1)
	adminWaitProducers(t, l, "backlog", 1)
	base := adminStart(t, "", "--lookupd-http-address="+l.HTTPAddr)
	before := n.Channel(t, "orders", "billing")

	b := newBrowser(t)
	b.run("open channel", chromedp.Navigate(base+"/topics/orders/billing"))
	b.waitText("Channel message queue")
	b.run("open Peek tab", chromedp.Click(chromedp.CSS(`#tab-peek`)))
	b.waitText("plain text order")
	b.waitText(`{"order":42,"item":"tea"}`)
	b.poll("three queued rows", `document.querySelectorAll('#peek-result pre.peek-body').length === 3`)
	b.screenshot("channel-peek")
	b.run("JSON preview", chromedp.SetValue(chromedp.CSS(`#peek-format`), "json"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#peek-format').dispatchEvent(new Event('change'))`))
	b.waitText(`"item": "tea"`)
	b.run("hex preview", chromedp.SetValue(chromedp.CSS(`#peek-format`), "hex"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#peek-format').dispatchEvent(new Event('change'))`))
	b.waitText("00 01 62 69 6e 61 72 79 ff")
	b.screenshot("channel-peek-hex")
	after := n.Channel(t, "orders", "billing")
	if before.Depth != 3 || after.Depth != 3 || after.MessageCount != before.MessageCount || after.InFlightCount != 0 {
		t.Errorf("peeking from nsqadmin changed the channel: before %+v, after %+v", before, after)
	}

	b.run("open topic", chromedp.Navigate(base+"/topics/backlog"))
	b.waitText("Topic message queue")
	b.run("open topic Peek tab", chromedp.Click(chromedp.CSS(`#tab-peek`)))
	b.waitText("waiting at the topic")
	b.screenshot("topic-peek")

	b.run("open node", chromedp.Navigate(base+"/nodes/"+n.HTTPAddr))
	b.waitText("billing") // the node's topics rendered
	b.run("click drain", chromedp.WaitVisible(chromedp.CSS(`button[data-action="drain"]`)), chromedp.Click(chromedp.CSS(`button[data-action="drain"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#modal-confirm`)))
	b.waitText("Drain node?")
	b.screenshot("drain-confirm")
	if status, _ := nsqtest.HTTP(t, http.MethodGet, n.URL("/ready"), nil); status != http.StatusOK {
		t.Fatal("nsqd drains before the confirmation")
	}
	b.run("confirm drain", chromedp.Click(chromedp.CSS(`#modal-confirm`)))
	nsqtest.Eventually(t, adminTimeout, func() bool {
		status, _ := nsqtest.HTTP(t, http.MethodGet, n.URL("/ready"), nil)
		return status == http.StatusServiceUnavailable
	}, "nsqd to drain after the confirmation")
	b.waitText("DRAINING")
	b.waitText("what still holds the drain")
	b.poll("billing listed as a blocker", `document.body.innerText.includes('billing')`)
	b.screenshot("node-draining")
	b.run("open nodes", chromedp.Navigate(base+"/nodes"))
	b.poll("DRAINING badge on the node", `!!document.querySelector('.badge.draining') && document.querySelector('.badge.draining').closest('tr').innerText.includes(`+"'"+n.HTTPAddr+"'"+`)`)
	b.screenshot("nodes-draining")
	b.checkNoErrors()

	if body := strings.TrimSpace(n.Output()); !strings.Contains(body, "NSQ: draining") {
		t.Errorf("nsqd did not log the drain")
	}
}

// A dead letter's origin shows under its ID in the Peek tab of the
// dead-letter topic.
func TestAdminBrowserPeekDeadLetterOrigin(t *testing.T) {
	nsqtest.Binary(t, "nsqadmin")
	l := adminStartLookupd(t)
	n := adminStartNSQD(t, l)
	for _, step := range []string{"/topic/create?topic=src", "/channel/create?topic=src&channel=c", "/channel/config?topic=src&channel=c&max_attempts=1"} {
		if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL(step), nil); status != http.StatusOK {
			t.Fatalf("POST %s: %d %s", step, status, body)
		}
	}
	if status, _ := nsqtest.HTTP(t, http.MethodPost, n.URL("/pub?topic=src"), []byte("poison pill")); status != http.StatusOK {
		t.Fatal("publish failed")
	}
	c := nsqtest.DialV2(t, n.TCPAddr)
	c.Command("SUB src c")
	c.Expect(nsqtest.FrameTypeResponse, "OK")
	c.Command("RDY 1")
	m := c.ExpectMessage()
	c.Command("REQ " + m.ID + " 0") // attempt 1 of 1: dead-lettered
	adminWaitProducers(t, l, "src.c.dlq", 1)
	base := adminStart(t, "", "--lookupd-http-address="+l.HTTPAddr)

	b := newBrowser(t)
	b.run("open dead-letter topic", chromedp.Navigate(base+"/topics/src.c.dlq"))
	b.waitText("Topic message queue")
	b.run("open Peek tab", chromedp.Click(chromedp.CSS(`#tab-peek`)))
	b.waitText("poison pill")
	b.poll("death record under the ID", `!!document.querySelector('#peek-result .peek-death') && document.querySelector('#peek-result .peek-death').innerText.includes('dead letter from src/c · max_attempts after 1 attempts') && document.querySelector('#peek-result .peek-death').innerText.includes('original ID `+m.ID+`')`)
	b.screenshot("dead-letter-peek")
	b.checkNoErrors()
}

// Peek and Drain are admin actions: with --admin-user, others get 403 and
// no Peek tab.
func TestAdminPeekDrainACL(t *testing.T) {
	nsqtest.Binary(t, "nsqadmin")
	l := adminStartLookupd(t)
	n := adminStartNSQD(t, l)
	nsqtest.HTTP(t, "POST", n.URL("/pub?topic=secret"), []byte("body"))
	adminWaitProducers(t, l, "secret", 1)
	base := adminStart(t, "", "--lookupd-http-address="+l.HTTPAddr, "--admin-user=alice")
	if status, _ := adminJSON(t, "GET", base+"/api/peek?topic=secret", ""); status != http.StatusForbidden {
		t.Errorf("GET /api/peek as a non-admin = %d, want 403", status)
	}
	if status, _ := adminJSON(t, "POST", base+"/api/nodes/"+n.HTTPAddr, `{"action":"drain"}`); status != http.StatusForbidden {
		t.Errorf("POST /api/nodes/:node drain as a non-admin = %d, want 403", status)
	}
	status, body := adminJSON(t, "GET", base+"/api/peek?topic=secret", "", "X-Forwarded-User", "alice")
	if status != http.StatusOK || !strings.Contains(mustJSON(t, body), `"body":"body"`) {
		t.Errorf("GET /api/peek as admin = %d %v", status, body)
	}
	if status, _ := nsqtest.HTTP(t, http.MethodGet, n.URL("/ready"), nil); status != http.StatusOK {
		t.Fatal("nsqd drains after a refused drain")
	}
	if status, _ := adminJSON(t, "POST", base+"/api/nodes/"+n.HTTPAddr, `{"action":"drain"}`, "X-Forwarded-User", "alice"); status != http.StatusOK {
		t.Errorf("POST drain as admin = %d", status)
	}
	if status, _ := nsqtest.HTTP(t, http.MethodGet, n.URL("/ready"), nil); status != http.StatusServiceUnavailable {
		t.Errorf("nsqd not draining after the admin's drain")
	}
	status, nodes := adminJSON(t, "GET", base+"/api/nodes", "")
	if status != http.StatusOK || !strings.Contains(mustJSON(t, nodes), `"draining":true`) {
		t.Errorf("GET /api/nodes = %d %v, want the node draining", status, nodes)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

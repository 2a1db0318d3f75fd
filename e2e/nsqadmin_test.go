package e2e

// nsqadmin against the built nsqd, nsqlookupd and nsqadmin binaries: its
// JSON API as NSQ's front-end and scripts call it, and its UI driven in a
// headless Chromium (Debian's /usr/bin/chromium) through chromedp. Each
// browser test saves full-page screenshots into its artifact directory
// (kept with `go test -artifacts -outputdir=DIR`).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nsqio/go-nsq"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

const adminTimeout = 15 * time.Second

// adminLookupd is an nsqlookupd binary on free ports.
type adminLookupd struct {
	TCPAddr, HTTPAddr string
}

func adminStartLookupd(t *testing.T) adminLookupd {
	t.Helper()
	l := adminLookupd{TCPAddr: nsqtest.FreeAddr(t), HTTPAddr: nsqtest.FreeAddr(t)}
	p := nsqtest.Start(t, "", "nsqlookupd", "--tcp-address="+l.TCPAddr, "--http-address="+l.HTTPAddr, "--broadcast-address=127.0.0.1")
	nsqtest.WaitPing(t, p, l.HTTPAddr)
	return l
}

// adminStartNSQD runs nsqd registered with the lookupds.
func adminStartNSQD(t *testing.T, lookupds ...adminLookupd) *nsqtest.NSQD {
	t.Helper()
	args := []string{"--broadcast-address=127.0.0.1", "--e2e-processing-latency-percentile=0.99,0.5"}
	for _, l := range lookupds {
		args = append(args, "--lookupd-tcp-address="+l.TCPAddr)
	}
	return nsqtest.StartNSQD(t, args...)
}

// adminStart runs the nsqadmin binary with args on a free port and returns
// the URL of its base path once /ping answers there.
func adminStart(t *testing.T, basePath string, args ...string) string {
	t.Helper()
	addr := nsqtest.FreeAddr(t)
	args = append([]string{"--http-address=" + addr, "--stats-sample-interval=250ms"}, args...)
	if basePath != "" {
		args = append(args, "--base-path="+basePath)
	}
	p := nsqtest.Start(t, "", "nsqadmin", args...)
	base := "http://" + addr + strings.TrimSuffix(basePath, "/")
	nsqtest.Eventually(t, adminTimeout, func() bool {
		select {
		case <-p.Exited():
			t.Fatalf("nsqadmin exited:\n%s", p.Output())
		default:
		}
		resp, err := http.Get(base + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "nsqadmin to answer /ping")
	return base
}

// adminWaitProducers waits until lookupd lists n producers of topic.
func adminWaitProducers(t *testing.T, l adminLookupd, topic string, n int) {
	t.Helper()
	nsqtest.Eventually(t, adminTimeout, func() bool {
		_, body := nsqtest.HTTP(t, http.MethodGet, "http://"+l.HTTPAddr+"/lookup?topic="+topic, nil)
		var v struct {
			Producers []any `json:"producers"`
		}
		json.Unmarshal([]byte(body), &v)
		return len(v.Producers) == n
	}, fmt.Sprintf("%d producer(s) of %s in nsqlookupd", n, topic))
}

// adminJSON sends a request to nsqadmin and decodes the JSON answer.
func adminJSON(t *testing.T, method, url, body string, headers ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s %s: %d, body not JSON: %v", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, v
}

// adminConsumer subscribes a go-nsq consumer with a recognisable identity.
func adminConsumer(t *testing.T, n *nsqtest.NSQD, topic, channel string) {
	t.Helper()
	cfg := nsq.NewConfig()
	cfg.ClientID = "e2e-worker"
	cfg.Hostname = "worker.e2e.example"
	cfg.UserAgent = "e2e-consumer/1.0"
	c := newConsumer(t, topic, channel, cfg, func(*nsq.Message) error { return nil })
	connect(t, c, n.TCPAddr)
	waitClients(t, n, topic, channel, 1)
}

func TestAdminAPIAgainstBinaries(t *testing.T) {
	l := adminStartLookupd(t)
	n := adminStartNSQD(t, l)
	for i := range 4 {
		nsqtest.HTTP(t, "POST", n.URL("/pub?topic=orders"), fmt.Appendf(nil, "m%d", i))
	}
	nsqtest.HTTP(t, "POST", n.URL("/channel/create?topic=orders&channel=billing"), nil)
	adminWaitProducers(t, l, "orders", 1)
	adminConsumer(t, n, "orders", "billing")
	base := adminStart(t, "", "--lookupd-http-address="+l.HTTPAddr, "--admin-user=alice")

	_, topics := adminJSON(t, "GET", base+"/api/topics", "")
	if fmt.Sprint(topics["topics"]) != "[orders]" || topics["message"] != "" {
		t.Errorf("topics = %v", topics)
	}
	_, topic := adminJSON(t, "GET", base+"/api/topics/orders", "")
	if topic["message_count"] != 4.0 || topic["node"] != "*" {
		t.Errorf("topic = %v", topic)
	}
	_, ch := adminJSON(t, "GET", base+"/api/topics/orders/billing", "")
	if cl, _ := ch["clients"].([]any); len(cl) != 1 || cl[0].(map[string]any)["client_id"] != "e2e-worker" {
		t.Errorf("channel clients = %v", ch["clients"])
	}
	_, nodes := adminJSON(t, "GET", base+"/api/nodes", "")
	if ns, _ := nodes["nodes"].([]any); len(ns) != 1 {
		t.Errorf("nodes = %v", nodes)
	}
	_, node := adminJSON(t, "GET", base+"/api/nodes/"+n.HTTPAddr, "")
	if node["total_clients"] != 1.0 {
		t.Errorf("node = %v", node)
	}
	_, counter := adminJSON(t, "GET", base+"/api/counter", "")
	if s, _ := counter["stats"].(map[string]any); len(s) != 1 {
		t.Errorf("counter = %v", counter)
	}

	for _, tc := range []struct {
		method, path, body, user string
		status                   int
		message                  string
	}{
		{"GET", "/api/topics/nope", "", "", 404, "TOPIC_NOT_FOUND"},
		{"GET", "/api/topics/orders/nope", "", "", 404, "CHANNEL_NOT_FOUND"},
		{"GET", "/api/nodes/127.0.0.1:1", "", "", 404, "NODE_NOT_FOUND"},
		{"POST", "/api/topics/orders/billing", `{"action":"pause"}`, "", 403, "FORBIDDEN"},
		{"POST", "/api/topics/orders/billing", `{"action":"pause"}`, "mallory", 403, "FORBIDDEN"},
		{"POST", "/api/topics/orders/billing", `{"action":"boom"}`, "alice", 400, "INVALID_ACTION"},
		{"POST", "/api/topics", `{"topic":"bad name"}`, "alice", 400, "INVALID_TOPIC"},
		{"POST", "/api/topics", `not json`, "alice", 400, "invalid character 'o' in literal null (expecting 'u')"},
		{"DELETE", "/api/nodes/" + n.HTTPAddr, `?`, "alice", 400, "INVALID_BODY"},
		{"POST", "/api/topics/orders/billing", `{"action":"pause"}`, "alice", 200, ""},
	} {
		status, v := adminJSON(t, tc.method, base+tc.path, tc.body, "X-Forwarded-User", tc.user)
		if status != tc.status || v["message"] != tc.message {
			t.Errorf("%s %s as %q = %d %v, want %d %q", tc.method, tc.path, tc.user, status, v, tc.status, tc.message)
		}
	}
	if ch := n.Channel(t, "orders", "billing"); ch == nil || !ch.Paused {
		t.Errorf("billing not paused in nsqd's /stats: %+v", ch)
	}

	metrics := func() string {
		_, body := nsqtest.HTTP(t, "GET", base+"/metrics", nil)
		return body
	}()
	for _, want := range []string{"nsqadmin_nodes 1\n", "nsqadmin_topics 1\n", "nsqadmin_messages_total 4\n", `nsqadmin_channel_paused{topic="orders",channel="billing"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Once the nsqd is gone, the API says which node failed.
	n.Kill()
	status, v := adminJSON(t, "GET", base+"/api/nodes/"+n.HTTPAddr, "")
	if status == http.StatusOK {
		t.Errorf("node page of a dead nsqd = %d %v", status, v)
	}
}

func TestAdminAPINodeDown(t *testing.T) {
	n := adminStartNSQD(t)
	nsqtest.HTTP(t, "POST", n.URL("/pub?topic=orders"), []byte("x"))
	dead := nsqtest.FreeAddr(t)
	base := adminStart(t, "", "--nsqd-http-address="+n.HTTPAddr, "--nsqd-http-address="+dead)
	status, v := adminJSON(t, "GET", base+"/api/topics/orders", "")
	msg, _ := v["message"].(string)
	if status != 200 || v["message_count"] != 1.0 || !strings.HasPrefix(msg, "WARNING: ") || !strings.Contains(msg, dead) {
		t.Errorf("topic with one nsqd down = %d %v", status, v)
	}
	// Every upstream down: 502 naming them.
	base2 := adminStart(t, "", "--nsqd-http-address="+dead)
	status, v = adminJSON(t, "GET", base2+"/api/topics", "")
	if msg, _ := v["message"].(string); status != http.StatusBadGateway || !strings.HasPrefix(msg, "UPSTREAM_ERROR: failed to query any nsqd: ") ||
		!strings.Contains(msg, dead) {
		t.Errorf("topics with every nsqd down = %d %v", status, v)
	}
}

// browser is a headless Chromium page that records JavaScript errors.
type browser struct {
	ctx    context.Context
	t      *testing.T
	mu     sync.Mutex
	errors []string // console errors, uncaught exceptions, failed loads
	shots  int
}

// newBrowser starts Chromium, or skips the test loudly when it is missing.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	nsqtest.Binary(t, "nsqadmin") // skips under -short or when not built
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		fmt.Printf("SKIP: chromium not installed (%s missing): nsqadmin browser test %s not run; apt-get install chromium\n", chromium, t.Name())
		t.Skip("SKIP: chromium not installed")
	}
	userData := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(userData),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	b := &browser{ctx: ctx, t: t}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for Chromium to exit, before userData is removed
		wg.Wait()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, bound to ctx
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return // the browser is closing
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	})
	return b
}

// run runs actions with a deadline, failing the test with a screenshot and
// the page's text on error.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, adminTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	b.screenshot("failed-" + strings.NewReplacer(" ", "-", "/", "_").Replace(what))
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	b.t.Fatalf("%s: %v\npage text:\n%s", what, err, text)
}

// poll waits until the JavaScript expression is truthy.
func (b *browser) poll(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, adminTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.fail(what, err)
	}
}

// waitText waits until the page's text contains s.
func (b *browser) waitText(s string) {
	b.t.Helper()
	q, _ := json.Marshal(s)
	b.poll("wait for text "+s, `!!document.body && document.body.innerText.includes(`+string(q)+`)`)
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, adminTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail("evaluate "+expr, err)
	}
	return v
}

// screenshot saves a full-page PNG in the test's artifact directory.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, adminTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.shots++
	path := filepath.Join(b.t.ArtifactDir(), fmt.Sprintf("%02d-%s.png", b.shots, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", path)
}

// checkNoErrors fails the test if the page logged JavaScript errors.
func (b *browser) checkNoErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		b.t.Errorf("JavaScript console: %s", e)
	}
	b.errors = nil
}

// chartPoints reads the number of points the chart with the id draws.
func (b *browser) chartPoints(id string) int {
	b.t.Helper()
	return eval[int](b, `+((document.getElementById('`+id+`') || {getAttribute: () => 0}).getAttribute('data-points') || 0)`)
}

// publishUntil publishes to topic on n every 50ms until the test ends.
func publishUntil(t *testing.T, n *nsqtest.NSQD, topic string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		client := &http.Client{Timeout: 2 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := client.Post(n.URL("/pub?topic="+topic), "text/plain", strings.NewReader(fmt.Sprint("flow ", i)))
			if err == nil {
				resp.Body.Close()
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// adminBrowserFlow is the main browser scenario against nsqadmin at base:
// the topic is listed, the consumer shows on the channel page, Pause asks
// for confirmation and pauses the channel in nsqd, the chart grows while
// messages flow, every page renders without JavaScript errors.
func adminBrowserFlow(t *testing.T, base string, n *nsqtest.NSQD) {
	b := newBrowser(t)

	b.run("open topics", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`a[href$="/topics/orders"]`)))
	b.waitText("orders")
	b.poll("the sampled rate", `!!document.querySelector('#chart-rate') && +document.querySelector('#chart-rate').getAttribute('data-points') >= 2`)
	b.screenshot("topics")

	b.run("open topic", chromedp.Click(chromedp.CSS(`a[href$="/topics/orders"]`)))
	b.waitText("Topic message queue")
	b.waitText("billing")
	b.screenshot("topic")

	b.run("open channel", chromedp.Click(chromedp.CSS(`a[href$="/topics/orders/billing"]`)))
	b.waitText("Client connections")
	b.waitText("worker.e2e.example")
	b.waitText("e2e-consumer/1.0")
	b.screenshot("channel")

	b.run("click pause", chromedp.Click(chromedp.CSS(`button[data-action="pause"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#modal-confirm`)))
	b.waitText("Pause channel?")
	b.screenshot("pause-confirm")
	if ch := n.Channel(t, "orders", "billing"); ch.Paused {
		t.Fatal("channel paused before the confirmation")
	}
	b.run("confirm pause", chromedp.Click(chromedp.CSS(`#modal-confirm`)))
	nsqtest.Eventually(t, adminTimeout, func() bool { return n.Channel(t, "orders", "billing").Paused }, "nsqd's /stats to show billing paused")
	b.run("unpause button", chromedp.WaitVisible(chromedp.CSS(`button[data-action="unpause"]`)))
	b.waitText("paused")

	// The chart grows in place while messages flow.
	publishUntil(t, n, "orders")
	start := b.chartPoints("chart-rate")
	b.poll("chart grows", fmt.Sprintf(`+document.getElementById('chart-rate').getAttribute('data-points') >= %d`, start+3))
	b.screenshot("channel-paused")

	// Unpause needs a confirmation too.
	b.run("unpause", chromedp.Click(chromedp.CSS(`button[data-action="unpause"]`)), chromedp.WaitVisible(chromedp.CSS(`#modal-confirm`)),
		chromedp.Click(chromedp.CSS(`#modal-confirm`)))
	nsqtest.Eventually(t, adminTimeout, func() bool { return !n.Channel(t, "orders", "billing").Paused }, "billing unpaused")

	for _, page := range []struct{ path, text string }{
		{"/nodes", "NSQd nodes"},
		{"/nodes/" + n.HTTPAddr, "Client connections"},
		{"/counter", "messages delivered into"},
		{"/lookup", "nsqlookupd hosts"},
	} {
		b.run("open "+page.path, chromedp.Navigate(base+page.path))
		b.waitText(page.text)
		b.screenshot(strings.NewReplacer("/", "", ":", "_", ".", "_").Replace(page.path))
	}
	b.checkNoErrors()

	// An unknown topic is a 404 from the API and a clear message on the page
	// (the browser logs the 404 response itself, as expected here).
	b.run("open unknown topic", chromedp.Navigate(base+"/topics/nope"))
	b.waitText("This topic does not exist")
	b.screenshot("unknown-topic")
}

func adminBrowserCluster(t *testing.T) (adminLookupd, *nsqtest.NSQD) {
	l := adminStartLookupd(t)
	n := adminStartNSQD(t, l)
	for i := range 5 {
		nsqtest.HTTP(t, "POST", n.URL("/pub?topic=orders"), fmt.Appendf(nil, "m%d", i))
	}
	nsqtest.HTTP(t, "POST", n.URL("/channel/create?topic=orders&channel=billing"), nil)
	adminWaitProducers(t, l, "orders", 1)
	adminConsumer(t, n, "orders", "billing")
	return l, n
}

func TestAdminBrowser(t *testing.T) {
	nsqtest.Binary(t, "nsqadmin")
	l, n := adminBrowserCluster(t)
	base := adminStart(t, "", "--lookupd-http-address="+l.HTTPAddr)
	adminBrowserFlow(t, base, n)
}

func TestAdminBrowserBasePath(t *testing.T) {
	nsqtest.Binary(t, "nsqadmin")
	l, n := adminBrowserCluster(t)
	base := adminStart(t, "/admin", "--lookupd-http-address="+l.HTTPAddr)
	if status, _ := nsqtest.HTTP(t, "GET", strings.TrimSuffix(base, "/admin")+"/topics", nil); status != http.StatusNotFound {
		t.Errorf("page outside --base-path = %d, want 404", status)
	}
	adminBrowserFlow(t, base, n)
}

// Seed 001: nsqadmin --lookupd-http-address=<lookupd 1> --lookupd-http-address=<lookupd 2>
// with nsqds registered in both.
func TestAdminBrowserSeedTwoLookupds(t *testing.T) {
	nsqtest.Binary(t, "nsqadmin")
	l1, l2 := adminStartLookupd(t), adminStartLookupd(t)
	n1, n2 := adminStartNSQD(t, l1, l2), adminStartNSQD(t, l1, l2)
	nsqtest.HTTP(t, "POST", n1.URL("/pub?topic=testTopic1"), []byte("hello world 1"))
	nsqtest.HTTP(t, "POST", n2.URL("/pub?topic=testTopic1"), []byte("hello world 2"))
	adminWaitProducers(t, l1, "testTopic1", 2)
	adminWaitProducers(t, l2, "testTopic1", 2)
	base := adminStart(t, "", "--lookupd-http-address="+l1.HTTPAddr, "--lookupd-http-address="+l2.HTTPAddr)

	b := newBrowser(t)
	b.run("open topics", chromedp.Navigate(base+"/"))
	b.waitText("testTopic1")
	b.screenshot("topics")
	b.run("open nodes", chromedp.Navigate(base+"/nodes"))
	b.waitText(n1.HTTPAddr)
	b.waitText(n2.HTTPAddr)
	conns := eval[[]string](b, `Array.from(document.querySelectorAll('td[title]')).map(td => td.innerText)`)
	if strings.Join(conns, ",") != "2,2" {
		t.Errorf("Lookupd Conns. column = %q, want 2 for each node", conns)
	}
	b.screenshot("nodes")
	b.run("open topic", chromedp.Navigate(base+"/topics/testTopic1"))
	b.waitText("Topic message queue")
	b.waitText("No channels exist for this topic")
	b.screenshot("topic")
	b.run("open lookup", chromedp.Navigate(base+"/lookup"))
	b.waitText(l2.HTTPAddr)
	b.screenshot("lookup")
	b.checkNoErrors()
}

// --nsqd-http-address mode, one nsqd down: the page renders what the live
// one says and a banner names the dead one.
func TestAdminBrowserNSQDModeNodeDown(t *testing.T) {
	nsqtest.Binary(t, "nsqadmin")
	n := adminStartNSQD(t)
	nsqtest.HTTP(t, "POST", n.URL("/pub?topic=orders"), []byte("x"))
	nsqtest.HTTP(t, "POST", n.URL("/channel/create?topic=orders&channel=billing"), nil)
	adminConsumer(t, n, "orders", "billing")
	dead := nsqtest.FreeAddr(t)
	base := adminStart(t, "", "--nsqd-http-address="+n.HTTPAddr, "--nsqd-http-address="+dead)

	b := newBrowser(t)
	b.run("open topics", chromedp.Navigate(base+"/"))
	b.waitText("orders")
	b.waitText("1 node did not answer")
	b.waitText(dead)
	b.screenshot("topics-node-down")
	b.run("open channel", chromedp.Navigate(base+"/topics/orders/billing"))
	b.waitText("worker.e2e.example")
	b.waitText(dead)
	b.screenshot("channel-node-down")
	b.run("open lookup", chromedp.Navigate(base+"/lookup"))
	b.waitText("not configured with nsqlookupd hosts")
	b.screenshot("lookup-nsqd-mode")
	b.checkNoErrors()
}

package e2e

// Bounded queues and dead letters (issue 14), seen from the outside: the
// built nsqd with --durable and --max-attempts, SIGKILLed between two
// attempts of a message that always fails.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

// Done-when 4 (durable part): a SIGKILL between attempts keeps the attempt
// count and loses no dead letter; 5: the limits set over HTTP survive the
// restart.
func TestLimitsDurableKillKeepsAttemptsAndDeadLetter(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	dir := t.TempDir()
	args := []string{"--durable", "--max-attempts=3", "--data-path=" + dir}
	n := nsqtest.StartNSQD(t, args...)
	for _, path := range []string{
		"/topic/create?topic=dk",
		"/channel/create?topic=dk&channel=c",
		"/channel/config?topic=dk&channel=c&max_depth=10",
	} {
		if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL(path), nil); status != 200 {
			t.Fatalf("POST %s: %d %s", path, status, body)
		}
	}
	p := nsqtest.DialV2(t, n.TCPAddr)
	p.Command("PUB dk", []byte("poison"))
	p.Expect(nsqtest.FrameTypeResponse, "OK")

	c := nsqtest.DialV2(t, n.TCPAddr)
	c.Command("SUB dk c")
	c.Expect(nsqtest.FrameTypeResponse, "OK")
	c.Command("RDY 1")
	for want := uint16(1); want <= 2; want++ {
		m := c.ExpectMessage()
		if m.Attempts != want || string(m.Body) != "poison" {
			t.Fatalf("delivery %d: attempts %d body %q", want, m.Attempts, m.Body)
		}
		c.Command(fmt.Sprintf("REQ %s 0", m.ID)) // journaled with its attempts (max attempts set)
	}
	// The third delivery is in flight when nsqd is killed, while the
	// consumer works on it. The journal reaches the disk every 50 ms (the
	// sync loop): a kill within that time of a REQ may forget that REQ's
	// count, never a message.
	if m := c.ExpectMessage(); m.Attempts != 3 {
		t.Fatalf("third delivery: attempts %d", m.Attempts)
	}
	time.Sleep(300 * time.Millisecond) // the consumer's work, longer than a journal flush
	n.Kill()

	n = nsqtest.StartNSQD(t, args...)
	status, body := nsqtest.HTTP(t, http.MethodGet, n.URL("/channel/config?topic=dk&channel=c"), nil)
	if status != 200 || !strings.Contains(body, `"max_depth":10`) {
		t.Fatalf("GET /channel/config after the restart: %d %s", status, body)
	}
	c = nsqtest.DialV2(t, n.TCPAddr)
	c.Command("SUB dk c")
	c.Expect(nsqtest.FrameTypeResponse, "OK")
	c.Command("RDY 1")
	// The count journaled at the last REQ is kept (the delivery in flight
	// at the kill is not counted): this is attempt 3, at the limit, so its
	// REQ dead-letters the message.
	m := c.ExpectMessage()
	if m.Attempts != 3 {
		t.Fatalf("after the restart: attempts %d, want 3", m.Attempts)
	}
	c.Command(fmt.Sprintf("REQ %s 0", m.ID))

	d := nsqtest.DialV2(t, n.TCPAddr)
	d.Command("SUB dk.c.dlq x")
	d.Expect(nsqtest.FrameTypeResponse, "OK")
	d.Command("RDY 10")
	dm := d.ExpectMessage()
	if string(dm.Body) != "poison" || dm.Attempts != 1 {
		t.Fatalf("dead letter %q attempts %d", dm.Body, dm.Attempts)
	}
	d.Command("FIN " + dm.ID)
	nsqtest.Eventually(t, 5*time.Second, func() bool {
		cs := n.Channel(t, "dk", "c")
		return cs != nil && cs.Depth == 0 && cs.InFlightCount == 0 && cs.DeferredCount == 0
	}, "source channel empty")
	if !strings.Contains(statsBody(t, n), `"dead_lettered_count":1`) {
		t.Fatalf("/stats lacks dead_lettered_count 1: %s", statsBody(t, n))
	}
}

// A dead letter's origin is on disk before the dead letter is published in
// --durable mode: after a SIGKILL right after the dead-lettering, peek on
// the dead-letter topic shows where it came from.
func TestDeadLetterOriginSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	args := []string{"--durable", "--enable-peek", "--max-attempts=1", "--data-path=" + t.TempDir()}
	n := nsqtest.StartNSQD(t, args...)
	p := nsqtest.DialV2(t, n.TCPAddr)
	p.Command("PUB dko", []byte("poison"))
	p.Expect(nsqtest.FrameTypeResponse, "OK")
	c := nsqtest.DialV2(t, n.TCPAddr)
	c.Command("SUB dko c")
	c.Expect(nsqtest.FrameTypeResponse, "OK")
	c.Command("RDY 1")
	m := c.ExpectMessage()
	c.Command("REQ " + m.ID + " 0") // attempt 1 of 1: dead-lettered
	nsqtest.Eventually(t, 5*time.Second, func() bool {
		status, body := nsqtest.HTTP(t, http.MethodGet, n.URL("/topic/peek?topic=dko.c.dlq"), nil)
		return status == 200 && strings.Contains(body, `"body":"poison"`)
	}, "the dead letter in dko.c.dlq")
	n.Kill()

	n = nsqtest.StartNSQD(t, args...)
	status, body := nsqtest.HTTP(t, http.MethodGet, n.URL("/topic/peek?topic=dko.c.dlq"), nil)
	var r struct {
		Messages []struct {
			ID    string `json:"id"`
			Body  string `json:"body"`
			Death *struct {
				SourceTopic   string `json:"source_topic"`
				SourceChannel string `json:"source_channel"`
				OriginalID    string `json:"original_id"`
				Attempts      int    `json:"attempts"`
				Reason        string `json:"reason"`
			} `json:"death"`
		} `json:"messages"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &r) != nil || len(r.Messages) == 0 {
		t.Fatalf("GET /topic/peek after the kill: %d %s", status, body)
	}
	for _, dm := range r.Messages { // a crash may duplicate a dead letter
		d := dm.Death
		if dm.Body != "poison" || d == nil || d.SourceTopic != "dko" || d.SourceChannel != "c" || d.OriginalID != m.ID || d.Attempts != 1 || d.Reason != "max_attempts" {
			t.Fatalf("dead letter after the kill: %s", body)
		}
	}
}

func statsBody(t *testing.T, n *nsqtest.NSQD) string {
	t.Helper()
	_, body := nsqtest.HTTP(t, http.MethodGet, n.URL("/stats?format=json&topic=dk"), nil)
	return body
}

var (
	baselineOnce sync.Once
	baselineErr  error
)

// buildBaseline builds NSQ 1.3.0's nsqd (bench/compare/cmd/baseline-nsqd,
// from the Go module cache or proxy) beside the other binaries, once.
func buildBaseline(t *testing.T) {
	t.Helper()
	dir := filepath.Dir(nsqtest.Binary(t, "nsqd"))
	baselineOnce.Do(func() {
		cmd := exec.Command("go", "build", "-C", "../bench/compare", "-o", filepath.Join(dir, "baseline-nsqd"), "./cmd/baseline-nsqd")
		out, err := cmd.CombinedOutput()
		if err != nil {
			baselineErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if baselineErr != nil {
		t.Skipf("SKIP: cannot build NSQ 1.3.0's nsqd (bench/compare/cmd/baseline-nsqd): %v", baselineErr)
	}
}

// Done-when 5: NSQ 1.3's own nsqd starts on a data directory whose nsqd.dat
// has our limit overrides, and serves the topic, channel and messages.
func TestLimitsNSQ13StartsOnDataDir(t *testing.T) {
	buildBaseline(t)
	dir := t.TempDir()
	n := nsqtest.StartNSQD(t, "--data-path="+dir)
	for _, path := range []string{
		"/topic/create?topic=lt",
		"/channel/create?topic=lt&channel=c",
		"/channel/config?topic=lt&channel=c&max_depth=5&max_attempts=2",
		"/topic/config?topic=lt&msg_ttl=1h",
		"/channel/create?topic=lt&channel=dl",
		"/channel/config?topic=lt&channel=dl&max_attempts=1",
	} {
		if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL(path), nil); status != 200 {
			t.Fatalf("POST %s: %d %s", path, status, body)
		}
	}
	for i := range 3 {
		if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL("/pub?topic=lt"), fmt.Appendf(nil, "m%d", i)); status != 200 {
			t.Fatalf("POST /pub: %d %s", status, body)
		}
	}
	// One dead letter in lt.dl.dlq, its origin in lt.dl.dlq.diskqueue.deaths.dat.
	c := nsqtest.DialV2(t, n.TCPAddr)
	c.Command("SUB lt dl")
	c.Expect(nsqtest.FrameTypeResponse, "OK")
	c.Command("RDY 1")
	m := c.ExpectMessage()
	c.Command("RDY 0")
	c.Command("REQ " + m.ID + " 0")
	nsqtest.Eventually(t, 5*time.Second, func() bool {
		ts := n.Stats(t).Topic("lt.dl.dlq")
		return ts != nil && ts.Depth == 1
	}, "a dead letter in lt.dl.dlq")
	if code := n.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsqd exited %d", code)
	}
	dat, err := os.ReadFile(filepath.Join(dir, "nsqd.dat"))
	if err != nil || !strings.Contains(string(dat), `"config":{"max_depth":5,"max_attempts":2}`) {
		t.Fatalf("nsqd.dat = %s (%v)", dat, err)
	}

	httpAddr := nsqtest.FreeAddr(t)
	b := nsqtest.Start(t, "", "baseline-nsqd", "--data-path="+dir, "--tcp-address="+nsqtest.FreeAddr(t), "--http-address="+httpAddr)
	nsqtest.WaitPing(t, b, httpAddr)
	base := &nsqtest.NSQD{Process: b, HTTPAddr: httpAddr, DataPath: dir}
	cs := base.Channel(t, "lt", "c")
	if cs == nil || cs.Depth != 3 {
		t.Fatalf("NSQ 1.3 on our data directory: channel lt/c = %+v", cs)
	}
	if _, err := os.Stat(filepath.Join(dir, "lt.dl.dlq.diskqueue.deaths.dat")); err != nil {
		t.Fatalf("no death records beside the dead-letter topic: %v", err)
	}
	if ts := base.Stats(t).Topic("lt.dl.dlq"); ts == nil || ts.Depth != 1 {
		t.Fatalf("NSQ 1.3 on our data directory: dead-letter topic = %+v", ts)
	}
	if code := b.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("baseline-nsqd exited %d:\n%s", code, b.Output())
	}
}

// Done-when 6: the nsqadmin Limits form sets a channel's limit on both
// nsqds holding the topic and the bar shows depth against it; the channel
// page links its dead-letter topic; Redrive on the dead-letter topic moves
// its messages back.
func TestAdminBrowserLimits(t *testing.T) {
	nsqtest.Binary(t, "nsqadmin")
	var nodes []*nsqtest.NSQD
	for range 2 {
		n := adminStartNSQD(t)
		for _, path := range []string{"/topic/create?topic=lim", "/channel/create?topic=lim&channel=c"} {
			nsqtest.HTTP(t, http.MethodPost, n.URL(path), nil)
		}
		for i := range 3 {
			nsqtest.HTTP(t, http.MethodPost, n.URL("/pub?topic=lim"), fmt.Appendf(nil, "m%d", i))
		}
		nodes = append(nodes, n)
	}
	base := adminStart(t, "", "--nsqd-http-address="+nodes[0].HTTPAddr, "--nsqd-http-address="+nodes[1].HTTPAddr)

	b := newBrowser(t)
	b.run("open channel", chromedp.Navigate(base+"/topics/lim/c"), chromedp.WaitVisible(chromedp.CSS(`#limits-form`)))
	b.waitText("Channel message queue")
	b.run("fill the Limits form",
		chromedp.SendKeys(chromedp.CSS(`#limits-form input[name="max_depth"]`), "50"),
		chromedp.SendKeys(chromedp.CSS(`#limits-form input[name="max_attempts"]`), "3"),
		chromedp.Click(chromedp.CSS(`#limits-save`)),
		chromedp.WaitVisible(chromedp.CSS(`#modal-confirm`)))
	b.waitText("Set channel limits?")
	b.run("confirm", chromedp.Click(chromedp.CSS(`#modal-confirm`)))
	for _, n := range nodes {
		nsqtest.Eventually(t, adminTimeout, func() bool {
			_, body := nsqtest.HTTP(t, http.MethodGet, n.URL("/channel/config?topic=lim&channel=c"), nil)
			return strings.Contains(body, `"overrides":{"max_depth":50,"max_attempts":3}`)
		}, "the limit set on "+n.HTTPAddr)
	}
	// Each node's bar shows 3 of 50, the total 6 of 100.
	b.poll("node bars", `document.querySelectorAll('.limit-bar[data-max="50"][data-depth="3"]').length === 2`)
	b.poll("total bar", `!!document.querySelector('.limit-bar[data-max="100"][data-depth="6"]')`)
	b.waitText("3 / 50")
	b.poll("dead-letter link", `!!document.querySelector('#dlq-link') && document.querySelector('#dlq-link').textContent === 'lim.c.dlq'`)
	b.screenshot("channel-limits")

	// Redrive from the dead-letter topic.
	nsqtest.HTTP(t, http.MethodPost, nodes[0].URL("/pub?topic=lim.c.dlq"), []byte("dead"))
	b.run("open dead-letter topic", chromedp.Navigate(base+"/topics/lim.c.dlq"), chromedp.WaitVisible(chromedp.CSS(`#redrive-form`)))
	// The node table and the channel list render after their first fetch
	// and push the form down: click once the page has its final layout, or
	// the click lands where the button was (seen on a loaded machine).
	b.poll("topic page loaded", `!document.querySelector('#nodes .loading') && document.querySelector('#channels').children.length > 0`)
	b.run("redrive", chromedp.Click(chromedp.CSS(`#redrive`)), chromedp.WaitVisible(chromedp.CSS(`#modal-confirm`)))
	b.waitText("Redrive dead letters?")
	b.run("confirm redrive", chromedp.Click(chromedp.CSS(`#modal-confirm`)))
	nsqtest.Eventually(t, adminTimeout, func() bool {
		cs := nodes[0].Channel(t, "lim", "c")
		return cs != nil && cs.Depth == 4
	}, "the dead letter back in lim/c")
	b.screenshot("redrive")
	b.checkNoErrors()
}

// Done-when 4 (nsqjs): nsqjs's default of unlimited attempts is protected by
// the server's --max-attempts: its handler sees attempts 1, 2, 3 and the
// dead-letter topic gets the body once.
func TestLimitsNSQJSUnlimitedAttempts(t *testing.T) {
	node, dir := installNSQJS(t)
	n := nsqtest.StartNSQD(t, "--max-attempts=3")
	for _, path := range []string{"/topic/create?topic=js", "/channel/create?topic=js&channel=js", "/pub?topic=js"} {
		var body []byte
		if strings.HasPrefix(path, "/pub") {
			body = []byte("poison")
		}
		if status, resp := nsqtest.HTTP(t, http.MethodPost, n.URL(path), body); status != 200 {
			t.Fatalf("POST %s: %d %s", path, status, resp)
		}
	}
	run := exec.Command(node, "deadletter.js", n.TCPAddr, "js")
	run.Dir = dir
	var stderr strings.Builder
	run.Stderr = &stderr
	out, err := run.Output()
	var res struct {
		Attempts []int    `json:"attempts"`
		Dead     []string `json:"dead"`
		Errors   []string `json:"errors"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || err != nil {
		t.Fatalf("node deadletter.js: %v (%v)\nstdout: %s\nstderr: %s", err, jerr, out, stderr.String())
	}
	if !slices.Equal(res.Attempts, []int{1, 2, 3}) || !slices.Equal(res.Dead, []string{"poison"}) || len(res.Errors) > 0 {
		t.Fatalf("nsqjs saw attempts %v, dead letters %q, errors %v; want [1 2 3], [poison]", res.Attempts, res.Dead, res.Errors)
	}
}

package e2e

// The operations kit (contrib/ and `make dist`, README "Operating"): the
// alert rules and the Grafana dashboard are run against a real Prometheus
// scraping real daemons, the systemd units go through systemd-analyze and
// the release archive is unpacked and run. Tools that are not installed
// (Debian packages prometheus and systemd) make their test skip loudly.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqclone/nsq/internal/version"
)

const opsTimeout = 30 * time.Second

// opsRepo returns the repository root (the e2e tests run in e2e/).
func opsRepo(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// opsTool returns the path of an installed tool, or skips the test loudly.
func opsTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped under -short")
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("SKIP: ***** %s not installed (Debian package %s); this part of the operations kit is NOT tested *****", name, pkg)
	}
	return path
}

// opsRun runs a command in dir and returns its combined output; a non-zero
// exit fails the test.
func opsRun(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The alert rules and the example scrape config are valid, and the rules'
// unit tests (series in, alerts out) pass.
func TestOpsAlertRulesPromtool(t *testing.T) {
	promtool := opsTool(t, "promtool", "prometheus")
	dir := filepath.Join(opsRepo(t), "contrib", "prometheus")
	out := opsRun(t, dir, promtool, "check", "rules", "nsq-alerts.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules: %s", out)
	}
	opsRun(t, dir, promtool, "check", "config", "prometheus.yml")
	out = opsRun(t, dir, promtool, "test", "rules", "nsq-alerts.test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: %s", out)
	}
	// Every alert has a unit test.
	rules := opsAlertNames(t, filepath.Join(dir, "nsq-alerts.yml"))
	tests, err := os.ReadFile(filepath.Join(dir, "nsq-alerts.test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range rules {
		if !regexp.MustCompile(`alertname: ` + name + `\n\s+exp_alerts:\n\s+- exp_labels`).Match(tests) {
			t.Errorf("alert %s has no unit test in nsq-alerts.test.yml where it fires", name)
		}
	}
}

// opsAlertNames returns the alert names of a rule file.
func opsAlertNames(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s+- alert: (\S+)$`).FindAllSubmatch(b, -1) {
		names = append(names, string(m[1]))
	}
	if len(names) == 0 {
		t.Fatalf("no alerts in %s", path)
	}
	return names
}

// opsAlertExprs returns the expression of every rule of a rule file (one
// line each, as the file writes them).
func opsAlertExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, m := range regexp.MustCompile(`(?m)^\s+expr: (.+)$`).FindAllSubmatch(b, -1) {
		exprs = append(exprs, string(m[1]))
	}
	return exprs
}

// A real Prometheus scrapes nsqlookupd, four nsqd and nsqadmin while known
// counts are published and consumed: what it stores matches /stats, every
// query of the Grafana dashboard returns series with the labels its legends
// use, the alert rules evaluate and the expected ones fire, every metric
// and label set the rules and their unit tests use exists in the live data,
// and each daemon's /metrics passes promtool's linter.
func TestOpsPrometheus(t *testing.T) {
	prometheus := opsTool(t, "prometheus", "prometheus")
	repo := opsRepo(t)

	lookupd := adminStartLookupd(t)
	n1 := adminStartNSQD(t, lookupd)
	n2 := adminStartNSQD(t, lookupd)
	// n3 refuses publishes (free disk is always below 2^62 bytes): unhealthy
	// and low on disk, for the alerts. It is not registered with nsqlookupd.
	n3 := nsqtest.StartNSQD(t, "--min-free-disk-bytes=4611686018427387904", "--sync-timeout=100ms")
	// n4 is replica 1 of a set of two whose replica 2 never runs: it knows
	// no leader, for the replication alerts and metrics.
	raft1, raft2 := nsqtest.FreeAddr(t), nsqtest.FreeAddr(t)
	n4 := nsqtest.StartNSQD(t, "--node-id=1", "--replication-address="+raft1, "--replication-peers=1@"+raft1+",2@"+raft2)
	adminURL := adminStart(t, "", "--lookupd-http-address="+lookupd.HTTPAddr)
	adminAddr := strings.TrimPrefix(adminURL, "http://")

	// Prometheus, with the rules of contrib/ whose `for` durations are cut to
	// 0s so that alerts fire at their first true evaluation.
	dir := t.TempDir()
	rulesSrc := filepath.Join(repo, "contrib", "prometheus", "nsq-alerts.yml")
	rules, err := os.ReadFile(rulesSrc)
	if err != nil {
		t.Fatal(err)
	}
	forRE := regexp.MustCompile(`(?m)^(\s+for:) \S+$`)
	alertNames := opsAlertNames(t, rulesSrc)
	if got := len(forRE.FindAll(rules, -1)); got != len(alertNames) {
		t.Fatalf("%d `for:` lines in nsq-alerts.yml for %d alerts; the test rewrites one per alert", got, len(alertNames))
	}
	rules = forRE.ReplaceAll(rules, []byte("$1 0s"))
	if err := os.WriteFile(filepath.Join(dir, "nsq-alerts.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	targets := func(addrs ...string) string { return `['` + strings.Join(addrs, `', '`) + `']` }
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [nsq-alerts.yml]
scrape_configs:
  - job_name: nsqd
    static_configs: [{targets: %s}]
  - job_name: nsqlookupd
    static_configs: [{targets: %s}]
  - job_name: nsqadmin
    static_configs: [{targets: %s}]
`, targets(n1.HTTPAddr, n2.HTTPAddr, n3.HTTPAddr, n4.HTTPAddr), targets(lookupd.HTTPAddr), targets(adminAddr))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := opsStartPrometheus(t, prometheus, dir)

	// Workload on topic orders: billing consumes everything from n1 and n2
	// and requeues every fifth message once; audit has no consumer; on n1,
	// slow has a consumer that lets one message time out.
	const pubN1, pubN2 = 30, 20
	for _, n := range []*nsqtest.NSQD{n1, n2} {
		if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL("/topic/create?topic=orders"), nil); status != http.StatusOK {
			t.Fatalf("POST /topic/create: %d %s", status, body)
		}
		for _, ch := range []string{"billing", "audit", "slow"} {
			if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL("/channel/create?topic=orders&channel="+ch), nil); status != http.StatusOK {
				t.Fatalf("POST /channel/create %s: %d %s", ch, status, body)
			}
		}
	}
	for _, x := range []struct {
		n     *nsqtest.NSQD
		count int
	}{{n1, pubN1}, {n2, pubN2}} {
		bodies := make([][]byte, x.count)
		for i := range bodies {
			bodies[i] = fmt.Appendf(nil, "m%d", i)
		}
		if err := newProducer(t, x.n.TCPAddr).MultiPublish("orders", bodies); err != nil {
			t.Fatalf("MPUB to %s: %v", x.n.HTTPAddr, err)
		}
	}
	slow := nsqtest.DialV2(t, n1.TCPAddr)
	slow.Command("IDENTIFY", []byte(`{"msg_timeout":1000}`))
	slow.Expect(nsqtest.FrameTypeResponse, "OK")
	slow.Command("SUB orders slow")
	slow.Expect(nsqtest.FrameTypeResponse, "OK")
	slow.Command("RDY 1")
	slow.ExpectMessage()
	slow.Command("RDY 0") // the message times out and stays queued

	const requeues = pubN1/5 + pubN2/5
	in := newInbox(pubN1 + pubN2 + requeues)
	requeued := map[string]bool{} // per node and body; handled on one goroutine at a time
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 16 // RDY on both connections at once
	billing := newConsumer(t, "orders", "billing", cfg, func(m *nsq.Message) error {
		var i int
		fmt.Sscanf(string(m.Body), "m%d", &i)
		if key := m.NSQDAddress + string(m.Body); i%5 == 0 && !requeued[key] {
			requeued[key] = true
			in.handle(m)
			m.DisableAutoResponse()
			m.RequeueWithoutBackoff(0)
			return nil
		}
		return in.handle(m)
	})
	if err := billing.ConnectToNSQDs([]string{n1.TCPAddr, n2.TCPAddr}); err != nil {
		t.Fatal(err)
	}
	in.wait(t, opsTimeout, "billing")

	// /stats reaches the known counts.
	want := map[*nsqtest.NSQD]map[string][3]uint64{ // channel → depth, requeued, timed out
		n1: {"billing": {0, pubN1 / 5, 0}, "audit": {pubN1, 0, 0}, "slow": {pubN1, 0, 1}},
		n2: {"billing": {0, pubN2 / 5, 0}, "audit": {pubN2, 0, 0}, "slow": {pubN2, 0, 0}},
	}
	stats := map[*nsqtest.NSQD]*nsqtest.Stats{}
	for n, channels := range want {
		nsqtest.Eventually(t, opsTimeout, func() bool {
			s := n.Stats(t)
			for name, w := range channels {
				c := s.Topic("orders").Channel(name)
				if c == nil || c.InFlightCount != 0 || uint64(c.Depth) != w[0] || c.RequeueCount != w[1] || c.TimeoutCount != w[2] {
					return false
				}
			}
			stats[n] = s
			return true
		}, "known depths, requeues and timeouts in /stats of "+n.HTTPAddr)
	}

	prom.waitTargetsUp(t, 6)

	// What Prometheus stored for n1 and n2 is what /stats says.
	for _, n := range []*nsqtest.NSQD{n1, n2} {
		s := stats[n]
		topic := s.Topic("orders")
		want := map[string]float64{
			`nsq_topic_messages_total{topic="orders"}`:                float64(topic.MessageCount),
			`nsq_topic_depth{topic="orders"}`:                         float64(topic.Depth),
			`nsq_topic_backend_depth{topic="orders"}`:                 float64(topic.BackendDepth),
			`nsq_topic_message_bytes_total{topic="orders"}`:           float64(topic.MessageBytes),
			`nsq_topic_paused{topic="orders"}`:                        0,
			`nsq_topic_backend_skipped_regions_total{topic="orders"}`: float64(topic.BackendSkippedRegions),
			`nsq_topic_backend_skipped_bytes_total{topic="orders"}`:   float64(topic.BackendSkippedBytes),
			`nsq_health`: 1,
		}
		for _, c := range topic.Channels {
			l := fmt.Sprintf(`{channel=%q,topic="orders"}`, c.Name)
			want["nsq_channel_depth"+l] = float64(c.Depth)
			want["nsq_channel_backend_depth"+l] = float64(c.BackendDepth)
			want["nsq_channel_in_flight"+l] = float64(c.InFlightCount)
			want["nsq_channel_deferred"+l] = float64(c.DeferredCount)
			want["nsq_channel_messages_total"+l] = float64(c.MessageCount)
			want["nsq_channel_requeued_total"+l] = float64(c.RequeueCount)
			want["nsq_channel_timed_out_total"+l] = float64(c.TimeoutCount)
			want["nsq_channel_clients"+l] = float64(c.ClientCount)
			want["nsq_channel_paused"+l] = 0
			want["nsq_channel_backend_skipped_regions_total"+l] = float64(c.BackendSkippedRegions)
			want["nsq_channel_backend_skipped_bytes_total"+l] = float64(c.BackendSkippedBytes)
		}
		if len(s.HealthConditions) == 0 {
			t.Errorf("/stats of %s has no health_conditions", n.HTTPAddr)
		}
		for _, hc := range s.HealthConditions {
			want[fmt.Sprintf("nsq_health_condition{condition=%q}", hc.Condition)] = map[bool]float64{true: 1}[hc.OK]
		}
		prom.waitValues(t, fmt.Sprintf(`{job="nsqd",instance=%q,__name__=~"nsq_topic_.*|nsq_channel_.*|nsq_health|nsq_health_condition",quantile=""}`, n.HTTPAddr), want)
	}
	if got, want := stats[n1].Topic("orders").MessageCount, uint64(pubN1); got != want {
		t.Errorf("n1 /stats message_count %d, want %d", got, want)
	}
	// nsqadmin sums the nodes it finds through nsqlookupd (n1 and n2);
	// nsqlookupd counts its registrations.
	prom.waitValues(t, `{job="nsqadmin",__name__=~"nsqadmin_channel_depth|nsqadmin_channel_requeued_total|nsqadmin_topic_messages_total|nsqadmin_nodes"}`, map[string]float64{
		`nsqadmin_channel_depth{channel="audit",topic="orders"}`:            pubN1 + pubN2,
		`nsqadmin_channel_depth{channel="billing",topic="orders"}`:          0,
		`nsqadmin_channel_depth{channel="slow",topic="orders"}`:             pubN1 + pubN2,
		`nsqadmin_channel_requeued_total{channel="audit",topic="orders"}`:   0,
		`nsqadmin_channel_requeued_total{channel="billing",topic="orders"}`: requeues,
		`nsqadmin_channel_requeued_total{channel="slow",topic="orders"}`:    0,
		`nsqadmin_topic_messages_total{topic="orders"}`:                     pubN1 + pubN2,
		`nsqadmin_nodes`: 2,
	})
	prom.waitValues(t, `{job="nsqlookupd",__name__=~"nsqlookupd_.*"}`, map[string]float64{
		`nsqlookupd_producers`: 2,
		`nsqlookupd_topics`:    1,
		`nsqlookupd_channels`:  3,
	})

	// Limits and dead letters on n1 (after the exact value checks above,
	// which they would add series to): topic limited's channel full
	// rejects past 2 messages, lossy drops its oldest past 1, ttl expires
	// messages after 200ms and dead-letters them. Their counters are
	// first scraped at zero, so that increase() sees them rise.
	for _, step := range []string{
		"/topic/create?topic=limited",
		"/channel/create?topic=limited&channel=full",
		"/channel/create?topic=limited&channel=lossy",
		"/channel/create?topic=limited&channel=ttl",
		"/topic/config?topic=limited&max_depth=1000",
		"/channel/config?topic=limited&channel=full&max_depth=2",
		"/channel/config?topic=limited&channel=lossy&max_depth=1&overflow=drop-oldest",
		"/channel/config?topic=limited&channel=ttl&msg_ttl=200ms&dead_letter_expired=true",
	} {
		if status, body := nsqtest.HTTP(t, http.MethodPost, n1.URL(step), nil); status != http.StatusOK {
			t.Fatalf("POST %s: %d %s", step, status, body)
		}
	}
	limitSeries := fmt.Sprintf(`{job="nsqd",instance=%q,topic="limited",__name__=~"nsq_topic_rejected_total|nsq_channel_rejected_total|nsq_channel_dropped_total|nsq_channel_dead_lettered_total"}`, n1.HTTPAddr)
	zero := map[string]float64{`nsq_topic_rejected_total{topic="limited"}`: 0}
	for _, ch := range []string{"full", "lossy", "ttl"} {
		l := fmt.Sprintf(`channel=%q,topic="limited"`, ch)
		zero["nsq_channel_rejected_total{"+l+"}"] = 0
		zero["nsq_channel_dead_lettered_total{"+l+"}"] = 0
		for _, reason := range []string{"dead_letter", "expired", "maxlen"} {
			zero[fmt.Sprintf("nsq_channel_dropped_total{channel=%q,reason=%q,topic=\"limited\"}", ch, reason)] = 0
		}
	}
	prom.waitValues(t, limitSeries, zero)
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusServiceUnavailable} {
		if status, body := nsqtest.HTTP(t, http.MethodPost, n1.URL("/pub?topic=limited"), []byte(fmt.Sprint("l", i))); status != want {
			t.Fatalf("publish %d to limited: %d %s, want %d", i, status, body, want)
		}
	}

	t.Run("lint", func(t *testing.T) {
		opsLintMetrics(t, "http://"+n1.HTTPAddr+"/metrics", "http://"+lookupd.HTTPAddr+"/metrics", adminURL+"/metrics")
	})
	t.Run("dashboard", func(t *testing.T) { opsCheckDashboard(t, prom, repo) })
	t.Run("rules", func(t *testing.T) {
		opsCheckRules(t, prom, repo, alertNames, n1, n2, n3, n4)
		// A daemon that stops is reported down.
		if code := n3.Stop(syscall.SIGTERM); code != 0 {
			t.Errorf("nsqd exited with status %d after SIGTERM", code)
		}
		prom.waitAlerts(t, map[string]bool{"NSQDaemonDown/" + n3.HTTPAddr: true}, nil, func(a opsAlert) string {
			return a.Labels["alertname"] + "/" + a.Labels["instance"]
		})
	})
}

// opsLintMetrics passes each /metrics page through `promtool check metrics`
// (Prometheus' naming and format conventions). The e2e latency quantiles
// are gauges with a quantile label, which the linter reports; those two
// findings are known and allowed, any other fails.
func opsLintMetrics(t *testing.T, urls ...string) {
	promtool := opsTool(t, "promtool", "prometheus")
	known := []string{
		`nsq_channel_e2e_processing_latency_seconds non-summary metrics should not have "quantile" label`,
		`nsq_topic_e2e_processing_latency_seconds non-summary metrics should not have "quantile" label`,
	}
	for _, u := range urls {
		status, body := nsqtest.HTTP(t, http.MethodGet, u, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d", u, status)
		}
		cmd := exec.CommandContext(t.Context(), promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		out, _ := cmd.CombinedOutput() // exits 1 on findings; the findings are judged below
		for line := range strings.Lines(string(out)) {
			if line = strings.TrimSpace(line); line != "" && !slices.Contains(known, line) {
				t.Errorf("promtool check metrics on %s: %s", u, line)
			}
		}
	}
}

// opsCheckDashboard runs every PromQL expression of the Grafana dashboard
// (variables set to match any non-empty value) and requires series carrying
// the labels its legend names; the template variables' label_values queries
// must find values too.
func opsCheckDashboard(t *testing.T, prom *opsPrometheus, repo string) {
	d := opsLoadDashboard(t, repo)
	vars := map[string]string{"$__rate_interval": "1m", "$instance": ".+", "$topic": ".+", "$channel": ".+"}
	subst := func(expr string) string {
		for k, v := range vars {
			expr = strings.ReplaceAll(expr, k, v)
		}
		if strings.Contains(expr, "$") {
			t.Errorf("unknown dashboard variable in %s", expr)
		}
		return expr
	}
	legendRE := regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)
	queries := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			queries++
			expr := subst(tg.Expr)
			var res []opsSample
			nsqtest.Eventually(t, opsTimeout, func() bool {
				res = prom.query(t, expr)
				return len(res) > 0
			}, fmt.Sprintf("panel %q query %s to return series", p.Title, expr))
			for _, m := range legendRE.FindAllStringSubmatch(tg.LegendFormat, -1) {
				for _, s := range res {
					if s.Metric[m[1]] == "" {
						t.Errorf("panel %q: legend uses {{%s}}, but series %v of %s has no such label", p.Title, m[1], s.Metric, expr)
					}
				}
			}
		}
	}
	labelValuesRE := regexp.MustCompile(`^label_values\((.+), (\w+)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRE.FindStringSubmatch(v.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(<selector>, <label>)", v.Name, v.Query)
			continue
		}
		expr := fmt.Sprintf("group by (%s) (%s)", m[2], subst(m[1]))
		res := prom.query(t, expr)
		if len(res) == 0 || res[0].Metric[m[2]] == "" {
			t.Errorf("variable %s: %s found no values (%v)", v.Name, expr, res)
		}
	}
	t.Logf("%d dashboard queries returned series", queries)
}

// opsCheckRules checks the live rule evaluation: every rule loaded and
// evaluates without error; the alerts the cluster's state calls for fire
// and no others of those kinds do; every metric of the rules exists, and
// every series of the rules' unit tests has the name and label names of a
// live series, so the unit tests feed the rules what the daemons serve.
func opsCheckRules(t *testing.T, prom *opsPrometheus, repo string, alertNames []string, n1, n2, n3, n4 *nsqtest.NSQD) {
	var loaded []string
	nsqtest.Eventually(t, opsTimeout, func() bool {
		var r struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
					LastEvaluation          time.Time
				}
			}
		}
		prom.api(t, "/api/v1/rules", nil, &r)
		loaded = loaded[:0]
		for _, g := range r.Groups {
			for _, rule := range g.Rules {
				if rule.LastEvaluation.IsZero() {
					return false
				}
				if rule.Health != "ok" || rule.LastError != "" {
					t.Fatalf("rule %s: health %q, error %q", rule.Name, rule.Health, rule.LastError)
				}
				loaded = append(loaded, rule.Name)
			}
		}
		return len(loaded) > 0
	}, "every rule evaluated")
	if !slices.Equal(loaded, alertNames) {
		t.Errorf("Prometheus loaded rules %v, want %v", loaded, alertNames)
	}

	key := func(a opsAlert) string {
		return strings.Join([]string{a.Labels["alertname"], a.Labels["instance"], a.Labels["channel"] + a.Labels["condition"]}, "/")
	}
	firing := map[string]bool{
		"NSQChannelNoConsumer/" + n1.HTTPAddr + "/audit":   true,
		"NSQChannelNoConsumer/" + n2.HTTPAddr + "/audit":   true,
		"NSQChannelNoConsumer/" + n2.HTTPAddr + "/slow":    true,
		"NSQDUnhealthy/" + n3.HTTPAddr + "/free_disk":      true,
		"NSQDPublishesRefusedDiskLow/" + n3.HTTPAddr + "/": true,
		"NSQDDiskLow/" + n3.HTTPAddr + "/":                 true,
		// Limits and dead letters on n1's topic limited.
		"NSQChannelNoConsumer/" + n1.HTTPAddr + "/full":      true,
		"NSQChannelNoConsumer/" + n1.HTTPAddr + "/lossy":     true,
		"NSQPublishesRejected/" + n1.HTTPAddr + "/":          true,
		"NSQMessagesDropped/" + n1.HTTPAddr + "/lossy":       true,
		"NSQMessagesExpired/" + n1.HTTPAddr + "/ttl":         true,
		"NSQDeadLettersRising/" + n1.HTTPAddr + "/ttl":       true,
		"NSQReplicaNoLeader/" + n4.HTTPAddr + "/replication": true,
	}
	// Alerts of these names must be exactly the ones above (the others
	// depend on rates, sizes and time this test does not produce; the unit
	// tests cover them).
	exact := []string{"NSQChannelNoConsumer", "NSQDUnhealthy", "NSQDiskQueueDataSkipped", "NSQDDrainNotFinishing", "NSQDPublishesRefusedDiskLow", "NSQDDiskLow", "NSQDaemonDown", "NSQLookupdNoProducers", "NSQAdminUpstreamErrors",
		"NSQPublishesRejected", "NSQMessagesDropped", "NSQMessagesExpired", "NSQDeadLettersRising",
		"NSQReplicaNoLeader", "NSQReplicaPeerNoContact", "NSQReplicaApplyLagging", "NSQReplicaFrequentElections"}
	prom.waitAlerts(t, firing, exact, key)

	// Every metric a rule uses exists.
	var ruleMetrics []string
	for _, expr := range opsAlertExprs(t, filepath.Join(repo, "contrib", "prometheus", "nsq-alerts.yml")) {
		ruleMetrics = append(ruleMetrics, opsMetricNames(expr)...)
	}
	slices.Sort(ruleMetrics)
	ruleMetrics = slices.Compact(ruleMetrics)
	for _, name := range ruleMetrics {
		if len(prom.series(t, name)) == 0 {
			t.Errorf("the alert rules use %s, which no daemon exports", name)
		}
	}
	// Every series of the unit tests looks like a live one, and every
	// metric of the rules is fed by a unit test.
	tests, err := os.ReadFile(filepath.Join(repo, "contrib", "prometheus", "nsq-alerts.test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	seriesRE := regexp.MustCompile(`(?m)^\s+- series: '([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}'$`)
	labelRE := regexp.MustCompile(`\s*([a-zA-Z_]\w*)="[^"]*"\s*(,|$)`)
	matches := seriesRE.FindAllStringSubmatch(string(tests), -1)
	if len(matches) == 0 {
		t.Fatal("no series in nsq-alerts.test.yml")
	}
	for _, m := range matches {
		name := m[1]
		var names []string
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			names = append(names, l[1])
		}
		slices.Sort(names)
		tested[name] = true
		var live []string
		found := false
		for _, s := range prom.series(t, name) {
			ln := slices.Sorted(maps.Keys(s))
			ln = slices.DeleteFunc(ln, func(l string) bool { return l == "__name__" })
			live = append(live, strings.Join(ln, ","))
			found = found || slices.Equal(ln, names)
		}
		if !found {
			t.Errorf("nsq-alerts.test.yml has %s{%s}; live series have labels %v", name, strings.Join(names, ","), slices.Compact(slices.Sorted(slices.Values(live))))
		}
	}
	for _, name := range ruleMetrics {
		if !tested[name] {
			t.Errorf("the alert rules use %s, which no unit test in nsq-alerts.test.yml feeds", name)
		}
	}
}

// opsMetricNames returns the metric names a PromQL expression selects: bare
// identifiers that are not functions, keywords or grouping labels, and the
// alternatives of __name__=~"a|b" matchers.
func opsMetricNames(expr string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`__name__=~?"([^"]*)"`).FindAllStringSubmatch(expr, -1) {
		names = append(names, strings.Split(m[1], "|")...)
	}
	s := regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`)
	s = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(s, " ")
	s = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(s, " ")
	s = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`).ReplaceAllString(s, " ")
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
	for _, m := range regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?`).FindAllStringSubmatch(s, -1) {
		if m[2] != "" || keywords[strings.ToLower(m[1])] {
			continue // a function call or a keyword
		}
		names = append(names, m[1])
	}
	return names
}

// opsDashboard is the part of a Grafana dashboard the tests read.
type opsDashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID        string `json:"refId"`
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

func opsLoadDashboard(t *testing.T, repo string) *opsDashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "contrib", "grafana", "nsq-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d opsDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("contrib/grafana/nsq-dashboard.json: %v", err)
	}
	return &d
}

// The dashboard is well formed for Grafana: unique panel ids, panels on the
// 24-column grid without overlap, every query panel on the data source
// variable with a PromQL expression per target, and the panels operators
// look at are there.
func TestOpsDashboardJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped under -short")
	}
	d := opsLoadDashboard(t, opsRepo(t))
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both are needed", d.Title, d.UID)
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	var exprs []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 || g.Y < 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps panel %q at (%d,%d)", p.Title, other, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the prometheus ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: target %+v needs an expr and a unique refId", p.Title, tg)
			}
			refs[tg.RefID] = true
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, metric := range []string{
		"nsq_topic_messages_total", "nsq_channel_messages_total", "nsq_channel_depth", "nsq_topic_depth",
		"nsq_channel_in_flight", "nsq_channel_requeued_total", "nsq_channel_timed_out_total",
		"nsq_channel_e2e_processing_latency_seconds", "nsq_health", "nsq_data_path_free_bytes",
	} {
		if !strings.Contains(all, metric) {
			t.Errorf("no panel shows %s", metric)
		}
	}
	for _, by := range []string{"by (instance)", "by (topic, channel)"} {
		if !strings.Contains(all, by) {
			t.Errorf("no panel aggregates %s", by)
		}
	}
}

// opsPrometheus is a prometheus process started by opsStartPrometheus.
type opsPrometheus struct {
	base string // http://127.0.0.1:port
}

// opsStartPrometheus runs prometheus with dir/prometheus.yml, storage in
// dir/data and the web API on a free port, until the test ends.
func opsStartPrometheus(t *testing.T, bin, dir string) *opsPrometheus {
	t.Helper()
	addr := nsqtest.FreeAddr(t)
	cmd := exec.CommandContext(t.Context(), bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { // waited for by the cleanup
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("prometheus did not exit within 20s of SIGTERM; killed")
		}
	})
	p := &opsPrometheus{base: "http://" + addr}
	client := &http.Client{Timeout: time.Second}
	nsqtest.Eventually(t, opsTimeout, func() bool {
		select {
		case <-exited:
			t.Fatalf("prometheus exited: %v", cmd.ProcessState)
		default:
		}
		resp, err := client.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "prometheus to be ready")
	return p
}

// api GETs path with query from Prometheus' HTTP API into data, failing the
// test unless the answer is a success.
func (p *opsPrometheus) api(t *testing.T, path string, q url.Values, data any) {
	t.Helper()
	u := p.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	status, body := nsqtest.HTTP(t, http.MethodGet, u, nil)
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("GET %s: status %d, %v in %q", u, status, err, body)
	}
	if status != http.StatusOK || r.Status != "success" {
		t.Fatalf("GET %s: status %d, %s: %s", u, status, r.Status, r.Error)
	}
	if err := json.Unmarshal(r.Data, data); err != nil {
		t.Fatalf("GET %s: %v in %s", u, err, r.Data)
	}
}

// opsSample is one series of an instant query's vector result.
type opsSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s opsSample) float(t *testing.T) float64 {
	str, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		t.Fatalf("sample %v: %v", s, err)
	}
	return v
}

// query runs an instant query; an expression that does not parse or
// evaluate fails the test.
func (p *opsPrometheus) query(t *testing.T, expr string) []opsSample {
	t.Helper()
	var r struct {
		ResultType string      `json:"resultType"`
		Result     []opsSample `json:"result"`
	}
	p.api(t, "/api/v1/query", url.Values{"query": {expr}}, &r)
	if r.ResultType != "vector" {
		t.Fatalf("query %s: result type %q, want vector", expr, r.ResultType)
	}
	return r.Result
}

// series returns the label sets of the series named name.
func (p *opsPrometheus) series(t *testing.T, name string) []map[string]string {
	t.Helper()
	var r []map[string]string
	p.api(t, "/api/v1/series", url.Values{"match[]": {name}, "start": {strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)}}, &r)
	return r
}

// waitTargetsUp waits until Prometheus has scraped n targets, all up.
func (p *opsPrometheus) waitTargetsUp(t *testing.T, n int) {
	t.Helper()
	var last string
	nsqtest.Eventually(t, opsTimeout, func() bool {
		var r struct {
			ActiveTargets []struct {
				ScrapeURL string `json:"scrapeUrl"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		}
		p.api(t, "/api/v1/targets", url.Values{"state": {"active"}}, &r)
		up := 0
		var b strings.Builder
		for _, tg := range r.ActiveTargets {
			fmt.Fprintf(&b, "%s %s %s; ", tg.ScrapeURL, tg.Health, tg.LastError)
			if tg.Health == "up" {
				up++
			}
		}
		last = b.String()
		return len(r.ActiveTargets) == n && up == n
	}, fmt.Sprintf("%d scrape targets up", n))
	t.Logf("targets: %s", last)
}

// waitValues waits until the instant query selector returns exactly the
// series of want (keyed name{label="value",...} without job and instance,
// labels sorted) with those values.
func (p *opsPrometheus) waitValues(t *testing.T, selector string, want map[string]float64) {
	t.Helper()
	var got map[string]float64
	deadline := time.Now().Add(opsTimeout)
	for {
		got = map[string]float64{}
		for _, s := range p.query(t, selector) {
			var labels []string
			for _, k := range slices.Sorted(maps.Keys(s.Metric)) {
				if k != "__name__" && k != "job" && k != "instance" {
					labels = append(labels, fmt.Sprintf("%s=%q", k, s.Metric[k]))
				}
			}
			key := s.Metric["__name__"]
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			got[key] = s.float(t)
		}
		if maps.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok || g != want[k] {
			t.Errorf("%s: Prometheus has %v (present %v), want %v", k, g, ok, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: Prometheus has %v, not expected", k, got[k])
		}
	}
	t.FailNow()
}

// opsAlert is one alert of GET /api/v1/alerts.
type opsAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// waitAlerts waits until every alert of want (by key) is firing and, among
// alerts whose name is in exact, no other is active.
func (p *opsPrometheus) waitAlerts(t *testing.T, want map[string]bool, exact []string, key func(opsAlert) string) {
	t.Helper()
	var firing, unexpected []string
	deadline := time.Now().Add(opsTimeout)
	for {
		var r struct {
			Alerts []opsAlert `json:"alerts"`
		}
		p.api(t, "/api/v1/alerts", nil, &r)
		firing, unexpected = nil, nil
		found := 0
		for _, a := range r.Alerts {
			k := key(a)
			if want[k] && a.State == "firing" {
				found++
				firing = append(firing, k)
			} else if !want[k] && slices.Contains(exact, a.Labels["alertname"]) {
				unexpected = append(unexpected, k+" "+a.State)
			}
		}
		if found == len(want) && len(unexpected) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("alerts after %v: firing %v, want %v; unexpected %v", opsTimeout, firing, slices.Sorted(maps.Keys(want)), unexpected)
}

// The systemd units pass systemd-analyze verify (with ExecStart pointing at
// the built binaries), stop with SIGTERM and time for a flush, restart on
// failure, allow 10,000 connections, read the config file, and pass only
// flags the daemons have.
func TestOpsSystemdUnits(t *testing.T) {
	analyze := opsTool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	for _, name := range []string{"nsqd", "nsqlookupd", "nsqadmin"} {
		bin := nsqtest.Binary(t, name)
		b, err := os.ReadFile(filepath.Join(opsRepo(t), "contrib", "systemd", name+".service"))
		if err != nil {
			t.Fatal(err)
		}
		unit := string(b)
		settings := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(unit))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
				settings[k] = v
			}
		}
		check := func(key string, ok func(string) bool, want string) {
			if v, present := settings[key]; !present || !ok(v) {
				t.Errorf("%s.service: %s=%q, want %s", name, key, v, want)
			}
		}
		atLeast := func(n int) func(string) bool {
			return func(v string) bool { i, err := strconv.Atoi(v); return err == nil && i >= n }
		}
		check("KillSignal", func(v string) bool { return v == "SIGTERM" }, "SIGTERM")
		check("Restart", func(v string) bool { return v == "on-failure" }, "on-failure")
		check("LimitNOFILE", atLeast(10240), "room for 10,000 connections")
		check("TimeoutStopSec", atLeast(30), "at least 30 (seconds) for a clean flush")
		if name == "nsqd" {
			check("TimeoutStopSec", atLeast(60), "at least 60 for nsqd's flush to disk")
			check("StateDirectory", func(v string) bool { return v == "nsqd" }, "nsqd (the data path)")
			check("WorkingDirectory", func(v string) bool { return v == "/var/lib/nsqd" }, "/var/lib/nsqd, the default data path")
		}
		execStart := strings.Fields(settings["ExecStart"])
		if len(execStart) == 0 || execStart[0] != "/usr/local/bin/"+name {
			t.Fatalf("%s.service: ExecStart=%q, want /usr/local/bin/%s ...", name, settings["ExecStart"], name)
		}
		if !slices.Contains(execStart, "--config=/etc/nsq/"+name+".cfg") {
			t.Errorf("%s.service: ExecStart=%q does not read /etc/nsq/%s.cfg", name, settings["ExecStart"], name)
		}
		help, _ := exec.CommandContext(t.Context(), bin, "--help").CombinedOutput()
		for _, arg := range execStart[1:] {
			flag, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
			if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(flag) + `\b`).Match(help) {
				t.Errorf("%s.service passes %s, which %s --help does not list", name, arg, name)
			}
		}
		unit = strings.Replace(unit, "ExecStart=/usr/local/bin/"+name, "ExecStart="+bin, 1)
		if err := os.WriteFile(filepath.Join(dir, name+".service"), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(t.Context(), analyze, "verify", filepath.Join(dir, name+".service")).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s.service: %v\n%s", name, err, out)
		}
	}
}

// `make dist` (for the native platform only: cross-compiling every
// platform is make dist's job, not the test's) writes an archive named and
// laid out like NSQ's releases with every main in bin/, a SHA-256 file that
// matches it, and an nsqd that runs and reports the version.
func TestOpsMakeDist(t *testing.T) {
	makeBin := opsTool(t, "make", "make")
	repo := opsRepo(t)
	dist := t.TempDir()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	opsRun(t, repo, makeBin, "--no-print-directory", "dist", "DIST="+dist, "DIST_PLATFORMS="+platform)

	gover := strings.TrimSpace(opsRun(t, repo, "go", "env", "GOVERSION"))
	name := fmt.Sprintf("nsq-%s.%s-%s.%s", version.Binary, runtime.GOOS, runtime.GOARCH, gover)
	entries, _ := os.ReadDir(dist)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	if want := []string{name + ".tar.gz", name + ".tar.gz.sha256"}; !slices.Equal(files, want) {
		t.Fatalf("make dist wrote %v, want %v", files, want)
	}
	archive, err := os.ReadFile(filepath.Join(dist, name+".tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(dist, name+".tar.gz.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(archive)
	if want := hex.EncodeToString(h[:]) + "  " + name + ".tar.gz\n"; string(sum) != want {
		t.Errorf("%s.tar.gz.sha256 = %q, want %q (sha256sum's format)", name, sum, want)
	}

	// Every main package of cmd/, apps/ and bench/, as `make build` builds.
	var wantBins []string
	for _, p := range strings.Fields(opsRun(t, repo, "go", "list", "-f", `{{if eq .Name "main"}}{{.ImportPath}}{{end}}`, "./cmd/...", "./apps/...", "./bench/...")) {
		wantBins = append(wantBins, name+"/bin/"+filepath.Base(p))
	}
	slices.Sort(wantBins)
	unpacked := t.TempDir()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var gotBins, dirs []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := strings.TrimSuffix(hdr.Name, "/")
		switch hdr.Typeflag {
		case tar.TypeDir:
			dirs = append(dirs, p)
			os.MkdirAll(filepath.Join(unpacked, p), 0o755)
		case tar.TypeReg:
			gotBins = append(gotBins, p)
			if hdr.Mode&0o111 == 0 {
				t.Errorf("%s is not executable (mode %o)", p, hdr.Mode)
			}
			f, err := os.OpenFile(filepath.Join(unpacked, p), os.O_CREATE|os.O_WRONLY, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		default:
			t.Errorf("unexpected entry %s of type %c", hdr.Name, hdr.Typeflag)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want 0:0", hdr.Name, hdr.Uid, hdr.Gid)
		}
	}
	slices.Sort(gotBins)
	if want := []string{name, name + "/bin"}; !slices.Equal(dirs, want) {
		t.Errorf("directories %v, want %v", dirs, want)
	}
	if !slices.Equal(gotBins, wantBins) {
		t.Errorf("files %v, want %v", gotBins, wantBins)
	}
	for _, daemon := range []string{"nsqd", "nsqlookupd", "nsqadmin"} {
		out := opsRun(t, unpacked, filepath.Join(unpacked, name, "bin", daemon), "--version")
		if want := fmt.Sprintf("%s v%s (built w/%s)", daemon, version.Binary, gover); strings.TrimSpace(out) != want {
			t.Errorf("%s --version = %q, want %q", daemon, out, want)
		}
	}
}

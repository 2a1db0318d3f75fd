package apputil

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

func TestVersionAndUserAgent(t *testing.T) {
	if got, want := VersionLine("nsq_tail"), "nsq_tail v1.3.0"; got != want {
		t.Errorf("VersionLine = %q, want %q", got, want)
	}
	if got, want := UserAgent("nsq_to_file"), "nsq_to_file/1.3.0 go-nsq/1.1.0"; got != want {
		t.Errorf("UserAgent = %q, want %q", got, want)
	}
}

func TestCheckSources(t *testing.T) {
	tests := []struct {
		nsqd, lookupd []string
		want          string
	}{
		{nil, nil, "--nsqd-tcp-address or --lookupd-http-address required"},
		{[]string{"a:1"}, []string{"b:2"}, "use --nsqd-tcp-address or --lookupd-http-address not both"},
		{[]string{"a:1"}, nil, ""},
		{nil, []string{"b:2"}, ""},
	}
	for _, tt := range tests {
		err := CheckSources("nsqd-tcp-address", tt.nsqd, tt.lookupd)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("CheckSources(%v, %v) = %q, want %q", tt.nsqd, tt.lookupd, got, tt.want)
		}
	}
}

func TestConfigFlag(t *testing.T) {
	tests := []struct {
		opt     string
		wantErr bool
		check   func(*nsq.Config) bool
	}{
		{"max_attempts,7", false, func(c *nsq.Config) bool { return c.MaxAttempts == 7 }},
		{"dial_timeout,3s", false, func(c *nsq.Config) bool { return c.DialTimeout == 3*time.Second }},
		{"default_requeue_delay,100ms", false, func(c *nsq.Config) bool { return c.DefaultRequeueDelay == 100*time.Millisecond }},
		{"snappy", false, func(c *nsq.Config) bool { return c.Snappy }},
		{"deflate,true", false, func(c *nsq.Config) bool { return c.Deflate }},
		{"client_id,a,b", false, func(c *nsq.Config) bool { return c.ClientID == "a,b" }},
		{"backoff_strategy,full_jitter", false, func(c *nsq.Config) bool { return c.BackoffStrategy != nil }},
		{"no_such_option,1", true, nil},
		{"max_in_flight,lots", true, nil},
		{"read_timeout,1ms", true, nil}, // below go-nsq's minimum
	}
	for _, tt := range tests {
		t.Run(tt.opt, func(t *testing.T) {
			cfg := nsq.NewConfig()
			err := ConfigFlag{Config: cfg}.Set(tt.opt)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Set(%q) = %v, want error %v", tt.opt, err, tt.wantErr)
			}
			if tt.check != nil && !tt.check(cfg) {
				t.Errorf("Set(%q) did not set the option: %+v", tt.opt, cfg)
			}
		})
	}
}

// A bad --consumer-opt is a command-line error: exit status 2 with the
// flag package's message.
func TestConfigFlagInFlagSet(t *testing.T) {
	cfg := nsq.NewConfig()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	fs.Var(ConfigFlag{Config: cfg}, "consumer-opt", "")
	code, ok := ParseFlags(fs, []string{"--consumer-opt=max_attempts,9", "--consumer-opt", "bogus"})
	if ok || code != 2 {
		t.Fatalf("ParseFlags = %d, %v; want 2, false", code, ok)
	}
	if want := `invalid value "bogus" for flag -consumer-opt: invalid option bogus`; !strings.Contains(out.String(), want) {
		t.Errorf("output %q does not contain %q", out.String(), want)
	}
	if cfg.MaxAttempts != 9 {
		t.Errorf("MaxAttempts = %d, want 9", cfg.MaxAttempts)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantOK   bool
	}{
		{[]string{"--n=3"}, 0, true},
		{[]string{"-h"}, 0, false},
		{[]string{"--help"}, 0, false},
		{[]string{"--n=x"}, 2, false},
		{[]string{"--nope"}, 2, false},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Int("n", 0, "")
		code, ok := ParseFlags(fs, tt.args)
		if code != tt.wantCode || ok != tt.wantOK {
			t.Errorf("ParseFlags(%q) = %d, %v; want %d, %v", tt.args, code, ok, tt.wantCode, tt.wantOK)
		}
	}
}

func TestDedupe(t *testing.T) {
	got := Dedupe([]string{"b", "a", "b", "c", "a"})
	if want := []string{"b", "a", "c"}; !slices.Equal(got, want) {
		t.Errorf("Dedupe = %q, want %q", got, want)
	}
}

func TestHostPool(t *testing.T) {
	now := time.Unix(1000, 0)
	p := NewHostPool([]string{"a", "b", "c"})
	p.now = func() time.Time { return now }
	get := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(p.Get())
		}
		return b.String()
	}
	if got := get(6); got != "abcabc" {
		t.Fatalf("healthy pool order = %q, want abcabc", got)
	}
	p.Mark("b", 0, errors.New("down"))
	if got := get(4); got != "acac" {
		t.Fatalf("with b failing = %q, want acac", got)
	}
	now = now.Add(hostRetryMin) // b's backoff passed: one probe, then none until Mark
	if got := get(6); strings.Count(got, "b") != 1 {
		t.Fatalf("after backoff = %q, want exactly one probe of b", got)
	}
	p.Mark("b", 0, errors.New("still down")) // backoff doubles
	now = now.Add(hostRetryMin)
	if got := get(4); strings.Contains(got, "b") {
		t.Fatalf("within doubled backoff = %q, want no b", got)
	}
	p.Mark("b", 0, nil)
	if got := get(6); strings.Count(got, "b") != 2 {
		t.Fatalf("after recovery = %q, want b back in rotation", got)
	}

	// Every host failing: requests still go to the one due first.
	p.Mark("a", 0, errors.New("x"))
	now = now.Add(time.Millisecond)
	p.Mark("b", 0, errors.New("x"))
	p.Mark("c", 0, errors.New("x"))
	if got := p.Get(); got != "a" {
		t.Errorf("all failing: Get = %q, want a (due first)", got)
	}
}

func TestHostPoolConcurrent(t *testing.T) {
	for name, p := range map[string]*HostPool{
		"hostpool":       NewHostPool([]string{"a", "b"}),
		"epsilon-greedy": NewEpsilonGreedyHostPool([]string{"a", "b"}),
	} {
		got := map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for i := range 1000 {
					h := p.Get()
					mu.Lock()
					got[h]++
					mu.Unlock()
					if i%3 == 0 {
						p.Mark(h, time.Millisecond, errors.New("x"))
					} else {
						p.Mark(h, time.Duration(i)*time.Microsecond, nil)
					}
				}
			})
		}
		wg.Wait()
		if got["a"]+got["b"] != 8000 {
			t.Errorf("%s: picks %v, want 8000 of a and b", name, got)
		}
	}
}

// epsilonRun simulates n requests through p, one per millisecond of p's
// clock (advanced by step after each), host h answering in times[h], and
// returns how many each host got.
func epsilonRun(p *HostPool, now *time.Time, step time.Duration, n int, times map[string]time.Duration) map[string]int {
	got := map[string]int{}
	for range n {
		h := p.Get()
		got[h]++
		p.Mark(h, times[h], nil)
		*now = now.Add(step)
	}
	return got
}

// --mode=epsilon-greedy weights hosts by response time (issue 12, item 7):
// a host ten times slower gets clearly fewer requests, the slower host is
// still explored now and then, and when the hosts swap speeds the pool
// follows within its five-minute window. The clock and the random source are
// the test's, so the counts are the same in every run.
func TestEpsilonGreedyHostPool(t *testing.T) {
	newPool := func(greedy bool) (*HostPool, *time.Time) {
		now := time.Unix(1_000_000, 0)
		p := NewHostPool([]string{"fast", "slow"})
		if greedy {
			p = NewEpsilonGreedyHostPool([]string{"fast", "slow"})
		}
		p.now = func() time.Time { return now }
		r := rand.New(rand.NewPCG(1, 2))
		p.rand = r.Float64
		return p, &now
	}
	speeds := map[string]time.Duration{"fast": time.Millisecond, "slow": 10 * time.Millisecond}

	// Round-robin (hostpool) ignores response times: half each.
	p, now := newPool(false)
	if got := epsilonRun(p, now, time.Millisecond, 10000, speeds); got["slow"] != 5000 {
		t.Errorf("hostpool: %v, want 5000 each", got)
	}

	p, now = newPool(true)
	got := epsilonRun(p, now, time.Millisecond, 10000, speeds)
	t.Logf("epsilon-greedy, slow 10x: %v", got)
	if got["slow"] > 2000 || got["fast"] < 8000 {
		t.Errorf("epsilon-greedy with a 10x slower host: %v, want slow <= 2000 of 10000", got)
	}
	// Exploration has decayed to 1 %: the slow host still gets some.
	got = epsilonRun(p, now, time.Millisecond, 10000, speeds)
	if got["slow"] < 20 || got["slow"] > 1500 {
		t.Errorf("epsilon-greedy, later: %v, want slow explored (20..1500 of 10000)", got)
	}

	// The hosts swap speeds; after the window has passed (10,000 requests
	// 60 ms apart: 10 minutes) the formerly slow host takes most requests.
	swapped := map[string]time.Duration{"fast": 10 * time.Millisecond, "slow": time.Millisecond}
	epsilonRun(p, now, 60*time.Millisecond, 10000, swapped)
	got = epsilonRun(p, now, time.Millisecond, 10000, swapped)
	t.Logf("epsilon-greedy after the swap: %v", got)
	if got["fast"] > 2000 {
		t.Errorf("epsilon-greedy after the hosts swapped speeds: %v, want the now slow host at <= 2000", got)
	}

	// A failing host is left alone until its backoff has passed.
	p.Mark("slow", 0, errors.New("down"))
	if got := epsilonRun(p, now, time.Millisecond, 900, swapped); got["slow"] != 0 {
		t.Errorf("epsilon-greedy within the backoff of a failed host: %v, want none to it", got)
	}
	*now = now.Add(hostRetryMin)
	if h := p.Get(); h != "slow" {
		t.Errorf("epsilon-greedy once the backoff passed: Get = %q, want a probe of slow", h)
	}
	p.Mark("fast", 0, errors.New("down"))
	p.Mark("slow", 0, errors.New("down again"))
	if h := p.Get(); h != "fast" {
		t.Errorf("epsilon-greedy with every host failing: Get = %q, want fast (due first)", h)
	}
}

func TestTimerMetrics(t *testing.T) {
	var lines []string
	m := NewTimerMetrics(3, "[aggregate]:", func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) })
	start := time.Now()
	for range 7 {
		m.Status(start)
	}
	if len(lines) != 2 {
		t.Fatalf("got %d status lines, want 2: %q", len(lines), lines)
	}
	if !strings.HasPrefix(lines[0], "[aggregate]: finished 3 - 99th: ") || !strings.Contains(lines[0], "ms - avg: ") {
		t.Errorf("status line %q", lines[0])
	}
	var nilMetrics *TimerMetrics
	nilMetrics.Status(start) // no panic
	NewTimerMetrics(0, "", nil).Status(start)
}

func TestSummarize(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(100-i) * time.Millisecond
	}
	p99, p95, avg := summarize(d)
	if p99 != 99*time.Millisecond || p95 != 95*time.Millisecond || avg != 50500*time.Microsecond {
		t.Errorf("summarize = %v %v %v, want 99ms 95ms 50.5ms", p99, p95, avg)
	}
}

func TestGetJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "application/vnd.nsq; version=1.0" {
			t.Errorf("Accept = %q", r.Header.Get("Accept"))
		}
		switch r.URL.Path {
		case "/v1":
			w.Header().Set("X-NSQ-Content-Type", "nsq; version=1.0")
			io.WriteString(w, `{"topics":["a","b"]}`)
		case "/legacy":
			io.WriteString(w, `{"status_code":200,"status_txt":"OK","data":{"topics":["c"]}}`)
		case "/missing":
			w.Header().Set("X-NSQ-Content-Type", "nsq; version=1.0")
			w.WriteHeader(404)
			io.WriteString(w, `{"message":"TOPIC_NOT_FOUND"}`)
		case "/garbage":
			io.WriteString(w, `nope`)
		}
	}))
	defer srv.Close()
	client := NewHTTPClient(time.Second, 5*time.Second, 2)
	var v struct{ Topics []string }
	for path, want := range map[string][]string{"/v1": {"a", "b"}, "/legacy": {"c"}} {
		v.Topics = nil
		if err := GetJSON(t.Context(), client, srv.URL+path, &v); err != nil || !slices.Equal(v.Topics, want) {
			t.Errorf("GetJSON(%s) = %v, %v; want %v", path, v.Topics, err, want)
		}
	}
	if err := GetJSON(t.Context(), client, srv.URL+"/missing", &v); err == nil || !strings.Contains(err.Error(), "TOPIC_NOT_FOUND") {
		t.Errorf("GetJSON(/missing) = %v, want an error naming TOPIC_NOT_FOUND", err)
	}
	if err := GetJSON(t.Context(), client, srv.URL+"/garbage", &v); err == nil {
		t.Error("GetJSON(/garbage) = nil, want a decoding error")
	}
}

func TestHTTPURL(t *testing.T) {
	if got := HTTPURL("127.0.0.1:4161", "/topics"); got != "http://127.0.0.1:4161/topics" {
		t.Errorf("HTTPURL = %q", got)
	}
	if got := HTTPURL("https://h:1", "/x"); got != "https://h:1/x" {
		t.Errorf("HTTPURL = %q", got)
	}
}

func TestStart(t *testing.T) {
	tests := []struct {
		args     []string
		invalid  bool
		code     int
		ok       bool
		out, err string
	}{
		{args: nil, ok: true},
		{args: []string{"--version"}, code: 0, out: "tool v"},
		{args: []string{"--nope"}, code: 2, err: "flag provided but not defined: -nope"},
		{args: nil, invalid: true, code: 1, err: "--topic required"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		fs := flag.NewFlagSet("tool", flag.ContinueOnError)
		showVersion := fs.Bool("version", false, "")
		validate := func() error {
			if tt.invalid {
				return errors.New("--topic required")
			}
			return nil
		}
		logger, code, ok := Start(fs, tt.args, "tool", showVersion, validate, &stdout, &stderr)
		if ok != tt.ok || code != tt.code || (ok && logger == nil) {
			t.Errorf("Start(%q) = %v, %d, %v; want ok %v code %d", tt.args, logger, code, ok, tt.ok, tt.code)
		}
		if !strings.Contains(stdout.String(), tt.out) || !strings.Contains(stderr.String(), tt.err) {
			t.Errorf("Start(%q) printed %q / %q, want %q / %q", tt.args, stdout.String(), stderr.String(), tt.out, tt.err)
		}
	}
}

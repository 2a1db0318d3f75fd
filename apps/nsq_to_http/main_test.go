package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/apputil"
	"github.com/nsqio/go-nsq"
)

func TestGetURL(t *testing.T) {
	tests := []struct{ format, body, want string }{
		{"http://h/get?data=%s", "hello world&x=1", "http://h/get?data=hello+world%26x%3D1"},
		{"http://h/a%20b?d=%s", "x", "http://h/a%20b?d=x"},
		{"http://h/?p=100%%&d=%s", "x", "http://h/?p=100%&d=x"},
		{"http://h/%s", "", "http://h/"},
	}
	for _, tt := range tests {
		if got := getURL(tt.format, []byte(tt.body)); got != tt.want {
			t.Errorf("getURL(%q, %q) = %q, want %q", tt.format, tt.body, got, tt.want)
		}
	}
	for format, want := range map[string]int{"x": 0, "%s": 1, "%s%s": 2, "%%s": 0, "%%%s": 1, "a%20%s": 1} {
		if got := countVerbs(format); got != want {
			t.Errorf("countVerbs(%q) = %d, want %d", format, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	src := "--nsqd-tcp-address=a:1"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{src, "--get=http://h/%s"}, "--topic and --channel are required"},
		{[]string{"--topic=t", "--channel=", src, "--get=http://h/%s"}, "--topic and --channel are required"},
		{[]string{"--topic=t", src, "--get=http://h/%s", "--content-type=text/plain"}, "--content-type only used with --post"},
		{[]string{"--topic=t", "--get=http://h/%s"}, "--nsqd-tcp-address or --lookupd-http-address required"},
		{[]string{"--topic=t", src}, "--get or --post required"},
		{[]string{"--topic=t", src, "--get=http://h/%s", "--post=http://h/"}, "use --get or --post not both"},
		{[]string{"--topic=t", src, "--get=http://h/"}, "invalid GET address - must be a printf string"},
		{[]string{"--topic=t", src, "--get=http://h/%s/%s"}, "invalid GET address - must be a printf string"},
		{[]string{"--topic=t", src, "--post=http://h/", "--sample=1.5"}, "ERROR: --sample must be between 0.0 and 1.0"},
		{[]string{"--topic=t", src, "--post=http://h/", "--header=nocolon"}, "--header value format should be 'key=value'"},
		{[]string{"--topic=t", src, "--post=http://h/", "--n=0"}, "--n should be positive"},
		{[]string{"--topic=t", src, "--post=http://h/", "--header=X-A: b: c", "--content-type=text/plain"}, ""},
	}
	for _, tt := range tests {
		var c config
		fs := newFlagSet("nsq_to_http", &c)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		err := c.validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("validate(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

// recorder is an HTTP server recording requests; fail says whether to
// answer 500.
type recorder struct {
	mu   sync.Mutex
	reqs []string // "METHOD path?query body"
	hdrs []http.Header
	fail func(n int) bool
	srv  *httptest.Server
}

func newRecorder(t *testing.T, status int) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.reqs)
		r.reqs = append(r.reqs, req.Method+" "+req.URL.RequestURI()+" "+string(body))
		r.hdrs = append(r.hdrs, req.Header.Clone())
		fail := r.fail != nil && r.fail(n)
		r.mu.Unlock()
		if fail {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func testPublisher(t *testing.T, args ...string) *publisher {
	t.Helper()
	var c config
	fs := newFlagSet("nsq_to_http", &c)
	if err := fs.Parse(append([]string{"--topic=t", "--nsqd-tcp-address=a:1"}, args...)); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	return newPublisher(&c, apputil.NewHTTPClient(time.Second, 5*time.Second, 4), t.Logf)
}

func msg(body string) *nsq.Message {
	return nsq.NewMessage(nsq.MessageID{}, []byte(body))
}

func TestPublisherGetAndPost(t *testing.T) {
	get := newRecorder(t, 200)
	p := testPublisher(t, "--get="+get.srv.URL+"/get?data=%s", "--header=X-Test: v1")
	if err := p.HandleMessage(msg("hello world&x=1")); err != nil {
		t.Fatal(err)
	}
	if got, want := get.requests(), []string{"GET /get?data=hello+world%26x%3D1 "}; !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
	if h := get.hdrs[0]; h.Get("User-Agent") != "nsq_to_http v1.3.0" || h.Get("X-Test") != "v1" {
		t.Errorf("headers %v", h)
	}

	post := newRecorder(t, 202)
	p = testPublisher(t, "--post="+post.srv.URL+"/post", "--content-type=text/plain")
	if err := p.HandleMessage(msg("raw body")); err != nil {
		t.Fatal(err)
	}
	if got, want := post.requests(), []string{"POST /post raw body"}; !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
	if ct := post.hdrs[0].Get("Content-Type"); ct != "text/plain" {
		t.Errorf("Content-Type %q", ct)
	}

	// Any 2xx is a success for GET too (NSQ wanted exactly 200).
	noContent := newRecorder(t, 204)
	p = testPublisher(t, "--get="+noContent.srv.URL+"/?d=%s")
	if err := p.HandleMessage(msg("x")); err != nil {
		t.Errorf("GET answered 204: %v", err)
	}
	failing := newRecorder(t, 404)
	p = testPublisher(t, "--post="+failing.srv.URL+"/")
	if err := p.HandleMessage(msg("x")); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("POST answered 404: %v, want an error", err)
	}
}

func TestPublisherModes(t *testing.T) {
	a, b := newRecorder(t, 200), newRecorder(t, 200)
	p := testPublisher(t, "--post="+a.srv.URL+"/", "--post="+b.srv.URL+"/", "--mode=round-robin")
	for _, body := range []string{"1", "2", "3"} {
		if err := p.HandleMessage(msg(body)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := a.requests(), []string{"POST / 1", "POST / 3"}; !slices.Equal(got, want) {
		t.Errorf("round-robin: first address got %q, want %q", got, want)
	}

	// Any other mode: every address, stopping at the first failure.
	a, b = newRecorder(t, 200), newRecorder(t, 200)
	a.fail = func(n int) bool { return n == 1 }
	p = testPublisher(t, "--post="+a.srv.URL+"/", "--post="+b.srv.URL+"/", "--mode=all")
	p.HandleMessage(msg("1"))
	if err := p.HandleMessage(msg("2")); err == nil {
		t.Error("mode all with a failing address: nil error")
	}
	if got, want := b.requests(), []string{"POST / 1"}; !slices.Equal(got, want) {
		t.Errorf("mode all: second address got %q, want %q", got, want)
	}

	// hostpool: a failing host is avoided while the other works.
	a, b = newRecorder(t, 200), newRecorder(t, 200)
	a.fail = func(int) bool { return true }
	p = testPublisher(t, "--post="+a.srv.URL+"/", "--post="+b.srv.URL+"/")
	failures := 0
	for range 20 {
		if p.HandleMessage(msg("x")) != nil {
			failures++
		}
	}
	if failures != 1 || len(b.requests()) != 19 {
		t.Errorf("hostpool: %d failures, %d requests to the healthy host; want 1 and 19", failures, len(b.requests()))
	}
}

// --mode=epsilon-greedy sends fewer requests to a slow endpoint (issue 12,
// item 7); hostpool and round-robin split them evenly. The slow endpoint
// answers 100 ms late, the fast one at once: the pool sends the slow one its
// share of the exploration (epsilon starts at 0.3: about 15 %) plus a
// sliver, about 20 % in all even when the fast one takes 10 ms on a busy
// machine. 35 % is four standard deviations above that; round-robin gives 50 %.
func TestPublisherEpsilonGreedy(t *testing.T) {
	fast, slow := newRecorder(t, 200), newRecorder(t, 200)
	slowHandler := slow.srv.Config.Handler
	slow.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // the endpoint's own latency
		slowHandler.ServeHTTP(w, r)
	})
	p := testPublisher(t, "--post="+fast.srv.URL+"/", "--post="+slow.srv.URL+"/", "--mode=epsilon-greedy")
	const n = 150
	for range n {
		if err := p.HandleMessage(msg("x")); err != nil {
			t.Fatal(err)
		}
	}
	nFast, nSlow := len(fast.requests()), len(slow.requests())
	t.Logf("epsilon-greedy: fast endpoint %d, slow endpoint %d requests", nFast, nSlow)
	if nFast+nSlow != n || nSlow == 0 || nSlow*100 >= 35*n {
		t.Errorf("epsilon-greedy: fast %d, slow %d of %d requests; want the slow one tried but at under 35 %%", nFast, nSlow, n)
	}
}

func TestSample(t *testing.T) {
	r := newRecorder(t, 200)
	p := testPublisher(t, "--post="+r.srv.URL+"/", "--sample=0")
	for range 10 {
		if err := p.HandleMessage(msg("x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.requests()); n != 0 {
		t.Errorf("--sample=0 made %d requests", n)
	}
}

package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/julienschmidt/httprouter"
)

// logBuffer collects log output safely across the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	b := new(logBuffer)
	return slog.New(slog.NewTextHandler(b, nil)), b
}

type info struct {
	Name string `json:"name"`
	Port int    `json:"port"`
}

func testRouter(log *slog.Logger) *httprouter.Router {
	r := NewRouter(log)
	r.GET("/ping", Log(log, PlainText(log, func(*http.Request, httprouter.Params) (string, error) {
		return "OK", nil
	})))
	r.GET("/nok", PlainText(log, func(*http.Request, httprouter.Params) (string, error) {
		return "", Err(500, "NOK - disk full")
	}))
	r.GET("/plain/internal", PlainText(log, func(*http.Request, httprouter.Params) (string, error) {
		return "", errors.New("plain boom")
	}))
	r.POST("/plain/empty", PlainText(log, func(*http.Request, httprouter.Params) (string, error) {
		return "", nil
	}))
	r.POST("/pub", V1(log, func(*http.Request, httprouter.Params) (string, error) { return "OK", nil }))
	r.GET("/info", Log(log, V1(log, func(*http.Request, httprouter.Params) (info, error) {
		return info{"a<b", 4151}, nil
	})))
	r.GET("/nil", V1(log, func(*http.Request, httprouter.Params) (any, error) { return nil, nil }))
	r.POST("/empty", V1(log, func(*http.Request, httprouter.Params) (Empty, error) { return Empty{}, nil }))
	r.GET("/emptystring", V1(log, func(*http.Request, httprouter.Params) (string, error) { return "", nil }))
	r.GET("/bytes", V1(log, func(*http.Request, httprouter.Params) ([]byte, error) { return []byte("a\tb\n"), nil }))
	r.GET("/list", V1(log, func(*http.Request, httprouter.Params) ([]string, error) { return []string{"x"}, nil }))
	r.GET("/notfound", V1(log, func(*http.Request, httprouter.Params) (any, error) {
		return nil, fmt.Errorf("lookup: %w", Err(404, "TOPIC_NOT_FOUND"))
	}))
	r.GET("/internal", V1(log, func(*http.Request, httprouter.Params) (any, error) {
		return nil, errors.New("disk on fire")
	}))
	r.GET("/unencodable", V1(log, func(*http.Request, httprouter.Params) (any, error) {
		return func() {}, nil
	}))
	r.GET("/panic", V1(log, func(*http.Request, httprouter.Params) (any, error) { panic("kaboom") }))
	opt := V1(log, func(_ *http.Request, ps httprouter.Params) (string, error) { return ps.ByName("opt"), nil })
	r.GET("/config/:opt", opt)
	r.PUT("/config/:opt", opt)
	r.GET("/query", V1(log, func(req *http.Request, _ httprouter.Params) (string, error) {
		q, err := ParseQuery(req)
		if err != nil {
			return "", err
		}
		t, ok := q.Get("topic")
		return fmt.Sprintf("%q %v %v", t, ok, q.Bool("include_clients", true)), nil
	}))
	return r
}

func TestRouter(t *testing.T) {
	log, logs := newTestLogger()
	srv := httptest.NewServer(testRouter(log))
	t.Cleanup(srv.Close)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	const (
		v1   = "nsq; version=1.0"
		json = "application/json; charset=utf-8"
		text = "text/plain; charset=utf-8"
		none = "-" // header must be absent
	)
	cases := []struct {
		method, target, body string
		status               int
		wantBody             string // "*" = not checked
		header               map[string]string
	}{
		// V1 results.
		{"POST", "/pub", "", 200, "OK", map[string]string{"X-Nsq-Content-Type": v1, "Content-Type": text}},
		{"GET", "/info", "", 200, `{"name":"a\u003cb","port":4151}`, map[string]string{"X-Nsq-Content-Type": v1, "Content-Type": json}},
		{"GET", "/list", "", 200, `["x"]`, map[string]string{"Content-Type": json}},
		{"GET", "/nil", "", 200, "", map[string]string{"X-Nsq-Content-Type": v1, "Content-Type": none, "Content-Length": "0"}},
		{"POST", "/empty", "", 200, "", map[string]string{"X-Nsq-Content-Type": v1, "Content-Type": none, "Content-Length": "0"}},
		{"GET", "/emptystring", "", 200, "", map[string]string{"Content-Type": none, "Content-Length": "0"}},
		{"GET", "/bytes", "", 200, "a\tb\n", map[string]string{"X-Nsq-Content-Type": v1, "Content-Type": text}},
		// V1 errors.
		{"GET", "/notfound", "", 404, `{"message":"TOPIC_NOT_FOUND"}`, map[string]string{"X-Nsq-Content-Type": v1, "Content-Type": json}},
		{"GET", "/internal", "", 500, `{"message":"INTERNAL_ERROR"}`, map[string]string{"X-Nsq-Content-Type": v1, "Content-Type": json}},
		{"GET", "/unencodable", "", 500, `{"message":"INTERNAL_ERROR"}`, nil},
		{"GET", "/panic", "", 500, `{"message":"INTERNAL_ERROR"}`, map[string]string{"X-Nsq-Content-Type": v1, "Content-Type": json}},
		// PlainText.
		{"GET", "/ping", "", 200, "OK", map[string]string{"Content-Type": text, "X-Nsq-Content-Type": none}},
		{"GET", "/nok", "", 500, "NOK - disk full", map[string]string{"Content-Type": text, "X-Nsq-Content-Type": none}},
		{"GET", "/plain/internal", "", 500, "INTERNAL_ERROR", map[string]string{"Content-Type": text}},
		{"POST", "/plain/empty", "", 200, "", map[string]string{"Content-Type": none, "Content-Length": "0"}},
		// Router fallbacks.
		{"GET", "/nope", "", 404, `{"message":"NOT_FOUND"}`, map[string]string{"X-Nsq-Content-Type": v1, "Content-Type": json}},
		{"GET", "/put", "", 404, `{"message":"NOT_FOUND"}`, nil},
		{"GET", "/pub", "", 405, `{"message":"METHOD_NOT_ALLOWED"}`, map[string]string{"Allow": "OPTIONS, POST", "X-Nsq-Content-Type": v1, "Content-Type": json}},
		{"POST", "/config/x", "", 405, `{"message":"METHOD_NOT_ALLOWED"}`, map[string]string{"Allow": "GET, OPTIONS, PUT"}},
		{"HEAD", "/ping", "", 405, "", map[string]string{"Allow": "GET, OPTIONS"}},
		{"OPTIONS", "/pub", "", 200, "", map[string]string{"Allow": "OPTIONS, POST", "Content-Length": "0"}},
		{"OPTIONS", "/config/log_level", "", 200, "", map[string]string{"Allow": "GET, OPTIONS, PUT"}},
		{"OPTIONS", "/nope", "", 404, `{"message":"NOT_FOUND"}`, nil},
		{"POST", "/pub/?topic=x", "", 307, "*", map[string]string{"Location": "/pub?topic=x"}},
		{"GET", "/ping/", "", 301, "*", map[string]string{"Location": "/ping"}},
		{"PUT", "/config/log_level/", "", 307, "*", map[string]string{"Location": "/config/log_level"}},
		// Path parameters and the query string.
		{"GET", "/config/mem_queue_size", "", 200, "mem_queue_size", nil},
		{"PUT", "/config/log_level", "debug", 200, "log_level", nil},
		{"GET", "/query?topic=a&topic=b", "", 200, `"a" true true`, nil},
		{"GET", "/query?topic=", "", 200, `"" true true`, nil},
		{"GET", "/query", "", 200, `"" false true`, nil},
		{"GET", "/query?include_clients=false", "", 200, `"" false false`, nil},
		{"GET", "/query?include_clients=0", "", 200, `"" false false`, nil},
		{"GET", "/query?include_clients=no", "", 200, `"" false true`, nil},
		{"GET", "/query?topic=%zz", "", 400, `{"message":"INVALID_REQUEST"}`, map[string]string{"X-Nsq-Content-Type": v1}},
		{"GET", "/query?topic=a;b", "", 400, `{"message":"INVALID_REQUEST"}`, nil},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			req, err := http.NewRequest(c.method, srv.URL+c.target, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, c.status)
			}
			if c.wantBody != "*" && string(body) != c.wantBody {
				t.Errorf("body = %q, want %q", body, c.wantBody)
			}
			for k, want := range c.header {
				got, present := resp.Header.Get(k), len(resp.Header.Values(k)) > 0
				switch {
				case want == none && present:
					t.Errorf("header %s = %q, want absent", k, got)
				case want != none && got != want:
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
	for _, want := range []string{"disk on fire", "kaboom", "plain boom"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not mention %q:\n%s", want, logs)
		}
	}
}

func TestLog(t *testing.T) {
	log, logs := newTestLogger()
	r := testRouter(log)
	cases := []struct {
		method, target string
		want           string // regexp of the logged message; "" = nothing logged
	}{
		{"GET", "/ping", `^200 GET /ping \(192\.0\.2\.1:1234\) \S+$`},
		{"GET", "/info?x=1", `^200 GET /info\?x=1 \(192\.0\.2\.1:1234\) \S+$`},
		{"GET", "/nope?a=b", `^404 GET /nope\?a=b \(192\.0\.2\.1:1234\) \S+$`},
		{"PUT", "/ping", `^405 PUT /ping \(192\.0\.2\.1:1234\) \S+$`},
		{"GET", "/panic", `^500 GET /panic \(192\.0\.2\.1:1234\) \S+$`},
		{"POST", "/pub", ""}, // registered without Log
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			logs.mu.Lock()
			logs.buf.Reset()
			logs.mu.Unlock()
			r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.method, c.target, nil))
			out := logs.String()
			if c.want == "" {
				if out != "" {
					t.Errorf("logged %q, want nothing", out)
				}
				return
			}
			m := regexp.MustCompile(`level=INFO msg="([^"]*)"`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no INFO line in %q", out)
			}
			if !regexp.MustCompile(c.want).MatchString(m[1]) {
				t.Errorf("logged %q, want match for %s", m[1], c.want)
			}
		})
	}
}

func TestLogDisabled(t *testing.T) {
	var buf logBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rec := httptest.NewRecorder()
	testRouter(log).ServeHTTP(rec, httptest.NewRequest("GET", "/ping", nil))
	if rec.Code != 200 || rec.Body.String() != "OK" {
		t.Errorf("GET /ping = %d %q, want 200 OK", rec.Code, rec.Body)
	}
	if buf.String() != "" {
		t.Errorf("logged %q at WARN level", buf.String())
	}
}

func TestStatusWriterUnwrap(t *testing.T) {
	rec := httptest.NewRecorder()
	h := Log(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through Log's writer: %v", err)
		}
	})
	h(rec, httptest.NewRequest("GET", "/", nil), nil)
	if !rec.Flushed {
		t.Error("recorder not flushed")
	}
}

func TestParseBool(t *testing.T) {
	cases := []struct {
		in          string
		want, known bool
	}{
		{"true", true, true}, {"1", true, true}, {"false", false, true}, {"0", false, true},
		{"", true, false}, {"yes", true, false}, {"FALSE", true, false},
	}
	for _, c := range cases {
		if got, known := ParseBool(c.in); got != c.want || known != c.known {
			t.Errorf("ParseBool(%q) = %v, %v, want %v, %v", c.in, got, known, c.want, c.known)
		}
	}
}

func TestErrorWrapped(t *testing.T) {
	err := fmt.Errorf("ctx: %w", Err(413, "MSG_TOO_BIG"))
	if e, ok := errors.AsType[*Error](err); !ok || e.Status != 413 || e.Error() != "MSG_TOO_BIG" {
		t.Errorf("AsType(%v) = %v, %v", err, e, ok)
	}
}

// FuzzParseQuery feeds arbitrary query strings: no panic, and a parsed
// query's first value for a key is what the standard library's parser
// reports first.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"topic=t", "topic=a&topic=b", "topic=%zz", "binary=true&defer=100", "", "a=1;b=2", "&&=&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		req := &http.Request{URL: &url.URL{RawQuery: raw}}
		q, err := ParseQuery(req)
		if err != nil {
			return
		}
		std, _ := url.ParseQuery(raw)
		for k, vs := range std {
			if got, ok := q.Get(k); !ok || got != vs[0] {
				t.Fatalf("ParseQuery(%q).Get(%q) = %q, %v; want %q", raw, k, got, ok, vs[0])
			}
		}
		q.Bool("binary", false)
	})
}

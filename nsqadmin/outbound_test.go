package nsqadmin_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/nsqadmin"
)

// Graphite queries share one kept-alive connection, and nsqadmin closes it
// when it shuts down (it would otherwise stay until Graphite closes it).
func TestGraphiteConnectionsClosedAtShutdown(t *testing.T) {
	var open, opened atomic.Int64
	graphite := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `[{"target":"x","datapoints":[[10,1]]}]`)
	}))
	graphite.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
			opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	graphite.Start()
	defer graphite.Close()

	opts := nsqadmin.NewOptions()
	opts.HTTPAddress = "127.0.0.1:0"
	opts.Logger = nsqlog.New(t.Output(), opts.LogPrefix, slog.LevelError)
	opts.GraphiteURL = graphite.URL
	opts.NSQDHTTPAddresses = []string{"127.0.0.1:1"} // required; never asked here
	a, err := nsqadmin.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	defer stop()

	url := "http://" + a.HTTPAddr().String() + "/api/graphite?metric=rate&target=x"
	for range 50 {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /api/graphite: %d", resp.StatusCode)
		}
	}
	if got := opened.Load(); got != 1 {
		t.Errorf("50 sequential graphite queries opened %d connections, want 1 kept alive", got)
	}
	stop()
	waitFor(t, "nsqadmin's connection to graphite closed at shutdown", func() bool { return open.Load() == 0 })
}

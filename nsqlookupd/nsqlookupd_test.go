package nsqlookupd_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/nsqlookupd"
)

func TestNewOptions(t *testing.T) {
	o := nsqlookupd.NewOptions()
	if o.TCPAddress != "0.0.0.0:4160" || o.HTTPAddress != "0.0.0.0:4161" ||
		o.InactiveProducerTimeout != 5*time.Minute || o.TombstoneLifetime != 45*time.Second ||
		o.LogLevel != nsqlog.Info || o.LogPrefix != "[nsqlookupd] " || o.BroadcastAddress == "" {
		t.Errorf("NewOptions() = %+v, want NSQ's defaults", *o)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate() of the defaults = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*nsqlookupd.Options)
		want   []string
	}{
		{"defaults", func(*nsqlookupd.Options) {}, nil},
		{"port 0", func(o *nsqlookupd.Options) { o.TCPAddress, o.HTTPAddress = ":0", "127.0.0.1:0" }, nil},
		{"empty tcp", func(o *nsqlookupd.Options) { o.TCPAddress = "" }, []string{"--tcp-address must be <addr>:<port>"}},
		{"unix http", func(o *nsqlookupd.Options) { o.HTTPAddress = "/tmp/sock" }, []string{"--http-address must be <addr>:<port>"}},
		{"zero inactive timeout", func(o *nsqlookupd.Options) { o.InactiveProducerTimeout = 0 }, []string{"--inactive-producer-timeout must be > 0"}},
		{"zero tombstone lifetime", func(o *nsqlookupd.Options) { o.TombstoneLifetime = 0 }, nil},
		{"all at once", func(o *nsqlookupd.Options) {
			o.TCPAddress, o.HTTPAddress, o.InactiveProducerTimeout, o.TombstoneLifetime = "x", "y", -1, -1
		}, []string{"--tcp-address", "--http-address", "--inactive-producer-timeout", "--tombstone-lifetime must be >= 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := nsqlookupd.NewOptions()
			tc.modify(o)
			err := o.Validate()
			if (err == nil) != (tc.want == nil) {
				t.Fatalf("Validate() = %v, want errors %q", err, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestNewListenFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, field := range []string{"tcp", "http"} {
		opts := nsqlookupd.NewOptions()
		opts.TCPAddress, opts.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
		if field == "tcp" {
			opts.TCPAddress = busy.Addr().String()
		} else {
			opts.HTTPAddress = busy.Addr().String()
		}
		_, err := nsqlookupd.New(opts)
		want := "listen (" + busy.Addr().String() + ") failed - listen tcp " + busy.Addr().String() + ": bind: address already in use"
		if err == nil || err.Error() != want {
			t.Errorf("New with a busy %s address = %v, want %q", field, err, want)
		}
	}
	opts := nsqlookupd.NewOptions()
	opts.InactiveProducerTimeout = 0
	if _, err := nsqlookupd.New(opts); err == nil {
		t.Errorf("New with invalid options succeeded")
	}
}

// Run stops when its context ends: listeners closed, V1 connections closed
// (and their registrations dropped), every goroutine done.
func TestRunStops(t *testing.T) {
	opts := nsqlookupd.NewOptions()
	opts.TCPAddress, opts.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
	opts.Logger = nsqlog.New(t.Output(), opts.LogPrefix, slog.LevelDebug)
	l, err := nsqlookupd.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	c := dialV1(t, l)
	c.identify(4151)
	c.mustOK("REGISTER t")
	idle := dialV1(t, l) // no IDENTIFY
	idle.mustOK("PING")
	raw := dialRaw(t, l) // no magic yet
	if r := get(t, l, "/ping"); r.body != "OK" {
		t.Fatalf("/ping = %+v", r)
	}
	if err := l.Run(t.Context()); err == nil {
		t.Errorf("second Run = nil, want an error")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	c.expectClosed()
	idle.expectClosed()
	raw.expectClosed()
	if conn, err := net.DialTimeout("tcp", l.TCPAddr().String(), time.Second); err == nil {
		conn.Close()
		t.Errorf("TCP port still accepting after Run returned")
	}
	if _, err := (&http.Client{Timeout: time.Second}).Get("http://" + l.HTTPAddr().String() + "/ping"); err == nil {
		t.Errorf("HTTP port still answering after Run returned")
	}
}

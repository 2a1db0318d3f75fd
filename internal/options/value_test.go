package options

import (
	"slices"
	"testing"
	"time"
)

func TestValue(t *testing.T) {
	type opts struct {
		Name     string        `flag:"node-name"`
		ID       int64         `flag:"node-id" cfg:"id"`
		Timeout  time.Duration `flag:"msg-timeout"`
		Addrs    []string      `flag:"lookupd-tcp-address" cfg:"nsqlookupd_tcp_addresses"`
		Internal int
	}
	o := &opts{Name: "n", ID: 7, Timeout: time.Second}
	cases := []struct {
		key  string
		want any
	}{
		{"node_name", "n"}, {"id", int64(7)}, {"msg_timeout", time.Second}, {"nsqlookupd_tcp_addresses", []string{}},
	}
	for _, c := range cases {
		got, ok := Value(o, c.key)
		if !ok {
			t.Errorf("Value(%q) unknown", c.key)
			continue
		}
		if gs, isSlice := got.([]string); isSlice {
			if gs == nil || len(gs) != 0 {
				t.Errorf("Value(%q) = %#v, want an empty list", c.key, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("Value(%q) = %v, want %v", c.key, got, c.want)
		}
	}
	for _, key := range []string{"node_id", "internal", "Internal", ""} {
		if _, ok := Value(o, key); ok {
			t.Errorf("Value(%q) known, want unknown", key)
		}
	}
	if got, want := Keys(o), []string{"id", "msg_timeout", "node_name", "nsqlookupd_tcp_addresses"}; !slices.Equal(got, want) {
		t.Errorf("Keys = %q, want %q", got, want)
	}
}

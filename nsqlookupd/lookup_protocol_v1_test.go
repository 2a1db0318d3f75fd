package nsqlookupd_test

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsqclone/nsq/nsqlookupd"
)

func TestV1Commands(t *testing.T) {
	l := startLookupd(t, nil)
	id := identifyBody(nsqdIdentity(4151))
	bodySize := func(n int32) string {
		return "IDENTIFY\n" + string([]byte{byte(uint32(n) >> 24), byte(uint32(n) >> 16), byte(uint32(n) >> 8), byte(n)})
	}
	long := strings.Repeat("a", 3000)
	tests := []struct {
		name      string
		magic     string // "  V1" unless set
		send      string
		halfClose bool     // close our side after sending
		want      []string // responses in order; "{" matches the IDENTIFY JSON
		closed    bool     // the server must close the connection
	}{
		{name: "PING before IDENTIFY", send: "PING\n", want: []string{"OK"}},
		{name: "PING trimmed", send: "  PING  \r\n", want: []string{"OK"}},
		{name: "PING with params", send: "PING x y\n", want: []string{"OK"}},
		{name: "PING after a long line of spaces", send: "PING" + strings.Repeat(" ", 3000) + "\nPING\n", want: []string{"OK", "OK"}},
		{name: "IDENTIFY", send: id, want: []string{"{"}},
		{name: "REGISTER topic", send: id + "REGISTER t1\n", want: []string{"{", "OK"}},
		{name: "REGISTER topic channel", send: id + "REGISTER t1 c1\nREGISTER t1 c1\n", want: []string{"{", "OK", "OK"}},
		{name: "REGISTER extra params ignored", send: id + "REGISTER t1 c1 x\n", want: []string{"{", "OK"}},
		{name: "REGISTER empty channel", send: id + "REGISTER t1  c1\n", want: []string{"{", "OK"}},
		{name: "REGISTER ephemeral", send: id + "REGISTER t1#ephemeral c#ephemeral\n", want: []string{"{", "OK"}},
		{name: "UNREGISTER", send: id + "REGISTER t1 c1\nUNREGISTER t1 c1\nUNREGISTER t1\nUNREGISTER never\n", want: []string{"{", "OK", "OK", "OK", "OK"}},
		{name: "PING after IDENTIFY", send: id + "PING\n", want: []string{"{", "OK"}},

		{name: "bad magic", magic: "  V2", send: "PING\n", want: []string{"E_BAD_PROTOCOL"}, closed: true},
		{name: "unknown command", send: "FOO bar\n", want: []string{"E_INVALID invalid command FOO"}, closed: true},
		{name: "lower case", send: "ping\n", want: []string{"E_INVALID invalid command ping"}, closed: true},
		{name: "empty line", send: "\n", want: []string{"E_INVALID invalid command "}, closed: true},
		{name: "long unknown command", send: long + "\n", want: []string{"E_INVALID invalid command " + long[:1024]}, closed: true},
		{name: "REGISTER before IDENTIFY", send: "REGISTER t1\n", want: []string{"E_INVALID client must IDENTIFY"}, closed: true},
		{name: "UNREGISTER before IDENTIFY", send: "UNREGISTER t1 c1\n", want: []string{"E_INVALID client must IDENTIFY"}, closed: true},
		{name: "bad REGISTER before IDENTIFY", send: "REGISTER\n", want: []string{"E_INVALID client must IDENTIFY"}, closed: true},
		{name: "IDENTIFY again", send: id + "IDENTIFY\n", want: []string{"{", "E_INVALID cannot IDENTIFY again"}, closed: true},
		{name: "IDENTIFY short size", send: "IDENTIFY\n\x00\x00", halfClose: true, want: []string{"E_BAD_BODY IDENTIFY failed to read body size"}, closed: true},
		{name: "IDENTIFY short body", send: bodySize(10) + "{}", halfClose: true, want: []string{"E_BAD_BODY IDENTIFY failed to read body"}, closed: true},
		{name: "IDENTIFY empty body", send: bodySize(0), want: []string{"E_BAD_BODY IDENTIFY failed to decode JSON body"}, closed: true},
		{name: "IDENTIFY bad JSON", send: identifyBody("{nope"), want: []string{"E_BAD_BODY IDENTIFY failed to decode JSON body"}, closed: true},
		{name: "IDENTIFY wrong type", send: identifyBody(`{"tcp_port":"4150"}`), want: []string{"E_BAD_BODY IDENTIFY failed to decode JSON body"}, closed: true},
		{name: "IDENTIFY negative size", send: bodySize(-1), want: []string{"E_BAD_BODY IDENTIFY invalid body size -1"}, closed: true},
		{name: "IDENTIFY too big", send: bodySize(1 << 30), want: []string{"E_BAD_BODY IDENTIFY body too big 1073741824 > 5242880"}, closed: true},
		{name: "IDENTIFY no broadcast_address", send: identifyBody(`{"tcp_port":1,"http_port":2,"version":"1.3.0"}`), want: []string{"E_BAD_BODY IDENTIFY missing fields"}, closed: true},
		{name: "IDENTIFY no tcp_port", send: identifyBody(`{"broadcast_address":"a","http_port":2,"version":"1.3.0"}`), want: []string{"E_BAD_BODY IDENTIFY missing fields"}, closed: true},
		{name: "IDENTIFY no http_port", send: identifyBody(`{"broadcast_address":"a","tcp_port":1,"version":"1.3.0"}`), want: []string{"E_BAD_BODY IDENTIFY missing fields"}, closed: true},
		{name: "IDENTIFY no version", send: identifyBody(`{"broadcast_address":"a","tcp_port":1,"http_port":2}`), want: []string{"E_BAD_BODY IDENTIFY missing fields"}, closed: true},
		{name: "REGISTER no params", send: id + "REGISTER\n", want: []string{"{", "E_INVALID REGISTER insufficient number of params"}, closed: true},
		{name: "REGISTER no params trimmed", send: id + "REGISTER   \n", want: []string{"{", "E_INVALID REGISTER insufficient number of params"}, closed: true},
		{name: "UNREGISTER no params", send: id + "UNREGISTER\n", want: []string{"{", "E_INVALID UNREGISTER insufficient number of params"}, closed: true},
		{name: "REGISTER bad topic", send: id + "REGISTER bad*t\n", want: []string{"{", "E_BAD_TOPIC REGISTER topic name 'bad*t' is not valid"}, closed: true},
		{name: "REGISTER empty topic", send: id + "REGISTER  c\n", want: []string{"{", "E_BAD_TOPIC REGISTER topic name '' is not valid"}, closed: true},
		{name: "REGISTER long topic", send: id + "REGISTER " + strings.Repeat("t", 65) + "\n", want: []string{"{", "E_BAD_TOPIC REGISTER topic name '" + strings.Repeat("t", 65) + "' is not valid"}, closed: true},
		{name: "REGISTER bad channel", send: id + "REGISTER t1 b*d\n", want: []string{"{", "E_BAD_CHANNEL REGISTER channel name 'b*d' is not valid"}, closed: true},
		{name: "UNREGISTER bad topic", send: id + "UNREGISTER bad*t c\n", want: []string{"{", "E_BAD_TOPIC UNREGISTER topic name 'bad*t' is not valid"}, closed: true},
		{name: "UNREGISTER bad channel", send: id + "UNREGISTER t1 b*d\n", want: []string{"{", "E_BAD_CHANNEL UNREGISTER channel name 'b*d' is not valid"}, closed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, l)
			c.send(cmpOr(tc.magic, "  V1") + tc.send)
			if tc.halfClose {
				c.conn.CloseWrite()
			}
			for i, want := range tc.want {
				got, err := c.read()
				if err != nil {
					t.Fatalf("response %d: %v, want %.80q", i, err, want)
				}
				if want == "{" && strings.HasPrefix(got, "{") || got == want {
					continue
				}
				t.Fatalf("response %d = %.100q, want %.100q", i, got, want)
			}
			if tc.closed {
				c.expectClosed()
			} else if !tc.halfClose {
				c.mustOK("PING") // still open
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// The IDENTIFY response names this nsqlookupd's broadcast address, hostname,
// real (port 0 resolved) ports and version, keys in alphabetical order.
func TestIdentifyResponse(t *testing.T) {
	l := startLookupd(t, nil)
	c := dialV1(t, l)
	c.send(identifyBody(nsqdIdentity(4151)))
	got := c.mustRead()
	var resp map[string]any
	if err := json.Unmarshal([]byte(got), &resp); err != nil {
		t.Fatalf("IDENTIFY response %q: %v", got, err)
	}
	_, tcpPort, _ := net.SplitHostPort(l.TCPAddr().String())
	_, httpPort, _ := net.SplitHostPort(l.HTTPAddr().String())
	if tcpPort == "0" || httpPort == "0" {
		t.Fatalf("ports not resolved: %s %s", l.TCPAddr(), l.HTTPAddr())
	}
	want := fmt.Sprintf(`{"broadcast_address":"127.0.0.1","hostname":%q,"http_port":%s,"tcp_port":%s,"version":"1.3.0"}`,
		resp["hostname"], httpPort, tcpPort)
	if got != want {
		t.Errorf("IDENTIFY = %s\nwant %s", got, want)
	}
	if h, _ := resp["hostname"].(string); h == "" {
		t.Errorf("hostname is empty")
	}
}

// What a V1 connection registers is visible over HTTP, and goes away when
// the connection closes.
func TestRegistrationsFollowConnection(t *testing.T) {
	l := startLookupd(t, nil)
	a, b := dialV1(t, l), dialV1(t, l)
	a.identify(4151)
	b.identify(5151)
	a.mustOK("REGISTER orders billing")
	a.mustOK("REGISTER orders tail#ephemeral")
	b.mustOK("REGISTER orders")
	b.mustOK("REGISTER other")

	res := lookup(t, l, "orders")
	if !slices.Equal(res.Channels, []string{"billing", "tail#ephemeral"}) || !slices.Equal(httpPorts(res.Producers), []int{4151, 5151}) {
		t.Fatalf("/lookup?topic=orders = %+v, want channels [billing tail#ephemeral], producers 4151, 5151", res)
	}
	if p := res.Producers[0]; p.RemoteAddress != a.conn.LocalAddr().String() || p.BroadcastAddress != "127.0.0.1" || p.TCPPort != 4150 || p.Version != "1.3.0" || p.Hostname != "vm" {
		t.Errorf("producer = %+v, want a's identity with remote_address %s", p, a.conn.LocalAddr())
	}
	if got := topics(t, l); !slices.Equal(got, []string{"orders", "other"}) {
		t.Errorf("/topics = %q", got)
	}

	a.conn.Close()
	eventually(t, "a's registrations to go", func() bool {
		return slices.Equal(httpPorts(lookup(t, l, "orders").Producers), []int{5151})
	})
	// Non-ephemeral keys stay, the ephemeral channel a left empty goes.
	if got := channels(t, l, "orders"); !slices.Equal(got, []string{"billing"}) {
		t.Errorf("/channels after a left = %q, want [billing]", got)
	}
	if n := nodes(t, l); len(n) != 1 || n[0].HTTPPort != 5151 {
		t.Errorf("/nodes = %+v, want b only", n)
	}

	b.conn.Close()
	eventually(t, "b's registrations to go", func() bool { return len(nodes(t, l)) == 0 })
	if res := lookup(t, l, "orders"); res.status != 200 || len(res.Producers) != 0 {
		t.Errorf("/lookup after every nsqd left = %+v, want 200 with no producers", res)
	}
	if got := get(t, l, "/debug").body; got != "{}" {
		t.Errorf("/debug after every nsqd left = %s, want {}", got)
	}
}

func TestUnregister(t *testing.T) {
	l := startLookupd(t, nil)
	a, b := dialV1(t, l), dialV1(t, l)
	a.identify(4151)
	b.identify(5151)

	// UNREGISTER t c: only the channel; an ephemeral channel goes with its
	// last producer.
	a.mustOK("REGISTER t c")
	a.mustOK("REGISTER t e#ephemeral")
	b.mustOK("REGISTER t e#ephemeral")
	a.mustOK("UNREGISTER t c")
	a.mustOK("UNREGISTER t e#ephemeral")
	if got := channels(t, l, "t"); !slices.Equal(got, []string{"c", "e#ephemeral"}) {
		t.Errorf("/channels = %q, want [c e#ephemeral]", got)
	}
	if got := httpPorts(lookup(t, l, "t").Producers); !slices.Equal(got, []int{4151, 5151}) {
		t.Errorf("producers = %v, want both (UNREGISTER t c keeps the topic)", got)
	}
	b.mustOK("UNREGISTER t e#ephemeral")
	if got := channels(t, l, "t"); !slices.Equal(got, []string{"c"}) {
		t.Errorf("/channels after the last producer left e#ephemeral = %q, want [c]", got)
	}

	// UNREGISTER t: the topic and every channel registration of the peer.
	a.mustOK("REGISTER t c")
	a.mustOK("UNREGISTER t")
	var dbg map[string][]struct {
		HTTPPort int `json:"http_port"`
	}
	getJSON(t, l, "/debug", &dbg)
	if _, ok := dbg["channel:t:c"]; ok {
		t.Errorf("/debug still has channel:t:c after UNREGISTER t: %v", dbg)
	}
	if got := dbg["topic:t:"]; len(got) != 1 || got[0].HTTPPort != 5151 {
		t.Errorf("/debug topic:t: = %v, want b only", got)
	}

	// Ephemeral topic: deleted when its last producer unregisters.
	a.mustOK("REGISTER x#ephemeral c")
	b.mustOK("REGISTER x#ephemeral")
	a.mustOK("UNREGISTER x#ephemeral")
	if res := lookup(t, l, "x#ephemeral"); res.status != 200 {
		t.Errorf("/lookup of an ephemeral topic b still has = %d", res.status)
	}
	b.mustOK("UNREGISTER x#ephemeral")
	if res := lookup(t, l, "x#ephemeral"); res.status != 404 {
		t.Errorf("/lookup of an ephemeral topic without producers = %d, want 404", res.status)
	}
}

func TestPingKeepsProducerActive(t *testing.T) {
	l := startLookupd(t, func(o *nsqlookupd.Options) { o.InactiveProducerTimeout = time.Second })
	c := dialV1(t, l)
	c.identify(4151)
	c.mustOK("REGISTER t")
	eventually(t, "the producer to become inactive", func() bool {
		return len(lookup(t, l, "t").Producers) == 0 && len(nodes(t, l)) == 0
	})
	var dbg map[string][]json.RawMessage
	getJSON(t, l, "/debug", &dbg)
	if len(dbg["client::"]) != 1 || len(dbg["topic:t:"]) != 1 {
		t.Errorf("/debug = %v, want the inactive producer listed", dbg)
	}
	c.mustOK("PING")
	if got := httpPorts(lookup(t, l, "t").Producers); !slices.Equal(got, []int{4151}) {
		t.Errorf("producers after PING = %v, want [4151]", got)
	}
}

// A long line is cut, not buffered whole, and the connection goes on.
func TestLongLine(t *testing.T) {
	l := startLookupd(t, nil)
	c := dialV1(t, l)
	c.identify(4151)
	c.mustOK("REGISTER t c " + strings.Repeat("x", 1<<20))
	if got := channels(t, l, "t"); !slices.Equal(got, []string{"c"}) {
		t.Errorf("/channels = %q, want [c]", got)
	}
	got := c.cmd("REGISTER " + strings.Repeat("y", 1<<20))
	if want := "E_BAD_TOPIC REGISTER topic name '" + strings.Repeat("y", 1024-len("REGISTER ")) + "' is not valid"; got != want {
		t.Errorf("REGISTER <1 MiB topic> = %.60q (%d bytes), want E_BAD_TOPIC with the name cut to the first 1024 bytes of the line", got, len(got))
	}
	c.expectClosed()
}

func TestManyPeersSameTopic(t *testing.T) {
	l := startLookupd(t, nil)
	var want []int
	for i := range 10 {
		c := dialV1(t, l)
		c.identify(5000 + i)
		c.mustOK("REGISTER t c" + strconv.Itoa(i%3))
		want = append(want, 5000+i)
	}
	res := lookup(t, l, "t")
	got := httpPorts(res.Producers)
	slices.Sort(got)
	if !slices.Equal(got, want) || len(res.Channels) != 3 {
		t.Errorf("/lookup = %v %q, want 10 producers, 3 channels", got, res.Channels)
	}
}

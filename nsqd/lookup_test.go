package nsqd

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLookupd speaks enough of the V1 protocol to record what nsqd sends.
type fakeLookupd struct {
	t        *testing.T
	ln       net.Listener
	httpPort int

	mu       sync.Mutex
	cmds     []string
	identify map[string]any
	conns    []net.Conn
}

func newFakeLookupd(t *testing.T, addr string, httpPort int) *fakeLookupd {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLookupd{t: t, ln: ln, httpPort: httpPort}
	go f.serve()
	t.Cleanup(f.close)
	return f
}

func (f *fakeLookupd) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
}

func (f *fakeLookupd) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		go f.handle(c)
	}
}

func (f *fakeLookupd) handle(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	magic := make([]byte, 4)
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != "  V1" {
		return
	}
	reply := func(s string) {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(s)))
		c.Write(append(b, s...))
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSpace(line)
		if line == "IDENTIFY" {
			var sz [4]byte
			io.ReadFull(r, sz[:])
			body := make([]byte, binary.BigEndian.Uint32(sz[:]))
			io.ReadFull(r, body)
			var m map[string]any
			json.Unmarshal(body, &m)
			f.mu.Lock()
			f.identify = m
			f.mu.Unlock()
			reply(fmt.Sprintf(`{"broadcast_address":"127.0.0.1","hostname":"x","http_port":%d,"tcp_port":1,"version":"1.3.0"}`, f.httpPort))
			continue
		}
		f.mu.Lock()
		f.cmds = append(f.cmds, line)
		f.mu.Unlock()
		reply("OK")
	}
}

func (f *fakeLookupd) has(cmd string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.cmds, cmd)
}

func (f *fakeLookupd) reset() {
	f.mu.Lock()
	f.cmds = nil
	f.mu.Unlock()
}

func TestLookupRegistration(t *testing.T) {
	channels := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/channels" && r.URL.Query().Get("topic") == "pre" {
			fmt.Fprint(w, `{"channels":["pc1","pc2#ephemeral"]}`)
			return
		}
		fmt.Fprint(w, `{"channels":[]}`)
	}))
	defer channels.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(channels.URL, "http://"))
	httpPort, _ := strconv.Atoi(port)

	lk := newFakeLookupd(t, "127.0.0.1:0", httpPort)
	o := testOptions(t)
	o.BroadcastAddress = "127.0.0.1"
	o.NSQLookupdTCPAddresses = []string{lk.ln.Addr().String()}
	n := startNSQD(t, o)

	eventually(t, 5*time.Second, func() bool { return lk.has("PING") }, "first PING")
	lk.mu.Lock()
	id := lk.identify
	lk.mu.Unlock()
	if id["broadcast_address"] != "127.0.0.1" || id["version"] != "1.3.0" ||
		int(id["tcp_port"].(float64)) != addrPort(n.TCPAddr()) || int(id["http_port"].(float64)) != addrPort(n.HTTPAddr()) {
		t.Errorf("IDENTIFY body = %v", id)
	}

	topic, _ := n.GetTopic("lk1")
	topic.GetChannel("c1")
	topic.DeleteExistingChannel("c1")
	n.DeleteExistingTopic("lk1")
	for _, cmd := range []string{"REGISTER lk1", "REGISTER lk1 c1", "UNREGISTER lk1 c1", "UNREGISTER lk1"} {
		eventually(t, 5*time.Second, func() bool { return lk.has(cmd) }, "lookupd got %q", cmd)
	}

	// Channels known to lookupd are created with the topic, ephemeral ones not.
	pre, _ := n.GetTopic("pre")
	if _, err := pre.GetExistingChannel("pc1"); err != nil {
		t.Errorf("pc1 not pre-created: %v", err)
	}
	if _, err := pre.GetExistingChannel("pc2#ephemeral"); err == nil {
		t.Error("ephemeral channel pre-created")
	}

	// A restarted lookupd gets every registration again.
	addr := lk.ln.Addr().String()
	lk.close()
	lk2 := newFakeLookupd(t, addr, httpPort)
	n.lookupSend("PING") // what the 15 s ticker would do
	for _, cmd := range []string{"REGISTER pre pc1"} {
		eventually(t, 5*time.Second, func() bool {
			n.lookupSend("PING")
			return lk2.has(cmd)
		}, "restarted lookupd got %q", cmd)
	}

	// PUT /config/nsqlookupd_tcp_addresses: removing the peer stops traffic.
	n.SetLookupdTCPAddresses(nil)
	eventually(t, 5*time.Second, func() bool {
		n.lookup.mu.Lock()
		defer n.lookup.mu.Unlock()
		return len(n.lookup.peers) == 0
	}, "peer removed")
}

// A restarted lookupd is re-registered within a few seconds, not at the
// next 15 s PING.
func TestLookupReconnectsPromptly(t *testing.T) {
	lk := newFakeLookupd(t, "127.0.0.1:0", 1)
	o := testOptions(t)
	o.NSQLookupdTCPAddresses = []string{lk.ln.Addr().String()}
	n := startNSQD(t, o)
	topic, _ := n.GetTopic("rc")
	topic.GetChannel("c")
	eventually(t, 5*time.Second, func() bool { return lk.has("REGISTER rc c") }, "registered")
	addr := lk.ln.Addr().String()
	lk.close()
	lk2 := newFakeLookupd(t, addr, 1)
	start := time.Now()
	eventually(t, 5*time.Second, func() bool { return lk2.has("REGISTER rc c") }, "re-registered")
	t.Logf("re-registered after %v", time.Since(start))
}

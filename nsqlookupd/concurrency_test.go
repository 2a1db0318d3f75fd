package nsqlookupd_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// peerLoop is an nsqd-like V1 client that registers and unregisters topics
// and channels for rounds rounds, reconnecting now and then. It reports
// problems with t.Errorf, so it may run in its own goroutine.
func peerLoop(t *testing.T, addr string, n, rounds int) {
	var conn net.Conn
	var r *bufio.Reader
	connect := func() bool {
		var err error
		if conn, err = net.Dial("tcp", addr); err != nil {
			t.Errorf("peer %d: dial: %v", n, err)
			return false
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		r = bufio.NewReader(conn)
		io.WriteString(conn, "  V1"+identifyBody(nsqdIdentity(6000+n)))
		return true
	}
	read := func(cmd string) bool {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.Errorf("peer %d: %s: %v", n, cmd, err)
			return false
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(r, b); err != nil {
			t.Errorf("peer %d: %s: %v", n, cmd, err)
			return false
		}
		if cmd != "IDENTIFY" && string(b) != "OK" {
			t.Errorf("peer %d: %s = %q", n, cmd, b)
			return false
		}
		return true
	}
	if !connect() || !read("IDENTIFY") {
		return
	}
	defer func() { conn.Close() }()
	for i := range rounds {
		topic := fmt.Sprintf("t%d", i%4)
		cmds := []string{
			"REGISTER " + topic + " c" + fmt.Sprint(i%3),
			"REGISTER " + topic + " e#ephemeral",
			"REGISTER x#ephemeral",
			"PING",
			"UNREGISTER " + topic + " e#ephemeral",
			"UNREGISTER x#ephemeral",
		}
		if i%5 == 4 {
			cmds = append(cmds, "UNREGISTER "+topic)
		}
		for _, cmd := range cmds {
			io.WriteString(conn, cmd+"\n")
		}
		for _, cmd := range cmds {
			if !read(cmd) {
				return
			}
		}
		if n%2 == 0 && i%10 == 9 { // drop the connection with registrations held
			conn.Close()
			if !connect() || !read("IDENTIFY") {
				return
			}
		}
	}
}

func TestConcurrentPeersAndReaders(t *testing.T) {
	l := startLookupd(t, nil)
	const peers, rounds = 16, 60
	base := "http://" + l.HTTPAddr().String()
	client := &http.Client{Timeout: 10 * time.Second}
	fetch := func(method, path string, okStatus ...int) {
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, s := range okStatus {
			if resp.StatusCode == s {
				if resp.Header.Get("Content-Type") == "application/json; charset=utf-8" && !json.Valid(b) {
					t.Errorf("%s %s: invalid JSON %q", method, path, b)
				}
				return
			}
		}
		t.Errorf("%s %s = %d %s", method, path, resp.StatusCode, b)
	}

	stop := make(chan struct{})
	var readers sync.WaitGroup
	for i := range 4 {
		readers.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				topic := fmt.Sprintf("t%d", (i+j)%4)
				fetch("GET", "/lookup?topic="+topic, 200, 404)
				fetch("GET", "/channels?topic="+topic, 200)
				fetch("GET", "/nodes", 200)
				fetch("GET", "/debug", 200)
				fetch("GET", "/topics", 200)
				fetch("GET", "/metrics", 200)
			}
		})
	}
	readers.Go(func() { // an nsqadmin-like writer
		for j := 0; ; j++ {
			select {
			case <-stop:
				return
			default:
			}
			topic := fmt.Sprintf("t%d", j%4)
			fetch("POST", fmt.Sprintf("/topic/tombstone?topic=%s&node=127.0.0.1:%d", topic, 6000+j%peers), 200)
			fetch("POST", "/channel/create?topic="+topic+"&channel=admin", 200)
			fetch("POST", "/channel/delete?topic="+topic+"&channel=admin", 200, 404)
			if j%20 == 19 {
				fetch("POST", "/topic/delete?topic="+topic, 200)
			}
		}
	})

	var peerWG sync.WaitGroup
	for n := range peers {
		peerWG.Go(func() { peerLoop(t, l.TCPAddr().String(), n, rounds) })
	}
	peerWG.Wait()
	close(stop)
	readers.Wait()

	eventually(t, "every registration to go", func() bool {
		return get(t, l, "/debug").body == "{}"
	})
	if n := nodes(t, l); len(n) != 0 {
		t.Errorf("/nodes after every peer left = %+v", n)
	}
	for _, topic := range topics(t, l) {
		if topic == "x#ephemeral" {
			t.Errorf("ephemeral topic left behind")
		}
		for _, ch := range channels(t, l, topic) {
			if ch == "e#ephemeral" {
				t.Errorf("ephemeral channel left behind in %s", topic)
			}
		}
	}
}

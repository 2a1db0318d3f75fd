//go:build linux

package e2e

// Replication across hosts (issue 15, done-when 3): three replicas in their
// own network namespaces joined by a bridge; the leader's link is cut and
// restored. The isolated leader answers publishes with errors, never OK;
// the majority elects a leader and goes on; nothing acknowledged is lost.
// Needs root and iproute2's ip (skips loudly otherwise), like
// TestClusterNetns, whose helpers it uses.
//
//	host  namespace       address
//	br    <prefix>-br     10.78.0.1/24 on br0 (the bridge; the test talks from here)
//	r1-3  <prefix>-r1..3  10.78.0.11-13, each one nsqd replica

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

func TestReplicationNetns(t *testing.T) {
	t.Parallel()
	nsqdBin := nsqtest.Binary(t, "nsqd")
	if os.Geteuid() != 0 {
		t.Skip("SKIP: creating network namespaces needs root (ip netns add); not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: no ip command (Debian package iproute2)")
	}
	prefix := fmt.Sprintf("nsqrepl%d-%d", os.Getpid(), netnsSeq.Add(1))
	hosts := []string{"br", "r1", "r2", "r3"}
	ns := map[string]string{}
	for _, h := range hosts {
		name := prefix + "-" + h
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Skipf("SKIP: ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", name, err, out)
			}
		})
		ns[h] = name
		netnsIP(t, "-n", name, "link", "set", "lo", "up")
	}
	addr := map[string]string{"br": "10.78.0.1", "r1": "10.78.0.11", "r2": "10.78.0.12", "r3": "10.78.0.13"}
	netnsIP(t, "-n", ns["br"], "link", "add", "br0", "type", "bridge")
	netnsIP(t, "-n", ns["br"], "addr", "add", addr["br"]+"/24", "dev", "br0")
	netnsIP(t, "-n", ns["br"], "link", "set", "br0", "up")
	replicas := []string{"r1", "r2", "r3"}
	var peers []string
	for i, h := range replicas {
		veth := "v" + h
		netnsIP(t, "-n", ns["br"], "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns[h])
		netnsIP(t, "-n", ns["br"], "link", "set", veth, "master", "br0")
		netnsIP(t, "-n", ns["br"], "link", "set", veth, "up")
		netnsIP(t, "-n", ns[h], "addr", "add", addr[h]+"/24", "dev", "eth0")
		netnsIP(t, "-n", ns[h], "link", "set", "eth0", "up")
		peers = append(peers, fmt.Sprintf("%d@%s:4153", i+1, addr[h]))
	}
	client := netnsHTTPClient(ns["br"])
	for i, h := range replicas {
		p := netnsStart(t, ns[h], nsqdBin,
			"--tcp-address="+addr[h]+":4150", "--http-address="+addr[h]+":4151",
			"--broadcast-address="+addr[h], "--data-path="+t.TempDir(), fmt.Sprintf("--node-id=%d", i+1),
			"--log-level=warn", "--replication-address="+addr[h]+":4153", "--replication-peers="+strings.Join(peers, ","))
		netnsWaitPing(t, client, p, addr[h]+":4151")
	}

	role := func(c *http.Client, h string) string {
		resp, err := c.Get("http://" + addr[h] + ":4151/replication")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		var st replicationState
		if json.NewDecoder(resp.Body).Decode(&st) != nil || !st.Dispatching {
			return st.Role
		}
		return "dispatching-" + st.Role
	}
	leaderAmong := func(hs ...string) string {
		t.Helper()
		var l string
		clWait(t, 20*time.Second, "a dispatching leader", func() (bool, string) {
			for _, h := range hs {
				if role(client, h) == "dispatching-leader" {
					l = h
					return true, h
				}
			}
			return false, ""
		})
		return l
	}
	acked := map[string]bool{}
	pub := func(c *http.Client, h, body string) int {
		resp, err := c.Post("http://"+addr[h]+":4151/pub?topic=split", "", strings.NewReader(body))
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			acked[body] = true
		}
		return resp.StatusCode
	}

	l := leaderAmong(replicas...)
	for i, h := range replicas {
		if code := pub(client, h, fmt.Sprintf("before-%d", i)); code != http.StatusOK {
			t.Fatalf("/pub on %s before the cut: %d", h, code)
		}
	}

	// Cut the leader off. It still answers on its own address, from inside
	// its namespace: never OK.
	netnsIP(t, "-n", ns[l], "link", "set", "eth0", "down")
	inside := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return netnsDial(ctx, ns[l], network, a)
		},
	}}
	for i := range 3 {
		if code := pub(inside, l, fmt.Sprintf("minority-%d", i)); code == http.StatusOK || code == 0 {
			t.Errorf("/pub on the isolated leader %s = %d, want an error status", l, code)
		}
	}
	var majority []string
	for _, h := range replicas {
		if h != l {
			majority = append(majority, h)
		}
	}
	nl := leaderAmong(majority...)
	for i, h := range majority {
		body := fmt.Sprintf("majority-%d", i)
		clWait(t, 20*time.Second, "/pub on the majority side", func() (bool, string) {
			code := pub(client, h, body)
			return code == http.StatusOK, fmt.Sprint(code)
		})
	}

	// Restore the link: the old leader rejoins as a follower and catches up.
	netnsIP(t, "-n", ns[l], "link", "set", "eth0", "up")
	clWait(t, 20*time.Second, "the old leader follows again", func() (bool, string) {
		r := role(client, l)
		return r == "follower", r
	})
	if code := pub(client, l, "after"); code != http.StatusOK {
		t.Errorf("/pub on the old leader after the heal: %d", code)
	}

	// Nothing acknowledged is lost: consume everything from the new leader.
	conn, err := netnsDial(context.Background(), ns["br"], "tcp", addr[nl]+":4150")
	if err != nil {
		t.Fatal(err)
	}
	c := nsqtest.NewV2Conn(t, conn)
	c.Write([]byte("  V2"))
	c.Command("SUB split all")
	c.Expect(nsqtest.FrameTypeResponse, "OK")
	c.Command("RDY 100")
	got := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for missing := len(acked); missing > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("after the partition: %d acknowledged messages not delivered (got %v, acked %v)", missing, got, acked)
		}
		m := c.ExpectMessage()
		c.Command("FIN " + m.ID)
		if !got[string(m.Body)] && acked[string(m.Body)] {
			missing--
		}
		got[string(m.Body)] = true
	}
	t.Logf("partition: leader %s isolated, %s took over; %d acknowledged, all delivered", l, nl, len(acked))
}

//go:build linux

package e2e

// The cluster across separate hosts on one machine (issue 4, item 8):
// network namespaces joined by veth pairs to a bridge, nsqlookupd on one
// host, an nsqd on each of two more, each bound to and broadcasting its own
// address, and a go-nsq consumer on a fourth. Cutting one nsqd host's link
// removes it from /lookup and the consumer carries on with the other.
//
//	host   namespace      address       runs
//	lk     <prefix>-lk    10.77.0.1/24  nsqlookupd on br0 (the bridge)
//	n1     <prefix>-n1    10.77.0.11    nsqd
//	n2     <prefix>-n2    10.77.0.12    nsqd
//	cs     <prefix>-cs    10.77.0.21    this test binary as a go-nsq consumer
//
// The addresses exist only inside the namespaces, which the test deletes
// (with their links and the bridge) when it ends. It needs root and
// iproute2's ip, and skips with a message otherwise.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"golang.org/x/sys/unix"
)

// netnsConsumerEnv, when set (to lookupd's HTTP address), makes
// TestClusterNetns run as the consumer helper inside a namespace.
const netnsConsumerEnv = "NSQ_E2E_NETNS_CONSUMER"

// The lookupd's inactive-producer timeout: a downed link does not close the
// nsqd's connection on lookupd's side, so the producer leaves /lookup when it
// has not PINGed for this long. nsqd PINGs every 15 s, so it must be longer.
const netnsInactiveTimeout = 18 * time.Second

var netnsSeq atomic.Int32

func TestClusterNetns(t *testing.T) {
	if lookupdHTTP := os.Getenv(netnsConsumerEnv); lookupdHTTP != "" {
		netnsConsumerHelper(t, lookupdHTTP)
		return
	}
	t.Parallel()
	lookupdBin, nsqdBin := nsqtest.Binary(t, "nsqlookupd"), nsqtest.Binary(t, "nsqd")
	if os.Geteuid() != 0 {
		t.Skip("SKIP: creating network namespaces needs root (ip netns add); not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: no ip command (Debian package iproute2)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	prefix := fmt.Sprintf("nsqe2e%d-%d", os.Getpid(), netnsSeq.Add(1))
	ns := map[string]string{}
	for _, h := range []string{"lk", "n1", "n2", "cs"} {
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
	addr := map[string]string{"lk": "10.77.0.1", "n1": "10.77.0.11", "n2": "10.77.0.12", "cs": "10.77.0.21"}
	netnsIP(t, "-n", ns["lk"], "link", "add", "br0", "type", "bridge")
	netnsIP(t, "-n", ns["lk"], "addr", "add", addr["lk"]+"/24", "dev", "br0")
	netnsIP(t, "-n", ns["lk"], "link", "set", "br0", "up")
	for _, h := range []string{"n1", "n2", "cs"} {
		veth := "v" + h // lk's end; the host's end is eth0
		netnsIP(t, "-n", ns["lk"], "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns[h])
		netnsIP(t, "-n", ns["lk"], "link", "set", veth, "master", "br0")
		netnsIP(t, "-n", ns["lk"], "link", "set", veth, "up")
		netnsIP(t, "-n", ns[h], "addr", "add", addr[h]+"/24", "dev", "eth0")
		netnsIP(t, "-n", ns[h], "link", "set", "eth0", "up")
	}

	// The test reaches every host through the bridge, from lk.
	client := netnsHTTPClient(ns["lk"])
	lookupdTCP, lookupdHTTP := addr["lk"]+":4160", addr["lk"]+":4161"
	lk := netnsStart(t, ns["lk"], lookupdBin,
		"-tcp-address="+lookupdTCP, "-http-address="+lookupdHTTP, "-broadcast-address="+addr["lk"],
		"-inactive-producer-timeout="+netnsInactiveTimeout.String())
	netnsWaitPing(t, client, lk, lookupdHTTP)
	nodes := map[string]string{} // host → broadcast_address:tcp_port
	for _, h := range []string{"n1", "n2"} {
		p := netnsStart(t, ns[h], nsqdBin,
			"-tcp-address="+addr[h]+":4150", "-http-address="+addr[h]+":4151",
			"-broadcast-address="+addr[h], "-lookupd-tcp-address="+lookupdTCP, "-data-path="+t.TempDir())
		netnsWaitPing(t, client, p, addr[h]+":4151")
		nodes[h] = addr[h] + ":4150"
	}
	pub := func(h, body string) {
		t.Helper()
		resp, err := client.Post("http://"+addr[h]+":4151/pub?topic=netns", "", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s /pub: %v", h, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s /pub: status %d", h, resp.StatusCode)
		}
	}
	lookup := func() []string {
		t.Helper()
		var r clLookupResp
		resp, err := client.Get("http://" + lookupdHTTP + "/lookup?topic=netns")
		if err != nil {
			t.Fatalf("GET /lookup: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
				t.Fatalf("GET /lookup: %v", err)
			}
		}
		return clAddrs(r.Producers)
	}
	waitLookup := func(timeout time.Duration, want ...string) time.Duration {
		t.Helper()
		want = clSorted(want)
		return clWait(t, timeout, fmt.Sprintf("/lookup?topic=netns producers %v", want), func() (bool, string) {
			got := lookup()
			return slices.Equal(got, want), fmt.Sprint(got)
		})
	}

	pub("n1", "setup n1")
	pub("n2", "setup n2")
	waitLookup(10*time.Second, nodes["n1"], nodes["n2"])

	// The consumer on host cs discovers both nsqds through lookupd.
	cons := netnsStartConsumer(t, ns["cs"], self, lookupdHTTP)
	clWait(t, 15*time.Second, "the consumer on cs connected to both nsqds", func() (bool, string) {
		n := cons.conns.Load()
		return n == 2, fmt.Sprintf("%d connections", n)
	})
	cons.expect(t, 10*time.Second, "setup n1", "setup n2")
	pub("n1", "n1 before cut")
	pub("n2", "n2 before cut")
	cons.expect(t, 10*time.Second, "n1 before cut", "n2 before cut")

	// Cut n1's link: nothing reaches lookupd any more, not even a FIN.
	netnsIP(t, "-n", ns["n1"], "link", "set", "eth0", "down")
	took := waitLookup(netnsInactiveTimeout+10*time.Second, nodes["n2"])
	t.Logf("n1 left /lookup %v after its link went down (--inactive-producer-timeout=%v)", took, netnsInactiveTimeout)
	for i := range 3 {
		body := fmt.Sprintf("n2 after cut %d", i)
		pub("n2", body)
		cons.expect(t, 10*time.Second, body)
	}
}

// netnsIP runs ip with args and fails the test if it fails.
func netnsIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// netnsProc is a process started in a namespace by netnsStart.
type netnsProc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// netnsStart runs `ip netns exec ns bin args...` (ip execs bin, so the
// process is bin itself) until the test ends: then SIGTERM, and SIGKILL
// after 15 s.
func netnsStart(t *testing.T, ns, bin string, args ...string) *netnsProc {
	t.Helper()
	p := &netnsProc{name: ns + " " + bin[strings.LastIndex(bin, "/")+1:], exited: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	w := t.Output() // one writer: exec then uses one pipe for both
	p.cmd.Stdout, p.cmd.Stderr = w, w
	t.Logf("starting ip netns exec %s %s %s", ns, bin, strings.Join(args, " "))
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("%s did not exit within 15s of SIGTERM; killed", p.name)
		}
	})
	return p
}

// netnsWaitPing waits until GET http://httpAddr/ping answers 200 OK.
func netnsWaitPing(t *testing.T, client *http.Client, p *netnsProc, httpAddr string) {
	t.Helper()
	clWait(t, 20*time.Second, p.name+" GET /ping", func() (bool, string) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited: %v", p.name, p.cmd.ProcessState)
		default:
		}
		resp, err := client.Get("http://" + httpAddr + "/ping")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// netnsHTTPClient returns a client whose connections are made inside the
// namespace ns.
func netnsHTTPClient(ns string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
				return netnsDial(ctx, ns, network, address)
			},
		},
	}
}

// netnsDial dials from inside the namespace ns: a socket belongs to the
// network namespace of the thread that creates it, so the dial runs on a
// locked OS thread moved into ns. The thread is never unlocked: it ends with
// its goroutine instead of going back to the runtime in another namespace.
func netnsDial(ctx context.Context, ns, network, address string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, address)
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}

// netnsConsumer is the consumer helper process as seen by the test.
type netnsConsumer struct {
	conns atomic.Int64
	got   chan string
}

// netnsStartConsumer runs this test binary in namespace ns as a go-nsq
// consumer of netns/ch1 discovering nsqds through lookupdHTTP. It reports
// on stdout; it ends when its stdin closes, at the end of the test.
func netnsStartConsumer(t *testing.T, ns, self, lookupdHTTP string) *netnsConsumer {
	t.Helper()
	c := &netnsConsumer{got: make(chan string, 100)}
	cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^TestClusterNetns$", "-test.short", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsConsumerEnv+"="+lookupdHTTP)
	cmd.Stderr = t.Output()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the consumer helper: %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "NETNS-RECV "):
				c.got <- strings.TrimPrefix(line, "NETNS-RECV ")
			case strings.HasPrefix(line, "NETNS-CONNS "):
				n, _ := strconv.Atoi(strings.TrimPrefix(line, "NETNS-CONNS "))
				c.conns.Store(int64(n))
			default:
				t.Logf("consumer helper: %s", line)
			}
		}
	})
	t.Cleanup(func() {
		stdin.Close()
		exited := make(chan error, 1)
		go func() {
			wg.Wait() // read everything before Wait closes the pipe
			exited <- cmd.Wait()
		}()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("consumer helper: %v", err)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("consumer helper did not exit within 20s of closing its stdin; killed")
		}
	})
	return c
}

// expect fails the test unless the bodies want arrive (in any order) within
// timeout.
func (c *netnsConsumer) expect(t *testing.T, timeout time.Duration, want ...string) {
	t.Helper()
	pending := slices.Clone(want)
	deadline := time.After(timeout)
	for len(pending) > 0 {
		select {
		case b := <-c.got:
			i := slices.Index(pending, b)
			if i < 0 {
				t.Fatalf("consumer received %q, want one of %q", b, pending)
			}
			pending = slices.Delete(pending, i, i+1)
		case <-deadline:
			t.Fatalf("consumer did not receive %q within %v", pending, timeout)
		}
	}
}

// netnsConsumerHelper is the consumer process: it prints every body as
// "NETNS-RECV <body>" and every change of its connection count as
// "NETNS-CONNS <n>" until its stdin closes.
func netnsConsumerHelper(t *testing.T, lookupdHTTP string) {
	c := clNewConsumer(t, "netns", "ch1")
	if err := c.ConnectToNSQLookupd(lookupdHTTP); err != nil {
		t.Fatalf("ConnectToNSQLookupd(%s): %v", lookupdHTTP, err)
	}
	stdinClosed := make(chan struct{})
	go func() {
		var b [64]byte
		for {
			if _, err := os.Stdin.Read(b[:]); err != nil {
				close(stdinClosed)
				return
			}
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(2 * time.Minute)
	conns := -1
	for {
		select {
		case b := <-c.got:
			fmt.Printf("NETNS-RECV %s\n", b)
		case <-tick.C:
			if n := c.Stats().Connections; n != conns {
				conns = n
				fmt.Printf("NETNS-CONNS %d\n", n)
			}
		case <-stdinClosed:
			return
		case <-giveUp:
			t.Fatal("consumer helper: stdin still open after 2 minutes")
		}
	}
}

package e2e

// The commands and go-nsq programs of the blog posts this project started
// from (quoted in the README's "The seed examples"),
// replayed against our nsqd with only hosts and ports changed: every one of
// them must work verbatim. Programs that loop forever or wait for Ctrl-C
// become bounded tests with assertions.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqio/go-nsq"
)

// curl runs curl with args (as a seed writes them) and returns its stdout.
// Without a curl binary it performs the same request with net/http; it
// understands the options the seeds use: -s, -d <body>, -X <method>.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	if path, err := exec.LookPath("curl"); err == nil {
		cmd := exec.CommandContext(t.Context(), path, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}
	method, url := http.MethodGet, ""
	var body []byte
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-s":
		case "-d":
			i++
			body = []byte(args[i])
			if method == http.MethodGet {
				method = http.MethodPost
			}
		case "-X":
			i++
			method = args[i]
		default:
			url = args[i]
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // as curl -d sends
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Seeds 000 and 002: curl -d 'hello world 1' 'http://127.0.0.1:4151/put?topic=test'
// (the legacy /put is an alias of /pub in our nsqd) and /pub, then a consumer
// of topic test receives every message.
func TestSeedCurlPublish(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	host := n.HTTPAddr

	bodies := []string{"hello world 1", "hello world 1", "hello world 2", "hello world 3"}
	for i, path := range []string{"put", "pub", "pub", "pub"} {
		if out := curl(t, "-d", bodies[i], "http://"+host+"/"+path+"?topic=test"); out != "OK" {
			t.Errorf("curl -d %q .../%s?topic=test printed %q, want OK", bodies[i], path, out)
		}
	}

	// The topic has no channel yet, so it holds the messages; the first
	// channel receives them all.
	in := newInbox(len(bodies))
	c := newConsumer(t, "test", "ch", nil, in.handle)
	connect(t, c, n.TCPAddr)
	in.wait(t, 10*time.Second, "consumer of test/ch")
	counts, _ := in.snapshot()
	if counts["hello world 1"] != 2 || counts["hello world 2"] != 1 || counts["hello world 3"] != 1 {
		t.Errorf("consumer received %v, want hello world 1 twice, 2 and 3 once", counts)
	}
}

// Seeds 000 and 002: watch -n 0.5 "curl -s http://127.0.0.1:4151/stats".
func TestSeedCurlStats(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	curl(t, "-d", "hello world 1", "http://"+n.HTTPAddr+"/pub?topic=test")

	out := curl(t, "-s", "http://"+n.HTTPAddr+"/stats")
	for _, want := range []string{"nsqd v", "Health: OK", "[test"} {
		if !strings.Contains(out, want) {
			t.Errorf("curl -s /stats printed\n%s\nwant it to contain %q", out, want)
		}
	}
	if !strings.HasPrefix(out, "nsqd v") {
		t.Errorf("curl -s /stats output starts %q, want \"nsqd v...\"", out[:min(len(out), 20)])
	}
}

// Seed 001: curl -X POST 'http://127.0.0.1:6001/topic/create?topic=testTopic1'.
func TestSeedCurlTopicCreate(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	if out := curl(t, "-X", "POST", "http://"+n.HTTPAddr+"/topic/create?topic=testTopic1"); out != "" {
		t.Errorf("curl -X POST /topic/create printed %q, want nothing", out)
	}
	if n.Stats(t).Topic("testTopic1") == nil {
		t.Errorf("/stats?format=json has no topic testTopic1 after /topic/create")
	}
}

// Seed 001: two nsqds started with single-dash flags and relative data
// paths, a consumer connected to both with ConnectToNSQDs, a message
// published with curl to one of them reaching it once; then one nsqd is
// stopped and the consumer carries on with the other.
//
//	./nsqd -tcp-address ":8000" -http-address ":8001" -data-path=./a
//	./nsqd -tcp-address ":7000" -http-address ":7001" -data-path=./b
func TestSeedTwoNSQDsSingleDashFlags(t *testing.T) {
	dir := t.TempDir()
	type node struct {
		p             *nsqtest.Process
		tcpAddr, http string
	}
	var nodes []node
	for _, sub := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		tcpPort, httpPort := strconv.Itoa(nsqtest.FreePort(t)), strconv.Itoa(nsqtest.FreePort(t))
		p := nsqtest.Start(t, dir, "nsqd",
			"-tcp-address", ":"+tcpPort, "-http-address", ":"+httpPort, "-data-path=./"+sub)
		nodes = append(nodes, node{p, "127.0.0.1:" + tcpPort, "127.0.0.1:" + httpPort})
	}
	for _, nd := range nodes {
		nsqtest.WaitPing(t, nd.p, nd.http)
	}

	// The seed's consumer program.
	adds := []string{nodes[1].tcpAddr, nodes[0].tcpAddr}
	config := nsq.NewConfig()
	topicName := "testTopic1"
	got := make(chan string, 10)
	c := newConsumer(t, topicName, "ch1", config, func(message *nsq.Message) error {
		got <- string(message.Body)
		return nil
	})
	if err := c.ConnectToNSQDs(adds); err != nil {
		t.Fatalf("ConnectToNSQDs(%v): %v", adds, err)
	}
	if stats := c.Stats(); stats.Connections == 0 {
		t.Fatal("stats report 0 connections (should be > 0)")
	}

	// curl -d 'hello world 2' 'http://127.0.0.1:7001/pub?topic=testTopic1'
	if out := curl(t, "-d", "hello world 2", "http://"+nodes[1].http+"/pub?topic=testTopic1"); out != "OK" {
		t.Fatalf("curl /pub printed %q, want OK", out)
	}
	expectBody(t, got, "hello world 2")
	expectNothing(t, got, 300*time.Millisecond)

	// Stop one nsqd: the consumer keeps one connection and still receives.
	if code := nodes[0].p.Stop(syscall.SIGTERM); code != 0 {
		t.Errorf("nsqd -data-path=./a exited with status %d after SIGTERM, want 0", code)
	}
	nsqtest.Eventually(t, 10*time.Second, func() bool { return c.Stats().Connections == 1 },
		"the consumer to drop its connection to the stopped nsqd")
	curl(t, "-d", "hello world 3", "http://"+nodes[1].http+"/pub?topic=testTopic1")
	expectBody(t, got, "hello world 3")

	// The relative -data-path was used: nsqd.dat of the stopped node is in ./a.
	dat, err := os.ReadFile(filepath.Join(dir, "a", "nsqd.dat"))
	if err != nil {
		t.Fatalf("nsqd -data-path=./a: %v", err)
	}
	if !bytes.Contains(dat, []byte(`"testTopic1"`)) {
		t.Errorf("a/nsqd.dat = %s, want it to list topic testTopic1", dat)
	}
}

// Seeds 000, 002 and 003 start nsqd with an nsqlookupd address and a
// broadcast address; nsqd must serve clients whether or not that nsqlookupd
// is up (here it is not).
//
//	nsqd --lookupd-tcp-address=127.0.0.1:4160 --broadcast-address=127.0.0.1
//	nsqd --lookupd-tcp-address=127.0.0.1:4160 -broadcast-address=127.0.0.1
//	nsqd -tcp-address="0.0.0.0:4150" -http-address="0.0.0.0:4151" -lookupd-tcp-address="127.0.0.1:4160"
func TestSeedLookupdFlagsWithoutLookupd(t *testing.T) {
	lookupd := nsqtest.FreeAddr(t) // nothing listens there
	t.Run("double dash", func(t *testing.T) {
		n := nsqtest.StartNSQD(t, "--lookupd-tcp-address="+lookupd, "--broadcast-address=127.0.0.1")
		checkBroadcastAndPub(t, n.HTTPAddr)
	})
	t.Run("single dash broadcast", func(t *testing.T) {
		n := nsqtest.StartNSQD(t, "--lookupd-tcp-address="+lookupd, "-broadcast-address=127.0.0.1")
		checkBroadcastAndPub(t, n.HTTPAddr)
	})
	t.Run("all interfaces", func(t *testing.T) {
		tcpPort, httpPort := nsqtest.FreePort(t), nsqtest.FreePort(t)
		p := nsqtest.Start(t, t.TempDir(), "nsqd",
			fmt.Sprintf("-tcp-address=0.0.0.0:%d", tcpPort),
			fmt.Sprintf("-http-address=0.0.0.0:%d", httpPort),
			"-lookupd-tcp-address="+lookupd)
		httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
		nsqtest.WaitPing(t, p, httpAddr)
		if out := curl(t, "-d", "hello", "http://"+httpAddr+"/pub?topic=test"); out != "OK" {
			t.Errorf("curl /pub printed %q, want OK", out)
		}
		prod := newProducer(t, fmt.Sprintf("127.0.0.1:%d", tcpPort))
		if err := prod.Publish("test", []byte("over tcp")); err != nil {
			t.Errorf("Publish over TCP: %v", err)
		}
		if code := p.Stop(syscall.SIGTERM); code != 0 {
			t.Errorf("nsqd exited with status %d after SIGTERM, want 0", code)
		}
	})
}

func checkBroadcastAndPub(t *testing.T, httpAddr string) {
	t.Helper()
	out := curl(t, "-s", "http://"+httpAddr+"/info")
	if !strings.Contains(out, `"broadcast_address":"127.0.0.1"`) {
		t.Errorf("GET /info = %s, want broadcast_address 127.0.0.1", out)
	}
	if out := curl(t, "-d", "hello world 1", "http://"+httpAddr+"/pub?topic=test"); out != "OK" {
		t.Errorf("curl /pub printed %q, want OK", out)
	}
}

// Seed 000's program (ConsumerA, ConsumerB, Producer) with the consumers
// connected straight to nsqd: both channels get every message.
func TestSeedGoProducerTwoChannels(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	const count = 5

	// ConsumerHandler prints each body; here it records it.
	a, b := newInbox(count), newInbox(count)
	consumerA := newConsumer(t, "test", "test-channel-a", nsq.NewConfig(), a.handle)
	consumerB := newConsumer(t, "test", "test-channel-b", nsq.NewConfig(), b.handle)
	connect(t, consumerA, n.TCPAddr)
	connect(t, consumerB, n.TCPAddr)
	waitClients(t, n, "test", "test-channel-a", 1)
	waitClients(t, n, "test", "test-channel-b", 1)

	producer, err := nsq.NewProducer(n.TCPAddr, nsq.NewConfig())
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	defer producer.Stop()
	producer.SetLogger(nsqtest.ClientLogger(t), nsq.LogLevelWarning)
	for i := 1; i <= count; i++ {
		if err := producer.Publish("test", []byte(fmt.Sprintf("Hello World %d", i))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}

	for _, c := range []struct {
		name string
		in   *inbox
	}{{"test-channel-a", a}, {"test-channel-b", b}} {
		c.in.wait(t, 10*time.Second, c.name)
		counts, _ := c.in.snapshot()
		for i := 1; i <= count; i++ {
			if body := fmt.Sprintf("Hello World %d", i); counts[body] != 1 {
				t.Errorf("%s received %q %d times, want once", c.name, body, counts[body])
			}
		}
	}
}

// Seed 002's program: a consumer of test/sensor01 connected with
// ConnectToNSQD and a producer publishing "test message"; the consumer's
// StopChan closes after Stop.
func TestSeedGoSingleNSQD(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	got := make(chan string, 10)

	cfg := nsq.NewConfig()
	consumer, err := nsq.NewConsumer("test", "sensor01", cfg)
	if err != nil {
		t.Fatal(err)
	}
	consumer.SetLogger(nsqtest.ClientLogger(t), nsq.LogLevelWarning)
	consumer.AddHandler(nsq.HandlerFunc(func(message *nsq.Message) error {
		got <- string(message.Body)
		return nil
	}))
	if err := consumer.ConnectToNSQD(n.TCPAddr); err != nil {
		t.Fatal(err)
	}

	producer := newProducer(t, n.TCPAddr)
	for range 3 {
		if err := producer.Publish("test", []byte("test message")); err != nil {
			t.Fatal("publish error: " + err.Error())
		}
	}
	for range 3 {
		expectBody(t, got, "test message")
	}

	consumer.Stop()
	select {
	case <-consumer.StopChan:
	case <-time.After(10 * time.Second):
		t.Fatal("consumer.StopChan not closed 10s after Stop")
	}
}

// expectBody fails the test unless body arrives on got within 10s.
func expectBody(t *testing.T, got <-chan string, body string) {
	t.Helper()
	select {
	case b := <-got:
		if b != body {
			t.Fatalf("received %q, want %q", b, body)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%q not received within 10s", body)
	}
}

// expectNothing fails the test if anything arrives on got within d.
func expectNothing(t *testing.T, got <-chan string, d time.Duration) {
	t.Helper()
	select {
	case b := <-got:
		t.Fatalf("received %q again, want it delivered once", b)
	case <-time.After(d):
	}
}

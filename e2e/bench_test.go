package e2e

// The load generators under bench/ run against a real nsqd: bench_channels
// (issue 12, item 6) with NSQ's flags, on a small -num.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

// bench_channels -num=N subscribes one connection to channel ch of each of
// the topics t0..t<N-1>, with RDY 1, and finishes what is published to them;
// on SIGINT it prints its result line and exits 0.
func TestBenchChannels(t *testing.T) {
	t.Parallel()
	_, usage, _ := appsRun(t, "", "bench_channels", "-h")
	for _, f := range []string{"-num int", "-nsqd-tcp-address string", `(default "127.0.0.1:4150")`, "(default 10000)"} {
		if !strings.Contains(usage, f) {
			t.Errorf("bench_channels -h lacks %q:\n%s", f, usage)
		}
	}

	const topics, perTopic = 20, 5
	n := nsqtest.StartNSQD(t)
	p := nsqtest.Start(t, "", "bench_channels", "--nsqd-tcp-address="+n.TCPAddr, "--num="+strconv.Itoa(topics))
	nsqtest.Eventually(t, appsTimeout, func() bool {
		stats := n.Stats(t)
		for j := range topics {
			ch := stats.Topic(fmt.Sprintf("t%d", j)).Channel("ch")
			if ch == nil || len(ch.Clients) != 1 || ch.Clients[0].ReadyCount != 1 {
				return false
			}
		}
		return len(stats.Topics) == topics
	}, fmt.Sprintf("t0..t%d/ch with one client at RDY 1 each", topics-1))

	for j := range topics {
		appsPublish(t, n.TCPAddr, fmt.Sprintf("t%d", j), appsBodies("bench", perTopic))
	}
	for j := range topics {
		appsWaitDrained(t, n, fmt.Sprintf("t%d", j), "ch", perTopic)
	}
	stats := n.Stats(t)
	for j := range topics {
		ch := stats.Topic(fmt.Sprintf("t%d", j)).Channel("ch")
		if ch.MessageCount != perTopic || ch.RequeueCount != 0 || ch.TimeoutCount != 0 || ch.Clients[0].FinishCount != perTopic {
			t.Errorf("t%d/ch: %d messages, %d requeued, %d timed out, %d finished; want %d finished, none requeued",
				j, ch.MessageCount, ch.RequeueCount, ch.TimeoutCount, ch.Clients[0].FinishCount, perTopic)
		}
	}

	if code := p.Stop(syscall.SIGINT); code != 0 {
		t.Fatalf("bench_channels exit status %d after SIGINT:\n%s", code, p.Output())
	}
	want := fmt.Sprintf(`(?m)^duration: [0-9.]+s - %d topics - %d msgs - [0-9.]+ops/s$`, topics, topics*perTopic)
	if !regexp.MustCompile(want).MatchString(p.Output()) {
		t.Errorf("bench_channels output does not match %s:\n%s", want, p.Output())
	}
}

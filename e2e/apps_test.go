package e2e

// The utilities under apps/ run as users run them, against real nsqd (and
// nsqlookupd when it is built): they move or show real messages, survive
// SIGTERM mid-stream without losing any, and answer bad command lines with
// NSQ's texts and exit codes. Every test is named TestApps*.

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqio/go-nsq"
)

// appsTimeout bounds every wait of these tests; the machines are small.
const appsTimeout = 60 * time.Second

// appsRun runs the binary name with args, stdin as its input, to completion
// and returns its stdout, stderr and exit status.
func appsRun(t *testing.T, stdin, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	path := nsqtest.Binary(t, name)
	ctx, cancel := context.WithTimeout(t.Context(), appsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s %q: %v", name, args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not exit within %v; stderr:\n%s", name, args, appsTimeout, errOut.String())
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// appsBodies returns n distinct bodies "<prefix>-000042".
func appsBodies(prefix string, n int) []string {
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("%s-%06d", prefix, i)
	}
	return bodies
}

// appsPublish publishes bodies in order, in batches.
func appsPublish(t *testing.T, addr, topic string, bodies []string) {
	t.Helper()
	p := newProducer(t, addr)
	for chunk := range slices.Chunk(bodies, 500) {
		batch := make([][]byte, len(chunk))
		for i, b := range chunk {
			batch[i] = []byte(b)
		}
		if err := p.MultiPublish(topic, batch); err != nil {
			t.Fatalf("MultiPublish(%q): %v", topic, err)
		}
	}
}

// appsWaitDrained waits until topic/channel on n has received at least
// total messages and none is queued or in flight.
func appsWaitDrained(t *testing.T, n *nsqtest.NSQD, topic, channel string, total int) {
	t.Helper()
	nsqtest.Eventually(t, appsTimeout, func() bool {
		ch := n.Channel(t, topic, channel)
		return ch != nil && ch.MessageCount >= uint64(total) && ch.Depth == 0 && ch.InFlightCount == 0 && ch.DeferredCount == 0
	}, fmt.Sprintf("%s/%s to have %d messages, all finished", topic, channel, total))
}

// appsLines returns the lines of the file at path, gunzipped if it ends in
// .gz. A missing file has no lines.
func appsLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return appsSplitLines(string(b))
}

func appsSplitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// appsFiles returns the regular files under dir, relative and sorted.
func appsFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

// appsAllLines returns the lines of every file under dir, file by file in
// name order.
func appsAllLines(t *testing.T, dir string) []string {
	t.Helper()
	var all []string
	for _, f := range appsFiles(t, dir) {
		all = append(all, appsLines(t, filepath.Join(dir, f))...)
	}
	return all
}

// appsShortHost is <HOST> of nsq_to_file's default file names.
func appsShortHost(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	short, _, _ := strings.Cut(h, ".")
	return short
}

// appsStartLookupd runs nsqlookupd on the given addresses (skipping the
// test when it is not built) and waits until it answers /ping.
func appsStartLookupd(t *testing.T, tcpAddr, httpAddr string) *nsqtest.Process {
	t.Helper()
	p := nsqtest.Start(t, "", "nsqlookupd", "--tcp-address="+tcpAddr, "--http-address="+httpAddr, "--broadcast-address=127.0.0.1")
	nsqtest.WaitPing(t, p, httpAddr)
	return p
}

// appsWaitLookup waits until lookupd at httpAddr lists a producer of topic.
func appsWaitLookup(t *testing.T, httpAddr, topic string) {
	t.Helper()
	nsqtest.Eventually(t, appsTimeout, func() bool {
		status, body := nsqtest.HTTP(t, http.MethodGet, "http://"+httpAddr+"/lookup?topic="+url.QueryEscape(topic), nil)
		return status == http.StatusOK && strings.Contains(body, `"broadcast_address":"127.0.0.1"`)
	}, "lookupd to list a producer of "+topic)
}

// appsDrain consumes topic/channel on n with a go-nsq consumer until it is
// empty and returns how often each body was received.
func appsDrain(t *testing.T, n *nsqtest.NSQD, topic, channel string) map[string]int {
	t.Helper()
	var mu sync.Mutex
	got := map[string]int{}
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 500
	c := newConsumer(t, topic, channel, cfg, func(m *nsq.Message) error {
		mu.Lock()
		got[string(m.Body)]++
		mu.Unlock()
		return nil
	})
	connect(t, c, n.TCPAddr)
	nsqtest.Eventually(t, appsTimeout, func() bool {
		ch := n.Channel(t, topic, channel)
		return ch != nil && ch.Depth == 0 && ch.InFlightCount == 0 && ch.DeferredCount == 0
	}, fmt.Sprintf("%s/%s drained", topic, channel))
	c.Stop()
	<-c.StopChan
	mu.Lock()
	defer mu.Unlock()
	return got
}

// appsCheckNoLoss fails the test unless every body was received at least
// once; it logs duplicates.
func appsCheckNoLoss(t *testing.T, bodies []string, got map[string]int) {
	t.Helper()
	missing, dups := 0, 0
	for _, b := range bodies {
		switch n := got[b]; {
		case n == 0:
			if missing < 5 {
				t.Errorf("message %q lost", b)
			}
			missing++
		case n > 1:
			dups += n - 1
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d messages lost", missing, len(bodies))
	}
	t.Logf("%d messages, %d duplicate deliveries", len(bodies), dups)
}

// Command lines: --version, missing required flags (exit 1 with NSQ's text)
// and bad flag values (exit 2, the flag package's message).
func TestAppsCommandLine(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // exact, when not ""
		stderr string // substring
	}{
		{"nsq_tail", []string{"--version"}, 0, "nsq_tail v1.3.0\n", ""},
		{"nsq_to_file", []string{"--version"}, 0, "nsq_to_file v1.3.0\n", ""},
		{"nsq_to_http", []string{"--version"}, 0, "nsq_to_http v1.3.0\n", ""},
		{"nsq_to_nsq", []string{"--version"}, 0, "nsq_to_nsq v1.3.0\n", ""},
		{"nsq_stat", []string{"--version"}, 0, "nsq_stat v1.3.0\n", ""},
		{"to_nsq", []string{"--version"}, 2, "", "flag provided but not defined: -version"},
		{"nsq_to_file", []string{"-h"}, 0, "", "Usage of nsqd:"},

		{"nsq_tail", []string{"--nsqd-tcp-address=127.0.0.1:1"}, 1, "", "--topic required"},
		{"nsq_tail", []string{"--topic=t"}, 1, "", "--nsqd-tcp-address or --lookupd-http-address required"},
		{"nsq_tail", []string{"--topic=t", "--consumer-opt=bogus"}, 2, "", `invalid value "bogus" for flag -consumer-opt: invalid option bogus`},
		{"to_nsq", nil, 1, "", "--topic required"},
		{"to_nsq", []string{"--topic=t", "--delimiter=ab"}, 1, "", "--delimiter must be a single byte"},
		{"to_nsq", []string{"--topic=t"}, 1, "", "--nsqd-tcp-address required"},
		{"nsq_to_file", []string{"--nsqd-tcp-address=127.0.0.1:1"}, 1, "", "--topic or --topic-pattern required"},
		{"nsq_to_file", []string{"--topic-pattern=x", "--nsqd-tcp-address=127.0.0.1:1"}, 1, "", "--lookupd-http-address must be specified when no --topic specified"},
		{"nsq_to_file", []string{"--topic=t", "--nsqd-tcp-address=127.0.0.1:1", "--gzip-level=10"}, 1, "", "invalid --gzip-level value (10), should be 1-9"},
		{"nsq_to_file", []string{"--topic=t", "--nsqd-tcp-address=127.0.0.1:1", "--gzip", "--filename-format=<TOPIC>.log"}, 1, "", "missing <REV> in --filename-format when gzip, rotation, or work dir enabled"},
		{"nsq_to_file", []string{"--topic=t", "--nsqd-tcp-address=127.0.0.1:1", "stray"}, 1, "", "unknown arguments: [stray]"},
		{"nsq_to_file", []string{"--topic=t", "--nsqd-tcp-address=127.0.0.1:1", "--log-level=loud"}, 1, "", "--log-level is invalid"},
		{"nsq_to_file", []string{"--rotate-size=big"}, 2, "", `invalid value "big" for flag -rotate-size`},
		{"nsq_to_http", []string{"--nsqd-tcp-address=127.0.0.1:1", "--get=http://h/%s"}, 1, "", "--topic and --channel are required"},
		{"nsq_to_http", []string{"--topic=t", "--nsqd-tcp-address=127.0.0.1:1", "--get=http://h/"}, 1, "", "invalid GET address - must be a printf string"},
		{"nsq_to_http", []string{"--topic=t", "--nsqd-tcp-address=127.0.0.1:1", "--get=http://h/%s", "--content-type=text/plain"}, 1, "", "--content-type only used with --post"},
		{"nsq_to_http", []string{"--topic=t", "--nsqd-tcp-address=127.0.0.1:1", "--post=http://h/", "--sample=2"}, 1, "", "ERROR: --sample must be between 0.0 and 1.0"},
		{"nsq_to_nsq", []string{"--topic=t", "--nsqd-tcp-address=127.0.0.1:1"}, 1, "", "--destination-nsqd-tcp-address required"},
		{"nsq_to_nsq", []string{"--topic=a b", "--nsqd-tcp-address=127.0.0.1:1"}, 1, "", "--topic is invalid"},
		{"nsq_to_nsq", []string{"--topic=t", "--producer-opt=nope,1"}, 2, "", "invalid option nope"},
		{"nsq_stat", []string{"--topic=t", "--channel=c"}, 1, "", "--nsqd-http-address or --lookupd-http-address required"},
		{"nsq_stat", []string{"--topic=t", "--channel=c", "--nsqd-http-address=127.0.0.1:1", "--count=0"}, 1, "", "--count should be positive"},
		{"nsq_stat", []string{"--topic=t", "--channel=c", "--nsqd-http-address=http://127.0.0.1:1"}, 1, "", "--nsqd-http-address error - address should not contain scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, code := appsRun(t, "", tt.name, tt.args...)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr %q", code, tt.code, stderr)
			}
			if tt.stdout != "" && stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
		})
	}
}

// to_nsq publishes every record of its input (the final one whole, even
// without a delimiter) and nsq_tail prints them in order, then exits after
// --n of them. Both identify with their user agents.
func TestAppsToNSQAndTail(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	const topic = "tailed"

	type result struct {
		stdout, stderr string
		code           int
	}
	done := make(chan result, 1)
	go func() {
		o, e, c := appsRun(t, "", "nsq_tail", "--topic="+topic, "--nsqd-tcp-address="+n.TCPAddr, "--n=6", "--print-topic")
		done <- result{o, e, c}
	}()
	// nsq_tail subscribes on its own "tail<6 digits>#ephemeral" channel.
	nsqtest.Eventually(t, appsTimeout, func() bool {
		tp := n.Stats(t).Topic(topic)
		if tp == nil || len(tp.Channels) != 1 || len(tp.Channels[0].Clients) != 1 {
			return false
		}
		ch := tp.Channels[0]
		if !strings.HasPrefix(ch.Name, "tail") || !strings.HasSuffix(ch.Name, "#ephemeral") || len(ch.Name) != len("tail000000#ephemeral") {
			t.Fatalf("nsq_tail channel %q", ch.Name)
		}
		if ua := ch.Clients[0].UserAgent; ua != "nsq_tail/1.3.0 go-nsq/1.1.0" {
			t.Fatalf("nsq_tail user agent %q", ua)
		}
		return true
	}, "nsq_tail to subscribe")

	if _, stderr, code := appsRun(t, "a1\na2\n\na3", "to_nsq", "--topic="+topic, "--nsqd-tcp-address="+n.TCPAddr); code != 0 {
		t.Fatalf("to_nsq exit status %d: %s", code, stderr)
	}
	if _, stderr, code := appsRun(t, "x,y,,z", "to_nsq", "--topic="+topic, "--nsqd-tcp-address="+n.TCPAddr, "--delimiter=,", "--rate=100"); code != 0 {
		t.Fatalf("to_nsq exit status %d: %s", code, stderr)
	}

	var r result
	select {
	case r = <-done:
	case <-time.After(appsTimeout):
		t.Fatal("nsq_tail did not exit after --n=6 messages")
	}
	if r.code != 0 {
		t.Fatalf("nsq_tail exit status %d: %s", r.code, r.stderr)
	}
	want := "tailed | a1\ntailed | a2\ntailed | a3\ntailed | x\ntailed | y\ntailed | z\n"
	if r.stdout != want {
		t.Errorf("nsq_tail printed %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "Adding consumer for topic: "+topic) {
		t.Errorf("nsq_tail stderr lacks the consumer line: %s", r.stderr)
	}

	// Without --n, SIGTERM ends it with status 0.
	p := nsqtest.Start(t, "", "nsq_tail", "--topic="+topic, "--nsqd-tcp-address="+n.TCPAddr)
	nsqtest.Eventually(t, appsTimeout, func() bool {
		tp := n.Stats(t).Topic(topic)
		return tp != nil && slices.ContainsFunc(tp.Channels, func(c nsqtest.ChannelStats) bool { return c.ClientCount == 1 })
	}, "the second nsq_tail to subscribe")
	if code := p.Stop(syscall.SIGTERM); code != 0 {
		t.Errorf("nsq_tail exit status %d after SIGTERM", code)
	}
}

// nsq_to_file writes what was published, in order, finishing messages only
// once they are in the file; SIGTERM syncs, closes and exits 0.
func TestAppsNSQToFilePlain(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	const topic = "tofile"
	out := t.TempDir()
	bodies := appsBodies("plain", 300)
	appsPublish(t, n.TCPAddr, topic, bodies)

	p := nsqtest.Start(t, "", "nsq_to_file", "--topic="+topic, "--nsqd-tcp-address="+n.TCPAddr,
		"--output-dir="+out, "--sync-interval=200ms", "--max-in-flight=50")
	path := filepath.Join(out, fmt.Sprintf("%s.%s.%s.log", topic, appsShortHost(t), time.Now().Format("2006-01-02_15")))
	// Whatever nsqd counts as finished is already in the file.
	nsqtest.Eventually(t, appsTimeout, func() bool {
		ch := n.Channel(t, topic, "nsq_to_file")
		if ch == nil {
			return false
		}
		finished := int(ch.MessageCount) - int(ch.Depth) - ch.InFlightCount - ch.DeferredCount
		lines := appsLines(t, path)
		if len(lines) < finished {
			t.Fatalf("%d messages finished but only %d in the file", finished, len(lines))
		}
		return finished == len(bodies)
	}, "every message finished")
	if ua := n.Stats(t).Topic(topic).Channel("nsq_to_file").Clients[0].UserAgent; ua != "nsq_to_file/1.3.0 go-nsq/1.1.0" {
		t.Errorf("user agent %q", ua)
	}
	if code := p.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsq_to_file exit status %d", code)
	}
	if got := appsLines(t, path); !slices.Equal(got, bodies) {
		t.Errorf("file holds %d lines, want the %d published in order", len(got), len(bodies))
	}
	if !strings.Contains(p.Output(), "INFO: [tofile/nsq_to_file] syncing ") {
		t.Errorf("no sync log line in:\n%s", p.Output())
	}
}

// --gzip with --rotate-size and a work dir: several gzip files, moved to the
// output dir as they are finished, together holding every message in order,
// each no bigger than the limit plus one message.
func TestAppsNSQToFileGzipRotation(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	const topic = "gzrot"
	dir := t.TempDir()
	work, out := filepath.Join(dir, "work"), filepath.Join(dir, "out")
	bodies := appsBodies("gzip-rotation-message", 600) // 29 bytes per line
	appsPublish(t, n.TCPAddr, topic, bodies[:300])

	p := nsqtest.Start(t, "", "nsq_to_file", "--topic="+topic, "--nsqd-tcp-address="+n.TCPAddr,
		"--gzip", "--gzip-level=9", "--rotate-size=2000", "--work-dir="+work, "--output-dir="+out,
		"--filename-format=<TOPIC>/<HOST>-<PID><REV>.<DATETIME>.log", "--datetime-format=%Y",
		"--host-identifier=id-<SHORT_HOST>", "--sync-interval=100ms", "--channel=gz")
	appsWaitDrained(t, n, topic, "gz", 300)
	appsPublish(t, n.TCPAddr, topic, bodies[300:])
	appsWaitDrained(t, n, topic, "gz", len(bodies))
	if code := p.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsq_to_file exit status %d", code)
	}

	if left := appsFiles(t, work); len(left) != 0 {
		t.Errorf("work dir still holds %q", left)
	}
	files := appsFiles(t, out)
	if len(files) < 8 {
		t.Fatalf("%d files, want at least 8 (17400 bytes in files of about 2000): %q", len(files), files)
	}
	name := regexp.MustCompile(fmt.Sprintf(`^%s/id-%s-(\d+)-(\d{6})\.%d\.log\.gz$`,
		topic, regexp.QuoteMeta(appsShortHost(t)), time.Now().Year()))
	var all []string
	for i, f := range files {
		m := name.FindStringSubmatch(f)
		if m == nil || m[2] != fmt.Sprintf("%06d", i) {
			t.Errorf("file %d is %q, want %s with revision %06d", i, f, name, i)
		}
		lines := appsLines(t, filepath.Join(out, f))
		if size := 29 * len(lines); size > 2000+29 {
			t.Errorf("%s holds %d bytes, more than --rotate-size plus one message", f, size)
		}
		all = append(all, lines...)
	}
	if !slices.Equal(all, bodies) {
		t.Errorf("files hold %d lines, want the %d published in order", len(all), len(bodies))
	}
}

// SIGTERM in the middle of a stream: what nsq_to_file wrote is in its file,
// what it had not is redelivered to the next consumer; nothing is lost.
func TestAppsNSQToFileSIGTERMMidStream(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	const topic = "midfile"
	out := t.TempDir()
	bodies := appsBodies("mid", 20000)
	appsPublish(t, n.TCPAddr, topic, bodies)

	// One message in flight at a time, synced one by one: slow enough to
	// be stopped half way.
	p := nsqtest.Start(t, "", "nsq_to_file", "--topic="+topic, "--nsqd-tcp-address="+n.TCPAddr,
		"--output-dir="+out, "--max-in-flight=1", "--log-level=warn")
	nsqtest.Eventually(t, appsTimeout, func() bool { return len(appsAllLines(t, out)) >= 200 }, "200 lines written")
	if code := p.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsq_to_file exit status %d", code)
	}
	written := appsAllLines(t, out)
	t.Logf("nsq_to_file wrote %d of %d messages before SIGTERM", len(written), len(bodies))

	got := appsDrain(t, n, topic, "nsq_to_file")
	for _, l := range written {
		got[l]++
	}
	appsCheckNoLoss(t, bodies, got)
}

// SIGHUP syncs and closes the current file (moving it out of the work
// dir); the next message opens the next revision.
func TestAppsNSQToFileSIGHUP(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	dir := t.TempDir()
	work, out := filepath.Join(dir, "work"), filepath.Join(dir, "out")
	cmd := exec.CommandContext(t.Context(), nsqtest.Binary(t, "nsq_to_file"), "--topic=hup", "--nsqd-tcp-address="+n.TCPAddr,
		"--work-dir="+work, "--output-dir="+out, "--filename-format=<TOPIC><REV>.log")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = appsTimeout
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})

	appsPublish(t, n.TCPAddr, "hup", []string{"one", "two"})
	nsqtest.Eventually(t, appsTimeout, func() bool { return len(appsLines(t, filepath.Join(work, "hup-000000.log"))) == 2 }, "two lines in the work file")
	if files := appsFiles(t, out); len(files) != 0 {
		t.Fatalf("output dir holds %q before SIGHUP", files)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	nsqtest.Eventually(t, appsTimeout, func() bool { return len(appsFiles(t, out)) == 1 }, "the file moved to the output dir")
	appsWaitDrained(t, n, "hup", "nsq_to_file", 2) // synced, so finished

	appsPublish(t, n.TCPAddr, "hup", []string{"three"})
	nsqtest.Eventually(t, appsTimeout, func() bool { return len(appsLines(t, filepath.Join(work, "hup-000001.log"))) == 1 }, "a new revision after SIGHUP")
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("nsq_to_file after SIGTERM: %v", waitErr)
		}
	case <-time.After(appsTimeout):
		t.Fatal("nsq_to_file did not exit after SIGTERM")
	}
	if got, want := appsFiles(t, out), []string{"hup-000000.log", "hup-000001.log"}; !slices.Equal(got, want) {
		t.Errorf("output files %q, want %q", got, want)
	}
	if got := appsAllLines(t, out); !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Errorf("output lines %q", got)
	}
}

// --topic-pattern: topics come from lookupd's /topics, filtered by the
// pattern; each gets its own file.
func TestAppsNSQToFileTopicPattern(t *testing.T) {
	lookupTCP, lookupHTTP := nsqtest.FreeAddr(t), nsqtest.FreeAddr(t)
	appsStartLookupd(t, lookupTCP, lookupHTTP)
	n := nsqtest.StartNSQD(t, "--lookupd-tcp-address="+lookupTCP, "--broadcast-address=127.0.0.1")
	for _, topic := range []string{"pat_a", "pat_b", "other"} {
		appsPublish(t, n.TCPAddr, topic, []string{topic + "-1", topic + "-2"})
		appsWaitLookup(t, lookupHTTP, topic)
	}
	out := t.TempDir()
	p := nsqtest.Start(t, "", "nsq_to_file", "--topic-pattern=^pat_", "--lookupd-http-address="+lookupHTTP,
		"--topic-refresh=200ms", "--output-dir="+out, "--filename-format=<TOPIC>.log", "--sync-interval=100ms")
	appsWaitDrained(t, n, "pat_a", "nsq_to_file", 2)
	appsWaitDrained(t, n, "pat_b", "nsq_to_file", 2)
	// A topic created later is found at the next refresh.
	appsPublish(t, n.TCPAddr, "pat_c", []string{"pat_c-1"})
	appsWaitDrained(t, n, "pat_c", "nsq_to_file", 1)
	if code := p.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsq_to_file exit status %d", code)
	}
	if got, want := appsFiles(t, out), []string{"pat_a.log", "pat_b.log", "pat_c.log"}; !slices.Equal(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	if got := appsLines(t, filepath.Join(out, "pat_b.log")); !slices.Equal(got, []string{"pat_b-1", "pat_b-2"}) {
		t.Errorf("pat_b.log holds %q", got)
	}
	if ch := n.Channel(t, "other", "nsq_to_file"); ch != nil {
		t.Errorf("topic other was consumed: %+v", ch)
	}
}

// Seeds 000/002: nsqlookupd on its default ports, an nsqd registered with
// it, messages published to topic "test", and the command
//
//	nsq_to_file --topic=test --output-dir=/tmp --lookupd-http-address=127.0.0.1:4161
//
// run verbatim writes them to /tmp/test.<host>.<YYYY-MM-DD_HH>.log.
func TestAppsSeedNSQToFile(t *testing.T) {
	nsqtest.Binary(t, "nsqlookupd") // skips when it is not built
	lockDefaultPorts(t)             // TestGoNSQSuite uses them too
	for _, addr := range []string{"127.0.0.1:4160", "127.0.0.1:4161"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("%s is taken (%v); the seed command needs nsqlookupd there", addr, err)
		}
		l.Close()
	}
	lookupd := nsqtest.Start(t, "", "nsqlookupd", "--tcp-address=127.0.0.1:4160", "--http-address=127.0.0.1:4161", "--broadcast-address=127.0.0.1")
	nsqtest.Eventually(t, appsTimeout, func() bool {
		select {
		case <-lookupd.Exited():
			lookupd.Stop(syscall.SIGTERM) // already exited; its status is judged here
			if strings.Contains(lookupd.Output(), "address already in use") {
				t.Skip("lost the race for 127.0.0.1:4160/4161")
			}
			t.Fatalf("nsqlookupd exited:\n%s", lookupd.Output())
		default:
		}
		resp, err := http.Get("http://127.0.0.1:4161/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "nsqlookupd on 127.0.0.1:4161")
	n := nsqtest.StartNSQD(t, "--lookupd-tcp-address=127.0.0.1:4160", "--broadcast-address=127.0.0.1")
	if status, body := nsqtest.HTTP(t, http.MethodPost, n.URL("/put?topic=test"), []byte("hello world 1")); status != http.StatusOK {
		t.Fatalf("POST /put: %d %s", status, body)
	}
	appsWaitLookup(t, "127.0.0.1:4161", "test")

	// The file is in the shared /tmp and opened for appending: remember what
	// was there and put it back afterwards.
	host := appsShortHost(t)
	start := time.Now()
	paths := []string{filepath.Join("/tmp", fmt.Sprintf("test.%s.%s.log", host, start.Format("2006-01-02_15")))}
	if next := filepath.Join("/tmp", fmt.Sprintf("test.%s.%s.log", host, start.Add(time.Hour).Truncate(time.Hour).Format("2006-01-02_15"))); next != paths[0] {
		paths = append(paths, next) // in case the hour turns during the test
	}
	before := map[string][]byte{}
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			before[p] = b
		}
	}
	t.Cleanup(func() {
		for _, p := range paths {
			if b, ok := before[p]; ok {
				os.WriteFile(p, b, 0o666)
			} else {
				os.Remove(p)
			}
		}
	})
	newLines := func() []string {
		var lines []string
		for _, p := range paths {
			b, _ := os.ReadFile(p)
			lines = append(lines, appsSplitLines(string(b[min(len(before[p]), len(b)):]))...)
		}
		return lines
	}

	p := nsqtest.Start(t, t.TempDir(), "nsq_to_file", "--topic=test", "--output-dir=/tmp", "--lookupd-http-address=127.0.0.1:4161")
	for _, body := range []string{"hello world 2", "hello world 3"} {
		if status, resp := nsqtest.HTTP(t, http.MethodPost, n.URL("/pub?topic=test"), []byte(body)); status != http.StatusOK {
			t.Fatalf("POST /pub: %d %s", status, resp)
		}
	}
	want := []string{"hello world 1", "hello world 2", "hello world 3"}
	// Lines reach the file as they arrive, before the 30 s sync.
	nsqtest.Eventually(t, appsTimeout, func() bool { return len(newLines()) >= 3 }, "three lines in the seed's file")
	if code := p.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsq_to_file exit status %d", code)
	}
	if got := newLines(); !slices.Equal(got, want) {
		t.Errorf("the seed's file got %q, want %q", got, want)
	}
	// SIGTERM synced and finished them.
	if ch := n.Channel(t, "test", "nsq_to_file"); ch == nil || ch.Depth != 0 || ch.InFlightCount != 0 || ch.MessageCount != 3 {
		t.Errorf("channel after SIGTERM: %+v", ch)
	}
}

// httpSink is an HTTP server recording the messages nsq_to_http delivers.
type httpSink struct {
	srv  *httptest.Server
	fail func(n int) bool // answer 500 to request n (from 0); nil: never
	slow time.Duration    // delay before answering

	mu       sync.Mutex
	requests int
	got      map[string]int // delivered (2xx) body → count
	headers  http.Header    // of the last request
	methods  map[string]int
}

func newHTTPSink(t *testing.T) *httpSink {
	s := &httpSink{got: map[string]int{}, methods: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := r.URL.Query().Get("data")
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			body = string(b)
		}
		time.Sleep(s.slow)
		s.mu.Lock()
		n := s.requests
		s.requests++
		s.headers = r.Header.Clone()
		s.methods[r.Method]++
		fail := s.fail != nil && s.fail(n)
		if !fail {
			s.got[body]++
		}
		s.mu.Unlock()
		if fail {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// delivered returns the distinct bodies delivered and a copy of the counts.
func (s *httpSink) delivered() (int, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(map[string]int, len(s.got))
	for k, v := range s.got {
		c[k] = v
	}
	return len(c), c
}

// nsq_to_http in GET and POST modes, with headers and content type, and
// requeueing while the server fails until it delivers.
func TestAppsNSQToHTTP(t *testing.T) {
	n := nsqtest.StartNSQD(t)

	t.Run("get", func(t *testing.T) {
		sink := newHTTPSink(t)
		bodies := appsBodies("get body&x=1", 50)
		appsPublish(t, n.TCPAddr, "httpget", bodies)
		p := nsqtest.Start(t, "", "nsq_to_http", "--topic=httpget", "--nsqd-tcp-address="+n.TCPAddr,
			"--get="+sink.srv.URL+"/get?data=%s", "--header=X-Test: yes", "--status-every=10")
		nsqtest.Eventually(t, appsTimeout, func() bool { d, _ := sink.delivered(); return d == len(bodies) }, "every GET")
		appsWaitDrained(t, n, "httpget", "nsq_to_http", len(bodies))
		if code := p.Stop(syscall.SIGTERM); code != 0 {
			t.Fatalf("exit status %d", code)
		}
		_, got := sink.delivered()
		appsCheckNoLoss(t, bodies, got)
		if sink.headers.Get("User-Agent") != "nsq_to_http v1.3.0" || sink.headers.Get("X-Test") != "yes" || sink.methods["GET"] != len(bodies) {
			t.Errorf("headers %v, methods %v", sink.headers, sink.methods)
		}
		if !strings.Contains(p.Output(), "[aggregate]: finished 10") {
			t.Errorf("no status line in:\n%s", p.Output())
		}
	})

	t.Run("post", func(t *testing.T) {
		sink := newHTTPSink(t)
		bodies := appsBodies("post\nbody", 50)
		appsPublish(t, n.TCPAddr, "httppost", bodies)
		p := nsqtest.Start(t, "", "nsq_to_http", "--topic=httppost", "--nsqd-tcp-address="+n.TCPAddr,
			"--post="+sink.srv.URL+"/post", "--content-type=text/plain", "--mode=round-robin")
		nsqtest.Eventually(t, appsTimeout, func() bool { d, _ := sink.delivered(); return d == len(bodies) }, "every POST")
		if code := p.Stop(syscall.SIGTERM); code != 0 {
			t.Fatalf("exit status %d", code)
		}
		if sink.headers.Get("Content-Type") != "text/plain" || sink.methods["POST"] != len(bodies) {
			t.Errorf("headers %v, methods %v", sink.headers, sink.methods)
		}
	})

	t.Run("requeue", func(t *testing.T) {
		sink := newHTTPSink(t)
		sink.fail = func(n int) bool { return n < 4 } // the first four requests fail
		bodies := appsBodies("retry", 5)
		appsPublish(t, n.TCPAddr, "httpretry", bodies)
		p := nsqtest.Start(t, "", "nsq_to_http", "--topic=httpretry", "--nsqd-tcp-address="+n.TCPAddr,
			"--post="+sink.srv.URL+"/", "--n=1",
			"--consumer-opt=default_requeue_delay,50ms", "--consumer-opt=backoff_multiplier,20ms",
			"--consumer-opt=max_backoff_duration,200ms")
		nsqtest.Eventually(t, appsTimeout, func() bool { d, _ := sink.delivered(); return d == len(bodies) }, "every message delivered after the failures")
		appsWaitDrained(t, n, "httpretry", "nsq_to_http", len(bodies))
		if ch := n.Channel(t, "httpretry", "nsq_to_http"); ch.RequeueCount < 4 {
			t.Errorf("requeue_count %d, want at least 4", ch.RequeueCount)
		}
		if code := p.Stop(syscall.SIGTERM); code != 0 {
			t.Fatalf("exit status %d", code)
		}
	})
}

// SIGTERM in the middle of a stream: requests in progress complete, the
// rest is redelivered to the next consumer.
func TestAppsNSQToHTTPSIGTERMMidStream(t *testing.T) {
	n := nsqtest.StartNSQD(t)
	sink := newHTTPSink(t)
	sink.slow = time.Millisecond
	bodies := appsBodies("midhttp", 3000)
	appsPublish(t, n.TCPAddr, "midhttp", bodies)
	p := nsqtest.Start(t, "", "nsq_to_http", "--topic=midhttp", "--nsqd-tcp-address="+n.TCPAddr,
		"--post="+sink.srv.URL+"/", "--n=4", "--max-in-flight=8")
	nsqtest.Eventually(t, appsTimeout, func() bool { d, _ := sink.delivered(); return d >= 200 }, "200 requests")
	if code := p.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	d, got := sink.delivered()
	t.Logf("nsq_to_http delivered %d of %d before SIGTERM", d, len(bodies))
	for b, c := range appsDrain(t, n, "midhttp", "nsq_to_http") {
		got[b] += c
	}
	appsCheckNoLoss(t, bodies, got)
}

// nsq_to_nsq forwards 10,000 messages from one nsqd to another; none is
// lost and the source channel ends empty.
func TestAppsNSQToNSQ(t *testing.T) {
	src, dst := nsqtest.StartNSQD(t), nsqtest.StartNSQD(t)
	bodies := appsBodies("forward", 10000)
	in := newInbox(len(bodies))
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 500
	c := newConsumer(t, "fwd_out", "check", cfg, in.handle)
	connect(t, c, dst.TCPAddr)

	appsPublish(t, src.TCPAddr, "fwd", bodies)
	p := nsqtest.Start(t, "", "nsq_to_nsq", "--topic=fwd", "--nsqd-tcp-address="+src.TCPAddr,
		"--destination-nsqd-tcp-address="+dst.TCPAddr, "--destination-topic=fwd_out", "--mode=round-robin")
	in.wait(t, appsTimeout, "forwarded messages")
	appsWaitDrained(t, src, "fwd", "nsq_to_nsq", len(bodies))
	var agents []string
	for _, pr := range dst.Stats(t).Producers {
		agents = append(agents, pr.UserAgent)
	}
	if !slices.Contains(agents, "nsq_to_nsq/1.3.0 go-nsq/1.1.0") {
		t.Errorf("destination producers' user agents %q, want nsq_to_nsq/1.3.0 go-nsq/1.1.0", agents)
	}
	if code := p.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	got, _ := in.snapshot()
	appsCheckNoLoss(t, bodies, got)
}

// JSON filtering (as captured from NSQ 1.3), hostpool mode to two
// destinations, the destination topic defaulting to the source topic.
func TestAppsNSQToNSQJSONFilter(t *testing.T) {
	src, dst1, dst2 := nsqtest.StartNSQD(t), nsqtest.StartNSQD(t), nsqtest.StartNSQD(t)
	var mu sync.Mutex
	var got []string
	record := func(m *nsq.Message) error {
		mu.Lock()
		got = append(got, string(m.Body))
		mu.Unlock()
		return nil
	}
	for _, d := range []*nsqtest.NSQD{dst1, dst2} {
		c := newConsumer(t, "js", "check", nil, record)
		connect(t, c, d.TCPAddr)
	}
	in := []string{`{"a":1,"b":1,"c":3}`, `{"a":2,"b":2}`, `notjson`, `{"a":3.5,"b":"1"}`, `{"b":1}`, `{"a":"<x>","c":1}`}
	appsPublish(t, src.TCPAddr, "js", in)
	p := nsqtest.Start(t, "", "nsq_to_nsq", "--topic=js", "--nsqd-tcp-address="+src.TCPAddr,
		"--destination-nsqd-tcp-address="+dst1.TCPAddr, "--destination-nsqd-tcp-address="+dst2.TCPAddr,
		"--whitelist-json-field=a", "--require-json-field=b", "--require-json-value=1")
	appsWaitDrained(t, src, "js", "nsq_to_nsq", len(in))
	want := []string{`{"a":1}`, `{"a":3.5}`, `{}`}
	nsqtest.Eventually(t, appsTimeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want)
	}, "the filtered messages")
	if code := p.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	mu.Lock()
	slices.Sort(got)
	mu.Unlock()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("forwarded %q, want %q", got, want)
	}
	if !strings.Contains(p.Output(), "ERROR: Unable to decode json: notjson") {
		t.Errorf("no decode error logged:\n%s", p.Output())
	}
}

// SIGTERM in the middle of a stream: nsq_to_nsq finishes what it forwarded
// and exits 0; a second nsq_to_nsq forwards the rest; nothing is lost.
func TestAppsNSQToNSQSIGTERMMidStream(t *testing.T) {
	src, dst := nsqtest.StartNSQD(t), nsqtest.StartNSQD(t)
	bodies := appsBodies("midfwd", 20000)
	in := newInbox(len(bodies))
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 1000
	c := newConsumer(t, "midfwd", "check", cfg, in.handle)
	connect(t, c, dst.TCPAddr)
	appsPublish(t, src.TCPAddr, "midfwd", bodies)

	args := []string{"--topic=midfwd", "--nsqd-tcp-address=" + src.TCPAddr, "--destination-nsqd-tcp-address=" + dst.TCPAddr, "--max-in-flight=20"}
	first := nsqtest.Start(t, "", "nsq_to_nsq", args...)
	nsqtest.Eventually(t, appsTimeout, func() bool {
		tp := dst.Stats(t).Topic("midfwd")
		return tp != nil && tp.MessageCount >= 1000
	}, "1000 messages forwarded")
	if code := first.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("first nsq_to_nsq exit status %d", code)
	}
	_, before := in.snapshot()
	t.Logf("the first nsq_to_nsq forwarded about %d of %d", before, len(bodies))

	second := nsqtest.Start(t, "", "nsq_to_nsq", args...)
	appsWaitDrained(t, src, "midfwd", "nsq_to_nsq", len(bodies))
	nsqtest.Eventually(t, appsTimeout, func() bool {
		counts, _ := in.snapshot()
		return len(counts) == len(bodies)
	}, "every message at the destination")
	if code := second.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("second nsq_to_nsq exit status %d", code)
	}
	got, _ := in.snapshot()
	appsCheckNoLoss(t, bodies, got)
}

// nsq_stat prints the captured table: a header, then one row per interval
// with the channel's depth and counters, in nsqd mode and lookupd mode.
func TestAppsNSQStat(t *testing.T) {
	lookupTCP, lookupHTTP := nsqtest.FreeAddr(t), nsqtest.FreeAddr(t)
	var nsqdArgs []string
	haveLookupd := true
	if _, err := os.Stat(filepath.Join(filepath.Dir(nsqtest.Binary(t, "nsqd")), "nsqlookupd")); err == nil {
		appsStartLookupd(t, lookupTCP, lookupHTTP)
		nsqdArgs = []string{"--lookupd-tcp-address=" + lookupTCP, "--broadcast-address=127.0.0.1"}
	} else {
		haveLookupd = false
	}
	n := nsqtest.StartNSQD(t, nsqdArgs...)
	post(t, n, "/topic/create?topic=st")
	post(t, n, "/channel/create?topic=st&channel=c")
	appsPublish(t, n.TCPAddr, "st", appsBodies("stat", 5))

	check := func(args ...string) {
		t.Helper()
		stdout, stderr, code := appsRun(t, "", "nsq_stat", append([]string{"--topic=st", "--channel=c", "--interval=100ms", "--count=3"}, args...)...)
		if code != 0 {
			t.Fatalf("nsq_stat %q: exit status %d: %s", args, code, stderr)
		}
		row := fmt.Sprintf("%7d %7d | %7d %7d %7d %5d %5d | %7d %7d %12d %7d\n", 0, 0, 5, 5, 0, 0, 0, 0, 0, 5, 0)
		want := "------rate------+----------------depth----------------+--------------metadata---------------\n" +
			"ingress  egress |   total     mem    disk inflt   def |     req     t-o         msgs clients\n" +
			row + row + row
		if stdout != want {
			t.Errorf("nsq_stat %q printed\n%s\nwant\n%s", args, stdout, want)
		}
	}
	check("--nsqd-http-address=" + n.HTTPAddr)
	if haveLookupd {
		appsWaitLookup(t, lookupHTTP, "st")
		check("--lookupd-http-address=" + lookupHTTP)
	}

	_, stderr, code := appsRun(t, "", "nsq_stat", "--topic=st", "--channel=nope", "--nsqd-http-address="+n.HTTPAddr)
	if code != 1 || !strings.Contains(stderr, "ERROR: failed to find channel(nope) in stats metadata for topic(st)") {
		t.Errorf("unknown channel: exit status %d, stderr %q", code, stderr)
	}
}

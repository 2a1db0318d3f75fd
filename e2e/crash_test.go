package e2e

// Crashes: nsqd SIGKILLed under load and restarted in place on the same
// ports and data directory. With --durable nothing acknowledged may be lost
// and only messages in flight around a crash may come twice; in NSQ's
// default mode a crash loses what was only in memory, and no more.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqio/go-nsq"
)

// ---------------------------------------------------------------------------
// An nsqd that can be SIGKILLed and restarted in place.

// crashNSQD runs the nsqd binary on fixed loopback ports and a fixed data
// directory, so that it can be killed and restarted where its clients
// reconnect. Each run's stdout and stderr go to a file of their own.
type crashNSQD struct {
	t      *testing.T
	bin    string
	logDir string
	api    *nsqtest.NSQD // addresses and data path for the HTTP helpers; no Process
	args   []string      // every run's command line

	mu     sync.Mutex
	runs   int
	failed bool          // a run did not start; the error said why
	cmd    *exec.Cmd     // the current run
	log    string        // its output file
	exited chan struct{} // closed once the current run has exited
	up     chan struct{} // closed once the current run answers GET /ping
}

// crashKill is one SIGKILL, in time since the start of the test.
type crashKill struct {
	signalled, exited, up time.Duration // SIGKILL sent; process gone; restarted run answering /ping
}

// startCrashNSQD starts nsqd with extra flags on free ports and a temporary
// data dir; it is stopped with SIGTERM (and must exit 0) when the test ends.
func startCrashNSQD(t *testing.T, extra ...string) *crashNSQD {
	t.Helper()
	n := &crashNSQD{t: t, bin: nsqtest.Binary(t, "nsqd"), logDir: t.TempDir(), up: make(chan struct{})}
	dataPath := t.TempDir()
	t.Cleanup(n.cleanup)
	for attempt := 1; ; attempt++ {
		n.api = &nsqtest.NSQD{TCPAddr: nsqtest.FreeAddr(t), HTTPAddr: nsqtest.FreeAddr(t), DataPath: dataPath}
		n.args = append([]string{"--tcp-address=" + n.api.TCPAddr, "--http-address=" + n.api.HTTPAddr,
			"--data-path=" + dataPath}, extra...)
		t.Logf("starting nsqd %s", strings.Join(n.args, " "))
		err := n.start()
		if err == nil {
			return n
		}
		out := n.output()
		if attempt < 5 && strings.Contains(out, "address already in use") {
			t.Logf("nsqd lost a port race; retrying on other ports")
			continue
		}
		if i := strings.Index(out, "flag provided but not defined"); i >= 0 {
			line, _, _ := strings.Cut(out[i:], "\n")
			t.Fatalf("nsqd does not accept %v yet (not implemented?): it exited at once, saying %q", extra, line)
		}
		t.Fatal(err)
	}
}

// start runs nsqd once more and waits until it answers GET /ping.
func (n *crashNSQD) start() (err error) {
	defer func() {
		if err != nil {
			n.mu.Lock()
			n.failed = true
			n.mu.Unlock()
		}
	}()
	n.mu.Lock()
	n.runs++
	run := n.runs
	n.mu.Unlock()
	logPath := filepath.Join(n.logDir, fmt.Sprintf("nsqd-run-%02d.log", run))
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(n.t.Context(), n.bin, n.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err = cmd.Start()
	f.Close() // the child has its own descriptor
	if err != nil {
		return fmt.Errorf("start nsqd: %w", err)
	}
	exited := make(chan struct{})
	go func() { // waited for by kill, stop and cleanup through exited
		cmd.Wait()
		close(exited)
	}()
	n.mu.Lock()
	n.cmd, n.log, n.exited = cmd, logPath, exited
	n.mu.Unlock()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := client.Get(n.api.URL("/ping")); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "OK" {
				break
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("nsqd run %d exited with status %d before GET /ping answered OK; its output ends:\n%s",
				run, cmd.ProcessState.ExitCode(), n.tail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nsqd run %d: GET /ping did not answer OK within 20s; its output ends:\n%s", run, n.tail())
		}
	}
	n.mu.Lock()
	close(n.up)
	n.mu.Unlock()
	return nil
}

// crash SIGKILLs the current run and starts the next on the same ports and
// data dir. Times are since start.
func (n *crashNSQD) crash(start time.Time) (crashKill, error) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.up = make(chan struct{}) // publishers failing from now on wait for the restart
	n.mu.Unlock()
	var k crashKill
	k.signalled = time.Since(start)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return k, fmt.Errorf("SIGKILL nsqd: %w; its output ends:\n%s", err, n.tail())
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		return k, errors.New("nsqd still running 10s after SIGKILL")
	}
	k.exited = time.Since(start)
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return k, fmt.Errorf("nsqd had exited by itself (%v) before SIGKILL; its output ends:\n%s", cmd.ProcessState, n.tail())
	}
	if err := n.start(); err != nil {
		return k, fmt.Errorf("restart after SIGKILL: %w", err)
	}
	k.up = time.Since(start)
	return k, nil
}

// upChan is closed once the current run answers /ping.
func (n *crashNSQD) upChan() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up
}

// cleanup stops the current run with SIGTERM, expects exit status 0 and
// logs the warnings and errors of every run.
func (n *crashNSQD) cleanup() {
	t := n.t
	n.mu.Lock()
	cmd, exited, runs, failed := n.cmd, n.exited, n.runs, n.failed
	n.mu.Unlock()
	if cmd != nil {
		// exec sends SIGTERM too once the test's context ends, before this.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if failed || ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				break // it did not start, or was killed and not restarted: the test failed saying why
			}
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("nsqd exited with status %d after SIGTERM at the end of the test (or died earlier); its output ends:\n%s", code, n.tail())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("nsqd did not exit within 30s of SIGTERM at the end of the test; killed; its output ends:\n%s", n.tail())
		}
	}
	n.logProblems(runs)
	if t.Failed() && !failed {
		t.Logf("last nsqd run's output ends:\n%s", n.tail())
	}
}

// output returns the current run's output.
func (n *crashNSQD) output() string {
	n.mu.Lock()
	path := n.log
	n.mu.Unlock()
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// tail returns the end of the current run's output, without the access
// log lines of the test's own polling.
func (n *crashNSQD) tail() string {
	var b []byte
	for line := range strings.Lines(n.output()) {
		if !strings.Contains(line, " GET /stats") && !strings.Contains(line, " GET /ping") {
			b = append(b, line...)
		}
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// logProblems logs each distinct WARNING, ERROR or FATAL message (and any
// panic) nsqd printed over all its runs, with counts.
func (n *crashNSQD) logProblems(runs int) {
	type seen struct {
		count int
		runs  []int
		first string
	}
	problems := map[string]*seen{}
	var order []string
	for run := 1; run <= runs; run++ {
		f, err := os.Open(filepath.Join(n.logDir, fmt.Sprintf("nsqd-run-%02d.log", run)))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			key, ok := crashLogKey(line)
			if !ok {
				continue
			}
			p := problems[key]
			if p == nil {
				p = &seen{first: line}
				problems[key] = p
				order = append(order, key)
			}
			p.count++
			if !slices.Contains(p.runs, run) {
				p.runs = append(p.runs, run)
			}
		}
		f.Close()
	}
	for i, key := range order {
		if i == 20 {
			n.t.Logf("nsqd: %d more kinds of warnings and errors", len(order)-i)
			break
		}
		p := problems[key]
		n.t.Logf("nsqd printed %d× in runs %v: %s", p.count, p.runs, p.first)
	}
}

// crashLogKey returns a line's level and constant message (its text up to
// the first key=value attribute) if it is a warning, error, fatal or panic.
func crashLogKey(line string) (string, bool) {
	if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
		return line, true
	}
	for _, level := range []string{" WARNING: ", " ERROR: ", " FATAL: "} {
		if _, msg, ok := strings.Cut(line, level); ok {
			words := strings.Fields(msg)
			for i, w := range words {
				if strings.Contains(w, "=") {
					words = words[:i]
					break
				}
			}
			return level + strings.Join(words, " "), true
		}
	}
	return "", false
}

// crashEventually polls cond until it holds and reports whether it did.
// After timeout, or once what cond says about the state it saw has not
// changed for crashStall, it marks the test failed with that state and lets
// the test go on to report what it got.
func crashEventually(t *testing.T, timeout time.Duration, cond func() (bool, string), what string) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	changed := time.Now()
	for {
		ok, state := cond()
		if ok {
			return true
		}
		if state != last {
			last, changed = state, time.Now()
		}
		if time.Since(changed) > crashStall {
			t.Errorf("no progress for %v waiting for %s: %s", crashStall, what, state)
			return false
		}
		if time.Now().After(deadline) {
			t.Errorf("timed out after %v waiting for %s: %s", timeout, what, state)
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// crashStall is how long crashEventually waits for any change in what it
// polls before it gives up.
const crashStall = 15 * time.Second

// ---------------------------------------------------------------------------
// Message bodies.

// crashBody is message seq's body: "msg-<seq, 8 digits>-" and filler to a
// length of 100 to 200 bytes, all determined by seq.
func crashBody(seq int) []byte {
	b := fmt.Appendf(make([]byte, 0, 200), "msg-%08d-", seq)
	for i := len(b); i < 100+seq%101; i++ {
		b = append(b, 'a'+byte((seq+i)%26))
	}
	return b
}

// crashSeq returns the sequence number of body and whether body is exactly
// crashBody of it, for sequence numbers below total.
func crashSeq(body []byte, total int) (int, bool) {
	if len(body) < 13 || !bytes.HasPrefix(body, []byte("msg-")) || body[12] != '-' {
		return -1, false
	}
	seq, err := strconv.Atoi(string(body[4:12]))
	if err != nil || seq < 0 || seq >= total {
		return -1, false
	}
	return seq, bytes.Equal(body, crashBody(seq))
}

// crashReconnectDelay is how long go-nsq waits after a connection to nsqd
// closed before it reconnects: no run of nsqd started after a SIGKILL can
// deliver anything to the consumer earlier than this after the signal.
const crashReconnectDelay = 100 * time.Millisecond

// crashConsumerConfig is go-nsq's configuration for a consumer that tries
// to reconnect every crashReconnectDelay after losing nsqd and never gives
// up on a message however often it was delivered.
func crashConsumerConfig(maxInFlight int) *nsq.Config {
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = maxInFlight
	cfg.MaxAttempts = 0                           // go-nsq would otherwise drop messages past 5 attempts
	cfg.LookupdPollInterval = crashReconnectDelay // reconnect delay to a directly connected nsqd
	return cfg
}

// ---------------------------------------------------------------------------
// TestCrashDurable.

// crashDelivery is one delivery to the handler, in time since the start of
// the test.
type crashDelivery struct {
	received, finished time.Duration // finished < 0: no FIN was sent
}

// crashRecorder is a handler recording every delivery by sequence number; it
// sends FIN for every message and records when.
type crashRecorder struct {
	start time.Time
	total int

	mu         sync.Mutex
	got        [][]crashDelivery // by sequence number
	distinct   int               // sequence numbers delivered at least once
	deliveries int
	strangers  []string // bodies that were never published (first 10)
	nStrangers int
}

func newCrashRecorder(start time.Time, total int) *crashRecorder {
	return &crashRecorder{start: start, total: total, got: make([][]crashDelivery, total)}
}

func (r *crashRecorder) handle(m *nsq.Message) error {
	received := time.Since(r.start)
	m.DisableAutoResponse()
	seq, ok := crashSeq(m.Body, r.total)
	r.mu.Lock()
	r.deliveries++
	if !ok {
		r.nStrangers++
		if len(r.strangers) < 10 {
			r.strangers = append(r.strangers, string(m.Body))
		}
	} else {
		if len(r.got[seq]) == 0 {
			r.distinct++
		}
		r.got[seq] = append(r.got[seq], crashDelivery{received: received, finished: time.Since(r.start)})
	}
	r.mu.Unlock()
	m.Finish() // right after recording the time: the FIN is written now
	return nil
}

// crashDeliveries formats ds for a failure message.
func crashDeliveries(ds []crashDelivery) string {
	var parts []string
	for _, d := range ds {
		fin := "no FIN"
		if d.finished >= 0 {
			fin = "FIN at " + d.finished.Round(time.Millisecond).String()
		}
		parts = append(parts, fmt.Sprintf("at %v (%s)", d.received.Round(time.Millisecond), fin))
	}
	return strings.Join(parts, ", ")
}

func (r *crashRecorder) progress() (distinct, deliveries int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.distinct, r.deliveries
}

// crashFINWindow is how long before a SIGKILL a FIN may have been sent and
// still be lost by --durable, so that the message comes again.
const crashFINWindow = 2 * time.Second

// inFlightAtKill tells whether a SIGKILL falls between deliveries prev and
// next while prev was in flight: not finished or finished less than
// crashFINWindow before the kill. The consumer may handle messages the
// killed run sent a little after it died (they were in the socket), but a
// later run delivers nothing before crashReconnectDelay after the signal.
func inFlightAtKill(prev, next crashDelivery, kills []crashKill) bool {
	for _, k := range kills {
		boundary := k.signalled + crashReconnectDelay
		if prev.received < boundary && next.received >= boundary &&
			(prev.finished < 0 || prev.finished > k.signalled-crashFINWindow) {
			return true
		}
	}
	return false
}

// The acceptance test of --durable: 200,000 messages published by 4
// producers and consumed at the same time while nsqd is SIGKILLed at random
// moments at least 4 times. Every acknowledged message arrives, nothing else
// does, and a message comes twice only if it was published twice or was in
// flight (or just finished) around a kill.
func TestCrashDurable(t *testing.T) {
	const (
		topic, channel = "crash", "c"
		total          = 200000
		batch          = 100
		producers      = 4
		maxInFlight    = 200
		minKills       = 4
		maxKills       = 12
		publishTimeout = 60 * time.Second
		drainTimeout   = 60 * time.Second
	)
	start := time.Now()
	n := startCrashNSQD(t, "--durable")
	post(t, n.api, "/topic/create?topic="+topic)
	post(t, n.api, "/channel/create?topic="+topic+"&channel="+channel)

	rec := newCrashRecorder(start, total)
	connect(t, newConsumer(t, topic, channel, crashConsumerConfig(maxInFlight), rec.handle), n.api.TCPAddr)
	waitClients(t, n.api, topic, channel, 1)

	bodies := make([][]byte, total)
	for i := range bodies {
		bodies[i] = crashBody(i)
	}
	const batches = total / batch
	var (
		attempts [batches]int  // MultiPublish calls per batch; written by its producer
		acked    [batches]bool // MultiPublish returned nil
	)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	var (
		wg          sync.WaitGroup
		pubErrs     [producers]error
		pubDone     = make(chan struct{})
		publishTook time.Duration
		kills       []crashKill // written by the killer until wg.Wait
		killErr     error
	)
	logger := nsqtest.ClientLogger(t)
	newPub := func() *nsq.Producer {
		p, err := nsq.NewProducer(n.api.TCPAddr, nsq.NewConfig())
		if err != nil {
			panic(err) // only for an invalid config
		}
		p.SetLogger(logger, nsq.LogLevelWarning)
		return p
	}
	pubStart := time.Now()
	deadline := pubStart.Add(publishTimeout)
	var pwg sync.WaitGroup
	for w := range producers {
		pwg.Go(func() {
			p := newPub()
			defer func() { p.Stop() }()
			for b := w; b < batches; b += producers {
				for {
					attempts[b]++
					err := p.MultiPublish(topic, bodies[b*batch:(b+1)*batch])
					if err == nil {
						acked[b] = true
						break
					}
					// go-nsq v1.1.0's Producer races with itself (-race) when
					// it reconnects after losing its connection: use a new one.
					p.Stop()
					p = newPub()
					if time.Now().After(deadline) {
						pubErrs[w] = fmt.Errorf("batch %d not acknowledged after %d attempts in %v: %w", b, attempts[b], publishTimeout, err)
						return
					}
					select { // nsqd is being restarted, or restarts failed
					case <-n.upChan():
					case <-ctx.Done():
						pubErrs[w] = fmt.Errorf("batch %d: gave up after %d attempts: %w", b, attempts[b], err)
						return
					case <-time.After(time.Until(deadline)):
					}
					select { // the run we saw up may be the one just killed: don't spin
					case <-time.After(10 * time.Millisecond):
					case <-ctx.Done():
					}
				}
			}
		})
	}
	wg.Go(func() {
		pwg.Wait()
		publishTook = time.Since(pubStart)
		close(pubDone)
	})
	wg.Go(func() {
		// Kill while publishing and, at least twice, while only consuming.
		killsAfterPub := 0
		for len(kills) < maxKills {
			select {
			case <-pubDone:
				if distinct, _ := rec.progress(); len(kills) >= minKills && (killsAfterPub >= 2 || distinct == total) {
					return
				}
				killsAfterPub++
			default:
			}
			select {
			case <-time.After(300*time.Millisecond + rand.N(1200*time.Millisecond)):
			case <-ctx.Done():
				return
			}
			k, err := n.crash(start)
			if err != nil {
				killErr = err
				cancel() // publishers stop waiting for a restart that will not come
				return
			}
			kills = append(kills, k)
		}
	})
	wg.Wait()
	distinct, _ := rec.progress()
	t.Logf("publishing and SIGKILLs over after %v: %d of %d messages received", time.Since(start).Round(time.Millisecond), distinct, total)
	if killErr != nil {
		t.Fatalf("after %d SIGKILLs: %v", len(kills), killErr)
	}
	if err := errors.Join(pubErrs[:]...); err != nil {
		t.Fatalf("publishing with %d SIGKILLs: %v", len(kills), err)
	}
	for i, k := range kills {
		t.Logf("SIGKILL %d at %v: exited after %v, answering /ping again after %v",
			i+1, k.signalled.Round(time.Millisecond), (k.exited - k.signalled).Round(time.Millisecond),
			(k.up - k.signalled).Round(time.Millisecond))
	}

	// Wait for every message, and for nsqd to agree that nothing is left.
	crashEventually(t, drainTimeout, func() (bool, string) {
		distinct, deliveries := rec.progress()
		tp := n.api.Stats(t).Topic(topic)
		ch := tp.Channel(channel)
		state := fmt.Sprintf("%d of %d messages received in %d deliveries; /stats topic %+v", distinct, total, deliveries, tp)
		return distinct == total && tp != nil && tp.Depth == 0 && ch != nil &&
			ch.Depth == 0 && ch.InFlightCount == 0 && ch.DeferredCount == 0, state
	}, "every message received and the channel drained after the last restart")
	elapsed := time.Since(start)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var published, ackedN, totalAttempts, retried int
	for b := range batches {
		published += batch
		totalAttempts += attempts[b] * batch
		if attempts[b] > 1 {
			retried++
		}
		if acked[b] {
			ackedN += batch
		}
	}
	var (
		missing                    []int
		byKill, byRepublish, other int
		unexplained                []string
	)
	for seq, ds := range rec.got {
		b := seq / batch
		if acked[b] && len(ds) == 0 {
			missing = append(missing, seq)
		}
		explained := 0
		for i := 1; i < len(ds); i++ {
			if inFlightAtKill(ds[i-1], ds[i], kills) {
				explained++
			}
		}
		extra := len(ds) - 1
		if extra <= 0 {
			continue
		}
		byKill += min(extra, explained)
		rest := extra - min(extra, explained)
		republished := min(rest, attempts[b]-1)
		byRepublish += republished
		if rest -= republished; rest > 0 {
			other += rest
			if len(unexplained) < 5 {
				unexplained = append(unexplained, fmt.Sprintf("msg-%08d published %d time(s), delivered %s", seq, attempts[b], crashDeliveries(ds)))
			}
		}
	}
	t.Logf("published %d messages in %d batches of %d: %d acknowledged, %d publish attempts (%d batches retried)",
		published, batches, batch, ackedN, totalAttempts, retried)
	t.Logf("received %d deliveries of %d distinct messages; duplicates: %d in flight at a kill, %d of republished batches, %d unexplained; %d never-published bodies",
		rec.deliveries, rec.distinct, byKill, byRepublish, other, rec.nStrangers)
	t.Logf("%d SIGKILLs; publishing took %v (%.0f msgs/s acknowledged); drained after %v (%.0f msgs/s end to end)",
		len(kills), publishTook.Round(time.Millisecond), float64(ackedN)/publishTook.Seconds(),
		elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())

	if len(kills) < minKills {
		t.Errorf("%d SIGKILLs, want at least %d", len(kills), minKills)
	}
	if len(missing) > 0 {
		t.Errorf("(a) %d acknowledged messages never received, first: %v", len(missing), missing[:min(len(missing), 10)])
	}
	if rec.nStrangers > 0 {
		t.Errorf("(b) %d deliveries of bodies never published, first: %q", rec.nStrangers, rec.strangers)
	}
	if other > 0 {
		var at []string
		for _, k := range kills {
			at = append(at, k.signalled.Round(time.Millisecond).String())
		}
		t.Errorf("(c) %d duplicate deliveries neither republished nor in flight within %v of a SIGKILL (at %s), first:\n%s",
			other, crashFINWindow, strings.Join(at, ", "), strings.Join(unexplained, "\n"))
	}
}

// ---------------------------------------------------------------------------
// TestCrashDefaultMode.

// waitMetadata waits until nsqd.dat lists topic/channel, so that a SIGKILL
// does not lose the channel itself (nsqd rewrites the file shortly after a
// channel is created).
func waitMetadata(t *testing.T, dataPath, topic, channel string) {
	t.Helper()
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(dataPath, "nsqd.dat"))
		if err != nil {
			return false
		}
		var m struct {
			Topics []struct {
				Name     string `json:"name"`
				Channels []struct {
					Name string `json:"name"`
				} `json:"channels"`
			} `json:"topics"`
		}
		if json.Unmarshal(b, &m) != nil {
			return false
		}
		for _, tp := range m.Topics {
			for _, ch := range tp.Channels {
				if tp.Name == topic && ch.Name == channel {
					return true
				}
			}
		}
		return false
	}, fmt.Sprintf("nsqd.dat to list %s/%s", topic, channel))
}

// What a crash costs without --durable (NSQ's semantics): messages held
// only in memory (the channel's memory queue and its in-flight messages)
// may be lost, everything that overflowed to the disk queue survives (its
// writes are in the page cache, which outlives the process).
func TestCrashDefaultMode(t *testing.T) {
	t.Run("mem-queue-size=10000", func(t *testing.T) { crashDefaultMode(t, 10000, 30000) })
	t.Run("mem-queue-size=0", func(t *testing.T) { crashDefaultMode(t, 0, 20000) })
}

// crashDefaultMode publishes total messages while the only consumer holds
// maxInFlight of them unanswered, SIGKILLs nsqd, restarts it and drains the
// channel.
func crashDefaultMode(t *testing.T, memQueueSize, total int) {
	const topic, channel, maxInFlight = "crash", "c", 100
	start := time.Now()
	n := startCrashNSQD(t, fmt.Sprintf("--mem-queue-size=%d", memQueueSize))
	post(t, n.api, "/topic/create?topic="+topic)
	post(t, n.api, "/channel/create?topic="+topic+"&channel="+channel)
	waitMetadata(t, n.api.DataPath, topic, channel)

	var (
		afterCrash atomic.Bool // set once the held messages' connection is gone
		mu         sync.Mutex
		held       []*nsq.Message // delivered before the crash, never answered
		heldSeqs   []int
		got        = make([]int, total) // deliveries after the crash by sequence number
		strangers  []string
	)
	c := newConsumer(t, topic, channel, crashConsumerConfig(maxInFlight), func(m *nsq.Message) error {
		seq, ok := crashSeq(m.Body, total)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case !ok:
			strangers = append(strangers, string(m.Body))
		case !afterCrash.Load():
			m.DisableAutoResponse() // a slow consumer: keep it in flight
			held = append(held, m)
			heldSeqs = append(heldSeqs, seq)
		default:
			got[seq]++
		}
		return nil
	})
	connect(t, c, n.api.TCPAddr)
	waitClients(t, n.api, topic, channel, 1)

	bodies := make([][]byte, total)
	for i := range bodies {
		bodies[i] = crashBody(i)
	}
	publishBodies(t, newProducer(t, n.api.TCPAddr), topic, bodies, 500)

	// Everything has moved to the channel: maxInFlight held by the consumer,
	// the rest in the channel's memory queue or, past it, on disk.
	var tp *nsqtest.TopicStats
	var ch *nsqtest.ChannelStats
	nsqtest.Eventually(t, 30*time.Second, func() bool {
		tp = n.api.Stats(t).Topic(topic)
		ch = tp.Channel(channel)
		mu.Lock()
		nHeld := len(held)
		mu.Unlock()
		return tp != nil && tp.Depth == 0 && ch != nil && ch.InFlightCount == maxInFlight && nHeld == maxInFlight &&
			ch.Depth == int64(total-maxInFlight)
	}, fmt.Sprintf("topic depth 0, channel depth %d and %d in flight", total-maxInFlight, maxInFlight))
	inMemory, onDisk, inFlight := int(ch.Depth-ch.BackendDepth), int(ch.BackendDepth), ch.InFlightCount
	if inMemory > memQueueSize || onDisk < total-maxInFlight-memQueueSize {
		t.Fatalf("before the crash: channel depth %d of which %d on disk, want at most %d (--mem-queue-size) in memory",
			ch.Depth, ch.BackendDepth, memQueueSize)
	}

	afterCrash.Store(true)
	k, err := n.crash(start)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, m := range held {
		m.Finish() // the connection is gone; this lets go-nsq finish closing it and reconnect
	}
	mu.Unlock()
	t.Logf("SIGKILL at %v, answering /ping again after %v", k.signalled.Round(time.Millisecond), (k.up - k.signalled).Round(time.Millisecond))

	crashEventually(t, 20*time.Second, func() (bool, string) { // a few seconds under -race
		tp := n.api.Stats(t).Topic(topic)
		ch := tp.Channel(channel)
		mu.Lock()
		received := 0
		for _, k := range got {
			received += min(k, 1)
		}
		mu.Unlock()
		state := fmt.Sprintf("%d of %d received; /stats topic %+v", received, total, tp)
		// A pump holds what it has just read from the disk queue for a
		// moment before it is in flight, counted in neither depth nor
		// in_flight_count: so wait for the deliveries too, down to what may
		// be lost (a real loss stalls here and is reported below).
		return tp != nil && tp.Depth == 0 && ch != nil && ch.ClientCount == 1 &&
			ch.Depth == 0 && ch.InFlightCount == 0 && ch.DeferredCount == 0 &&
			received >= total-(inMemory+inFlight), state
	}, "the consumer back, the channel drained and everything but memory delivered after the restart")
	elapsed := time.Since(start)

	mu.Lock()
	defer mu.Unlock()
	var lost, duplicated, heldBack int
	for _, k := range got {
		switch {
		case k == 0:
			lost++
		case k > 1:
			duplicated += k - 1
		}
	}
	for _, seq := range heldSeqs {
		if got[seq] > 0 {
			heldBack++
		}
	}
	t.Logf("--mem-queue-size=%d: published %d; at the SIGKILL %d in the channel's memory queue, %d on disk, %d in flight; "+
		"after the restart %d lost, %d duplicate deliveries, %d of the %d in-flight messages delivered again; took %v",
		memQueueSize, total, inMemory, onDisk, inFlight, lost, duplicated, heldBack, len(heldSeqs), elapsed.Round(time.Millisecond))

	if len(strangers) > 0 {
		t.Errorf("%d deliveries of bodies never published, first: %q", len(strangers), strangers[:min(len(strangers), 10)])
	}
	// Only memory may be lost: what was queued in memory plus what was in flight.
	if bound := inMemory + inFlight; lost > bound {
		t.Errorf("%d of %d messages lost, want at most the %d in memory at the SIGKILL (%d queued + %d in flight): "+
			"%d of the %d on disk were lost", lost, total, bound, inMemory, inFlight, lost-bound, onDisk)
	}
	if bound := memQueueSize + maxInFlight; lost > bound {
		t.Errorf("%d messages lost, want at most --mem-queue-size + max-in-flight = %d", lost, bound)
	}
}

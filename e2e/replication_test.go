package e2e

// Replication end to end (issue 15, docs/replication.md): three built nsqd
// as one replica set and one nsqlookupd on loopback; go-nsq producers on
// every replica and a go-nsq consumer through lookupd; the leader killed,
// restarted and hung; a ledger of what was acknowledged and delivered.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
	"github.com/nsqio/go-nsq"
)

// rsReplica is one nsqd of the replica set, restartable on its ports and
// data path.
type rsReplica struct {
	id              int
	tcp, http, raft string
	dir             string
	args            []string
	p               *nsqtest.Process
	running         atomic.Bool
}

func (r *rsReplica) start(t *testing.T) {
	t.Helper()
	r.p = nsqtest.Start(t, "", "nsqd", r.args...)
	if err := clWaitPing(r.p, r.http); err != nil {
		t.Fatal(err)
	}
	r.running.Store(true)
}

func (r *rsReplica) kill() {
	r.running.Store(false)
	r.p.Kill()
}

// replicationState is GET /replication's JSON.
type replicationState struct {
	Role         string `json:"role"`
	Dispatching  bool   `json:"dispatching"`
	LeaderID     string `json:"leader_id"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
}

func (r *rsReplica) state() (replicationState, bool) {
	var st replicationState
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + r.http + "/replication")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st) == nil
}

// startReplicaSet starts three replicas registered with the nsqlookupd at
// lookupdTCP; extra flags are given to each.
func startReplicaSet(t *testing.T, lookupdTCP string, extra ...string) []*rsReplica {
	t.Helper()
	var rs []*rsReplica
	var peers []string
	for i := range 3 {
		r := &rsReplica{id: i + 1, tcp: nsqtest.FreeAddr(t), http: nsqtest.FreeAddr(t), raft: nsqtest.FreeAddr(t), dir: t.TempDir()}
		peers = append(peers, fmt.Sprintf("%d@%s", r.id, r.raft))
		rs = append(rs, r)
	}
	for _, r := range rs {
		r.args = []string{
			"--tcp-address=" + r.tcp, "--http-address=" + r.http, "--data-path=" + r.dir,
			"--broadcast-address=127.0.0.1", "--lookupd-tcp-address=" + lookupdTCP,
			fmt.Sprintf("--node-id=%d", r.id), "--log-level=warn",
			"--replication-address=" + r.raft, "--replication-peers=" + strings.Join(peers, ","),
		}
		r.args = append(r.args, extra...)
		r.start(t)
	}
	return rs
}

// leader waits for a running replica that leads and dispatches.
func leader(t *testing.T, rs []*rsReplica) *rsReplica {
	t.Helper()
	var l *rsReplica
	nsqtest.Eventually(t, 20*time.Second, func() bool {
		for _, r := range rs {
			if !r.running.Load() {
				continue
			}
			if st, ok := r.state(); ok && st.Role == "leader" && st.Dispatching {
				l = r
				return true
			}
		}
		return false
	}, "a replica leads")
	return l
}

// caughtUp waits until every running replica applied the leader's last index
// as it was when called.
func caughtUp(t *testing.T, rs []*rsReplica, l *rsReplica) {
	t.Helper()
	ls, _ := l.state()
	nsqtest.Eventually(t, 20*time.Second, func() bool {
		for _, r := range rs {
			if st, ok := r.state(); r.running.Load() && (!ok || st.AppliedIndex < ls.LastIndex) {
				return false
			}
		}
		return true
	}, "replicas caught up")
}

// ledger records what producers tried, what was acknowledged and what the
// consumer received.
type ledger struct {
	mu        sync.Mutex
	attempted map[string]bool
	acked     map[string]bool
	delivered map[string]int
}

func newLedger() *ledger {
	return &ledger{attempted: map[string]bool{}, acked: map[string]bool{}, delivered: map[string]int{}}
}

func (l *ledger) handle(m *nsq.Message) error {
	l.mu.Lock()
	l.delivered[string(m.Body)]++
	l.mu.Unlock()
	return nil
}

func (l *ledger) missing() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for b := range l.acked {
		if l.delivered[b] == 0 {
			out = append(out, b)
		}
	}
	return out
}

// publisher publishes numbered bodies, starting at the replica at index
// start and moving to the next replica after an error; a body that failed
// is retried as a new body (so each body is acknowledged at most once and
// a failed one that was committed anyway shows as delivered-not-acked).
//
// A producer whose publish failed is replaced, not used again: go-nsq
// v1.1.0's Producer races (go test -race) when it reconnects after its
// connection was closed under it.
func publisher(t *testing.T, name string, rs []*rsReplica, start int, lg *ledger, stop <-chan struct{}, wg *sync.WaitGroup) {
	cfg := nsq.NewConfig()
	cfg.HeartbeatInterval, cfg.ReadTimeout = time.Second, 4*time.Second
	var all []*nsq.Producer // stopped at the end, failed ones included
	newProducer := func(addr string) *nsq.Producer {
		p, err := nsq.NewProducer(addr, cfg)
		if err != nil {
			panic(err) // only for an invalid config
		}
		p.SetLogger(nsqtest.ClientLogger(t), nsq.LogLevelError)
		all = append(all, p)
		return p
	}
	producers := make([]*nsq.Producer, len(rs))
	for i, r := range rs {
		producers[i] = newProducer(r.tcp)
	}
	wg.Go(func() {
		defer func() {
			for _, p := range all {
				p.Stop()
			}
		}()
		cur := start
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf("%s-%06d", name, n)
			lg.mu.Lock()
			lg.attempted[body] = true
			lg.mu.Unlock()
			if err := publishWithin(producers[cur], body, 3*time.Second); err != nil {
				producers[cur] = newProducer(rs[cur].tcp)
				cur = (cur + 1) % len(rs)
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			lg.mu.Lock()
			lg.acked[body] = true
			lg.mu.Unlock()
			time.Sleep(3 * time.Millisecond)
		}
	})
}

// publishWithin publishes and gives up after d. go-nsq's Publish (and its
// connect, IDENTIFY included) waits up to the read timeout, and a hung
// (SIGSTOPped) nsqd accepts connections but never answers. A publish
// given up on counts as not acknowledged, whatever becomes of it.
func publishWithin(p *nsq.Producer, body string, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- p.Publish("ledger", []byte(body)) }() // ends within the read timeout
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("no answer within %v", d)
	}
}

// postOK POSTs each path to the nsqd at httpAddr and fails the test unless
// it answers 200.
func postOK(t *testing.T, httpAddr string, paths ...string) {
	t.Helper()
	for _, path := range paths {
		if code, body := nsqtest.HTTP(t, http.MethodPost, "http://"+httpAddr+path, nil); code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
}

// TestReplicationLedger is done-when items 2 and 4 of issue 15.
func TestReplicationLedger(t *testing.T) {
	lookupd := clSeedLookupd(t, t.TempDir())
	rs := startReplicaSet(t, lookupd.TCPAddr)
	l := leader(t, rs)
	// The topic and channel exist before the consumer looks them up.
	postOK(t, l.http, "/topic/create?topic=ledger", "/channel/create?topic=ledger&channel=all")

	lg := newLedger()
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 60
	cfg.LookupdPollInterval = 500 * time.Millisecond
	c := newConsumer(t, "ledger", "all", cfg, lg.handle)
	if err := c.ConnectToNSQLookupd(lookupd.HTTPAddr); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 {
		publisher(t, fmt.Sprintf("p%d", i), rs, i, lg, stop, &wg)
	}
	ackedCount := func() int { lg.mu.Lock(); defer lg.mu.Unlock(); return len(lg.acked) }
	waitAcks := func(more int, what string) {
		t.Helper()
		target := ackedCount() + more
		nsqtest.Eventually(t, 20*time.Second, func() bool { return ackedCount() >= target }, what)
	}
	waitAcks(200, "first acknowledgements")

	var failovers []time.Duration
	for round := range 3 {
		l := leader(t, rs)
		killed := time.Now()
		l.kill()
		t.Logf("round %d: SIGKILLed leader %d", round, l.id)
		leader(t, rs)
		before := ackedCount()
		nsqtest.Eventually(t, 20*time.Second, func() bool { return ackedCount() > before }, "publishes resume after the kill")
		failovers = append(failovers, time.Since(killed))
		l.start(t)
		caughtUp(t, rs, leader(t, rs))
		waitAcks(100, "acknowledgements with the leader back")
	}

	// A hung leader: SIGSTOP for longer than an election, then SIGCONT.
	l = leader(t, rs)
	hung := l.p
	t.Cleanup(func() { hung.Signal(syscall.SIGCONT) }) // before its SIGTERM, if the test fails meanwhile
	l.p.Signal(syscall.SIGSTOP)
	t.Logf("SIGSTOPped leader %d", l.id)
	nsqtest.Eventually(t, 20*time.Second, func() bool {
		for _, r := range rs {
			if st, ok := r.state(); r != l && ok && st.Role == "leader" {
				return true
			}
		}
		return false
	}, "another replica leads while the leader hangs")
	waitAcks(100, "acknowledgements while the old leader hangs")
	l.p.Signal(syscall.SIGCONT)
	caughtUp(t, rs, leader(t, rs))
	waitAcks(100, "acknowledgements after SIGCONT")

	close(stop)
	wg.Wait()
	nsqtest.Eventually(t, 60*time.Second, func() bool { return len(lg.missing()) == 0 }, "every acknowledged message delivered")

	// Two of three down: publishes fail, one back restores service.
	l = leader(t, rs)
	var survivor *rsReplica
	for _, r := range rs {
		if r != l && survivor == nil {
			survivor = r
		}
	}
	for _, r := range rs {
		if r != survivor {
			r.kill()
		}
	}
	// A fresh producer per attempt (see publisher).
	if err := newProducer(t, survivor.tcp).Publish("ledger", []byte("no-quorum")); err == nil {
		t.Errorf("publish acknowledged with two of three replicas down")
	}
	lg.mu.Lock()
	lg.attempted["no-quorum"] = true
	lg.mu.Unlock()
	l.start(t)
	nsqtest.Eventually(t, 20*time.Second, func() bool {
		return newProducer(t, survivor.tcp).Publish("ledger", []byte("quorum-back")) == nil
	}, "a publish acknowledged with a replica back")
	lg.mu.Lock()
	lg.attempted["quorum-back"], lg.acked["quorum-back"] = true, true
	lg.mu.Unlock()
	nsqtest.Eventually(t, 60*time.Second, func() bool { return len(lg.missing()) == 0 }, "every acknowledged message delivered after the outage")

	// The ledger: nothing invented, duplicates counted.
	lg.mu.Lock()
	defer lg.mu.Unlock()
	dups, unacked := 0, 0
	for b, n := range lg.delivered {
		if !lg.attempted[b] {
			t.Errorf("delivered %q, which no producer sent", b)
		}
		if n > 1 {
			dups += n - 1
		}
		if !lg.acked[b] {
			unacked++
		}
	}
	t.Logf("ledger: %d attempted, %d acknowledged, %d distinct delivered, %d duplicate deliveries "+
		"(redeliveries of what was in flight or FIN'd within a progress interval of a failover), "+
		"%d delivered but not acknowledged (publishes that failed at the client yet were committed); failover times %v",
		len(lg.attempted), len(lg.acked), len(lg.delivered), dups, unacked, failovers)
	for _, d := range failovers {
		if d > 10*time.Second {
			t.Errorf("publishing resumed %v after the leader was killed, want within 5s (10s with slack)", d)
		}
	}
	if dups > len(lg.acked)/2 {
		t.Errorf("%d duplicates for %d acknowledged messages", dups, len(lg.acked))
	}
}

// settleLedger records every delivery to the consumers pinned to replicas
// and how each was settled (FIN or REQ), and the times of the failures the
// test made: the only ones a duplicate may be explained by.
type settleLedger struct {
	mu        sync.Mutex
	delivered map[string][]settlement // body → deliveries, in handler order
	fins      map[string]int
	events    []time.Time // SIGKILLs and restarts
}

type settlement struct {
	at       time.Time
	attempts uint16
	by       string // which consumer
	req      bool   // REQ'd, else FIN'd
}

func (s *settleLedger) event() {
	s.mu.Lock()
	s.events = append(s.events, time.Now())
	s.mu.Unlock()
}

// near reports whether a failure happened between from and to.
func (s *settleLedger) near(from, to time.Time) bool {
	for _, e := range s.events {
		if !e.Before(from) && !e.After(to) {
			return true
		}
	}
	return false
}

// settleWindow is how long before a failure a FIN or REQ may not have
// reached the set: a progress interval (100 ms) and the failure's
// detection, with slack for -race on a busy machine.
const settleWindow = 3 * time.Second

// handler FINs a message or, one time in five (at most three times per
// message), REQs it with a delay of up to 200 ms.
func (s *settleLedger) handler(name string) nsq.HandlerFunc {
	return func(m *nsq.Message) error {
		body := string(m.Body)
		s.mu.Lock()
		prior := s.delivered[body]
		reqs := 0
		for _, d := range prior {
			if d.req {
				reqs++
			}
		}
		req := reqs < 3 && rand.IntN(5) == 0
		s.delivered[body] = append(prior, settlement{at: time.Now(), attempts: m.Attempts, by: name, req: req})
		if !req {
			s.fins[body]++
		}
		s.mu.Unlock()
		if req {
			m.DisableAutoResponse()
			m.RequeueWithoutBackoff(time.Duration(rand.IntN(200)) * time.Millisecond)
		}
		return nil
	}
}

// TestReplicationLedgerFollowerConsumers: go-nsq consumers pinned to
// replicas that are followers at the start (ConnectToNSQD, no lookupd)
// FIN or REQ (one in five, with a delay) what the relays deliver while
// producers publish on all three and the leader is SIGKILLed and restarted
// twice (the second time a replica that a consumer is connected to). The
// ledger: every acknowledged message FIN'd, none invented, a REQ'd message
// comes back with the set's attempts wherever it is delivered, and a
// message delivered again after a FIN only across a failure.
func TestReplicationLedgerFollowerConsumers(t *testing.T) {
	lookupd := clSeedLookupd(t, t.TempDir())
	rs := startReplicaSet(t, lookupd.TCPAddr)
	l := leader(t, rs)
	postOK(t, l.http, "/topic/create?topic=ledger", "/channel/create?topic=ledger&channel=pinned")
	caughtUp(t, rs, l)

	sl := &settleLedger{delivered: map[string][]settlement{}, fins: map[string]int{}}
	for _, r := range rs {
		if r == l {
			continue
		}
		cfg := nsq.NewConfig()
		cfg.MaxInFlight = 20
		cfg.LookupdPollInterval = 300 * time.Millisecond // the reconnect interval without lookupd
		name := fmt.Sprintf("consumer@%d", r.id)
		connect(t, newConsumer(t, "ledger", "pinned", cfg, sl.handler(name)), r.tcp)
	}

	lg := newLedger()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 {
		publisher(t, fmt.Sprintf("p%d", i), rs, i, lg, stop, &wg)
	}
	ackedCount := func() int { lg.mu.Lock(); defer lg.mu.Unlock(); return len(lg.acked) }
	waitAcks := func(more int, what string) {
		t.Helper()
		target := ackedCount() + more
		nsqtest.Eventually(t, 20*time.Second, func() bool { return ackedCount() >= target }, what)
	}
	waitAcks(200, "first acknowledgements")
	for round := range 2 {
		l := leader(t, rs)
		sl.event()
		l.kill()
		t.Logf("round %d: SIGKILLed leader %d", round, l.id)
		leader(t, rs)
		waitAcks(50, "publishes resume after the kill")
		sl.event()
		l.start(t)
		caughtUp(t, rs, leader(t, rs))
		waitAcks(150, "acknowledgements with the old leader back")
	}
	// A calm phase, longer than the window below, so that attempts and
	// REQs are checked away from any failure too.
	sl.mu.Lock()
	last := sl.events[len(sl.events)-1]
	sl.mu.Unlock()
	calm := ackedCount() + 300
	nsqtest.Eventually(t, 30*time.Second, func() bool { return ackedCount() >= calm && time.Since(last) > 3*settleWindow },
		"acknowledgements with no failure")
	close(stop)
	wg.Wait()

	finished := func() (missing []string) {
		lg.mu.Lock()
		defer lg.mu.Unlock()
		sl.mu.Lock()
		defer sl.mu.Unlock()
		for b := range lg.acked {
			if sl.fins[b] == 0 {
				missing = append(missing, b)
			}
		}
		return missing
	}
	var missing []string
	nsqtest.Eventually(t, 60*time.Second, func() bool { missing = finished(); return len(missing) == 0 }, "every acknowledged message FIN'd")

	lg.mu.Lock()
	defer lg.mu.Unlock()
	sl.mu.Lock()
	defer sl.mu.Unlock()
	const window = settleWindow
	var deliveries, reqs, checked, moved, dups, unacked int
	by := map[string]int{}
	for b, ds := range sl.delivered {
		if !lg.attempted[b] {
			t.Errorf("delivered %q, which no producer sent", b)
		}
		if !lg.acked[b] {
			unacked++
		}
		var firstFIN *settlement
		for i, d := range ds {
			deliveries++
			by[d.by]++
			if d.req {
				reqs++
			}
			if firstFIN != nil {
				dups++
				if !sl.near(firstFIN.at.Add(-window), d.at) {
					t.Errorf("%q delivered to %s at %s after its FIN at %s by %s, with no failure in between",
						b, d.by, d.at.Format("15:04:05.000"), firstFIN.at.Format("15:04:05.000"), firstFIN.by)
				}
			}
			if !d.req && firstFIN == nil {
				firstFIN = &ds[i]
			}
			// The set's attempts: one per delivery so far, unless a
			// failure may have cut a delivery or a REQ short.
			if !sl.near(ds[0].at.Add(-window), d.at) {
				checked++
				if int(d.attempts) != i+1 {
					t.Errorf("%q delivered to %s with attempts %d, its delivery number %d (deliveries %+v)", b, d.by, d.attempts, i+1, ds)
				}
				if i > 0 && ds[i-1].req && ds[i-1].by != d.by {
					moved++ // REQ'd on one replica, delivered again through another
				}
			}
		}
	}
	t.Logf("ledger: %d attempted, %d acknowledged, %d distinct delivered (%d not acknowledged: publishes that failed at the client yet were committed), "+
		"%d deliveries by consumer %v, %d REQs, %d deliveries' attempts checked, %d REQ'd messages delivered again through the other replica, "+
		"%d deliveries after a FIN (each across a failure)",
		len(lg.attempted), len(lg.acked), len(sl.delivered), unacked, deliveries, by, reqs, checked, moved, dups)
	if len(by) != 2 || reqs == 0 || checked < reqs/2 {
		t.Errorf("want deliveries to both pinned consumers, REQs and their attempts checked: %v, %d REQs, %d checked", by, reqs, checked)
	}
	// A REQ is the set's: the leader delivers the message again, through
	// either follower (a REQ kept on its replica never moves).
	if moved == 0 {
		t.Errorf("no REQ'd message was delivered again through the other replica")
	}
	if dups > len(lg.acked)/4 {
		t.Errorf("%d duplicates for %d acknowledged messages", dups, len(lg.acked))
	}
}

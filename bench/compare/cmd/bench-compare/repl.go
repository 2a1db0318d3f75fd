package main

// The replicated suite (-replicated, issue 15): three of our nsqd as one
// replica set, our nsqd --durable alone, and NATS JetStream R3 (three
// nats-server v2.15.3, file storage) with sync_interval "always" and with its
// default, side by side in interleaved rounds. Each run starts fresh
// processes with fresh data directories on loopback, publishes to the leader
// (the stream leader for JetStream), counts the acknowledged messages and
// checks that the servers hold exactly that many.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// replSystem is one of the four set-ups the suite compares.
type replSystem struct {
	name  string // column heading
	key   string
	start func(ctx context.Context, b replBins) (cluster, error)
}

type replBins struct{ nsqd, nats string }

// cluster is a running set-up: where to publish and how to count.
type cluster interface {
	// mpub publishes MPUB-like batches from conns connections for d.
	mpub(ctx context.Context, c *config, d time.Duration) (pubResult, error)
	// syncPub publishes one message at a time, waiting for each ack, for d.
	syncPub(ctx context.Context, c *config, d time.Duration) (pubResult, error)
	// count returns how many messages the servers hold (on every replica
	// where that is visible) once they agree, or an error.
	count(ctx context.Context, want int64) error
	// failover kills the leader and returns the time to the first
	// acknowledged publish through another server.
	failover(ctx context.Context, c *config) (time.Duration, error)
	stop()
}

var replSystems = []replSystem{
	{name: "replica set of 3 (ours)", key: "repl", start: startReplicaSet},
	{name: "--durable single node (ours)", key: "durable", start: startDurable},
	{name: "JetStream R3, sync always", key: "js-always", start: func(ctx context.Context, b replBins) (cluster, error) {
		return startJetStream(ctx, b.nats, true)
	}},
	{name: "JetStream R3, default sync", key: "js-default", start: func(ctx context.Context, b replBins) (cluster, error) {
		return startJetStream(ctx, b.nats, false)
	}},
}

// replWorkload is one kind of run of the suite.
type replWorkload struct {
	key, label string
	unit       string
	higher     bool
	systems    []string // keys of the systems it runs on
	run        func(ctx context.Context, cl cluster, c *config) (float64, error)
}

var replWorkloads = []replWorkload{
	{
		key: "mpub", label: "MPUB 200 × 200 B, 2 conns, 4 batches in flight each", unit: "msgs/s", higher: true,
		systems: []string{"repl", "durable", "js-always", "js-default"},
		run: func(ctx context.Context, cl cluster, c *config) (float64, error) {
			r, err := cl.mpub(ctx, c, c.duration)
			if err != nil {
				return 0, invalid(err)
			}
			if err := cl.count(ctx, r.acked); err != nil {
				return 0, invalid(err)
			}
			return float64(r.acked) / r.elapsed.Seconds(), nil
		},
	},
	{
		key: "pub1", label: "one synchronous PUB connection", unit: "msgs/s", higher: true,
		systems: []string{"repl", "durable", "js-always", "js-default"},
		run: func(ctx context.Context, cl cluster, c *config) (float64, error) {
			r, err := cl.syncPub(ctx, c, c.duration)
			if err != nil {
				return 0, invalid(err)
			}
			if err := cl.count(ctx, r.acked); err != nil {
				return 0, invalid(err)
			}
			return float64(r.acked) / r.elapsed.Seconds(), nil
		},
	},
	{
		key: "failover", label: "failover: leader SIGKILL → first acked publish via another server", unit: "s", higher: false,
		systems: []string{"repl", "js-always", "js-default"},
		run: func(ctx context.Context, cl cluster, c *config) (float64, error) {
			d, err := cl.failover(ctx, c)
			return d.Seconds(), err
		},
	},
}

// runReplicated runs the suite and prints its table.
func runReplicated(ctx context.Context, bins replBins, c *config, rounds int, which string) {
	var workloads []replWorkload
	for _, w := range replWorkloads {
		if which == "all" || slices.Contains(strings.Split(which, ","), w.key) {
			workloads = append(workloads, w)
		}
	}
	if len(workloads) == 0 {
		fmt.Fprintln(os.Stderr, "bench-compare: -replicated takes -scenarios mpub,pub1,failover or all")
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "bench-compare -replicated: %d round(s), %v per throughput run\n", rounds, c.duration)
	load0 := loadAvg()
	began := time.Now()
	results := map[string]map[string][]runResult{} // workload, system
	for _, w := range workloads {
		results[w.key] = map[string][]runResult{}
		for r := 1; r <= rounds && ctx.Err() == nil; r++ {
			for _, sys := range replSystems {
				if !slices.Contains(w.systems, sys.key) || ctx.Err() != nil {
					continue
				}
				res := runRepl(ctx, w, sys, bins, c)
				results[w.key][sys.key] = append(results[w.key][sys.key], res)
				desc := fmt.Sprintf("%s=%.4g", w.unit, res.metrics["v"])
				if res.err != nil {
					desc = "FAILED: " + res.err.Error()
					if isInvalid(res.err) {
						desc = "INVALID: " + res.err.Error()
					}
				}
				fmt.Fprintf(os.Stderr, "  %-9s round %d %-11s %s  (%v)\n", w.key, r, sys.key, desc, res.elapsed.Round(100*time.Millisecond))
			}
		}
	}
	if ctx.Err() != nil {
		os.Exit(130)
	}
	fmt.Fprintf(os.Stderr, "bench-compare: done in %v\n\n", time.Since(began).Round(time.Second))
	fmt.Printf("Load average (1, 5, 15 min) at start %s, at end %s.\n", load0, loadAvg())
	fmt.Printf("Medians of %d interleaved round(s); [min–max] over the rounds.\n\n", rounds)
	fmt.Print("| run |")
	for _, s := range replSystems {
		fmt.Printf(" %s |", s.name)
	}
	fmt.Println(" set / JS always | set / JS default |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	var problems []string
	for _, w := range workloads {
		med := map[string]float64{}
		fmt.Printf("| %s (%s) |", w.label, w.unit)
		for _, s := range replSystems {
			rs := results[w.key][s.key]
			if !slices.Contains(w.systems, s.key) {
				fmt.Print(" – |")
				continue
			}
			v, _, errCell := summarize(rs, "v")
			if errCell != "" {
				fmt.Printf(" %s |", errCell)
			} else {
				med[s.key] = v
				var vs []float64
				for _, r := range rs {
					vs = append(vs, r.metrics["v"])
				}
				fmt.Printf(" %s [%s–%s] |", fmtRepl(v, w.unit), fmtRepl(slices.Min(vs), w.unit), fmtRepl(slices.Max(vs), w.unit))
			}
			for i, r := range rs {
				if r.err != nil {
					problems = append(problems, fmt.Sprintf("%s, %s, round %d: %v", w.key, s.key, i+1, r.err))
				}
			}
		}
		for _, js := range []string{"js-always", "js-default"} {
			if a, b := med["repl"], med[js]; a > 0 && b > 0 {
				fmt.Printf(" %.2f |", a/b)
			} else {
				fmt.Print(" – |")
			}
		}
		fmt.Println()
	}
	if len(problems) > 0 {
		fmt.Println("\nRuns that did not count:")
		for _, p := range problems {
			fmt.Println("- " + p)
		}
	}
}

func fmtRepl(v float64, unit string) string {
	if unit == "s" {
		return fmt.Sprintf("%.2f", v)
	}
	return fmtRate(v)
}

func runRepl(ctx context.Context, w replWorkload, sys replSystem, bins replBins, c *config) runResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cl, err := sys.start(ctx, bins)
	if err != nil {
		return runResult{err: err, elapsed: time.Since(start)}
	}
	defer cl.stop()
	v, err := w.run(ctx, cl, c)
	return runResult{metrics: map[string]float64{"v": v}, err: err, elapsed: time.Since(start)}
}

// ---- our nsqd: a replica set of three, or one --durable ----

type nsqdCluster struct {
	servers []*server
	ids     []string // replication IDs; nil for the single --durable node
	leader  int
}

const replTopic, replChannel = "bench", "ch"

func startDurable(ctx context.Context, b replBins) (cluster, error) {
	s, err := startServer(ctx, "durable", b.nsqd, -1, "--durable")
	if err != nil {
		return nil, err
	}
	cl := &nsqdCluster{servers: []*server{s}}
	if err := s.createChannel(replTopic, replChannel); err != nil {
		cl.stop()
		return nil, err
	}
	return cl, nil
}

func startReplicaSet(ctx context.Context, b replBins) (cluster, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	var peers []string
	cl := &nsqdCluster{}
	for i, p := range ports {
		cl.ids = append(cl.ids, "r"+strconv.Itoa(i+1))
		peers = append(peers, fmt.Sprintf("r%d@127.0.0.1:%d", i+1, p))
	}
	for i, p := range ports {
		s, err := startServer(ctx, "replica", b.nsqd, -1,
			"--node-id="+strconv.Itoa(i+1),
			"--replication-id="+cl.ids[i],
			"--replication-address=127.0.0.1:"+strconv.Itoa(p),
			"--replication-peers="+strings.Join(peers, ","))
		if err != nil {
			cl.stop()
			return nil, err
		}
		cl.servers = append(cl.servers, s)
	}
	if err := cl.findLeader(ctx, -1, 30*time.Second); err != nil {
		cl.stop()
		return nil, err
	}
	if err := cl.servers[cl.leader].createChannel(replTopic, replChannel); err != nil {
		cl.stop()
		return nil, err
	}
	return cl, nil
}

type replStats struct {
	ID            string `json:"id"`
	Role          string `json:"role"`
	Dispatching   bool   `json:"dispatching"`
	LeaderID      string `json:"leader_id"`
	LastMessageID int64  `json:"last_message_id"`
}

func (s *server) replication() (replStats, error) {
	var st replStats
	b, err := s.get("/replication")
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	return st, err
}

// findLeader waits until a live replica other than skip says it is the
// dispatching leader.
func (cl *nsqdCluster) findLeader(ctx context.Context, skip int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		for i, s := range cl.servers {
			if i == skip {
				continue
			}
			if st, err := s.replication(); err == nil && st.Role == "leader" && st.Dispatching {
				cl.leader = i
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no dispatching leader in the replica set")
}

func (cl *nsqdCluster) mpub(ctx context.Context, c *config, d time.Duration) (pubResult, error) {
	alloc := &seqAlloc{limit: roundDown(c.maxMsgs, c.batch)}
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return publish(pctx, cl.servers[cl.leader].tcpAddr, replTopic, 2, c.batch, c.size, c.outstanding, alloc)
}

func (cl *nsqdCluster) syncPub(ctx context.Context, c *config, d time.Duration) (pubResult, error) {
	cn, err := dialV2(ctx, cl.servers[cl.leader].tcpAddr)
	if err != nil {
		return pubResult{}, err
	}
	defer cn.Close()
	frame := pubFrame(replTopic, c.size, 0)
	start := time.Now()
	var n int64
	for time.Since(start) < d && ctx.Err() == nil {
		setPubSeq(frame, c.size, uint64(n))
		cn.w.Write(frame)
		if err := cn.w.Flush(); err != nil {
			return pubResult{acked: n}, err
		}
		if err := cn.expectOK("PUB"); err != nil {
			return pubResult{acked: n}, err
		}
		n++
	}
	return pubResult{acked: n, issued: n, elapsed: time.Since(start)}, nil
}

// pubFrame is a PUB command of one size-byte body numbered seq.
func pubFrame(topic string, size int, seq uint64) []byte {
	b := fmt.Appendf(nil, "PUB %s\n", topic)
	b = append(b, byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
	body := make([]byte, size)
	fillBody(body, seq)
	return append(b, body...)
}

func setPubSeq(frame []byte, size int, seq uint64) {
	body := frame[len(frame)-size:]
	for i := range 8 {
		body[bodySeq+i] = byte(seq >> (56 - 8*i))
	}
}

// count waits until the leader's channel holds want messages and every
// replica has given out want message IDs (applied every publish).
func (cl *nsqdCluster) count(ctx context.Context, want int64) error {
	leader := cl.servers[cl.leader]
	chans, err := leader.waitChannels(replTopic, 30*time.Second, func(cs []channelStats) bool {
		return len(cs) == 1 && cs[0].Depth+cs[0].InFlight == want
	})
	if err != nil {
		return fmt.Errorf("%d acknowledged, the leader's /stats shows %+v: %v", want, chans, err)
	}
	if cl.ids == nil {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for i, s := range cl.servers {
		for {
			st, err := s.replication()
			if err == nil && st.LastMessageID == want {
				break
			}
			if err == nil && st.LastMessageID > want {
				return fmt.Errorf("replica %s gave out %d message IDs, %d acknowledged", cl.ids[i], st.LastMessageID, want)
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("replica %s: last_message_id %d, %d acknowledged (%v)", cl.ids[i], st.LastMessageID, want, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// failover publishes one message, SIGKILLs the leader and publishes through
// a follower (a fresh connection per attempt) until one is acknowledged.
func (cl *nsqdCluster) failover(ctx context.Context, c *config) (time.Duration, error) {
	if cl.ids == nil {
		return 0, errors.New("not a replica set")
	}
	via := cl.servers[(cl.leader+1)%len(cl.servers)]
	frame := pubFrame(replTopic, c.size, 0)
	try := func(timeout time.Duration) error {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cn, err := dialV2(cctx, via.tcpAddr)
		if err != nil {
			return err
		}
		defer cn.Close()
		cn.c.SetDeadline(time.Now().Add(timeout))
		cn.w.Write(frame)
		if err := cn.w.Flush(); err != nil {
			return err
		}
		return cn.expectOK("PUB")
	}
	if err := try(10 * time.Second); err != nil {
		return 0, fmt.Errorf("before failover: %w", err)
	}
	old := cl.leader
	start := time.Now()
	cl.servers[old].cmd.Process.Kill()
	for {
		err := try(10 * time.Second)
		if err == nil {
			break
		}
		if time.Since(start) > 60*time.Second || ctx.Err() != nil {
			return 0, fmt.Errorf("no acknowledged publish 60s after the leader was killed: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := time.Since(start)
	if err := cl.findLeader(ctx, old, 30*time.Second); err != nil {
		return 0, err
	}
	// Both acknowledged messages are in the new leader's channel.
	if _, err := cl.servers[cl.leader].waitChannels(replTopic, 30*time.Second, func(cs []channelStats) bool {
		return len(cs) == 1 && cs[0].Depth+cs[0].InFlight >= 2
	}); err != nil {
		return 0, fmt.Errorf("after failover the new leader does not hold both messages: %v", err)
	}
	return d, nil
}

func (cl *nsqdCluster) stop() {
	for _, s := range cl.servers {
		s.stop()
	}
}

// ---- NATS JetStream R3 ----

type jsCluster struct {
	procs  []*server // nats-server processes; tcpAddr is the client port
	names  []string
	leader int // index of the stream leader
}

const jsStream, jsSubject = "BENCH", "bench"

func startJetStream(ctx context.Context, bin string, always bool) (cluster, error) {
	ports, err := freePorts(6) // client and cluster port of each
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+i]))
	}
	cl := &jsCluster{}
	for i := range 3 {
		name := "n" + strconv.Itoa(i+1)
		s, err := startNATS(ctx, bin, name, ports[i], ports[3+i], routes, always)
		if err != nil {
			cl.stop()
			return nil, err
		}
		cl.procs = append(cl.procs, s)
		cl.names = append(cl.names, name)
	}
	// Create the R3 stream once the meta group has a leader and three peers.
	nc, err := nats.Connect("nats://"+cl.procs[0].tcpAddr, nats.MaxReconnects(-1))
	if err != nil {
		cl.stop()
		return nil, err
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		cl.stop()
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		si, err := js.AddStream(&nats.StreamConfig{
			Name: jsStream, Subjects: []string{jsSubject},
			Replicas: 3, Storage: nats.FileStorage,
		})
		if err == nil && si.Cluster != nil && si.Cluster.Leader != "" {
			if i := slices.Index(cl.names, si.Cluster.Leader); i >= 0 {
				cl.leader = i
				return cl, nil
			}
		}
		if err == nil {
			si, err = js.StreamInfo(jsStream)
			if err == nil && si.Cluster != nil {
				if i := slices.Index(cl.names, si.Cluster.Leader); i >= 0 {
					cl.leader = i
					return cl, nil
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			cl.stop()
			return nil, fmt.Errorf("JetStream R3 stream not created in 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startNATS(ctx context.Context, bin, name string, port, clusterPort int, routes []string, always bool) (*server, error) {
	dir, err := os.MkdirTemp("", "bench-compare-nats-")
	if err != nil {
		return nil, err
	}
	sync := ""
	if always {
		sync = "\n  sync_interval: always"
	}
	conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream {
  store_dir: %q%s
}
cluster {
  name: bench
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, port, dir+"/js", sync, clusterPort, strings.Join(routes, ", "))
	if err := os.WriteFile(dir+"/server.conf", []byte(conf), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logf, err := os.Create(dir + "/server.log")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logf.Close()
	s := &server{impl: "nats", dir: dir, tcpAddr: "127.0.0.1:" + strconv.Itoa(port), exited: make(chan struct{}), logFile: dir + "/server.log"}
	if err := s.launch(exec.Command(bin, "-c", dir+"/server.conf"), logf); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-s.exited:
			err := fmt.Errorf("nats-server exited at start (%v): %s", s.waitErr, s.logTail())
			s.stop()
			return nil, err
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if listensOn(s.cmd.Process.Pid, port) {
			if c, err := net.DialTimeout("tcp", s.tcpAddr, time.Second); err == nil {
				c.Close()
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("nats-server did not listen in 20s: %s", s.logTail())
			s.stop()
			return nil, err
		}
	}
}

func (cl *jsCluster) connect(i int, opts ...nats.JSOpt) (*nats.Conn, nats.JetStreamContext, error) {
	nc, err := nats.Connect("nats://"+cl.procs[i].tcpAddr, nats.MaxReconnects(0))
	if err != nil {
		return nil, nil, err
	}
	js, err := nc.JetStream(opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// mpub is the JetStream counterpart of MPUB: per connection, batches of
// c.batch asynchronous publishes, at most c.outstanding batches not yet
// fully acknowledged; a batch counts when all its acks are in.
func (cl *jsCluster) mpub(ctx context.Context, c *config, d time.Duration) (pubResult, error) {
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		wg     sync.WaitGroup
		acked  atomic.Int64
		issued atomic.Int64
		errMu  sync.Mutex
		first  error
	)
	start := time.Now()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cl.mpubConn(pctx, c, &acked, &issued); err != nil {
				errMu.Lock()
				if first == nil {
					first = err
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	res := pubResult{acked: acked.Load(), issued: issued.Load(), elapsed: time.Since(start)}
	if first == nil && res.acked != res.issued {
		first = fmt.Errorf("published %d messages, %d acknowledged", res.issued, res.acked)
	}
	return res, first
}

func (cl *jsCluster) mpubConn(ctx context.Context, c *config, acked, issued *atomic.Int64) error {
	nc, js, err := cl.connect(cl.leader, nats.PublishAsyncMaxPending(c.batch*c.outstanding))
	if err != nil {
		return err
	}
	defer nc.Close()
	// slots holds a token per batch published and not yet fully
	// acknowledged, so the client never has more than its maximum pending.
	slots := make(chan struct{}, c.outstanding)
	batches := make(chan []nats.PubAckFuture, c.outstanding)
	ackErr := make(chan error, 1)
	go func() {
		defer close(ackErr)
		for b := range batches {
			for _, f := range b {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					ackErr <- err
					for range batches {
					}
					return
				case <-time.After(30 * time.Second):
					ackErr <- errors.New("no ack in 30s")
					for range batches {
					}
					return
				}
			}
			acked.Add(int64(len(b)))
			<-slots
		}
	}()
	body := make([]byte, c.size)
	var seq uint64
	var perr error
	for ctx.Err() == nil && perr == nil {
		select {
		case slots <- struct{}{}:
		case err := <-ackErr:
			perr = err
			continue
		case <-ctx.Done():
			continue
		}
		b := make([]nats.PubAckFuture, 0, c.batch)
		for range c.batch {
			fillBody(body, seq)
			seq++
			f, err := js.PublishAsync(jsSubject, body)
			if err != nil {
				perr = err
				break
			}
			b = append(b, f)
		}
		issued.Add(int64(len(b)))
		select {
		case batches <- b:
		case err := <-ackErr:
			perr = err
		}
	}
	close(batches)
	if err := <-ackErr; err != nil && perr == nil {
		perr = err
	}
	return perr
}

func (cl *jsCluster) syncPub(ctx context.Context, c *config, d time.Duration) (pubResult, error) {
	nc, js, err := cl.connect(cl.leader)
	if err != nil {
		return pubResult{}, err
	}
	defer nc.Close()
	body := make([]byte, c.size)
	start := time.Now()
	var n int64
	for time.Since(start) < d && ctx.Err() == nil {
		fillBody(body, uint64(n))
		if _, err := js.Publish(jsSubject, body); err != nil {
			return pubResult{acked: n}, err
		}
		n++
	}
	return pubResult{acked: n, issued: n, elapsed: time.Since(start)}, nil
}

// count checks the stream's message count as its leader reports it, and
// that every replica is current.
func (cl *jsCluster) count(ctx context.Context, want int64) error {
	nc, js, err := cl.connect(cl.leader)
	if err != nil {
		return err
	}
	defer nc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		si, err := js.StreamInfo(jsStream)
		if err == nil && int64(si.State.Msgs) == want && si.Cluster != nil && len(si.Cluster.Replicas) == 2 &&
			!slices.ContainsFunc(si.Cluster.Replicas, func(p *nats.PeerInfo) bool { return !p.Current || p.Lag != 0 }) {
			return nil
		}
		if err == nil && int64(si.State.Msgs) > want {
			return fmt.Errorf("stream holds %d messages, %d acknowledged", si.State.Msgs, want)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = fmt.Errorf("stream holds %d messages (%d acknowledged), replicas %+v", si.State.Msgs, want, si.Cluster)
			}
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failover publishes one message, SIGKILLs the stream leader's server and
// publishes through another server (connected before the kill) until one is
// acknowledged.
func (cl *jsCluster) failover(ctx context.Context, c *config) (time.Duration, error) {
	via := (cl.leader + 1) % len(cl.procs)
	nc, js, err := cl.connect(via)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	body := make([]byte, c.size)
	fillBody(body, 0)
	if _, err := js.Publish(jsSubject, body); err != nil {
		return 0, fmt.Errorf("before failover: %w", err)
	}
	start := time.Now()
	cl.procs[cl.leader].cmd.Process.Kill()
	for {
		_, err := js.Publish(jsSubject, body, nats.AckWait(time.Second))
		if err == nil {
			break
		}
		if time.Since(start) > 60*time.Second || ctx.Err() != nil {
			return 0, fmt.Errorf("no acknowledged publish 60s after the leader was killed: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := time.Since(start)
	si, err := js.StreamInfo(jsStream)
	if err != nil {
		return 0, err
	}
	if si.State.Msgs < 2 {
		return 0, fmt.Errorf("after failover the stream holds %d messages, 2 acknowledged", si.State.Msgs)
	}
	return d, nil
}

func (cl *jsCluster) stop() {
	for _, s := range cl.procs {
		s.stop()
	}
}

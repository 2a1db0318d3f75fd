package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is one nsqd process with its own temporary directory (data/ and
// nsqd.log), on free loopback ports.
type server struct {
	impl     string // "ours" or "baseline"
	cmd      *exec.Cmd
	dir      string
	tcpAddr  string
	httpAddr string
	exited   chan struct{}
	waitErr  error
	http     *http.Client
	logFile  string // the process's stdout and stderr
}

// live holds the running servers so a signal can kill them all.
var live struct {
	sync.Mutex
	m map[*server]bool
}

func killLive() {
	live.Lock()
	defer live.Unlock()
	for s := range live.m {
		s.cmd.Process.Kill()
	}
}

// startServer runs bin on fresh ports and a fresh data dir and waits for
// GET /ping. A port taken in between is retried.
func startServer(ctx context.Context, impl, bin string, memQueue int64, extra ...string) (*server, error) {
	var err error
	for range 3 {
		var s *server
		if s, err = tryStart(ctx, impl, bin, memQueue, extra); err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

func tryStart(ctx context.Context, impl, bin string, memQueue int64, extra []string) (*server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-compare-"+impl+"-")
	if err != nil {
		return nil, err
	}
	data := dir + "/data"
	if err := os.Mkdir(data, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logf, err := os.Create(dir + "/nsqd.log")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logf.Close()
	s := &server{
		impl:     impl,
		dir:      dir,
		tcpAddr:  "127.0.0.1:" + strconv.Itoa(ports[0]),
		httpAddr: "127.0.0.1:" + strconv.Itoa(ports[1]),
		exited:   make(chan struct{}),
		logFile:  dir + "/nsqd.log",
		http: &http.Client{
			Timeout:   60 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		},
	}
	args := []string{
		"--tcp-address=" + s.tcpAddr,
		"--http-address=" + s.httpAddr,
		"--data-path=" + data,
	}
	if memQueue >= 0 {
		args = append(args, "--mem-queue-size="+strconv.FormatInt(memQueue, 10))
	}
	args = append(args, extra...)
	if err := s.launch(exec.Command(bin, args...), logf); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.exited:
			err := fmt.Errorf("%s nsqd exited at start (%v): %s", impl, s.waitErr, s.logTail())
			s.stop()
			return nil, err
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		pid := s.cmd.Process.Pid
		if listensOn(pid, ports[0]) && listensOn(pid, ports[1]) {
			if body, err := s.get("/ping"); err == nil && strings.TrimSpace(string(body)) == "OK" {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("%s nsqd did not answer /ping in 15s: %s", impl, s.logTail())
			s.stop()
			return nil, err
		}
	}
}

// stop kills the process (SIGKILL: the data dir is thrown away, so there is
// nothing to flush) and removes its directory.
func (s *server) stop() {
	s.cmd.Process.Kill()
	<-s.exited
	live.Lock()
	delete(live.m, s)
	live.Unlock()
	if s.http != nil {
		s.http.CloseIdleConnections()
	}
	os.RemoveAll(s.dir)
}

// alive fails when the process has exited.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("%s nsqd exited (%v): %s", s.impl, s.waitErr, s.logTail())
	default:
		return nil
	}
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logFile)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

func (s *server) get(path string) ([]byte, error) {
	return s.do(http.MethodGet, path)
}

func (s *server) post(path string) error {
	_, err := s.do(http.MethodPost, path)
	return err
}

func (s *server) do(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, "http://"+s.httpAddr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s %s", method, path, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// createChannel creates topic and then topic/channel over HTTP.
func (s *server) createChannel(topic, channel string) error {
	if err := s.post("/topic/create?topic=" + url.QueryEscape(topic)); err != nil {
		return err
	}
	return s.post("/channel/create?topic=" + url.QueryEscape(topic) + "&channel=" + url.QueryEscape(channel))
}

type channelStats struct {
	Name        string `json:"channel_name"`
	Depth       int64  `json:"depth"`
	InFlight    int64  `json:"in_flight_count"`
	Deferred    int64  `json:"deferred_count"`
	ClientCount int    `json:"client_count"`
}

type topicStats struct {
	Name     string         `json:"topic_name"`
	Depth    int64          `json:"depth"`
	Channels []channelStats `json:"channels"`
}

// stats returns /stats?format=json for topic ("" for all), without clients.
func (s *server) stats(topic string) ([]topicStats, error) {
	path := "/stats?format=json&include_clients=false"
	if topic != "" {
		path += "&topic=" + url.QueryEscape(topic)
	}
	body, err := s.get(path)
	if err != nil {
		return nil, err
	}
	var v struct {
		Topics []topicStats `json:"topics"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("/stats: %w", err)
	}
	return v.Topics, nil
}

// waitChannels polls the stats of topic until ok accepts its channels.
func (s *server) waitChannels(topic string, timeout time.Duration, ok func([]channelStats) bool) ([]channelStats, error) {
	deadline := time.Now().Add(timeout)
	for {
		ts, err := s.stats(topic)
		if err != nil {
			return nil, err
		}
		var chans []channelStats
		for _, t := range ts {
			if t.Name == topic {
				chans = t.Channels
			}
		}
		if ok(chans) {
			return chans, nil
		}
		if time.Now().After(deadline) {
			return chans, errors.New("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drained checks that every channel of topic ends with nothing queued or in
// flight once the consumers are done.
func (s *server) drained(topic string) error {
	chans, err := s.waitChannels(topic, 3*time.Second, func(cs []channelStats) bool {
		for _, c := range cs {
			if c.Depth != 0 || c.InFlight != 0 || c.Deferred != 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("after delivery, /stats shows %+v: %v", chans, err)
	}
	return nil
}

// memory is what /proc/<pid>/status says, in bytes.
type memory struct{ rss, hwm int64 }

func (s *server) memory() (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			m.rss = n << 10
		case "VmHWM":
			m.hwm = n << 10
		}
	}
	if m.rss == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", s.cmd.Process.Pid)
	}
	return m, nil
}

// cpuTicks is the process's user+system time in clock ticks.
func (s *server) cpuTicks() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// Fields after the command: state is f[0]; utime and stime are fields
	// 14 and 15 of the whole line, f[11] and f[12] here.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st, nil
}

// settle waits until the process is nearly idle (under 10% of a core over
// half a second) so memory is read after background work, up to timeout.
func (s *server) settle(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cpu, err := s.cpuShare(500 * time.Millisecond); err != nil || cpu < 0.10 {
			return
		}
	}
}

// cpuShare is the share of one core the process used over d.
func (s *server) cpuShare(d time.Duration) (float64, error) {
	prev, err := s.cpuTicks()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	time.Sleep(d)
	cur, err := s.cpuTicks()
	if err != nil {
		return 0, err
	}
	return float64(cur-prev) / clockTicks / time.Since(start).Seconds(), nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on Linux.
const clockTicks = 100

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// listensOn reports whether process pid holds the listening TCP socket of
// 127.0.0.1:port, so a port taken by another process between freePorts and
// the bind is never mistaken for ours.
func listensOn(pid, port int) bool {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	want := fmt.Sprintf("0100007F:%04X", port)
	inode := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) >= 10 && f[1] == want && f[3] == "0A" {
			inode = f[9]
		}
	}
	if inode == "" {
		return false
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && l == "socket:["+inode+"]" {
			return true
		}
	}
	return false
}

// cpuMark is a point in the CPU time of the server and of this process.
type cpuMark struct {
	server int64 // clock ticks
	self   time.Duration
}

func (s *server) markCPU() cpuMark {
	t, _ := s.cpuTicks()
	return cpuMark{server: t, self: selfCPU()}
}

// cpuSince returns the CPU time the server and this process (the load
// generator) used since m.
func (s *server) cpuSince(m cpuMark) (server, self time.Duration) {
	now := s.markCPU()
	return time.Duration(now.server-m.server) * time.Second / clockTicks, now.self - m.self
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// launch starts cmd as s's process, logging to logf, and records it as live
// until it exits (s.exited). The child dies with the harness; it inherits
// RLIMIT_NOFILE as raised in main (syscall.Setrlimit, so os/exec does not
// restore the old one).
func (s *server) launch(cmd *exec.Cmd, logf *os.File) error {
	s.cmd = cmd
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	live.Lock()
	defer live.Unlock()
	if err := s.cmd.Start(); err != nil {
		return err
	}
	if live.m == nil {
		live.m = map[*server]bool{}
	}
	live.m[s] = true
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	return nil
}

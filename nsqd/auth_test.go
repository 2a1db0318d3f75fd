package nsqd

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// openSockets counts this process's open sockets (both ends of in-process
// connections, and listeners).
func openSockets(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("SKIP: counting sockets needs /proc: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// authOnce connects, sends AUTH and reads the answer.
func authOnce(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b := []byte("  V2AUTH\n")
	b = binary.BigEndian.AppendUint32(b, 6)
	b = append(b, "secret"...)
	if _, err := c.Write(b); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	data := make([]byte, binary.BigEndian.Uint32(hdr[:4])-4)
	if _, err := io.ReadFull(r, data); err != nil {
		return err
	}
	if ft := int32(binary.BigEndian.Uint32(hdr[4:])); ft != frameResponse || !strings.Contains(string(data), `"identity":"alice"`) {
		return fmt.Errorf("AUTH answered %d %q", ft, data)
	}
	return nil
}

// Outbound HTTP shares one client per daemon: 1,000 AUTHs leave a few
// kept-alive connections to the auth server (not one each, with their
// goroutines, until the server closes them), and shutdown closes those.
func TestAuthConnectionsBounded(t *testing.T) {
	const auths, workers = 1000, 8
	var open, opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ttl":3600,"identity":"alice","authorizations":[{"topic":".*","channels":[".*"],"permissions":["publish"]}]}`)
	}))
	// No idle timeout on the server: a connection the client keeps stays.
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
			opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	runtime.GC()
	baseGoroutines, baseSockets := runtime.NumGoroutine(), openSockets(t)
	o := testOptions(t)
	o.AuthHTTPAddresses = []string{srv.Listener.Addr().String()}
	n, stop := runNSQD(t, o)

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= auths {
				if err := authOnce(n.TCPAddr().String()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AUTH: %v", err)
	}
	eventually(t, 10*time.Second, func() bool { return len(n.clientList()) == 0 }, "nsqd's clients gone")

	goroutines, sockets := runtime.NumGoroutine()-baseGoroutines, openSockets(t)-baseSockets
	t.Logf("after %d AUTHs (%d at a time): %d connections to the auth server opened, %d still open; "+
		"%d goroutines and %d sockets more than before nsqd started", auths, workers, opened.Load(), open.Load(), goroutines, sockets)
	if got := open.Load(); got > workers {
		t.Errorf("%d connections to the auth server still open after %d AUTHs, want at most %d (the concurrency)", got, auths, workers)
	}
	// nsqd's own listeners and loops, plus a reader and a writer goroutine
	// per kept-alive connection and the server's end of it.
	if max := 20 + 3*workers; goroutines > max {
		t.Errorf("%d more goroutines after %d AUTHs, want at most %d", goroutines, auths, max)
	}
	if max := 4 + 2*workers; sockets > max {
		t.Errorf("%d more open sockets after %d AUTHs, want at most %d", sockets, auths, max)
	}

	stop()
	eventually(t, 10*time.Second, func() bool { return open.Load() == 0 }, "nsqd's connections to the auth server closed at shutdown (%d open)", open.Load())
	eventually(t, 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= baseGoroutines+2 && openSockets(t) <= baseSockets
	}, "goroutines and sockets back to where they were before nsqd started (%d goroutines, %d sockets more)",
		runtime.NumGoroutine()-baseGoroutines, openSockets(t)-baseSockets)
}

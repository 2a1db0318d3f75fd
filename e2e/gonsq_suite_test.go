package e2e

// go-nsq v1.1.0's own test suite as a guard (issue 12, item 9): the client
// library's authors wrote tests against a real nsqd and nsqlookupd, run by
// the test.sh of their module, and those tests must pass against ours as they
// do against NSQ 1.3. A regression that only go-nsq's authors thought of is
// caught here first.
//
// The module comes from the Go module proxy (`go mod download`); its folder
// in the module cache is read-only, so it is copied to a temporary directory
// and `go test` runs there. Its tests hard-code nsqd on 127.0.0.1:4150 (TCP)
// and :4151 (HTTP), and test.sh points nsqd at nsqlookupd on :4160, so the
// daemons run on NSQ's default ports: the test fails, saying which, when one
// of them is taken.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

// goNSQModule is the go-nsq release whose suite runs; it is the version this
// project's go.mod requires.
const goNSQModule = "github.com/nsqio/go-nsq@v1.1.0"

// goNSQMinTests is how many top-level tests go-nsq v1.1.0 has; fewer run
// means the copy or the build went wrong.
const goNSQMinTests = 24

// defaultPortsMu serialises the tests of this package that run daemons on
// NSQ's default ports (4150, 4151, 4160, 4161).
var defaultPortsMu sync.Mutex

// lockDefaultPorts holds defaultPortsMu until the test ends.
func lockDefaultPorts(t *testing.T) {
	t.Helper()
	defaultPortsMu.Lock()
	t.Cleanup(defaultPortsMu.Unlock)
}

func TestGoNSQSuite(t *testing.T) {
	nsqtest.Binary(t, "nsqlookupd") // skips under -short, and when not built
	nsqtest.Binary(t, "nsqd")
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to run go-nsq's tests: %v", err)
	}
	lockDefaultPorts(t)

	// The module, from the module cache or the proxy.
	out, err := exec.CommandContext(t.Context(), "go", "mod", "download", "-json", goNSQModule).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", goNSQModule, err, exitStderr(err))
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: no folder (%v %s):\n%s", goNSQModule, err, mod.Error, out)
	}
	dir := filepath.Join(t.TempDir(), "go-nsq")
	if err := os.CopyFS(dir, os.DirFS(mod.Dir)); err != nil {
		t.Fatalf("copy %s: %v", mod.Dir, err)
	}

	// NSQ's default ports, which go-nsq's tests and test.sh use.
	for _, addr := range []string{"127.0.0.1:4150", "127.0.0.1:4151", "127.0.0.1:4160", "127.0.0.1:4161"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s is taken (%v): go-nsq's tests need nsqd on 127.0.0.1:4150/4151 and nsqlookupd on :4160/4161; "+
				"stop what listens there (ss -ltnp) and run the test again", addr, err)
		}
		l.Close()
	}

	// test.sh: `nsqlookupd`, then `nsqd --data-path=/tmp
	// --lookupd-tcp-address=127.0.0.1:4160 --tls-cert=./test/server.pem
	// --tls-key=./test/server.key --tls-root-ca-file=./test/ca.pem` in the
	// module's folder. Here on loopback only, with a private data dir and
	// the HTTPS listener (unused by the tests) on a free port.
	lookupd := nsqtest.Start(t, dir, "nsqlookupd", "--tcp-address=127.0.0.1:4160", "--http-address=127.0.0.1:4161")
	goNSQWaitPing(t, lookupd, "127.0.0.1:4161")
	nsqd := nsqtest.Start(t, dir, "nsqd",
		"--tcp-address=127.0.0.1:4150", "--http-address=127.0.0.1:4151", "--https-address="+nsqtest.FreeAddr(t),
		"--data-path="+t.TempDir(), "--lookupd-tcp-address=127.0.0.1:4160",
		"--tls-cert=./test/server.pem", "--tls-key=./test/server.key", "--tls-root-ca-file=./test/ca.pem")
	goNSQWaitPing(t, nsqd, "127.0.0.1:4151")

	// test.sh: go test -v -timeout 60s (a little longer here: the machines
	// running make test are small and busy). -json to count the results.
	goTest := func(args ...string) (ran, passed, failed, skipped []string, output string, err error) {
		cmd := exec.CommandContext(t.Context(), "go", append([]string{"test", "-json", "-count=1", "-timeout=120s"}, args...)...)
		cmd.Dir = dir
		// The copy is its own module: no workspace, and go.sum entries it
		// lacks may be added.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		ran, passed, failed, skipped, output = goNSQResults(t, out)
		return ran, passed, failed, skipped, output + stderr.String(), err
	}
	start := time.Now()
	ran, passed, failed, skipped, output, err := goTest(".")
	if len(ran) < goNSQMinTests {
		t.Fatalf("go-nsq's suite ran %d tests, want at least %d; go test: %v\n%s", len(ran), goNSQMinTests, err, output)
	}
	t.Logf("go-nsq %s: %d of %d tests passed in %v", goNSQModule, len(passed), len(ran), time.Since(start).Round(time.Millisecond))
	if len(skipped) > 0 {
		t.Errorf("go-nsq's suite skipped %q", skipped)
	}

	// Some of go-nsq's tests (those in its mock_test.go, which run against
	// a scripted fake nsqd of their own) allow the client a few hundred
	// milliseconds, which a busy machine can miss. A test that did not pass
	// gets two more runs on its own; it must pass in one of them.
	notPassed := func() []string {
		var names []string
		for _, name := range ran {
			if !slices.Contains(passed, name) && !slices.Contains(skipped, name) {
				names = append(names, name)
			}
		}
		return names
	}
	for retry := 1; retry <= 2 && len(notPassed()) > 0; retry++ {
		names := notPassed()
		t.Logf("go-nsq's suite: %q did not pass (go test: %v); running them again (attempt %d of 3):\n%s", names, err, retry+1, output)
		var again []string
		_, again, failed, _, output, err = goTest("-run=^("+strings.Join(names, "|")+")$", ".")
		passed = append(passed, again...)
	}
	if names := notPassed(); len(names) > 0 {
		t.Errorf("go-nsq's suite: %d of %d passed; %q failed three times (last: failed %q, go test: %v)\n%s",
			len(ran)-len(names), len(ran), names, failed, err, output)
		t.Logf("nsqd's output:\n%s", nsqd.Output())
	} else {
		t.Logf("go-nsq's suite: %d of %d passed", len(passed), len(ran))
	}

	// The suite ran against this nsqd: its topics are here.
	stats := (&nsqtest.NSQD{Process: nsqd, HTTPAddr: "127.0.0.1:4151"}).Stats(t)
	if len(stats.Topics) == 0 {
		t.Errorf("nsqd on 127.0.0.1:4151 has no topics after go-nsq's suite")
	}
}

// goNSQResults reads `go test -json` output: the top-level tests that ran,
// passed, failed and were skipped, and the text the tests printed.
func goNSQResults(t *testing.T, jsonOut []byte) (ran, passed, failed, skipped []string, output string) {
	t.Helper()
	var text strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(jsonOut))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var ev struct{ Action, Test, Output string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			text.WriteString(sc.Text() + "\n") // a build error, say
			continue
		}
		text.WriteString(ev.Output)
		if ev.Test == "" || strings.Contains(ev.Test, "/") {
			continue
		}
		switch ev.Action {
		case "run":
			ran = append(ran, ev.Test)
		case "pass":
			passed = append(passed, ev.Test)
		case "fail":
			failed = append(failed, ev.Test)
		case "skip":
			skipped = append(skipped, ev.Test)
		}
	}
	return ran, passed, failed, skipped, text.String()
}

// goNSQWaitPing waits for GET /ping on httpAddr, and fails saying so when the
// daemon could not take its default port.
func goNSQWaitPing(t *testing.T, p *nsqtest.Process, httpAddr string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	nsqtest.Eventually(t, appsTimeout, func() bool {
		select {
		case <-p.Exited():
			if strings.Contains(p.Output(), "address already in use") {
				t.Fatalf("%s could not take its port (another process took it after the check):\n%s", p.Name, p.Output())
			}
			t.Fatalf("%s exited:\n%s", p.Name, p.Output())
		default:
		}
		resp, err := client.Get("http://" + httpAddr + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, p.Name+" on "+httpAddr)
}

// exitStderr returns the stderr an exec.ExitError kept, if any.
func exitStderr(err error) string {
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return string(ee.Stderr)
	}
	return ""
}

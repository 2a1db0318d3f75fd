package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nsqjs (the Node.js client, from the npm registry) publishes with MPUB, PUB
// and DPUB, discovers nsqd through nsqlookupd, requeues, touches and
// finishes: every message arrives once after its requeue, and nsqd's
// /stats agree. Skipped loudly without node and npm.
func TestClientNSQJS(t *testing.T) {
	node, dir := installNSQJS(t)

	lookupd := adminStartLookupd(t)
	n := adminStartNSQD(t, lookupd)
	const topic, count = "nsqjs_topic", 50
	run := exec.Command(node, "client.js", n.TCPAddr, lookupd.HTTPAddr, topic, fmt.Sprint(count))
	run.Dir = dir
	var stderr strings.Builder
	run.Stderr = &stderr
	start := time.Now()
	out, err := run.Output()
	var res struct {
		Published int            `json:"published"`
		Received  map[string]int `json:"received"`
		Attempts2 int            `json:"attempts2"`
		Touched   bool           `json:"touched"`
		Errors    []string       `json:"errors"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || err != nil {
		t.Fatalf("node client.js: %v (%v)\nstdout: %s\nstderr: %s", err, jerr, out, stderr.String())
	}
	t.Logf("nsqjs run took %v: %s", time.Since(start), strings.TrimSpace(string(out)))
	if len(res.Errors) > 0 || res.Published != count || !res.Touched {
		t.Errorf("nsqjs: published %d of %d, touched %v, errors %v", res.Published, count, res.Touched, res.Errors)
	}
	want := []string{"pub-single", "dpub-200ms"}
	for i := range count - 2 {
		want = append(want, fmt.Sprintf("mpub-%d", i))
	}
	for _, body := range want {
		if res.Received[body] != 1 {
			t.Errorf("nsqjs received %q %d times after its requeue, want once", body, res.Received[body])
		}
	}
	if len(res.Received) != count || res.Attempts2 != count {
		t.Errorf("nsqjs received %d distinct bodies (%d second attempts), want %d", len(res.Received), res.Attempts2, count)
	}
	ch := n.Channel(t, topic, "nsqjs")
	if ch.MessageCount != count || ch.RequeueCount != count || ch.Depth != 0 || ch.InFlightCount != 0 {
		t.Errorf("channel stats: %+v", ch)
	}
}

// installNSQJS installs nsqjs from npm with the scripts of testdata/nsqjs
// in a temporary directory, or skips the test loudly without node and npm.
func installNSQJS(t *testing.T) (node, dir string) {
	t.Helper()
	node, nodeErr := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	if nodeErr != nil || npmErr != nil {
		fmt.Printf("SKIP: node or npm not installed: %s not run; apt-get install nodejs npm\n", t.Name())
		t.Skip("SKIP: node or npm not installed")
	}
	dir = t.TempDir()
	for _, name := range []string{"package.json", "client.js", "deadletter.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", "nsqjs", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install := exec.Command(npm, "install", "--no-audit", "--no-fund", "--no-package-lock")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		fmt.Printf("SKIP: npm install nsqjs failed (%v): %s not run\n", err, t.Name())
		t.Skipf("SKIP: npm install nsqjs: %v\n%s", err, out)
	}
	return node, dir
}

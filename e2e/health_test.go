package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

// A damaged nsqd.dat is reported by /ping, /stats and /metrics as the
// metadata condition, and a publish that writes a disk queue does not hide
// it (NSQ's single health slot would answer OK again). A restart, on the
// nsqd.dat nsqd rewrote, is healthy.
func TestHealthDamagedMetadata(t *testing.T) {
	dir := t.TempDir()
	n := nsqtest.StartNSQD(t, "--data-path="+dir)
	post(t, n, "/topic/create?topic=kept")
	post(t, n, "/channel/create?topic=kept&channel=c")
	pub(t, n, "kept", "written to disk at shutdown")
	if code := n.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsqd exited with %d", code)
	}
	fn := filepath.Join(dir, "nsqd.dat")
	if err := os.WriteFile(fn, []byte(`{"topics":[{"name":"kept","chan`), 0o600); err != nil {
		t.Fatal(err)
	}

	n = nsqtest.StartNSQD(t, "--data-path="+dir, "--mem-queue-size=0")
	expectDamaged := func(when string) {
		t.Helper()
		status, body := nsqtest.HTTP(t, http.MethodGet, n.URL("/ping"), nil)
		if status != http.StatusInternalServerError || !strings.HasPrefix(body, "NOK - metadata: ") || !strings.Contains(body, "nsqd.dat was damaged") {
			t.Errorf("GET /ping %s: %d %q, want 500 \"NOK - metadata: ...nsqd.dat was damaged...\"", when, status, body)
		}
		st := n.Stats(t)
		if st.Health != body {
			t.Errorf("/stats health %s = %q, want the /ping text %q", when, st.Health, body)
		}
		var metadata *nsqtest.HealthCondition
		for i, c := range st.HealthConditions {
			if c.Condition == "metadata" {
				metadata = &st.HealthConditions[i]
			} else if !c.OK {
				t.Errorf("/stats health_conditions %s: %+v, want only metadata failing", when, c)
			}
		}
		if len(st.HealthConditions) != 5 || metadata == nil || metadata.OK || !strings.Contains(metadata.Message, "nsqd.dat was damaged") {
			t.Errorf("/stats health_conditions %s = %+v, want 5 with metadata failing", when, st.HealthConditions)
		}
		fams := scrape(t, n.HTTPAddr)
		for _, c := range []string{"disk_queue", "journal", "metadata", "free_disk", "replication"} {
			want := 1.0
			if c == "metadata" {
				want = 0
			}
			if got, typ, ok := metricValue(fams, "nsq_health_condition", map[string]string{"condition": c}); !ok || typ != dto.MetricType_GAUGE || got != want {
				t.Errorf("/metrics nsq_health_condition{condition=%q} %s = %v (%v, found %v), want gauge %v", c, when, got, typ, ok, want)
			}
		}
		if got, _, _ := metricValue(fams, "nsq_health", map[string]string{}); got != 0 {
			t.Errorf("/metrics nsq_health %s = %v, want 0", when, got)
		}
	}
	expectDamaged("after starting on a damaged nsqd.dat")

	// One message through the disk queue (--mem-queue-size=0), and a new
	// topic, which rewrites nsqd.dat.
	pub(t, n, "other", "one message")
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(fn)
		return err == nil && strings.Contains(string(b), `"other"`)
	}, "nsqd.dat rewritten with topic other")
	if tp := n.Stats(t).Topic("other"); tp == nil || tp.BackendDepth != 1 {
		t.Fatalf("/stats topic other = %+v, want its message on disk", tp)
	}
	expectDamaged("after a publish to a disk queue and a nsqd.dat rewrite")

	if code := n.Stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("nsqd exited with %d", code)
	}
	n = nsqtest.StartNSQD(t, "--data-path="+dir)
	if status, body := nsqtest.HTTP(t, http.MethodGet, n.URL("/ping"), nil); status != http.StatusOK || body != "OK" {
		t.Errorf("GET /ping after a restart: %d %q, want 200 OK", status, body)
	}
	if tp := n.Stats(t).Topic("kept"); tp == nil || len(tp.Channels) != 1 || tp.Channels[0].Depth != 1 {
		t.Errorf("/stats topic kept = %+v, want it recovered from its disk queues with channel c holding 1 message", tp)
	}
}

func pub(t *testing.T, n *nsqtest.NSQD, topic, body string) {
	t.Helper()
	if status, resp := nsqtest.HTTP(t, http.MethodPost, n.URL("/pub?topic="+topic), []byte(body)); status != http.StatusOK || resp != "OK" {
		t.Fatalf("POST /pub?topic=%s: %d %q, want 200 OK", topic, status, resp)
	}
}

package nsqd

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
)

// Each condition is set and cleared on its own, and /ping joins the
// failing ones on one line in a fixed order.
func TestHealthConditionsIndependent(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	n.health.fail(healthMetadata, errors.New("persist metadata: read-only file system"))
	n.health.found(healthJournal, errors.New("journal j damaged"))
	n.health.fail(healthDiskQueue, errors.Join(errors.New("write a"), errors.New("sync b")))
	want := "NOK - disk_queue: write a; sync b; journal: journal j damaged; metadata: persist metadata: read-only file system"
	if status, body := getPing(t, n); status != 500 || body != want {
		t.Errorf("GET /ping = %d %q, want 500 %q", status, body, want)
	}

	n.health.clear(healthDiskQueue) // what a successful disk-queue write does
	want = "NOK - journal: journal j damaged; metadata: persist metadata: read-only file system"
	if status, body := getPing(t, n); status != 500 || body != want {
		t.Errorf("GET /ping after clearing disk_queue = %d %q, want 500 %q", status, body, want)
	}

	// A journal failure reported during a sync-loop pass is not cleared by
	// the end of that pass; one reported before it is.
	mark := n.health.mark(healthJournal)
	n.health.fail(healthJournal, errors.New("write journal k"))
	n.health.clearUnchanged(healthJournal, mark)
	if msg := n.health.message(healthJournal); msg != "journal j damaged; write journal k" {
		t.Errorf("journal after a pass that saw a failure = %q, want both errors", msg)
	}
	n.health.clearUnchanged(healthJournal, n.health.mark(healthJournal))
	if msg := n.health.message(healthJournal); msg != "journal j damaged" {
		t.Errorf("journal after a clean pass = %q, want only what was found at startup", msg)
	}

	n.health.clear(healthMetadata)
	n.health.clear(healthJournal)
	want = "NOK - journal: journal j damaged"
	if status, body := getPing(t, n); status != 500 || body != want {
		t.Errorf("GET /ping = %d %q, want 500 %q (damage found at startup stays)", status, body, want)
	}
}

// /stats keeps NSQ's health string and adds health_conditions, every
// condition in a fixed order.
func TestStatsHealthConditions(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	get := func() (st struct {
		Health     string            `json:"health"`
		Conditions []HealthCondition `json:"health_conditions"`
	}) {
		t.Helper()
		resp, err := http.Get("http://" + n.HTTPAddr().String() + "/stats?format=json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("/stats: %v: %s", err, b)
		}
		return st
	}
	all := func(bad string, msg string) []HealthCondition {
		var out []HealthCondition
		for _, c := range healthConditionNames {
			if c == bad {
				out = append(out, HealthCondition{Condition: c, Message: msg})
			} else {
				out = append(out, HealthCondition{Condition: c, OK: true})
			}
		}
		return out
	}
	st := get()
	if st.Health != "OK" || !slices.Equal(st.Conditions, all("", "")) {
		t.Errorf("healthy /stats: health %q, health_conditions %+v", st.Health, st.Conditions)
	}
	if want := []string{"disk_queue", "journal", "metadata", "free_disk", "replication"}; !slices.Equal(healthConditionNames[:], want) {
		t.Errorf("condition names %v, want %v", healthConditionNames, want)
	}

	n.health.fail(healthFreeDisk, errors.New("disk free space below --min-free-disk-bytes: 10 bytes free"))
	st = get()
	if want := "NOK - free_disk: disk free space below --min-free-disk-bytes: 10 bytes free"; st.Health != want {
		t.Errorf("/stats health = %q, want %q", st.Health, want)
	}
	if want := all("free_disk", "disk free space below --min-free-disk-bytes: 10 bytes free"); !slices.Equal(st.Conditions, want) {
		t.Errorf("/stats health_conditions = %+v, want %+v", st.Conditions, want)
	}
}

// A successful disk-queue write clears only the disk_queue condition.
func TestHealthDiskQueueWriteClearsOnlyItsOwn(t *testing.T) {
	o := testOptions(t)
	o.MemQueueSize = 0
	n := startNSQD(t, o)
	tp, err := n.GetTopic("dq")
	if err != nil {
		t.Fatal(err)
	}
	n.health.fail(healthDiskQueue, errors.New("write to disk queue: no space left on device"))
	n.health.fail(healthFreeDisk, errors.New("low"))
	if err := tp.Publish([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if msg := n.health.message(healthDiskQueue); msg != "" {
		t.Errorf("disk_queue after a successful write = %q, want cleared", msg)
	}
	if err := n.Health(); err == nil || err.Error() != "free_disk: low" {
		t.Errorf("health = %v, want only free_disk", err)
	}
}

package diskq

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

// TestExplicitCommit checks that with ExplicitCommit a restart resumes at
// the last committed read, the metadata counts uncommitted records in the
// depth, and read files are removed only once committed.
func TestExplicitCommit(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, 100)
	o.ExplicitCommit = true
	q := openQueue(t, "q", dir, o)
	r := bytes.Repeat([]byte("a"), 46) // two records per file
	want := [][]byte{r, r, r, r, r, r}
	putBatches(t, q, want, 1) // files 0, 1, 2

	readN(t, q, 3)
	if _, err := os.Stat(dataFile(dir, "q", 0)); err != nil {
		t.Fatalf("file 0 removed before its reads were committed: %v", err)
	}
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, want := string(readFile(t, metaFile(dir, "q"))), "6\n0,0\n2,100\n"; got != want {
		t.Errorf("metadata before commit = %q, want %q", got, want)
	}

	q.Commit()
	if _, err := os.Stat(dataFile(dir, "q", 0)); err != nil {
		t.Errorf("file 0 removed before the metadata had the commit: %v", err)
	}
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dataFile(dir, "q", 0)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file 0 not removed once the commit was persisted: %v", err)
	}
	readN(t, q, 1) // read but never committed
	if got := q.Depth(); got != 2 {
		t.Errorf("Depth() = %d, want 2", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := string(readFile(t, metaFile(dir, "q"))), "3\n1,50\n2,100\n"; got != want {
		t.Errorf("metadata after close = %q, want %q", got, want)
	}

	q = openQueue(t, "q", dir, o)
	if got := q.Depth(); got != 3 {
		t.Errorf("Depth() after reopening = %d, want 3", got)
	}
	checkRecords(t, readAll(t, q, 10), want[3:])
}

// TestBeforeMetadata checks the hook runs before the metadata is written
// and that its error fails the sync without writing the metadata.
func TestBeforeMetadata(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, 1<<20)
	var calls int
	var fail error
	o.BeforeMetadata = func() error {
		calls++
		if _, err := os.Stat(metaFile(dir, "q")); calls == 1 && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("metadata written before the hook ran: %v", err)
		}
		return fail
	}
	o.SyncDir = true
	q := openQueue(t, "q", dir, o)
	putBatches(t, q, records(0, 3), 3)
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("hook ran %d times, want 1", calls)
	}
	fail = errors.New("journal broken")
	putBatches(t, q, records(3, 1), 1)
	if err := q.Sync(); !errors.Is(err, fail) {
		t.Errorf("Sync() = %v, want the hook's error", err)
	}
	if got, want := string(readFile(t, metaFile(dir, "q"))), "3\n0,0\n0,"; !bytes.HasPrefix([]byte(got), []byte(want)) {
		t.Errorf("metadata = %q, want the first sync's (%q...)", got, want)
	}
	fail = nil
}

// TestSyncData checks a data-only sync fsyncs once, leaves the metadata
// owed until MaybeSync writes it, and that a crash before that (a second
// Queue opened on the files, the first never closed) loses no record.
func TestSyncData(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, 1<<20)
	o.SyncDir = true
	q := openQueue(t, "q", dir, o)
	var fsyncs int
	q.hooks.fsync = func(f *os.File) error { fsyncs++; return f.Sync() }
	putBatches(t, q, records(0, 5), 5)
	if err := q.SyncData(); err != nil {
		t.Fatal(err)
	}
	if fsyncs != 1 {
		t.Errorf("SyncData made %d data/metadata fsyncs, want 1", fsyncs)
	}
	if _, err := os.Stat(metaFile(dir, "q")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("metadata written by SyncData: %v", err)
	}

	crashed := openQueue(t, "q", dir, o)
	checkRecords(t, readAll(t, crashed, 100), records(0, 5))

	if err := q.MaybeSync(time.Now().Add(o.SyncTimeout)); err != nil {
		t.Fatal(err)
	}
	if got := string(readFile(t, metaFile(dir, "q"))); got != "5\n0,0\n0,"+fmt.Sprint(q.writePos)+"\n" {
		t.Errorf("metadata after MaybeSync = %q", got)
	}
}

// TestOpenAfterCrashPastRoll checks that files written after the last
// metadata (a roll, then a crash before the metadata was rewritten) are
// read and never overwritten.
func TestOpenAfterCrashPastRoll(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, 100)
	r := bytes.Repeat([]byte("a"), 46) // two records per file
	q := openQueue(t, "q", dir, o)
	putBatches(t, q, [][]byte{r, r}, 2) // file 0 full
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	meta := readFile(t, metaFile(dir, "q"))
	putBatches(t, q, [][]byte{r, r, r}, 3) // files 1 and 2
	q.Close()
	os.WriteFile(metaFile(dir, "q"), meta, 0o600) // the crash: old metadata

	q2 := openQueue(t, "q", dir, o)
	putBatches(t, q2, records(0, 1), 1)
	got := readAll(t, q2, 100)
	want := append([][]byte{r, r, r, r, r}, records(0, 1)...)
	checkRecords(t, got, want)
}

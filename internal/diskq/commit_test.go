package diskq

import (
	"bytes"
	"errors"
	"os"
	"testing"
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
	if _, err := os.Stat(dataFile(dir, "q", 0)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file 0 not removed once committed: %v", err)
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

package diskq

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fsyncCounter counts fsyncs of data files and of metadata temp files.
type fsyncCounter struct {
	data, meta atomic.Int64
}

func (c *fsyncCounter) hook(f *os.File) error {
	if strings.HasSuffix(f.Name(), ".tmp") {
		c.meta.Add(1)
	} else {
		c.data.Add(1)
	}
	return f.Sync()
}

// TestSyncGroupCommit: while one sync runs, every caller that arrives shares
// the single sync that follows it.
func TestSyncGroupCommit(t *testing.T) {
	q := openQueue(t, "q", t.TempDir(), testOptions(t, 1<<20))
	var c fsyncCounter
	entered := make(chan struct{})
	release := make(chan struct{})
	var first atomic.Bool
	q.hooks.fsync = func(f *os.File) error {
		if !strings.HasSuffix(f.Name(), ".tmp") && first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		return c.hook(f)
	}

	const callers = 20
	errs := make(chan error, callers+1)
	go func() {
		errs <- errors.Join(q.Put([]byte("first")), q.Sync())
	}()
	<-entered // the first sync is in its fsync
	for i := range callers {
		go func() {
			errs <- errors.Join(q.Put(record(i)), q.Sync())
		}()
	}
	waitFor(t, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.syncWaiters == callers
	})
	close(release)
	for range callers + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := c.data.Load(); got != 2 {
		t.Errorf("%d data fsyncs for %d concurrent Syncs behind a running one, want 2", got, callers)
	}
	if got := c.meta.Load(); got != 2 {
		t.Errorf("%d metadata writes, want 2", got)
	}
	if got := q.Depth(); got != callers+1 {
		t.Errorf("Depth() = %d, want %d", got, callers+1)
	}
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSyncCoversPut: under load, every Sync returns only after an fsync that
// started after its Put wrote, and Syncs share fsyncs. The file never rolls,
// so an fsync of the write file covers every write before it.
func TestSyncCoversPut(t *testing.T) {
	q := openQueue(t, "q", t.TempDir(), testOptions(t, 1<<30))
	var (
		ticket    atomic.Int64 // orders events
		mu        sync.Mutex
		completed []int64 // tickets of data fsyncs that finished
		written   = map[string]int64{}
		fsyncs    atomic.Int64
	)
	q.hooks.writeAt = func(f *os.File, b []byte, off int64) (int, error) {
		n, err := f.WriteAt(b, off)
		mu.Lock()
		written[string(b[4:])] = ticket.Add(1) // one record per Put
		mu.Unlock()
		return n, err
	}
	q.hooks.fsync = func(f *os.File) error {
		if strings.HasSuffix(f.Name(), ".tmp") {
			return nil
		}
		fsyncs.Add(1)
		start := ticket.Add(1)
		err := f.Sync()
		time.Sleep(200 * time.Microsecond) // a disk at least this slow, even on tmpfs
		mu.Lock()
		completed = append(completed, start)
		mu.Unlock()
		return err
	}
	const goroutines, rounds = 16, 30
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				rec := fmt.Appendf(nil, "g%d-%d", g, i)
				if err := q.Put(rec); err != nil {
					t.Error(err)
					return
				}
				if err := q.Sync(); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				put := written[string(rec)]
				covered := false
				for _, s := range completed {
					covered = covered || s > put
				}
				mu.Unlock()
				if !covered {
					t.Errorf("Sync returned before an fsync that started after Put (ticket %d)", put)
				}
			}
		})
	}
	wg.Wait()
	if n := fsyncs.Load(); 2*n > goroutines*rounds {
		t.Errorf("%d fsyncs for %d Syncs: less than 2 Syncs per fsync", n, goroutines*rounds)
	}
	t.Logf("%d Syncs, %d fsyncs", goroutines*rounds, fsyncs.Load())
}

func TestSyncEvery(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, 1<<20)
	o.SyncEvery = 10
	q := openQueue(t, "q", dir, o)
	var c fsyncCounter
	q.hooks.fsync = c.hook
	putBatches(t, q, records(0, 25), 1)
	if got := c.data.Load(); got != 2 {
		t.Errorf("%d fsyncs after 25 writes with SyncEvery 10, want 2", got)
	}
	readN(t, q, 5) // 5 + 5 operations since the last sync
	if got := c.data.Load(); got != 3 {
		t.Errorf("%d fsyncs after 30 operations, want 3", got)
	}
	want := fmt.Sprintf("20\n0,%d\n0,%d\n", q.readPos, q.writePos)
	if got := string(readFile(t, metaFile(dir, "q"))); got != want {
		t.Errorf("metadata = %q, want %q", got, want)
	}
}

// TestSyncOnFileChange: a roll and a move of the reader to a new file sync.
func TestSyncOnFileChange(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 100))
	var c fsyncCounter
	q.hooks.fsync = c.hook
	r := bytes.Repeat([]byte("a"), 46)
	putBatches(t, q, [][]byte{r, r}, 1)
	if got := c.meta.Load(); got != 0 {
		t.Fatalf("%d syncs before any roll, want 0", got)
	}
	putBatches(t, q, [][]byte{r}, 1)
	if got := c.meta.Load(); got != 1 {
		t.Errorf("%d syncs after a roll, want 1", got)
	}
	if got, want := string(readFile(t, metaFile(dir, "q"))), "3\n0,0\n1,50\n"; got != want {
		t.Errorf("metadata after roll = %q, want %q", got, want)
	}
	readN(t, q, 2)
	if got := c.meta.Load(); got != 2 {
		t.Errorf("%d syncs after reading into a new file, want 2", got)
	}
	if got, want := string(readFile(t, metaFile(dir, "q"))), "1\n1,0\n1,50\n"; got != want {
		t.Errorf("metadata after moving to the next file = %q, want %q", got, want)
	}
}

func TestMaybeSync(t *testing.T) {
	o := testOptions(t, 1<<20)
	q := openQueue(t, "q", t.TempDir(), o)
	var c fsyncCounter
	q.hooks.fsync = c.hook
	now := time.Now()
	if err := q.MaybeSync(now); err != nil || c.meta.Load() != 0 {
		t.Fatalf("MaybeSync without activity: err %v, %d syncs", err, c.meta.Load())
	}
	putBatches(t, q, records(0, 1), 1)
	if err := q.MaybeSync(time.Now()); err != nil || c.meta.Load() != 1 {
		t.Fatalf("first MaybeSync after activity: err %v, %d syncs, want 1", err, c.meta.Load())
	}
	putBatches(t, q, records(1, 1), 1)
	if err := q.MaybeSync(time.Now()); err != nil || c.meta.Load() != 1 {
		t.Fatalf("MaybeSync within SyncTimeout: err %v, %d syncs, want 1", err, c.meta.Load())
	}
	if err := q.MaybeSync(time.Now().Add(o.SyncTimeout)); err != nil || c.meta.Load() != 2 {
		t.Fatalf("MaybeSync after SyncTimeout: err %v, %d syncs, want 2", err, c.meta.Load())
	}
	if err := q.MaybeSync(time.Now().Add(2 * o.SyncTimeout)); err != nil || c.meta.Load() != 2 {
		t.Fatalf("MaybeSync without new activity: err %v, %d syncs, want 2", err, c.meta.Load())
	}
	if err := q.Sync(); err != nil || c.meta.Load() != 2 {
		t.Fatalf("Sync with nothing new: err %v, %d syncs, want 2", err, c.meta.Load())
	}
}

func TestSyncError(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 1<<20))
	putBatches(t, q, records(0, 2), 2)
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	meta := readFile(t, metaFile(dir, "q"))
	putBatches(t, q, records(2, 2), 2)
	q.hooks.fsync = func(*os.File) error { return syscall.EIO }
	if err := q.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync with failing fsync = %v, want EIO", err)
	}
	if got := readFile(t, metaFile(dir, "q")); !bytes.Equal(got, meta) {
		t.Errorf("metadata replaced after a failed fsync: %q", got)
	}
	q.hooks.fsync = defaultHooks.fsync
	if err := q.MaybeSync(time.Now()); err != nil { // owed after the failure
		t.Fatal(err)
	}
	if got, want := string(readFile(t, metaFile(dir, "q"))), fmt.Sprintf("4\n0,0\n0,%d\n", q.writePos); got != want {
		t.Errorf("metadata after retry = %q, want %q", got, want)
	}
}

// enospc writes half of what it is given, then fails as a full disk does.
func enospc(f *os.File, b []byte, off int64) (int, error) {
	n, _ := f.WriteAt(b[:len(b)/2], off)
	return n, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 1<<20))
	want := records(0, 5)
	putBatches(t, q, want, 5)
	size := q.writePos

	q.hooks.writeAt = enospc
	if err := q.Put(records(100, 10)...); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put on a full disk = %v, want ENOSPC", err)
	}
	if st, _ := os.Stat(dataFile(dir, "q", 0)); st.Size() != size {
		t.Errorf("file has %d bytes after a failed Put, want %d", st.Size(), size)
	}
	if q.Depth() != 5 {
		t.Errorf("Depth() = %d after a failed Put, want 5", q.Depth())
	}

	q.hooks.writeAt = defaultHooks.writeAt
	more := records(200, 2)
	putBatches(t, q, more, 2)
	want = append(want, more...)
	checkRecords(t, readN(t, q, 3), want[:3])
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, "q", dir, testOptions(t, 1<<20))
	checkRecords(t, readAll(t, q, 10), want[3:])
}

// TestDiskFullAcrossRoll: a batch fails in its second file; the part written
// to the first file is taken back and the second file removed.
func TestDiskFullAcrossRoll(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 200))
	want := records(0, 3)
	putBatches(t, q, want, 3)
	size := q.writePos
	var calls int
	q.hooks.writeAt = func(f *os.File, b []byte, off int64) (int, error) {
		if calls++; calls == 2 {
			return enospc(f, b, off)
		}
		return f.WriteAt(b, off)
	}
	if err := q.Put(records(100, 12)...); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put = %v, want ENOSPC", err)
	}
	if calls != 2 {
		t.Fatalf("test wants the batch to span files, made %d writes", calls)
	}
	if st, _ := os.Stat(dataFile(dir, "q", 0)); st.Size() != size {
		t.Errorf("file 0 has %d bytes after a failed Put, want %d", st.Size(), size)
	}
	if _, err := os.Stat(dataFile(dir, "q", 1)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file 1 left after a failed Put: %v", err)
	}
	if q.writeFileNum != 0 || q.writePos != size || q.Depth() != 3 {
		t.Errorf("after failed Put: write %d,%d depth %d; want 0,%d depth 3", q.writeFileNum, q.writePos, q.Depth(), size)
	}
	q.hooks.writeAt = defaultHooks.writeAt
	more := records(100, 12)
	putBatches(t, q, more, 12)
	checkRecords(t, readAll(t, q, 5), append(want, more...))
}

// TestDiskFullTruncateFails: when even truncating fails (a read-only
// remount), writing moves to a new file and the reader stops where the valid
// records end.
func TestDiskFullTruncateFails(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 1<<20))
	want := records(0, 3)
	putBatches(t, q, want, 3)
	q.hooks.writeAt = enospc
	q.hooks.truncate = func(string, int64) error { return syscall.EROFS }
	if err := q.Put(records(100, 10)...); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put = %v, want ENOSPC", err)
	}
	q.hooks.writeAt, q.hooks.truncate = defaultHooks.writeAt, defaultHooks.truncate
	if q.writeFileNum != 1 {
		t.Errorf("writeFileNum = %d, want 1 after a failed truncate", q.writeFileNum)
	}
	more := records(200, 2)
	putBatches(t, q, more, 2)
	checkRecords(t, readAll(t, q, 10), append(want, more...))
	if q.Corrupt() != 0 {
		t.Errorf("Corrupt() = %d, want 0", q.Corrupt())
	}
}

// TestConcurrentPutRead runs producers, consumers, Sync and MaybeSync
// together and checks that every record arrives once, in each producer's
// order.
func TestConcurrentPutRead(t *testing.T) {
	o := testOptions(t, 4096)
	o.SyncEvery = 500
	q := openQueue(t, "q", t.TempDir(), o)
	const producers, perProducer, consumers = 4, 3000, 3
	total := int64(producers * perProducer)

	var (
		wg       sync.WaitGroup
		consumed atomic.Int64
		done     = make(chan struct{})
		mu       sync.Mutex
		seen     [producers][perProducer]bool
	)
	for p := range producers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for i := 0; i < perProducer; {
				n := min(1+rng.IntN(50), perProducer-i)
				batch := make([][]byte, n)
				for j := range batch {
					batch[j] = fmt.Appendf(nil, "%d:%d:%s", p, i+j, strings.Repeat("z", rng.IntN(100)))
				}
				if err := q.Put(batch...); err != nil {
					t.Error(err)
					return
				}
				i += n
			}
		})
	}
	for c := range consumers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 2))
			last := [producers]int{-1, -1, -1, -1}
			var buf [][]byte
			for {
				var err error
				buf, err = q.Read(buf[:0], 1+rng.IntN(300))
				if err != nil {
					t.Error(err)
					return
				}
				if len(buf) == 0 {
					select {
					case <-q.Ready():
						continue
					case <-done:
						return
					}
				}
				mu.Lock()
				for _, r := range buf {
					var p, i int
					if _, err := fmt.Sscanf(string(r), "%d:%d:", &p, &i); err != nil || p >= producers || i >= perProducer {
						t.Errorf("bad record %q", r)
						continue
					}
					// One consumer sees each producer's records in order.
					if i <= last[p] {
						t.Errorf("consumer %d: producer %d's record %d after %d", c, p, i, last[p])
					}
					last[p] = i
					if seen[p][i] {
						t.Errorf("record %d:%d read twice", p, i)
					}
					seen[p][i] = true
				}
				mu.Unlock()
				if consumed.Add(int64(len(buf))) == total {
					close(done)
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := q.Sync(); err != nil {
				t.Error(err)
			}
			if err := q.MaybeSync(time.Now()); err != nil {
				t.Error(err)
			}
			_ = q.Depth()
		}
	})
	wg.Wait()
	if q.Depth() != 0 || q.Corrupt() != 0 {
		t.Errorf("Depth() = %d, Corrupt() = %d after consuming everything", q.Depth(), q.Corrupt())
	}
}

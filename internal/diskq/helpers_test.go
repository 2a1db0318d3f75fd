package diskq

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	diskqueue "github.com/nsqio/go-diskqueue"
)

// testOptions are nsqd's defaults with a chosen file size.
func testOptions(t testing.TB, maxBytesPerFile int64) Options {
	return Options{
		MaxBytesPerFile: maxBytesPerFile,
		MinMsgSize:      1,
		MaxMsgSize:      1 << 20,
		SyncEvery:       2500,
		SyncTimeout:     2 * time.Second,
		Logger:          testLogger(t),
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// syncBuffer is a log destination tests inspect.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// openQueue opens a Queue that is closed when the test ends (if still open).
func openQueue(t testing.TB, name, dir string, o Options) *Queue {
	t.Helper()
	q, err := Open(name, dir, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// record returns a deterministic record of varying length.
func record(i int) []byte {
	return fmt.Appendf(nil, "record-%06d-%s", i, strings.Repeat("x", i%37))
}

func records(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = record(from + i)
	}
	return out
}

// putBatches puts recs in batches of the given size.
func putBatches(t testing.TB, q *Queue, recs [][]byte, batch int) {
	t.Helper()
	for chunk := range slices.Chunk(recs, batch) {
		if err := q.Put(chunk...); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
}

// readAll reads until the queue is empty, in batches of max.
func readAll(t testing.TB, q *Queue, max int) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		n := len(out)
		var err error
		out, err = q.Read(out, max)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(out) == n {
			return out
		}
	}
}

// readN reads exactly n records.
func readN(t testing.TB, q *Queue, n int) [][]byte {
	t.Helper()
	out, err := q.Read(nil, n)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(out) != n {
		t.Fatalf("Read(%d) returned %d records", n, len(out))
	}
	return out
}

func checkRecords(t testing.TB, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// dirFiles returns the names of the files in dir, sorted.
func dirFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dataFile(dir, name string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("%s.diskqueue.%06d.dat", name, n))
}

func metaFile(dir, name string) string {
	return filepath.Join(dir, name+".diskqueue.meta.dat")
}

// frame encodes records in the data file format.
func frame(recs ...[]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return b
}

// openGoDiskqueue opens go-diskqueue v1.1.0 with the same options.
func openGoDiskqueue(t testing.TB, name, dir string, o Options) diskqueue.Interface {
	logf := func(lvl diskqueue.LogLevel, f string, args ...any) {
		if lvl >= diskqueue.WARN {
			t.Logf("go-diskqueue %s: "+f, append([]any{lvl}, args...)...)
		}
	}
	return diskqueue.New(name, dir, o.MaxBytesPerFile, o.MinMsgSize, o.MaxMsgSize, o.SyncEvery, o.SyncTimeout, logf)
}

// readGoDiskqueue reads n records from go-diskqueue.
func readGoDiskqueue(t testing.TB, dq diskqueue.Interface, n int) [][]byte {
	t.Helper()
	out := make([][]byte, 0, n)
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for range n {
		select {
		case b := <-dq.ReadChan():
			out = append(out, b)
		case <-timeout.C:
			t.Fatalf("go-diskqueue: read %d of %d records before timing out (depth %d)", len(out), n, dq.Depth())
		}
	}
	return out
}

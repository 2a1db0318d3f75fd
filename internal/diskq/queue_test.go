package diskq

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestPutRead(t *testing.T) {
	for _, maxBytes := range []int64{1 << 20, 100, 257} {
		for _, batch := range []int{1, 7, 200} {
			for _, readMax := range []int{3, 1000} {
				t.Run(fmt.Sprintf("max=%d/batch=%d/read=%d", maxBytes, batch, readMax), func(t *testing.T) {
					t.Parallel()
					dir := t.TempDir()
					q := openQueue(t, "q", dir, testOptions(t, maxBytes))
					// Small files mean a sync per roll; this test is about
					// layout and order, the sync tests cover fsync.
					q.hooks.fsync = func(*os.File) error { return nil }
					want := records(0, 300)
					putBatches(t, q, want, batch)
					if got := q.Depth(); got != 300 {
						t.Fatalf("Depth() = %d, want 300", got)
					}
					checkRecords(t, readAll(t, q, readMax), want)
					if got := q.Depth(); got != 0 {
						t.Errorf("Depth() after reading all = %d, want 0", got)
					}
					// Only the current write file is left.
					for _, f := range dirFiles(t, dir) {
						if strings.HasSuffix(f, ".dat") && f != filepath.Base(metaFile(dir, "q")) &&
							f != filepath.Base(dataFile(dir, "q", int(q.writeFileNum))) {
							t.Errorf("file %s left after reading everything (write file %d)", f, q.writeFileNum)
						}
					}
					if q.Corrupt() != 0 {
						t.Errorf("Corrupt() = %d, want 0", q.Corrupt())
					}
				})
			}
		}
	}
}

// TestRollRule checks go-diskqueue's condition for starting a new file:
// writePos > 0 && writePos+4+len > MaxBytesPerFile, and that a batch makes
// one write per file it touches.
func TestRollRule(t *testing.T) {
	r46 := bytes.Repeat([]byte("a"), 46) // 50 bytes framed
	r200 := bytes.Repeat([]byte("b"), 200)
	batch := [][]byte{r46, r46, r46, r200, r46}
	wantSizes := []int64{100, 50, 204, 50} // 2 records fill file 0 exactly; the big one goes alone

	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			dir := t.TempDir()
			q := openQueue(t, "q", dir, testOptions(t, 100))
			var writes int
			q.hooks.writeAt = func(f *os.File, b []byte, off int64) (int, error) {
				writes++
				return f.WriteAt(b, off)
			}
			if batched {
				if err := q.Put(batch...); err != nil {
					t.Fatal(err)
				}
				if writes != len(wantSizes) {
					t.Errorf("batch touching %d files made %d writes", len(wantSizes), writes)
				}
			} else {
				putBatches(t, q, batch, 1)
			}
			for i, want := range wantSizes {
				st, err := os.Stat(dataFile(dir, "q", i))
				if err != nil {
					t.Fatal(err)
				}
				if st.Size() != want {
					t.Errorf("file %d has %d bytes, want %d", i, st.Size(), want)
				}
			}
			checkRecords(t, readAll(t, q, 10), batch)
		})
	}
}

func TestReadDeletesFinishedFiles(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 100))
	r := bytes.Repeat([]byte("a"), 46)
	putBatches(t, q, [][]byte{r, r, r, r, r, r}, 1) // files 0, 1, 2
	readN(t, q, 1)
	if _, err := os.Stat(dataFile(dir, "q", 0)); err != nil {
		t.Fatalf("file 0 removed while still being read: %v", err)
	}
	readN(t, q, 1)
	if _, err := os.Stat(dataFile(dir, "q", 0)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file 0 not removed once read: %v", err)
	}
	readN(t, q, 4)
	if _, err := os.Stat(dataFile(dir, "q", 1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file 1 not removed once read: %v", err)
	}
	if _, err := os.Stat(dataFile(dir, "q", 2)); err != nil {
		t.Fatalf("current write file removed although fully read: %v", err)
	}
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, want := string(readFile(t, metaFile(dir, "q"))), "0\n2,100\n2,100\n"; got != want {
		t.Errorf("metadata = %q, want %q", got, want)
	}
}

func TestRestartMidFile(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, 1000)
	q := openQueue(t, "q", dir, o)
	want := records(0, 100)
	putBatches(t, q, want, 10)
	got := readN(t, q, 33)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	wantMeta := fmt.Sprintf("67\n%d,%d\n%d,%d\n", q.readFileNum, q.readPos, q.writeFileNum, q.writePos)
	if got := string(readFile(t, metaFile(dir, "q"))); got != wantMeta {
		t.Errorf("metadata = %q, want %q", got, wantMeta)
	}
	if q.readPos == 0 {
		t.Fatalf("test wants to stop mid-file")
	}

	q = openQueue(t, "q", dir, o)
	if got := q.Depth(); got != 67 {
		t.Errorf("Depth() after reopening = %d, want 67", got)
	}
	select {
	case <-q.Ready():
	default:
		t.Errorf("Ready() not signalled after opening a non-empty queue")
	}
	got = append(got, readAll(t, q, 9)...)
	checkRecords(t, got, want)
}

// TestMetadataBehindData: the metadata was not persisted after the last
// writes, so the write file is longer than writePos. Writing continues in the
// next file; the reader still gets everything; the depth is fixed at the tail.
func TestMetadataBehindData(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, 1<<20)
	q := openQueue(t, "q", dir, o)
	want := records(0, 15)
	putBatches(t, q, want[:10], 3)
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	oldMeta := readFile(t, metaFile(dir, "q"))
	putBatches(t, q, want[10:], 3)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaFile(dir, "q"), oldMeta, 0o600); err != nil {
		t.Fatal(err)
	}

	q = openQueue(t, "q", dir, o)
	if q.writeFileNum != 1 || q.writePos != 0 {
		t.Errorf("write position after open = %d,%d, want 1,0", q.writeFileNum, q.writePos)
	}
	if got := q.Depth(); got != 15 {
		t.Errorf("Depth() = %d, want 15 (recounted; the metadata says 10)", got)
	}
	more := records(100, 3)
	putBatches(t, q, more, 2)
	checkRecords(t, readAll(t, q, 4), append(want, more...))
	if got := q.Depth(); got != 0 {
		t.Errorf("Depth() at tail = %d, want 0", got)
	}
	if q.Corrupt() != 0 {
		t.Errorf("Corrupt() = %d, want 0", q.Corrupt())
	}
}

// TestDataBehindMetadata: the write file is shorter than writePos (data lost
// in a crash). New records go to a new file instead of after a hole.
func TestDataBehindMetadata(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, 1<<20)
	q := openQueue(t, "q", dir, o)
	want := records(0, 10)
	putBatches(t, q, want, 10)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	fn := dataFile(dir, "q", 0)
	lastLen := int64(4 + len(want[9]))
	st, _ := os.Stat(fn)
	if err := os.Truncate(fn, st.Size()-lastLen); err != nil { // whole records lost
		t.Fatal(err)
	}

	q = openQueue(t, "q", dir, o)
	if q.writeFileNum != 1 {
		t.Errorf("writeFileNum after open = %d, want 1", q.writeFileNum)
	}
	more := records(100, 2)
	putBatches(t, q, more, 2)
	checkRecords(t, readAll(t, q, 3), append(want[:9:9], more...))
	if q.Corrupt() != 0 {
		t.Errorf("Corrupt() = %d, want 0 (the file ends on a record boundary)", q.Corrupt())
	}
	if got := q.Depth(); got != 0 {
		t.Errorf("Depth() at tail = %d, want 0", got)
	}
}

func TestDamagedRecord(t *testing.T) {
	r := bytes.Repeat([]byte("a"), 46) // 2 records per 100-byte file
	recs := [][]byte{record(0), record(1), record(2), record(3), record(4), record(5)}
	for i := range recs {
		recs[i] = append(recs[i], r[len(recs[i]):]...)
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, fn string)
	}{
		{"negative size", func(t *testing.T, fn string) { patch(t, fn, 50, []byte{0xff, 0xff, 0xff, 0xff}) }},
		{"size over max", func(t *testing.T, fn string) { patch(t, fn, 50, []byte{0x00, 0x10, 0x00, 0x01}) }},
		{"size below min", func(t *testing.T, fn string) { patch(t, fn, 50, []byte{0, 0, 0, 0}) }},
		{"size past end of file", func(t *testing.T, fn string) { patch(t, fn, 50, []byte{0, 0, 0, 47}) }},
		{"truncated record", func(t *testing.T, fn string) {
			if err := os.Truncate(fn, 70); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated header", func(t *testing.T, fn string) {
			if err := os.Truncate(fn, 52); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := testOptions(t, 100)
			var logs syncBuffer
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			q := openQueue(t, "q", dir, o)
			putBatches(t, q, recs, 6) // files 0, 1, 2
			fn := dataFile(dir, "q", 1)
			tt.damage(t, fn)

			got := readAll(t, q, 4)
			want := [][]byte{recs[0], recs[1], recs[2], recs[4], recs[5]}
			checkRecords(t, got, want)
			if got := q.Corrupt(); got != 1 {
				t.Errorf("Corrupt() = %d, want 1", got)
			}
			if _, err := os.Stat(fn + ".bad"); err != nil {
				t.Errorf("damaged file not renamed: %v", err)
			}
			if !strings.Contains(logs.String(), fn) {
				t.Errorf("log does not name the damaged file %s:\n%s", fn, logs.String())
			}
			if got := q.Depth(); got != 0 {
				t.Errorf("Depth() at tail = %d, want 0", got)
			}
		})
	}
}

func patch(t *testing.T, fn string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(fn, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedWriteFile: when the damaged file is the write file, writing
// moves to the next file too.
func TestDamagedWriteFile(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 1<<20))
	recs := records(0, 3)
	putBatches(t, q, recs, 3)
	patch(t, dataFile(dir, "q", 0), int64(4+len(recs[0])), []byte{0xff, 0xff, 0xff, 0xff})
	checkRecords(t, readAll(t, q, 10), recs[:1])
	if q.Corrupt() != 1 || q.Depth() != 0 {
		t.Errorf("Corrupt() = %d, Depth() = %d, want 1, 0", q.Corrupt(), q.Depth())
	}
	more := records(10, 4)
	putBatches(t, q, more, 2)
	if _, err := os.Stat(dataFile(dir, "q", 1)); err != nil {
		t.Errorf("new records not in a new file: %v", err)
	}
	checkRecords(t, readAll(t, q, 10), more)
}

// TestCaughtUpReaderAcrossRoll is nsqio/go-diskqueue#42: a reader that has
// read everything in the write file when the writer rolls must move on to
// the next file without renaming a good file to .bad.
func TestCaughtUpReaderAcrossRoll(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 100))
	var want, got [][]byte
	for i := range 20 {
		r := bytes.Repeat([]byte{byte('a' + i)}, 10+i*3)
		want = append(want, r)
		putBatches(t, q, [][]byte{r}, 1)
		got = append(got, readN(t, q, 1)...)
	}
	checkRecords(t, got, want)
	for _, f := range dirFiles(t, dir) {
		if strings.HasSuffix(f, ".bad") {
			t.Errorf("good file renamed: %s", f)
		}
	}
	if q.writeFileNum < 3 {
		t.Errorf("writeFileNum = %d, want the test to roll several files", q.writeFileNum)
	}
}

func TestEmpty(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 200))
	putBatches(t, q, records(0, 50), 5)
	readN(t, q, 5)
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	oldWrite := q.writeFileNum
	if err := os.WriteFile(dataFile(dir, "q", 99)+".bad", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := q.Empty(); err != nil {
		t.Fatal(err)
	}
	if got := dirFiles(t, dir); !slices.Equal(got, []string{"q.diskqueue.000099.dat.bad"}) {
		t.Errorf("files after Empty = %q, want only the .bad file", got)
	}
	if q.Depth() != 0 {
		t.Errorf("Depth() after Empty = %d", q.Depth())
	}
	if got := readAll(t, q, 10); len(got) != 0 {
		t.Errorf("Read after Empty returned %d records", len(got))
	}
	want := records(100, 3)
	putBatches(t, q, want, 3)
	if _, err := os.Stat(dataFile(dir, "q", int(oldWrite+1))); err != nil {
		t.Errorf("writing after Empty does not continue in the next file number: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, "q", dir, testOptions(t, 200))
	checkRecords(t, readAll(t, q, 10), want)
}

func TestDelete(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 200))
	putBatches(t, q, records(0, 50), 5)
	readN(t, q, 12)
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(); err != nil {
		t.Fatal(err)
	}
	if got := dirFiles(t, dir); len(got) != 0 {
		t.Errorf("files after Delete = %q", got)
	}
	if err := q.Put([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Delete = %v, want ErrClosed", err)
	}
}

func TestClosed(t *testing.T) {
	q := openQueue(t, "q", t.TempDir(), testOptions(t, 200))
	putBatches(t, q, records(0, 3), 3)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	_, readErr := q.Read(nil, 1)
	for name, err := range map[string]error{
		"Put":       q.Put([]byte("x")),
		"Read":      readErr,
		"Sync":      q.Sync(),
		"MaybeSync": q.MaybeSync(q.lastSync.Add(1 << 40)),
		"Empty":     q.Empty(),
		"Delete":    q.Delete(),
		"Close":     q.Close(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if q.Depth() != 3 {
		t.Errorf("Depth() after Close = %d, want 3", q.Depth())
	}
}

func TestPutInvalidSize(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, 200)
	o.MinMsgSize, o.MaxMsgSize = 5, 10
	q := openQueue(t, "q", dir, o)
	for _, batch := range [][][]byte{
		{[]byte("12345"), []byte("12345678901")},
		{[]byte("1234567890"), []byte("1234")},
	} {
		if err := q.Put(batch...); !errors.Is(err, ErrRecordSize) {
			t.Errorf("Put(%q) = %v, want ErrRecordSize", batch, err)
		}
	}
	if err := q.Put(); err != nil {
		t.Errorf("Put() = %v", err)
	}
	if q.Depth() != 0 {
		t.Errorf("Depth() = %d, want 0", q.Depth())
	}
	if got := dirFiles(t, dir); len(got) != 0 {
		t.Errorf("files written by failed Puts: %q", got)
	}
}

func TestRecordsAreIndependent(t *testing.T) {
	q := openQueue(t, "q", t.TempDir(), testOptions(t, 1<<20))
	putBatches(t, q, [][]byte{[]byte("one"), []byte("two"), []byte("three")}, 3)
	got := readN(t, q, 3)
	_ = append(got[0], "XXXXXXXX"...)
	got[1][0] = 'T'
	checkRecords(t, got, [][]byte{[]byte("one"), []byte("Two"), []byte("three")})
}

func TestLargeRecords(t *testing.T) {
	q := openQueue(t, "q", t.TempDir(), testOptions(t, 300_000))
	var want [][]byte
	for i, n := range []int{100, 200_000, 70_000, readAheadSize - 4, readAheadSize - 3, 10, 1 << 20, carveSize, carveSize + 1, 5} {
		want = append(want, bytes.Repeat([]byte{byte('a' + i)}, n))
	}
	putBatches(t, q, want, 3)
	checkRecords(t, readAll(t, q, 2), want)
}

// TestBogusSizeAllocation: a header claiming a huge record must not make the
// reader allocate it.
func TestBogusSizeAllocation(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t, 1<<20)
	o.MaxMsgSize = 1 << 30
	data := append(frame([]byte("ok")), 0x3f, 0xff, 0xff, 0xff, 'x')
	if err := os.WriteFile(dataFile(dir, "q", 0), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaFile(dir, "q"), []byte("2\n0,0\n1,0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, "q", dir, o)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := readAll(t, q, 10)
	runtime.ReadMemStats(&after)
	checkRecords(t, got, [][]byte{[]byte("ok")})
	if q.Corrupt() != 1 {
		t.Errorf("Corrupt() = %d, want 1", q.Corrupt())
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("reading a bogus 1 GiB header allocated %d bytes", d)
	}
}

func TestReady(t *testing.T) {
	q := openQueue(t, "q", t.TempDir(), testOptions(t, 1<<20))
	select {
	case <-q.Ready():
		t.Fatal("Ready() signalled for an empty queue")
	default:
	}
	putBatches(t, q, records(0, 2), 2)
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready() not signalled after Put")
	}
}

func TestBadMetadata(t *testing.T) {
	for _, meta := range []string{"", "garbage", "1\n0,0\n", "1\n-1,0\n0,0\n", "1\n0,0\n0,-5\n"} {
		dir := t.TempDir()
		if err := os.WriteFile(metaFile(dir, "q"), []byte(meta), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open("q", dir, testOptions(t, 100)); !errors.Is(err, ErrBadMetadata) {
			t.Errorf("Open with metadata %q = %v, want ErrBadMetadata", meta, err)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{MaxBytesPerFile: 0, MinMsgSize: 1, MaxMsgSize: 10},
		{MaxBytesPerFile: 10, MinMsgSize: -1, MaxMsgSize: 10},
		{MaxBytesPerFile: 10, MinMsgSize: 11, MaxMsgSize: 10},
	} {
		if _, err := Open("q", t.TempDir(), o); err == nil {
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
}

// TestReadPastWrite: metadata with the reader ahead of the writer is reset
// to an empty queue in a new file, as go-diskqueue's tail check does.
func TestReadPastWrite(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(metaFile(dir, "q"), []byte("5\n3,0\n1,10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, "q", dir, testOptions(t, 100))
	if q.Depth() != 0 || q.readFileNum != 4 || q.writeFileNum != 4 {
		t.Errorf("after open: depth %d, read file %d, write file %d; want 0, 4, 4", q.Depth(), q.readFileNum, q.writeFileNum)
	}
	want := records(0, 3)
	putBatches(t, q, want, 3)
	checkRecords(t, readAll(t, q, 10), want)
}

// TestMissingReadFile: a data file deleted behind the queue's back is skipped.
func TestMissingReadFile(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "q", dir, testOptions(t, 100))
	r := bytes.Repeat([]byte("a"), 46)
	putBatches(t, q, [][]byte{r, r, r, r, r}, 5)
	if err := os.Remove(dataFile(dir, "q", 1)); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, q, 10); len(got) != 3 {
		t.Errorf("read %d records, want 3 (files 0 and 2)", len(got))
	}
	if q.Depth() != 0 {
		t.Errorf("Depth() at tail = %d", q.Depth())
	}
}

// TestReaderAtEndOfFinishedFile opens the state go-diskqueue persists when its
// reader had caught up and the writer then rolled: the read position is the
// end of a file that is no longer the write file.
func TestReaderAtEndOfFinishedFile(t *testing.T) {
	dir := t.TempDir()
	data := frame([]byte("one"), []byte("two"))
	if err := os.WriteFile(dataFile(dir, "q", 0), data, 0o600); err != nil {
		t.Fatal(err)
	}
	want := []byte("three")
	if err := os.WriteFile(dataFile(dir, "q", 1), frame(want), 0o600); err != nil {
		t.Fatal(err)
	}
	meta := fmt.Sprintf("1\n0,%d\n1,%d\n", len(data), 4+len(want))
	if err := os.WriteFile(metaFile(dir, "q"), []byte(meta), 0o600); err != nil {
		t.Fatal(err)
	}
	q := openQueue(t, "q", dir, testOptions(t, 1<<20))
	checkRecords(t, readAll(t, q, 10), [][]byte{want})
	checkNoBadFiles(t, dir)
	if _, err := os.Stat(dataFile(dir, "q", 0)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("finished file 0 not removed: %v", err)
	}
}

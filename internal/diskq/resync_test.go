package diskq

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// Records in the resync tests look like nsqd's: a head that a check can
// judge ("rec:" and 8 hex digits) and an ASCII body.
const testCheckLen = 12

func testCheck(head []byte) bool {
	if len(head) < testCheckLen || string(head[:4]) != "rec:" {
		return false
	}
	for _, c := range head[4:testCheckLen] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func checkedRecord(i int) []byte {
	return fmt.Appendf(nil, "rec:%08x body %d %s", i, i, strings.Repeat("x", 20+i*7%41))
}

func checkedOptions(t testing.TB, maxBytesPerFile int64) Options {
	o := testOptions(t, maxBytesPerFile)
	o.MinMsgSize = testCheckLen
	o.Check, o.CheckLen = testCheck, testCheckLen
	return o
}

// damage describes a change to the data files: flip (XOR 0xff) n bytes at
// offset off of the file holding the records, or set a record's size.
type damage struct {
	name    string
	off     func(starts []int64, size int64) int64 // where, given the records' offsets and the file size
	n       int
	setSize int64 // if not 0: added to the size field at off instead of a flip
}

// TestResync damages a data file in various places and checks that the
// reader returns exactly the records whose size and head (the first
// 4+CheckLen bytes) the damage left alone, bodies as they are on disk,
// both from a finished file and from the current write file.
func TestResync(t *testing.T) {
	const n = 200
	mid := func(_ []int64, size int64) int64 { return size / 2 }
	rec := func(i int, delta int64) func([]int64, int64) int64 {
		return func(starts []int64, _ int64) int64 { return starts[i] + delta }
	}
	damages := []damage{
		{name: "start", off: rec(0, 0), n: 32},
		{name: "middle", off: mid, n: 32},
		{name: "across record boundary", off: rec(100, -16), n: 32},
		{name: "last record", off: rec(n-1, 0), n: 32},
		{name: "last bytes", off: func(_ []int64, size int64) int64 { return size - 32 }, n: 32},
		{name: "size field", off: rec(70, 0), n: 4},
		{name: "size low bytes", off: rec(70, 2), n: 2},
		{name: "head only", off: rec(70, 6), n: 3},
		{name: "size grown within file", off: rec(70, 0), setSize: 300},
		{name: "size shrunk", off: rec(70, 0), setSize: -9},
		{name: "two records", off: rec(40, 10), n: 80},
	}
	for _, current := range []bool{false, true} {
		for _, d := range damages {
			t.Run(fmt.Sprintf("%s/current=%v", d.name, current), func(t *testing.T) {
				testResync(t, n, d, current)
			})
		}
	}
}

func testResync(t *testing.T, n int, d damage, current bool) {
	dir := t.TempDir()
	o := checkedOptions(t, 1<<20)
	var logs syncBuffer
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = checkedRecord(i)
	}
	q := openQueue(t, "q", dir, o)
	putBatches(t, q, recs, 50)
	if !current {
		q.Close()
		// Roll: one more record in a new file makes file 0 a finished one.
		o.MaxBytesPerFile = 1
		q = openQueue(t, "q", dir, o)
		putBatches(t, q, [][]byte{checkedRecord(n)}, 1)
		q.Close()
		q = openQueue(t, "q", dir, o)
	}
	fn := dataFile(dir, "q", 0)
	data := readFile(t, fn)
	var starts []int64
	for p := int64(0); p < int64(len(data)); {
		starts = append(starts, p)
		p += 4 + int64(binary.BigEndian.Uint32(data[p:]))
	}
	off := d.off(starts, int64(len(data)))
	end := off + int64(d.n)
	if d.setSize != 0 {
		size := int64(binary.BigEndian.Uint32(data[off:]))
		binary.BigEndian.PutUint32(data[off:], uint32(size+d.setSize))
		end = off + 4
	} else {
		for i := off; i < end; i++ {
			data[i] ^= 0xff
		}
	}
	patch(t, fn, 0, data)

	// Expected: every record whose size and head are intact, as on disk.
	var want [][]byte
	lost := 0
	for i, s := range starts {
		if i == 70 && d.setSize < 0 {
			size := int64(binary.BigEndian.Uint32(data[s:]))
			want = append(want, data[s+4:s+4+size]) // a size shrunk but plausible: delivered short
			continue
		}
		if s < end && off < s+4+testCheckLen {
			lost++
			continue
		}
		want = append(want, data[s+4:s+4+int64(len(recs[i]))])
	}
	if !current {
		want = append(want, checkedRecord(n))
	}
	got := readAll(t, q, 7)
	checkRecords(t, got, want)
	t.Logf("%d bytes damaged at %d: %d of %d records of the damaged file lost, %d records read in all", end-off, off, lost, len(starts), len(got))

	wantRegions := int64(0) // damage inside a body cannot be seen
	if lost > 0 || d.setSize < 0 {
		wantRegions = 1
	}
	regions, skipped := q.Skipped()
	if regions != wantRegions || (skipped > 0) != (wantRegions > 0) {
		t.Errorf("Skipped() = %d regions, %d bytes; want %d regions", regions, skipped, wantRegions)
	}
	if wantRegions > 0 {
		if !strings.Contains(logs.String(), "damaged record") || !strings.Contains(logs.String(), fn) {
			t.Errorf("no log line naming %s:\n%s", fn, logs.String())
		}
		if _, err := os.Stat(fn + ".bad"); err != nil && current { // a finished file's link stays
			t.Errorf("damaged file not saved as .bad: %v", err)
		}
	}
	if q.Corrupt() != wantRegions {
		t.Errorf("Corrupt() = %d, want %d", q.Corrupt(), wantRegions)
	}
	if q.Depth() != 0 {
		t.Errorf("Depth() at tail = %d, want 0", q.Depth())
	}
	more := [][]byte{checkedRecord(n + 1), checkedRecord(n + 2)}
	putBatches(t, q, more, 2)
	checkRecords(t, readAll(t, q, 7), more)
}

// TestResyncGarbage: a file of random bytes, or of a size within bounds
// repeated (the scanner's worst case: every offset is a candidate), is
// skipped in one pass, and the next file is read.
func TestResyncGarbage(t *testing.T) {
	const size = 8 << 20
	random := make([]byte, size)
	rnd := rand.NewChaCha8([32]byte{1})
	rnd.Read(random)
	sizes := bytes.Repeat([]byte{0, 0, 0, 20}, size/4)
	// Records that pass the check, none followed by one that does: the
	// first is returned (no record starts inside it), the rest skipped.
	heads := bytes.Repeat([]byte("\x00\x00\x00\x10rec:00000000"), size/16)
	for _, tt := range []struct {
		name string
		data []byte
	}{{"random", random}, {"sizes", sizes}, {"zeros", make([]byte, size)}, {"heads", heads}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(dataFile(dir, "q", 0), tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			want := [][]byte{checkedRecord(1), checkedRecord(2)}
			if err := os.WriteFile(dataFile(dir, "q", 1), frame(want...), 0o600); err != nil {
				t.Fatal(err)
			}
			meta := fmt.Sprintf("%d\n0,0\n1,%d\n", 1000, len(frame(want...)))
			if err := os.WriteFile(metaFile(dir, "q"), []byte(meta), 0o600); err != nil {
				t.Fatal(err)
			}
			q := openQueue(t, "q", dir, checkedOptions(t, 1<<20))
			start := time.Now()
			got := readAll(t, q, 10)
			t.Logf("skipped %d bytes of %s in %v", len(tt.data), tt.name, time.Since(start))
			wantSkipped := int64(len(tt.data))
			if tt.name == "heads" {
				want = append([][]byte{tt.data[4:20]}, want...)
				wantSkipped -= 20
			}
			checkRecords(t, got, want)
			regions, skipped := q.Skipped()
			if regions != 1 || skipped != wantSkipped {
				t.Errorf("Skipped() = %d regions, %d bytes; want 1, %d", regions, skipped, wantSkipped)
			}
		})
	}
}

// TestResyncExplicitCommit: with ExplicitCommit a skip is part of what a
// commit persists; a restart resumes after it and reads nothing twice.
func TestResyncExplicitCommit(t *testing.T) {
	dir := t.TempDir()
	o := checkedOptions(t, 1<<20)
	o.ExplicitCommit = true
	q := openQueue(t, "q", dir, o)
	recs := make([][]byte, 20)
	for i := range recs {
		recs[i] = checkedRecord(i)
	}
	putBatches(t, q, recs, 20)
	at := int64(0)
	for _, r := range recs[:5] {
		at += 4 + int64(len(r))
	}
	patch(t, dataFile(dir, "q", 0), at, []byte{0xff, 0xff, 0xff, 0xff}) // record 5's size
	checkRecords(t, readN(t, q, 10), append(append([][]byte{}, recs[:5]...), recs[6:11]...))
	q.Commit()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, "q", dir, o)
	checkRecords(t, readAll(t, q, 100), recs[11:])
}

// TestResyncOptions: Check needs a CheckLen within bounds.
func TestResyncOptions(t *testing.T) {
	for _, l := range []int{0, maxCheckLen + 1} {
		o := checkedOptions(t, 100)
		o.CheckLen = l
		if _, err := Open("q", t.TempDir(), o); err == nil {
			t.Errorf("Open with CheckLen %d succeeded", l)
		}
	}
}

// BenchmarkResyncScan measures the scan over garbage (random bytes).
func BenchmarkResyncScan(b *testing.B) {
	const size = 16 << 20
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{2}).Read(data)
	dir := b.TempDir()
	fn := dataFile(dir, "q", 0)
	if err := os.WriteFile(fn, data, 0o600); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(fn)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	q := &Queue{opts: checkedOptions(b, 1<<20)}
	b.SetBytes(size)
	for b.Loop() {
		if _, found, err := q.scan(f, 0, size, size); found || err != nil {
			b.Fatalf("scan: found %v, err %v", found, err)
		}
	}
}

// BenchmarkReadChecked is the cost of Options.Check on reads of good
// records (200 bytes, never synced): check=off is go-diskqueue's rule.
func BenchmarkReadChecked(b *testing.B) {
	rec := append([]byte("rec:00000000"), bytes.Repeat([]byte("m"), benchRecordSize-testCheckLen)...)
	refill := make([][]byte, benchRefill)
	for i := range refill {
		refill[i] = rec
	}
	for _, check := range []bool{false, true} {
		b.Run(fmt.Sprintf("check=%v", check), func(b *testing.B) {
			o := benchOptions(b, 1<<62)
			if check {
				o.Check, o.CheckLen, o.MinMsgSize = testCheck, testCheckLen, testCheckLen
			}
			q := openQueue(b, "q", b.TempDir(), o)
			var buf [][]byte
			next, queued := 0, 0
			b.SetBytes(benchRecordSize)
			b.ReportAllocs()
			for b.Loop() {
				if next == len(buf) {
					if queued == 0 {
						b.StopTimer()
						putBatches(b, q, refill, benchBatch)
						queued = benchRefill
						b.StartTimer()
					}
					var err error
					if buf, err = q.Read(buf[:0], benchBatch); err != nil || len(buf) == 0 {
						b.Fatalf("Read returned %d records, err %v", len(buf), err)
					}
					next, queued = 0, queued-len(buf)
				}
				next++
			}
			reportMsgsPerSec(b)
		})
	}
}

// TestResyncMatchesModel damages good data files at random (flips, runs of
// garbage or zeros, truncation, sizes set at random) and checks that the
// reader returns what resyncModel finds, the rule written plainly.
func TestResyncMatchesModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	iterations := 150
	if testing.Short() {
		iterations = 50
	}
	for it := range iterations {
		var recs [][]byte
		for i := range 1 + rnd.IntN(40) {
			recs = append(recs, checkedRecord(it*100+i))
		}
		data := frame(recs...)
		for range 1 + rnd.IntN(3) {
			off := rnd.IntN(len(data))
			n := min(1+rnd.IntN(64), len(data)-off)
			switch rnd.IntN(5) {
			case 0:
				for i := off; i < off+n; i++ {
					data[i] ^= 0xff
				}
			case 1:
				for i := off; i < off+n; i++ {
					data[i] = byte(rnd.Uint32())
				}
			case 2:
				clear(data[off : off+n])
			case 3:
				if off+4 <= len(data) {
					binary.BigEndian.PutUint32(data[off:], uint32(testCheckLen+rnd.IntN(300)))
				}
			case 4:
				data = data[:off]
			}
			if len(data) == 0 {
				break
			}
		}
		want := resyncModel(data, testCheckLen, 200)
		for _, current := range []bool{false, true} {
			dir := t.TempDir()
			if err := os.WriteFile(dataFile(dir, "q", 0), data, 0o600); err != nil {
				t.Fatal(err)
			}
			meta := fmt.Sprintf("%d\n0,0\n1,0\n", len(recs))
			if current {
				meta = fmt.Sprintf("%d\n0,0\n0,%d\n", len(recs), len(data))
			}
			if err := os.WriteFile(metaFile(dir, "q"), []byte(meta), 0o600); err != nil {
				t.Fatal(err)
			}
			o := checkedOptions(t, 1<<20)
			o.MaxMsgSize, o.Logger = 200, nil
			q := openQueue(t, "q", dir, o)
			q.hooks.fsync = func(*os.File) error { return nil }
			got := readAll(t, q, 1+it%5)
			if len(got) != len(want) {
				t.Fatalf("iteration %d (current %v): read %d records, model %d; data %x", it, current, len(got), len(want), data)
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("iteration %d (current %v): record %d = %q, model %q", it, current, i, got[i], want[i])
				}
			}
			q.Close()
		}
	}
}

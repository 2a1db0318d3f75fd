package diskq

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the reader as a data file, either a
// finished file or the current write file. The reader must return exactly
// the records a straightforward parse finds before the first damage, flag the
// damage once, never hand out a record over MaxMsgSize, and leave a queue that
// still works.
func FuzzRead(f *testing.F) {
	f.Add(frame([]byte("hello"), []byte("world")), false)
	f.Add(frame([]byte("hello"), []byte("world")), true)
	f.Add(append(frame([]byte("ok")), 0xff, 0xff, 0xff, 0xff), false)
	f.Add(append(frame([]byte("ok")), 0x7f, 0xff, 0xff, 0xff, 'x'), true)
	f.Add(append(frame([]byte("ok")), 0, 0), false)
	f.Add(frame(make([]byte, 100), make([]byte, 101)), false)
	f.Add([]byte{}, false)

	const minSize, maxSize = 1, 100
	f.Fuzz(func(t *testing.T, data []byte, current bool) {
		want, damaged := parseRecords(data, minSize, maxSize)
		dir := t.TempDir()
		if err := os.WriteFile(dataFile(dir, "q", 0), data, 0o600); err != nil {
			t.Fatal(err)
		}
		meta := fmt.Sprintf("%d\n0,0\n1,0\n", len(want))
		if current {
			meta = fmt.Sprintf("%d\n0,0\n0,%d\n", len(want), len(data))
		}
		if err := os.WriteFile(metaFile(dir, "q"), []byte(meta), 0o600); err != nil {
			t.Fatal(err)
		}
		o := testOptions(t, 1<<20)
		o.MinMsgSize, o.MaxMsgSize = minSize, maxSize
		o.Logger = nil
		q, err := Open("q", dir, o)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		q.hooks.fsync = func(*os.File) error { return nil } // speed; not what is tested

		got := readAll(t, q, 3)
		for _, r := range got {
			if cap(r) > maxSize {
				t.Fatalf("record with capacity %d over MaxMsgSize %d", cap(r), maxSize)
			}
		}
		checkRecords(t, got, want)
		if wantCorrupt := int64(0); damaged {
			wantCorrupt = 1
			if q.Corrupt() != wantCorrupt {
				t.Fatalf("Corrupt() = %d, want %d", q.Corrupt(), wantCorrupt)
			}
		} else if q.Corrupt() != 0 {
			t.Fatalf("Corrupt() = %d for an undamaged file", q.Corrupt())
		}
		if q.Depth() != 0 {
			t.Fatalf("Depth() = %d at tail", q.Depth())
		}
		if err := q.Put([]byte("after")); err != nil {
			t.Fatal(err)
		}
		checkRecords(t, readAll(t, q, 3), [][]byte{[]byte("after")})
	})
}

// parseRecords splits a data file into records up to the first damage.
func parseRecords(b []byte, minSize, maxSize int32) (recs [][]byte, damaged bool) {
	for len(b) > 0 {
		if len(b) < 4 {
			return recs, true
		}
		size := int32(binary.BigEndian.Uint32(b))
		if size < minSize || size > maxSize || int(size) > len(b)-4 {
			return recs, true
		}
		recs = append(recs, b[4:4+size])
		b = b[4+size:]
	}
	return recs, false
}

// FuzzResync feeds arbitrary bytes to a reader with Options.Check, as a
// finished file or the current write file, read in batches of 1 to 8. The
// reader must stop (every scan moves forward), hand out exactly the records
// resyncModel finds, and leave a queue that still works.
func FuzzResync(f *testing.F) {
	good := frame(checkedRecord(1), checkedRecord(2), checkedRecord(3))
	f.Add(good, false, uint8(3))
	f.Add(good, true, uint8(1))
	flipped := bytes.Clone(good)
	for i := 40; i < 72; i++ {
		flipped[i] ^= 0xff
	}
	f.Add(flipped, false, uint8(2))
	f.Add(append([]byte{0, 0, 0, 0, 0, 0}, good...), true, uint8(8))
	f.Add(append(good[:len(good)-3:len(good)-3], good...), false, uint8(4))
	f.Add(bytes.Repeat([]byte("\x00\x00\x00\x10rec:00000000"), 8), false, uint8(5))
	f.Add(bytes.Repeat([]byte("\x00\x00\x00\x0crec:00000000"), 8), true, uint8(5))
	f.Add([]byte{}, false, uint8(1))

	f.Fuzz(func(t *testing.T, data []byte, current bool, batch uint8) {
		const minSize, maxSize = testCheckLen, 200
		want := resyncModel(data, minSize, maxSize)
		dir := t.TempDir()
		if err := os.WriteFile(dataFile(dir, "q", 0), data, 0o600); err != nil {
			t.Fatal(err)
		}
		meta := fmt.Sprintf("%d\n0,0\n1,0\n", len(want))
		if current {
			meta = fmt.Sprintf("%d\n0,0\n0,%d\n", len(want), len(data))
		}
		if err := os.WriteFile(metaFile(dir, "q"), []byte(meta), 0o600); err != nil {
			t.Fatal(err)
		}
		o := checkedOptions(t, 1<<20)
		o.MinMsgSize, o.MaxMsgSize = minSize, maxSize
		o.Logger = nil
		q, err := Open("q", dir, o)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		q.hooks.fsync = func(*os.File) error { return nil } // speed; not what is tested

		got := readAll(t, q, int(batch%8)+1)
		checkRecords(t, got, want)
		if q.Depth() != 0 {
			t.Fatalf("Depth() = %d at tail", q.Depth())
		}
		after := checkedRecord(99)
		if err := q.Put(after); err != nil {
			t.Fatal(err)
		}
		checkRecords(t, readAll(t, q, 3), [][]byte{after})
	})
}

// resyncModel is the reading rule of resync.go written as plainly as
// possible, over a whole file in memory.
func resyncModel(b []byte, minSize, maxSize int64) [][]byte {
	end := int64(len(b))
	size := func(p int64) (int64, bool) {
		if end-p < 4 {
			return 0, false
		}
		s := int64(int32(binary.BigEndian.Uint32(b[p:])))
		return s, s >= minSize && s <= maxSize
	}
	plausible := func(p int64) (int64, bool) {
		s, ok := size(p)
		if !ok || p+4+s > end {
			return 0, false
		}
		return s, testCheck(b[p+4 : p+4+min(s, testCheckLen)])
	}
	successorOK := func(p int64) bool {
		if end-p < 4 {
			return true
		}
		s, ok := size(p)
		if !ok {
			return false
		}
		if p+4+s > end {
			return true
		}
		return testCheck(b[p+4 : p+4+min(s, testCheckLen)])
	}
	scan := func(from, limit int64) int64 {
		for p := from; p < limit && p+4 <= end; p++ {
			if s, ok := plausible(p); ok && successorOK(p+4+s) {
				return p
			}
		}
		return -1
	}
	var recs [][]byte
	for p := int64(0); p < end; {
		s, ok := plausible(p)
		if !ok {
			if p = scan(p+1, end); p < 0 {
				break
			}
			continue
		}
		np := p + 4 + s
		if !successorOK(np) {
			if c := scan(p+1, np); c >= 0 {
				p = c
				continue
			}
		}
		recs = append(recs, b[p+4:np])
		p = np
	}
	return recs
}

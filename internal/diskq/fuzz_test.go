package diskq

import (
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

package diskq

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// Peek returns what Read will return next, across file rolls, and changes
// nothing: not the depth, not the next Read, not the metadata on disk.
func TestPeek(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, "peek", dir, testOptions(t, 300)) // a few records per file
	recs := records(0, 60)
	putBatches(t, q, recs, 7)
	got, err := q.Read(nil, 5)
	if err != nil || len(got) != 5 {
		t.Fatalf("Read = %d records, %v", len(got), err)
	}
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	meta, err := os.ReadFile(filepath.Join(dir, "peek.diskqueue.meta.dat"))
	if err != nil {
		t.Fatal(err)
	}

	for range 2 { // twice: the first peek must not have moved anything
		peeked, err := q.Peek(100, 1<<20)
		if err != nil {
			t.Fatalf("Peek: %v", err)
		}
		if len(peeked) != 55 {
			t.Fatalf("Peek returned %d records, want 55", len(peeked))
		}
		for i, p := range peeked {
			if want := recs[5+i]; !bytes.Equal(p.Data, want) || p.Size != len(want) {
				t.Fatalf("Peek record %d = %q (size %d), want %q", i, p.Data, p.Size, want)
			}
		}
	}
	if d := q.Depth(); d != 55 {
		t.Errorf("Depth after Peek = %d, want 55", d)
	}
	short, err := q.Peek(3, 8)
	if err != nil || len(short) != 3 {
		t.Fatalf("Peek(3, 8) = %d records, %v", len(short), err)
	}
	for i, p := range short {
		if want := recs[5+i]; !bytes.Equal(p.Data, want[:8]) || p.Size != len(want) {
			t.Errorf("Peek(3, 8) record %d = %q (size %d), want %q (size %d)", i, p.Data, p.Size, want[:8], len(want))
		}
	}
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	if meta2, _ := os.ReadFile(filepath.Join(dir, "peek.diskqueue.meta.dat")); !bytes.Equal(meta, meta2) {
		t.Errorf("metadata changed by Peek: %q, was %q", meta2, meta)
	}
	rest, err := q.Read(nil, 100)
	if err != nil || len(rest) != 55 {
		t.Fatalf("Read after Peek = %d records, %v", len(rest), err)
	}
	for i, r := range rest {
		if !bytes.Equal(r, recs[5+i]) {
			t.Fatalf("Read after Peek record %d = %q, want %q", i, r, recs[5+i])
		}
	}
	if p, err := q.Peek(10, 100); err != nil || len(p) != 0 {
		t.Errorf("Peek of an empty queue = %d records, %v", len(p), err)
	}
}

// A peek racing with reads that finish and remove files returns records in
// order and never fails.
func TestPeekConcurrentRead(t *testing.T) {
	q := openQueue(t, "peekrace", t.TempDir(), testOptions(t, 600))
	recs := records(0, 400)
	putBatches(t, q, recs, 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for q.Depth() > 0 {
			q.Read(nil, 3)
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		peeked, err := q.Peek(20, 1<<20)
		if err != nil {
			t.Fatalf("Peek during reads: %v", err)
		}
		for i := 1; i < len(peeked); i++ {
			if bytes.Compare(peeked[i-1].Data[:13], peeked[i].Data[:13]) >= 0 {
				t.Fatalf("Peek out of order: %q then %q", peeked[i-1].Data, peeked[i].Data)
			}
		}
	}
}

// With Options.Check, Peek skips a damaged record as the reader does and
// shows the records Read then returns.
func TestPeekSkipsDamage(t *testing.T) {
	dir := t.TempDir()
	o := checkedOptions(t, 1<<20)
	q := openQueue(t, "q", dir, o)
	recs := make([][]byte, 60)
	for i := range recs {
		recs[i] = checkedRecord(i)
	}
	putBatches(t, q, recs, 60)
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	fn := dataFile(dir, "q", 0)
	data := readFile(t, fn)
	off := int64(0)
	for range 20 { // the head of record 20
		off += 4 + int64(binary.BigEndian.Uint32(data[off:]))
	}
	f, err := os.OpenFile(fn, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XXXX"), off+4); err != nil {
		t.Fatal(err)
	}
	f.Close()
	peeked, err := q.Peek(100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	read, err := q.Read(nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(peeked) != 59 || len(read) != 59 {
		t.Fatalf("Peek %d records, Read %d; want 59 (record 20 damaged)", len(peeked), len(read))
	}
	for i := range read {
		if !bytes.Equal(peeked[i].Data, read[i]) {
			t.Fatalf("record %d: Peek %q, Read %q", i, peeked[i].Data, read[i])
		}
	}
}

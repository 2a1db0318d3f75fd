package diskq

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The tests in this file check that a data directory moves between
// go-diskqueue v1.1.0 and Queue in both directions.

var compatFileSizes = []int64{1 << 20, 100, 333, 1024}

func TestCompatGoDiskqueueWritesQueueReads(t *testing.T) {
	for _, maxBytes := range compatFileSizes {
		t.Run(fmt.Sprintf("max=%d", maxBytes), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := testOptions(t, maxBytes)
			want := records(0, 200)
			dq := openGoDiskqueue(t, "q", dir, o)
			for _, r := range want {
				if err := dq.Put(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := dq.Close(); err != nil {
				t.Fatal(err)
			}

			q := openQueue(t, "q", dir, o)
			if q.Depth() != int64(len(want)) {
				t.Errorf("Depth() = %d, want %d", q.Depth(), len(want))
			}
			checkRecords(t, readAll(t, q, 17), want)
			checkNoBadFiles(t, dir)
		})
	}
}

func TestCompatQueueWritesGoDiskqueueReads(t *testing.T) {
	for _, maxBytes := range compatFileSizes {
		t.Run(fmt.Sprintf("max=%d", maxBytes), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := testOptions(t, maxBytes)
			want := records(0, 200)
			q := openQueue(t, "q", dir, o)
			putBatches(t, q, want, 23)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}

			dq := openGoDiskqueue(t, "q", dir, o)
			defer dq.Close()
			if got := dq.Depth(); got != int64(len(want)) {
				t.Errorf("go-diskqueue Depth() = %d, want %d", got, len(want))
			}
			checkRecords(t, readGoDiskqueue(t, dq, len(want)), want)
			if got := dq.Depth(); got != 0 {
				t.Errorf("go-diskqueue Depth() after reading all = %d", got)
			}
			checkNoBadFiles(t, dir)
		})
	}
}

// TestCompatHandoff alternates sessions of the two implementations on one
// directory, each reading part of what is queued and writing more.
func TestCompatHandoff(t *testing.T) {
	for _, maxBytes := range compatFileSizes {
		t.Run(fmt.Sprintf("max=%d", maxBytes), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := testOptions(t, maxBytes)
			rng := rand.New(rand.NewPCG(uint64(maxBytes), 0))
			var fifo [][]byte // what the queue should hold
			next := 0
			for round := range 8 {
				// Read part of the queue, never all of it: go-diskqueue renames a
				// good file to .bad when its reader has caught up with the writer
				// and the writer rolls (nsqio/go-diskqueue#42).
				nRead := 0
				if len(fifo) > 1 {
					nRead = rng.IntN(len(fifo) - 1)
				}
				add := records(next, 20+rng.IntN(60))
				next += len(add)

				if round%2 == 0 {
					dq := openGoDiskqueue(t, "q", dir, o)
					if got := dq.Depth(); got != int64(len(fifo)) {
						t.Errorf("round %d: go-diskqueue Depth() = %d, want %d", round, got, len(fifo))
					}
					checkRecords(t, readGoDiskqueue(t, dq, nRead), fifo[:nRead])
					for _, r := range add {
						if err := dq.Put(r); err != nil {
							t.Fatal(err)
						}
					}
					if err := dq.Close(); err != nil {
						t.Fatal(err)
					}
				} else {
					q := openQueue(t, "q", dir, o)
					if got := q.Depth(); got != int64(len(fifo)) {
						t.Errorf("round %d: Depth() = %d, want %d", round, got, len(fifo))
					}
					checkRecords(t, readN(t, q, nRead), fifo[:nRead])
					putBatches(t, q, add, 1+rng.IntN(30))
					if err := q.Close(); err != nil {
						t.Fatal(err)
					}
				}
				fifo = append(fifo[nRead:], add...)
			}
			q := openQueue(t, "q", dir, o)
			checkRecords(t, readAll(t, q, 50), fifo)
			checkNoBadFiles(t, dir)
		})
	}
}

// TestCompatIdenticalFiles: the same records, put one at a time into
// go-diskqueue and in batches into Queue, and partly read from both, leave
// byte-identical data files and the same metadata.
func TestCompatIdenticalFiles(t *testing.T) {
	for _, maxBytes := range []int64{1 << 20, 500, 1000} {
		for _, nRead := range []int{0, 7, 150} {
			t.Run(fmt.Sprintf("max=%d/read=%d", maxBytes, nRead), func(t *testing.T) {
				t.Parallel()
				o := testOptions(t, maxBytes)
				rng := rand.New(rand.NewPCG(uint64(maxBytes), uint64(nRead)))
				recs := make([][]byte, 300)
				for i := range recs {
					recs[i] = bytes.Repeat([]byte{byte(i)}, 1+rng.IntN(300))
				}

				theirs := t.TempDir()
				dq := openGoDiskqueue(t, "q", theirs, o)
				for _, r := range recs {
					if err := dq.Put(r); err != nil {
						t.Fatal(err)
					}
				}
				readGoDiskqueue(t, dq, nRead)
				if err := dq.Close(); err != nil {
					t.Fatal(err)
				}

				ours := t.TempDir()
				q := openQueue(t, "q", ours, o)
				for rest := recs; len(rest) > 0; {
					n := min(1+rng.IntN(40), len(rest))
					putBatches(t, q, rest[:n], n)
					rest = rest[n:]
				}
				readN(t, q, nRead)
				if err := q.Close(); err != nil {
					t.Fatal(err)
				}

				names := dirFiles(t, theirs)
				if got := dirFiles(t, ours); !slices.Equal(got, names) {
					t.Fatalf("files = %q, go-diskqueue's = %q", got, names)
				}
				for _, name := range names {
					a, b := readFile(t, theirs+"/"+name), readFile(t, ours+"/"+name)
					if !bytes.Equal(a, b) {
						if strings.HasSuffix(name, ".meta.dat") {
							t.Errorf("metadata = %q, go-diskqueue's = %q", b, a)
						} else {
							t.Errorf("%s differs from go-diskqueue's (%d vs %d bytes)", name, len(b), len(a))
						}
					}
				}
			})
		}
	}
}

func checkNoBadFiles(t *testing.T, dir string) {
	t.Helper()
	for _, f := range dirFiles(t, dir) {
		if strings.HasSuffix(f, ".bad") {
			t.Errorf("unexpected damaged file %s", f)
		}
	}
}

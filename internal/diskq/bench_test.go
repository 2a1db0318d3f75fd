package diskq

import (
	"bytes"
	"testing"
)

// The benchmarks compare Queue with go-diskqueue v1.1.0 for 200-byte records
// in 100 MiB files, syncing as nsqd does by default (every 2500 operations:
// fsync then dominates both) and never (the cost of the I/O path itself).
// One iteration is one record; Queue puts and reads in batches of 200.
// Run: go test -bench . -benchtime=200000x ./internal/diskq/

const (
	benchRecordSize = 200
	benchBatch      = 200
	benchRefill     = 100_000 // records queued at a time for the read benchmarks
)

var benchSyncEvery = []struct {
	name  string
	every int64
}{{"sync=2500", 2500}, {"sync=never", 1 << 62}}

func benchOptions(b *testing.B, syncEvery int64) Options {
	o := testOptions(b, 100<<20)
	o.SyncEvery = syncEvery
	o.SyncTimeout = 1 << 62
	o.Logger = nil
	return o
}

func reportMsgsPerSec(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkPut(b *testing.B) {
	for _, se := range benchSyncEvery {
		b.Run(se.name, func(b *testing.B) { benchmarkPut(b, se.every) })
	}
}

func benchmarkPut(b *testing.B, syncEvery int64) {
	rec := bytes.Repeat([]byte("m"), benchRecordSize)
	for _, batchSize := range []int{benchBatch, 1} {
		name := "impl=diskq/batch=200"
		if batchSize == 1 {
			name = "impl=diskq/batch=1"
		}
		b.Run(name, func(b *testing.B) {
			q := openQueue(b, "q", b.TempDir(), benchOptions(b, syncEvery))
			batch := make([][]byte, 0, batchSize)
			b.SetBytes(benchRecordSize)
			b.ReportAllocs()
			for b.Loop() {
				batch = append(batch, rec)
				if len(batch) == batchSize {
					if err := q.Put(batch...); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			reportMsgsPerSec(b)
			if err := q.Put(batch...); err != nil {
				b.Fatal(err)
			}
		})
	}
	b.Run("impl=go-diskqueue", func(b *testing.B) {
		dq := openGoDiskqueue(b, "q", b.TempDir(), benchOptions(b, syncEvery))
		defer dq.Close()
		b.SetBytes(benchRecordSize)
		b.ReportAllocs()
		for b.Loop() {
			if err := dq.Put(rec); err != nil {
				b.Fatal(err)
			}
		}
		reportMsgsPerSec(b)
	})
}

func BenchmarkRead(b *testing.B) {
	for _, se := range benchSyncEvery {
		b.Run(se.name, func(b *testing.B) { benchmarkRead(b, se.every) })
	}
}

func benchmarkRead(b *testing.B, syncEvery int64) {
	rec := bytes.Repeat([]byte("m"), benchRecordSize)
	refill := make([][]byte, benchRefill)
	for i := range refill {
		refill[i] = rec
	}
	b.Run("impl=diskq/batch=200", func(b *testing.B) {
		q := openQueue(b, "q", b.TempDir(), benchOptions(b, syncEvery))
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
			if len(buf[next]) != benchRecordSize {
				b.Fatal("short record")
			}
			next++
		}
		reportMsgsPerSec(b)
	})
	b.Run("impl=go-diskqueue", func(b *testing.B) {
		dq := openGoDiskqueue(b, "q", b.TempDir(), benchOptions(b, syncEvery))
		defer dq.Close()
		queued := 0
		b.SetBytes(benchRecordSize)
		b.ReportAllocs()
		for b.Loop() {
			if queued == 0 {
				b.StopTimer()
				for _, r := range refill {
					if err := dq.Put(r); err != nil {
						b.Fatal(err)
					}
				}
				queued = benchRefill
				b.StartTimer()
			}
			if r := <-dq.ReadChan(); len(r) != benchRecordSize {
				b.Fatal("short record")
			}
			queued--
		}
		reportMsgsPerSec(b)
	})
}

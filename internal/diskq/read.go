package diskq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

const (
	// readAheadSize is how much of a data file one read system call fetches.
	readAheadSize = 64 << 10
	// carveSize bounds the allocation that several small records returned by
	// one Read share, so a record kept for long (a deferred message) pins at
	// most this much memory.
	carveSize = 16 << 10
)

// readBufs holds read-ahead buffers. A queue holds one only while it has
// read-ahead data not yet returned, so thousands of idle queues cost nothing.
var readBufs = sync.Pool{New: func() any {
	b := make([]byte, readAheadSize)
	return &b
}}

// reader is the read side of a Queue, guarded by Queue.mu. Its file offset is
// ahead of Queue.readPos by the buffered bytes: off-(w-r) == readPos.
type reader struct {
	f    *os.File
	bp   *[]byte
	buf  []byte // read-ahead; buf[r:w] is not yet consumed
	r, w int
	off  int64 // file offset of buf[w]

	// During a Read: records parsed in buf but not yet copied out, the slice
	// being returned, and fully read files to remove once q.mu is released
	// (unlinking a large file can take milliseconds).
	spans     []span
	spanBytes int
	out       [][]byte
	finished  []string

	// With Options.Check, for the open file: checkedAt is the offset of a
	// record whose head passed Check as the successor of the record before
	// it (-1: none), and badLinked
	// that the file was saved as .bad.
	checkedAt int64
	badLinked bool
	scratch   []byte // for a record head beyond buf, allocated on first use
}

type span struct{ start, end int }

// flush copies the pending records into one allocation and appends them to
// out, each capped at its own length so appending to one cannot overwrite the
// next. It runs before buf is compacted or released.
func (rd *reader) flush() {
	if len(rd.spans) == 0 {
		return
	}
	chunk := make([]byte, rd.spanBytes)
	off := 0
	for _, s := range rd.spans {
		n := copy(chunk[off:], rd.buf[s.start:s.end])
		rd.out = append(rd.out, chunk[off:off+n:off+n])
		off += n
	}
	rd.spans = rd.spans[:0]
	rd.spanBytes = 0
}

func (rd *reader) releaseBuf() {
	if rd.bp != nil {
		readBufs.Put(rd.bp)
	}
	rd.bp, rd.buf, rd.r, rd.w = nil, nil, 0, 0
}

// Read appends up to max records to dst in FIFO order and returns it. It does
// not block: with the queue empty it returns dst unchanged (wait on Ready).
// Each record is a slice the caller may keep; several small records may share
// one allocation.
//
// A record with an invalid size or one that runs past the end of its file
// means the file is damaged. Without Options.Check it is renamed to
// <file>.bad, logged, counted in Corrupt and Skipped, and reading continues
// with the next file. With Check, only the damaged record is skipped (see
// resync.go). Only errors that leave the position unchanged (opening a file
// fails for a reason other than its absence) are returned, together with the
// records read before them.
func (q *Queue) Read(dst [][]byte, max int) ([][]byte, error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return dst, ErrClosed
	}
	rd := &q.rd
	rd.out = dst
	n0 := len(dst)
	var err error
	for len(rd.out)-n0+len(rd.spans) < max && q.hasDataLocked() {
		if err = q.readNextLocked(); err != nil {
			break
		}
	}
	rd.flush()
	dst, rd.out = rd.out, nil
	if rd.r == rd.w {
		rd.releaseBuf()
	}
	q.checkTailLocked()
	doSync := q.needSync || q.ops >= q.opts.SyncEvery
	finished := rd.finished
	rd.finished = nil
	if q.opts.ExplicitCommit {
		q.uncommittedFiles = append(q.uncommittedFiles, finished...)
		finished = nil
	}
	q.mu.Unlock()

	for _, fn := range finished {
		q.removeFile(fn)
	}
	if doSync {
		if err := q.autoSync(); err != nil {
			q.log.Error("DISKQUEUE: failed to sync", "err", err)
		}
	}
	if err != nil {
		return dst, fmt.Errorf("read from diskqueue %q: %w", q.name, err)
	}
	return dst, nil
}

// Commit makes everything read so far the persisted read position (with
// ExplicitCommit; otherwise Read already did). The next sync that writes the
// metadata persists it and then removes the files read to their end.
func (q *Queue) Commit() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	if q.commitFileNum != q.readFileNum || q.commitPos != q.readPos {
		q.needSync = q.needSync || q.ops == 0
	}
	q.commitFileNum, q.commitPos = q.readFileNum, q.readPos
	q.uncommitted = 0
	q.committedFiles = append(q.committedFiles, q.uncommittedFiles...)
	q.uncommittedFiles = nil
	q.mu.Unlock()
}

// readNextLocked takes one step: it reads one record, or moves past a
// finished, missing or damaged file.
func (q *Queue) readNextLocked() error {
	rd := &q.rd
	if rd.f == nil {
		fn := q.fileName(q.readFileNum)
		f, err := os.Open(fn)
		if errors.Is(err, fs.ErrNotExist) {
			q.log.Error("DISKQUEUE: data file missing, skipping to next file", "file", fn)
			q.skipReadFileLocked()
			return nil
		}
		if err != nil {
			return err
		}
		if q.readFileNum < q.writeFileNum && q.readEnd < 0 {
			if e, ok := q.knownEnds[q.readFileNum]; ok {
				q.readEnd = e
			} else if st, err := f.Stat(); err != nil {
				f.Close()
				return err
			} else {
				q.readEnd = st.Size()
			}
		}
		rd.f, rd.off, rd.r, rd.w, rd.checkedAt = f, q.readPos, 0, 0, -1
	}

	end := q.writePos
	if q.readFileNum < q.writeFileNum {
		end = q.readEnd
	}
	switch {
	case q.readPos == end:
		// A finished file read up to its end. go-diskqueue only moves on
		// after reading a record, so if the writer rolled while the reader
		// was caught up it hits EOF and renames a good file to .bad
		// (nsqio/go-diskqueue#42); moving on here avoids that.
		q.nextReadFileLocked()
		return nil
	case q.readPos > end:
		q.damagedLocked(fmt.Errorf("read position %d past end of file %d", q.readPos, end), end)
		return nil
	}
	if err := q.readRecordLocked(end); err != nil {
		if de, ok := errors.AsType[*damageError](err); ok && q.opts.Check != nil {
			q.resyncLocked(end, de)
		} else {
			q.damagedLocked(err, end)
		}
		return nil
	}
	if q.readFileNum < q.writeFileNum && q.readPos >= end {
		q.nextReadFileLocked()
	}
	return nil
}

// readRecordLocked reads the record at readPos, which is before end, the
// file's known end. Its size is checked against the bounds and end before
// anything is allocated for it.
func (q *Queue) readRecordLocked(end int64) error {
	rd := &q.rd
	if q.readPos+4 > end {
		return damaged(fmt.Errorf("%d bytes at %d, too few for a record header", end-q.readPos, q.readPos))
	}
	if err := q.fillLocked(4, end); err != nil {
		return err
	}
	size := int64(int32(binary.BigEndian.Uint32(rd.buf[rd.r:])))
	if size < int64(q.opts.MinMsgSize) || size > int64(q.opts.MaxMsgSize) {
		return damaged(fmt.Errorf("invalid record size %d at %d", size, q.readPos))
	}
	total := 4 + size
	if q.readPos+total > end {
		return damaged(fmt.Errorf("record of %d bytes at %d runs past end of file %d", size, q.readPos, end))
	}
	if q.opts.Check != nil {
		if err := q.checkRecordLocked(size, end); err != nil {
			return err
		}
	}
	if total <= int64(len(rd.buf)) {
		if err := q.fillLocked(int(total), end); err != nil {
			return err
		}
		if rd.spanBytes+int(size) > carveSize {
			rd.flush()
		}
		rd.spans = append(rd.spans, span{rd.r + 4, rd.r + int(total)})
		rd.spanBytes += int(size)
		rd.r += int(total)
	} else {
		// Larger than the read-ahead buffer: read it into its own slice.
		rd.flush()
		rec := make([]byte, size)
		have := copy(rec, rd.buf[rd.r+4:rd.w])
		rd.r = rd.w
		k, err := rd.f.ReadAt(rec[have:], rd.off)
		rd.off += int64(k)
		if have+k < len(rec) {
			return fmt.Errorf("read record of %d bytes at %d: %w", size, q.readPos, eofIsShort(err))
		}
		rd.out = append(rd.out, rec)
	}
	q.readPos += total
	q.depth.Add(-1)
	q.uncommitted++
	q.ops++
	return nil
}

// fillLocked makes at least n (<= len(buf)) bytes available in buf[r:w],
// reading ahead as far as the buffer and end allow.
func (q *Queue) fillLocked(n int, end int64) error {
	rd := &q.rd
	if rd.w-rd.r >= n {
		return nil
	}
	if rd.buf == nil {
		rd.bp = readBufs.Get().(*[]byte)
		rd.buf = *rd.bp
	}
	if rd.r > 0 {
		rd.flush()
		rd.w = copy(rd.buf, rd.buf[rd.r:rd.w])
		rd.r = 0
	}
	var err error
	if want := min(int64(len(rd.buf)-rd.w), end-rd.off); want > 0 {
		var k int
		k, err = rd.f.ReadAt(rd.buf[rd.w:rd.w+int(want)], rd.off)
		rd.w += k
		rd.off += int64(k)
	}
	if rd.w < n {
		return fmt.Errorf("read at %d: %w", rd.off, eofIsShort(err))
	}
	return nil
}

func eofIsShort(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// nextReadFileLocked moves past the fully read file, which Read then
// removes. Nothing else touches a file before readFileNum.
func (q *Queue) nextReadFileLocked() {
	q.closeReadFileLocked()
	q.rd.finished = append(q.rd.finished, q.fileName(q.readFileNum))
	q.advanceReadFileLocked()
}

// damagedLocked renames the damaged read file to .bad and moves on; end is
// where its data ends.
func (q *Queue) damagedLocked(cause error, end int64) {
	fn := q.fileName(q.readFileNum)
	bad := fn + ".bad"
	q.skippedRegions.Add(1)
	q.skippedBytes.Add(max(end-q.readPos, 0))
	if q.opts.Damaged != nil {
		q.opts.Damaged(fmt.Errorf("%s: damaged, skipped from byte %d to its end %d and saved as .bad: %w", fn, q.readPos, end, cause))
	}
	linked := q.rd.badLinked // already saved by resyncLocked
	q.skipReadFileLocked()
	q.log.Error("DISKQUEUE: damaged data file, skipping to next file and saving it as .bad",
		"file", fn, "bad", bad, "err", cause)
	if linked {
		// Renaming onto a hard link of the same file would do nothing.
		q.removeFile(fn)
		return
	}
	q.corrupt.Add(1)
	if err := os.Rename(fn, bad); err != nil {
		q.log.Error("DISKQUEUE: failed to rename damaged data file", "file", fn, "err", err)
	}
}

// skipReadFileLocked leaves a read file that cannot be read. If it is also
// the write file, writing moves on too.
func (q *Queue) skipReadFileLocked() {
	q.closeReadFileLocked()
	if q.readFileNum == q.writeFileNum {
		q.rollLocked()
	}
	q.advanceReadFileLocked()
}

func (q *Queue) advanceReadFileLocked() {
	delete(q.knownEnds, q.readFileNum)
	q.readFileNum++
	q.readPos = 0
	q.readEnd = -1
	q.needSync = true // go-diskqueue syncs whenever reading moves to a new file
}

func (q *Queue) closeReadFileLocked() {
	rd := &q.rd
	rd.flush()
	rd.releaseBuf()
	if rd.f != nil {
		rd.f.Close()
		rd.f = nil
	}
	rd.checkedAt, rd.badLinked = -1, false
}

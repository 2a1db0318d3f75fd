package diskq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
)

// maxPooledWriteBuf keeps a very large batch from pinning its buffer.
const maxPooledWriteBuf = 4 << 20

var writeBufs = sync.Pool{New: func() any { return new([]byte) }}

// Put appends records to the queue in order. It checks every record's size
// first and writes nothing if one is out of bounds. The records are framed
// outside the lock and written with one write system call per data file the
// batch touches; on return they are in the OS page cache, not fsynced (see
// Sync).
//
// If the write fails (a full or read-only disk), Put returns the error and
// leaves the queue as it was: bytes already written by this call are
// truncated away and files it started are removed, so no record of a failed
// Put is ever read.
func (q *Queue) Put(records ...[]byte) error {
	if len(records) == 0 {
		return nil
	}
	total := 0
	for i, r := range records {
		if n := int64(len(r)); n < int64(q.opts.MinMsgSize) || n > int64(q.opts.MaxMsgSize) {
			return fmt.Errorf("put to diskqueue %q: record %d has %d bytes, want %d to %d: %w",
				q.name, i, n, q.opts.MinMsgSize, q.opts.MaxMsgSize, ErrRecordSize)
		}
		total += 4 + len(r)
	}
	bp := writeBufs.Get().(*[]byte)
	buf := slices.Grow((*bp)[:0], total)
	for _, r := range records {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(r)))
		buf = append(buf, r...)
	}

	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	err := q.writeLocked(buf, records)
	doSync := err == nil && (q.needSync || q.ops >= q.opts.SyncEvery)
	q.mu.Unlock()

	if cap(buf) <= maxPooledWriteBuf {
		*bp = buf
		writeBufs.Put(bp)
	}
	if err != nil {
		return fmt.Errorf("put to diskqueue %q: %w", q.name, err)
	}
	q.signal()
	if doSync {
		// The records are written; a failed sync is retried by the next one.
		if err := q.autoSync(); err != nil {
			q.log.Error("DISKQUEUE: failed to sync", "err", err)
		}
	}
	return nil
}

// writeMark is the write state before a Put, restored if it fails.
type writeMark struct {
	fileNum, pos int64
	file         *os.File
	retired      int
	readEnd      int64
}

// writeLocked writes buf, the framed records, splitting it where a record
// would take a file past MaxBytesPerFile, with go-diskqueue's rule: roll when
// writePos > 0 && writePos+4+len > MaxBytesPerFile.
func (q *Queue) writeLocked(buf []byte, records [][]byte) error {
	mark := writeMark{q.writeFileNum, q.writePos, q.writeFile, len(q.retired), q.readEnd}
	start, end := 0, 0 // buf[start:end] is the part for the current file
	pos := q.writePos
	for _, r := range records {
		n := 4 + int64(len(r))
		if pos > 0 && pos+n > q.opts.MaxBytesPerFile {
			if err := q.writeSegmentLocked(buf[start:end]); err != nil {
				return q.rollbackLocked(mark, err)
			}
			q.rollLocked()
			pos, start = 0, end
		}
		pos += n
		end += int(n)
	}
	if err := q.writeSegmentLocked(buf[start:end]); err != nil {
		return q.rollbackLocked(mark, err)
	}
	q.depth.Add(int64(len(records)))
	q.ops += int64(len(records))
	return nil
}

func (q *Queue) writeSegmentLocked(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if q.writeFile == nil {
		flag := os.O_RDWR | os.O_CREATE
		if q.writePos == 0 {
			// Nothing valid can follow position 0 of the write file; clear
			// leftovers of a failed Put whose file could not be removed.
			flag |= os.O_TRUNC
		}
		f, err := os.OpenFile(q.fileName(q.writeFileNum), flag, 0o600)
		if err != nil {
			return err
		}
		q.writeFile = f
		q.newFile = true
	}
	_, err := q.hooks.writeAt(q.writeFile, b, q.writePos)
	if err != nil {
		return err
	}
	q.writePos += int64(len(b))
	return nil
}

// rollLocked starts a new write file. The old one is fsynced by the next
// sync, which Put runs right after (go-diskqueue syncs on every roll).
func (q *Queue) rollLocked() {
	if q.readFileNum == q.writeFileNum {
		q.readEnd = q.writePos
	}
	if q.writeFile != nil {
		q.retired = append(q.retired, q.writeFile)
		q.writeFile = nil
	}
	q.writeFileNum++
	q.writePos = 0
	q.needSync = true
}

// rollbackLocked undoes a failed write: it removes the files the Put started
// and truncates the file it started in. If truncating fails too, the bytes
// past the old position stay on disk, so writing moves on to a new file and
// the reader is told where the old one really ends.
func (q *Queue) rollbackLocked(m writeMark, werr error) error {
	for _, f := range q.retired[m.retired:] {
		if f != m.file {
			f.Close()
		}
	}
	if q.writeFile != nil && q.writeFile != m.file {
		q.writeFile.Close()
	}
	q.retired = q.retired[:m.retired]
	for n := q.writeFileNum; n > m.fileNum; n-- {
		q.removeFile(q.fileName(n))
	}
	q.writeFileNum, q.writePos, q.writeFile, q.readEnd = m.fileNum, m.pos, m.file, m.readEnd

	fn := q.fileName(m.fileNum)
	if err := q.hooks.truncate(fn, m.pos); err != nil && !errors.Is(err, fs.ErrNotExist) {
		q.log.Error("DISKQUEUE: failed to truncate after failed write, skipping to new file",
			"file", fn, "pos", m.pos, "err", err)
		if q.knownEnds == nil {
			q.knownEnds = make(map[int64]int64)
		}
		q.knownEnds[m.fileNum] = m.pos
		q.rollLocked()
	}
	return werr
}

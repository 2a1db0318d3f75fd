package diskq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Recovery from damaged records (Options.Check).
//
// go-diskqueue's records carry no checksum, so damage shows only where it
// makes a record implausible: a size out of bounds or past the end of the
// data, or a head that Check rejects. A damage inside a body cannot be seen
// and that record is returned as it is. The reader judges a record by:
//
//   - plausible at p: its size is within bounds, it ends before the end of
//     the data, and Check accepts its head;
//   - confirmed at p: plausible, and what follows it fits, that is the end of
//     the data, fewer than 4 bytes (a torn tail, skipped when reached), a
//     size within bounds that runs past the end, or a plausible record.
//
// Reading at readPos:
//
//  1. confirmed: the record is returned;
//  2. plausible but not confirmed: either its size is wrong or the record
//     after it is damaged. If a confirmed record starts inside its claimed
//     body, its size is wrong: it is skipped up to there. Otherwise it is
//     returned, and the next read deals with what follows;
//  3. not plausible: the reader scans forward one byte at a time for the next
//     confirmed record and continues there, or at the end of the data if
//     there is none.
//
// A scan only moves forward and covers each byte of a damaged region once
// or twice (cases 2 and 3), so a file of garbage costs a linear pass. Every
// skip is logged with the file and offsets and counted in Skipped; the file
// is hard-linked as <file>.bad once for inspection. Depth is not lowered
// for a skip, since the number of records lost is unknown; it stays high
// until the reader reaches the end of the data, where it is reset.

// maxCheckLen bounds Options.CheckLen, so that a candidate record's head
// always fits in the scan window.
const maxCheckLen = 4096

// damageError is a record that shows damage. next is where reading resumes
// when already known (> readPos), else 0.
type damageError struct {
	err  error
	next int64
}

func (e *damageError) Error() string { return e.err.Error() }
func (e *damageError) Unwrap() error { return e.err }

func damaged(err error) error { return &damageError{err: err} }

// checkRecordLocked applies Check to the record of size bytes at readPos
// (bounds already checked) and to what follows it, cases 1 and 2 above.
func (q *Queue) checkRecordLocked(size, end int64) error {
	rd := &q.rd
	total := 4 + size
	// Read ahead far enough to see the next record's head, if it fits.
	if err := q.fillLocked(int(min(total+4+int64(q.opts.CheckLen), end-q.readPos, int64(len(rd.buf)), int64(readAheadSize))), end); err != nil {
		return err
	}
	if q.readPos != rd.checkedAt {
		hl := int(min(size, int64(q.opts.CheckLen)))
		if !q.opts.Check(rd.buf[rd.r+4 : rd.r+4+hl]) {
			return damaged(fmt.Errorf("implausible record of %d bytes at %d", size, q.readPos))
		}
	}
	np := q.readPos + total
	win := window{b: rd.buf[rd.r:rd.w], off: q.readPos}
	ok, checked, err := q.successorOK(rd.f, win, np, end, &rd.scratch)
	if err != nil {
		return err
	}
	if ok {
		if checked {
			rd.checkedAt = np
		}
		return nil
	}
	c, found, err := q.scan(rd.f, q.readPos+1, np, end)
	if err != nil {
		return err
	}
	if found {
		return &damageError{
			err:  fmt.Errorf("record at %d claims %d bytes, but a record starts at %d and none at %d", q.readPos, size, c, np),
			next: c,
		}
	}
	return nil
}

// window is a part of the read file held in memory: b holds the bytes from
// file offset off.
type window struct {
	b   []byte
	off int64
}

// at returns the n (<= 4+maxCheckLen) bytes at file offset p, from the
// window when it holds them, else read from f into *scratch (allocated on
// first use).
func (w window) at(f *os.File, p int64, n int, scratch *[]byte) ([]byte, error) {
	if p >= w.off && p+int64(n) <= w.off+int64(len(w.b)) {
		i := p - w.off
		return w.b[i : i+int64(n)], nil
	}
	if *scratch == nil {
		*scratch = make([]byte, 4+maxCheckLen)
	}
	k, err := f.ReadAt((*scratch)[:n], p)
	if k < n {
		return nil, fmt.Errorf("read at %d: %w", p, eofIsShort(err))
	}
	return (*scratch)[:n], nil
}

// sizeOK reports whether b (4 bytes) is a record size within bounds.
func (q *Queue) sizeOK(b []byte) (int64, bool) {
	size := int64(int32(binary.BigEndian.Uint32(b)))
	return size, size >= int64(q.opts.MinMsgSize) && size <= int64(q.opts.MaxMsgSize)
}

// successorOK reports whether what starts at p, right after a record, fits
// (see "confirmed" above); checked says that Check accepted a record at p.
func (q *Queue) successorOK(f *os.File, w window, p, end int64, scratch *[]byte) (ok, checked bool, err error) {
	if end-p < 4 {
		return true, false, nil // the end, or a torn tail
	}
	b, err := w.at(f, p, 4, scratch)
	if err != nil {
		return false, false, err
	}
	size, ok := q.sizeOK(b)
	switch {
	case !ok:
		return false, false, nil
	case p+4+size > end:
		return true, false, nil // a torn tail, or damage dealt with when reached
	}
	head, err := w.at(f, p+4, int(min(size, int64(q.opts.CheckLen))), scratch)
	if err != nil {
		return false, false, err
	}
	ok = q.opts.Check(head)
	return ok, ok, nil
}

// scan returns the first offset in [from, limit) where a confirmed record
// starts, reading f, whose data ends at end. It reads the file in windows of
// readAheadSize; every step moves forward by at least one byte.
func (q *Queue) scan(f *os.File, from, limit, end int64) (int64, bool, error) {
	limit = min(limit, end-4) + 1 // a record needs at least its 4-byte size
	if from >= limit {
		return 0, false, nil
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	minSize, maxSize := int64(q.opts.MinMsgSize), int64(q.opts.MaxMsgSize)
	checkLen := int64(q.opts.CheckLen)
	zeroTop := maxSize < 1<<24
	var scratch []byte
	for base := from; base < limit; {
		n := int(min(int64(len(buf)), end-base))
		k, err := f.ReadAt(buf[:n], base)
		if k < n {
			return 0, false, fmt.Errorf("scan at %d: %w", base, eofIsShort(err))
		}
		b := buf[:n]
		stop := int(min(int64(n)-3, limit-base)) // offsets in b with 4 bytes in b and before limit
		i := 0
		for ; i < stop; i++ {
			if zeroTop {
				// Sizes below 16 MiB start with a zero byte: jump to the next.
				j := bytes.IndexByte(b[i:stop], 0)
				if j < 0 {
					i = stop
					break
				}
				i += j
			}
			size := int64(int32(binary.BigEndian.Uint32(b[i:])))
			if size < minSize || size > maxSize {
				if size == 0 && minSize > 0 {
					// A run of zeros (a hole left by a crash): no record
					// starts before its last 3 bytes.
					i = max(i, zeroRunEnd(b[:stop+3], i)-4)
				}
				continue
			}
			p := base + int64(i)
			if p+4+size > end {
				continue
			}
			hl := int(min(size, checkLen))
			if i+4+hl > n {
				// The head is past the window (so is not at its start: the
				// window holds min(64 KiB, end-base) bytes and the head ends
				// before end). Read on from here.
				break
			}
			if !q.opts.Check(b[i+4 : i+4+hl]) {
				continue
			}
			ok, _, err := q.successorOK(f, window{b: b, off: base}, p+4+size, end, &scratch)
			if err != nil {
				return 0, false, err
			}
			if ok {
				return p, true, nil
			}
		}
		base += int64(max(i, 1))
	}
	return 0, false, nil
}

// resyncLocked skips the damaged record at readPos, case 3 above (or 2, when
// de.next is known): reading continues at the next confirmed record, or at
// end when there is none.
func (q *Queue) resyncLocked(end int64, de *damageError) {
	fn := q.fileName(q.readFileNum)
	from, to, found := q.readPos, de.next, de.next > q.readPos
	if !found {
		c, ok, err := q.scan(q.rd.f, from+1, end, end)
		if err != nil {
			q.damagedLocked(fmt.Errorf("%w; then %w", de, err), end)
			return
		}
		to, found = c, ok
		if !found {
			to = end
		}
	}
	q.skipToLocked(to)
	q.skippedRegions.Add(1)
	q.skippedBytes.Add(to - from)
	q.log.Error("DISKQUEUE: damaged record, skipped to the next record that decodes",
		"file", fn, "from", from, "to", to, "skipped_bytes", to-from, "end_of_data", !found, "err", de.err)
	if q.opts.Damaged != nil {
		q.opts.Damaged(fmt.Errorf("%s: damaged record, skipped bytes %d to %d: %w", fn, from, to, de.err))
	}
	q.linkBadLocked(fn)
	if q.readFileNum < q.writeFileNum && q.readPos >= end {
		q.nextReadFileLocked()
	}
}

// skipToLocked moves the read position forward to p in the read file,
// dropping what the read-ahead buffer holds before it.
func (q *Queue) skipToLocked(p int64) {
	rd := &q.rd
	if n := p - q.readPos; n <= int64(rd.w-rd.r) {
		rd.r += int(n)
	} else {
		rd.flush() // pending records point into buf
		rd.r, rd.w, rd.off = 0, 0, p
	}
	q.readPos = p
	rd.checkedAt = -1
	q.needSync = true
}

// linkBadLocked saves the read file as <file>.bad, once per file: a hard
// link, so that it costs nothing until the reader removes the file.
func (q *Queue) linkBadLocked(fn string) {
	if q.rd.badLinked {
		return
	}
	q.rd.badLinked = true
	bad := fn + ".bad"
	if err := os.Link(fn, bad); err != nil && !errors.Is(err, fs.ErrExist) {
		q.log.Warn("DISKQUEUE: failed to save damaged data file", "file", fn, "bad", bad, "err", err)
		return
	}
	q.corrupt.Add(1)
}

// zeroRunEnd returns the index of the first non-zero byte of b at or after
// i, or len(b).
func zeroRunEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:]) != 0 {
			break
		}
	}
	for ; i < len(b) && b[i] == 0; i++ {
	}
	return i
}

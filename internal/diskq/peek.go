package diskq

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// PeekedRecord is one record seen by Peek: its first bytes and its full
// length.
type PeekedRecord struct {
	Data []byte // at most the limit given to Peek
	Size int    // the record's length
}

// peekRetries bounds how often Peek starts again when a file it was about
// to read was removed by a concurrent Read that finished it.
const peekRetries = 4

// Peek returns up to max records from the read position on, in the order
// Read would return them, each cut to its first limit bytes, without
// changing anything: the positions, the depth, the metadata and the read-
// ahead buffer are Read's alone. It holds the queue's mutex only to copy
// the positions; the files are read with their own handles afterwards.
//
// Records a concurrent Read takes meanwhile may still be returned (a
// snapshot of a moving queue). A record with an invalid length ends the
// file it is in, as it would for the reader (which then skips the file).
func (q *Queue) Peek(max, limit int) ([]PeekedRecord, error) {
	if max <= 0 {
		return nil, nil
	}
	limit = min(max0(limit), int(q.opts.MaxMsgSize))
	for attempt := 0; ; attempt++ {
		out, err := q.peekOnce(max, limit, attempt == peekRetries)
		if errors.Is(err, fs.ErrNotExist) && attempt < peekRetries {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("peek diskqueue %q: %w", q.name, err)
		}
		return out, nil
	}
}

func max0(n int) int { return max(n, 0) }

// peekSnapshot is what Peek copies under the mutex.
type peekSnapshot struct {
	readFile, readPos   int64
	writeFile, writePos int64
	readEnd             int64 // end of the read file when it is not the write file, -1 unknown
	knownEnds           map[int64]int64
}

// peekOnce reads from a snapshot of the positions. A missing file fails it
// (fs.ErrNotExist) unless skipMissing: then it is passed over, as the
// reader does.
func (q *Queue) peekOnce(max, limit int, skipMissing bool) ([]PeekedRecord, error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, ErrClosed
	}
	s := peekSnapshot{
		readFile: q.readFileNum, readPos: q.readPos,
		writeFile: q.writeFileNum, writePos: q.writePos,
		readEnd: q.readEnd,
	}
	if len(q.knownEnds) > 0 {
		s.knownEnds = make(map[int64]int64, len(q.knownEnds))
		for k, v := range q.knownEnds {
			s.knownEnds[k] = v
		}
	}
	q.mu.Unlock()

	var out []PeekedRecord
	for f := s.readFile; f <= s.writeFile && len(out) < max; f++ {
		pos := int64(0)
		if f == s.readFile {
			pos = s.readPos
		}
		end := int64(-1)
		switch {
		case f == s.writeFile:
			end = s.writePos
		case f == s.readFile && s.readEnd >= 0:
			end = s.readEnd
		default:
			if e, ok := s.knownEnds[f]; ok {
				end = e
			}
		}
		var err error
		out, err = q.peekFile(out, f, pos, end, max, limit)
		if errors.Is(err, fs.ErrNotExist) && skipMissing {
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// peekFile appends the records of data file num from pos to end (-1: the
// file's size).
func (q *Queue) peekFile(out []PeekedRecord, num, pos, end int64, count, limit int) ([]PeekedRecord, error) {
	if end >= 0 && pos >= end {
		return out, nil
	}
	f, err := os.Open(q.fileName(num))
	if err != nil {
		return out, err // fs.ErrNotExist: read and removed meanwhile; Peek retries
	}
	defer f.Close()
	if end < 0 {
		st, err := f.Stat()
		if err != nil {
			return out, err
		}
		end = st.Size()
	}
	if pos >= end {
		return out, nil
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, pos, end-pos), 16<<10)
	var hdr [4]byte
	for len(out) < count && pos+4 <= end {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return out, nil
		}
		size := int64(int32(binary.BigEndian.Uint32(hdr[:])))
		var data []byte
		ok := size >= int64(q.opts.MinMsgSize) && size <= int64(q.opts.MaxMsgSize) && pos+4+size <= end
		if ok {
			keep := min(int(size), limit)
			head := keep
			if q.opts.Check != nil {
				head = max(keep, min(int(size), q.opts.CheckLen))
			}
			data = make([]byte, head)
			if _, err := io.ReadFull(r, data); err != nil {
				return out, nil
			}
			ok = q.opts.Check == nil || q.opts.Check(data[:min(int(size), q.opts.CheckLen)])
			data = data[:keep:keep]
			if _, err := r.Discard(int(size) - head); err != nil {
				return out, nil
			}
		}
		if !ok {
			// Damaged. Without Check the reader skips the rest of the file;
			// with it, it goes on at the next record that checks out.
			if q.opts.Check == nil {
				return out, nil
			}
			next, found, err := q.scan(f, pos+1, end, end)
			if err != nil || !found {
				return out, nil
			}
			pos = next
			r.Reset(io.NewSectionReader(f, pos, end-pos))
			continue
		}
		out = append(out, PeekedRecord{Data: data, Size: int(size)})
		pos += 4 + size
	}
	return out, nil
}

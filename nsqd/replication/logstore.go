package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// logStore is the replica's raft log on disk (a raft.LogStore): append-only
// segment files with one fdatasync per StoreLogs call. raft-boltdb, which
// held the log before, fsyncs twice per append (its pages, then its meta
// page) and encodes every entry with msgpack; a commit waits for the
// leader's append and then a follower's, so those fsyncs were most of a
// commit's latency (docs/replication.md, "Measured"). The term and vote
// stay in raft-boltdb's StableStore (rare writes).
//
// The directory holds segments named by the index of their first entry,
// "<20-digit index>.log", each preallocated to segmentSize (fallocate) so
// that an append does not grow the file: on ext4 a small write + fdatasync
// into preallocated space measured cheaper than one that grows the file
// or one into a zero-filled file. A segment is "NSQRLOG1" followed by
// records, then zeros:
//
//	[4-byte payload length][4-byte CRC-32C of the length and payload][payload]
//	payload: [8 index][8 term][1 type][8 appended-at, Unix ns; 0: unset]
//	         [4 data length][data][extensions: the rest]
//
// all big-endian. Entries are contiguous: a segment's records carry the
// indexes first, first+1, ... and the next segment starts where it ends.
//
// Recovery on open checks every record of the last segment and the record
// headers of the earlier ones (a record's CRC is checked whenever it is
// read). A crash can only tear the batch being written when it happened,
// at the end of the last segment (every append is synced before the next,
// and before a new segment is created), and what a torn write leaves
// unwritten reads as zeros (the file was preallocated): a bad record in
// the last segment with an all-zero 512-byte sector in its extent, or
// zeros where a header should be, ends the log there and the rest of the
// segment is zeroed. A bad record that is not torn, or a bad header in an
// earlier segment, is damage: openLogStore refuses with ErrLogDamaged
// rather than drop entries that may have been acknowledged.
//
// DeleteRange removes a prefix (log compaction after a snapshot) by
// removing whole segments, keeping the segment that holds the new first
// index whole on disk; after a restart the log may start up to one segment
// before the last compaction (raft compacts those entries again). It
// removes a suffix (entries that conflict with a new leader's) by zeroing
// it, synced before it returns.
type logStore struct {
	dir         string
	segmentSize int64

	// writeMu serialises writers (raft's main goroutine appends and
	// truncates, its snapshot goroutine compacts) and is held across
	// their disk I/O. Lock order: writeMu, then mu.
	writeMu sync.Mutex
	buf     []byte // encoding buffer, under writeMu
	// broken is the first failed write or sync, under writeMu: after it
	// what the file holds is unknown, so every later write fails too
	// (raft steps down; a restart recovers from what is on disk).
	broken error

	// mu guards the index below; never held across disk I/O. Readers
	// take a segment's file under it and read after releasing it; a read
	// that races a delete re-checks the index.
	mu     sync.RWMutex
	segs   []*segment // in index order; the last one is appended to
	first  uint64     // 0: empty
	last   uint64
	closed bool
}

// segment is one file of the log. Its fields are guarded by logStore.mu;
// the file itself is written under logStore.writeMu.
type segment struct {
	path  string
	f     *os.File
	first uint64  // index of its first record (from the name)
	offs  []int64 // offsets of the records of first, first+1, ...
	size  int64   // end of the last record
}

const (
	logMagic          = "NSQRLOG1"
	logRecordHeader   = 8
	logPayloadFixed   = 8 + 8 + 1 + 8 + 4
	logSectorSize     = 512
	defaultSegmentLen = 64 << 20
)

// ErrLogDamaged: a log segment holds a record that is neither valid nor a
// torn write; the replica refuses to start rather than lose entries.
var ErrLogDamaged = errors.New("raft log damaged")

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// appendLogRecord appends l's record to b.
func appendLogRecord(b []byte, l *raft.Log) []byte {
	start := len(b)
	b = append(b, make([]byte, logRecordHeader)...)
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	b = append(b, l.Extensions...)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-logRecordHeader))
	crc := crc32.Update(crc32.Checksum(b[start:start+4], crc32c), crc32c, b[start+logRecordHeader:])
	binary.BigEndian.PutUint32(b[start+4:], crc)
	return b
}

// errBadRecord: the bytes at a record's position are not a whole valid
// record (a short read, a wrong length or checksum). Whether that is a
// torn tail or damage is for recovery to decide.
var errBadRecord = errors.New("bad log record")

// decodeLogRecord decodes the record at the start of b into l, whose Data
// and Extensions then share b's memory. It returns the record's size.
func decodeLogRecord(b []byte, l *raft.Log) (int, error) {
	if len(b) < logRecordHeader {
		return 0, fmt.Errorf("%w: %d bytes, short header", errBadRecord, len(b))
	}
	n := int64(binary.BigEndian.Uint32(b))
	if n < logPayloadFixed || n > int64(len(b)-logRecordHeader) {
		return 0, fmt.Errorf("%w: payload length %d of %d bytes", errBadRecord, n, len(b)-logRecordHeader)
	}
	p := b[logRecordHeader : logRecordHeader+n]
	if crc := crc32.Update(crc32.Checksum(b[:4], crc32c), crc32c, p); crc != binary.BigEndian.Uint32(b[4:]) {
		return 0, fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	dataLen := int64(binary.BigEndian.Uint32(p[25:]))
	if dataLen > n-logPayloadFixed {
		return 0, fmt.Errorf("%w: data length %d of %d", errBadRecord, dataLen, n-logPayloadFixed)
	}
	*l = raft.Log{
		Index: binary.BigEndian.Uint64(p),
		Term:  binary.BigEndian.Uint64(p[8:]),
		Type:  raft.LogType(p[16]),
	}
	if at := int64(binary.BigEndian.Uint64(p[17:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	rest := p[logPayloadFixed:]
	if dataLen > 0 {
		l.Data = rest[:dataLen:dataLen]
	}
	if ext := rest[dataLen:]; len(ext) > 0 {
		l.Extensions = ext
	}
	return logRecordHeader + int(n), nil
}

// openLogStore opens (or creates) the log in dir, recovering a torn tail.
func openLogStore(dir string, segmentSize int64) (*logStore, error) {
	if segmentSize <= 0 {
		segmentSize = defaultSegmentLen
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create raft log directory: %w", err)
	}
	s := &logStore{dir: dir, segmentSize: segmentSize}
	names, err := segmentNames(dir)
	if err != nil {
		return nil, err
	}
	for i, name := range names {
		seg, err := s.openSegment(name, i == len(names)-1)
		if err != nil {
			s.closeFiles()
			return nil, err
		}
		s.segs = append(s.segs, seg)
		if n := len(s.segs); n > 1 && s.segs[n-2].first+uint64(len(s.segs[n-2].offs)) != seg.first {
			err = fmt.Errorf("%w: segment %s does not follow %s", ErrLogDamaged, seg.path, s.segs[n-2].path)
		} else if len(seg.offs) == 0 && i < len(names)-1 {
			err = fmt.Errorf("%w: empty segment %s before the last", ErrLogDamaged, seg.path)
		}
		if err != nil {
			s.closeFiles()
			return nil, err
		}
	}
	// An empty last segment (a crash right after creating it, or a
	// tail entirely torn) is removed: its name is only a claim.
	if n := len(s.segs); n > 0 && len(s.segs[n-1].offs) == 0 {
		seg := s.segs[n-1]
		s.segs = s.segs[:n-1]
		seg.f.Close()
		if err := os.Remove(seg.path); err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("remove empty raft log segment: %w", err)
		}
		if err := syncDir(dir); err != nil {
			s.closeFiles()
			return nil, err
		}
	}
	s.resetBounds()
	return s, nil
}

func segmentNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read raft log directory: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") && len(e.Name()) == 24 {
			if _, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), ".log"), 10, 64); err == nil {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names) // fixed width: name order is index order
	return names, nil
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d.log", first) }

// openSegment indexes a segment's records. The last segment, the only one
// where a torn tail is possible, is read whole and every record checked;
// earlier ones were synced before the next was created and only their
// record headers are walked (GetLog checks each record's CRC as it reads
// it), so that opening does not read the whole log.
func (s *logStore) openSegment(name string, last bool) (*segment, error) {
	first, _ := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 10, 64)
	path := filepath.Join(s.dir, name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open raft log segment: %w", err)
	}
	seg := &segment{path: path, f: f, first: first}
	if !last {
		if err := seg.walkHeaders(); err != nil {
			f.Close()
			return nil, fmt.Errorf("raft log segment %s: %w", path, err)
		}
		return seg, nil
	}
	b, err := readAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read raft log segment %s: %w", path, err)
	}
	end, torn, err := scanSegment(b, first, true, func(off int64) { seg.offs = append(seg.offs, off) })
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("raft log segment %s: %w", path, err)
	}
	seg.size = end
	if torn {
		// Zero the torn bytes so that shorter appends over them leave
		// no stale bytes behind to be mistaken for damage later.
		if err := zeroFrom(f, b, end); err != nil {
			f.Close()
			return nil, fmt.Errorf("zero torn tail of %s: %w", path, err)
		}
	}
	return seg, nil
}

// walkHeaders indexes a synced segment by its record headers and indexes.
func (seg *segment) walkHeaders() error {
	fi, err := seg.f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	var h [logRecordHeader + 8]byte
	if _, err := seg.f.ReadAt(h[:len(logMagic)], 0); err != nil || string(h[:len(logMagic)]) != logMagic {
		return fmt.Errorf("%w: no %s header", ErrLogDamaged, logMagic)
	}
	off := int64(len(logMagic))
	for want := seg.first; off+int64(len(h)) <= size; want++ {
		if _, err := seg.f.ReadAt(h[:], off); err != nil {
			return fmt.Errorf("read record header at offset %d: %w", off, err)
		}
		if isZero(h[:logRecordHeader]) {
			break
		}
		n := int64(binary.BigEndian.Uint32(h[:]))
		if n < logPayloadFixed || off+logRecordHeader+n > size {
			return fmt.Errorf("%w: record of index %d at offset %d: payload length %d", ErrLogDamaged, want, off, n)
		}
		if idx := binary.BigEndian.Uint64(h[logRecordHeader:]); idx != want {
			return fmt.Errorf("%w: record at offset %d has index %d, want %d", ErrLogDamaged, off, idx, want)
		}
		seg.offs = append(seg.offs, off)
		off += logRecordHeader + n
	}
	seg.size = off
	return nil
}

// scanSegment walks the records of a segment's bytes b, calling rec with
// each record's offset. It returns where the records end and whether
// non-zero bytes follow them (a torn tail, to be zeroed). Damage is an
// error wrapping ErrLogDamaged.
func scanSegment(b []byte, first uint64, last bool, rec func(off int64)) (end int64, torn bool, err error) {
	if len(b) < len(logMagic) || string(b[:len(logMagic)]) != logMagic {
		if last && isZero(b) {
			return 0, false, nil // created, not yet initialised
		}
		return 0, false, fmt.Errorf("%w: no %s header", ErrLogDamaged, logMagic)
	}
	off := int64(len(logMagic))
	want := first
	var l raft.Log
	for off < int64(len(b)) {
		rest := b[off:]
		if len(rest) < logRecordHeader || isZero(rest[:logRecordHeader]) {
			break // the zeros after the last record
		}
		n, err := decodeLogRecord(rest, &l)
		if err == nil && l.Index != want {
			err = fmt.Errorf("%w: index %d, want %d", errBadRecord, l.Index, want)
		}
		if err != nil {
			if last && tornRecord(b, off) {
				break
			}
			return 0, false, fmt.Errorf("%w: record of index %d at offset %d: %w", ErrLogDamaged, want, off, err)
		}
		rec(off)
		off += int64(n)
		want++
	}
	if !isZero(b[off:]) {
		if !last {
			return 0, false, fmt.Errorf("%w: bytes after the last record at offset %d", ErrLogDamaged, off)
		}
		torn = true
	}
	return off, torn, nil
}

// tornRecord reports whether the bad record at off looks like a write cut
// short: an aligned 512-byte sector that its extent (as far as its length
// field says, else to the end) touches is all zeros. A torn append leaves
// the sectors it did not reach as the preallocated zeros; damage leaves
// garbage. (A record whose own bytes fill a whole sector with zeros can
// make damage look torn; the other way round cannot happen.)
func tornRecord(b []byte, off int64) bool {
	end := int64(len(b))
	if off+4 <= end {
		if n := int64(binary.BigEndian.Uint32(b[off:])); off+logRecordHeader+n < end {
			end = off + logRecordHeader + n
		}
	}
	for sec := off &^ (logSectorSize - 1); sec < end; sec += logSectorSize {
		if isZero(b[sec:min(sec+logSectorSize, int64(len(b)))]) {
			return true
		}
	}
	return false
}

// readAll reads f whole into one buffer of its size.
func readAll(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, fi.Size())
	_, err = io.ReadFull(f, b)
	return b, err
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// zeroFrom overwrites the non-zero bytes of b (the file's content) from
// off on with zeros and syncs the file.
func zeroFrom(f *os.File, b []byte, off int64) error {
	const chunk = 1 << 20
	zeros := make([]byte, chunk)
	for pos := off; pos < int64(len(b)); pos += chunk {
		hi := min(pos+chunk, int64(len(b)))
		if isZero(b[pos:hi]) {
			continue
		}
		if _, err := f.WriteAt(zeros[:hi-pos], pos); err != nil {
			return err
		}
	}
	return datasync(f)
}

func (s *logStore) closeFiles() {
	for _, seg := range s.segs {
		seg.f.Close()
	}
	s.segs = nil
}

// resetBounds sets first and last from segs; called with mu held (or
// before the store is shared).
func (s *logStore) resetBounds() {
	s.first, s.last = 0, 0
	if len(s.segs) > 0 {
		s.first = s.segs[0].first
		tail := s.segs[len(s.segs)-1]
		s.last = tail.first + uint64(len(tail.offs)) - 1
	}
}

// FirstIndex implements raft.LogStore.
func (s *logStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.first, nil
}

// LastIndex implements raft.LogStore.
func (s *logStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, nil
}

// IsMonotonic implements raft.MonotonicLogStore: the log has no gaps, so
// raft empties it after restoring a snapshot instead of leaving one.
func (s *logStore) IsMonotonic() bool { return true }

// locate returns the file and extent of index's record, or ok false.
func (s *logStore) locate(index uint64) (f *os.File, off, end int64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.first == 0 || index < s.first || index > s.last {
		return nil, 0, 0, false
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].first > index }) - 1
	seg := s.segs[i]
	k := int(index - seg.first)
	off, end = seg.offs[k], seg.size
	if k+1 < len(seg.offs) {
		end = seg.offs[k+1]
	}
	return seg.f, off, end, true
}

// GetLog implements raft.LogStore.
func (s *logStore) GetLog(index uint64, l *raft.Log) error {
	for range 3 {
		f, off, end, ok := s.locate(index)
		if !ok {
			return raft.ErrLogNotFound
		}
		b := make([]byte, end-off)
		_, err := f.ReadAt(b, off)
		if err == nil {
			if _, err = decodeLogRecord(b, l); err == nil && l.Index == index {
				return nil
			}
		}
		// A delete or a rewrite of the suffix raced the read: look again.
	}
	return fmt.Errorf("read raft log entry %d: %w", index, ErrLogDamaged)
}

// StoreLog implements raft.LogStore.
func (s *logStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: the entries are on disk (one write,
// one fdatasync) when it returns. They must follow the last index (any
// index when the log is empty).
func (s *logStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	closed, last := s.closed, s.last
	var seg *segment
	if len(s.segs) > 0 {
		seg = s.segs[len(s.segs)-1]
	}
	s.mu.RUnlock()
	if closed {
		return errors.New("raft log closed")
	}
	if s.broken != nil {
		return s.broken
	}
	for i, l := range logs {
		if (last != 0 || i > 0) && l.Index != last+1 {
			return fmt.Errorf("raft log: storing index %d after %d: entries must be contiguous", l.Index, last)
		}
		last = l.Index
	}

	buf := s.buf[:0]
	offs := make([]int64, 0, len(logs))
	for _, l := range logs {
		offs = append(offs, int64(len(buf)))
		buf = appendLogRecord(buf, l)
	}
	s.buf = buf
	if cap(s.buf) > 16<<20 {
		s.buf = nil // don't keep a huge batch's buffer
	}

	var created *segment
	if seg == nil || (len(seg.offs) > 0 && seg.size+int64(len(buf)) > s.segmentSize) {
		var err error
		if created, err = s.createSegment(logs[0].Index); err != nil {
			return err
		}
		seg = created
	}
	base := seg.size
	_, err := seg.f.WriteAt(buf, base)
	if err == nil {
		err = datasync(seg.f)
	}
	if err != nil {
		if created != nil {
			created.f.Close()
		}
		s.broken = fmt.Errorf("write raft log: %w", err)
		return s.broken
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if created != nil {
		s.segs = append(s.segs, created)
	}
	for _, o := range offs {
		seg.offs = append(seg.offs, base+o)
	}
	seg.size = base + int64(len(buf))
	if s.first == 0 {
		s.first = logs[0].Index
	}
	s.last = last
	return nil
}

// createSegment creates, preallocates and syncs a segment for entries
// from first on; called with writeMu held.
func (s *logStore) createSegment(first uint64) (*segment, error) {
	path := filepath.Join(s.dir, segmentName(first))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create raft log segment: %w", err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create raft log segment %s: %w", path, err)
	}
	if err := preallocate(f, s.segmentSize); err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt([]byte(logMagic), 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := syncDir(s.dir); err != nil {
		return fail(err)
	}
	return &segment{path: path, f: f, first: first, size: int64(len(logMagic))}, nil
}

// DeleteRange implements raft.LogStore for the two ranges raft deletes: a
// prefix (compaction; lo at or below the first index) and a suffix
// (conflicting entries; hi at or above the last index).
func (s *logStore) DeleteRange(lo, hi uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	first, last, closed := s.first, s.last, s.closed
	s.mu.RUnlock()
	switch {
	case closed:
		return errors.New("raft log closed")
	case s.broken != nil:
		return s.broken
	case first == 0 || lo > hi || hi < first || lo > last:
		return nil
	case lo <= first:
		return s.deletePrefix(hi)
	case hi >= last:
		return s.deleteSuffix(lo)
	}
	return fmt.Errorf("raft log: cannot delete entries %d-%d from the middle of %d-%d", lo, hi, first, last)
}

// deletePrefix drops entries up to hi: whole segments go, the one holding
// hi+1 stays on disk. Oldest first, so a crash leaves a contiguous log.
func (s *logStore) deletePrefix(hi uint64) error {
	s.mu.Lock()
	var drop []*segment
	for len(s.segs) > 0 {
		seg := s.segs[0]
		if seg.first+uint64(len(seg.offs))-1 > hi {
			break
		}
		drop = append(drop, seg)
		s.segs = s.segs[1:]
	}
	s.resetBounds()
	if len(s.segs) > 0 {
		s.first = hi + 1
	}
	s.mu.Unlock()
	for _, seg := range drop {
		seg.f.Close()
		if err := os.Remove(seg.path); err != nil {
			return fmt.Errorf("remove raft log segment: %w", err)
		}
	}
	if len(drop) > 0 {
		return syncDir(s.dir)
	}
	return nil
}

// deleteSuffix drops entries from lo on: later segments are removed
// (newest first) and the rest of the segment holding lo is zeroed and
// synced, so that a restart cannot bring the entries back.
func (s *logStore) deleteSuffix(lo uint64) error {
	s.mu.Lock()
	var drop []*segment
	for len(s.segs) > 0 && s.segs[len(s.segs)-1].first >= lo {
		drop = append(drop, s.segs[len(s.segs)-1])
		s.segs = s.segs[:len(s.segs)-1]
	}
	var (
		cut      *segment
		from, to int64
	)
	if n := len(s.segs); n > 0 {
		cut = s.segs[n-1]
		k := int(lo - cut.first)
		if k < len(cut.offs) {
			from, to = cut.offs[k], cut.size
			cut.offs = cut.offs[:k]
			cut.size = from
		} else {
			cut = nil
		}
	}
	first := s.first
	s.resetBounds()
	if s.first != 0 {
		s.first = max(s.first, first)
	}
	s.mu.Unlock()
	for _, seg := range drop {
		seg.f.Close()
		if err := os.Remove(seg.path); err != nil {
			return fmt.Errorf("remove raft log segment: %w", err)
		}
	}
	if len(drop) > 0 {
		if err := syncDir(s.dir); err != nil {
			return err
		}
	}
	if cut != nil {
		zeros := make([]byte, min(to-from, 1<<20))
		for pos := from; pos < to; pos += int64(len(zeros)) {
			if _, err := cut.f.WriteAt(zeros[:min(int64(len(zeros)), to-pos)], pos); err != nil {
				s.broken = fmt.Errorf("truncate raft log: %w", err)
				return s.broken
			}
		}
		if err := datasync(cut.f); err != nil {
			s.broken = fmt.Errorf("sync raft log: %w", err)
			return s.broken
		}
	}
	return nil
}

// Close closes the segment files.
func (s *logStore) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	for _, seg := range s.segs {
		err = errors.Join(err, seg.f.Close())
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync raft log directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync raft log directory: %w", err)
	}
	return nil
}

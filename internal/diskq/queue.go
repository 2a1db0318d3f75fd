// Package diskq is the FIFO queue of records that nsqd keeps on disk for the
// messages of a topic or channel that do not fit in memory.
//
// It reads and writes exactly the on-disk format of
// github.com/nsqio/go-diskqueue v1.1.0, so a data directory can move between
// NSQ and this nsqd in both directions:
//
//   - data files <name>.diskqueue.<NNNNNN>.dat hold records, each a 4-byte
//     big-endian length followed by that many bytes; a new file is started
//     when the next record would take the current one past MaxBytesPerFile
//     (a file always holds at least one record);
//   - <name>.diskqueue.meta.dat holds "<depth>\n<readFileNum>,<readPos>\n
//     <writeFileNum>,<writePos>\n", replaced atomically through
//     <name>.diskqueue.meta.dat.<random>.tmp;
//   - a file that cannot be read is renamed to <file>.bad and skipped; with
//     Options.Check, a damaged record is skipped instead by scanning forward
//     to the next record that passes the check (see resync.go), and the file
//     is kept as <file>.bad (a hard link) for inspection.
//
// Unlike go-diskqueue, a Queue has no goroutine: Put writes a whole batch
// with one write system call per data file, Read hands out up to a batch of
// records from a read-ahead buffer, and the owner calls MaybeSync
// periodically instead of each queue running a ticker.
package diskq

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by every method called after Close or Delete.
var ErrClosed = errors.New("diskqueue closed")

// ErrRecordSize is returned (wrapped) by Put for a record shorter than
// MinMsgSize or longer than MaxMsgSize.
var ErrRecordSize = errors.New("invalid record size")

// ErrBadMetadata is returned (wrapped) by Open when the metadata file exists
// but does not hold valid positions.
var ErrBadMetadata = errors.New("invalid diskqueue metadata")

// Options configure a Queue. The fields mirror go-diskqueue's New arguments
// and nsqd's --max-bytes-per-file, --sync-every and --sync-timeout flags.
type Options struct {
	// MaxBytesPerFile is the size at which a data file is rolled. It may
	// change between runs: the reader goes by each file's real size.
	MaxBytesPerFile int64
	// MinMsgSize and MaxMsgSize bound a record's length (not counting its
	// 4-byte header), both on Put and on Read, where a length outside them
	// marks the file as damaged.
	MinMsgSize, MaxMsgSize int32
	// SyncEvery is the number of records written plus read after which the
	// data is fsynced and the metadata persisted. Values below 1 mean 1.
	SyncEvery int64
	// SyncTimeout is how long MaybeSync lets activity go unsynced.
	SyncTimeout time.Duration
	// Logger receives the queue's log lines; nil discards them.
	Logger *slog.Logger

	// ExplicitCommit makes the persisted read position follow Commit
	// instead of Read: after a crash, reading resumes at the last committed
	// position, so records read but not committed are read again, and a
	// fully read file is removed only once committed. nsqd's durable mode
	// commits a read once the records are safe in its journal.
	ExplicitCommit bool
	// BeforeMetadata, if set, runs in every sync after the data files are
	// fsynced and before the metadata is written; its error fails the sync.
	// Durable mode makes its journal durable there, before a committed read
	// position that relies on it.
	BeforeMetadata func() error
	// SyncDir fsyncs the directory after the metadata file is replaced, so
	// that new data files and the rename survive a power loss.
	SyncDir bool

	// Check, if set, tells a record the writer could have written from
	// damage that its size alone does not show, and turns on recovery from
	// damage: a record whose size or head is implausible is skipped by
	// scanning forward to the next record that is plausible and is followed
	// by a plausible record (or the end of the data), instead of giving up
	// the rest of the file. It receives the first min(size, CheckLen) bytes
	// of a record whose size is within bounds, must not keep them, and must
	// be cheap: it runs for every record read and, while scanning, at every
	// offset whose 4 bytes could be a size. Without it a damaged record
	// ends the file, as in go-diskqueue.
	Check func(head []byte) bool
	// CheckLen is how many bytes of a record Check looks at, 1 to 4096.
	CheckLen int
	// Damaged, if set, is called each time the reader skips damaged data
	// (a damaged record up to the next one that decodes, or the rest of a
	// file), with an error naming the file and the byte offsets. It runs
	// under the queue's lock and must not call the queue.
	Damaged func(error)
}

func (o *Options) validate() error {
	var errs []error
	if o.MaxBytesPerFile <= 0 {
		errs = append(errs, fmt.Errorf("MaxBytesPerFile %d must be positive", o.MaxBytesPerFile))
	}
	if o.MinMsgSize < 0 {
		errs = append(errs, fmt.Errorf("MinMsgSize %d must not be negative", o.MinMsgSize))
	}
	if o.MaxMsgSize <= 0 || o.MaxMsgSize < o.MinMsgSize {
		errs = append(errs, fmt.Errorf("MaxMsgSize %d must be positive and at least MinMsgSize %d", o.MaxMsgSize, o.MinMsgSize))
	}
	if o.Check != nil && (o.CheckLen < 1 || o.CheckLen > maxCheckLen) {
		errs = append(errs, fmt.Errorf("CheckLen %d must be 1 to %d with Check", o.CheckLen, maxCheckLen))
	}
	return errors.Join(errs...)
}

// hooks are the system calls a Queue makes for its data, replaceable in tests
// to count fsyncs and to simulate a full disk.
type hooks struct {
	writeAt  func(f *os.File, b []byte, off int64) (int, error)
	fsync    func(f *os.File) error
	truncate func(name string, size int64) error
}

var defaultHooks = hooks{
	writeAt:  (*os.File).WriteAt,
	fsync:    (*os.File).Sync,
	truncate: os.Truncate,
}

// Queue is a disk-backed FIFO queue of records. Put, Read, Sync, Depth and
// the other methods are safe for concurrent use.
//
// One mutex guards the positions and file handles. Put and Read do their
// (page-cache) I/O under it, which keeps records in order and is short. An
// fsync never runs under it: a slow disk blocks only the caller running the
// sync (Sync, MaybeSync, Close, or the Put or Read whose roll or SyncEvery
// count required one) and callers waiting for that sync.
type Queue struct {
	name     string
	dataPath string
	opts     Options
	log      *slog.Logger
	hooks    hooks
	metaName string
	ready    chan struct{}

	depth   atomic.Int64 // records in the queue; written only under mu
	corrupt atomic.Int64
	// Damaged data the reader skipped: places and bytes.
	skippedRegions, skippedBytes atomic.Int64

	// mu guards closed and the state below; a leaf (docs/architecture.md,
	// "Lock order"), released during fsync. Peek holds it only to copy the
	// positions.
	mu     sync.Mutex
	closed bool

	// Positions, as persisted in the metadata file. The queue is empty when
	// readFileNum == writeFileNum && readPos == writePos.
	readFileNum, readPos   int64
	writeFileNum, writePos int64

	// With ExplicitCommit: the position persisted as the read position,
	// the records read since it, and the fully read files waiting for a
	// commit to be removed.
	commitFileNum, commitPos int64
	uncommitted              int64
	uncommittedFiles         []string
	committedFiles           []string // removed once the metadata has the commit

	// readEnd is the size of the read file once it is no longer the write
	// file (-1: not known yet, stat it when opening). While the reader is on
	// the write file, writePos is the end.
	readEnd int64
	// knownEnds records where a rolled file really ends when bytes past that
	// point could not be truncated after a failed write.
	knownEnds map[int64]int64
	rd        reader

	writeFile *os.File
	// retired are write files rolled away from but not yet fsynced; the next
	// sync fsyncs and closes them.
	retired []*os.File

	ops      int64 // records written plus read since the last sync started
	needSync bool  // a sync is required regardless of ops (roll, file change, failed sync)
	lastSync time.Time

	// Metadata writes. SyncData syncs skip the metadata unless needSync:
	// metaOwed says one was skipped since lastMeta; metaWanted that a caller
	// needs the next sync to write it; newFile that a data file was created
	// since the directory was last fsynced (SyncDir).
	metaWanted, metaOwed, newFile bool
	lastMeta                      time.Time
	syncWritesMeta                bool // the running sync writes the metadata

	// Group commit: syncStarted and syncFinished count syncs; while syncing,
	// syncDone is closed when the running one finishes, with result syncErr.
	syncing      bool
	syncWaiters  int // callers waiting in waitSyncLocked
	syncDone     chan struct{}
	syncStarted  uint64
	syncFinished uint64
	syncErr      error
}

// Open opens the queue called name in dataPath, loading its metadata file (a
// missing one means an empty queue). As go-diskqueue does, if the write file
// is longer than the recorded write position (the metadata was not persisted
// at the last shutdown), writing continues in the next file and the reader
// salvages what the longer file holds.
func Open(name, dataPath string, o Options) (*Queue, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("open diskqueue %q: %w", name, err)
	}
	o.SyncEvery = max(o.SyncEvery, 1)
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{
		name:     name,
		dataPath: dataPath,
		opts:     o,
		log:      log.With("queue", name),
		hooks:    defaultHooks,
		metaName: filepath.Join(dataPath, name+".diskqueue.meta.dat"),
		ready:    make(chan struct{}, 1),
		readEnd:  -1,
	}
	if err := q.loadMetadata(); err != nil {
		return nil, fmt.Errorf("open diskqueue %q: %w", name, err)
	}
	if err := q.checkPositions(); err != nil {
		return nil, fmt.Errorf("open diskqueue %q: %w", name, err)
	}
	q.commitFileNum, q.commitPos = q.readFileNum, q.readPos
	if q.hasDataLocked() {
		q.signal()
	}
	return q, nil
}

// checkPositions repairs positions that cannot be right, before first use.
func (q *Queue) checkPositions() error {
	if q.readFileNum > q.writeFileNum || (q.readFileNum == q.writeFileNum && q.readPos > q.writePos) {
		q.log.Error("DISKQUEUE: read position past write position, metadata corruption, skipping to a new file",
			"read_file", q.readFileNum, "read_pos", q.readPos, "write_file", q.writeFileNum, "write_pos", q.writePos)
		for n := q.readFileNum; n <= q.writeFileNum; n++ {
			q.removeFile(q.fileName(n))
		}
		next := max(q.readFileNum, q.writeFileNum) + 1
		q.readFileNum, q.readPos, q.writeFileNum, q.writePos = next, 0, next, 0
		q.depth.Store(0)
		q.needSync = true
		return nil
	}

	fn := q.fileName(q.writeFileNum)
	var size int64
	switch st, err := os.Stat(fn); {
	case err == nil:
		size = st.Size()
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if size != q.writePos || q.fileExists(q.writeFileNum+1) {
		// Longer, or followed by a newer file: the metadata is older than
		// the data (a crash before it was rewritten). Shorter: the data did
		// not reach the disk. Either way appending at writePos would leave
		// garbage or a hole, so write after the last file and let the reader
		// take the others up to their real sizes.
		q.log.Warn("DISKQUEUE: metadata write position does not match the data files, skipping to new file",
			"file", fn, "write_pos", q.writePos, "size", size)
		q.writeFileNum++
		for q.fileExists(q.writeFileNum) {
			q.writeFileNum++
		}
		q.writePos = 0
		q.needSync = true
		q.recountLocked()
	}
	q.checkTailLocked()
	return nil
}

// recountLocked sets the depth by counting the records from the read
// position to the end of the data, when a crash left the metadata (and its
// depth) behind the data files. A file counts up to its first invalid
// record, where the reader stops too.
func (q *Queue) recountLocked() {
	var n int64
	for f := q.readFileNum; f < q.writeFileNum; f++ {
		pos := int64(0)
		if f == q.readFileNum {
			pos = q.readPos
		}
		n += q.countRecords(q.fileName(f), pos)
	}
	if d := q.depth.Load(); d != n {
		q.log.Warn("DISKQUEUE: depth recounted from the data files", "depth", d, "records", n)
		q.depth.Store(n)
	}
}

func (q *Queue) countRecords(fn string, pos int64) int64 {
	f, err := os.Open(fn)
	if err != nil {
		return 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() <= pos {
		return 0
	}
	size := st.Size()
	r := bufio.NewReaderSize(io.NewSectionReader(f, pos, size-pos), readAheadSize)
	var hdr [4]byte
	var count int64
	for pos+4 <= size {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		l := int64(int32(binary.BigEndian.Uint32(hdr[:])))
		if l < int64(q.opts.MinMsgSize) || l > int64(q.opts.MaxMsgSize) || pos+4+l > size {
			break
		}
		if _, err := r.Discard(int(l)); err != nil {
			break
		}
		pos += 4 + l
		count++
	}
	return count
}

// Ready returns a channel with room for one signal, sent whenever a Put adds
// records (and by Open when the queue is not empty). A consumer that found
// the queue empty waits on it before calling Read again. It is never closed.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

func (q *Queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Depth returns the number of records in the queue. After damaged data was
// skipped it is corrected when the reader reaches the end of the queue.
func (q *Queue) Depth() int64 { return q.depth.Load() }

// Corrupt returns how many damaged data files were saved as .bad: renamed
// and skipped, or (with Options.Check) hard-linked while the reader skips
// only their damaged records.
func (q *Queue) Corrupt() int64 { return q.corrupt.Load() }

// Skipped returns how many times the reader skipped damaged data (a damaged
// record and what followed it up to the next record that decodes, or the
// rest of a file that cannot be read) and the bytes skipped in all. Each
// region held at least one record; a region's records cannot be counted, as
// their sizes are what is damaged. See also Depth.
func (q *Queue) Skipped() (regions, bytes int64) {
	return q.skippedRegions.Load(), q.skippedBytes.Load()
}

// Close syncs the data, persists the metadata and closes the files. Every
// later call returns ErrClosed.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.closed = true // Put and Read now fail, so the final sync covers everything
	q.log.Info("DISKQUEUE: closing")
	q.metaWanted = true
	err := q.syncLocked(true, true)
	err = errors.Join(err, q.closeFilesLocked())
	if err != nil {
		return fmt.Errorf("close diskqueue %q: %w", q.name, err)
	}
	return nil
}

// Delete closes the queue without syncing and removes its data files and its
// metadata file. Files renamed to .bad are left for the operator.
func (q *Queue) Delete() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.closed = true
	q.log.Info("DISKQUEUE: deleting")
	q.waitSyncLocked()
	err := errors.Join(q.closeFilesLocked(), q.removeAllLocked())
	if err != nil {
		return fmt.Errorf("delete diskqueue %q: %w", q.name, err)
	}
	return nil
}

// Empty drops every record: it removes the data files and the metadata file,
// as go-diskqueue does, and continues in the next file number. The metadata
// is written again by the next sync.
func (q *Queue) Empty() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.log.Info("DISKQUEUE: emptying")
	q.waitSyncLocked()
	if q.closed { // by Close or Delete while waiting
		return ErrClosed
	}
	err := errors.Join(q.closeFilesLocked(), q.removeAllLocked())
	q.writeFileNum++
	q.writePos = 0
	q.readFileNum, q.readPos, q.readEnd = q.writeFileNum, 0, -1
	q.commitFileNum, q.commitPos, q.uncommitted, q.uncommittedFiles = q.readFileNum, 0, 0, nil
	q.knownEnds = nil
	q.depth.Store(0)
	q.ops = 0
	q.needSync = false
	if err != nil {
		return fmt.Errorf("empty diskqueue %q: %w", q.name, err)
	}
	return nil
}

// removeAllLocked removes the data files from the read (or committed) file
// to the write file and the metadata file.
func (q *Queue) removeAllLocked() error {
	var errs []error
	for _, fn := range q.committedFiles {
		q.removeFile(fn)
	}
	q.committedFiles = nil
	for n := min(q.readFileNum, q.commitFileNum); n <= q.writeFileNum; n++ {
		if err := os.Remove(q.fileName(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(q.metaName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeFilesLocked closes every open file. No sync may be running.
func (q *Queue) closeFilesLocked() error {
	var errs []error
	q.closeReadFileLocked()
	if q.writeFile != nil {
		errs = append(errs, q.writeFile.Close())
		q.writeFile = nil
	}
	for _, f := range q.retired {
		errs = append(errs, f.Close())
	}
	q.retired = nil
	return errors.Join(errs...)
}

func (q *Queue) hasDataLocked() bool {
	return q.readFileNum < q.writeFileNum || q.readPos < q.writePos
}

// checkTailLocked resets the depth when the reader has caught up with the
// writer: after damaged data was skipped, or with metadata older than the
// data, the count cannot be right any more.
func (q *Queue) checkTailLocked() {
	if q.hasDataLocked() {
		if q.depth.Load() <= 0 && q.skippedRegions.Load() > 0 {
			// Callers stop reading at depth 0; a record taken for one in
			// skipped damage (see resync.go) must not strand the rest.
			q.depth.Store(1)
		}
		return
	}
	if d := q.depth.Load(); d != 0 {
		q.log.Error("DISKQUEUE: depth not zero at tail, resetting to 0", "depth", d)
		q.depth.Store(0)
		q.needSync = true
	}
}

func (q *Queue) fileName(n int64) string {
	num := strconv.FormatInt(n, 10)
	if len(num) < 6 {
		num = "000000"[len(num):] + num
	}
	return filepath.Join(q.dataPath, q.name+".diskqueue."+num+".dat")
}

func (q *Queue) fileExists(n int64) bool {
	_, err := os.Stat(q.fileName(n))
	return err == nil
}

func (q *Queue) removeFile(fn string) {
	if err := os.Remove(fn); err != nil && !errors.Is(err, fs.ErrNotExist) {
		q.log.Error("DISKQUEUE: failed to remove data file", "file", fn, "err", err)
	}
}

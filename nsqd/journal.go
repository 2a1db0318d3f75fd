package nsqd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nsqclone/nsq/internal/diskq"
)

// A journal is what durable mode (--durable) keeps on disk besides a disk
// queue: the messages of a topic or channel that are out of the queue's
// order. For a channel these are the messages it has read from its disk
// queue and not yet finished (in flight, requeued, deferred by REQ) and the
// deferred messages of DPUB with their deliver-at time; for a topic, its
// deferred messages waiting for a channel. A restart delivers every live
// message again, so what was in flight is not lost and what was finished
// does not come back.
//
// The file "<name>.diskqueue.journal.dat" (no go-diskqueue name collides
// with it) is "NSQJRNL1" followed by records:
//
//	[1-byte op][4-byte payload length][payload][4-byte CRC-32C of the op, length and payload]
//	op 'P' put:  [8-byte deliver-at, Unix ns; 0 = now][message in storage form]
//	op 'D' done: [16-byte message ID]
//
// A later put of the same ID replaces the earlier one. Replay stops at the
// first damaged or torn record (a crash in the middle of a write), keeping
// those before it. The file is rewritten with only the live messages when it
// has grown well past them.
type journal struct {
	path string
	log  *slog.Logger
	// lastWrite is when the sync loop last wrote the journal (only kept
	// for NSQD.journalWritten; touched by the sync loop only).
	lastWrite time.Time

	// mu guards everything below. Appends go to buf under it; write moves
	// buf to the file in one system call.
	mu        sync.Mutex
	f         *os.File
	buf       []byte
	size      int64 // bytes in the file
	live      map[MessageID]journalEntry
	liveBytes int64 // size of the put records of the live messages
	closed    bool
	// pending are messages adopted from the disk queue since the last
	// flush, not yet written: most are finished before it, and then cost
	// only a done record instead of a put with their body and a done.
	pending []MessageID

	// Group commit, as in internal/diskq: concurrent callers of sync share
	// one fsync.
	unsynced     bool // written since the last fsync started
	syncing      bool
	syncDone     chan struct{}
	syncStarted  uint64
	syncFinished uint64
	syncErr      error
}

// journalEntry is a live message: its current put record's deliver-at and
// attempts (the message's own fields belong to whoever holds it), and
// whether that record is written (or in buf).
type journalEntry struct {
	m        *Message
	at       int64
	attempts uint16
	written  bool
}

const (
	journalMagic  = "NSQJRNL1"
	journalPut    = 'P'
	journalDone   = 'D'
	journalHeader = 1 + 4
	journalCRC    = 4
	// journalCompactMin is the file size below which a journal is never
	// rewritten.
	journalCompactMin = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func journalFileName(dataPath, name string) string {
	return filepath.Join(dataPath, name+".diskqueue.journal.dat")
}

// journalLoad is what a journal held when it was opened: its live
// messages, oldest first, each with deadline set to its deliver-at time,
// and the IDs of the messages it had seen finished.
type journalLoad struct {
	msgs []*Message
	done map[MessageID]struct{}
	// damaged says what of the file could not be read (logged already).
	damaged error
}

// seen returns the IDs of every message the journal knew, live or finished.
func (l journalLoad) seen() map[MessageID]struct{} {
	ids := l.done
	if ids == nil {
		ids = make(map[MessageID]struct{}, len(l.msgs))
	}
	for _, m := range l.msgs {
		ids[m.ID] = struct{}{}
	}
	return ids
}

// openJournal loads the journal of name (a missing file is an empty one)
// and returns it with what it held. The file is rewritten with only the
// live messages.
func openJournal(dataPath, name string, maxMsgSize int64, log *slog.Logger) (*journal, journalLoad, error) {
	j := &journal{
		path: journalFileName(dataPath, name),
		log:  log,
		live: make(map[MessageID]journalEntry),
	}
	ld, err := j.load(maxMsgSize)
	if err != nil {
		return nil, journalLoad{}, err
	}
	j.mu.Lock()
	err = j.rewriteLocked()
	j.mu.Unlock()
	if err != nil {
		return nil, journalLoad{}, err
	}
	return j, ld, nil
}

// load replays the file into j.live.
func (j *journal) load(maxMsgSize int64) (journalLoad, error) {
	data, err := os.ReadFile(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return journalLoad{}, nil
	}
	if err != nil {
		return journalLoad{}, fmt.Errorf("read journal %s: %w", j.path, err)
	}
	if !bytes.HasPrefix(data, []byte(journalMagic)) {
		bad := j.path + ".bad"
		os.Rename(j.path, bad)
		j.log.Error("JOURNAL: not a journal file, kept as .bad", "file", j.path, "bad", bad)
		return journalLoad{damaged: fmt.Errorf("journal %s is not a journal file (kept as %s)", j.path, bad)}, nil
	}
	var order []MessageID
	var damaged error
	done := make(map[MessageID]struct{})
	rest := data[len(journalMagic):]
	for len(rest) > 0 {
		op, payload, n, err := parseJournalRecord(rest, maxMsgSize)
		if errors.Is(err, errJournalTorn) {
			// The last write was cut short by a crash: expected, and what
			// it held was never acknowledged as durable.
			j.log.Warn("JOURNAL: ignoring incomplete last record",
				"file", j.path, "offset", len(data)-len(rest), "bytes", len(rest))
			break
		}
		if err != nil {
			j.log.Error("JOURNAL: damaged record, ignoring the rest of the file",
				"file", j.path, "offset", len(data)-len(rest), "bytes", len(rest), "err", err)
			damaged = fmt.Errorf("journal %s: %d bytes at %d ignored: %w", j.path, len(rest), len(data)-len(rest), err)
			break
		}
		rest = rest[n:]
		switch op {
		case journalPut:
			at := int64(binary.BigEndian.Uint64(payload))
			m, err := decodeMessage(payload[8:])
			if err != nil {
				return journalLoad{}, fmt.Errorf("journal %s: %w", j.path, err)
			}
			m.Body = bytes.Clone(m.Body) // do not pin the whole file
			if _, ok := j.live[m.ID]; !ok {
				order = append(order, m.ID)
			}
			j.live[m.ID] = journalEntry{m: m, at: at, attempts: m.Attempts, written: true}
			delete(done, m.ID)
		case journalDone:
			id := MessageID(payload)
			delete(j.live, id)
			done[id] = struct{}{}
		}
	}
	msgs := make([]*Message, 0, len(j.live))
	for _, id := range order {
		e, ok := j.live[id]
		if !ok || e.m.journaled { // finished, or put again later in the file
			continue
		}
		e.m.deadline = e.at
		e.m.journaled = true
		msgs = append(msgs, e.m)
		j.liveBytes += putRecordSize(e.m)
	}
	return journalLoad{msgs: msgs, done: done, damaged: damaged}, nil
}

var (
	errJournalRecord = errors.New("invalid journal record")
	// errJournalTorn is a record that ends before its length says: the
	// file's last write was cut short.
	errJournalTorn = fmt.Errorf("%w: incomplete", errJournalRecord)
)

// parseJournalRecord checks the record at the start of b and returns its op,
// payload and length.
func parseJournalRecord(b []byte, maxMsgSize int64) (op byte, payload []byte, n int, err error) {
	if len(b) < journalHeader {
		return 0, nil, 0, fmt.Errorf("%w: %d bytes, too few for a header", errJournalTorn, len(b))
	}
	op = b[0]
	size := int64(binary.BigEndian.Uint32(b[1:5]))
	switch {
	case op == journalPut && (size < 8+messageHeaderLen || size > 8+messageHeaderLen+maxMsgSize):
		return 0, nil, 0, fmt.Errorf("%w: put of %d bytes", errJournalRecord, size)
	case op == journalDone && size != int64(len(MessageID{})):
		return 0, nil, 0, fmt.Errorf("%w: done of %d bytes", errJournalRecord, size)
	case op != journalPut && op != journalDone:
		return 0, nil, 0, fmt.Errorf("%w: op %q", errJournalRecord, op)
	}
	n = journalHeader + int(size) + journalCRC
	if len(b) < n {
		return 0, nil, 0, fmt.Errorf("%w: %d of %d bytes", errJournalTorn, len(b), n)
	}
	if got, want := crc32.Checksum(b[:n-journalCRC], crcTable), binary.BigEndian.Uint32(b[n-journalCRC:n]); got != want {
		return 0, nil, 0, fmt.Errorf("%w: checksum %08x, want %08x", errJournalRecord, got, want)
	}
	return op, b[journalHeader : n-journalCRC], n, nil
}

func putRecordSize(m *Message) int64 {
	return journalHeader + 8 + messageHeaderLen + int64(len(m.Body)) + journalCRC
}

func appendPutRecord(b []byte, m *Message, at int64, attempts uint16) []byte {
	start := len(b)
	b = append(b, journalPut)
	b = binary.BigEndian.AppendUint32(b, uint32(8+messageHeaderLen+len(m.Body)))
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Timestamp))
	b = binary.BigEndian.AppendUint16(b, attempts)
	b = append(b, m.ID[:]...)
	b = append(b, m.Body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

func appendDoneRecord(b []byte, id MessageID) []byte {
	start := len(b)
	b = append(b, journalDone)
	b = binary.BigEndian.AppendUint32(b, uint32(len(id)))
	b = append(b, id[:]...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

// put records msgs as live, with deliver-at at (0: now) or, if at is
// negative, each message's deadline. The records are written by the next
// write, flush or sync.
func (j *journal) put(msgs []*Message, at int64) {
	j.mu.Lock()
	for _, m := range msgs {
		j.putLocked(m, at, m.Attempts)
	}
	j.mu.Unlock()
}

func (j *journal) putLocked(m *Message, at int64, attempts uint16) {
	if at < 0 {
		at = m.deadline
	}
	if _, ok := j.live[m.ID]; !ok {
		j.liveBytes += putRecordSize(m)
	}
	j.live[m.ID] = journalEntry{m: m, at: at, attempts: attempts, written: true}
	j.buf = appendPutRecord(j.buf, m, at, attempts)
	m.journaled = true
}

// done records that the message is finished.
func (j *journal) done(id MessageID) {
	j.mu.Lock()
	if e, ok := j.live[id]; ok {
		delete(j.live, id)
		j.liveBytes -= putRecordSize(e.m)
		if e.written {
			j.buf = appendDoneRecord(j.buf, id)
		}
	}
	j.mu.Unlock()
}

// adopt takes messages just read from the channel's disk queue: it skips
// those the journal already holds (a copy left in the queue by a crash)
// and makes the rest live. Their records wait for the next flush: until
// then the channel does not commit the read, so a crash makes the disk
// queue hand them out again. It returns msgs without the skipped.
func (j *journal) adopt(msgs []*Message) []*Message {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, m := range msgs {
		if _, held := j.live[m.ID]; held {
			continue
		}
		// Attempts count the delivery that follows, so that one delivered
		// before a crash counts after the restart.
		j.live[m.ID] = journalEntry{m: m, attempts: min(m.Attempts+1, math.MaxUint16)}
		j.liveBytes += putRecordSize(m)
		j.pending = append(j.pending, m.ID)
		m.journaled = true
		msgs[n] = m
		n++
	}
	clear(msgs[n:])
	return msgs[:n]
}

// flush writes the records of the adopted messages still live and
// everything appended to the file (not fsynced). Once it succeeds, what
// was adopted before is finished or in the file.
func (j *journal) flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, id := range j.pending {
		e, ok := j.live[id]
		switch {
		case !ok:
			// Finished before it was written: a done record (25 bytes)
			// lets a restart recognise a copy the disk queue hands out
			// again because its metadata had not caught up.
			j.buf = appendDoneRecord(j.buf, id)
		case !e.written:
			j.buf = appendPutRecord(j.buf, e.m, e.at, e.attempts)
			e.written = true
			j.live[id] = e
		}
	}
	clear(j.pending)
	j.pending = j.pending[:0]
	if cap(j.pending) > 1<<16 {
		j.pending = nil
	}
	return j.writeLocked()
}

// writeLocked writes buf in one system call. On failure the file is cut
// back to its last good size and buf is kept for the next attempt.
func (j *journal) writeLocked() error {
	if len(j.buf) == 0 {
		return nil
	}
	if j.closed {
		return ErrExiting
	}
	n, err := j.f.WriteAt(j.buf, j.size)
	if err != nil {
		if n > 0 {
			j.f.Truncate(j.size)
		}
		return fmt.Errorf("write journal %s: %w", j.path, err)
	}
	j.size += int64(n)
	j.unsynced = true
	if cap(j.buf) > 1<<20 {
		j.buf = nil
	} else {
		j.buf = j.buf[:0]
	}
	return nil
}

// sync makes every record appended before the call durable: it writes and
// fsyncs them, sharing the fsync with concurrent callers.
func (j *journal) sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.writeLocked(); err != nil {
		return err
	}
	target := j.syncStarted
	if j.unsynced {
		target++
	}
	for j.syncFinished < target {
		if j.syncing {
			j.waitSyncLocked()
			continue
		}
		j.runSyncLocked()
	}
	return j.syncErr
}

func (j *journal) waitSyncLocked() {
	done := j.syncDone
	j.mu.Unlock()
	<-done
	j.mu.Lock()
}

func (j *journal) runSyncLocked() {
	j.syncing = true
	j.syncStarted++
	gen := j.syncStarted
	done := make(chan struct{})
	j.syncDone = done
	j.unsynced = false
	f := j.f
	j.mu.Unlock()
	err := f.Sync()
	if err != nil {
		err = fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	j.mu.Lock()
	if err != nil {
		j.unsynced = true
	}
	j.syncing, j.syncFinished, j.syncErr = false, gen, err
	close(done)
}

// needsCompaction reports whether the file has grown well past the live
// messages.
func (j *journal) needsCompaction() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return !j.closed && j.size > journalCompactMin && j.size > 4*j.liveBytes
}

// compact rewrites the file with only the live messages. For a channel the
// caller first makes its disk queue's read position durable, since the
// finished records dropped here no longer guard against a re-read.
func (j *journal) compact() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	return j.rewriteLocked()
}

// rewriteLocked replaces the file with the live messages through a fsynced
// temporary file, and fsyncs the directory.
func (j *journal) rewriteLocked() error {
	for j.syncing {
		j.waitSyncLocked()
	}
	buf := make([]byte, 0, len(journalMagic)+int(j.liveBytes))
	buf = append(buf, journalMagic...)
	for id, e := range j.live {
		buf = appendPutRecord(buf, e.m, e.at, e.attempts)
		if !e.written {
			e.written = true
			j.live[id] = e
		}
	}
	tmp := fmt.Sprintf("%s.%d.tmp", j.path, rand.Int())
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("rewrite journal %s: %w", j.path, err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err == nil {
		err = diskq.SyncDir(filepath.Dir(j.path))
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("rewrite journal %s: %w", j.path, err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.size, j.buf, j.unsynced = f, int64(len(buf)), j.buf[:0], false
	clear(j.pending)
	j.pending = j.pending[:0]
	return nil
}

// reset drops every message (the topic or channel was emptied). Like close
// and remove, it does nothing on a nil journal (not durable mode).
func (j *journal) reset() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	clear(j.live)
	j.liveBytes = 0
	j.buf = j.buf[:0]
	return j.rewriteLocked()
}

// close writes and fsyncs what is appended and closes the file.
func (j *journal) close() error {
	if j == nil {
		return nil
	}
	err := j.sync()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	return errors.Join(err, j.f.Close())
}

// remove closes the journal and deletes its file.
func (j *journal) remove() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	for j.syncing {
		j.waitSyncLocked()
	}
	if !j.closed {
		j.closed = true
		j.f.Close()
	}
	j.mu.Unlock()
	if err := os.Remove(j.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// readJournal loads a journal left by a durable run into a daemon running
// without --durable; its messages become ordinary queued and deferred ones
// (the caller removes the file once they are queued).
func readJournal(dataPath, name string, maxMsgSize int64, log *slog.Logger) journalLoad {
	fn := journalFileName(dataPath, name)
	if _, err := os.Stat(fn); err != nil {
		return journalLoad{}
	}
	j := &journal{path: fn, log: log, live: make(map[MessageID]journalEntry)}
	ld, err := j.load(maxMsgSize)
	if err != nil {
		log.Error("JOURNAL: failed to load", "file", fn, "err", err)
		return journalLoad{}
	}
	for _, m := range ld.msgs {
		m.journaled = false
	}
	return ld
}

package diskq

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"time"
)

// Sync makes every record Put before the call durable: it fsyncs the data
// files written since the last sync and persists the metadata. Concurrent
// callers share one fsync (group commit): a caller returns once a sync that
// started after its call has finished, and gets that sync's result. With
// nothing written or read since the last sync started it only waits for that
// one.
func (q *Queue) Sync() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.metaWanted = true
	// A running sync may skip the metadata (SyncData): then start another.
	fresh := q.dirtyLocked() || q.metaOwed || (q.syncing && !q.syncWritesMeta)
	if err := q.syncLocked(fresh, false); err != nil {
		return fmt.Errorf("sync diskqueue %q: %w", q.name, err)
	}
	return nil
}

// SyncData makes every record Put before the call durable, as Sync does,
// with one fsync: it leaves the metadata to a later sync unless a roll or a
// change of files owes it now. A crash then leaves metadata behind the data,
// which Open handles: records past the recorded write position are still
// read, and a committed read (ExplicitCommit) may be read again. Durable
// publishes use it; MaybeSync writes the owed metadata within SyncTimeout.
func (q *Queue) SyncData() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if err := q.syncLocked(q.dirtyLocked(), false); err != nil {
		return fmt.Errorf("sync diskqueue %q: %w", q.name, err)
	}
	return nil
}

// MaybeSync syncs if records were written or read and SyncTimeout has passed
// since the last sync, or if an earlier sync is still owed (it failed). The
// owner calls it periodically in place of go-diskqueue's per-queue ticker;
// it returns at once when there is nothing to do or a sync is already
// running, and otherwise blocks for the fsync, so an owner of many queues
// should call it from a few goroutines rather than one.
func (q *Queue) MaybeSync(now time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	due := q.needSync || (q.ops > 0 && now.Sub(q.lastSync) >= q.opts.SyncTimeout) ||
		(q.metaOwed && now.Sub(q.lastMeta) >= q.opts.SyncTimeout)
	if q.syncing || !due {
		return nil
	}
	q.metaWanted = true
	if err := q.syncLocked(true, false); err != nil {
		return fmt.Errorf("sync diskqueue %q: %w", q.name, err)
	}
	return nil
}

// autoSync is the sync Put and Read run themselves after a roll, a move to a
// new read file or SyncEvery operations.
func (q *Queue) autoSync() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil // Close synced
	}
	q.metaWanted = true
	return q.syncLocked(q.dirtyLocked(), false)
}

// dirtyLocked reports whether anything happened since the last sync started.
func (q *Queue) dirtyLocked() bool {
	return q.ops > 0 || q.needSync || len(q.retired) > 0
}

// syncLocked returns once a sync has finished that started after the call
// (fresh) or, if not fresh, the running one if any. It runs that sync itself
// unless another caller already is. q.mu is held on entry and return but not
// while fsyncing or waiting. Only the final sync of Close runs on a closed
// queue.
func (q *Queue) syncLocked(fresh, final bool) error {
	target := q.syncStarted
	if fresh {
		target++
	}
	for q.syncFinished < target {
		if q.syncing {
			q.waitRunningSyncLocked()
			continue
		}
		if q.closed && !final {
			return ErrClosed
		}
		q.runSyncLocked()
	}
	return q.syncErr
}

// waitSyncLocked waits until no sync is running.
func (q *Queue) waitSyncLocked() {
	for q.syncing {
		q.waitRunningSyncLocked()
	}
}

// waitRunningSyncLocked waits for the running sync to finish; another may
// have started by the time it returns.
func (q *Queue) waitRunningSyncLocked() {
	done := q.syncDone
	q.syncWaiters++
	q.mu.Unlock()
	<-done
	q.mu.Lock()
	q.syncWaiters--
}

// runSyncLocked takes a snapshot under q.mu, then without it fsyncs the
// rolled write files (closing them) and the current one, and writes the
// snapshot's metadata. The data reaches the disk before metadata that points
// at it; records written during the fsync are covered by the next sync.
// The current write file cannot be closed meanwhile: Empty, Delete and Close
// wait for the sync, and a roll only retires it.
func (q *Queue) runSyncLocked() {
	q.syncing = true
	q.syncStarted++
	gen := q.syncStarted
	done := make(chan struct{})
	q.syncDone = done
	retired, cur := q.retired, q.writeFile
	q.retired = nil
	meta := metadata{q.depth.Load(), q.readFileNum, q.readPos, q.writeFileNum, q.writePos}
	if q.opts.ExplicitCommit {
		meta.depth += q.uncommitted
		meta.readFileNum, meta.readPos = q.commitFileNum, q.commitPos
	}
	writeMeta := q.metaWanted || q.needSync || len(retired) > 0
	syncDirNow := q.opts.SyncDir && (writeMeta || q.newFile)
	q.syncWritesMeta = writeMeta
	q.newFile = q.newFile && !syncDirNow
	q.ops = 0
	q.needSync = false
	q.lastSync = time.Now()
	var finished []string
	if writeMeta {
		q.metaWanted, q.metaOwed, q.lastMeta = false, false, q.lastSync
		finished, q.committedFiles = q.committedFiles, nil
	} else {
		q.metaOwed = true
	}
	q.mu.Unlock()

	var errs []error
	for _, f := range retired {
		if err := q.hooks.fsync(f); err != nil {
			errs = append(errs, err)
		}
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if cur != nil {
		if err := q.hooks.fsync(cur); err != nil {
			errs = append(errs, err)
		}
	}
	// Metadata pointing at data that may not be on disk would be worse than
	// stale metadata, which the tail check at Open handles.
	err := errors.Join(errs...)
	if err == nil && writeMeta && q.opts.BeforeMetadata != nil {
		err = q.opts.BeforeMetadata()
	}
	if err == nil && writeMeta {
		err = q.persistMetadata(meta)
	}
	if err == nil && syncDirNow {
		err = SyncDir(q.dataPath)
	}
	if err == nil {
		for _, fn := range finished {
			q.removeFile(fn)
		}
		finished = nil
	}

	q.mu.Lock()
	q.syncing = false
	q.syncFinished = gen
	q.syncErr = err
	if err != nil {
		q.needSync = true
		q.newFile = q.newFile || syncDirNow
		q.committedFiles = append(finished, q.committedFiles...)
	}
	close(done)
}

// SyncDir fsyncs a directory, making the names created or renamed in it
// durable.
func SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// metadata is the content of the metadata file.
type metadata struct {
	depth                  int64
	readFileNum, readPos   int64
	writeFileNum, writePos int64
}

// metadataFormat is go-diskqueue's, for both writing and parsing.
const metadataFormat = "%d\n%d,%d\n%d,%d\n"

// persistMetadata replaces the metadata file atomically through a fsynced
// temporary file named as go-diskqueue names it.
func (q *Queue) persistMetadata(m metadata) error {
	tmp := fmt.Sprintf("%s.%d.tmp", q.metaName, rand.Int())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, metadataFormat, m.depth, m.readFileNum, m.readPos, m.writeFileNum, m.writePos)
	if err == nil {
		err = q.hooks.fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, q.metaName)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// loadMetadata reads the metadata file into q; a missing file is an empty
// queue.
func (q *Queue) loadMetadata() error {
	f, err := os.Open(q.metaName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 512))
	if err != nil {
		return err
	}
	var m metadata
	if _, err := fmt.Sscanf(string(b), metadataFormat,
		&m.depth, &m.readFileNum, &m.readPos, &m.writeFileNum, &m.writePos); err != nil {
		return fmt.Errorf("%w in %s: %q: %w", ErrBadMetadata, q.metaName, b, err)
	}
	if m.readFileNum < 0 || m.readPos < 0 || m.writeFileNum < 0 || m.writePos < 0 {
		return fmt.Errorf("%w in %s: negative position: %q", ErrBadMetadata, q.metaName, b)
	}
	q.depth.Store(m.depth)
	q.readFileNum, q.readPos = m.readFileNum, m.readPos
	q.writeFileNum, q.writePos = m.writeFileNum, m.writePos
	return nil
}

package nsqd

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nsqclone/nsq/internal/diskq"
)

// Durable mode (--durable) is decided here: the topic and channel code ask
// these methods where a message goes and what must be fsynced, journaled or
// committed, and in the default mode each answer costs a nil check.
//
// The rules: a durable topic or channel keeps nothing only in memory (its
// memory queue size is 0); a publish is acknowledged once every channel it
// went to has fsynced it (syncChannels); messages out of the disk queue's
// order (read and unfinished, requeued, deferred) live in the journal; the
// sync loop writes journals every 50 ms (writeJournal) and commits a
// channel's disk queue reads only past messages finished or journaled
// (commitReads, flushJournal); a restart skips disk queue copies of what the
// journal accounted for (recoveredIDs). docs/architecture.md lists the steps.

// openJournal opens the journal of a durable topic or channel; without
// --durable it returns nil and the messages of a journal a durable run left
// behind (its file is then removed once the caller has queued them).
func (n *NSQD) openJournal(name string, log *slog.Logger) (*journal, journalLoad, error) {
	var j *journal
	var ld journalLoad
	if n.opts.Durable {
		var err error
		j, ld, err = openJournal(n.dataPath(), name, n.opts.MaxMsgSize, log)
		if err != nil {
			err = fmt.Errorf("open journal %q: %w", name, err)
			n.health.fail(healthJournal, err)
			return nil, journalLoad{}, err
		}
	} else {
		ld = readJournal(n.dataPath(), name, n.opts.MaxMsgSize, log)
	}
	if ld.damaged != nil {
		n.health.found(healthJournal, ld.damaged)
	}
	return j, ld, nil
}

// syncDurable fsyncs what a publish wrote to a durable topic's or channel's
// disk queue and journal (nothing without a journal: not durable mode).
// Concurrent callers share the fsyncs.
func (n *NSQD) syncDurable(q *diskq.Queue, j *journal) error {
	if j == nil {
		return nil
	}
	qerr, jerr := q.SyncData(), j.sync()
	if qerr != nil {
		n.health.fail(healthDiskQueue, qerr)
	}
	if jerr != nil {
		n.health.fail(healthJournal, jerr)
	}
	return errors.Join(qerr, jerr)
}

// restoreJournaled queues the messages a journal held at startup. Without
// --durable the journal file is removed once they are queued like any other.
func (c *Channel) restoreJournaled(msgs []*Message) {
	if len(msgs) > 0 {
		if _, err := c.enqueue(msgs); err != nil {
			c.log.Error("CHANNEL: failed to restore journaled messages", "count", len(msgs), "err", err)
			return
		}
		c.log.Info("CHANNEL: restored unfinished and deferred messages from journal", "count", len(msgs))
	}
	if c.journal == nil {
		os.Remove(journalFileName(c.nsqd.dataPath(), c.backendName()))
	}
}

// syncDurable makes what enqueue wrote durable (durable mode): the disk
// queue and the journal are fsynced, shared with concurrent publishers.
func (c *Channel) syncDurable() error { return c.nsqd.syncDurable(c.backend, c.journal) }

// flushJournal writes the journal (durable mode) and commits the disk
// queue's reads it now covers: every message read so far is finished or
// written in the journal. The records reach the disk before the commit
// does: the disk queue's sync fsyncs the journal before its metadata.
func (c *Channel) flushJournal() error {
	if c.journal == nil {
		return nil
	}
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	return c.flushJournalLocked()
}

func (c *Channel) flushJournalLocked() error {
	if err := c.journal.flush(); err != nil {
		return err
	}
	c.backend.Commit()
	return nil
}

// recoveredIDs: see Channel.recovered.
type recoveredIDs struct {
	ids    map[MessageID]struct{}
	window int64
}

// skipRecoveredLocked drops the messages the journal already accounted for
// at startup. Callers hold diskMu.
func (c *Channel) skipRecoveredLocked(msgs []*Message) []*Message {
	r := c.recovered
	n := 0
	for _, m := range msgs {
		_, seen := r.ids[m.ID]
		r.window--
		if !seen {
			msgs[n] = m
			n++
		}
	}
	if r.window <= 0 {
		c.recovered = nil
		c.hasRecovered.Store(false)
	}
	if skipped := len(msgs) - n; skipped > 0 {
		c.log.Info("CHANNEL: skipped disk queue copies of messages the journal accounted for", "count", skipped)
	}
	clear(msgs[n:])
	return msgs[:n]
}

// notJournaled filters msgs in place.
func notJournaled(msgs []*Message) []*Message {
	n := 0
	for _, m := range msgs {
		if !m.journaled {
			msgs[n] = m
			n++
		}
	}
	return msgs[:n]
}

// syncChannels makes a durable publish durable in every channel it went to.
// The channels' fsyncs run at once (a goroutine each, waited for here): one
// after the other, a publish to 8 channels would wait for 8 fsyncs.
func syncChannels(chans []*Channel) error {
	if len(chans) == 0 {
		return nil
	}
	if len(chans) == 1 {
		return chans[0].syncDurable()
	}
	errs := make([]error, len(chans))
	var wg sync.WaitGroup
	for i, c := range chans {
		wg.Go(func() { errs[i] = c.syncDurable() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// syncDurable fsyncs the topic's own disk queue and journal (durable mode).
func (t *Topic) syncDurable() error { return t.nsqd.syncDurable(t.backend, t.journal) }

// writeJournal writes a durable store's journal records; the sync loop
// calls it every 50 ms, so a crash brings back at most the messages
// finished in the last 50 ms. It only writes: the channel's disk queue
// read is committed by commitReads, in the sync pass. It reports false
// when the write failed (the journal health condition is set then).
func (n *NSQD) writeJournal(s store) bool {
	j := s.j
	if j == nil {
		return true
	}
	if err := j.flush(); err != nil {
		if errors.Is(err, ErrExiting) {
			return true
		}
		n.logger.Error("JOURNAL: write failed", "file", j.path, "err", err)
		n.health.fail(healthJournal, err)
		return false
	}
	if f := n.journalWritten; f != nil {
		now := time.Now()
		if !j.lastWrite.IsZero() {
			f(now.Sub(j.lastWrite))
		}
		j.lastWrite = now
	}
	return true
}

// commitReads commits a durable channel's disk queue reads that its journal
// now covers (flushJournal). The sync pass calls it before the queue's
// MaybeSync: each commit makes the queue's next read persist the read
// position (a metadata write and fsyncs), so committing every 50 ms would
// multiply the fsyncs; the journal records that make a commit safe are
// written every 50 ms regardless. It reports false when the journal write
// failed.
func (n *NSQD) commitReads(s store) bool {
	if s.j == nil || s.c == nil {
		return true
	}
	if err := s.c.flushJournal(); err != nil && !errors.Is(err, ErrExiting) {
		n.logger.Error("JOURNAL: write failed", "file", s.j.path, "err", err)
		n.health.fail(healthJournal, err)
		return false
	}
	return true
}

// compactJournal rewrites a journal that has grown well past its live
// messages. For a channel, under diskMu, the journal is written and the
// disk queue's committed read position made durable first: the finished
// records compaction drops are what recognises messages read again after a
// crash, so every read must be committed and durable before they go. It
// reports false when the journal could not be written or compacted.
func (n *NSQD) compactJournal(s store) bool {
	j := s.j
	if s.c != nil {
		s.c.diskMu.Lock()
		defer s.c.diskMu.Unlock()
		if err := s.c.flushJournalLocked(); err != nil {
			if errors.Is(err, ErrExiting) {
				return true
			}
			n.logger.Error("JOURNAL: not compacted, write failed", "file", j.path, "err", err)
			n.health.fail(healthJournal, err)
			return false
		}
		if err := s.c.backend.Sync(); err != nil {
			n.logger.Error("JOURNAL: not compacted, disk queue sync failed", "file", j.path, "err", err)
			n.health.fail(healthDiskQueue, err)
			return true
		}
	}
	if err := j.compact(); err != nil {
		n.logger.Error("JOURNAL: compaction failed", "file", j.path, "err", err)
		n.health.fail(healthJournal, err)
		return false
	}
	return true
}

// openStorage opens the channel's disk queue and, in durable mode, its
// journal, and queues what the journal held. Messages the journal held or
// had finished are remembered (recovered) while the disk queue may still
// hand out copies of them.
func (c *Channel) openStorage() error {
	n := c.nsqd
	j, ld, err := n.openJournal(c.backendName(), c.log)
	if err != nil {
		return err
	}
	q, err := n.newBackend(c.backendName(), j)
	if err != nil {
		j.close()
		return err
	}
	c.backend, c.journal = q, j
	if d := q.Depth(); d > 0 && (len(ld.msgs) > 0 || len(ld.done) > 0) {
		c.recovered = &recoveredIDs{ids: ld.seen(), window: d}
		c.hasRecovered.Store(true)
	}
	c.restoreJournaled(ld.msgs)
	return nil
}

// memQueueSize is how many messages the memory queue holds before the disk
// queue takes the rest: --mem-queue-size, or 0 in durable mode, where every
// new message goes through the disk queue and is fsynced there before its
// publish is acknowledged.
func (c *Channel) memQueueSize() int {
	if c.journal != nil {
		return 0
	}
	return int(c.nsqd.opts.MemQueueSize)
}

// journalDeferred records a deferred message with its deliver-at time in
// the journal (durable mode; nothing otherwise), so that a restart keeps it
// deferred. The record is written by the next flush or sync.
func (c *Channel) journalDeferred(m *Message) {
	if c.journal != nil {
		c.journal.put([]*Message{m}, -1)
	}
}

// readDiskChecked reads from the disk queue under diskMu: copies of
// messages the journal accounted for at startup are skipped, and in
// durable mode the messages read become live in the journal, and
// flushJournal commits the read once their records are written.
func (c *Channel) readDiskChecked(dst []*Message, max int) []*Message {
	if c.backend == nil || c.backend.Depth() <= 0 {
		return dst
	}
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	n0 := len(dst)
	for empty := 0; ; {
		dst = c.nsqd.readBackend(c.backend, dst, max, c.log)
		if len(dst) == n0 {
			empty++ // a damaged file skipped, or a read error
		}
		if c.recovered != nil {
			dst = append(dst[:n0], c.skipRecoveredLocked(dst[n0:])...)
		}
		if c.journal != nil {
			// Committed by the next flushJournal.
			dst = append(dst[:n0], c.journal.adopt(dst[n0:])...)
		}
		// When every record read was a copy to skip (or a damaged file was
		// skipped), read on: the pump would otherwise wait for a put that
		// may never come.
		if len(dst) > n0 || c.backend.Depth() <= 0 || empty == 8 {
			return dst
		}
	}
}

// finished forgets a message that was FIN'd (or dropped by sampling). In
// replication mode the FIN is also the set's (replication.go).
func (c *Channel) finished(m *Message) {
	if r := c.nsqd.repl.Load(); r != nil && !c.ephemeral && !c.topic.ephemeral {
		r.finished(c, m)
	}
	if c.journal != nil && m.journaled {
		c.journal.done(m.ID)
	}
}

// openStorage opens the topic's disk queue and, in durable mode, its
// journal, whose messages (the deferred backlog) wait in the topic again.
func (t *Topic) openStorage() error {
	n := t.nsqd
	j, ld, err := n.openJournal(t.name, t.log)
	if err != nil {
		return err
	}
	q, err := n.newBackend(t.name, j)
	if err != nil {
		j.close()
		return err
	}
	t.backend, t.journal = q, j
	for _, m := range ld.msgs {
		m.held = true
	}
	if err := t.putBacklog(ld.msgs); err != nil {
		t.log.Error("TOPIC: failed to restore journaled messages", "count", len(ld.msgs), "err", err)
	} else if j == nil {
		os.Remove(journalFileName(n.dataPath(), t.name))
	}
	return nil
}

// durable reports whether the topic is in durable mode: a publish is
// acknowledged once every channel it went to (or the topic's own backlog)
// has it fsynced, so the batch fast path, which keeps publishes in memory,
// is not taken.
func (t *Topic) durable() bool { return t.journal != nil }

// memQueueSize is the memory backlog's size: --mem-queue-size, or 0 in
// durable mode (see Channel.memQueueSize).
func (t *Topic) memQueueSize() int {
	if t.journal != nil {
		return 0
	}
	return int(t.nsqd.opts.MemQueueSize)
}

// journalDeferred records a deferred message of the topic's backlog in its
// journal (durable mode; nothing otherwise).
func (t *Topic) journalDeferred(m *Message) {
	if t.journal != nil {
		t.journal.put([]*Message{m}, -1)
	}
}

// unjournal clears the journaled and held marks of messages leaving the
// topic's backlog for its channels and returns the IDs of those that were
// journaled, for journalDone once the channels have them durably.
func unjournal(msgs []*Message) []MessageID {
	var done []MessageID
	for _, m := range msgs {
		m.held = false
		if m.journaled {
			done = append(done, m.ID)
			m.journaled = false
		}
	}
	return done
}

// journalDone records that messages of the topic's journal have reached
// the channels.
func (t *Topic) journalDone(ids []MessageID) {
	if t.journal == nil {
		return
	}
	for _, id := range ids {
		t.journal.done(id)
	}
}

// diskBatch is how many messages the drain reads from the topic's disk
// queue at once: in durable mode more, since each batch costs the channels
// an fsync.
func (t *Topic) diskBatch() int {
	if t.journal != nil {
		return 4096
	}
	return 256
}

// commitDiskRead commits the drain's read from the topic's disk queue once
// the channels have the messages durably (durable mode: the queue commits
// only when told; otherwise reads commit themselves).
func (t *Topic) commitDiskRead() {
	if t.journal != nil {
		t.backend.Commit()
	}
}

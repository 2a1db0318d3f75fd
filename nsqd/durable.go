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

// Durable mode (--durable): the policy a durable topic or channel follows
// on top of its disk queue and journal (journal.go).

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

// maintainJournal writes a journal's records (for a channel, committing its
// disk queue's reads they cover) and compacts it once it has grown well
// past its live messages. A channel's disk queue read position is made
// durable first: the finished records compaction drops are what recognises
// messages read again after a crash. It reports false when a write or the
// compaction failed (the journal health condition is set then).
func (n *NSQD) maintainJournal(j *journal, c *Channel) bool {
	var err error
	if c != nil {
		c.diskMu.Lock()
		defer c.diskMu.Unlock()
		err = c.flushJournalLocked()
	} else {
		err = j.flush()
	}
	if err != nil {
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
	if !j.needsCompaction() {
		return true
	}
	if c != nil {
		if err := c.backend.Sync(); err != nil {
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

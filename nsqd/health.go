package nsqd

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
)

// Health is a set of named conditions, each owned by one part of the
// daemon: only that part sets and clears it, so a successful disk-queue
// write cannot hide a damaged nsqd.dat or a failing journal (NSQ keeps one
// slot that the last writer wins). /ping, /stats and /metrics show them
// together.
//
// Each condition has two parts: a current error that its owner clears when
// the operation works again, and errors found while loading the data
// directory (a damaged nsqd.dat or journal), which stay until a restart:
// nothing later proves them dealt with.
type healthCondition int

const (
	// healthDiskQueue: a disk-queue open, write or fsync failed. Cleared by
	// the next successful disk-queue write or open, as NSQ's health is.
	// Damaged data skipped while reading a disk queue (messages lost) stays
	// until restart.
	healthDiskQueue healthCondition = iota
	// healthJournal (durable mode): a journal open, write, fsync or
	// compaction failed. Cleared by the next pass of the sync loop (every
	// 50 ms) that writes every journal without an error. A journal found
	// damaged at startup stays until restart.
	healthJournal
	// healthMetadata: writing nsqd.dat failed (the write is retried every
	// sync-loop tick; cleared by the next successful one). nsqd.dat found
	// damaged at startup stays until restart.
	healthMetadata
	// healthFreeDisk: free space on the data path is below
	// --min-free-disk-bytes. Cleared when it is back above.
	healthFreeDisk
	// healthReplication (replication mode): this replica has known no
	// leader of its set for longer than replicationLeaderGrace (no quorum,
	// or an election that does not end). Cleared as soon as a leader is
	// known again.
	healthReplication
	numHealthConditions
)

// healthConditionNames are the names /stats and /metrics show.
var healthConditionNames = [numHealthConditions]string{"disk_queue", "journal", "metadata", "free_disk", "replication"}

func (c healthCondition) String() string { return healthConditionNames[c] }

// health holds every condition; the zero value is healthy.
type health struct {
	conds [numHealthConditions]conditionState
}

type conditionState struct {
	// bad is set while err or found is set: the hot path (a successful
	// disk-queue write clearing its condition) reads only it.
	bad atomic.Bool
	// mu guards the fields below. It is a leaf: taken under any other
	// lock (a channel's diskMu in the sync loop), and nothing is locked
	// while it is held.
	mu    sync.Mutex
	err   error   // current failure, cleared by its owner
	found []error // found at startup, kept until restart
	seq   uint64  // failures so far; see mark and clearUnchanged
}

func (s *conditionState) updateLocked() { s.bad.Store(s.err != nil || len(s.found) > 0) }

// fail records err as the condition's current failure.
func (h *health) fail(c healthCondition, err error) {
	s := &h.conds[c]
	s.mu.Lock()
	s.err = err
	s.seq++
	s.updateLocked()
	s.mu.Unlock()
}

// found records damage found at startup; it stays until restart.
func (h *health) found(c healthCondition, err error) {
	s := &h.conds[c]
	s.mu.Lock()
	s.found = append(s.found, err)
	s.updateLocked()
	s.mu.Unlock()
}

// clear ends the condition's current failure. It costs one atomic load
// while the condition is clear.
func (h *health) clear(c healthCondition) {
	s := &h.conds[c]
	if !s.bad.Load() {
		return
	}
	s.mu.Lock()
	s.err = nil
	s.updateLocked()
	s.mu.Unlock()
}

// mark returns a token for clearUnchanged.
func (h *health) mark(c healthCondition) uint64 {
	s := &h.conds[c]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// clearUnchanged clears the current failure unless one was recorded since
// mark: a pass over many objects that all worked clears what an earlier
// pass (or another goroutine before the pass began) reported, and not what
// was reported during it.
func (h *health) clearUnchanged(c healthCondition, mark uint64) {
	s := &h.conds[c]
	if !s.bad.Load() {
		return
	}
	s.mu.Lock()
	if s.seq == mark {
		s.err = nil
		s.updateLocked()
	}
	s.mu.Unlock()
}

// failing reports whether the condition has a current failure (not
// counting what was found at startup).
func (h *health) failing(c healthCondition) bool {
	s := &h.conds[c]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil
}

// message is the condition's text, "" while it is healthy: what was found
// at startup first, then the current failure, on one line.
func (h *health) message(c healthCondition) string {
	s := &h.conds[c]
	if !s.bad.Load() {
		return ""
	}
	s.mu.Lock()
	errs := append([]error(nil), s.found...)
	if s.err != nil {
		errs = append(errs, s.err)
	}
	s.mu.Unlock()
	msgs := make([]string, 0, len(errs))
	for _, err := range errs {
		msgs = append(msgs, oneLine(err.Error()))
	}
	return strings.Join(msgs, "; ")
}

// oneLine turns the lines of a joined error into one.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}

// HealthCondition is one entry of /stats' health_conditions (an addition
// to NSQ's JSON): a named part of the daemon and whether it is healthy.
type HealthCondition struct {
	Condition string `json:"condition"`
	OK        bool   `json:"ok"`
	Message   string `json:"message,omitempty"`
}

// HealthConditions lists every condition, in a fixed order.
func (n *NSQD) HealthConditions() []HealthCondition {
	out := make([]HealthCondition, numHealthConditions)
	for c := range numHealthConditions {
		msg := n.health.message(c)
		out[c] = HealthCondition{Condition: c.String(), OK: msg == "", Message: msg}
	}
	return out
}

// Health is nil while every condition is healthy; else its text names each
// failing condition with its message, on one line ("journal: ...;
// metadata: ..."), as /ping and /stats' health show it after "NOK - ".
func (n *NSQD) Health() error {
	var parts []string
	for c := range numHealthConditions {
		if msg := n.health.message(c); msg != "" {
			parts = append(parts, c.String()+": "+msg)
		}
	}
	if parts == nil {
		return nil
	}
	return errors.New(strings.Join(parts, "; "))
}

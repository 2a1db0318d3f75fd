package replication

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// openLog opens the raft log in dir/log. A data directory written before
// the log moved out of bolt has its entries in raft.db: they are copied
// once into dir/log.migrating, which is renamed to dir/log when complete,
// then deleted from bolt (which keeps the term and vote). A crash during
// the copy leaves log.migrating, redone at the next start; a crash after
// the rename leaves entries in bolt, deleted at the next start.
func openLog(dir string, bolt raft.LogStore, log *slog.Logger) (*logStore, error) {
	logDir := filepath.Join(dir, "log")
	first, err := bolt.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("read raft.db log: %w", err)
	}
	last, err := bolt.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("read raft.db log: %w", err)
	}
	if _, err := os.Stat(logDir); errors.Is(err, os.ErrNotExist) && last > 0 {
		n, err := migrateBoltLog(dir, bolt, first, last)
		if err != nil {
			return nil, fmt.Errorf("move raft log out of raft.db: %w", err)
		}
		log.Info("REPLICATION: moved the raft log out of raft.db", "entries", n, "last_index", last)
	}
	s, err := openLogStore(logDir, 0)
	if err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	if last > 0 {
		if err := bolt.DeleteRange(first, last); err != nil {
			s.Close()
			return nil, fmt.Errorf("delete the moved raft log from raft.db: %w", err)
		}
	}
	return s, nil
}

// migrateBoltLog copies bolt's entries into dir/log through a temporary
// directory. A bolt log can have a gap (after a follower installed a
// snapshot, raft keeps older entries and appends after the snapshot's
// index); only the contiguous run ending at last is copied, as the older
// entries are covered by the snapshot.
func migrateBoltLog(dir string, bolt raft.LogStore, first, last uint64) (int, error) {
	start := first
	var l raft.Log
	for i := first; i <= last; i++ {
		if err := bolt.GetLog(i, &l); errors.Is(err, raft.ErrLogNotFound) {
			start = i + 1
		} else if err != nil {
			return 0, err
		}
	}
	tmp := filepath.Join(dir, "log.migrating")
	if err := os.RemoveAll(tmp); err != nil {
		return 0, err
	}
	s, err := openLogStore(tmp, 0)
	if err != nil {
		return 0, err
	}
	batch := make([]*raft.Log, 0, 256)
	for i := start; i <= last; i++ {
		e := new(raft.Log)
		if err := bolt.GetLog(i, e); err != nil {
			s.Close()
			return 0, err
		}
		if batch = append(batch, e); len(batch) == cap(batch) || i == last {
			if err := s.StoreLogs(batch); err != nil {
				s.Close()
				return 0, err
			}
			batch = batch[:0]
		}
	}
	if err := s.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "log")); err != nil {
		return 0, err
	}
	return int(last - start + 1), syncDir(dir)
}

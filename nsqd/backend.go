package nsqd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/nsqclone/nsq/internal/diskq"
)

// newBackend opens (or creates) the disk queue of a topic ("name") or a
// channel ("topic:channel"), in go-diskqueue's file format. In durable mode
// the queue's read position is committed by its owner (see journal) and
// every sync first makes the journal j durable.
//
// The queue checks each record's message header (plausibleHeader): a
// damaged record is skipped by scanning forward to the next one that
// decodes, counted in backend_skipped_regions and backend_skipped_bytes of
// /stats and reported in the disk_queue health condition until restart;
// NSQ gives up the rest of the file.
func (n *NSQD) newBackend(name string, j *journal) (*diskq.Queue, error) {
	o := n.opts
	dopts := diskq.Options{
		MaxBytesPerFile: o.MaxBytesPerFile,
		MinMsgSize:      messageHeaderLen,
		MaxMsgSize:      int32(o.MaxMsgSize) + messageHeaderLen,
		SyncEvery:       o.SyncEvery,
		SyncTimeout:     o.SyncTimeout,
		Logger:          n.logger,
		Check:           plausibleHeader,
		CheckLen:        messageHeaderLen,
	}
	// Lost messages stay reported until restart, as other damage found in
	// the data directory does; once per queue, so the text stays short.
	var reported atomic.Bool
	dopts.Damaged = func(err error) {
		if reported.CompareAndSwap(false, true) {
			n.health.found(healthDiskQueue, fmt.Errorf("disk queue %q skipped damaged data (see backend_skipped_regions in /stats), first: %w", name, err))
		}
	}
	if j != nil {
		dopts.ExplicitCommit, dopts.SyncDir, dopts.BeforeMetadata = true, true, j.sync
	}
	q, err := diskq.Open(name, n.dataPath(), dopts)
	if err != nil {
		err = fmt.Errorf("open disk queue %q: %w", name, err)
		n.health.fail(healthDiskQueue, err)
		return nil, err
	}
	n.health.clear(healthDiskQueue)
	return q, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64*1024); return &b }}

// writeBackend appends messages to a disk queue in NSQ's storage format, in
// one write. A failure sets the disk_queue health condition until the next
// successful write (to any disk queue, as NSQ's health).
func (n *NSQD) writeBackend(q *diskq.Queue, msgs []*Message) error {
	if len(msgs) == 0 {
		return nil
	}
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	ends := make([]int, len(msgs))
	for i, m := range msgs {
		buf = appendMessage(buf, m)
		ends[i] = len(buf)
	}
	records := make([][]byte, len(msgs))
	start := 0
	for i, end := range ends {
		records[i] = buf[start:end]
		start = end
	}
	err := q.Put(records...)
	if cap(buf) <= 1<<20 {
		*bp = buf[:0]
		bufPool.Put(bp)
	}
	if err != nil {
		err = fmt.Errorf("write to disk queue: %w", err)
		n.health.fail(healthDiskQueue, err)
		return err
	}
	n.health.clear(healthDiskQueue)
	return nil
}

// readBackend appends up to max messages read from a disk queue; damaged
// records are logged and skipped (the queue counts them).
func (n *NSQD) readBackend(q *diskq.Queue, dst []*Message, max int, log *slog.Logger) []*Message {
	if q == nil || q.Depth() <= 0 {
		return dst
	}
	var recs [][]byte
	recs, err := q.Read(recs, max)
	if err != nil {
		log.Error("DISKQUEUE: read failed", "err", err)
	}
	for _, r := range recs {
		m, err := decodeMessage(r)
		if err != nil {
			log.Error("DISKQUEUE: dropping undecodable message", "err", err)
			continue
		}
		dst = append(dst, m)
	}
	return dst
}

// dataPath is --data-path, or the working directory when it is empty.
func (n *NSQD) dataPath() string {
	if n.opts.DataPath != "" {
		return n.opts.DataPath
	}
	wd, _ := os.Getwd()
	return wd
}

// Deferred messages keep their deliver-at time across a restart (NSQ writes
// them into the disk queue, where the deferral is lost). At shutdown they go
// to a side file beside the disk queue, "<name>.diskqueue.deferred.dat",
// which no go-diskqueue file name can collide with:
//
//	"NSQDEFR1" then per message: [8-byte deliver-at ns][4-byte length][message in storage format]
const deferredMagic = "NSQDEFR1"

func deferredFileName(dataPath, name string) string {
	return filepath.Join(dataPath, name+".diskqueue.deferred.dat")
}

func writeDeferredFile(dataPath, name string, msgs []*Message) error {
	fn := deferredFileName(dataPath, name)
	if len(msgs) == 0 {
		removeDeferredFile(dataPath, name)
		return nil
	}
	tmp := fn + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write deferred messages: %w", err)
	}
	w := bufio.NewWriter(f)
	w.WriteString(deferredMagic)
	var rec []byte
	for _, m := range msgs {
		rec = binary.BigEndian.AppendUint64(rec[:0], uint64(m.deadline))
		rec = binary.BigEndian.AppendUint32(rec, uint32(messageHeaderLen+len(m.Body)))
		rec = appendMessage(rec, m)
		w.Write(rec)
	}
	err = errors.Join(w.Flush(), f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, fn)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write deferred messages to %s: %w", fn, err)
	}
	return nil
}

// readDeferredFile loads a side file; a damaged tail is reported and the
// records before it are kept.
func readDeferredFile(dataPath, name string) ([]*Message, error) {
	fn := deferredFileName(dataPath, name)
	data, err := os.ReadFile(fn)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", fn, err)
	}
	if len(data) < len(deferredMagic) || string(data[:len(deferredMagic)]) != deferredMagic {
		return nil, fmt.Errorf("read %s: not a deferred-message file", fn)
	}
	data = data[len(deferredMagic):]
	var msgs []*Message
	for len(data) > 0 {
		if len(data) < 12 {
			return msgs, fmt.Errorf("read %s: %w", fn, io.ErrUnexpectedEOF)
		}
		at := int64(binary.BigEndian.Uint64(data[0:8]))
		size := int(binary.BigEndian.Uint32(data[8:12]))
		if size < messageHeaderLen || len(data)-12 < size {
			return msgs, fmt.Errorf("read %s: %w", fn, io.ErrUnexpectedEOF)
		}
		m, err := decodeMessage(data[12 : 12+size])
		if err != nil {
			return msgs, fmt.Errorf("read %s: %w", fn, err)
		}
		m.deadline, m.held = at, true
		msgs = append(msgs, m)
		data = data[12+size:]
	}
	return msgs, nil
}

func removeDeferredFile(dataPath, name string) {
	os.Remove(deferredFileName(dataPath, name))
}

package nsqd

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"github.com/nsqclone/nsq/internal/diskq"
)

// A death log keeps the origins of a dead-letter topic's dead letters on
// disk, beside the topic's disk queue, keyed by each dead letter's ID in the
// dead-letter topic (which its channels keep), so peek can show where a
// queued dead letter came from after a restart.
//
// The file "<topic>.diskqueue.deaths.dat" (a name neither go-diskqueue nor
// NSQ 1.3 uses or reads) is "NSQDEAD1" followed by records:
//
//	[1-byte op 'O'][4-byte payload length][payload][4-byte CRC-32C of the op, length and payload]
//	payload: [16-byte dead letter ID][the DeadLetterOrigin as JSON]
//
// Records are appended before the dead letters are published (and fsynced
// first in --durable mode), so every dead letter acknowledged as published
// has its record. Loading stops at the first damaged or torn record,
// keeping those before it, and cuts the file there. The log keeps the
// origins of the last maxDeathRecords dead letters; the file is rewritten
// with only those once it holds twice as many records. It is read the
// first time something asks for it, so topics without dead letters pay a
// single failed open, and only when peeked or dead-lettered to.
type deathLog struct {
	mu      sync.Mutex
	path    string // "": memory only (an ephemeral topic)
	log     *slog.Logger
	loaded  bool
	closed  bool
	f       *os.File // open for appending once something was added
	size    int64    // bytes in the file
	records int      // records in the file
	byID    map[MessageID]DeadLetterOrigin
	order   []MessageID // oldest first; the keys of byID
	counter uint64      // dead letters added since start
}

const (
	deathMagic     = "NSQDEAD1"
	deathOp        = 'O'
	deathHeader    = 1 + 4
	deathCRC       = 4
	maxDeathRecord = 64 << 10 // payload bytes; an origin is a few hundred
)

// maxDeathRecords is how many origins a dead-letter topic keeps (a var for
// tests).
var maxDeathRecords = 10000

func deathFileName(dataPath, name string) string {
	return filepath.Join(dataPath, name+".diskqueue.deaths.dat")
}

var errDeathRecord = errors.New("invalid death record")

// parseDeathRecord checks the record at the start of b and returns its dead
// letter's ID, origin and length. A record cut short is errJournalTorn-like:
// torn reports it.
func parseDeathRecord(b []byte) (id MessageID, o DeadLetterOrigin, n int, torn bool, err error) {
	if len(b) < deathHeader {
		return id, o, 0, true, fmt.Errorf("%w: %d bytes, too few for a header", errDeathRecord, len(b))
	}
	size := int64(binary.BigEndian.Uint32(b[1:5]))
	if b[0] != deathOp {
		return id, o, 0, false, fmt.Errorf("%w: op %q", errDeathRecord, b[0])
	}
	if size < int64(len(id))+2 || size > maxDeathRecord {
		return id, o, 0, false, fmt.Errorf("%w: %d bytes", errDeathRecord, size)
	}
	n = deathHeader + int(size) + deathCRC
	if len(b) < n {
		return id, o, 0, true, fmt.Errorf("%w: %d of %d bytes", errDeathRecord, len(b), n)
	}
	if got, want := crc32.Checksum(b[:n-deathCRC], crcTable), binary.BigEndian.Uint32(b[n-deathCRC:n]); got != want {
		return id, o, 0, false, fmt.Errorf("%w: checksum %08x, want %08x", errDeathRecord, got, want)
	}
	payload := b[deathHeader : n-deathCRC]
	copy(id[:], payload)
	if err := json.Unmarshal(payload[len(id):], &o); err != nil {
		return id, o, 0, false, fmt.Errorf("%w: %v", errDeathRecord, err)
	}
	o.ID = string(id[:])
	return id, o, n, false, nil
}

func appendDeathRecord(b []byte, id MessageID, o DeadLetterOrigin) []byte {
	o.ID = "" // the key
	js, _ := json.Marshal(o)
	start := len(b)
	b = append(b, deathOp)
	b = binary.BigEndian.AppendUint32(b, uint32(len(id)+len(js)))
	b = append(b, id[:]...)
	b = append(b, js...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

// loadLocked reads the file once.
func (d *deathLog) loadLocked() {
	if d.loaded {
		return
	}
	d.loaded = true
	d.byID = make(map[MessageID]DeadLetterOrigin)
	if d.path == "" {
		return
	}
	data, err := os.ReadFile(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		d.log.Error("DEADLETTER: failed to read origins", "file", d.path, "err", err)
		return
	}
	if !bytes.HasPrefix(data, []byte(deathMagic)) {
		bad := d.path + ".bad"
		os.Rename(d.path, bad)
		d.log.Error("DEADLETTER: not a dead-letter origin file, kept as .bad", "file", d.path, "bad", bad)
		return
	}
	rest := data[len(deathMagic):]
	for len(rest) > 0 {
		id, o, n, torn, err := parseDeathRecord(rest)
		if err != nil {
			off := len(data) - len(rest)
			if torn {
				d.log.Warn("DEADLETTER: ignoring incomplete last origin record", "file", d.path, "offset", off, "bytes", len(rest))
			} else {
				d.log.Error("DEADLETTER: damaged origin record, ignoring the rest of the file", "file", d.path, "offset", off, "bytes", len(rest), "err", err)
			}
			if err := os.Truncate(d.path, int64(off)); err != nil {
				d.log.Error("DEADLETTER: failed to cut the origin file", "file", d.path, "err", err)
			}
			break
		}
		rest = rest[n:]
		d.records++
		d.putLocked(id, o)
	}
	d.size = int64(len(data) - len(rest))
}

// putLocked keeps o, forgetting the oldest origin beyond maxDeathRecords.
func (d *deathLog) putLocked(id MessageID, o DeadLetterOrigin) {
	if _, ok := d.byID[id]; !ok {
		d.order = append(d.order, id)
	}
	d.byID[id] = o
	for len(d.order) > maxDeathRecords {
		delete(d.byID, d.order[0])
		d.order[0] = MessageID{}
		d.order = d.order[1:]
	}
}

// add records the origins of dead letters about to be published with ids;
// with sync the records are fsynced before it returns.
func (d *deathLog) add(ids []MessageID, origins []DeadLetterOrigin, sync bool) error {
	return d.addCounted(ids, origins, sync, true)
}

// record keeps the origins of dead letters a replica set published
// (replication_limits.go); count says whether they count as received here
// (on the leader only, so a set counts each once).
func (d *deathLog) record(ids []MessageID, origins []DeadLetterOrigin, count bool) error {
	return d.addCounted(ids, origins, false, count)
}

func (d *deathLog) addCounted(ids []MessageID, origins []DeadLetterOrigin, sync, count bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrExiting
	}
	d.loadLocked()
	if d.path != "" {
		if err := d.appendLocked(ids, origins, sync); err != nil {
			return err
		}
	}
	for i, id := range ids {
		origins[i].ID = string(id[:])
		d.putLocked(id, origins[i])
	}
	if count {
		d.counter += uint64(len(ids))
	}
	if d.path != "" && d.records > 2*maxDeathRecords {
		if err := d.rewriteLocked(); err != nil {
			d.log.Error("DEADLETTER: failed to compact origins", "file", d.path, "err", err)
		}
	}
	return nil
}

func (d *deathLog) appendLocked(ids []MessageID, origins []DeadLetterOrigin, sync bool) error {
	var buf []byte
	created := false
	if d.f == nil {
		f, err := os.OpenFile(d.path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("open dead-letter origins: %w", err)
		}
		d.f = f
		if d.size == 0 {
			buf = append(buf, deathMagic...)
			created = true
		}
	}
	for i, id := range ids {
		buf = appendDeathRecord(buf, id, origins[i])
	}
	n, err := d.f.WriteAt(buf, d.size)
	if err != nil {
		if n > 0 {
			d.f.Truncate(d.size)
		}
		return fmt.Errorf("write dead-letter origins %s: %w", d.path, err)
	}
	d.size += int64(n)
	d.records += len(ids)
	if sync {
		if err := d.f.Sync(); err != nil {
			return fmt.Errorf("sync dead-letter origins %s: %w", d.path, err)
		}
		if created {
			if err := diskq.SyncDir(filepath.Dir(d.path)); err != nil {
				return err
			}
		}
	}
	return nil
}

// rewriteLocked replaces the file with the kept origins through a fsynced
// temporary file.
func (d *deathLog) rewriteLocked() error {
	buf := []byte(deathMagic)
	for _, id := range d.order {
		buf = appendDeathRecord(buf, id, d.byID[id])
	}
	tmp := fmt.Sprintf("%s.%d.tmp", d.path, rand.Int())
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, d.path)
	}
	if err == nil {
		err = diskq.SyncDir(filepath.Dir(d.path))
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if d.f != nil {
		d.f.Close()
	}
	d.f, d.size, d.records = f, int64(len(buf)), len(d.order)
	d.order = append([]MessageID(nil), d.order...) // drop the trimmed head
	return nil
}

// origins returns the kept origin of each of ids (nil where none is kept);
// nil when the topic keeps none.
func (d *deathLog) origins(ids []MessageID) []*DeadLetterOrigin {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.loadLocked()
	if len(d.byID) == 0 {
		return nil
	}
	out := make([]*DeadLetterOrigin, len(ids))
	for i, id := range ids {
		if o, ok := d.byID[id]; ok {
			out[i] = &o
		}
	}
	return out
}

// list returns the origins of the last maxRecentDeadLetters dead letters,
// oldest first, and how many dead letters the topic received since start.
func (d *deathLog) list() ([]DeadLetterOrigin, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.loadLocked()
	ids := d.order[max(0, len(d.order)-maxRecentDeadLetters):]
	out := make([]DeadLetterOrigin, len(ids))
	for i, id := range ids {
		out[i] = d.byID[id]
	}
	return out, d.counter
}

// received is how many dead letters the topic received since start,
// without reading the file.
func (d *deathLog) received() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counter
}

// close closes the file (at shutdown).
func (d *deathLog) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}

// remove closes and deletes the file (the topic was deleted).
func (d *deathLog) remove() error {
	d.close()
	if d.path == "" {
		return nil
	}
	if err := os.Remove(d.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

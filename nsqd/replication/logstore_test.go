package replication

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

func testLog(i uint64) *raft.Log {
	l := &raft.Log{Index: i, Term: i/10 + 1, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry-%d", i)}
	if i%3 == 0 {
		l.Extensions = []byte{byte(i), 1, 2}
		l.AppendedAt = time.Unix(0, int64(i)*1e9+7)
	}
	if i%5 == 0 {
		l.Type = raft.LogNoop
		l.Data = nil
	}
	return l
}

func storeRange(t *testing.T, s *logStore, lo, hi uint64) {
	t.Helper()
	var batch []*raft.Log
	for i := lo; i <= hi; i++ {
		batch = append(batch, testLog(i))
		if len(batch) == 7 || i == hi {
			if err := s.StoreLogs(batch); err != nil {
				t.Fatalf("StoreLogs(%d-%d): %v", batch[0].Index, i, err)
			}
			batch = nil
		}
	}
}

func equalLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data) &&
		bytes.Equal(a.Extensions, b.Extensions) && a.AppendedAt.Equal(b.AppendedAt)
}

// checkRange asserts FirstIndex, LastIndex and every entry of lo..hi;
// indexes just outside are not found.
func checkRange(t *testing.T, s *logStore, lo, hi uint64) {
	t.Helper()
	if got, _ := s.FirstIndex(); got != lo {
		t.Errorf("FirstIndex = %d, want %d", got, lo)
	}
	if got, _ := s.LastIndex(); got != hi {
		t.Errorf("LastIndex = %d, want %d", got, hi)
	}
	for i := lo; i <= hi && hi != 0; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if want := testLog(i); !equalLog(&l, want) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, l, *want)
		}
	}
	for _, i := range []uint64{lo - 1, hi + 1} {
		var l raft.Log
		if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Errorf("GetLog(%d) = %v, want ErrLogNotFound", i, err)
		}
	}
}

func openTestLog(t *testing.T, dir string, segSize int64) *logStore {
	t.Helper()
	s, err := openLogStore(dir, segSize)
	if err != nil {
		t.Fatalf("openLogStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := segmentNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestLogStoreBasics(t *testing.T) {
	dir := t.TempDir()
	s := openTestLog(t, dir, 64<<10)
	checkRange(t, s, 0, 0)
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Errorf("GetLog on an empty log = %v, want ErrLogNotFound", err)
	}
	if err := s.StoreLog(testLog(1)); err != nil {
		t.Fatal(err)
	}
	storeRange(t, s, 2, 30)
	checkRange(t, s, 1, 30)
	if err := s.StoreLogs([]*raft.Log{testLog(32)}); err == nil {
		t.Error("StoreLogs with a gap succeeded")
	}
	if err := s.StoreLogs([]*raft.Log{testLog(31), testLog(33)}); err == nil {
		t.Error("StoreLogs of a batch with a gap succeeded")
	}
	checkRange(t, s, 1, 30)

	// Restart: the same entries.
	s.Close()
	s = openTestLog(t, dir, 64<<10)
	checkRange(t, s, 1, 30)
	storeRange(t, s, 31, 40)
	checkRange(t, s, 1, 40)
}

// TestLogStoreDeleteRange: raft's two deletions, a prefix after a snapshot
// and a suffix on conflict, across segments and restarts.
func TestLogStoreDeleteRange(t *testing.T) {
	dir := t.TempDir()
	s := openTestLog(t, dir, 512) // a few records per segment
	storeRange(t, s, 1, 100)
	segs := segmentFiles(t, dir)
	if len(segs) < 5 {
		t.Fatalf("%d segments for 100 entries in 512-byte segments, want several", len(segs))
	}

	// Prefix: whole segments go; the new first index holds in memory.
	if err := s.DeleteRange(1, 40); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 41, 100)
	if got := segmentFiles(t, dir); len(got) >= len(segs) {
		t.Errorf("prefix deletion left %d of %d segments", len(got), len(segs))
	}
	// Suffix: entries from 81 on go, then the log goes on from 81 with
	// other entries (a new leader's).
	if err := s.DeleteRange(81, 100); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 41, 80)
	if err := s.DeleteRange(60, 70); err == nil {
		t.Error("deleting from the middle succeeded")
	}
	other := &raft.Log{Index: 81, Term: 99, Type: raft.LogCommand, Data: []byte("new leader")}
	if err := s.StoreLogs([]*raft.Log{other}); err != nil {
		t.Fatal(err)
	}

	// After a restart the suffix stays deleted and the new entry is there;
	// the prefix may start up to one segment early (entries kept whole).
	s.Close()
	s = openTestLog(t, dir, 512)
	first, _ := s.FirstIndex()
	if first > 41 || first < 30 {
		t.Errorf("after restart FirstIndex = %d, want 41 or a few entries before", first)
	}
	if last, _ := s.LastIndex(); last != 81 {
		t.Errorf("after restart LastIndex = %d, want 81", last)
	}
	var l raft.Log
	if err := s.GetLog(81, &l); err != nil || !equalLog(&l, other) {
		t.Errorf("GetLog(81) = %+v, %v; want the new leader's entry", l, err)
	}
	for i := first; i <= 80; i++ {
		if err := s.GetLog(i, &l); err != nil || !equalLog(&l, testLog(i)) {
			t.Fatalf("GetLog(%d) = %+v, %v", i, l, err)
		}
	}

	// Everything (raft empties a monotonic log after restoring a
	// snapshot), then a log that starts anywhere.
	if err := s.DeleteRange(first, 81); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 0, 0)
	if got := segmentFiles(t, dir); len(got) != 0 {
		t.Errorf("segments left after deleting everything: %v", got)
	}
	storeRange(t, s, 500, 520)
	checkRange(t, s, 500, 520)
	s.Close()
	s = openTestLog(t, dir, 512)
	checkRange(t, s, 500, 520)
}

// lastSegment returns the path and content of the log's last segment.
func lastSegment(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	names := segmentFiles(t, dir)
	path := filepath.Join(dir, names[len(names)-1])
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b
}

// TestLogStoreTornTail: a crash that wrote only some sectors of the last
// batch (the rest read as the preallocated zeros) loses that batch, not
// the log; the log goes on from there and reopens cleanly.
func TestLogStoreTornTail(t *testing.T) {
	big := func(i uint64) *raft.Log {
		return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 1500)}
	}
	for _, tc := range []struct {
		name string
		tear func(b []byte, rec int64) // rec: offset of the last record
	}{
		{"middle sector unwritten", func(b []byte, rec int64) {
			sec := (rec + logSectorSize) &^ (logSectorSize - 1)
			clear(b[sec : sec+logSectorSize])
		}},
		{"only the first sector written", func(b []byte, rec int64) {
			sec := (rec + logSectorSize) &^ (logSectorSize - 1)
			clear(b[sec:])
		}},
		{"header unwritten, later sectors written", func(b []byte, rec int64) {
			clear(b[rec : (rec+logSectorSize)&^(logSectorSize-1)])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestLog(t, dir, 64<<10)
			for i := uint64(1); i <= 5; i++ {
				if err := s.StoreLogs([]*raft.Log{big(i)}); err != nil {
					t.Fatal(err)
				}
			}
			_, rec, _, _ := s.locate(5)
			s.Close()
			path, b := lastSegment(t, dir)
			tc.tear(b, rec)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			s = openTestLog(t, dir, 64<<10)
			if last, _ := s.LastIndex(); last != 4 {
				t.Fatalf("after a torn append LastIndex = %d, want 4", last)
			}
			// A short entry over the torn bytes, then a clean reopen.
			short := &raft.Log{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte("x")}
			if err := s.StoreLogs([]*raft.Log{short}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = openTestLog(t, dir, 64<<10)
			var l raft.Log
			if err := s.GetLog(5, &l); err != nil || !equalLog(&l, short) {
				t.Errorf("GetLog(5) = %+v, %v; want the entry written after recovery", l, err)
			}
			if err := s.GetLog(3, &l); err != nil || !equalLog(&l, big(3)) {
				t.Errorf("GetLog(3) = %+v, %v", l, err)
			}
		})
	}
}

// TestLogStoreDamage: garbage that is not a torn write is refused with
// ErrLogDamaged rather than silently dropping entries.
func TestLogStoreDamage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		segSize int64
		damage  func(t *testing.T, dir string)
	}{
		{"flipped byte mid-log", 64 << 10, func(t *testing.T, dir string) {
			path, b := lastSegment(t, dir)
			b[len(logMagic)+logRecordHeader+20] ^= 0x40 // in the first record
			os.WriteFile(path, b, 0o644)
		}},
		{"flipped length in an earlier segment", 512, func(t *testing.T, dir string) {
			path := filepath.Join(dir, segmentFiles(t, dir)[0])
			b, _ := os.ReadFile(path)
			b[len(logMagic)+1] ^= 0x7f
			os.WriteFile(path, b, 0o644)
		}},
		{"missing segment", 512, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, segmentFiles(t, dir)[1]))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestLog(t, dir, tc.segSize)
			storeRange(t, s, 1, 40)
			s.Close()
			tc.damage(t, dir)
			s, err := openLogStore(dir, tc.segSize)
			if err == nil {
				s.Close()
				t.Fatal("opening a damaged log succeeded")
			}
			if !errors.Is(err, ErrLogDamaged) {
				t.Errorf("open error = %v, want ErrLogDamaged", err)
			}
		})
	}

	// Damage inside a record of an earlier segment (only headers are
	// checked at open) shows when the entry is read.
	dir := t.TempDir()
	s := openTestLog(t, dir, 512)
	storeRange(t, s, 1, 40)
	s.Close()
	path := filepath.Join(dir, segmentFiles(t, dir)[0])
	b, _ := os.ReadFile(path)
	b[len(logMagic)+logRecordHeader+logPayloadFixed] ^= 1 // data of entry 1
	os.WriteFile(path, b, 0o644)
	s = openTestLog(t, dir, 512)
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, ErrLogDamaged) {
		t.Errorf("GetLog of a damaged entry = %v, want ErrLogDamaged", err)
	}
	if err := s.GetLog(2, &l); err != nil {
		t.Errorf("GetLog(2) = %v", err)
	}
}

// TestLogMigrationFromBolt: a data directory of the previous version, with
// the log in raft.db, starts with the same entries, moved once.
func TestLogMigrationFromBolt(t *testing.T) {
	dir := t.TempDir()
	bolt, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	// A gap, as a follower that installed a snapshot leaves: 1-10, 21-50.
	for _, r := range [][2]uint64{{1, 10}, {21, 50}} {
		for i := r[0]; i <= r[1]; i++ {
			if err := bolt.StoreLog(testLog(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := bolt.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	// A crash in an earlier attempt left a partial copy.
	os.MkdirAll(filepath.Join(dir, "log.migrating"), 0o755)
	os.WriteFile(filepath.Join(dir, "log.migrating", segmentName(1)), []byte("partial"), 0o644)

	s, err := openLog(dir, bolt, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openLog: %v", err)
	}
	checkRange(t, s, 21, 50)
	if last, _ := bolt.LastIndex(); last != 0 {
		t.Errorf("raft.db still holds entries up to %d", last)
	}
	if term, _ := bolt.GetUint64([]byte("CurrentTerm")); term != 7 {
		t.Errorf("raft.db term = %d, want 7", term)
	}
	if _, err := os.Stat(filepath.Join(dir, "log.migrating")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log.migrating left behind: %v", err)
	}
	storeRange(t, s, 51, 55)
	s.Close()

	// Next start: nothing to move, the log as left.
	s, err = openLog(dir, bolt, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openLog again: %v", err)
	}
	defer s.Close()
	checkRange(t, s, 21, 55)
}

// TestReplicaSetOnMigratedLog: a replica set whose logs are in raft.db
// (the previous version's layout) restarts on the new log with its state.
func TestReplicaSetOnMigratedLog(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	s := &testSet{t: t, dirs: dirs}
	s.init(3)
	l := s.leader()
	if err := s.nodes[l].Meta(&Meta{Op: OpCreateChannel, Topic: "t", Channel: "c"}); err != nil {
		t.Fatal(err)
	}
	publishN(t, s.nodes[l], "t", 10)
	s.converged()
	for i, n := range s.nodes {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		s.trans[i].DisconnectAll()
		toBolt(t, dirs[i])
	}
	s.connectAll()
	for i := range s.nodes {
		s.nodes[i] = s.open(i)
	}
	l = s.leader()
	publishN(t, s.nodes[l], "t", 1)
	s.converged()
	if got := len(ids(s.nodes[0].fsm.View(true), "t", "c")); got != 11 {
		t.Errorf("after migration the channel holds %d messages, want 11", got)
	}
}

// toBolt turns a replica's data directory back into the previous layout:
// the log's entries in raft.db, no log/.
func toBolt(t *testing.T, dir string) {
	t.Helper()
	s := openTestLog(t, filepath.Join(dir, "log"), 0)
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	var logs []*raft.Log
	for i := first; i <= last; i++ {
		l := new(raft.Log)
		if err := s.GetLog(i, l); err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
	}
	s.Close()
	bolt, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	if err := bolt.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "log")); err != nil {
		t.Fatal(err)
	}
}

func FuzzLogRecovery(f *testing.F) {
	seg := []byte(logMagic)
	for i := uint64(1); i <= 4; i++ {
		seg = appendLogRecord(seg, testLog(i))
	}
	f.Add(seg, true)
	f.Add(append(slices.Clone(seg), make([]byte, 600)...), true)
	torn := append(slices.Clone(seg), make([]byte, 1024)...)
	torn = appendLogRecord(torn[:len(seg)], &raft.Log{Index: 5, Data: bytes.Repeat([]byte{1}, 700)})
	torn = append(torn, make([]byte, 512)...)
	clear(torn[(len(seg)+logSectorSize)&^(logSectorSize-1):][:logSectorSize])
	f.Add(torn, true)
	f.Add(seg[:len(seg)-3], false)
	f.Add([]byte(logMagic+"\x00\x00\x00\x30garbage"), true)
	f.Fuzz(func(t *testing.T, b []byte, last bool) {
		var offs []int64
		end, _, err := scanSegment(b, 1, last, func(off int64) { offs = append(offs, off) })
		if err != nil {
			if !errors.Is(err, ErrLogDamaged) {
				t.Fatalf("scanSegment error %v does not wrap ErrLogDamaged", err)
			}
			return
		}
		// The records found re-encode to exactly the bytes they came from.
		out := []byte(nil)
		if len(offs) > 0 || end > 0 {
			out = []byte(logMagic)
		}
		for i, off := range offs {
			var l raft.Log
			if _, err := decodeLogRecord(b[off:], &l); err != nil || l.Index != uint64(i+1) {
				t.Fatalf("record %d at %d: %v, index %d", i, off, err, l.Index)
			}
			out = appendLogRecord(out, &l)
		}
		if !bytes.Equal(out, b[:end]) {
			t.Fatalf("records re-encode to %x, want %x", out, b[:end])
		}
	})
}

// TestLogStoreWriteFailure: after a failed write the file's content is
// unknown, so the store refuses every later write until it is reopened.
func TestLogStoreWriteFailure(t *testing.T) {
	dir := t.TempDir()
	s := openTestLog(t, dir, 64<<10)
	storeRange(t, s, 1, 10)
	s.segs[len(s.segs)-1].f.Close() // every write to it fails now
	if err := s.StoreLogs([]*raft.Log{testLog(11)}); err == nil {
		t.Fatal("StoreLogs on a failing file succeeded")
	}
	if err := s.DeleteRange(1, 5); err == nil {
		t.Error("DeleteRange after a failed write succeeded")
	}
	s.segs = s.segs[:len(s.segs)-1] // closed already
	s.Close()
	s = openTestLog(t, dir, 64<<10)
	checkRange(t, s, 1, 10)
	storeRange(t, s, 11, 12)
	checkRange(t, s, 1, 12)
}

// TestReplicaSetSnapshotCatchUpOnDisk: a replica that fell behind the
// leader's compacted log installs a snapshot on its on-disk stores (raft
// then empties its log, which goes on after the snapshot's index), keeps
// up, and restarts with the set's state.
func TestReplicaSetSnapshotCatchUpOnDisk(t *testing.T) {
	s := &testSet{t: t, dirs: []string{t.TempDir(), t.TempDir(), t.TempDir()}}
	l, lag := s.lagBehindSnapshots()
	if err := s.nodes[l].raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if first, _ := s.nodes[l].logs.FirstIndex(); first <= 2 {
		t.Errorf("leader's log not compacted: first index %d", first)
	}
	s.heal(lag)
	s.converged()
	if got := s.nodes[lag].raft.Stats()["last_snapshot_index"]; got == "0" {
		t.Errorf("lagging replica caught up without a snapshot")
	}
	publishN(t, s.nodes[l], "t", 10)
	s.converged()

	if err := s.nodes[lag].Close(); err != nil {
		t.Fatal(err)
	}
	s.trans[lag].DisconnectAll()
	s.connectAll()
	s.nodes[lag] = s.open(lag)
	l = s.leader()
	publishN(t, s.nodes[l], "t", 1)
	s.converged()
	if got := len(ids(s.nodes[lag].fsm.View(true), "t", "c")); got != 111 {
		t.Errorf("restarted replica holds %d messages, want 111", got)
	}
}

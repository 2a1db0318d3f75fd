package nsqd

import (
	"bytes"
	"fmt"
	"os"
	"testing"
)

func journalMessage(i int) *Message {
	m := &Message{Body: fmt.Appendf(nil, "body-%d", i), Timestamp: int64(1000 + i), Attempts: 1}
	copy(m.ID[:], fmt.Sprintf("%016x", i))
	return m
}

func openTestJournal(t *testing.T, dir string) (*journal, journalLoad) {
	t.Helper()
	j, ld, err := openJournal(dir, "t:c", 1<<20, testOptions(t).Logger)
	if err != nil {
		t.Fatalf("openJournal: %v", err)
	}
	t.Cleanup(func() { j.close() })
	return j, ld
}

func liveBodies(ld journalLoad) []string {
	var out []string
	for _, m := range ld.msgs {
		out = append(out, fmt.Sprintf("%s@%d/%d", m.Body, m.deadline, m.Attempts))
	}
	return out
}

// TestJournalReplay checks put, a later put of the same ID (new deliver-at
// and attempts), done, and that only what was written counts.
func TestJournalReplay(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTestJournal(t, dir)
	ms := []*Message{journalMessage(0), journalMessage(1), journalMessage(2)}
	j.put(ms, 0)
	ms[1].Attempts = 3
	ms[1].deadline = 5000
	j.put(ms[1:2], -1)
	j.done(ms[0].ID)
	j.done(ms[0].ID) // not live any more: no record
	if err := j.sync(); err != nil {
		t.Fatal(err)
	}
	j.put([]*Message{journalMessage(3)}, 0) // appended, never written
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	// close writes what was appended; take a copy of the file without it.
	j2, ld := openTestJournal(t, dir)
	got := fmt.Sprint(liveBodies(ld))
	if want := "[body-1@5000/3 body-2@0/1 body-3@0/1]"; got != want {
		t.Errorf("live after reopen = %s, want %s", got, want)
	}
	if _, ok := ld.done[ms[0].ID]; !ok || len(ld.done) != 1 {
		t.Errorf("done at load = %v, want only message 0", ld.done)
	}
	// The reopened file holds only the live messages.
	if j2.size >= 200 || len(j2.live) != 3 {
		t.Errorf("rewritten journal: %d bytes, %d live", j2.size, len(j2.live))
	}
}

// TestJournalTornTail checks a record cut short by a crash, or damaged,
// ends the replay and keeps the records before it.
func TestJournalTornTail(t *testing.T) {
	for _, damage := range []string{"truncate", "flip"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			j, _ := openTestJournal(t, dir)
			j.put([]*Message{journalMessage(0), journalMessage(1)}, 0)
			if err := j.close(); err != nil {
				t.Fatal(err)
			}
			fn := journalFileName(dir, "t:c")
			b, _ := os.ReadFile(fn)
			switch damage {
			case "truncate":
				b = b[:len(b)-3]
			case "flip":
				b[len(b)-10] ^= 0xff
			}
			os.WriteFile(fn, b, 0o600)
			_, ld := openTestJournal(t, dir)
			if got := fmt.Sprint(liveBodies(ld)); got != "[body-0@0/1]" {
				t.Errorf("live = %s, want only the first message", got)
			}
		})
	}
}

func TestJournalNotAJournal(t *testing.T) {
	dir := t.TempDir()
	fn := journalFileName(dir, "t:c")
	os.WriteFile(fn, []byte("garbage"), 0o600)
	_, ld := openTestJournal(t, dir)
	if len(ld.msgs) != 0 {
		t.Errorf("messages from garbage: %v", ld.msgs)
	}
	if b, err := os.ReadFile(fn + ".bad"); err != nil || string(b) != "garbage" {
		t.Errorf("garbage not kept as .bad: %q %v", b, err)
	}
}

// TestJournalCompaction checks the journal asks to be rewritten once it is
// large and mostly finished records, and that the rewrite keeps the live.
func TestJournalCompaction(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTestJournal(t, dir)
	keep := journalMessage(-1)
	j.put([]*Message{keep}, 0)
	big := bytes.Repeat([]byte("x"), 64<<10)
	for i := range journalCompactMin / len(big) * 2 {
		m := journalMessage(i)
		m.Body = big
		j.put([]*Message{m}, 0)
		j.done(m.ID)
		if err := j.flush(); err != nil {
			t.Fatal(err)
		}
	}
	if !j.needsCompaction() {
		t.Fatalf("journal of %d bytes with %d live bytes does not need compaction", j.size, j.liveBytes)
	}
	if err := j.compact(); err != nil {
		t.Fatal(err)
	}
	if j.needsCompaction() || j.size > 100 {
		t.Errorf("after compaction %d bytes", j.size)
	}
	j.put([]*Message{journalMessage(7)}, 0)
	j.close()
	_, ld := openTestJournal(t, dir)
	if len(ld.msgs) != 2 {
		t.Errorf("after compaction and reopen: %v, want 2 live messages", liveBodies(ld))
	}
}

// FuzzJournalRecord feeds arbitrary bytes to the journal's record parser:
// no panic, and an accepted record re-encodes to the same bytes.
func FuzzJournalRecord(f *testing.F) {
	m := journalMessage(1)
	f.Add(appendPutRecord(nil, m, 42, 2))
	f.Add(appendDoneRecord(nil, m.ID))
	f.Add([]byte("P\x00\x00\x00\x01x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		op, payload, n, err := parseJournalRecord(b, 1<<10)
		if err != nil {
			return
		}
		var again []byte
		switch op {
		case journalPut:
			dm, err := decodeMessage(payload[8:])
			if err != nil {
				t.Fatalf("accepted put with undecodable message: %v", err)
			}
			at := int64(uint64(payload[0])<<56 | uint64(payload[1])<<48 | uint64(payload[2])<<40 | uint64(payload[3])<<32 |
				uint64(payload[4])<<24 | uint64(payload[5])<<16 | uint64(payload[6])<<8 | uint64(payload[7]))
			again = appendPutRecord(nil, dm, at, dm.Attempts)
		case journalDone:
			again = appendDoneRecord(nil, MessageID(payload))
		}
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("record %x re-encodes as %x", b[:n], again)
		}
	})
}

// TestJournalAdopt checks messages adopted from the disk queue cost no
// record until the flush, which writes a put for those still live and a
// done for those finished meanwhile.
func TestJournalAdopt(t *testing.T) {
	dir := t.TempDir()
	j, _ := openTestJournal(t, dir)
	ms := []*Message{journalMessage(0), journalMessage(1), journalMessage(2)}
	if got := j.adopt(ms); len(got) != 3 {
		t.Fatalf("adopt kept %d of 3", len(got))
	}
	if again := j.adopt([]*Message{journalMessage(1)}); len(again) != 0 {
		t.Errorf("a copy of a live message was adopted again")
	}
	j.done(ms[0].ID)
	if len(j.buf) != 0 {
		t.Errorf("%d bytes appended before the flush", len(j.buf))
	}
	if err := j.flush(); err != nil {
		t.Fatal(err)
	}
	j.close()
	_, ld := openTestJournal(t, dir)
	if got := fmt.Sprint(liveBodies(ld)); got != "[body-1@0/2 body-2@0/2]" {
		t.Errorf("live = %s, want messages 1 and 2 with the adopted delivery counted", got)
	}
	if _, ok := ld.done[ms[0].ID]; !ok {
		t.Errorf("message finished before the flush has no done record: %v", ld.done)
	}
}

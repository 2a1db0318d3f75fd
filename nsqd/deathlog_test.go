package nsqd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

// peekJSON GETs a peek endpoint of n.
func peekJSON(t *testing.T, n *NSQD, target string) PeekResult {
	t.Helper()
	status, body := httpCall(t, n, "GET", target, "")
	var r PeekResult
	if status != 200 || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("GET %s: %d %s", target, status, body)
	}
	return r
}

// Dead-letter origins are kept beside the dead letters on disk: after a
// restart the peek endpoints still show each one's death record, in the
// topic's own buffer and in a channel of the dead-letter topic.
func TestDeadLetterOriginsSurviveRestart(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			o := testOptions(t)
			o.EnablePeek, o.Durable = true, durable
			n, stop := runNSQD(t, o)
			mustChannel(t, n, "src", "c")
			setConfig(t, n, "src", "c", "max_attempts", "1", "dead_letter_topic", "dead")
			p := newProducer(t, n)
			sent := map[string]bool{}
			for i := range 3 {
				body := fmt.Sprintf("poison%d", i)
				sent[body] = true
				if err := p.Publish("src", []byte(body)); err != nil {
					t.Fatal(err)
				}
			}
			p.Stop()
			before := time.Now().UnixNano()
			newConsumer(t, n, "src", "c", &failingHandler{}, func(c *nsq.Config) { c.DefaultRequeueDelay = 0; c.MaxBackoffDuration = 0 })
			eventually(t, 10*time.Second, func() bool {
				tp, err := n.GetExistingTopic("dead")
				return err == nil && tp.Depth() == 3
			}, "dead letters not published: %+v", n.Stats("", "", false).Topics)
			stop()

			o2 := testOptions(t)
			o2.EnablePeek, o2.Durable, o2.DataPath = true, durable, o.DataPath
			n2, _ := runNSQD(t, o2)
			check := func(r PeekResult) {
				t.Helper()
				if len(r.Messages) != 3 {
					t.Fatalf("peek shows %d messages: %+v", len(r.Messages), r)
				}
				origIDs := map[string]bool{}
				for _, m := range r.Messages {
					d := m.Death
					if d == nil {
						t.Fatalf("message %s (%q) has no death record", m.ID, m.Body)
					}
					if !sent[m.Body] || d.SourceTopic != "src" || d.SourceChannel != "c" || d.Attempts != 1 ||
						d.Reason != reasonMaxAttempts || len(d.OriginalID) != 16 || d.ID != m.ID ||
						d.Time < before || d.OriginalTimestamp <= 0 || d.OriginalTimestamp > d.Time {
						t.Fatalf("message %+v, death %+v", m, *d)
					}
					origIDs[d.OriginalID] = true
				}
				if len(origIDs) != 3 {
					t.Fatalf("original IDs %v, want 3 distinct", origIDs)
				}
			}
			check(peekJSON(t, n2, "/topic/peek?topic=dead"))
			mustChannel(t, n2, "dead", "x") // the backlog moves to the channel
			eventually(t, 5*time.Second, func() bool { return limStats(t, n2, "dead", "x").Depth == 3 }, "channel depth")
			check(peekJSON(t, n2, "/channel/peek?topic=dead&channel=x"))
			// A topic that is not a dead-letter topic shows no death.
			for _, m := range peekJSON(t, n2, "/channel/peek?topic=src&channel=c").Messages {
				if m.Death != nil {
					t.Fatalf("death on a source message: %+v", m)
				}
			}
			// GET /topic/config lists them too.
			status, body := httpCall(t, n2, "GET", "/topic/config?topic=dead", "")
			var cr ConfigResponse
			if status != 200 || json.Unmarshal([]byte(body), &cr) != nil || len(cr.DeadLetters) != 3 {
				t.Fatalf("GET /topic/config: %d %s", status, body)
			}
		})
	}
}

func testDeathLog(t *testing.T) *deathLog {
	return &deathLog{
		path: deathFileName(t.TempDir(), "d"),
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func deathID(i int) MessageID {
	var id MessageID
	copy(id[:], fmt.Sprintf("%016x", i))
	return id
}

func addDeaths(t *testing.T, d *deathLog, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		o := []DeadLetterOrigin{{SourceTopic: "s", SourceChannel: "c", OriginalID: fmt.Sprintf("%016x", 1000+i), Attempts: uint16(i), Reason: reasonExpired, Time: int64(i)}}
		if err := d.add([]MessageID{deathID(i)}, o, true); err != nil {
			t.Fatal(err)
		}
	}
}

// A torn last record (a crash mid-write) and a damaged one are dropped
// with what follows; the records before them load, and the file is cut so
// that new records follow good ones.
func TestDeathLogTornAndDamaged(t *testing.T) {
	d := testDeathLog(t)
	addDeaths(t, d, 0, 3)
	d.close()
	data, err := os.ReadFile(d.path)
	if err != nil {
		t.Fatal(err)
	}
	rec := (len(data) - len(deathMagic)) / 3

	// Torn: the last record loses its CRC.
	if err := os.WriteFile(d.path, data[:len(data)-2], 0o600); err != nil {
		t.Fatal(err)
	}
	d2 := &deathLog{path: d.path, log: d.log}
	if got := d2.origins([]MessageID{deathID(0), deathID(1), deathID(2)}); got == nil || got[0] == nil || got[1] == nil || got[2] != nil {
		t.Fatalf("after a torn tail: %v", got)
	}
	addDeaths(t, d2, 3, 4)
	d2.close()
	d3 := &deathLog{path: d.path, log: d.log}
	if got := d3.origins([]MessageID{deathID(1), deathID(3)}); got == nil || got[0] == nil || got[1] == nil || got[1].Attempts != 3 {
		t.Fatalf("record after a cut tail not loaded: %v", got)
	}

	// Damaged: a flipped byte in the second record.
	bad := bytes.Clone(data)
	bad[len(deathMagic)+rec+20] ^= 0xff
	if err := os.WriteFile(d.path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	d4 := &deathLog{path: d.path, log: d.log}
	if got := d4.origins([]MessageID{deathID(0), deathID(1), deathID(2)}); got == nil || got[0] == nil || got[1] != nil || got[2] != nil {
		t.Fatalf("after a damaged record: %v", got)
	}

	// Not a death log at all: kept as .bad, nothing loaded.
	if err := os.WriteFile(d.path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	d5 := &deathLog{path: d.path, log: d.log}
	if got := d5.origins([]MessageID{deathID(0)}); got != nil {
		t.Fatalf("garbage loaded: %v", got)
	}
	if _, err := os.Stat(d.path + ".bad"); err != nil {
		t.Fatal(err)
	}
}

// The log keeps the last maxDeathRecords origins and rewrites its file once
// it holds twice as many records, so the file stays bounded.
func TestDeathLogBounded(t *testing.T) {
	defer func(n int) { maxDeathRecords = n }(maxDeathRecords)
	maxDeathRecords = 10
	d := testDeathLog(t)
	addDeaths(t, d, 0, 21)
	d.close()
	data, err := os.ReadFile(d.path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rest := data[len(deathMagic):]; len(rest) > 0; n++ {
		_, _, k, _, err := parseDeathRecord(rest)
		if err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if n != 10 {
		t.Fatalf("file holds %d records after compaction, want 10", n)
	}
	d2 := &deathLog{path: d.path, log: d.log}
	got := d2.origins([]MessageID{deathID(10), deathID(11), deathID(20)})
	if got == nil || got[0] != nil || got[1] == nil || got[2] == nil {
		t.Fatalf("kept %v, want 11..20", got)
	}
	if l, _ := d2.list(); len(l) != 10 || l[0].Attempts != 11 || l[9].Attempts != 20 {
		t.Fatalf("list %v", l)
	}
	if err := d2.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.path); !os.IsNotExist(err) {
		t.Fatalf("file not removed: %v", err)
	}
}

// The death record parser takes whatever is in the file: it never panics,
// never claims more bytes than it has, and what it accepts encodes back to
// a record it reads the same.
func FuzzParseDeathRecord(f *testing.F) {
	good := appendDeathRecord(nil, deathID(7), DeadLetterOrigin{SourceTopic: "t", SourceChannel: "c", OriginalID: "0123456789abcdef", Attempts: 3, Reason: reasonMaxAttempts, Time: 1, OriginalTimestamp: 2})
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), good...))
	f.Add([]byte{deathOp, 0, 0, 0, 18})
	f.Add([]byte{deathOp, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, o, n, _, err := parseDeathRecord(b)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("n = %d of %d bytes", n, len(b))
		}
		if o.ID != string(id[:]) {
			t.Fatalf("origin ID %q, record ID %q", o.ID, id)
		}
		again := appendDeathRecord(nil, id, o)
		id2, o2, n2, _, err := parseDeathRecord(again)
		if err != nil || n2 != len(again) || id2 != id || o2 != o {
			t.Fatalf("round trip: %v %+v != %+v", err, o2, o)
		}
	})
}

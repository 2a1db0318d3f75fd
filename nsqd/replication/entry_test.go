package replication

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestEntryRoundTrip(t *testing.T) {
	entries := []Entry{
		{Publish: &Publish{Topic: "orders", Timestamp: 1700000000123456789, DeliverAt: 0, Bodies: [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("x"), 300)}}},
		{Publish: &Publish{Topic: "t", Timestamp: -1, DeliverAt: 5, Bodies: [][]byte{}}},
		{Meta: &Meta{Op: OpCreateChannel, Topic: "orders", Channel: "billing"}},
		{Meta: &Meta{Op: OpLeader, Topic: "n1", Arg: "127.0.0.1:4150,127.0.0.1:4151"}},
		{Progress: &Progress{Topic: "orders", Channel: "billing", Finished: []Range{{1, 1}, {3, 10}, {1 << 40, 1<<40 + 7}}, Requeued: []Requeue{{ID: 2, DeliverAt: 99, Attempts: 3}}}},
		{Progress: &Progress{Topic: "t", Channel: "c"}},
		{Meta: &Meta{Op: OpConfig, Topic: "orders", Channel: "billing", Arg: `{"max_depth":10,"overflow":"drop-oldest"}`}},
		{Meta: &Meta{Op: OpDefaults, Arg: Defaults{MaxChannelDepth: 5, MaxAttempts: 3}.Encode()}},
		{Progress: &Progress{Topic: "t", Channel: "c", Finished: []Range{{4, 4}}, Time: 77, Dead: []Dead{{ID: 1, Attempts: 5, Reason: ReasonMaxAttempts}, {ID: 9, Reason: ReasonExpired}}}},
	}
	for _, e := range entries {
		b := encodeEntry(e)
		got, err := DecodeEntry(b)
		if err != nil {
			t.Fatalf("DecodeEntry(%x): %v", b, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(e)) {
			t.Errorf("DecodeEntry(encode(%+v)) = %+v", e, got)
		}
	}
}

func TestDecodeEntryErrors(t *testing.T) {
	good := AppendPublish(nil, &Publish{Topic: "t", Bodies: [][]byte{[]byte("hello")}})
	cases := map[string][]byte{
		"empty":         nil,
		"version":       {2, kindPublish},
		"kind":          {entryVersion, 9},
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte(nil), good...), 0),
		"huge count":    {entryVersion, kindPublish, 1, 't', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"meta op":       {entryVersion, kindMeta, 0, 0, 0, 0},
		"settle reason": AppendProgress(nil, &Progress{Topic: "t", Channel: "c", Dead: []Dead{{ID: 1, Reason: reasonMax}}}),
		"empty settle":  {entryVersion, kindSettle, 1, 't', 1, 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		// A range whose end would wrap around: gap = max, span = 1.
		"range overflow": {entryVersion, kindProgress, 1, 't', 1, 'c', 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0},
	}
	for name, b := range cases {
		if _, err := DecodeEntry(b); !errors.Is(err, ErrBadEntry) {
			t.Errorf("%s: DecodeEntry(%x) = %v, want ErrBadEntry", name, b, err)
		}
	}
}

func TestRanges(t *testing.T) {
	got := Ranges([]uint64{9, 3, 4, 5, 5, 1, 10, 7})
	want := []Range{{1, 1}, {3, 5}, {7, 7}, {9, 10}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Ranges = %v, want %v", got, want)
	}
	if Ranges(nil) != nil {
		t.Errorf("Ranges(nil) != nil")
	}
}

func encodeEntry(e Entry) []byte {
	switch {
	case e.Publish != nil:
		return AppendPublish(nil, e.Publish)
	case e.Meta != nil:
		return AppendMeta(nil, e.Meta)
	default:
		return AppendProgress(nil, e.Progress)
	}
}

// normalize makes empty and nil slices compare equal.
func normalize(e Entry) Entry {
	if e.Publish != nil {
		p := *e.Publish
		if len(p.Bodies) == 0 {
			p.Bodies = nil
		}
		for i, b := range p.Bodies {
			if len(b) == 0 {
				p.Bodies[i] = nil
			}
		}
		e.Publish = &p
	}
	if e.Progress != nil {
		p := *e.Progress
		if len(p.Finished) == 0 {
			p.Finished = nil
		}
		if len(p.Requeued) == 0 {
			p.Requeued = nil
		}
		if len(p.Dead) == 0 {
			p.Dead = nil
		}
		e.Progress = &p
	}
	return e
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(AppendPublish(nil, &Publish{Topic: "orders", Timestamp: 1, Bodies: [][]byte{[]byte("hello"), []byte("world")}}))
	f.Add(AppendPublish(nil, &Publish{Topic: "d", DeliverAt: 1 << 50, Bodies: [][]byte{{}}}))
	f.Add(AppendMeta(nil, &Meta{Op: OpPauseChannel, Topic: "orders", Channel: "c#ephemeral"}))
	f.Add(AppendProgress(nil, &Progress{Topic: "t", Channel: "c", Finished: []Range{{1, 5}, {9, 9}}, Requeued: []Requeue{{ID: 7, DeliverAt: 3, Attempts: 2}}}))
	f.Add(AppendProgress(nil, &Progress{Topic: "t", Channel: "c", Time: 5, Dead: []Dead{{ID: 3, Attempts: 9, Reason: ReasonExpired}}}))
	f.Add(AppendMeta(nil, &Meta{Op: OpConfig, Topic: "t", Channel: "c", Arg: `{"max_attempts":3}`}))
	f.Add(AppendMeta(nil, &Meta{Op: OpDefaults, Arg: Defaults{Overflow: "drop-oldest", MaxChannelBytes: 1 << 20}.Encode()}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		// Varints may be non-minimal in the input, so compare the
		// decoded values of a re-encoding, not bytes.
		again, err := DecodeEntry(encodeEntry(e))
		if err != nil {
			t.Fatalf("re-encoding of %x does not decode: %v", b, err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(e)) {
			t.Fatalf("decode(encode(decode(%x))) = %+v, want %+v", b, again, e)
		}
		if e.Progress != nil {
			for i, r := range e.Progress.Finished {
				if r.Last < r.First || (i > 0 && r.First <= e.Progress.Finished[i-1].Last) {
					t.Fatalf("ranges not sorted and disjoint: %v", e.Progress.Finished)
				}
			}
		}
	})
}

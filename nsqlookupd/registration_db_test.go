package nsqlookupd

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func testPeer(id string, httpPort int) *peer {
	return newPeer(id, peerInfo{
		RemoteAddress: id, Hostname: "h", BroadcastAddress: "127.0.0.1",
		TCPPort: httpPort - 1, HTTPPort: httpPort, Version: "1.3.0",
	}, time.Now())
}

func producerIDs(ps []peerInfo) []string {
	ids := []string{}
	for _, p := range ps {
		ids = append(ids, p.RemoteAddress)
	}
	return ids
}

func lookupIDs(t *testing.T, db *registrationDB, topic string) []string {
	t.Helper()
	_, ps, ok := db.lookup(topic, time.Now())
	if !ok {
		t.Fatalf("lookup(%q): topic not found", topic)
	}
	return producerIDs(ps)
}

func TestRegisterUnregister(t *testing.T) {
	db := newRegistrationDB(time.Minute, time.Minute)
	a, b := testPeer("a:1", 4151), testPeer("b:1", 5151)
	db.addPeer(a)
	db.addPeer(b)

	if !db.register(a, "t", "") {
		t.Errorf("first register(a, t) = false, want true")
	}
	if db.register(a, "t", "") {
		t.Errorf("second register(a, t) = true, want false (idempotent)")
	}
	if !db.register(a, "t", "c") {
		t.Errorf("register(a, t, c) = false, want true")
	}
	db.register(b, "t", "c")
	if got, want := lookupIDs(t, db, "t"), []string{"a:1", "b:1"}; !slices.Equal(got, want) {
		t.Errorf("producers of t = %q, want %q", got, want)
	}
	if got, want := db.channelNames("t"), []string{"c"}; !slices.Equal(got, want) {
		t.Errorf("channels of t = %q, want %q", got, want)
	}

	// UNREGISTER t c leaves the topic registration alone.
	if !db.unregisterChannel(a, "t", "c") {
		t.Errorf("unregisterChannel(a, t, c) = false, want true")
	}
	if db.unregisterChannel(a, "t", "c") {
		t.Errorf("second unregisterChannel(a, t, c) = true, want false")
	}
	if got, want := lookupIDs(t, db, "t"), []string{"a:1", "b:1"}; !slices.Equal(got, want) {
		t.Errorf("producers of t after UNREGISTER t c = %q, want %q", got, want)
	}

	// UNREGISTER t removes b from the channels too and reports them.
	chans, removed := db.unregisterTopic(b, "t")
	if !removed || !slices.Equal(chans, []string{"c"}) {
		t.Errorf("unregisterTopic(b, t) = %q, %v, want [c], true", chans, removed)
	}
	if got, want := lookupIDs(t, db, "t"), []string{"a:1"}; !slices.Equal(got, want) {
		t.Errorf("producers of t = %q, want %q", got, want)
	}
	// Non-ephemeral keys stay without producers.
	db.unregisterTopic(a, "t")
	if chans, ps, ok := db.lookup("t", time.Now()); !ok || len(ps) != 0 || !slices.Equal(chans, []string{"c"}) {
		t.Errorf("lookup(t) = %q, %v, %v, want [c], [], true", chans, ps, ok)
	}
	if got := db.debug(); len(got) != 1 || len(got["client::"]) != 2 {
		t.Errorf("debug() = %v, want only the two clients", got)
	}
}

func TestEphemeral(t *testing.T) {
	db := newRegistrationDB(time.Minute, time.Minute)
	a, b := testPeer("a:1", 4151), testPeer("b:1", 5151)
	db.register(a, "t", "c#ephemeral")
	db.register(b, "t", "c#ephemeral")
	db.unregisterChannel(a, "t", "c#ephemeral")
	if got := db.channelNames("t"); !slices.Equal(got, []string{"c#ephemeral"}) {
		t.Errorf("channels after one of two producers left = %q, want [c#ephemeral]", got)
	}
	db.unregisterChannel(b, "t", "c#ephemeral")
	if got := db.channelNames("t"); len(got) != 0 {
		t.Errorf("channels after the last producer left = %q, want none", got)
	}

	db.register(a, "e#ephemeral", "c")
	db.register(b, "e#ephemeral", "")
	db.unregisterTopic(a, "e#ephemeral")
	if _, _, ok := db.lookup("e#ephemeral", time.Now()); !ok {
		t.Errorf("ephemeral topic deleted while b still has it")
	}
	db.unregisterTopic(b, "e#ephemeral")
	if _, _, ok := db.lookup("e#ephemeral", time.Now()); ok {
		t.Errorf("ephemeral topic kept after its last producer left")
	}
	if got := db.channelNames("e#ephemeral"); len(got) != 0 {
		t.Errorf("channels of the deleted ephemeral topic = %q, want none", got)
	}

	// A disconnect deletes ephemeral keys the peer leaves empty, too.
	db.register(a, "x#ephemeral", "c#ephemeral")
	db.register(a, "y", "d#ephemeral")
	db.register(a, "y", "d")
	topics, channels := db.removePeer(a)
	if topics != 3 || channels != 3 { // t (from the start), x#ephemeral, y
		t.Errorf("removePeer = %d topics, %d channels, want 3, 3", topics, channels)
	}
	if got, want := db.topicNames(), []string{"t", "y"}; !slices.Equal(got, want) {
		t.Errorf("topics after disconnect = %q, want %q", got, want)
	}
	if got, want := db.channelNames("y"), []string{"d"}; !slices.Equal(got, want) {
		t.Errorf("channels of y after disconnect = %q, want %q", got, want)
	}
}

func TestHTTPKeys(t *testing.T) {
	db := newRegistrationDB(time.Minute, time.Minute)
	db.createTopic("t")
	db.createChannel("u", "c")
	if got, want := db.topicNames(), []string{"t", "u"}; !slices.Equal(got, want) {
		t.Errorf("topics = %q, want %q", got, want)
	}
	if db.deleteChannel("u", "nope") || db.deleteChannel("nope", "c") {
		t.Errorf("deleteChannel of a missing channel = true")
	}
	if !db.deleteChannel("u", "c") {
		t.Errorf("deleteChannel(u, c) = false")
	}
	a := testPeer("a:1", 4151)
	db.register(a, "u", "c")
	db.deleteTopic("u")
	db.deleteTopic("never")
	if got, want := db.topicNames(), []string{"t"}; !slices.Equal(got, want) {
		t.Errorf("topics = %q, want %q", got, want)
	}
	// Names are literal: "*" is not a wildcard.
	db.deleteTopic("*")
	if _, _, ok := db.lookup("*", time.Now()); ok || len(db.topicNames()) != 1 {
		t.Errorf("\"*\" acted as a wildcard")
	}
}

// A peer whose remote address is reused by a new connection before its own
// clean-up runs must not take the new peer's registrations with it.
func TestRemoveStalePeer(t *testing.T) {
	db := newRegistrationDB(time.Minute, time.Minute)
	old, cur := testPeer("a:1", 4151), testPeer("a:1", 4151)
	db.addPeer(old)
	db.register(old, "t", "c")
	db.addPeer(cur)
	db.register(cur, "t", "c")
	db.removePeer(old)
	if got := lookupIDs(t, db, "t"); !slices.Equal(got, []string{"a:1"}) {
		t.Errorf("producers = %q, want the new peer", got)
	}
	if n := db.nodes(time.Now()); len(n) != 1 {
		t.Errorf("nodes = %v, want the new peer", n)
	}
}

func TestInactiveProducers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newRegistrationDB(3*time.Second, time.Minute)
		a, b := testPeer("a:1", 4151), testPeer("b:1", 5151)
		db.addPeer(a)
		db.addPeer(b)
		db.register(a, "t", "")
		db.register(b, "t", "")

		time.Sleep(2 * time.Second)
		b.touch(time.Now()) // PING
		time.Sleep(1500 * time.Millisecond)
		if got, want := lookupIDs(t, db, "t"), []string{"b:1"}; !slices.Equal(got, want) {
			t.Errorf("active producers = %q, want %q", got, want)
		}
		if got := db.nodes(time.Now()); len(got) != 1 || got[0].RemoteAddress != "b:1" {
			t.Errorf("nodes = %+v, want b only", got)
		}
		if got := db.debug()["client::"]; len(got) != 2 {
			t.Errorf("/debug clients = %d, want 2 (inactive ones included)", len(got))
		}
		a.touch(time.Now())
		if got, want := lookupIDs(t, db, "t"), []string{"a:1", "b:1"}; !slices.Equal(got, want) {
			t.Errorf("producers after a's PING = %q, want %q", got, want)
		}
	})
}

func TestTombstone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := newRegistrationDB(time.Hour, 45*time.Second)
		a, b := testPeer("a:1", 4151), testPeer("b:1", 5151)
		db.addPeer(a)
		db.addPeer(b)
		db.register(a, "t", "")
		db.register(a, "u", "")
		db.register(b, "t", "")

		if n := db.tombstone("t", "127.0.0.1:4151", time.Now()); n != 1 {
			t.Errorf("tombstone matched %d producers, want 1", n)
		}
		if n := db.tombstone("t", "127.0.0.1:9999", time.Now()); n != 0 {
			t.Errorf("tombstone of an unknown node matched %d", n)
		}
		if got, want := lookupIDs(t, db, "t"), []string{"b:1"}; !slices.Equal(got, want) {
			t.Errorf("producers of t = %q, want %q", got, want)
		}
		if got, want := lookupIDs(t, db, "u"), []string{"a:1"}; !slices.Equal(got, want) {
			t.Errorf("producers of u = %q, want %q (tombstones are per topic)", got, want)
		}
		nodes := db.nodes(time.Now())
		if len(nodes) != 2 || !slices.Equal(nodes[0].Topics, []string{"t", "u"}) || !slices.Equal(nodes[0].Tombstones, []bool{true, false}) {
			t.Errorf("nodes = %+v, want a with topics [t u] and tombstones [true false]", nodes)
		}
		// REGISTER again keeps the tombstone.
		db.register(a, "t", "")
		if got := lookupIDs(t, db, "t"); slices.Contains(got, "a:1") {
			t.Errorf("re-REGISTER cleared the tombstone")
		}

		time.Sleep(45 * time.Second)
		if got, want := lookupIDs(t, db, "t"), []string{"a:1", "b:1"}; !slices.Equal(got, want) {
			t.Errorf("producers after the lifetime = %q, want %q", got, want)
		}
		d := db.debug()["topic:t:"]
		if len(d) != 2 || !d[0].Tombstoned || d[0].TombstonedAt == (time.Time{}).UnixNano() {
			t.Errorf("/debug keeps the tombstone flag after the lifetime: got %+v", d)
		}

		// UNREGISTER then REGISTER makes a fresh registration.
		db.tombstone("t", "127.0.0.1:4151", time.Now())
		db.unregisterTopic(a, "t")
		db.register(a, "t", "")
		if got, want := lookupIDs(t, db, "t"), []string{"a:1", "b:1"}; !slices.Equal(got, want) {
			t.Errorf("producers after re-registration = %q, want %q", got, want)
		}
	})
}

func TestCounts(t *testing.T) {
	db := newRegistrationDB(time.Minute, time.Minute)
	a := testPeer("a:1", 4151)
	db.addPeer(a)
	db.register(a, "t", "c")
	db.register(a, "t", "d")
	db.createChannel("u", "e")
	if p, tp, ch := db.counts(); p != 1 || tp != 2 || ch != 3 {
		t.Errorf("counts() = %d, %d, %d, want 1, 2, 3", p, tp, ch)
	}
}

func TestIsNode(t *testing.T) {
	v4 := &peerInfo{BroadcastAddress: "127.0.0.1", HTTPPort: 4151}
	v6 := &peerInfo{BroadcastAddress: "::1", HTTPPort: 4151}
	tests := []struct {
		info *peerInfo
		node string
		want bool
	}{
		{v4, "127.0.0.1:4151", true},
		{v4, "127.0.0.1:4150", false},
		{v4, "localhost:4151", false},
		{v4, "127.0.0.1", false},
		{v6, "::1:4151", true},
		{v6, "[::1]:4151", true},
	}
	for _, tc := range tests {
		if got := isNode(tc.info, tc.node); got != tc.want {
			t.Errorf("isNode(%s:%d, %q) = %v, want %v", tc.info.BroadcastAddress, tc.info.HTTPPort, tc.node, got, tc.want)
		}
	}
}

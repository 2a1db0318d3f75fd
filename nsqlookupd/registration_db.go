package nsqlookupd

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
)

// peerInfo is what an nsqd says about itself in IDENTIFY plus the address of
// its connection, in the field order of NSQ's /lookup and /nodes JSON.
type peerInfo struct {
	RemoteAddress    string `json:"remote_address"`
	Hostname         string `json:"hostname"`
	BroadcastAddress string `json:"broadcast_address"`
	TCPPort          int    `json:"tcp_port"`
	HTTPPort         int    `json:"http_port"`
	Version          string `json:"version"`
	TopologyZone     string `json:"topology_zone"`
	TopologyRegion   string `json:"topology_region"`
}

// peer is one identified nsqd connection.
type peer struct {
	id   string   // the connection's remote ip:port
	info peerInfo // set at IDENTIFY, then read-only

	lastUpdate atomic.Int64 // UnixNano of IDENTIFY or the latest PING
}

func newPeer(id string, info peerInfo, now time.Time) *peer {
	p := &peer{id: id, info: info}
	p.lastUpdate.Store(now.UnixNano())
	return p
}

// touch records a sign of life (PING).
func (p *peer) touch(now time.Time) { p.lastUpdate.Store(now.UnixNano()) }

// active reports whether the peer spoke within timeout before now.
func (p *peer) active(now time.Time, timeout time.Duration) bool {
	return now.Sub(time.Unix(0, p.lastUpdate.Load())) <= timeout
}

// producer is a peer registered for a topic. Only topic registrations carry a
// tombstone, so channel registrations hold the *peer directly.
type producer struct {
	peer *peer
	// tombstonedAt is when /topic/tombstone last matched this registration;
	// zero if it never did. Guarded by registrationDB.mu.
	tombstonedAt time.Time
}

// tombstoned reports whether the tombstone still hides the producer.
func (p *producer) tombstoned(now time.Time, lifetime time.Duration) bool {
	return !p.tombstonedAt.IsZero() && now.Sub(p.tombstonedAt) < lifetime
}

// topicReg is NSQ's "topic:<t>" key together with its "channel:<t>:<c>" keys.
// Every peer in a channel set is also in producers (REGISTER t c adds both,
// UNREGISTER t removes both), so a topic without producers has only empty
// channel keys.
type topicReg struct {
	producers map[string]*producer        // by peer id
	channels  map[string]map[string]*peer // channel name → peer id → peer
}

// registrationDB is the in-memory map of who has which topic and channel.
//
// NSQ keeps one flat map keyed by (category, key, subkey) and answers every
// question by scanning it, wildcards included. Here topics are keyed by name
// and hold their channels, so /lookup, /channels and REGISTER are map look-ups
// and names are never patterns ("*" is just an invalid name).
//
// Peers are matched by pointer, not only by id: if a closed connection's
// remote ip:port is reused by a new one before the old one's clean-up runs,
// the clean-up leaves the new peer alone.
type registrationDB struct {
	inactiveTimeout   time.Duration
	tombstoneLifetime time.Duration

	mu     sync.RWMutex
	peers  map[string]*peer // NSQ's "client" key: every identified peer, by id
	topics map[string]*topicReg
}

func newRegistrationDB(inactiveTimeout, tombstoneLifetime time.Duration) *registrationDB {
	return &registrationDB{
		inactiveTimeout:   inactiveTimeout,
		tombstoneLifetime: tombstoneLifetime,
		peers:             make(map[string]*peer),
		topics:            make(map[string]*topicReg),
	}
}

// topic returns the registration of name, creating it if create is set.
// Called with mu held for writing when create is set.
func (db *registrationDB) topic(name string, create bool) *topicReg {
	t := db.topics[name]
	if t == nil && create {
		t = &topicReg{producers: make(map[string]*producer), channels: make(map[string]map[string]*peer)}
		db.topics[name] = t
	}
	return t
}

// addPeer registers an identified peer under the client key.
func (db *registrationDB) addPeer(p *peer) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.peers[p.id] = p
}

// removePeer drops every registration of p (its connection closed) and
// returns how many topic and channel registrations it had. Ephemeral topic and
// channel keys it leaves without producers are deleted, as UNREGISTER does;
// NSQ leaves them behind as empty keys forever.
func (db *registrationDB) removePeer(p *peer) (topics, channels int) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.peers[p.id] == p {
		delete(db.peers, p.id)
	}
	for tname, t := range db.topics {
		for cname, ch := range t.channels {
			if ch[p.id] != p {
				continue
			}
			delete(ch, p.id)
			channels++
			if len(ch) == 0 && protocol.IsEphemeral(cname) {
				delete(t.channels, cname)
			}
		}
		if pr := t.producers[p.id]; pr != nil && pr.peer == p {
			delete(t.producers, p.id)
			topics++
			if len(t.producers) == 0 && protocol.IsEphemeral(tname) {
				delete(db.topics, tname)
			}
		}
	}
	return topics, channels
}

// register adds p to topic and, if channel is not empty, to topic:channel.
// It reports whether either registration is new. A registration that exists
// already keeps its tombstone.
func (db *registrationDB) register(p *peer, topic, channel string) (added bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	t := db.topic(topic, true)
	if pr := t.producers[p.id]; pr == nil || pr.peer != p {
		t.producers[p.id] = &producer{peer: p}
		added = true
	}
	if channel == "" {
		return added
	}
	ch := t.channels[channel]
	if ch == nil {
		ch = make(map[string]*peer)
		t.channels[channel] = ch
	}
	if ch[p.id] != p {
		ch[p.id] = p
		added = true
	}
	return added
}

// unregisterChannel removes p from topic:channel and reports whether it was
// there. An ephemeral channel key left without producers is deleted; the
// topic registration is untouched.
func (db *registrationDB) unregisterChannel(p *peer, topic, channel string) (removed bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	t := db.topics[topic]
	if t == nil {
		return false
	}
	ch, ok := t.channels[channel]
	if !ok {
		return false
	}
	if ch[p.id] == p {
		delete(ch, p.id)
		removed = true
	}
	if len(ch) == 0 && protocol.IsEphemeral(channel) {
		delete(t.channels, channel)
	}
	return removed
}

// unregisterTopic removes p from topic and from every channel of it. It
// returns the channels p was still registered for (nsqd unregisters them
// first, so any is worth a warning) and whether p was a producer of the
// topic. Ephemeral keys left without producers are deleted: the topic with
// all its channels, and ephemeral channels of a topic that stays (NSQ keeps
// those as empty keys).
func (db *registrationDB) unregisterTopic(p *peer, topic string) (channels []string, removed bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	t := db.topics[topic]
	if t == nil {
		return nil, false
	}
	for cname, ch := range t.channels {
		if ch[p.id] != p {
			continue
		}
		delete(ch, p.id)
		channels = append(channels, cname)
		if len(ch) == 0 && protocol.IsEphemeral(cname) {
			delete(t.channels, cname)
		}
	}
	if pr := t.producers[p.id]; pr != nil && pr.peer == p {
		delete(t.producers, p.id)
		removed = true
	}
	if len(t.producers) == 0 && protocol.IsEphemeral(topic) {
		delete(db.topics, topic)
	}
	slices.Sort(channels)
	return channels, removed
}

// createTopic makes sure the topic key exists (POST /topic/create).
func (db *registrationDB) createTopic(topic string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.topic(topic, true)
}

// createChannel makes sure the topic and channel keys exist.
func (db *registrationDB) createChannel(topic, channel string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	t := db.topic(topic, true)
	if t.channels[channel] == nil {
		t.channels[channel] = make(map[string]*peer)
	}
}

// deleteTopic deletes the topic key and its channel keys with their
// producers. Deleting an unknown topic is not an error.
func (db *registrationDB) deleteTopic(topic string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	delete(db.topics, topic)
}

// deleteChannel deletes the channel key and reports whether it existed.
func (db *registrationDB) deleteChannel(topic, channel string) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	t := db.topics[topic]
	if t == nil {
		return false
	}
	if _, ok := t.channels[channel]; !ok {
		return false
	}
	delete(t.channels, channel)
	return true
}

// tombstone marks, as of now, every producer of topic whose
// broadcast_address:http_port is node, and returns how many matched.
func (db *registrationDB) tombstone(topic, node string, now time.Time) int {
	db.mu.Lock()
	defer db.mu.Unlock()
	t := db.topics[topic]
	if t == nil {
		return 0
	}
	n := 0
	for _, pr := range t.producers {
		if isNode(&pr.peer.info, node) {
			pr.tombstonedAt = now
			n++
		}
	}
	return n
}

// isNode reports whether node names the producer as
// <broadcast_address>:<http_port>. NSQ compares against the plain
// concatenation only; an IPv6 address in brackets is accepted too.
func isNode(info *peerInfo, node string) bool {
	port := strconv.Itoa(info.HTTPPort)
	return node == info.BroadcastAddress+":"+port || node == net.JoinHostPort(info.BroadcastAddress, port)
}

// lookup returns the channels of topic and its producers that are active and
// not tombstoned, both sorted; ok is false if the topic key does not exist.
func (db *registrationDB) lookup(topic string, now time.Time) (channels []string, producers []peerInfo, ok bool) {
	db.mu.RLock()
	t := db.topics[topic]
	if t == nil {
		db.mu.RUnlock()
		return nil, nil, false
	}
	channels = sortedKeys(t.channels)
	peers := make([]*peer, 0, len(t.producers))
	for _, pr := range t.producers {
		if pr.peer.active(now, db.inactiveTimeout) && !pr.tombstoned(now, db.tombstoneLifetime) {
			peers = append(peers, pr.peer)
		}
	}
	db.mu.RUnlock()
	// Sort pointers, not the big peerInfo values; info is read-only.
	slices.SortFunc(peers, func(a, b *peer) int { return cmp.Compare(a.id, b.id) })
	producers = make([]peerInfo, len(peers))
	for i, p := range peers {
		producers[i] = p.info
	}
	return channels, producers, true
}

// topicNames returns every topic key, sorted.
func (db *registrationDB) topicNames() []string {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return sortedKeys(db.topics)
}

// channelNames returns the channel keys of topic, sorted; empty (not nil) for
// an unknown topic.
func (db *registrationDB) channelNames(topic string) []string {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if t := db.topics[topic]; t != nil {
		return sortedKeys(t.channels)
	}
	return []string{}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// node is one entry of GET /nodes: an active peer with the topics it is
// registered for and, index for index, whether it is tombstoned for each.
type node struct {
	peerInfo
	Tombstones []bool   `json:"tombstones"`
	Topics     []string `json:"topics"`
}

// nodes returns every active peer, tombstoned or not, sorted by remote
// address, with its topics sorted.
func (db *registrationDB) nodes(now time.Time) []node {
	db.mu.RLock()
	defer db.mu.RUnlock()
	type topicState struct {
		name       string
		tombstoned bool
	}
	byPeer := make(map[*peer][]topicState, len(db.peers))
	for _, p := range db.peers {
		if p.active(now, db.inactiveTimeout) {
			byPeer[p] = []topicState{}
		}
	}
	for name, t := range db.topics {
		for _, pr := range t.producers {
			if ts, ok := byPeer[pr.peer]; ok {
				byPeer[pr.peer] = append(ts, topicState{name, pr.tombstoned(now, db.tombstoneLifetime)})
			}
		}
	}
	out := make([]node, 0, len(byPeer))
	for p, ts := range byPeer {
		slices.SortFunc(ts, func(a, b topicState) int { return cmp.Compare(a.name, b.name) })
		n := node{peerInfo: p.info, Tombstones: make([]bool, len(ts)), Topics: make([]string, len(ts))}
		for i, s := range ts {
			n.Topics[i], n.Tombstones[i] = s.name, s.tombstoned
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b node) int { return cmp.Compare(a.RemoteAddress, b.RemoteAddress) })
	return out
}

// debugProducer is one producer in GET /debug, fields in NSQ's (alphabetical)
// order. It has no remote_address: id is the same value.
type debugProducer struct {
	BroadcastAddress string `json:"broadcast_address"`
	Hostname         string `json:"hostname"`
	HTTPPort         int    `json:"http_port"`
	ID               string `json:"id"`
	LastUpdate       int64  `json:"last_update"`
	TCPPort          int    `json:"tcp_port"`
	Tombstoned       bool   `json:"tombstoned"`
	// TombstonedAt is UnixNano; NSQ reports the zero time.Time for "never",
	// which UnixNano turns into -6795364578871345152. Kept as NSQ sends it.
	TombstonedAt   int64  `json:"tombstoned_at"`
	TopologyRegion string `json:"topology_region"`
	TopologyZone   string `json:"topology_zone"`
	Version        string `json:"version"`
}

func newDebugProducer(p *peer, tombstonedAt time.Time) debugProducer {
	return debugProducer{
		BroadcastAddress: p.info.BroadcastAddress,
		Hostname:         p.info.Hostname,
		HTTPPort:         p.info.HTTPPort,
		ID:               p.id,
		LastUpdate:       p.lastUpdate.Load(),
		TCPPort:          p.info.TCPPort,
		Tombstoned:       !tombstonedAt.IsZero(),
		TombstonedAt:     tombstonedAt.UnixNano(),
		TopologyRegion:   p.info.TopologyRegion,
		TopologyZone:     p.info.TopologyZone,
		Version:          p.info.Version,
	}
}

// debug returns every key that has producers, named as NSQ names them
// ("client::", "topic:<t>:", "channel:<t>:<c>"), with all its producers,
// inactive and tombstoned ones included.
func (db *registrationDB) debug() map[string][]debugProducer {
	db.mu.RLock()
	defer db.mu.RUnlock()
	out := make(map[string][]debugProducer)
	byID := func(a, b debugProducer) int { return cmp.Compare(a.ID, b.ID) }
	if len(db.peers) > 0 {
		ps := make([]debugProducer, 0, len(db.peers))
		for _, p := range db.peers {
			ps = append(ps, newDebugProducer(p, time.Time{}))
		}
		slices.SortFunc(ps, byID)
		out["client::"] = ps
	}
	for tname, t := range db.topics {
		if len(t.producers) > 0 {
			ps := make([]debugProducer, 0, len(t.producers))
			for _, pr := range t.producers {
				ps = append(ps, newDebugProducer(pr.peer, pr.tombstonedAt))
			}
			slices.SortFunc(ps, byID)
			out["topic:"+tname+":"] = ps
		}
		for cname, ch := range t.channels {
			if len(ch) == 0 {
				continue
			}
			ps := make([]debugProducer, 0, len(ch))
			for _, p := range ch {
				ps = append(ps, newDebugProducer(p, time.Time{}))
			}
			slices.SortFunc(ps, byID)
			out["channel:"+tname+":"+cname] = ps
		}
	}
	return out
}

// counts returns the number of identified peers, topic keys and channel keys
// (GET /metrics).
func (db *registrationDB) counts() (peers, topics, channels int) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	for _, t := range db.topics {
		channels += len(t.channels)
	}
	return len(db.peers), len(db.topics), channels
}

package nsqd

import (
	"encoding/binary"
	"sync"
	"time"
)

// ID layout (NSQ's): 42 bits of pseudo-milliseconds (UnixNano >> 20) since
// NSQ's epoch, 10 bits of node ID, 12 bits of sequence.
const (
	guidEpoch    = 1288834974288
	guidSeqBits  = 12
	guidNodeBits = 10
	guidSeqMask  = 1<<guidSeqBits - 1
)

// guidFactory makes a topic's IDs: unique and strictly increasing. Where NSQ
// sleeps when the 4096 IDs of a pseudo-millisecond are used up or the clock
// steps back, this one borrows the next pseudo-millisecond, so a publisher
// never waits.
//
// An ID is made from a position: pseudo-milliseconds << 12 | sequence. A
// publish reserves consecutive positions and its messages' IDs are made
// from them when needed (see pubBatch).
type guidFactory struct {
	nodeID int64

	mu   sync.Mutex
	last int64 // position of the last ID reserved
}

func newGUIDFactory(nodeID int64) *guidFactory { return &guidFactory{nodeID: nodeID} }

// reserve returns the first of n consecutive new positions: the current
// pseudo-millisecond's first if the clock has moved past the last one,
// else the one after it.
func (f *guidFactory) reserve(n int) int64 {
	start := (time.Now().UnixNano() >> 20) << guidSeqBits
	f.mu.Lock()
	start = max(start, f.last+1)
	f.last = start + int64(n) - 1
	f.mu.Unlock()
	return start
}

// id writes the ID of position p.
func (f *guidFactory) id(id *MessageID, p int64) {
	ts, seq := p>>guidSeqBits, p&guidSeqMask
	hexID(id, uint64((ts-guidEpoch)<<(guidNodeBits+guidSeqBits)|f.nodeID<<guidSeqBits|seq))
}

// hexID writes v as 16 lower-case hex digits, eight bytes at a time: each
// half's nibbles are spread into the bytes of a word, then every byte
// becomes '0'+n or 'a'+n-10 at once.
func hexID(id *MessageID, v uint64) {
	binary.BigEndian.PutUint64(id[:8], hexWord(uint32(v>>32)))
	binary.BigEndian.PutUint64(id[8:], hexWord(uint32(v)))
}

func hexWord(v uint32) uint64 {
	x := uint64(v)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff
	x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f
	letters := (x + 0x0606060606060606) >> 4 & 0x0101010101010101 // 1 where n > 9
	return x + 0x3030303030303030 + letters*('a'-'0'-10)
}

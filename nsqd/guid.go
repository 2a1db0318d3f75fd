package nsqd

import (
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
type guidFactory struct {
	nodeID int64

	mu     sync.Mutex
	lastTS int64 // pseudo-milliseconds of the last ID
	seq    int64
}

func newGUIDFactory(nodeID int64) *guidFactory { return &guidFactory{nodeID: nodeID} }

// fill writes len(ids) new IDs.
func (f *guidFactory) fill(ids []MessageID) {
	ts := time.Now().UnixNano() >> 20
	f.mu.Lock()
	for i := range ids {
		switch {
		case ts > f.lastTS:
			f.lastTS, f.seq = ts, 0
		case f.seq < guidSeqMask:
			f.seq++
		default:
			f.lastTS++
			f.seq = 0
		}
		v := uint64((f.lastTS-guidEpoch)<<(guidNodeBits+guidSeqBits) | f.nodeID<<guidSeqBits | f.seq)
		hexID(&ids[i], v)
	}
	f.mu.Unlock()
}

const hexDigits = "0123456789abcdef"

func hexID(id *MessageID, v uint64) {
	for i := 15; i >= 0; i-- {
		id[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

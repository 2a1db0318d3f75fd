package protocol

import (
	"encoding/binary"
	"io"
)

// Protocol magics: the first four bytes a client sends.
const (
	MagicV1 = "  V1"
	MagicV2 = "  V2"
)

// Frame types of nsqd's V2 server-to-client frames.
const (
	FrameTypeResponse int32 = 0
	FrameTypeError    int32 = 1
	FrameTypeMessage  int32 = 2
)

// Well-known response bodies.
var (
	OK        = []byte("OK")
	Heartbeat = []byte("_heartbeat_")
	CloseWait = []byte("CLOSE_WAIT")
)

// AppendFrame appends a frame: [4-byte size][4-byte type][data], where size
// counts the type field and the data.
func AppendFrame(b []byte, frameType int32, data []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)+4))
	b = binary.BigEndian.AppendUint32(b, uint32(frameType))
	return append(b, data...)
}

// WriteFrame writes one frame to w with two writes and no allocation; w is
// expected to be buffered.
func WriteFrame(w io.Writer, frameType int32, data []byte) (int, error) {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)+4))
	binary.BigEndian.PutUint32(hdr[4:], uint32(frameType))
	n, err := w.Write(hdr[:])
	if err != nil {
		return n, err
	}
	m, err := w.Write(data)
	return n + m, err
}

package protocol

import (
	"encoding/binary"
	"fmt"
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

// ReadFrame reads one frame written by WriteFrame: its type and data. A
// size below 4 (no room for the type) or above 4+maxData is an error, so a
// damaged or hostile stream cannot make it allocate without bound.
func ReadFrame(r io.Reader, maxData uint32) (int32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 || size-4 > maxData {
		return 0, nil, fmt.Errorf("bad frame size %d", size)
	}
	data := make([]byte, size-4)
	if _, err := io.ReadFull(r, data); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(hdr[4:])), data, nil
}

package protocol

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestReadFrame(t *testing.T) {
	b := AppendFrame(nil, FrameTypeMessage, []byte("hello"))
	b = AppendFrame(b, FrameTypeResponse, nil)
	r := bytes.NewReader(b)
	ft, data, err := ReadFrame(r, 5)
	if err != nil || ft != FrameTypeMessage || string(data) != "hello" {
		t.Fatalf("ReadFrame = %d %q %v, want message hello", ft, data, err)
	}
	ft, data, err = ReadFrame(r, 5)
	if err != nil || ft != FrameTypeResponse || len(data) != 0 {
		t.Fatalf("ReadFrame = %d %q %v, want empty response", ft, data, err)
	}
	if _, _, err := ReadFrame(r, 5); err == nil {
		t.Error("ReadFrame at the end of the stream: no error")
	}

	if _, _, err := ReadFrame(bytes.NewReader(AppendFrame(nil, FrameTypeMessage, []byte("toolong"))), 5); err == nil {
		t.Error("ReadFrame of 7 data bytes with maxData 5: no error")
	}
	short := binary.BigEndian.AppendUint32(nil, 3) // no room for the type
	short = binary.BigEndian.AppendUint32(short, 0)
	if _, _, err := ReadFrame(bytes.NewReader(short), 5); err == nil {
		t.Error("ReadFrame of size 3: no error")
	}
	if _, _, err := ReadFrame(bytes.NewReader(AppendFrame(nil, FrameTypeMessage, []byte("hello"))[:10]), 5); err == nil {
		t.Error("ReadFrame of a truncated frame: no error")
	}
}

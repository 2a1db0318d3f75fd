package nsqd

// Fuzz targets for the parsers of client and disk bytes: MPUB bodies,
// stored messages, IDENTIFY JSON and whole V2 command streams. Each checks
// no panic plus a model or round-trip property.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
)

// refReadMPUB is MPUB in NSQ's TCP protocol spec
// (https://nsq.io/clients/tcp_protocol_spec.html) read literally: the
// messages of an MPUB body after its outer size, or the error text.
func refReadMPUB(data []byte, maxMsgSize, maxBodySize int64) ([][]byte, string) {
	next := func() (int32, bool) {
		if len(data) < 4 {
			return 0, false
		}
		v := int32(binary.BigEndian.Uint32(data))
		data = data[4:]
		return v, true
	}
	count, ok := next()
	if !ok {
		return nil, "E_BAD_BODY MPUB failed to read message count"
	}
	if count <= 0 || int64(count) > (maxBodySize-4)/5 {
		return nil, fmt.Sprintf("E_BAD_BODY MPUB invalid message count %d", count)
	}
	var out [][]byte
	for i := range int(count) {
		size, ok := next()
		if !ok {
			return nil, fmt.Sprintf("E_BAD_MESSAGE MPUB failed to read message(%d) body size", i)
		}
		if size <= 0 {
			return nil, fmt.Sprintf("E_BAD_MESSAGE MPUB invalid message(%d) body size %d", i, size)
		}
		if int64(size) > maxMsgSize {
			return nil, fmt.Sprintf("E_BAD_MESSAGE MPUB message too big %d > %d", size, maxMsgSize)
		}
		if int64(len(data)) < int64(size) {
			return nil, "E_BAD_MESSAGE MPUB failed to read message body"
		}
		out = append(out, data[:size])
		data = data[size:]
	}
	return out, ""
}

// totalAlloc returns the bytes allocated by the process so far.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// FuzzReadMPUBMessages checks readMPUBMessages against the spec's model
// (messages or exact error text, bytes consumed) and that it allocates no
// more than the size limits allow, whatever counts and sizes it is told.
func FuzzReadMPUBMessages(f *testing.F) {
	const defMsg, defBody = 1 << 20, 5 << 20        // --max-msg-size, --max-body-size
	inner := func(b []byte) []byte { return b[4:] } // drop mpubBody's outer size
	for _, s := range []struct {
		data          []byte
		maxMsg, maxBd int64
	}{
		{inner(mpubBody("a", "bc", "def")), defMsg, defBody},
		{inner(mpubBody("hello")), 4, defBody},
		{inner(mpubBody("a", "b", "c")), 10, 14}, // count limit (14-4)/5 = 2
		{be32(0), defMsg, defBody},
		{be32(-1), defMsg, defBody},
		{be32(2, 0, 0, 0, 1, 'a', 0, 0, 0, 0), defMsg, defBody},
		{be32(1, 0x7f, 0xff, 0xff, 0xff), defMsg, defBody},
		{be32(1, 0, 0x10, 0, 0), defMsg, defBody},   // one 1 MiB message announced, none sent
		{be32(1048575), defMsg, defBody},            // largest count allowed, no messages
		{be32(3, 0, 0, 0, 1, 'x'), defMsg, defBody}, // short
		{nil, defMsg, defBody},
	} {
		f.Add(s.data, s.maxMsg, s.maxBd)
	}
	f.Fuzz(func(t *testing.T, data []byte, maxMsgSize, maxBodySize int64) {
		// Limits as nsqd's flags allow: positive, at most the defaults.
		if maxMsgSize < 1 || maxMsgSize > defMsg {
			maxMsgSize = 1 + (maxMsgSize&(1<<62-1))%defMsg
		}
		if maxBodySize < 5 || maxBodySize > defBody {
			maxBodySize = 5 + (maxBodySize&(1<<62-1))%(defBody-4)
		}
		want, wantErr := refReadMPUB(data, maxMsgSize, maxBodySize)

		r := bytes.NewReader(data)
		before := totalAlloc()
		got, err := readMPUBMessages(r, maxMsgSize, maxBodySize, maxBodySize)
		alloc := totalAlloc() - before

		// Bounded allocation: at most the body limit, one message of the
		// message limit and what was actually sent, plus slack for the
		// runtime. Announcing a count or size must not cost more.
		if limit := uint64(maxBodySize+maxMsgSize) + 2*uint64(len(data)) + 256<<10; alloc > limit {
			t.Errorf("readMPUBMessages(limits %d/%d) of %d bytes allocated %d bytes, limit %d", maxMsgSize, maxBodySize, len(data), alloc, limit)
		}
		if wantErr != "" {
			var perr *protocol.Error
			if !errors.As(err, &perr) || !perr.Fatal || perr.Error() != wantErr {
				t.Fatalf("readMPUBMessages(%x, %d, %d) error = %v, want fatal %q", data, maxMsgSize, maxBodySize, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("readMPUBMessages(%x, %d, %d) = %v, want %d messages", data, maxMsgSize, maxBodySize, err, len(want))
		}
		if len(got) != len(want) {
			t.Fatalf("readMPUBMessages = %d messages, want %d", len(got), len(want))
		}
		consumed := 4
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d = %q, want %q", i, got[i], want[i])
			}
			if cap(got[i]) != len(got[i]) {
				t.Fatalf("message %d has cap %d > len %d: appending to it would overwrite the next", i, cap(got[i]), len(got[i]))
			}
			consumed += 4 + len(got[i])
		}
		if read := len(data) - r.Len(); read != consumed {
			t.Fatalf("read %d bytes, want exactly the %d of the messages", read, consumed)
		}
	})
}

// FuzzDecodeMessage: decoding the storage form and encoding it again gives
// the same bytes, and the V2 frame carries exactly those bytes.
func FuzzDecodeMessage(f *testing.F) {
	id := MessageID([]byte("18a57e1f5d401000"))
	f.Add(appendMessage(nil, &Message{ID: id, Body: []byte("m1"), Timestamp: 1795432497309851704, Attempts: 1}))
	f.Add(appendMessage(nil, &Message{ID: id, Timestamp: -1, Attempts: 65535}))
	f.Add([]byte{})
	f.Add(make([]byte, messageHeaderLen-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if len(b) < 26 {
			if err == nil {
				t.Fatalf("decodeMessage of %d bytes succeeded", len(b))
			}
			return
		}
		if err != nil {
			t.Fatalf("decodeMessage(%x): %v", b, err)
		}
		if got := appendMessage(nil, m); !bytes.Equal(got, b) {
			t.Fatalf("decode then encode %x = %x", b, got)
		}
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := m.writeFrame(w); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		frame := buf.Bytes()
		if len(frame) != 8+len(b) || binary.BigEndian.Uint32(frame) != uint32(4+len(b)) ||
			binary.BigEndian.Uint32(frame[4:]) != uint32(protocol.FrameTypeMessage) || !bytes.Equal(frame[8:], b) {
			t.Fatalf("frame of %x = %x", b, frame)
		}
	})
}

// refIdentify is IDENTIFY in NSQ's TCP protocol spec read literally (NSQ compares
// milliseconds): the effective settings, or the error text.
func refIdentify(o *Options, r *identifyRequest) (identifySettings, string) {
	ms := func(d time.Duration) int { return int(d / time.Millisecond) }
	dur := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	bad := func(format string, v int) string { return fmt.Sprintf("E_BAD_BODY IDENTIFY "+format, v) }
	s := identifySettings{
		heartbeat:           o.ClientTimeout / 2,
		outputBufferSize:    16384,
		outputBufferTimeout: o.OutputBufferTimeout,
		msgTimeout:          o.MsgTimeout,
	}
	switch v := r.HeartbeatInterval; {
	case v == -1:
		s.heartbeat = 0
	case v == 0:
	case v >= 1000 && v <= ms(o.MaxHeartbeatInterval):
		s.heartbeat = dur(v)
	default:
		return s, bad("heartbeat interval (%d) is invalid", v)
	}
	switch v := r.OutputBufferTimeout; {
	case v == -1:
		s.outputBufferTimeout = 0
	case v == 0:
	case v >= ms(o.MinOutputBufferTimeout) && v <= ms(o.MaxOutputBufferTimeout):
		s.outputBufferTimeout = dur(v)
	default:
		return s, bad("output buffer timeout (%d) is invalid", v)
	}
	switch v := r.OutputBufferSize; {
	case v == -1:
		s.outputBufferSize, s.outputBufferTimeout = 1, 0
	case v == 0:
	case v >= 64 && int64(v) <= o.MaxOutputBufferSize:
		s.outputBufferSize = v
	default:
		return s, bad("output buffer size (%d) is invalid", v)
	}
	if r.SampleRate < 0 || r.SampleRate > 99 {
		return s, bad("sample rate (%d) is invalid", int(r.SampleRate))
	}
	s.sampleRate = r.SampleRate
	switch v := r.MsgTimeout; {
	case v == 0:
	case v >= 1000 && v <= ms(o.MaxMsgTimeout):
		s.msgTimeout = dur(v)
	default:
		return s, bad("msg timeout (%d) is invalid", v)
	}
	s.deflateLevel = 6
	if r.DeflateLevel > 0 {
		s.deflateLevel = r.DeflateLevel
	}
	s.deflateLevel = min(s.deflateLevel, o.MaxDeflateLevel)
	return s, ""
}

// FuzzIdentifySettings checks IDENTIFY validation and effective values
// against the spec's model, with default and with tighter limits.
func FuzzIdentifySettings(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"feature_negotiation":true}`, `null`, `{`, `{"heartbeat_interval":"x"}`,
		`{"heartbeat_interval":-1,"output_buffer_size":-1,"output_buffer_timeout":-1}`,
		`{"heartbeat_interval":1000,"output_buffer_size":64,"output_buffer_timeout":25,"sample_rate":99,"msg_timeout":1000,"deflate_level":9}`,
		`{"heartbeat_interval":60001}`, `{"output_buffer_timeout":24}`, `{"output_buffer_size":65537}`,
		`{"sample_rate":100}`, `{"msg_timeout":900001}`, `{"deflate_level":-3}`,
		`{"msg_timeout":1,"sample_rate":100,"output_buffer_size":1,"output_buffer_timeout":1,"heartbeat_interval":1}`,
		// Overflow when converted to nanoseconds.
		`{"heartbeat_interval":18446744073710}`, `{"output_buffer_timeout":18446744073735}`,
		`{"msg_timeout":9223372036855}`, `{"heartbeat_interval":9223372036854775807}`,
	} {
		f.Add([]byte(s))
	}
	tight := NewOptions()
	tight.MaxHeartbeatInterval = 5 * time.Second
	tight.MinOutputBufferTimeout = 0
	tight.MaxOutputBufferTimeout = time.Second
	tight.OutputBufferTimeout = 10 * time.Millisecond
	tight.MaxOutputBufferSize = 1000
	tight.MsgTimeout = 2 * time.Second
	tight.MaxMsgTimeout = 3 * time.Second
	tight.MaxDeflateLevel = 1
	daemons := []*NSQD{{opts: NewOptions()}, {opts: tight}}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req identifyRequest
		if json.Unmarshal(body, &req) != nil {
			return
		}
		for i, n := range daemons {
			got, err := n.identifySettings(&req)
			want, wantErr := refIdentify(n.opts, &req)
			if wantErr != "" {
				var perr *protocol.Error
				if !errors.As(err, &perr) || !perr.Fatal || perr.Error() != wantErr {
					t.Fatalf("options %d: IDENTIFY %s: error %v (settings %+v), want fatal %q", i, body, err, got, wantErr)
				}
				continue
			}
			if err != nil {
				t.Fatalf("options %d: IDENTIFY %s: %v, want %+v", i, body, err, want)
			}
			if got != want {
				t.Fatalf("options %d: IDENTIFY %s = %+v, want %+v", i, body, got, want)
			}
		}
	})
}

var errorFrameText = regexp.MustCompile(`^E_(INVALID|BAD_PROTOCOL|BAD_BODY|BAD_TOPIC|BAD_CHANNEL|BAD_MESSAGE|IDENTIFY_FAILED|AUTH_DISABLED|AUTH_FAILED|AUTH_ERROR|AUTH_FIRST|UNAUTHORIZED|SUB_FAILED|PUB_FAILED|MPUB_FAILED|DPUB_FAILED|FIN_FAILED|REQ_FAILED|TOUCH_FAILED)( |$)`)

// FuzzV2Commands sends arbitrary bytes after the magic to one daemon,
// then half-closes. The server must answer with well-formed frames and
// known error codes, send no reply after a fatal error, and close the
// connection once it has read everything.
func FuzzV2Commands(f *testing.F) {
	for _, s := range [][]byte{
		cmd("NOP"),
		cmd("PUB fz", sized("x")),
		cmd("MPUB fz", mpubBody("a", "b")),
		cmd("DPUB fz 10", sized("d")),
		cat(cmd("IDENTIFY", sized(`{"feature_negotiation":true,"heartbeat_interval":1000,"msg_timeout":1000}`)), cmd("SUB fz c"), cmd("RDY 10"), cmd("PUB fz", sized("x"))),
		cat(cmd("SUB fz c"), cmd("RDY 1"), cmd("FIN 0123456789abcdef"), cmd("REQ 0123456789abcdef 0"), cmd("TOUCH 0123456789abcdef"), cmd("CLS"), cmd("RDY 3")),
		cmd("IDENTIFY", sized(`{"heartbeat_interval":-1}`)),
		cmd("AUTH", sized("secret")),
		cmd("pub t"),
		cmd(""),
		[]byte("NOP\r\nPUB fz\r\n\x00\x00\x00\x01z"),
		cmd("PUB fz", be32(-1)),
		cmd("MPUB fz", be32(12), be32(2), sized("a")),
	} {
		f.Add(s)
	}
	o := testOptions(f)
	o.Logger = slog.New(slog.DiscardHandler)
	o.MaxMsgSize, o.MaxBodySize = 4096, 16384 // keep announced sizes cheap
	n := startNSQD(f, o)
	addr := n.TCPAddr().String()
	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		written := make(chan error, 1)
		go func() { // the server may answer before it has read everything
			_, err := conn.Write(append([]byte("  V2"), in...))
			conn.(*net.TCPConn).CloseWrite()
			written <- err
		}()
		r := bufio.NewReader(conn)
		fatal := ""
		for {
			ft, data, err := readFrameFrom(r)
			if err == io.EOF || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
				break
			}
			if err != nil {
				t.Fatalf("input %q: %v (the server must close the connection after EOF)", in, err)
			}
			switch {
			case ft == frameMessage:
				if len(data) < 26 {
					t.Fatalf("input %q: message frame of %d bytes", in, len(data))
				}
				continue
			case isHeartbeat(ft, data):
				continue
			case fatal != "":
				t.Fatalf("input %q: frame %d %q after fatal error %q", in, ft, data, fatal)
			case ft == frameError:
				if !errorFrameText.Match(data) {
					t.Fatalf("input %q: error frame %q has no known code", in, data)
				}
				if !bytes.HasPrefix(data, []byte("E_FIN_FAILED ")) && !bytes.HasPrefix(data, []byte("E_REQ_FAILED ")) && !bytes.HasPrefix(data, []byte("E_TOUCH_FAILED ")) {
					fatal = string(data)
				}
			case ft != frameResponse:
				t.Fatalf("input %q: frame type %d", in, ft)
			}
		}
		<-written
	})
}

// FuzzAuthResponse feeds arbitrary auth-server answers: no panic, and an
// accepted answer has a positive TTL and grants only known permissions.
func FuzzAuthResponse(f *testing.F) {
	for _, s := range []string{
		`{"ttl":3600,"identity":"alice","identity_url":"http://id/alice","authorizations":[{"topic":"^auth.*","channels":[".*"],"permissions":["subscribe","publish"]}]}`,
		`{"ttl":1,"authorizations":[]}`,
		`{"ttl":0,"authorizations":[{"topic":"t","channels":["c"],"permissions":["publish"]}]}`,
		`{"ttl":5,"authorizations":[{"topic":"(","channels":["c"],"permissions":["publish"]}]}`,
		`{"ttl":5,"authorizations":[{"topic":"t","channels":["c"],"permissions":["admin"]}]}`,
		`not json`, `{}`, `{"ttl":"5"}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := parseAuthResponse(body, now)
		if err != nil && !errors.Is(err, errNoAuthorizations) {
			return
		}
		if !st.expires.After(now) {
			t.Fatalf("accepted %q with expiry %v, not after now", body, st.expires)
		}
		if (len(st.grants) == 0) != errors.Is(err, errNoAuthorizations) {
			t.Fatalf("%q: %d grants with error %v", body, len(st.grants), err)
		}
		st.allows(true, "t", "")
		st.allows(false, "t", "c")
	})
}

package nsqd

// Conformance tests of the V2 TCP protocol against NSQ's TCP protocol spec
// (https://nsq.io/clients/tcp_protocol_spec.html) and NSQ 1.3's behaviour,
// over raw TCP connections: exact frames
// and error texts, fatal versus non-fatal errors, and delivery semantics.

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/nsqclone/nsq/internal/protocol"
)

const (
	frameResponse = protocol.FrameTypeResponse
	frameError    = protocol.FrameTypeError
	frameMessage  = protocol.FrameTypeMessage
)

// defaultIdentify is the IDENTIFY feature-negotiation response of nsqd with
// default flags, as NSQ 1.3 sends it.
const defaultIdentify = `{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250,"topology_region":"","topology_zone":""}`

// withFields returns the JSON object js with the values of the given keys
// replaced (key, raw JSON value pairs), keeping the key order.
func withFields(js string, kv ...string) string {
	for i := 0; i < len(kv); i += 2 {
		re := regexp.MustCompile(`"` + kv[i] + `":("[^"]*"|[^,}]*)`)
		if !re.MatchString(js) {
			panic("withFields: no key " + kv[i])
		}
		js = re.ReplaceAllLiteralString(js, `"`+kv[i]+`":`+kv[i+1])
	}
	return js
}

// Building raw client bytes.

// cmd returns a command line followed by raw bytes.
func cmd(line string, rest ...[]byte) []byte {
	b := []byte(line + "\n")
	for _, r := range rest {
		b = append(b, r...)
	}
	return b
}

// be32 returns n as a 4-byte big-endian size followed by tail.
func be32(n int32, tail ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(n)), tail...)
}

// sized returns data behind its 4-byte size.
func sized(data string) []byte { return be32(int32(len(data)), []byte(data)...) }

// mpubBody returns [count]([size][msg])* behind a correct outer size.
func mpubBody(msgs ...string) []byte {
	inner := be32(int32(len(msgs)))
	for _, m := range msgs {
		inner = append(inner, sized(m)...)
	}
	return append(be32(int32(len(inner))), inner...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Reading frames.

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.Write(b); err != nil {
		c.t.Fatalf("write %q: %v", b, err)
	}
}

// closeWrite half-closes the connection: the server reads EOF.
func (c *rawConn) closeWrite() {
	c.t.Helper()
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		c.t.Fatal(err)
	}
}

// nextFrame reads one frame, heartbeats included.
func (c *rawConn) nextFrame(deadline time.Time) (int32, []byte, error) {
	c.SetReadDeadline(deadline)
	return readFrameFrom(c.r)
}

func readFrameFrom(r io.Reader) (int32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 || size > 64<<20 {
		return 0, nil, fmt.Errorf("bad frame size %d", size)
	}
	data := make([]byte, size-4)
	if _, err := io.ReadFull(r, data); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(hdr[4:])), data, nil
}

func isHeartbeat(ft int32, data []byte) bool {
	return ft == frameResponse && string(data) == "_heartbeat_"
}

// expectNothing checks that nothing but heartbeats arrives within d.
func (c *rawConn) expectNothing(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		c.SetReadDeadline(deadline)
		if _, err := c.r.Peek(1); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			c.t.Fatalf("waiting %v for silence: %v", d, err)
		}
		ft, data, err := c.nextFrame(time.Now().Add(5 * time.Second))
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		if !isHeartbeat(ft, data) {
			c.t.Fatalf("got frame %d %q within %v, want none", ft, printable(ft, data), d)
		}
	}
}

// wireMsg is a decoded message frame (the spec's "Data Format").
type wireMsg struct {
	ts       int64
	attempts uint16
	id       string
	body     string
}

// readMsg returns the next non-heartbeat frame, which must be a message.
func (c *rawConn) readMsg(d time.Duration) wireMsg {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ft, data, err := c.nextFrame(deadline)
		if err != nil {
			c.t.Fatalf("waiting %v for a message: %v", d, err)
		}
		if isHeartbeat(ft, data) {
			continue
		}
		if ft != frameMessage || len(data) < 26 {
			c.t.Fatalf("frame %d %q, want a message", ft, data)
		}
		return wireMsg{
			ts:       int64(binary.BigEndian.Uint64(data[0:8])),
			attempts: binary.BigEndian.Uint16(data[8:10]),
			id:       string(data[10:26]),
			body:     string(data[26:]),
		}
	}
}

func printable(ft int32, data []byte) string {
	if ft == frameMessage && len(data) >= 26 {
		return fmt.Sprintf("message id=%s attempts=%d body=%q", data[10:26], binary.BigEndian.Uint16(data[8:10]), data[26:])
	}
	return string(data)
}

// expectGone checks that the server closed the connection (EOF, or a reset
// if it closed with client bytes unread).
func (c *rawConn) expectGone() {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := c.r.ReadByte()
	if err == io.EOF || errors.Is(err, syscall.ECONNRESET) {
		return
	}
	if err == nil {
		rest, _ := c.r.Peek(c.r.Buffered())
		c.t.Fatalf("connection not closed: more data %q", append([]byte{b}, rest...))
	}
	c.t.Fatalf("connection not closed: %v", err)
}

// checkAlive checks that the daemon still serves new connections (IDENTIFY
// is allowed with and without auth).
func checkAlive(t testing.TB, n *NSQD) {
	t.Helper()
	c := dialRaw(t, n)
	c.send("IDENTIFY", []byte(`{}`))
	c.expect(frameResponse, "OK")
	c.Close()
}

// subscribe connects, optionally IDENTIFYs and SUBscribes.
func subscribe(t testing.TB, n *NSQD, topic, channel, identify string) *rawConn {
	t.Helper()
	c := dialRaw(t, n)
	if identify != "" {
		c.send("IDENTIFY", []byte(identify))
		c.expect(frameResponse, "OK")
	}
	c.send("SUB " + topic + " " + channel)
	c.expect(frameResponse, "OK")
	return c
}

// publish PUBs each body on a connection of its own.
func publish(t testing.TB, n *NSQD, topic string, bodies ...string) {
	t.Helper()
	p := dialRaw(t, n)
	for _, b := range bodies {
		p.send("PUB "+topic, []byte(b))
		p.expect(frameResponse, "OK")
	}
	p.Close()
}

func channelStats(t testing.TB, n *NSQD, topic, channel string) ChannelStats {
	t.Helper()
	st := n.Stats(topic, channel, true)
	if len(st.Topics) != 1 || len(st.Topics[0].Channels) != 1 {
		t.Fatalf("Stats(%q, %q) = %+v, want one channel", topic, channel, st.Topics)
	}
	return st.Topics[0].Channels[0]
}

// httpChannelStats returns a channel's entry of GET /stats?format=json.
func httpChannelStats(t testing.TB, n *NSQD, topic, channel string) ChannelStats {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr().String() + "/stats?format=json&topic=" + topic + "&channel=" + channel)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /stats: %s: %v", resp.Status, err)
	}
	if len(st.Topics) != 1 || len(st.Topics[0].Channels) != 1 {
		t.Fatalf("GET /stats?topic=%s&channel=%s = %+v, want one channel", topic, channel, st.Topics)
	}
	return st.Topics[0].Channels[0]
}

// fatalCase is a byte sequence that must end in a fatal error frame.
type fatalCase struct {
	name      string
	wire      []byte
	halfClose bool     // close our side after wire (short reads)
	before    []string // response frames expected before the error
	want      string   // the error frame
}

// runFatal checks each case on a connection of its own: the responses, the
// error frame, the close, and that the daemon still serves others.
func runFatal(t *testing.T, n *NSQD, cases []fatalCase, parallel bool) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			c := dialRaw(t, n)
			c.write(tc.wire)
			if tc.halfClose {
				c.closeWrite()
			}
			for _, w := range tc.before {
				c.expect(frameResponse, w)
			}
			c.expect(frameError, tc.want)
			c.expectGone()
			checkAlive(t, n)
		})
	}
}

func TestV2BadMagic(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	badProtocol := []byte{0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, 0x01, 0x45, 0x5f, 0x42, 0x41, 0x44, 0x5f, 0x50, 0x52, 0x4f, 0x54, 0x4f, 0x43, 0x4f, 0x4c}
	for _, tc := range []struct {
		magic string
		want  []byte
	}{
		{"  V1", badProtocol},
		{"XXXX", badProtocol},
		{"V2  ", badProtocol},
		{" V2", nil}, // peer closes before 4 bytes: closed, no frame
		{"", nil},
	} {
		t.Run(fmt.Sprintf("%q", tc.magic), func(t *testing.T) {
			c, err := net.Dial("tcp", n.TCPAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte(tc.magic))
			if len(tc.magic) < 4 {
				c.(*net.TCPConn).CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read after magic %q: %v (got %x)", tc.magic, err, got)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("after magic %q got %x, want %x then close", tc.magic, got, tc.want)
			}
			checkAlive(t, n)
		})
	}
}

// TestV2FatalErrors covers every fatal error of the TCP protocol's commands that
// a client can trigger without auth or TLS configured.
func TestV2FatalErrors(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	const id = "0123456789abcdef"
	sub := cmd("SUB t c")
	ok := []string{"OK"}
	ident := func(js string) []byte { return cmd("IDENTIFY", sized(js)) }
	badIdent := func(js, want string) fatalCase {
		return fatalCase{name: "IDENTIFY " + js, wire: ident(js), want: "E_BAD_BODY IDENTIFY " + want}
	}
	cases := []fatalCase{
		// Command names.
		{name: "lower case", wire: cmd("pub t"), want: "E_INVALID invalid command pub"},
		{name: "empty line", wire: cmd(""), want: "E_INVALID invalid command "},
		{name: "empty CRLF line", wire: []byte("\r\n"), want: "E_INVALID invalid command "},
		{name: "unknown", wire: cmd("FOO bar"), want: "E_INVALID invalid command FOO"},
		{name: "leading space", wire: cmd(" NOP"), want: "E_INVALID invalid command "},
		{name: "unknown CRLF", wire: []byte("BAD\r\n"), want: "E_INVALID invalid command BAD"},

		// State.
		{name: "FIN before SUB", wire: cmd("FIN " + id), want: "E_INVALID cannot FIN in current state"},
		{name: "REQ before SUB", wire: cmd("REQ " + id + " 0"), want: "E_INVALID cannot REQ in current state"},
		{name: "TOUCH before SUB", wire: cmd("TOUCH " + id), want: "E_INVALID cannot TOUCH in current state"},
		{name: "RDY before SUB", wire: cmd("RDY 1"), want: "E_INVALID cannot RDY in current state"},
		{name: "CLS before SUB", wire: cmd("CLS"), want: "E_INVALID cannot CLS in current state"},
		{name: "SUB twice", wire: cat(sub, sub), before: ok, want: "E_INVALID cannot SUB in current state"},
		{name: "SUB after CLS", wire: cat(sub, cmd("CLS"), sub), before: []string{"OK", "CLOSE_WAIT"}, want: "E_INVALID cannot SUB in current state"},
		{name: "CLS twice", wire: cat(sub, cmd("CLS"), cmd("CLS")), before: []string{"OK", "CLOSE_WAIT"}, want: "E_INVALID cannot CLS in current state"},
		{name: "IDENTIFY after SUB", wire: cat(sub, cmd("IDENTIFY")), before: ok, want: "E_INVALID cannot IDENTIFY in current state"},
		{name: "AUTH after SUB", wire: cat(sub, cmd("AUTH")), before: ok, want: "E_INVALID cannot AUTH in current state"},
		{name: "SUB with heartbeats disabled", wire: cat(ident(`{"heartbeat_interval":-1}`), sub), before: ok, want: "E_INVALID cannot SUB with heartbeats disabled"},

		// Parameters.
		{name: "SUB no params", wire: cmd("SUB"), want: "E_INVALID SUB insufficient number of parameters"},
		{name: "SUB one param", wire: cmd("SUB t"), want: "E_INVALID SUB insufficient number of parameters"},
		{name: "PUB no topic", wire: cmd("PUB"), want: "E_INVALID PUB insufficient number of parameters"},
		{name: "MPUB no topic", wire: cmd("MPUB"), want: "E_INVALID MPUB insufficient number of parameters"},
		{name: "DPUB no params", wire: cmd("DPUB"), want: "E_INVALID DPUB insufficient number of parameters"},
		{name: "DPUB no timeout", wire: cmd("DPUB t"), want: "E_INVALID DPUB insufficient number of parameters"},
		{name: "AUTH param", wire: cmd("AUTH x"), want: "E_INVALID AUTH invalid number of parameters"},
		{name: "FIN no id", wire: cat(sub, cmd("FIN")), before: ok, want: "E_INVALID FIN insufficient number of params"},
		{name: "REQ no params", wire: cat(sub, cmd("REQ")), before: ok, want: "E_INVALID REQ insufficient number of params"},
		{name: "REQ no timeout", wire: cat(sub, cmd("REQ "+id)), before: ok, want: "E_INVALID REQ insufficient number of params"},
		{name: "TOUCH no id", wire: cat(sub, cmd("TOUCH")), before: ok, want: "E_INVALID TOUCH insufficient number of params"},
		{name: "FIN short id", wire: cat(sub, cmd("FIN 0123")), before: ok, want: "E_INVALID invalid message ID"},
		{name: "FIN empty id", wire: cat(sub, cmd("FIN ")), before: ok, want: "E_INVALID invalid message ID"},
		{name: "REQ long id", wire: cat(sub, cmd("REQ "+id+"0 0")), before: ok, want: "E_INVALID invalid message ID"},
		{name: "TOUCH 15-byte id", wire: cat(sub, cmd("TOUCH "+id[1:])), before: ok, want: "E_INVALID invalid message ID"},
		{name: "REQ negative timeout", wire: cat(sub, cmd("REQ "+id+" -1")), before: ok, want: "E_INVALID REQ could not parse timeout -1"},
		{name: "REQ bad timeout", wire: cat(sub, cmd("REQ "+id+" 1s")), before: ok, want: "E_INVALID REQ could not parse timeout 1s"},

		// Names.
		{name: "PUB two spaces", wire: cmd("PUB  t"), want: `E_BAD_TOPIC PUB topic name "" is not valid`},
		{name: "PUB star", wire: cmd("PUB a*"), want: `E_BAD_TOPIC PUB topic name "a*" is not valid`},
		{name: "PUB 65 chars", wire: cmd("PUB " + strings.Repeat("a", 65)), want: `E_BAD_TOPIC PUB topic name "` + strings.Repeat("a", 65) + `" is not valid`},
		{name: "PUB 65 chars ephemeral", wire: cmd("PUB " + strings.Repeat("a", 55) + "#ephemeral"), want: `E_BAD_TOPIC PUB topic name "` + strings.Repeat("a", 55) + `#ephemeral" is not valid`},
		{name: "PUB bare ephemeral", wire: cmd("PUB #ephemeral"), want: `E_BAD_TOPIC PUB topic name "#ephemeral" is not valid`},
		{name: "PUB double ephemeral", wire: cmd("PUB a#ephemeral#ephemeral"), want: `E_BAD_TOPIC PUB topic name "a#ephemeral#ephemeral" is not valid`},
		{name: "DPUB bad topic", wire: cmd("DPUB t* 0"), want: `E_BAD_TOPIC DPUB topic name "t*" is not valid`},
		{name: "DPUB two spaces", wire: cmd("DPUB  t 0"), want: `E_BAD_TOPIC DPUB topic name "" is not valid`},
		{name: "MPUB bad topic", wire: cmd("MPUB t*"), want: `E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "t*" is not valid`},
		{name: "SUB bad topic", wire: cmd("SUB t* c"), want: `E_BAD_TOPIC SUB topic name "t*" is not valid`},
		{name: "SUB bad channel", wire: cmd("SUB t c*"), want: `E_BAD_CHANNEL SUB channel name "c*" is not valid`},
		{name: "SUB two spaces", wire: cmd("SUB t  c"), want: `E_BAD_CHANNEL SUB channel name "" is not valid`},
		{name: "SUB bare ephemeral channel", wire: cmd("SUB t #ephemeral"), want: `E_BAD_CHANNEL SUB channel name "#ephemeral" is not valid`},
		{name: "SUB non-ASCII channel", wire: cmd("SUB t ü"), want: `E_BAD_CHANNEL SUB channel name "ü" is not valid`},

		// RDY.
		{name: "RDY negative", wire: cat(sub, cmd("RDY -1")), before: ok, want: "E_INVALID RDY could not parse count -1"},
		{name: "RDY letters", wire: cat(sub, cmd("RDY abc")), before: ok, want: "E_INVALID RDY could not parse count abc"},
		{name: "RDY too big", wire: cat(sub, cmd("RDY 2501")), before: ok, want: "E_INVALID RDY count 2501 out of range 0-2500"},

		// PUB bodies. Too big: the body is not read (none is sent).
		{name: "PUB size 0", wire: cmd("PUB t", be32(0)), want: "E_BAD_MESSAGE PUB invalid message body size 0"},
		{name: "PUB size -1", wire: cmd("PUB t", be32(-1)), want: "E_BAD_MESSAGE PUB invalid message body size -1"},
		{name: "PUB size min int32", wire: cmd("PUB t", be32(math.MinInt32)), want: "E_BAD_MESSAGE PUB invalid message body size -2147483648"},
		{name: "PUB too big", wire: cmd("PUB t", be32(1048577)), want: "E_BAD_MESSAGE PUB message too big 1048577 > 1048576"},
		{name: "PUB short size", wire: cmd("PUB t", []byte{0, 0}), halfClose: true, want: "E_BAD_MESSAGE PUB failed to read message body size"},
		{name: "PUB no size", wire: cmd("PUB t"), halfClose: true, want: "E_BAD_MESSAGE PUB failed to read message body size"},
		{name: "PUB short body", wire: cmd("PUB t", be32(3, 'a')), halfClose: true, want: "E_BAD_MESSAGE PUB failed to read message body"},

		// DPUB.
		{name: "DPUB negative timeout", wire: cmd("DPUB t -5"), want: "E_INVALID DPUB could not parse timeout -5"},
		{name: "DPUB bad timeout", wire: cmd("DPUB t x"), want: "E_INVALID DPUB could not parse timeout x"},
		{name: "DPUB timeout too big", wire: cmd("DPUB t 3600001"), want: "E_INVALID DPUB timeout 3600001 out of range 0-3600000"},
		{name: "DPUB size 0", wire: cmd("DPUB t 100", be32(0)), want: "E_BAD_MESSAGE DPUB invalid message body size 0"},
		{name: "DPUB size -1", wire: cmd("DPUB t 100", be32(-1)), want: "E_BAD_MESSAGE DPUB invalid message body size -1"},
		{name: "DPUB too big", wire: cmd("DPUB t 100", be32(1048577)), want: "E_BAD_MESSAGE DPUB message too big 1048577 > 1048576"},
		{name: "DPUB short size", wire: cmd("DPUB t 100", []byte{0, 0}), halfClose: true, want: "E_BAD_MESSAGE DPUB failed to read message body size"},
		{name: "DPUB short body", wire: cmd("DPUB t 100", be32(5, 'a', 'b')), halfClose: true, want: "E_BAD_MESSAGE DPUB failed to read message body"},

		// MPUB.
		{name: "MPUB size 0", wire: cmd("MPUB t", be32(0)), want: "E_BAD_BODY MPUB invalid body size 0"},
		{name: "MPUB size -1", wire: cmd("MPUB t", be32(-1)), want: "E_BAD_BODY MPUB invalid body size -1"},
		{name: "MPUB too big", wire: cmd("MPUB t", be32(5242881)), want: "E_BAD_BODY MPUB body too big 5242881 > 5242880"},
		{name: "MPUB short size", wire: cmd("MPUB t", []byte{0}), halfClose: true, want: "E_BAD_BODY MPUB failed to read body size"},
		{name: "MPUB count 0", wire: cmd("MPUB t", be32(4), be32(0)), want: "E_BAD_BODY MPUB invalid message count 0"},
		{name: "MPUB count -1", wire: cmd("MPUB t", be32(4), be32(-1)), want: "E_BAD_BODY MPUB invalid message count -1"},
		{name: "MPUB count over limit", wire: cmd("MPUB t", be32(8), be32(1048576)), want: "E_BAD_BODY MPUB invalid message count 1048576"},
		{name: "MPUB short count", wire: cmd("MPUB t", be32(8), []byte{0, 0}), halfClose: true, want: "E_BAD_BODY MPUB failed to read message count"},
		{name: "MPUB message(1) size 0", wire: cmd("MPUB t", be32(20), be32(2), sized("a"), be32(0)), want: "E_BAD_MESSAGE MPUB invalid message(1) body size 0"},
		{name: "MPUB message(0) size -3", wire: cmd("MPUB t", be32(20), be32(1), be32(-3)), want: "E_BAD_MESSAGE MPUB invalid message(0) body size -3"},
		{name: "MPUB message too big", wire: cmd("MPUB t", be32(20), be32(2), sized("a"), be32(1048577)), want: "E_BAD_MESSAGE MPUB message too big 1048577 > 1048576"},
		{name: "MPUB short message size", wire: cmd("MPUB t", be32(20), be32(3), sized("a"), sized("b"), []byte{0}), halfClose: true, want: "E_BAD_MESSAGE MPUB failed to read message(2) body size"},
		{name: "MPUB short message body", wire: cmd("MPUB t", be32(20), be32(1), be32(4, 'a', 'b')), halfClose: true, want: "E_BAD_MESSAGE MPUB failed to read message body"},

		// IDENTIFY.
		{name: "IDENTIFY size 0", wire: cmd("IDENTIFY", be32(0)), want: "E_BAD_BODY IDENTIFY invalid body size 0"},
		{name: "IDENTIFY size -1", wire: cmd("IDENTIFY", be32(-1)), want: "E_BAD_BODY IDENTIFY invalid body size -1"},
		{name: "IDENTIFY too big", wire: cmd("IDENTIFY", be32(2130706432)), want: "E_BAD_BODY IDENTIFY body too big 2130706432 > 5242880"},
		{name: "IDENTIFY short size", wire: cmd("IDENTIFY", []byte{0}), halfClose: true, want: "E_BAD_BODY IDENTIFY failed to read body size"},
		{name: "IDENTIFY short body", wire: cmd("IDENTIFY", be32(10, '{')), halfClose: true, want: "E_BAD_BODY IDENTIFY failed to read body"},
		badIdent(`{`, "failed to decode JSON body"),
		badIdent(`[]`, "failed to decode JSON body"),
		badIdent(`{"heartbeat_interval":"x"}`, "failed to decode JSON body"),
		badIdent(`{"heartbeat_interval":1.5}`, "failed to decode JSON body"),
		badIdent(`{"feature_negotiation":1}`, "failed to decode JSON body"),
		badIdent(`{"sample_rate":4294967296}`, "failed to decode JSON body"),
		badIdent(`{"heartbeat_interval":999}`, "heartbeat interval (999) is invalid"),
		badIdent(`{"heartbeat_interval":60001}`, "heartbeat interval (60001) is invalid"),
		badIdent(`{"heartbeat_interval":-2}`, "heartbeat interval (-2) is invalid"),
		// Values whose conversion to nanoseconds overflows must still be
		// rejected: NSQ compares milliseconds.
		badIdent(`{"heartbeat_interval":18446744073710}`, "heartbeat interval (18446744073710) is invalid"),
		badIdent(`{"heartbeat_interval":9223372036855}`, "heartbeat interval (9223372036855) is invalid"),
		badIdent(`{"output_buffer_timeout":24}`, "output buffer timeout (24) is invalid"),
		badIdent(`{"output_buffer_timeout":30001}`, "output buffer timeout (30001) is invalid"),
		badIdent(`{"output_buffer_timeout":-2}`, "output buffer timeout (-2) is invalid"),
		badIdent(`{"output_buffer_timeout":18446744073735}`, "output buffer timeout (18446744073735) is invalid"),
		badIdent(`{"output_buffer_size":63}`, "output buffer size (63) is invalid"),
		badIdent(`{"output_buffer_size":65537}`, "output buffer size (65537) is invalid"),
		badIdent(`{"output_buffer_size":-2}`, "output buffer size (-2) is invalid"),
		badIdent(`{"sample_rate":100}`, "sample rate (100) is invalid"),
		badIdent(`{"sample_rate":-1}`, "sample rate (-1) is invalid"),
		badIdent(`{"msg_timeout":999}`, "msg timeout (999) is invalid"),
		badIdent(`{"msg_timeout":900001}`, "msg timeout (900001) is invalid"),
		badIdent(`{"msg_timeout":-1}`, "msg timeout (-1) is invalid"),
		badIdent(`{"msg_timeout":9223372036855}`, "msg timeout (9223372036855) is invalid"),
		badIdent(`{"msg_timeout":18446744073710}`, "msg timeout (18446744073710) is invalid"),
		// Validation order: heartbeat, output buffer timeout, size, sample rate, msg timeout.
		badIdent(`{"msg_timeout":1,"sample_rate":100,"output_buffer_size":1,"output_buffer_timeout":1,"heartbeat_interval":1}`, "heartbeat interval (1) is invalid"),
		badIdent(`{"msg_timeout":1,"sample_rate":100,"output_buffer_size":1,"output_buffer_timeout":1}`, "output buffer timeout (1) is invalid"),
		badIdent(`{"msg_timeout":1,"sample_rate":100,"output_buffer_size":1}`, "output buffer size (1) is invalid"),
		badIdent(`{"msg_timeout":1,"sample_rate":100}`, "sample rate (100) is invalid"),
		{name: "IDENTIFY deflate and snappy", wire: ident(`{"feature_negotiation":true,"deflate":true,"snappy":true}`), want: "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression"},

		// AUTH without --auth-http-address.
		{name: "AUTH disabled", wire: cmd("AUTH", sized("secret")), want: "E_AUTH_DISABLED AUTH disabled"},
		{name: "AUTH size 0", wire: cmd("AUTH", be32(0)), want: "E_BAD_BODY AUTH invalid body size 0"},
		{name: "AUTH size -7", wire: cmd("AUTH", be32(-7)), want: "E_BAD_BODY AUTH invalid body size -7"},
		{name: "AUTH too big", wire: cmd("AUTH", be32(5242881)), want: "E_BAD_BODY AUTH body too big 5242881 > 5242880"},
		{name: "AUTH short size", wire: cmd("AUTH", []byte{0, 0, 0}), halfClose: true, want: "E_BAD_BODY AUTH failed to read body size"},
		{name: "AUTH short body", wire: cmd("AUTH", be32(6, 's')), halfClose: true, want: "E_BAD_BODY AUTH failed to read body"},
	}
	runFatal(t, n, cases, false)
}

// An MPUB with a bad body creates its topic but queues none of its messages.
func TestV2MPUBValidatesBeforeQueueing(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	c := dialRaw(t, n)
	c.write(cmd("MPUB mp", be32(20), be32(3), sized("a"), sized("b"), be32(0)))
	c.expect(frameError, "E_BAD_MESSAGE MPUB invalid message(2) body size 0")
	c.expectGone()
	topic, err := n.GetExistingTopic("mp")
	if err != nil {
		t.Fatalf("topic of a failed MPUB: %v, want it created", err)
	}
	if d := topic.Depth(); d != 0 {
		t.Errorf("depth after a failed MPUB = %d, want 0", d)
	}
	c = dialRaw(t, n)
	c.write(cmd("MPUB mp", mpubBody("a", "b", "c")))
	c.expect(frameResponse, "OK")
	if d := topic.Depth(); d != 3 {
		t.Errorf("depth after MPUB of 3 = %d, want 3", d)
	}
}

func TestV2IdentifyResponse(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	for _, tc := range []struct{ req, want string }{
		{`{}`, "OK"},
		{`{"feature_negotiation":false,"heartbeat_interval":5000}`, "OK"},
		{`{"client_id":"a","hostname":"h","user_agent":"u"}`, "OK"},
		{`{"feature_negotiation":true}`, defaultIdentify},
		{`{"feature_negotiation":true,"short_id":"x","long_id":"y","unknown":[1]}`, defaultIdentify},
		{`{"feature_negotiation":true,"heartbeat_interval":0,"output_buffer_size":0,"output_buffer_timeout":0,"sample_rate":0,"msg_timeout":0,"deflate_level":0}`, defaultIdentify},
		{`{"feature_negotiation":true,"output_buffer_size":-1}`, withFields(defaultIdentify, "output_buffer_size", "1", "output_buffer_timeout", "0")},
		{`{"feature_negotiation":true,"output_buffer_size":-1,"output_buffer_timeout":100}`, withFields(defaultIdentify, "output_buffer_size", "1", "output_buffer_timeout", "0")},
		{`{"feature_negotiation":true,"output_buffer_timeout":-1}`, withFields(defaultIdentify, "output_buffer_timeout", "0")},
		{`{"feature_negotiation":true,"heartbeat_interval":-1}`, defaultIdentify},
		{`{"feature_negotiation":true,"deflate_level":9}`, defaultIdentify},
		{`{"feature_negotiation":true,"deflate_level":3}`, withFields(defaultIdentify, "deflate_level", "3")},
		{`{"feature_negotiation":true,"msg_timeout":1000,"sample_rate":99,"output_buffer_size":64,"output_buffer_timeout":25,"heartbeat_interval":60000}`,
			withFields(defaultIdentify, "msg_timeout", "1000", "sample_rate", "99", "output_buffer_size", "64", "output_buffer_timeout", "25")},
		{`{"feature_negotiation":true,"msg_timeout":900000,"output_buffer_size":65536,"output_buffer_timeout":30000,"heartbeat_interval":1000}`,
			withFields(defaultIdentify, "msg_timeout", "900000", "output_buffer_size", "65536", "output_buffer_timeout", "30000")},
		// Asked-for TLS without a certificate is not enabled.
		{`{"feature_negotiation":true,"tls_v1":true}`, defaultIdentify},
	} {
		t.Run(tc.req, func(t *testing.T) {
			c := dialRaw(t, n)
			c.send("IDENTIFY", []byte(tc.req))
			c.expect(frameResponse, tc.want)
			// IDENTIFY may be repeated before SUB; the connection stays usable.
			c.send("IDENTIFY", []byte(`{}`))
			c.expect(frameResponse, "OK")
			c.send("PUB id_t", []byte("x"))
			c.expect(frameResponse, "OK")
		})
	}
}

// The response reports the daemon's flags, and the limits follow them.
func TestV2CustomLimits(t *testing.T) {
	o := testOptions(t)
	o.MaxRdyCount = 100
	o.MaxMsgTimeout = 10 * time.Minute
	o.MsgTimeout = 30 * time.Second
	o.OutputBufferTimeout = 100 * time.Millisecond
	o.MaxHeartbeatInterval = 5 * time.Second
	o.MaxReqTimeout = 2 * time.Second
	o.MaxMsgSize = 10
	o.MaxBodySize = 100
	o.MaxDeflateLevel = 4
	o.TopologyRegion, o.TopologyZone = "r1", "z1"
	n := startNSQD(t, o)

	c := dialRaw(t, n)
	c.send("IDENTIFY", []byte(`{"feature_negotiation":true}`))
	c.expect(frameResponse, withFields(defaultIdentify, "max_rdy_count", "100", "max_msg_timeout", "600000",
		"msg_timeout", "30000", "deflate_level", "4", "max_deflate_level", "4", "output_buffer_timeout", "100",
		"topology_region", `"r1"`, "topology_zone", `"z1"`))

	ident := func(js string) []byte { return cmd("IDENTIFY", sized(js)) }
	runFatal(t, n, []fatalCase{
		{name: "RDY over max", wire: cmd("SUB t c\nRDY 101"), before: []string{"OK"}, want: "E_INVALID RDY count 101 out of range 0-100"},
		{name: "heartbeat over max", wire: ident(`{"heartbeat_interval":5001}`), want: "E_BAD_BODY IDENTIFY heartbeat interval (5001) is invalid"},
		{name: "msg timeout over max", wire: ident(`{"msg_timeout":600001}`), want: "E_BAD_BODY IDENTIFY msg timeout (600001) is invalid"},
		{name: "DPUB over max", wire: cmd("DPUB t 2001"), want: "E_INVALID DPUB timeout 2001 out of range 0-2000"},
		{name: "PUB over max size", wire: cmd("PUB t", be32(11)), want: "E_BAD_MESSAGE PUB message too big 11 > 10"},
		{name: "IDENTIFY over max body", wire: cmd("IDENTIFY", be32(101)), want: "E_BAD_BODY IDENTIFY body too big 101 > 100"},
		{name: "MPUB over max body", wire: cmd("MPUB t", be32(101)), want: "E_BAD_BODY MPUB body too big 101 > 100"},
		{name: "MPUB count over limit", wire: cmd("MPUB t", be32(100), be32(20)), want: "E_BAD_BODY MPUB invalid message count 20"},
		{name: "MPUB message over max", wire: cmd("MPUB t", be32(100), be32(19), be32(11)), want: "E_BAD_MESSAGE MPUB message too big 11 > 10"},
	}, false)

	c = subscribe(t, n, "lim", "c", `{"heartbeat_interval":5000,"msg_timeout":600000}`)
	c.send("RDY 100")
	c.send("NOP")
	c.expectNothing(50 * time.Millisecond)
}

// IDENTIFY with deflate or snappy upgrades the connection after the JSON
// response; each upgrade is confirmed by an OK in the new encoding.
func TestV2IdentifyCompression(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	for _, tc := range []struct {
		name, req, want string
		wrap            func(c *rawConn) (io.Reader, io.Writer, func() error)
	}{
		{"deflate", `{"feature_negotiation":true,"deflate":true,"deflate_level":9}`,
			withFields(defaultIdentify, "deflate", "true", "deflate_level", "6"),
			func(c *rawConn) (io.Reader, io.Writer, func() error) {
				w, _ := flate.NewWriter(c.Conn, 6)
				return flate.NewReader(c.r), w, w.Flush
			}},
		{"snappy", `{"feature_negotiation":true,"snappy":true}`,
			withFields(defaultIdentify, "snappy", "true"),
			func(c *rawConn) (io.Reader, io.Writer, func() error) {
				w := snappy.NewBufferedWriter(c.Conn)
				return snappy.NewReader(c.r), w, w.Flush
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, n)
			c.send("IDENTIFY", []byte(tc.req))
			c.expect(frameResponse, tc.want)
			r, w, flush := tc.wrap(c)
			expectFrom := func(wantType int32, want string) {
				t.Helper()
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				for {
					ft, data, err := readFrameFrom(r)
					if err != nil {
						t.Fatalf("read %s frame: %v", tc.name, err)
					}
					if isHeartbeat(ft, data) {
						continue
					}
					if ft != wantType || string(data) != want {
						t.Fatalf("%s frame = %d %q, want %d %q", tc.name, ft, data, wantType, want)
					}
					return
				}
			}
			expectFrom(frameResponse, "OK")
			w.Write(cmd("PUB z", sized("x")))
			flush()
			expectFrom(frameResponse, "OK")
		})
	}
}

// With --auth-http-address every PUB, MPUB, DPUB and SUB needs a successful
// AUTH (https://nsq.io/components/nsqd.html#auth).
func TestV2AuthEnabled(t *testing.T) {
	var mu sync.Mutex
	var lastQuery url.Values
	var lastAccept string
	good := `{"ttl":3600,"identity":"alice","identity_url":"http://id/alice","authorizations":[{"topic":"^auth.*","channels":[".*"],"permissions":["subscribe","publish"]}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastQuery, lastAccept = r.URL.Query(), r.Header.Get("Accept")
		mu.Unlock()
		if r.URL.Path != "/auth" {
			http.NotFound(w, r)
			return
		}
		switch r.URL.Query().Get("secret") {
		case "good":
			io.WriteString(w, good)
		case "none":
			io.WriteString(w, `{"ttl":3600,"identity":"bob","authorizations":[]}`)
		case "ttl0":
			io.WriteString(w, strings.Replace(good, `"ttl":3600`, `"ttl":0`, 1))
		default:
			http.Error(w, "no", http.StatusForbidden)
		}
	}))
	t.Cleanup(srv.Close)
	o := testOptions(t)
	o.AuthHTTPAddresses = []string{srv.Listener.Addr().String()}
	n := startNSQD(t, o)

	t.Run("IDENTIFY reports auth_required", func(t *testing.T) {
		c := dialRaw(t, n)
		c.send("IDENTIFY", []byte(`{"feature_negotiation":true}`))
		c.expect(frameResponse, withFields(defaultIdentify, "auth_required", "true"))
	})
	t.Run("AUTH then PUB and SUB", func(t *testing.T) {
		c := dialRaw(t, n)
		c.send("AUTH", []byte("good"))
		c.expect(frameResponse, `{"identity":"alice","identity_url":"http://id/alice","permission_count":1}`)
		mu.Lock()
		q, accept := lastQuery, lastAccept
		mu.Unlock()
		if q.Get("secret") != "good" || q.Get("remote_ip") != "127.0.0.1" || q.Get("tls") != "false" || !q.Has("common_name") {
			t.Errorf("auth server query = %v, want secret=good remote_ip=127.0.0.1 tls=false common_name=", q)
		}
		if accept != "application/vnd.nsq; version=1.0" {
			t.Errorf("auth server Accept = %q", accept)
		}
		c.send("PUB auth_t", []byte("x"))
		c.expect(frameResponse, "OK")
		c.write(cmd("MPUB auth_t", mpubBody("a", "b")))
		c.expect(frameResponse, "OK")
		c.send("DPUB auth_t 0", []byte("x"))
		c.expect(frameResponse, "OK")
		c.send("SUB auth_t c")
		c.expect(frameResponse, "OK")
	})

	authGood := cmd("AUTH", sized("good"))
	authResp := []string{`{"identity":"alice","identity_url":"http://id/alice","permission_count":1}`}
	runFatal(t, n, []fatalCase{
		{name: "PUB before AUTH", wire: cmd("PUB auth_t", sized("x")), want: "E_AUTH_FIRST AUTH required before PUB"},
		{name: "MPUB before AUTH", wire: cmd("MPUB auth_t"), want: "E_AUTH_FIRST AUTH required before MPUB"},
		{name: "DPUB before AUTH", wire: cmd("DPUB auth_t 0", sized("x")), want: "E_AUTH_FIRST AUTH required before DPUB"},
		{name: "SUB before AUTH", wire: cmd("SUB auth_t c"), want: "E_AUTH_FIRST AUTH required before SUB"},
		{name: "AUTH twice", wire: cat(authGood, authGood), before: authResp, want: "E_INVALID AUTH already set"},
		{name: "PUB not permitted", wire: cat(authGood, cmd("PUB other", sized("x"))), before: authResp, want: `E_UNAUTHORIZED AUTH failed for PUB on "other" ""`},
		{name: "SUB not permitted", wire: cat(authGood, cmd("SUB other c")), before: authResp, want: `E_UNAUTHORIZED AUTH failed for SUB on "other" "c"`},
		{name: "rejected", wire: cmd("AUTH", sized("bad")), want: "E_AUTH_FAILED AUTH failed"},
		{name: "ttl 0", wire: cmd("AUTH", sized("ttl0")), want: "E_AUTH_FAILED AUTH failed"},
		{name: "no authorizations", wire: cmd("AUTH", sized("none")), want: "E_UNAUTHORIZED AUTH no authorizations found"},
	}, true)
}

// Valid names and ignored extra parameters are accepted.
func TestV2Accepted(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	for _, name := range []string{"a-b_c.d", ".", "..", strings.Repeat("a", 64), strings.Repeat("a", 54) + "#ephemeral", "Z9"} {
		c := dialRaw(t, n)
		c.send("PUB "+name, []byte("x"))
		c.expect(frameResponse, "OK")
		c.send("SUB " + name + " " + name + " extra params")
		c.expect(frameResponse, "OK")
		c.send("NOP extra")
		c.send("RDY 0")
		c.send("RDY 2500")
		if m := c.readMsg(5 * time.Second); m.body != "x" {
			t.Errorf("%s: got %q", name, m.body)
		}
		c.Close()
	}
}

// Line endings: a single \r before \n is stripped.
func TestV2CRLF(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	c := dialRaw(t, n)
	c.write([]byte("IDENTIFY\r\n"))
	c.write(sized(`{}`))
	c.expect(frameResponse, "OK")
	c.write([]byte("PUB crlf\r\n"))
	c.write(sized("m"))
	c.expect(frameResponse, "OK")
	c.write([]byte("SUB crlf c\r\nRDY 1\r\n"))
	c.expect(frameResponse, "OK")
	m := c.readMsg(5 * time.Second)
	c.write([]byte("FIN " + m.id + "\r\nNOP\r\nPUB crlf_other\r\n"))
	c.write(sized("x"))
	c.expect(frameResponse, "OK")
}

// Failed FIN, REQ and TOUCH are reported but leave the connection usable.
func TestV2NonFatalErrors(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	const id = "0123456789abcdef"
	c := subscribe(t, n, "nf", "c", "")
	c.send("FIN " + id)
	c.expect(frameError, "E_FIN_FAILED FIN "+id+" failed ID not in flight")
	c.send("REQ " + id + " 0")
	c.expect(frameError, "E_REQ_FAILED REQ "+id+" failed ID not in flight")
	c.send("TOUCH " + id)
	c.expect(frameError, "E_TOUCH_FAILED TOUCH "+id+" failed ID not in flight")
	c.send("NOP")
	c.send("PUB nf_other", []byte("x"))
	c.expect(frameResponse, "OK")

	// Still a working consumer; a second FIN or REQ of the same ID fails.
	// (Each time, nothing else is deliverable before the error frame.)
	c.send("RDY 1")
	publish(t, n, "nf", "m1")
	m1 := c.readMsg(5 * time.Second)
	c.send("FIN " + m1.id)
	c.send("FIN " + m1.id)
	c.expect(frameError, "E_FIN_FAILED FIN "+m1.id+" failed ID not in flight")
	publish(t, n, "nf", "m2")
	m2 := c.readMsg(5 * time.Second)
	if m1.body != "m1" || m2.body != "m2" {
		t.Errorf("bodies %q %q, want m1 m2", m1.body, m2.body)
	}
	c.send("TOUCH " + m2.id)
	c.send("REQ " + m2.id + " 300")
	c.send("REQ " + m2.id + " 0")
	c.expect(frameError, "E_REQ_FAILED REQ "+m2.id+" failed ID not in flight")
	if again := c.readMsg(5 * time.Second); again.id != m2.id || again.attempts != 2 {
		t.Errorf("after REQ got %+v, want %s with attempts 2", again, m2.id)
	}
}

// A message in flight to one consumer cannot be finished by another.
func TestV2NotOwner(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	a := subscribe(t, n, "own", "c", "")
	b := subscribe(t, n, "own", "c", "")
	a.send("RDY 1")
	publish(t, n, "own", "m")
	m := a.readMsg(5 * time.Second)

	b.send("FIN " + m.id)
	b.expect(frameError, "E_FIN_FAILED FIN "+m.id+" failed client does not own message")
	b.send("REQ " + m.id + " 0")
	b.expect(frameError, "E_REQ_FAILED REQ "+m.id+" failed client does not own message")
	b.send("TOUCH " + m.id)
	b.expect(frameError, "E_TOUCH_FAILED TOUCH "+m.id+" failed client does not own message")
	b.send("PUB own_other", []byte("x"))
	b.expect(frameResponse, "OK")

	a.send("FIN " + m.id)
	a.send("PUB own_other", []byte("x"))
	a.expect(frameResponse, "OK") // no error for the owner's FIN
	b.send("FIN " + m.id)
	b.expect(frameError, "E_FIN_FAILED FIN "+m.id+" failed ID not in flight")
}

// CLS answers CLOSE_WAIT, stops deliveries, ignores RDY and keeps FIN working.
func TestV2CLS(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	c := subscribe(t, n, "cls", "c", "")
	c.send("RDY 1")
	publish(t, n, "cls", "m1")
	m1 := c.readMsg(5 * time.Second)
	c.send("CLS")
	c.expect(frameResponse, "CLOSE_WAIT")
	publish(t, n, "cls", "m2")
	c.send("RDY 5")
	c.send("FIN " + m1.id)
	c.expectNothing(300 * time.Millisecond)
	c.send("PUB cls_other", []byte("x"))
	c.expect(frameResponse, "OK")
	cs := channelStats(t, n, "cls", "c")
	if len(cs.Clients) != 1 {
		t.Fatalf("clients = %+v, want 1", cs.Clients)
	}
	if cl := cs.Clients[0]; cl.State != 4 || cl.ReadyCount != 0 || cl.FinishCount != 1 || cl.InFlightCount != 0 {
		t.Errorf("client after CLS: state %d ready %d finished %d in flight %d, want 4 0 1 0", cl.State, cl.ReadyCount, cl.FinishCount, cl.InFlightCount)
	}
	if cs.Depth != 1 {
		t.Errorf("channel depth = %d, want 1 (m2 not delivered)", cs.Depth)
	}
}

var lowerHexID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// Message frames: timestamp, attempts, IDs.
func TestV2MessageFrames(t *testing.T) {
	o := testOptions(t)
	o.ID = 7
	n := startNSQD(t, o)
	c1 := subscribe(t, n, "ids", "c1", "")
	c2 := subscribe(t, n, "ids", "c2", "")

	var bodies []string
	for i := range 51 {
		bodies = append(bodies, fmt.Sprintf("m%d", i))
	}
	before := time.Now().UnixNano()
	p := dialRaw(t, n)
	p.send("PUB ids", []byte(bodies[0]))
	p.expect(frameResponse, "OK")
	p.write(cmd("MPUB ids", mpubBody(bodies[1:50]...)))
	p.expect(frameResponse, "OK")
	p.send("DPUB ids 0", []byte(bodies[50]))
	p.expect(frameResponse, "OK")
	after := time.Now().UnixNano()

	recv := func(c *rawConn) map[string]wireMsg {
		c.send("RDY 100")
		got := make(map[string]wireMsg)
		for range bodies {
			m := c.readMsg(5 * time.Second)
			got[m.body] = m
		}
		return got
	}
	got1, got2 := recv(c1), recv(c2)
	prev := ""
	for _, b := range bodies {
		m, ok := got1[b]
		if !ok {
			t.Fatalf("message %q not received", b)
		}
		if m.attempts != 1 {
			t.Errorf("%s attempts = %d, want 1", b, m.attempts)
		}
		if m.ts < before || m.ts > after {
			t.Errorf("%s timestamp %d not within publish [%d, %d]", b, m.ts, before, after)
		}
		if !lowerHexID.MatchString(m.id) {
			t.Errorf("%s id %q is not 16 lower-case hex digits", b, m.id)
		}
		if m.id <= prev {
			t.Errorf("%s id %s not after the previous %s", b, m.id, prev)
		}
		prev = m.id
		if m2 := got2[b]; m2.id != m.id || m2.ts != m.ts || m2.attempts != 1 {
			t.Errorf("%s in channel c2 = %+v, want the same id and timestamp as c1's %+v", b, m2, m)
		}
		v, _ := strconv.ParseUint(m.id, 16, 64)
		if node := (v >> 12) & 1023; node != 7 {
			t.Errorf("%s id %s has node %d, want 7", b, m.id, node)
		}
		if ms, want := int64(v>>22)+1288834974288, m.ts>>20; ms < want-1000 || ms > want+1000 {
			t.Errorf("%s id %s time part %d, want about %d", b, m.id, ms, want)
		}
	}

	first := got1[bodies[0]]
	c1.send("REQ " + first.id + " 0")
	again := c1.readMsg(5 * time.Second)
	if again.id != first.id || again.attempts != 2 || again.ts != first.ts || again.body != first.body {
		t.Errorf("after REQ 0 got %+v, want %+v with attempts 2", again, first)
	}
}

func TestV2RDY(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	t.Run("ceiling", func(t *testing.T) {
		t.Parallel()
		c := subscribe(t, n, "rdy1", "c", "")
		publish(t, n, "rdy1", "a", "b", "c", "d", "e")
		c.send("RDY 2")
		m1 := c.readMsg(5 * time.Second)
		c.readMsg(5 * time.Second)
		c.expectNothing(300 * time.Millisecond)
		c.send("FIN " + m1.id)
		c.readMsg(5 * time.Second)
		c.expectNothing(300 * time.Millisecond)
		if cs := channelStats(t, n, "rdy1", "c"); cs.InFlightCount != 2 || cs.Depth != 2 || cs.Clients[0].ReadyCount != 2 {
			t.Errorf("in flight %d depth %d ready %d, want 2 2 2", cs.InFlightCount, cs.Depth, cs.Clients[0].ReadyCount)
		}
	})
	t.Run("bare RDY means 1", func(t *testing.T) {
		t.Parallel()
		c := subscribe(t, n, "rdy2", "c", "")
		publish(t, n, "rdy2", "a", "b")
		c.send("RDY")
		m := c.readMsg(5 * time.Second)
		c.expectNothing(300 * time.Millisecond)
		c.send("FIN " + m.id)
		c.readMsg(5 * time.Second)
	})
	t.Run("RDY 0 stops", func(t *testing.T) {
		t.Parallel()
		c := subscribe(t, n, "rdy3", "c", "")
		publish(t, n, "rdy3", "a", "b")
		c.send("RDY 1")
		m := c.readMsg(5 * time.Second)
		c.send("RDY 0")
		c.send("FIN " + m.id)
		c.expectNothing(300 * time.Millisecond)
		c.send("RDY 2500")
		c.readMsg(5 * time.Second)
	})
	t.Run("two consumers share", func(t *testing.T) {
		t.Parallel()
		a := subscribe(t, n, "rdy4", "c", "")
		b := subscribe(t, n, "rdy4", "c", "")
		a.send("RDY 5")
		b.send("RDY 5")
		p := dialRaw(t, n)
		p.write(cmd("MPUB rdy4", mpubBody("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")))
		p.expect(frameResponse, "OK")
		seen := make(map[string]bool)
		for _, c := range []*rawConn{a, b} {
			for range 5 {
				m := c.readMsg(5 * time.Second)
				if seen[m.body] {
					t.Errorf("message %q delivered twice", m.body)
				}
				seen[m.body] = true
			}
		}
		a.expectNothing(200 * time.Millisecond)
		b.expectNothing(100 * time.Millisecond)
	})
}

// Timers: requeue delays, message timeouts, TOUCH, deferred publishes and
// heartbeats. Each subtest owns a daemon and runs in parallel.
func TestV2Timers(t *testing.T) {
	t.Run("REQ delay", func(t *testing.T) {
		t.Parallel()
		n := startNSQD(t, testOptions(t))
		c := subscribe(t, n, "req", "c", "")
		c.send("RDY 1")
		publish(t, n, "req", "m")
		m := c.readMsg(5 * time.Second)
		start := time.Now()
		c.send("REQ " + m.id + " 500")
		c.expectNothing(300 * time.Millisecond)
		again := c.readMsg(5 * time.Second)
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Errorf("redelivered %v after REQ with 500 ms", d)
		}
		if again.id != m.id || again.attempts != 2 {
			t.Errorf("redelivered %+v, want %s with attempts 2", again, m.id)
		}
		if cs := channelStats(t, n, "req", "c"); cs.RequeueCount != 1 || cs.Clients[0].RequeueCount != 1 {
			t.Errorf("requeue counts channel %d client %d, want 1 1", cs.RequeueCount, cs.Clients[0].RequeueCount)
		}
	})
	t.Run("REQ clamped to max-req-timeout", func(t *testing.T) {
		t.Parallel()
		o := testOptions(t)
		o.MaxReqTimeout = time.Second
		n := startNSQD(t, o)
		c := subscribe(t, n, "reqmax", "c", "")
		c.send("RDY 1")
		publish(t, n, "reqmax", "m")
		m := c.readMsg(5 * time.Second)
		start := time.Now()
		c.send("REQ " + m.id + " 3600000")
		again := c.readMsg(5 * time.Second)
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("redelivered %v after REQ clamped to 1 s", d)
		}
		if again.attempts != 2 {
			t.Errorf("attempts = %d, want 2", again.attempts)
		}
	})
	t.Run("msg_timeout", func(t *testing.T) {
		t.Parallel()
		n := startNSQD(t, testOptions(t))
		c := subscribe(t, n, "mto", "c", `{"msg_timeout":1000}`)
		c.send("RDY 1")
		publish(t, n, "mto", "m")
		m := c.readMsg(5 * time.Second)
		start := time.Now()
		c.expectNothing(700 * time.Millisecond)
		again := c.readMsg(7 * time.Second)
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("timed out after %v, want about 1 s", d)
		}
		if again.id != m.id || again.attempts != 2 || again.ts != m.ts {
			t.Errorf("redelivered %+v, want %+v with attempts 2", again, m)
		}
		if cs := httpChannelStats(t, n, "mto", "c"); cs.TimeoutCount != 1 {
			t.Errorf("/stats timeout_count = %d, want 1", cs.TimeoutCount)
		}
		c.send("FIN " + again.id)
		c.send("PUB mto_other", []byte("x"))
		c.expect(frameResponse, "OK")
	})
	t.Run("TOUCH extends", func(t *testing.T) {
		t.Parallel()
		n := startNSQD(t, testOptions(t))
		c := subscribe(t, n, "touch", "c", `{"msg_timeout":1000}`)
		c.send("RDY 1")
		publish(t, n, "touch", "m")
		m := c.readMsg(5 * time.Second)
		c.expectNothing(700 * time.Millisecond)
		touched := time.Now()
		c.send("TOUCH " + m.id)
		c.expectNothing(700 * time.Millisecond) // past the untouched deadline
		again := c.readMsg(7 * time.Second)
		if d := time.Since(touched); d < 900*time.Millisecond {
			t.Errorf("redelivered %v after TOUCH with msg_timeout 1 s", d)
		}
		if again.attempts != 2 {
			t.Errorf("attempts = %d, want 2", again.attempts)
		}
	})
	t.Run("TOUCH capped at max-msg-timeout", func(t *testing.T) {
		t.Parallel()
		o := testOptions(t)
		o.MaxMsgTimeout = 2 * time.Second
		n := startNSQD(t, o)
		c := subscribe(t, n, "touchmax", "c", `{"msg_timeout":1000}`)
		c.send("RDY 1")
		publish(t, n, "touchmax", "m")
		m := c.readMsg(5 * time.Second)
		start := time.Now()
		// TOUCH every 400 ms: uncapped, the message would never time out.
		for {
			if time.Since(start) > 5*time.Second {
				t.Fatal("message never timed out despite --max-msg-timeout 2s")
			}
			c.send("TOUCH " + m.id)
			ft, data, err := c.nextFrame(time.Now().Add(400 * time.Millisecond))
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if ft == frameError && strings.HasPrefix(string(data), "E_TOUCH_FAILED") {
				continue // raced with the timeout
			}
			if ft == frameMessage {
				break
			}
			if !isHeartbeat(ft, data) {
				t.Fatalf("unexpected frame %d %q", ft, data)
			}
		}
		if d := time.Since(start); d < 1800*time.Millisecond {
			t.Errorf("timed out after %v, want about 2 s", d)
		}
	})
	t.Run("DPUB", func(t *testing.T) {
		t.Parallel()
		n := startNSQD(t, testOptions(t))
		c := subscribe(t, n, "dpub", "c", "")
		c.send("RDY 1")
		p := dialRaw(t, n)
		start := time.Now()
		p.send("DPUB dpub 500", []byte("later"))
		p.expect(frameResponse, "OK")
		eventually(t, time.Second, func() bool { return channelStats(t, n, "dpub", "c").DeferredCount == 1 }, "deferred_count 1")
		c.expectNothing(300 * time.Millisecond)
		m := c.readMsg(5 * time.Second)
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Errorf("DPUB 500 delivered after %v", d)
		}
		if m.body != "later" || m.attempts != 1 {
			t.Errorf("got %+v, want body later attempts 1", m)
		}
		c.send("FIN " + m.id)
		p.send("DPUB dpub 0", []byte("now"))
		p.expect(frameResponse, "OK")
		if m := c.readMsg(time.Second); m.body != "now" {
			t.Errorf("DPUB 0 delivered %q", m.body)
		}
	})
	t.Run("heartbeat then idle close", func(t *testing.T) {
		t.Parallel()
		n := startNSQD(t, testOptions(t))
		c := dialRaw(t, n)
		start := time.Now()
		c.send("IDENTIFY", []byte(`{"heartbeat_interval":1000}`))
		if ft, data, err := c.nextFrame(start.Add(5 * time.Second)); err != nil || ft != frameResponse || string(data) != "OK" {
			t.Fatalf("IDENTIFY reply %d %q %v", ft, data, err)
		}
		var beats []time.Duration
		for {
			ft, data, err := c.nextFrame(start.Add(6 * time.Second))
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %v (heartbeats at %v): %v, want the server to close at about 2 s", time.Since(start), beats, err)
			}
			if !isHeartbeat(ft, data) {
				t.Fatalf("frame %d %q, want heartbeats only", ft, data)
			}
			beats = append(beats, time.Since(start))
		}
		closed := time.Since(start)
		if len(beats) == 0 || beats[0] < 800*time.Millisecond || beats[0] > 1800*time.Millisecond {
			t.Errorf("heartbeats at %v, want the first at about 1 s", beats)
		}
		if closed < 1800*time.Millisecond || closed > 3500*time.Millisecond {
			t.Errorf("closed after %v, want about 2 s", closed)
		}
	})
	t.Run("heartbeats answered with NOP", func(t *testing.T) {
		t.Parallel()
		n := startNSQD(t, testOptions(t))
		c := subscribe(t, n, "hb", "c", `{"heartbeat_interval":1000}`)
		start := time.Now()
		for beats := 0; beats < 3; {
			ft, data, err := c.nextFrame(start.Add(5 * time.Second))
			if err != nil {
				t.Fatalf("after %d heartbeats: %v", beats, err)
			}
			if !isHeartbeat(ft, data) {
				t.Fatalf("frame %d %q, want a heartbeat", ft, data)
			}
			beats++
			c.send("NOP")
		}
		if d := time.Since(start); d < 2500*time.Millisecond {
			t.Errorf("3 heartbeats in %v at 1 s intervals", d)
		}
		c.send("PUB hb_other", []byte("x"))
		c.expect(frameResponse, "OK")
	})
}

// When a consumer disconnects its in-flight messages are requeued at once
// (NSQ waits for their timeout; this is our deliberate improvement).
func TestV2DisconnectRequeuesInFlight(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	a := subscribe(t, n, "disc", "c", "")
	b := subscribe(t, n, "disc", "c", "")
	a.send("RDY 2")
	publish(t, n, "disc", "m1", "m2")
	got := map[string]bool{a.readMsg(5 * time.Second).body: true, a.readMsg(5 * time.Second).body: true}
	b.send("RDY 2")
	b.expectNothing(100 * time.Millisecond)
	a.Close()
	for range 2 {
		m := b.readMsg(3 * time.Second) // msg_timeout is 60 s
		if !got[m.body] || m.attempts != 2 {
			t.Errorf("redelivered %+v, want one of %v with attempts 2", m, got)
		}
	}
}

// A client silent for two heartbeat intervals is dropped; one that keeps
// sending, even commands split across packets, is not.
func TestReadDeadlineTwoHeartbeats(t *testing.T) {
	n := startNSQD(t, testOptions(t))
	silent, busy := dialRaw(t, n), dialRaw(t, n)
	for _, c := range []*rawConn{silent, busy} {
		c.send("IDENTIFY", []byte(`{"heartbeat_interval":1000}`))
		c.expect(frameResponse, "OK")
	}
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		silent.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, _, err := readFrameFrom(silent.r); err != nil {
				closed <- time.Since(start)
				return
			}
		}
	}()
	for time.Since(start) < 3*time.Second {
		busy.write([]byte("NO"))
		time.Sleep(150 * time.Millisecond)
		busy.write([]byte("P\n"))
		time.Sleep(150 * time.Millisecond)
	}
	select {
	case d := <-closed:
		if d < 2*time.Second-time.Second/16-100*time.Millisecond {
			t.Errorf("silent client dropped after %v, want about 2 heartbeats (2 s)", d)
		}
	default:
		t.Fatal("silent client not dropped after 3 s (2 heartbeats = 2 s)")
	}
	busy.send("PUB t", []byte("still here"))
	busy.expect(frameResponse, "OK")
}

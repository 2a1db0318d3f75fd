package nsqlookupd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
)

// The V1 lookup protocol, spoken by nsqd to nsqlookupd after the magic
// "  V1": one command per line (trimmed of surrounding white space, split on
// single spaces), IDENTIFY followed by a [4-byte size][JSON] body. Every
// response, errors included, is [4-byte big-endian size][payload] with no
// frame type. Every error is fatal: it is sent and the connection closed.
const (
	// maxLineLength is the longest command line kept. The longest valid one,
	// "UNREGISTER <64-byte topic> <64-byte channel>", is 141 bytes; the rest of
	// a longer line is read and dropped, so it answers as NSQ would, except
	// that a name echoed in an error is cut short. NSQ buffers any line whole.
	maxLineLength = 1024
	// maxIdentifyBodySize bounds the IDENTIFY body (nsqd sends ~200 bytes).
	// NSQ allocates whatever int32 it is sent and crashes on a negative one;
	// this is nsqd's default --max-body-size, with nsqd's IDENTIFY error texts.
	maxIdentifyBodySize = 5 * 1024 * 1024
)

var okResponse = []byte("OK")

// lookupConn is the state of one V1 connection; one goroutine runs it.
type lookupConn struct {
	db       *registrationDB
	identity []byte // the IDENTIFY response, the same for every peer
	id       string // the connection's remote ip:port
	r        *bufio.Reader
	w        io.Writer
	log      *slog.Logger

	peer   *peer // nil until IDENTIFY
	params [][]byte
	line   []byte // a long line's kept prefix
	out    []byte // response frame being written
}

func (l *NSQLookupd) newLookupConn(id string, r io.Reader, w io.Writer) *lookupConn {
	return &lookupConn{
		db:       l.db,
		identity: l.identifyResponse,
		id:       id,
		r:        bufio.NewReaderSize(r, maxLineLength),
		w:        w,
		log:      l.logger.With("client", id),
	}
}

// serve runs commands until the reader ends or a command fails, then drops
// every registration of the peer. It returns the reason the loop stopped:
// io.EOF or a read error, a write error, or the *protocol.Error it sent.
func (c *lookupConn) serve() error {
	defer c.cleanup()
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		resp, err := c.exec(line)
		if err != nil {
			var perr *protocol.Error
			if errors.As(err, &perr) {
				if perr.Err != nil {
					c.log.Warn("PROTOCOL(V1): command failed", "err", perr.Error(), "cause", perr.Err)
				} else {
					c.log.Warn("PROTOCOL(V1): command failed", "err", perr.Error())
				}
				if werr := c.write([]byte(perr.Error())); werr != nil {
					return werr
				}
			}
			return err
		}
		if err := c.write(resp); err != nil {
			return err
		}
	}
}

// readLine returns the next line, at most maxLineLength bytes of it. The
// result aliases a buffer that the next read overwrites.
func (c *lookupConn) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	c.line = append(c.line[:0], line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = c.r.ReadSlice('\n')
	}
	return c.line, err
}

// write sends one response.
func (c *lookupConn) write(payload []byte) error {
	c.out = appendResponse(c.out[:0], payload)
	_, err := c.w.Write(c.out)
	return err
}

// appendResponse appends a V1 response, [4-byte big-endian size][payload], to b.
func appendResponse(b, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// cleanup removes the peer's registrations once its connection is gone.
func (c *lookupConn) cleanup() {
	if c.peer == nil {
		return
	}
	topics, channels := c.db.removePeer(c.peer)
	c.log.Info("DB: client gone, registrations removed", "topics", topics, "channels", channels)
}

// exec runs one command line and returns the response payload.
func (c *lookupConn) exec(line []byte) ([]byte, error) {
	c.params = protocol.SplitParams(bytes.TrimSpace(line), c.params)
	cmd, params := c.params[0], c.params[1:]
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("PROTOCOL(V1): command", "cmd", string(cmd))
	}
	switch string(cmd) {
	case "PING":
		return c.ping()
	case "IDENTIFY":
		return c.identify()
	case "REGISTER":
		return c.register(params)
	case "UNREGISTER":
		return c.unregister(params)
	}
	return nil, protocol.Fatal("E_INVALID", "invalid command "+string(cmd))
}

// ping records that an identified peer is alive; before IDENTIFY it only
// answers.
func (c *lookupConn) ping() ([]byte, error) {
	if c.peer != nil {
		c.peer.touch(time.Now())
	}
	return okResponse, nil
}

// identify reads the peer's JSON description and registers the peer.
func (c *lookupConn) identify() ([]byte, error) {
	if c.peer != nil {
		return nil, protocol.Fatal("E_INVALID", "cannot IDENTIFY again")
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, &protocol.Error{Code: "E_BAD_BODY", Desc: "IDENTIFY failed to read body size", Fatal: true, Err: err}
	}
	size := int32(binary.BigEndian.Uint32(hdr[:]))
	if size < 0 {
		return nil, protocol.Fatal("E_BAD_BODY", fmt.Sprintf("IDENTIFY invalid body size %d", size))
	}
	if size > maxIdentifyBodySize {
		return nil, protocol.Fatal("E_BAD_BODY", fmt.Sprintf("IDENTIFY body too big %d > %d", size, maxIdentifyBodySize))
	}
	// Read through a LimitReader so that memory grows with what arrives,
	// not with what the size claims.
	body, err := io.ReadAll(io.LimitReader(c.r, int64(size)))
	if err == nil && len(body) < int(size) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, &protocol.Error{Code: "E_BAD_BODY", Desc: "IDENTIFY failed to read body", Fatal: true, Err: err}
	}
	var info peerInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, &protocol.Error{Code: "E_BAD_BODY", Desc: "IDENTIFY failed to decode JSON body", Fatal: true, Err: err}
	}
	if info.BroadcastAddress == "" || info.TCPPort == 0 || info.HTTPPort == 0 || info.Version == "" {
		return nil, protocol.Fatal("E_BAD_BODY", "IDENTIFY missing fields")
	}
	info.RemoteAddress = c.id // never what the peer claims
	c.peer = newPeer(c.id, info, time.Now())
	c.db.addPeer(c.peer)
	c.log.Info("CLIENT: IDENTIFY", "broadcast_address", info.BroadcastAddress,
		"tcp_port", info.TCPPort, "http_port", info.HTTPPort, "version", info.Version)
	return c.identity, nil
}

// register adds the peer to a topic and optionally one of its channels.
func (c *lookupConn) register(params [][]byte) ([]byte, error) {
	if c.peer == nil {
		return nil, protocol.Fatal("E_INVALID", "client must IDENTIFY")
	}
	topic, channel, err := topicChannel("REGISTER", params)
	if err != nil {
		return nil, err
	}
	if c.db.register(c.peer, topic, channel) {
		if channel == "" {
			c.log.Info("DB: REGISTER", "topic", topic)
		} else {
			c.log.Info("DB: REGISTER", "topic", topic, "channel", channel)
		}
	}
	return okResponse, nil
}

// unregister removes the peer from a channel, or from a topic and all its
// channels.
func (c *lookupConn) unregister(params [][]byte) ([]byte, error) {
	if c.peer == nil {
		return nil, protocol.Fatal("E_INVALID", "client must IDENTIFY")
	}
	topic, channel, err := topicChannel("UNREGISTER", params)
	if err != nil {
		return nil, err
	}
	if channel != "" {
		if c.db.unregisterChannel(c.peer, topic, channel) {
			c.log.Info("DB: UNREGISTER", "topic", topic, "channel", channel)
		}
		return okResponse, nil
	}
	channels, removed := c.db.unregisterTopic(c.peer, topic)
	if len(channels) > 0 {
		// nsqd unregisters its channels before the topic.
		c.log.Warn("DB: unexpected UNREGISTER of channels with their topic", "topic", topic, "channels", channels)
	}
	if removed {
		c.log.Info("DB: UNREGISTER", "topic", topic)
	}
	return okResponse, nil
}

// topicChannel validates REGISTER/UNREGISTER parameters: a topic and an
// optional channel (an empty second parameter means none; more are ignored).
func topicChannel(cmd string, params [][]byte) (topic, channel string, err error) {
	if len(params) == 0 {
		return "", "", protocol.Fatal("E_INVALID", cmd+" insufficient number of params")
	}
	topic = string(params[0])
	if len(params) > 1 {
		channel = string(params[1])
	}
	if !protocol.IsValidTopicName(topic) {
		return "", "", protocol.Fatal("E_BAD_TOPIC", fmt.Sprintf("%s topic name '%s' is not valid", cmd, topic))
	}
	if channel != "" && !protocol.IsValidChannelName(channel) {
		return "", "", protocol.Fatal("E_BAD_CHANNEL", fmt.Sprintf("%s channel name '%s' is not valid", cmd, channel))
	}
	return topic, channel, nil
}

package nsqd

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
	"github.com/nsqclone/nsq/internal/version"
)

func sample() int32 { return int32(rand.IntN(100)) }

// serveV2 runs a connection that sent "  V2": the pump in one goroutine, the
// command loop in another, until the connection ends; then it cleans up.
func (n *NSQD) serveV2(c *client) {
	n.addClient(c)
	c.pumpDone = make(chan struct{})
	go func() { // owned by the command loop: runV2 waits for it at the end
		defer close(c.pumpDone)
		c.pump()
	}()
	n.runV2(c)
}

// errFreshStack asks runV2 to go on with the command loop in a new goroutine.
var errFreshStack = errors.New("continue on a fresh stack")

// runV2 runs the command loop. A goroutine's stack grows to fit its deepest
// call and shrinks again only when less than a quarter of it is in use. The
// rare commands (IDENTIFY, AUTH, SUB) go deep enough to grow the
// command loop's stack to 4 KiB, while a loop blocked in Read uses about
// 1 KiB, just too much for the runtime to give half of it back. So after one
// of them, once its response is flushed, the loop goes on in a new goroutine
// with a small stack: 2 KiB less for every idle consumer connection. The new
// goroutine joins n.connWG before this one leaves it.
func (n *NSQD) runV2(c *client) {
	err := c.commandLoop()
	if err == errFreshStack {
		n.connWG.Go(func() { n.runV2(c) })
		return
	}
	n.endV2(c, err)
}

// endV2 closes the connection, waits for the pump and forgets the client.
//
// Not inlined: its locals stay out of runV2's frame, which a blocked
// command loop keeps on its stack.
//
//go:noinline
func (n *NSQD) endV2(c *client, err error) {
	c.closeConn()
	<-c.pumpDone
	c.cleanup()
	n.removeClient(c)
	n.conns.Delete(c.conn.(*deadlineConn).Conn)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.logger().Debug("PROTOCOL(V2): connection ended", "err", err)
	}
}

// commandLoop reads commands until an error or a fatal protocol error, or
// until it returns errFreshStack (see runV2). Its frame stays small because
// an idle connection keeps it on the stack: the work is in run. Read
// deadlines are deadlineConn's.
func (c *client) commandLoop() error {
	for {
		if c.r.Buffered() == 0 {
			if err := c.flushResponses(); err != nil {
				return err
			}
			if c.growTo > 0 {
				c.resizeReader()
			}
			if c.freshStack {
				c.freshStack = false
				return errFreshStack
			}
		}
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = fmt.Errorf("command line longer than %d bytes", c.r.Size())
			}
			return err
		}
		if err := c.run(line); err != nil {
			return err
		}
	}
}

// run executes one command line and writes its response or error. It
// returns an error only when the connection must end.
// Not inlined, to keep commandLoop's frame small.
//
//go:noinline
func (c *client) run(line []byte) error {
	c.params = protocol.SplitParams(protocol.TrimLine(line), c.params)
	resp, err := c.exec(c.params)
	if err != nil {
		var perr *protocol.Error
		if !errors.As(err, &perr) {
			return err // I/O error
		}
		if c.nsqd.logger.Enabled(context.Background(), slog.LevelDebug) {
			c.logger().Debug("PROTOCOL(V2): command failed", "err", perr.Error())
		}
		if werr := c.writeFrameFlush(protocol.FrameTypeError, []byte(perr.Error())); werr != nil {
			return werr
		}
		if perr.Fatal {
			return err
		}
		return nil
	}
	if resp != nil {
		return c.writeResponse(resp)
	}
	return nil
}

func (c *client) exec(params [][]byte) ([]byte, error) {
	cmd := params[0]
	if c.nsqd.tlsRequiredTCP() && !c.isTLS() && string(cmd) != "IDENTIFY" {
		return nil, protocol.Fatal("E_INVALID", fmt.Sprintf("cannot %s in current state (TLS required)", cmd))
	}
	switch string(cmd) {
	case "FIN":
		c.wantReader(finReadBufferSize)
	case "PUB", "MPUB", "DPUB":
		c.wantReader(activeReadBufferSize)
	case "IDENTIFY", "AUTH", "SUB":
		c.freshStack = true
	}
	switch string(cmd) {
	case "FIN":
		return c.fin(params)
	case "RDY":
		return c.rdyCmd(params)
	case "REQ":
		return c.req(params)
	case "PUB":
		return c.pub(params)
	case "MPUB":
		return c.mpub(params)
	case "DPUB":
		return c.dpub(params)
	case "NOP":
		return nil, nil
	case "TOUCH":
		return c.touchCmd(params)
	case "SUB":
		return c.sub(params)
	case "CLS":
		return c.cls()
	case "AUTH":
		return c.auth(params)
	case "IDENTIFY":
		return c.identify(params)
	}
	return nil, protocol.Fatal("E_INVALID", fmt.Sprintf("invalid command %s", cmd))
}

func (c *client) isTLS() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tlsState != nil
}

// readBody reads a [4-byte size][body] block, checking 0 < size <= max.
// what names the command in errors ("IDENTIFY", "AUTH").
func (c *client) readBody(code, what string, max int64) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(c.r, sz[:]); err != nil {
		return nil, protocol.Fatal(code, what+" failed to read body size")
	}
	size := int32(binary.BigEndian.Uint32(sz[:]))
	if int64(size) > max {
		return nil, protocol.Fatal(code, fmt.Sprintf("%s body too big %d > %d", what, size, max))
	}
	if size <= 0 {
		return nil, protocol.Fatal(code, fmt.Sprintf("%s invalid body size %d", what, size))
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, protocol.Fatal(code, what+" failed to read body")
	}
	return body, nil
}

// identifyRequest is the IDENTIFY body; unknown keys are ignored.
type identifyRequest struct {
	ClientID            string `json:"client_id"`
	Hostname            string `json:"hostname"`
	UserAgent           string `json:"user_agent"`
	FeatureNegotiation  bool   `json:"feature_negotiation"`
	HeartbeatInterval   int    `json:"heartbeat_interval"`
	OutputBufferSize    int    `json:"output_buffer_size"`
	OutputBufferTimeout int    `json:"output_buffer_timeout"`
	TLSv1               bool   `json:"tls_v1"`
	Snappy              bool   `json:"snappy"`
	Deflate             bool   `json:"deflate"`
	DeflateLevel        int    `json:"deflate_level"`
	SampleRate          int32  `json:"sample_rate"`
	MsgTimeout          int    `json:"msg_timeout"`
	TopologyRegion      string `json:"topology_region"`
	TopologyZone        string `json:"topology_zone"`
}

// identifyResponse is the feature-negotiation reply, in NSQ's key order.
type identifyResponse struct {
	MaxRdyCount         int64  `json:"max_rdy_count"`
	Version             string `json:"version"`
	MaxMsgTimeout       int64  `json:"max_msg_timeout"`
	MsgTimeout          int64  `json:"msg_timeout"`
	TLSv1               bool   `json:"tls_v1"`
	Deflate             bool   `json:"deflate"`
	DeflateLevel        int    `json:"deflate_level"`
	MaxDeflateLevel     int    `json:"max_deflate_level"`
	Snappy              bool   `json:"snappy"`
	SampleRate          int32  `json:"sample_rate"`
	AuthRequired        bool   `json:"auth_required"`
	OutputBufferSize    int    `json:"output_buffer_size"`
	OutputBufferTimeout int64  `json:"output_buffer_timeout"`
	TopologyRegion      string `json:"topology_region"`
	TopologyZone        string `json:"topology_zone"`
}

func (c *client) identify(params [][]byte) ([]byte, error) {
	if c.state.Load() != stateInit {
		return nil, protocol.Fatal("E_INVALID", "cannot IDENTIFY in current state")
	}
	body, err := c.readBody("E_BAD_BODY", "IDENTIFY", c.nsqd.opts.MaxBodySize)
	if err != nil {
		return nil, err
	}
	var req identifyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, protocol.Fatal("E_BAD_BODY", "IDENTIFY failed to decode JSON body")
	}
	s, err := c.nsqd.identifySettings(&req)
	if err != nil {
		return nil, err
	}

	c.mu.Lock()
	c.clientID, c.hostname, c.userAgent = req.ClientID, req.Hostname, req.UserAgent
	first := !c.identified
	c.identified = true
	if first {
		c.heartbeatInterval = s.heartbeat
		c.writeTimeout.Store(int64(s.heartbeat))
		c.msgTimeout = s.msgTimeout
		c.outputBufferTO = s.outputBufferTimeout
		c.sampleRate = s.sampleRate
		if r := c.nsqd.repl.Load(); r != nil && req.UserAgent == relayUserAgent {
			c.relay, c.msgTimeout = true, r.relayMsgTimeout()
		}
	}
	c.outputBufferSize = s.outputBufferSize
	c.mu.Unlock()
	if first {
		select {
		case c.settingsChanged <- struct{}{}:
		default:
		}
	}
	c.wmu.Lock()
	err = c.setOutput(c.out, s.outputBufferSize)
	c.wmu.Unlock()
	if err != nil {
		return nil, err
	}

	if !req.FeatureNegotiation {
		return protocol.OK, nil
	}
	o := c.nsqd.opts
	tlsOn := req.TLSv1 && c.nsqd.tlsConfig != nil && !c.isTLS()
	snappyOn := req.Snappy && o.SnappyEnabled && !c.snappy.Load()
	deflateOn := req.Deflate && o.DeflateEnabled && !c.deflate.Load()
	if snappyOn && deflateOn {
		return nil, protocol.Fatal("E_IDENTIFY_FAILED", "cannot enable both deflate and snappy compression")
	}
	resp, _ := json.Marshal(identifyResponse{
		MaxRdyCount:         o.MaxRdyCount,
		Version:             version.Binary,
		MaxMsgTimeout:       o.MaxMsgTimeout.Milliseconds(),
		MsgTimeout:          s.msgTimeout.Milliseconds(),
		TLSv1:               tlsOn,
		Deflate:             deflateOn,
		DeflateLevel:        s.deflateLevel,
		MaxDeflateLevel:     o.MaxDeflateLevel,
		Snappy:              snappyOn,
		SampleRate:          s.sampleRate,
		AuthRequired:        c.nsqd.authEnabled(),
		OutputBufferSize:    s.outputBufferSize,
		OutputBufferTimeout: s.outputBufferTimeout.Milliseconds(),
		TopologyRegion:      o.TopologyRegion,
		TopologyZone:        o.TopologyZone,
	})
	if !tlsOn && !snappyOn && !deflateOn {
		return resp, nil
	}
	// The JSON goes out in plain form, then each upgrade answers OK.
	if err := c.writeFrameFlush(protocol.FrameTypeResponse, resp); err != nil {
		return nil, err
	}
	if err := c.upgrade(tlsOn, snappyOn, deflateOn, s.deflateLevel); err != nil {
		return nil, protocol.Fatal("E_IDENTIFY_FAILED", "IDENTIFY failed "+err.Error())
	}
	return nil, nil
}

type identifySettings struct {
	heartbeat           time.Duration
	outputBufferSize    int
	outputBufferTimeout time.Duration
	sampleRate          int32
	msgTimeout          time.Duration
	deflateLevel        int
}

// identifySettings validates the numeric IDENTIFY fields in NSQ's order and
// returns the effective values.
func (n *NSQD) identifySettings(req *identifyRequest) (identifySettings, error) {
	o := n.opts
	s := identifySettings{
		heartbeat:           o.ClientTimeout / 2,
		outputBufferSize:    defaultBufferSize,
		outputBufferTimeout: o.OutputBufferTimeout,
		msgTimeout:          o.MsgTimeout,
	}
	bad := func(format string, v int) error {
		return protocol.Fatal("E_BAD_BODY", fmt.Sprintf("IDENTIFY "+format, v))
	}
	switch hb := req.HeartbeatInterval; {
	case hb == -1:
		s.heartbeat = 0
	case hb == 0:
	case hb >= 1000 && int64(hb) <= o.MaxHeartbeatInterval.Milliseconds():
		s.heartbeat = time.Duration(hb) * time.Millisecond
	default:
		return s, bad("heartbeat interval (%d) is invalid", hb)
	}
	switch to := req.OutputBufferTimeout; {
	case to == -1:
		s.outputBufferTimeout = 0
	case to == 0:
	case int64(to) >= o.MinOutputBufferTimeout.Milliseconds() &&
		int64(to) <= o.MaxOutputBufferTimeout.Milliseconds():
		s.outputBufferTimeout = time.Duration(to) * time.Millisecond
	default:
		return s, bad("output buffer timeout (%d) is invalid", to)
	}
	switch sz := req.OutputBufferSize; {
	case sz == -1:
		s.outputBufferSize = 1
		s.outputBufferTimeout = 0
	case sz == 0:
	case sz >= 64 && int64(sz) <= o.MaxOutputBufferSize:
		s.outputBufferSize = sz
	default:
		return s, bad("output buffer size (%d) is invalid", sz)
	}
	if req.SampleRate < 0 || req.SampleRate > 99 {
		return s, bad("sample rate (%d) is invalid", int(req.SampleRate))
	}
	s.sampleRate = req.SampleRate
	switch mt := req.MsgTimeout; {
	case mt == 0:
	case mt >= 1000 && int64(mt) <= o.MaxMsgTimeout.Milliseconds():
		s.msgTimeout = time.Duration(mt) * time.Millisecond
	default:
		return s, bad("msg timeout (%d) is invalid", mt)
	}
	s.deflateLevel = 6
	if req.DeflateLevel > 0 {
		s.deflateLevel = req.DeflateLevel
	}
	s.deflateLevel = min(s.deflateLevel, o.MaxDeflateLevel)
	return s, nil
}

func (c *client) sub(params [][]byte) ([]byte, error) {
	if c.state.Load() != stateInit {
		return nil, protocol.Fatal("E_INVALID", "cannot SUB in current state")
	}
	c.mu.Lock()
	hb := c.heartbeatInterval
	c.mu.Unlock()
	if hb <= 0 {
		return nil, protocol.Fatal("E_INVALID", "cannot SUB with heartbeats disabled")
	}
	if len(params) < 3 {
		return nil, protocol.Fatal("E_INVALID", "SUB insufficient number of parameters")
	}
	topicName, channelName := string(params[1]), string(params[2])
	if !protocol.IsValidTopicName(topicName) {
		return nil, protocol.Fatal("E_BAD_TOPIC", fmt.Sprintf("SUB topic name %q is not valid", topicName))
	}
	if !protocol.IsValidChannelName(channelName) {
		return nil, protocol.Fatal("E_BAD_CHANNEL", fmt.Sprintf("SUB channel name %q is not valid", channelName))
	}
	if err := c.checkAuth("SUB", topicName, channelName); err != nil {
		return nil, err
	}
	// An ephemeral topic or channel may be deleting itself as we join it; then
	// the next lookup creates a fresh one. NSQ retries once after 100 ms.
	var ch *Channel
	for attempt := 0; ; attempt++ {
		t, err := c.nsqd.GetTopic(topicName)
		if err == nil {
			ch, err = t.GetChannel(channelName)
		}
		if err == nil {
			err = ch.addClient(c)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, ErrExiting) {
			return nil, protocol.Fatal("E_SUB_FAILED", "SUB failed "+err.Error())
		}
		if !protocol.IsEphemeral(topicName) && !protocol.IsEphemeral(channelName) {
			return nil, protocol.Fatal("E_SUB_FAILED", "SUB failed exiting")
		}
		if attempt == 1 {
			return nil, protocol.Fatal("E_SUB_FAILED", "SUB failed to deleted topic/channel")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.channel.Store(ch)
	c.state.Store(stateSubscribed)
	c.wakeUp()
	return protocol.OK, nil
}

func (c *client) rdyCmd(params [][]byte) ([]byte, error) {
	state := c.state.Load()
	if state == stateClosing {
		return nil, nil
	}
	if state != stateSubscribed {
		return nil, protocol.Fatal("E_INVALID", "cannot RDY in current state")
	}
	count := int64(1)
	if len(params) > 1 {
		v, ok := protocol.ParseDigits(params[1])
		if !ok {
			return nil, protocol.Fatal("E_INVALID", fmt.Sprintf("RDY could not parse count %s", params[1]))
		}
		if v > uint64(c.nsqd.opts.MaxRdyCount) {
			return nil, protocol.Fatal("E_INVALID", fmt.Sprintf("RDY count %d out of range 0-%d", v, c.nsqd.opts.MaxRdyCount))
		}
		count = int64(v)
	}
	c.rdy.Store(count)
	c.wakeUp()
	if r := c.nsqd.repl.Load(); r != nil {
		r.rdyChanged() // a follower's relay follows its consumers' RDY
	}
	return nil, nil
}

// messageID validates an ID parameter.
func messageID(cmd string, params [][]byte) (MessageID, error) {
	var id MessageID
	if len(params) < 2 {
		return id, protocol.Fatal("E_INVALID", cmd+" insufficient number of params")
	}
	if len(params[1]) != len(id) {
		return id, protocol.Fatal("E_INVALID", "invalid message ID")
	}
	copy(id[:], params[1])
	return id, nil
}

func (c *client) checkConsuming(cmd string) error {
	if s := c.state.Load(); s != stateSubscribed && s != stateClosing {
		return protocol.Fatal("E_INVALID", "cannot "+cmd+" in current state")
	}
	return nil
}

func (c *client) fin(params [][]byte) ([]byte, error) {
	if err := c.checkConsuming("FIN"); err != nil {
		return nil, err
	}
	id, err := messageID("FIN", params)
	if err != nil {
		return nil, err
	}
	m, why := c.popInFlight(id)
	if m == nil {
		return nil, protocol.NonFatal("E_FIN_FAILED", fmt.Sprintf("FIN %s failed %s", id[:], why))
	}
	c.finishCount.Add(1)
	if ch := c.channel.Load(); ch != nil {
		ch.finished(m)
		if ch.e2e != nil && !c.relay { // a relay's FIN was recorded on its replica
			now := time.Now()
			ch.e2e.record(now, now.UnixNano()-m.Timestamp)
		}
	}
	return nil, nil
}

func (c *client) req(params [][]byte) ([]byte, error) {
	if err := c.checkConsuming("REQ"); err != nil {
		return nil, err
	}
	if len(params) < 3 {
		return nil, protocol.Fatal("E_INVALID", "REQ insufficient number of params")
	}
	id, err := messageID("REQ", params)
	if err != nil {
		return nil, err
	}
	ms, ok := protocol.ParseDigits(params[2])
	if !ok {
		return nil, protocol.Fatal("E_INVALID", fmt.Sprintf("REQ could not parse timeout %s", params[2]))
	}
	timeout := time.Duration(min(ms, uint64(c.nsqd.opts.MaxReqTimeout.Milliseconds()))) * time.Millisecond
	ch := c.channel.Load()
	if ch.isExiting() {
		return nil, protocol.NonFatal("E_REQ_FAILED", fmt.Sprintf("REQ %s failed exiting", id[:]))
	}
	m, why := c.popInFlight(id)
	if m == nil {
		return nil, protocol.NonFatal("E_REQ_FAILED", fmt.Sprintf("REQ %s failed %s", id[:], why))
	}
	// Given back by a follower (replication_relay.go): no consumer got
	// it, so the relay's delivery is no attempt and no reason to
	// dead-letter.
	undelivered := c.relay && len(params) > 3 && string(params[3]) == relayUndelivered
	if undelivered && m.Attempts > 0 {
		m.Attempts--
	}
	c.requeueCount.Add(1)
	if !c.relay { // a relay's REQ was counted on its replica
		ch.requeueCount.Add(1)
	}
	if l := ch.lim.Load(); l != nil && !undelivered && len(ch.takeDeadLetters(l, []*Message{m})) == 0 {
		return nil, nil // dead-lettered
	}
	if r := c.nsqd.repl.Load(); r != nil && r.relayRequeue(ch, []*Message{m}, timeout) {
		return nil, nil // the leader requeues it
	}
	if timeout == 0 {
		ch.requeue([]*Message{m})
	} else {
		ch.deferMessage(m, timeout)
	}
	return nil, nil
}

func (c *client) touchCmd(params [][]byte) ([]byte, error) {
	if err := c.checkConsuming("TOUCH"); err != nil {
		return nil, err
	}
	id, err := messageID("TOUCH", params)
	if err != nil {
		return nil, err
	}
	if why := c.touch(id); why != "" {
		return nil, protocol.NonFatal("E_TOUCH_FAILED", fmt.Sprintf("TOUCH %s failed %s", id[:], why))
	}
	if r := c.nsqd.repl.Load(); r != nil {
		r.relayTouch(c.channel.Load(), id)
	}
	return nil, nil
}

func (c *client) cls() ([]byte, error) {
	if c.state.Load() != stateSubscribed {
		return nil, protocol.Fatal("E_INVALID", "cannot CLS in current state")
	}
	c.rdy.Store(0)
	c.state.Store(stateClosing)
	return protocol.CloseWait, nil
}

// topicParam validates the topic parameter of PUB, MPUB and DPUB.
func (c *client) topicParam(cmd string, params [][]byte, min int, badCode string) (string, error) {
	if len(params) < min {
		return "", protocol.Fatal("E_INVALID", cmd+" insufficient number of parameters")
	}
	name := string(params[1])
	if !protocol.IsValidTopicName(name) {
		return "", protocol.Fatal("E_BAD_TOPIC", fmt.Sprintf("%s%s topic name %q is not valid", badCode, cmd, name))
	}
	return name, nil
}

// readMessageBody reads PUB's and DPUB's [4-byte size][body].
func (c *client) readMessageBody(cmd string) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(c.r, sz[:]); err != nil {
		return nil, protocol.Fatal("E_BAD_MESSAGE", cmd+" failed to read message body size")
	}
	size := int32(binary.BigEndian.Uint32(sz[:]))
	if size <= 0 {
		return nil, protocol.Fatal("E_BAD_MESSAGE", fmt.Sprintf("%s invalid message body size %d", cmd, size))
	}
	if max := c.nsqd.opts.MaxMsgSize; int64(size) > max {
		return nil, protocol.Fatal("E_BAD_MESSAGE", fmt.Sprintf("%s message too big %d > %d", cmd, size, max))
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, protocol.Fatal("E_BAD_MESSAGE", cmd+" failed to read message body")
	}
	return body, nil
}

func (c *client) pub(params [][]byte) ([]byte, error) {
	name, err := c.topicParam("PUB", params, 2, "")
	if err != nil {
		return nil, err
	}
	body, err := c.readMessageBody("PUB")
	if err != nil {
		return nil, err
	}
	if err := c.checkAuth("PUB", name, ""); err != nil {
		return nil, err
	}
	t, err := c.nsqd.GetTopic(name)
	if err == nil {
		err = t.Publish(body, 0)
	}
	if err != nil {
		return nil, protocol.Fatal("E_PUB_FAILED", "PUB failed "+err.Error())
	}
	c.countPub(name, 1)
	return protocol.OK, nil
}

func (c *client) dpub(params [][]byte) ([]byte, error) {
	name, err := c.topicParam("DPUB", params, 3, "")
	if err != nil {
		return nil, err
	}
	ms, ok := protocol.ParseDigits(params[2])
	if !ok {
		return nil, protocol.Fatal("E_INVALID", fmt.Sprintf("DPUB could not parse timeout %s", params[2]))
	}
	if max := uint64(c.nsqd.opts.MaxReqTimeout.Milliseconds()); ms > max {
		return nil, protocol.Fatal("E_INVALID", fmt.Sprintf("DPUB timeout %d out of range 0-%d", ms, max))
	}
	body, err := c.readMessageBody("DPUB")
	if err != nil {
		return nil, err
	}
	if err := c.checkAuth("DPUB", name, ""); err != nil {
		return nil, err
	}
	t, err := c.nsqd.GetTopic(name)
	if err == nil {
		err = t.Publish(body, time.Duration(ms)*time.Millisecond)
	}
	if err != nil {
		return nil, protocol.Fatal("E_DPUB_FAILED", "DPUB failed "+err.Error())
	}
	c.countPub(name, 1)
	return protocol.OK, nil
}

func (c *client) mpub(params [][]byte) ([]byte, error) {
	name, err := c.topicParam("MPUB", params, 2, "E_BAD_TOPIC ")
	if err != nil {
		return nil, err
	}
	if err := c.checkAuth("MPUB", name, ""); err != nil {
		return nil, err
	}
	t, err := c.nsqd.GetTopic(name) // NSQ creates the topic before reading the body
	if err != nil {
		return nil, protocol.Fatal("E_MPUB_FAILED", "MPUB failed "+err.Error())
	}
	var sz [4]byte
	if _, err := io.ReadFull(c.r, sz[:]); err != nil {
		return nil, protocol.Fatal("E_BAD_BODY", "MPUB failed to read body size")
	}
	size := int32(binary.BigEndian.Uint32(sz[:]))
	if size <= 0 {
		return nil, protocol.Fatal("E_BAD_BODY", fmt.Sprintf("MPUB invalid body size %d", size))
	}
	if max := c.nsqd.opts.MaxBodySize; int64(size) > max {
		return nil, protocol.Fatal("E_BAD_BODY", fmt.Sprintf("MPUB body too big %d > %d", size, max))
	}
	bodies, err := readMPUBMessages(c.r, c.nsqd.opts.MaxMsgSize, c.nsqd.opts.MaxBodySize, int64(size))
	if err != nil {
		return nil, err
	}
	if err := t.PublishMulti(bodies); err != nil {
		return nil, protocol.Fatal("E_MPUB_FAILED", "MPUB failed "+err.Error())
	}
	c.countPub(name, len(bodies))
	return protocol.OK, nil
}

// readMPUBMessages reads a binary MPUB body, [4-byte count]([4-byte
// size][body])*count, as TCP MPUB (after its body size) and POST
// /mpub?binary=true send it. Every message is validated before any is
// returned; errors are fatal *protocol.Error values with NSQ's texts (the
// count and sizes are read as int32, as NSQ does). Small bodies share 64 KiB
// blocks; nothing is allocated for data that has not arrived beyond one
// message.
//
// bodySize is the size the client declared for the whole body (or
// maxBodySize when unknown); blocks are never larger than what remains of
// it, so a batch wastes no block space.
func readMPUBMessages(r io.Reader, maxMsgSize, maxBodySize, bodySize int64) ([][]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, protocol.Fatal("E_BAD_BODY", "MPUB failed to read message count")
	}
	count := int32(binary.BigEndian.Uint32(hdr[:]))
	if count <= 0 || int64(count) > (maxBodySize-4)/5 {
		return nil, protocol.Fatal("E_BAD_BODY", fmt.Sprintf("MPUB invalid message count %d", count))
	}
	const blockSize = 64 << 10
	// The count is the client's claim: grow with what actually arrives.
	bodies := make([][]byte, 0, min(count, 256))
	var block []byte
	remaining := bodySize - 4 // what the declared body still holds after the count
	for i := range int(count) {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, protocol.Fatal("E_BAD_MESSAGE", fmt.Sprintf("MPUB failed to read message(%d) body size", i))
		}
		size := int32(binary.BigEndian.Uint32(hdr[:]))
		if size <= 0 {
			return nil, protocol.Fatal("E_BAD_MESSAGE", fmt.Sprintf("MPUB invalid message(%d) body size %d", i, size))
		}
		if int64(size) > maxMsgSize {
			return nil, protocol.Fatal("E_BAD_MESSAGE", fmt.Sprintf("MPUB message too big %d > %d", size, maxMsgSize))
		}
		var body []byte
		if size > blockSize/4 {
			body = make([]byte, size) // large: its own allocation, no waste
		} else {
			if cap(block)-len(block) < int(size) {
				block = make([]byte, 0, max(int(size), int(min(blockSize, remaining))))
			}
			n := len(block)
			block = block[:n+int(size)]
			body = block[n : n+int(size) : n+int(size)]
		}
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, protocol.Fatal("E_BAD_MESSAGE", "MPUB failed to read message body")
		}
		remaining -= 4 + int64(size)
		bodies = append(bodies, body)
	}
	return bodies, nil
}

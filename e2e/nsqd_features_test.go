package e2e

// nsqd's features beyond the core, seen from the outside (issue 3): every
// go-nsq v1.1.0 Config option against the built binary, the IDENTIFY
// feature negotiation and its range checks on raw connections, the TLS
// policies, AUTH against a test auth server, statsd pushes, e2e latency
// percentiles in /stats and the Prometheus /metrics endpoint.

import (
	"bytes"
	"compress/flate"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/nsqio/go-nsq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nsqclone/nsq/internal/nsqtest"
)

const featureIOTimeout = 10 * time.Second

// ---------------------------------------------------------------------------
// Raw V2 connections that can be upgraded to TLS, snappy and deflate.

// rawConn is a V2 client connection that reads without buffering ahead, so
// that after the IDENTIFY response it can wrap the socket in TLS, snappy or
// deflate exactly as go-nsq does.
type rawConn struct {
	t     testing.TB
	tcp   net.Conn
	base  net.Conn // tcp, or the TLS connection after the TLS upgrade
	r     io.Reader
	w     io.Writer
	flush func() error
}

// dialRaw connects to addr and sends the magic "  V2".
func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, featureIOTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawConn{t: t, tcp: conn, base: conn, r: conn, w: conn}
	c.write([]byte("  V2"))
	return c
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	c.tcp.SetWriteDeadline(time.Now().Add(featureIOTimeout))
	if _, err := c.w.Write(b); err != nil {
		c.t.Fatalf("write %q: %v", b, err)
	}
	if c.flush != nil {
		if err := c.flush(); err != nil {
			c.t.Fatalf("flush after %q: %v", b, err)
		}
	}
}

// command sends line + "\n" and, when given, each body prefixed with its
// 4-byte big-endian size.
func (c *rawConn) command(line string, body ...[]byte) {
	c.t.Helper()
	b := append([]byte(line), '\n')
	for _, p := range body {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	c.write(b)
}

func (c *rawConn) readFrame() (int32, []byte, error) {
	c.tcp.SetReadDeadline(time.Now().Add(featureIOTimeout))
	var hdr [8]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 || size > 16<<20 {
		return 0, nil, fmt.Errorf("bad frame size %d", size)
	}
	data := make([]byte, size-4)
	if _, err := io.ReadFull(c.r, data); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(hdr[4:])), data, nil
}

// next reads the next frame that is not a heartbeat (answering heartbeats
// with NOP).
func (c *rawConn) next() (int32, []byte) {
	c.t.Helper()
	deadline := time.Now().Add(featureIOTimeout)
	for {
		ft, data, err := c.readFrame()
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		if ft == nsqtest.FrameTypeResponse && string(data) == "_heartbeat_" {
			if time.Now().After(deadline) {
				c.t.Fatalf("only heartbeats for %v", featureIOTimeout)
			}
			c.command("NOP")
			continue
		}
		return ft, data
	}
}

// expect fails the test unless the next frame has the type and data.
func (c *rawConn) expect(ft int32, data string) {
	c.t.Helper()
	gotType, got := c.next()
	if gotType != ft || string(got) != data {
		c.t.Fatalf("got frame type %d %q, want type %d %q", gotType, got, ft, data)
	}
}

// expectMessage fails the test unless the next frame is a message.
func (c *rawConn) expectMessage() nsqtest.Message {
	c.t.Helper()
	ft, data := c.next()
	if ft != nsqtest.FrameTypeMessage {
		c.t.Fatalf("got frame type %d %q, want a message", ft, data)
	}
	m, err := nsqtest.DecodeMessage(data)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// expectClosed fails the test unless the server closes the connection
// without sending more.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.tcp.SetReadDeadline(time.Now().Add(featureIOTimeout))
	var b [64]byte
	n, err := c.r.Read(b[:])
	switch {
	case n > 0:
		c.t.Fatalf("got more data %q, want the connection closed", b[:n])
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.t.Fatalf("connection still open after %v, want it closed", featureIOTimeout)
	case err == nil:
		c.t.Fatalf("read returned nothing and no error, want the connection closed")
	}
}

// identifyResponse is the feature-negotiation reply of IDENTIFY
// (https://nsq.io/clients/tcp_protocol_spec.html).
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
}

// identify sends IDENTIFY with fields plus "feature_negotiation": true and
// returns the raw and the decoded response; an error frame fails the test.
func (c *rawConn) identify(fields map[string]any) (string, identifyResponse) {
	c.t.Helper()
	body := map[string]any{"feature_negotiation": true}
	for k, v := range fields {
		body[k] = v
	}
	js, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	c.command("IDENTIFY", js)
	ft, data := c.next()
	if ft != nsqtest.FrameTypeResponse {
		c.t.Fatalf("IDENTIFY %s: got frame type %d %q, want the JSON response", js, ft, data)
	}
	var resp identifyResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		c.t.Fatalf("IDENTIFY %s: response %q: %v", js, data, err)
	}
	return string(data), resp
}

// upgradeTLS performs the client side of the TLS upgrade that follows an
// IDENTIFY response with "tls_v1": true and reads the OK sent over TLS. It
// returns the error instead of failing, for the tests of refused clients.
func (c *rawConn) upgradeTLS(cfg *tls.Config) (tls.ConnectionState, error) {
	tc := tls.Client(c.tcp, cfg)
	tc.SetDeadline(time.Now().Add(featureIOTimeout))
	if err := tc.Handshake(); err != nil {
		return tls.ConnectionState{}, fmt.Errorf("handshake: %w", err)
	}
	tc.SetDeadline(time.Time{})
	c.base, c.r, c.w = tc, tc, tc
	// With TLS 1.3 a refused client certificate shows on this first read.
	ft, data, err := c.readFrame()
	if err != nil {
		return tls.ConnectionState{}, fmt.Errorf("reading OK after the handshake: %w", err)
	}
	if ft != nsqtest.FrameTypeResponse || string(data) != "OK" {
		return tls.ConnectionState{}, fmt.Errorf("got frame type %d %q after the handshake, want OK", ft, data)
	}
	return tc.ConnectionState(), nil
}

// upgradeSnappy switches to the snappy framing format and expects OK.
func (c *rawConn) upgradeSnappy() {
	c.t.Helper()
	sw := snappy.NewBufferedWriter(c.base)
	c.r, c.w, c.flush = snappy.NewReader(c.base), sw, sw.Flush
	c.expect(nsqtest.FrameTypeResponse, "OK")
}

// upgradeDeflate switches to raw DEFLATE at level and expects OK.
func (c *rawConn) upgradeDeflate(level int) {
	c.t.Helper()
	fw, err := flate.NewWriter(c.base, level)
	if err != nil {
		c.t.Fatal(err)
	}
	c.r, c.w, c.flush = flate.NewReader(c.base), fw, fw.Flush
	c.expect(nsqtest.FrameTypeResponse, "OK")
}

// roundTrip publishes body to topic on c, subscribes c to topic/ch and
// expects the message back: it proves frames flow both ways through the
// negotiated encodings. The topic must be new and have no other channel.
func (c *rawConn) roundTrip(topic, body string) {
	c.t.Helper()
	c.command("PUB "+topic, []byte(body))
	c.expect(nsqtest.FrameTypeResponse, "OK")
	c.command("SUB " + topic + " ch")
	c.expect(nsqtest.FrameTypeResponse, "OK")
	c.command("RDY 1")
	m := c.expectMessage()
	if string(m.Body) != body {
		c.t.Fatalf("got message %q, want %q", m.Body, body)
	}
	c.command("FIN " + m.ID)
}

func mpubBody(bodies ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(bodies)))
	for _, s := range bodies {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

// ---------------------------------------------------------------------------
// /stats with the fields of this file's features.

type fStats struct {
	Topics    []fTopic  `json:"topics"`
	Producers []fClient `json:"producers"`
}

type fTopic struct {
	Name         string     `json:"topic_name"`
	Channels     []fChannel `json:"channels"`
	Depth        int64      `json:"depth"`
	BackendDepth int64      `json:"backend_depth"`
	MessageCount uint64     `json:"message_count"`
	MessageBytes uint64     `json:"message_bytes"`
	Paused       bool       `json:"paused"`
	Latency      fLatency   `json:"e2e_processing_latency"`
}

type fChannel struct {
	Name          string    `json:"channel_name"`
	Depth         int64     `json:"depth"`
	BackendDepth  int64     `json:"backend_depth"`
	InFlightCount int       `json:"in_flight_count"`
	DeferredCount int       `json:"deferred_count"`
	MessageCount  uint64    `json:"message_count"`
	RequeueCount  uint64    `json:"requeue_count"`
	TimeoutCount  uint64    `json:"timeout_count"`
	ClientCount   int       `json:"client_count"`
	Clients       []fClient `json:"clients"`
	Paused        bool      `json:"paused"`
	Latency       fLatency  `json:"e2e_processing_latency"`
}

type fLatency struct {
	Count       int64         `json:"count"`
	Percentiles []fPercentile `json:"percentiles"`
}

type fPercentile struct {
	Quantile float64 `json:"quantile"`
	Value    float64 `json:"value"`
}

type fClient struct {
	ClientID        string `json:"client_id"`
	RemoteAddress   string `json:"remote_address"`
	ReadyCount      int64  `json:"ready_count"`
	InFlightCount   int64  `json:"in_flight_count"`
	MessageCount    uint64 `json:"message_count"`
	FinishCount     uint64 `json:"finish_count"`
	SampleRate      int32  `json:"sample_rate"`
	Deflate         bool   `json:"deflate"`
	Snappy          bool   `json:"snappy"`
	Authed          bool   `json:"authed"`
	AuthIdentity    string `json:"auth_identity"`
	AuthIdentityURL string `json:"auth_identity_url"`
	TLS             bool   `json:"tls"`
	TLSVersion      string `json:"tls_version"`
}

// getStats returns GET <base>/stats?format=json through client (nil: a
// plain client).
func getStats(t testing.TB, client *http.Client, base string) *fStats {
	t.Helper()
	status, _, body := httpDo(t, client, http.MethodGet, base+"/stats?format=json", nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s/stats?format=json: status %d %s", base, status, body)
	}
	var s fStats
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("GET %s/stats?format=json: %v in %s", base, err, body)
	}
	return &s
}

func (s *fStats) topic(name string) *fTopic {
	for i := range s.Topics {
		if s.Topics[i].Name == name {
			return &s.Topics[i]
		}
	}
	return nil
}

func (s *fStats) channel(topic, name string) *fChannel {
	t := s.topic(topic)
	if t == nil {
		return nil
	}
	for i := range t.Channels {
		if t.Channels[i].Name == name {
			return &t.Channels[i]
		}
	}
	return nil
}

// client returns the consumer or producer with clientID, or nil.
func (s *fStats) client(clientID string) *fClient {
	for i := range s.Producers {
		if s.Producers[i].ClientID == clientID {
			return &s.Producers[i]
		}
	}
	for _, t := range s.Topics {
		for _, ch := range t.Channels {
			for i := range ch.Clients {
				if ch.Clients[i].ClientID == clientID {
					return &ch.Clients[i]
				}
			}
		}
	}
	return nil
}

// httpDo sends a request through client (nil: a plain client) and returns
// the status, the headers and the body.
func httpDo(t testing.TB, client *http.Client, method, url string, body []byte) (int, http.Header, string) {
	t.Helper()
	if client == nil {
		client = &http.Client{Timeout: featureIOTimeout}
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// createChannel creates topic and its channel over HTTP.
func createChannel(t *testing.T, n *nsqtest.NSQD, topic, channel string) {
	t.Helper()
	post(t, n, "/topic/create?topic="+topic)
	post(t, n, "/channel/create?topic="+topic+"&channel="+channel)
}

func portOf(t testing.TB, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// ---------------------------------------------------------------------------
// go-nsq helpers.

// recLogger is a go-nsq logger that writes to the test log and remembers
// the lines.
type recLogger struct {
	next  *nsqtest.TestLogger
	mu    sync.Mutex
	lines []string
}

func newRecLogger(t testing.TB) *recLogger { return &recLogger{next: nsqtest.ClientLogger(t)} }

func (l *recLogger) Output(depth int, s string) error {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
	return l.next.Output(depth, s)
}

func (l *recLogger) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.lines, func(s string) bool { return strings.Contains(s, sub) })
}

// newProducerCfg returns a go-nsq producer for addr with cfg and an
// info-level recording logger, stopped when the test ends.
func newProducerCfg(t testing.TB, addr string, cfg *nsq.Config) (*nsq.Producer, *recLogger) {
	t.Helper()
	p, err := nsq.NewProducer(addr, cfg)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	log := newRecLogger(t)
	p.SetLogger(log, nsq.LogLevelInfo)
	t.Cleanup(p.Stop)
	return p, log
}

// ---------------------------------------------------------------------------
// nsqd with TLS.

// tlsNSQD is an nsqd started with a certificate; it is waited for on its
// HTTPS port, since with --tls-required=true the plain port answers 403.
type tlsNSQD struct {
	*nsqtest.Process
	TCPAddr, HTTPAddr, HTTPSAddr string
	HTTPS                        *http.Client // trusts the test CA and presents the client certificate
}

// startTLSNSQD runs nsqd with the test certificate on free ports plus args
// and waits until GET https://.../ping answers OK.
func startTLSNSQD(t *testing.T, certs *testCerts, args ...string) *tlsNSQD {
	t.Helper()
	n := &tlsNSQD{TCPAddr: nsqtest.FreeAddr(t), HTTPAddr: nsqtest.FreeAddr(t), HTTPSAddr: nsqtest.FreeAddr(t)}
	full := []string{
		"--tcp-address=" + n.TCPAddr, "--http-address=" + n.HTTPAddr, "--https-address=" + n.HTTPSAddr,
		"--data-path=" + t.TempDir(),
	}
	full = append(append(full, certs.ServerArgs()...), args...)
	n.Process = nsqtest.Start(t, "", "nsqd", full...)
	tr := &http.Transport{TLSClientConfig: certs.ClientConfig(certs.Client)}
	t.Cleanup(tr.CloseIdleConnections)
	n.HTTPS = &http.Client{Transport: tr, Timeout: featureIOTimeout}
	ping := &http.Client{Transport: tr, Timeout: time.Second}
	nsqtest.Eventually(t, 20*time.Second, func() bool {
		select {
		case <-n.Exited():
			t.Fatalf("nsqd exited before GET https://%s/ping answered OK:\n%s", n.HTTPSAddr, n.Output())
		default:
		}
		resp, err := ping.Get("https://" + n.HTTPSAddr + "/ping")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && string(body) == "OK"
	}, "GET https://"+n.HTTPSAddr+"/ping to answer OK")
	return n
}

func (n *tlsNSQD) httpsURL(pathQuery string) string { return "https://" + n.HTTPSAddr + pathQuery }

// ---------------------------------------------------------------------------
// A test auth server (https://nsq.io/components/nsqd.html#auth).

type authServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	hits     map[string]int           // secret → requests
	last     map[string]*http.Request // secret → last request
	rawQuery map[string]string
}

// The grant of the "good" secret: publish and subscribe on topics starting
// with "auth_ok", any channel (including "" for publishes).
const authGood = `{"ttl":3600,"identity":"alice","identity_url":"http://id/alice",` +
	`"authorizations":[{"topic":"^auth_ok","channels":[".*"],"permissions":["subscribe","publish"]}]}`

func newAuthServer(t testing.TB) *authServer {
	a := &authServer{hits: map[string]int{}, last: map[string]*http.Request{}, rawQuery: map[string]string{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := r.URL.Query().Get("secret")
		a.mu.Lock()
		a.hits[secret]++
		hits := a.hits[secret]
		a.last[secret] = r
		a.rawQuery[secret] = r.URL.RawQuery
		a.mu.Unlock()
		if r.URL.Path != "/auth" || r.Method != http.MethodGet {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		grant := func(ttl int, identity string) string {
			return fmt.Sprintf(`{"ttl":%d,"identity":%q,"identity_url":"","authorizations":[{"topic":"^auth_ok","channels":[".*"],"permissions":["subscribe","publish"]}]}`, ttl, identity)
		}
		switch {
		case secret == "good":
			io.WriteString(w, authGood)
		case secret == "short": // expires after a second, then granted again
			io.WriteString(w, grant(1, "bob"))
		case secret == "once" && hits == 1: // expires after a second, then refused
			io.WriteString(w, grant(1, "carol"))
		case secret == "empty":
			io.WriteString(w, `{"ttl":60,"identity":"dave","authorizations":[]}`)
		case secret == "badperm":
			io.WriteString(w, `{"ttl":60,"identity":"eve","authorizations":[{"topic":".*","channels":[".*"],"permissions":["admin"]}]}`)
		case secret == "ttl0":
			io.WriteString(w, `{"ttl":0,"identity":"frank","authorizations":[{"topic":".*","channels":[".*"],"permissions":["publish"]}]}`)
		default:
			http.Error(w, "forbidden", http.StatusForbidden)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// addr is the server's host:port, as given to --auth-http-address.
func (a *authServer) addr() string { return strings.TrimPrefix(a.srv.URL, "http://") }

func (a *authServer) count(secret string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hits[secret]
}

func (a *authServer) lastRequest(secret string) (*http.Request, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last[secret], a.rawQuery[secret]
}

// ---------------------------------------------------------------------------
// Done when 1: every go-nsq Config option exchanges messages.

// exchangeResult is what exchange observed.
type exchangeResult struct {
	consumer, producer       fClient
	consumerLog, producerLog *recLogger
}

// exchange publishes count messages to topic through a go-nsq producer and
// consumes them on channel "ch" through a go-nsq consumer, both configured
// by set; it checks each arrives once and returns both clients' /stats.
func exchange(t *testing.T, tcpAddr, statsBase, topic string, count int, set func(*nsq.Config)) exchangeResult {
	t.Helper()
	pcfg := nsq.NewConfig()
	pcfg.ClientID = "p_" + topic
	set(pcfg)
	ccfg := nsq.NewConfig()
	ccfg.ClientID = "c_" + topic
	ccfg.MaxInFlight = 10
	set(ccfg)

	p, plog := newProducerCfg(t, tcpAddr, pcfg)
	in := newInbox(count)
	c := newConsumer(t, topic, "ch", ccfg, in.handle)
	clog := newRecLogger(t)
	c.SetLogger(clog, nsq.LogLevelInfo)
	connect(t, c, tcpAddr)

	for i := range count {
		if err := p.Publish(topic, fmt.Appendf(nil, "%s-%d", topic, i)); err != nil {
			t.Fatalf("Publish(%q) #%d: %v", topic, i, err)
		}
	}
	in.wait(t, 15*time.Second, topic)
	got, _ := in.snapshot()
	for i := range count {
		if body := fmt.Sprintf("%s-%d", topic, i); got[body] != 1 {
			t.Errorf("%s delivered %d times, want once", body, got[body])
		}
	}

	var res exchangeResult
	res.consumerLog, res.producerLog = clog, plog
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		s := getStats(t, nil, statsBase)
		cc, pc := s.client(ccfg.ClientID), s.client(pcfg.ClientID)
		if cc == nil || pc == nil || cc.FinishCount != uint64(count) {
			return false
		}
		res.consumer, res.producer = *cc, *pc
		return true
	}, fmt.Sprintf("consumer %s with %d FINs and producer %s in /stats", ccfg.ClientID, count, pcfg.ClientID))
	return res
}

func TestFeatureGoNSQOptions(t *testing.T) {
	certs := newTestCerts(t)
	n := startTLSNSQD(t, certs)
	base := "http://" + n.HTTPAddr

	type want struct {
		tls, snappy, deflate bool
		sampleRate           int32
		logs                 []string // go-nsq log lines showing what it negotiated
	}
	for _, tc := range []struct {
		name string
		set  func(*nsq.Config)
		want want
	}{
		{"TlsV1", func(c *nsq.Config) { c.TlsV1, c.TlsConfig = true, certs.ClientConfig() },
			want{tls: true, logs: []string{"upgrading to TLS"}}},
		{"Snappy", func(c *nsq.Config) { c.Snappy = true },
			want{snappy: true, logs: []string{"upgrading to Snappy"}}},
		{"Deflate", func(c *nsq.Config) { c.Deflate, c.DeflateLevel = true, 3 },
			want{deflate: true, logs: []string{"upgrading to Deflate"}}},
		{"DeflateLevel9", func(c *nsq.Config) { c.Deflate, c.DeflateLevel = true, 9 }, // nsqd caps it at 6
			want{deflate: true, logs: []string{"upgrading to Deflate"}}},
		{"TlsV1Snappy", func(c *nsq.Config) { c.TlsV1, c.TlsConfig, c.Snappy = true, certs.ClientConfig(), true },
			want{tls: true, snappy: true, logs: []string{"upgrading to TLS", "upgrading to Snappy"}}},
		{"TlsV1Deflate", func(c *nsq.Config) { c.TlsV1, c.TlsConfig, c.Deflate = true, certs.ClientConfig(), true },
			want{tls: true, deflate: true, logs: []string{"upgrading to TLS", "upgrading to Deflate"}}},
		{"OutputBuffer", func(c *nsq.Config) { c.OutputBufferSize, c.OutputBufferTimeout = 512, 50*time.Millisecond }, want{}},
		{"OutputBufferSizeMin", func(c *nsq.Config) { c.OutputBufferSize = 64 }, want{}},
		{"OutputBufferSizeOff", func(c *nsq.Config) { c.OutputBufferSize = -1 }, want{}},
		{"OutputBufferTimeoutMin", func(c *nsq.Config) { c.OutputBufferTimeout = 25 * time.Millisecond }, want{}},
		// Without a flush timer a partly filled buffer is flushed once the
		// client is not ready for more: with RDY 1 that is after each message.
		{"OutputBufferTimeoutOff", func(c *nsq.Config) { c.OutputBufferTimeout, c.MaxInFlight = -1, 1 }, want{}},
		{"SampleRateAll", func(c *nsq.Config) { c.SampleRate = 99 }, want{sampleRate: 99}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := "opt_" + tc.name
			res := exchange(t, n.TCPAddr, base, topic, 20, tc.set)
			for _, c := range []struct {
				who string
				cs  fClient
				log *recLogger
			}{{"consumer", res.consumer, res.consumerLog}, {"producer", res.producer, res.producerLog}} {
				if c.cs.TLS != tc.want.tls || c.cs.Snappy != tc.want.snappy || c.cs.Deflate != tc.want.deflate {
					t.Errorf("%s /stats tls=%v snappy=%v deflate=%v, want %v %v %v",
						c.who, c.cs.TLS, c.cs.Snappy, c.cs.Deflate, tc.want.tls, tc.want.snappy, tc.want.deflate)
				}
				if tc.want.tls && c.cs.TLSVersion != "TLS1.3" {
					t.Errorf("%s /stats tls_version %q, want TLS1.3", c.who, c.cs.TLSVersion)
				}
				if !tc.want.tls && c.cs.TLSVersion != "" {
					t.Errorf("%s /stats tls_version %q, want empty", c.who, c.cs.TLSVersion)
				}
				for _, l := range tc.want.logs {
					if !c.log.has(l) {
						t.Errorf("go-nsq %s did not log %q: IDENTIFY's response did not offer it", c.who, l)
					}
				}
			}
			if res.consumer.SampleRate != tc.want.sampleRate {
				t.Errorf("consumer /stats sample_rate %d, want %d", res.consumer.SampleRate, tc.want.sampleRate)
			}
		})
	}

	// About half of the messages reach a consumer with SampleRate 50; the
	// others are dropped, not requeued.
	t.Run("SampleRate", func(t *testing.T) {
		t.Parallel()
		const topic, total = "opt_SampleRate", 2000
		cfg := nsq.NewConfig()
		cfg.ClientID, cfg.SampleRate, cfg.MaxInFlight = "c_sample", 50, 200
		var got atomic.Int64
		c := newConsumer(t, topic, "ch", cfg, func(*nsq.Message) error { got.Add(1); return nil })
		connect(t, c, n.TCPAddr)
		publishBodies(t, newProducer(t, n.TCPAddr), topic, numberedBodies("s", total), 200)
		var cs fClient
		nsqtest.Eventually(t, 20*time.Second, func() bool {
			s := getStats(t, nil, base)
			ch, cl := s.channel(topic, "ch"), s.client("c_sample")
			if ch == nil || cl == nil {
				return false
			}
			cs = *cl
			return ch.MessageCount == total && ch.Depth == 0 && ch.InFlightCount == 0 &&
				cl.FinishCount == uint64(got.Load())
		}, "the sampled channel to be drained")
		frac := float64(got.Load()) / total
		t.Logf("SampleRate 50: %d of %d delivered (%.3f)", got.Load(), total, frac)
		if frac < 0.35 || frac > 0.67 {
			t.Errorf("SampleRate 50 delivered %d of %d messages (%.3f), want about 0.51", got.Load(), total, frac)
		}
		if cs.SampleRate != 50 || cs.MessageCount != uint64(got.Load()) {
			t.Errorf("consumer /stats sample_rate %d message_count %d, want 50 and %d", cs.SampleRate, cs.MessageCount, got.Load())
		}
	})

	// With 1 s heartbeats nsqd closes a connection that stays silent for
	// 2 s: both clients survive 2.5 s idle only by answering heartbeats.
	t.Run("HeartbeatInterval", func(t *testing.T) {
		t.Parallel()
		const topic = "opt_HeartbeatInterval"
		set := func(c *nsq.Config) { c.HeartbeatInterval = time.Second }
		res := exchange(t, n.TCPAddr, base, topic, 5, set)
		start := time.Now()
		nsqtest.Eventually(t, 10*time.Second, func() bool {
			s := getStats(t, nil, base)
			cc, pc := s.client("c_"+topic), s.client("p_"+topic)
			if cc == nil || pc == nil || cc.RemoteAddress != res.consumer.RemoteAddress || pc.RemoteAddress != res.producer.RemoteAddress {
				t.Fatalf("after %v idle the go-nsq connections are gone or new: consumer %+v producer %+v, want %s and %s",
					time.Since(start), cc, pc, res.consumer.RemoteAddress, res.producer.RemoteAddress)
			}
			return time.Since(start) > 2500*time.Millisecond
		}, "2.5s of idle connections")
	})

	// MsgTimeout 1s: an unanswered message comes back after about a second
	// instead of nsqd's default 60 s.
	t.Run("MsgTimeout", func(t *testing.T) {
		t.Parallel()
		const topic = "opt_MsgTimeout"
		cfg := nsq.NewConfig()
		cfg.ClientID, cfg.MsgTimeout = "c_msgtimeout", time.Second
		got := make(chan delivery, 4)
		c := newConsumer(t, topic, "ch", cfg, func(m *nsq.Message) error {
			if m.Attempts == 1 {
				m.DisableAutoResponse() // neither FIN nor REQ: let it time out
			}
			got <- record(m)
			return nil
		})
		connect(t, c, n.TCPAddr)
		if err := newProducer(t, n.TCPAddr).Publish(topic, []byte("slow")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		first := recv(t, got, 10*time.Second, "first delivery")
		second := recv(t, got, 15*time.Second, "redelivery after MsgTimeout 1s")
		first.msg.Finish() // for go-nsq's in-flight count; nsqd answers E_FIN_FAILED (not fatal)
		if d := second.at.Sub(first.at); d < 900*time.Millisecond {
			t.Errorf("redelivered after %v, want after the 1s msg_timeout", d)
		}
		if second.attempts != 2 || second.body != "slow" {
			t.Errorf("redelivery %q attempts %d, want %q attempts 2", second.body, second.attempts, "slow")
		}
		nsqtest.Eventually(t, 10*time.Second, func() bool {
			ch := getStats(t, nil, base).channel(topic, "ch")
			return ch != nil && ch.TimeoutCount == 1 && ch.InFlightCount == 0
		}, "timeout_count 1 and nothing in flight")
	})

	// AuthSecret, over TLS: the auth server is told the connection is TLS.
	t.Run("AuthSecret", func(t *testing.T) {
		t.Parallel()
		auth := newAuthServer(t)
		an := startTLSNSQD(t, certs, "--auth-http-address="+auth.addr())
		set := func(c *nsq.Config) { c.TlsV1, c.TlsConfig, c.AuthSecret = true, certs.ClientConfig(), "good" }
		res := exchange(t, an.TCPAddr, "http://"+an.HTTPAddr, "auth_ok_gonsq", 10, set)
		for _, c := range []struct {
			who string
			cs  fClient
			log *recLogger
		}{{"consumer", res.consumer, res.consumerLog}, {"producer", res.producer, res.producerLog}} {
			if !c.cs.Authed || c.cs.AuthIdentity != "alice" || c.cs.AuthIdentityURL != "http://id/alice" || !c.cs.TLS {
				t.Errorf("%s /stats authed=%v identity=%q url=%q tls=%v, want true alice http://id/alice true",
					c.who, c.cs.Authed, c.cs.AuthIdentity, c.cs.AuthIdentityURL, c.cs.TLS)
			}
			if !c.log.has(`Auth accepted. Identity: "alice" http://id/alice Permissions: 1`) {
				t.Errorf("go-nsq %s did not log the AUTH response", c.who)
			}
		}
		if hits := auth.count("good"); hits != 2 {
			t.Errorf("auth server asked %d times, want 2 (one per connection)", hits)
		}
		if _, q := auth.lastRequest("good"); q != "common_name=&remote_ip=127.0.0.1&secret=good&tls=true" {
			t.Errorf("auth request query %q, want %q", q, "common_name=&remote_ip=127.0.0.1&secret=good&tls=true")
		}
	})
}

// IDENTIFY's response reports what was negotiated, and the negotiated
// encodings carry frames both ways (raw connections; IDENTIFY in NSQ's TCP
// protocol spec).
func TestFeatureIdentifyNegotiation(t *testing.T) {
	certs := newTestCerts(t)
	n := startTLSNSQD(t, certs)

	t.Run("defaults", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		raw, _ := c.identify(nil)
		const want = `{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,` +
			`"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,` +
			`"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250,"topology_region":"","topology_zone":""}`
		if raw != want {
			t.Errorf("IDENTIFY response\n got %s\nwant %s", raw, want)
		}
		c.roundTrip("neg_plain", "plain")
	})

	t.Run("no feature negotiation", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		c.command("IDENTIFY", []byte(`{"client_id":"x","tls_v1":true,"snappy":true}`))
		c.expect(nsqtest.FrameTypeResponse, "OK")
		c.roundTrip("neg_none", "none") // and no upgrade happened
	})

	t.Run("settings", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		_, r := c.identify(map[string]any{
			"output_buffer_size": 1024, "output_buffer_timeout": 100, "msg_timeout": 5000, "heartbeat_interval": 5000,
		})
		if r.OutputBufferSize != 1024 || r.OutputBufferTimeout != 100 || r.MsgTimeout != 5000 || r.SampleRate != 0 {
			t.Errorf("IDENTIFY response %+v, want output_buffer_size 1024, output_buffer_timeout 100, msg_timeout 5000, sample_rate 0", r)
		}
		c.roundTrip("neg_settings", "settings")
	})

	t.Run("sample_rate", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		if _, r := c.identify(map[string]any{"client_id": "raw_sample", "sample_rate": 42}); r.SampleRate != 42 {
			t.Errorf("IDENTIFY response sample_rate %d, want 42", r.SampleRate)
		}
		c.command("SUB neg_sample ch")
		c.expect(nsqtest.FrameTypeResponse, "OK")
		if cs := getStats(t, nil, "http://"+n.HTTPAddr).client("raw_sample"); cs == nil || cs.SampleRate != 42 {
			t.Errorf("/stats client raw_sample = %+v, want sample_rate 42", cs)
		}
	})

	t.Run("output_buffer_size -1", func(t *testing.T) {
		_, r := dialRaw(t, n.TCPAddr).identify(map[string]any{"output_buffer_size": -1})
		if r.OutputBufferSize != 1 || r.OutputBufferTimeout != 0 {
			t.Errorf("output_buffer_size -1 → response size %d timeout %d, want 1 and 0", r.OutputBufferSize, r.OutputBufferTimeout)
		}
	})

	t.Run("output_buffer_timeout -1", func(t *testing.T) {
		_, r := dialRaw(t, n.TCPAddr).identify(map[string]any{"output_buffer_timeout": -1})
		if r.OutputBufferSize != 16384 || r.OutputBufferTimeout != 0 {
			t.Errorf("output_buffer_timeout -1 → response size %d timeout %d, want 16384 and 0", r.OutputBufferSize, r.OutputBufferTimeout)
		}
	})

	t.Run("heartbeat_interval 1000", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		c.identify(map[string]any{"heartbeat_interval": 1000})
		start := time.Now()
		ft, data, err := c.readFrame()
		if err != nil || ft != nsqtest.FrameTypeResponse || string(data) != "_heartbeat_" {
			t.Fatalf("got frame %d %q %v, want the heartbeat", ft, data, err)
		}
		if d := time.Since(start); d < 500*time.Millisecond || d > 3*time.Second {
			t.Errorf("heartbeat after %v, want about 1s", d)
		}
		// Not answering: nsqd closes the connection after 2 intervals.
		for {
			ft, data, err := c.readFrame()
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("connection still open %v after IDENTIFY without NOPs, want it closed after about 2s", time.Since(start))
				}
				break
			}
			if ft != nsqtest.FrameTypeResponse || string(data) != "_heartbeat_" {
				t.Fatalf("got frame %d %q, want only heartbeats until the close", ft, data)
			}
		}
		if d := time.Since(start); d < 1500*time.Millisecond || d > 5*time.Second {
			t.Errorf("silent connection closed after %v, want about 2s (2 × heartbeat_interval)", d)
		}
	})

	t.Run("tls_v1 handshake dribbled", func(t *testing.T) {
		// A client that sends its ClientHello a byte at a time is dropped
		// at the handshake's 5 s deadline, which the reads do not move.
		c := dialRaw(t, n.TCPAddr)
		c.identify(map[string]any{"client_id": "slow_tls", "tls_v1": true})
		start := time.Now()
		hello := []byte{0x16, 0x03, 0x01, 0x01, 0x00} // a handshake record of 256 bytes
		hello = append(hello, make([]byte, 256)...)
		for i := 0; i < len(hello) && time.Since(start) < 10*time.Second; i++ {
			c.tcp.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.tcp.Write(hello[i : i+1]); err != nil {
				break // closed
			}
			c.tcp.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.tcp.Read(make([]byte, 64)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				break // closed
			}
		}
		if d := time.Since(start); d < 4*time.Second || d > 7*time.Second {
			t.Errorf("dribbling TLS client dropped after %v, want about 5 s", d)
		}
	})

	t.Run("tls_v1", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		_, r := c.identify(map[string]any{"client_id": "raw_tls", "tls_v1": true})
		if !r.TLSv1 || r.Snappy || r.Deflate {
			t.Fatalf("IDENTIFY response %+v, want tls_v1 only", r)
		}
		st, err := c.upgradeTLS(certs.ClientConfig())
		if err != nil {
			t.Fatalf("TLS upgrade: %v", err)
		}
		if st.Version != tls.VersionTLS13 {
			t.Errorf("negotiated TLS version %x, want TLS 1.3", st.Version)
		}
		c.roundTrip("neg_tls", "over tls")
		cs := getStats(t, nil, "http://"+n.HTTPAddr).client("raw_tls")
		if cs == nil || !cs.TLS || cs.TLSVersion != "TLS1.3" {
			t.Errorf("/stats client %+v, want tls true, tls_version TLS1.3", cs)
		}
	})

	t.Run("snappy", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		_, r := c.identify(map[string]any{"snappy": true})
		if !r.Snappy || r.Deflate || r.TLSv1 {
			t.Fatalf("IDENTIFY response %+v, want snappy only", r)
		}
		c.upgradeSnappy()
		c.roundTrip("neg_snappy", strings.Repeat("snappy ", 100))
	})

	t.Run("deflate level 3", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		_, r := c.identify(map[string]any{"deflate": true, "deflate_level": 3})
		if !r.Deflate || r.DeflateLevel != 3 || r.MaxDeflateLevel != 6 || r.Snappy {
			t.Fatalf("IDENTIFY response %+v, want deflate level 3 of max 6", r)
		}
		c.upgradeDeflate(3)
		c.roundTrip("neg_deflate", strings.Repeat("deflate ", 100))
	})

	for _, tc := range []struct {
		name      string
		level     any
		wantLevel int
	}{
		{"deflate level 9 capped", 9, 6},
		{"deflate level 100 capped", 100, 6},
		{"deflate level 0 default", 0, 6},
		{"deflate level -5 default", -5, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, n.TCPAddr)
			_, r := c.identify(map[string]any{"deflate": true, "deflate_level": tc.level})
			if !r.Deflate || r.DeflateLevel != tc.wantLevel {
				t.Fatalf("deflate_level %v: response deflate=%v deflate_level=%d, want true %d", tc.level, r.Deflate, r.DeflateLevel, tc.wantLevel)
			}
			c.upgradeDeflate(tc.wantLevel)
			c.command("PUB neg_deflate_levels", []byte("x"))
			c.expect(nsqtest.FrameTypeResponse, "OK")
		})
	}

	t.Run("tls and snappy", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		_, r := c.identify(map[string]any{"tls_v1": true, "snappy": true})
		if !r.TLSv1 || !r.Snappy {
			t.Fatalf("IDENTIFY response %+v, want tls_v1 and snappy", r)
		}
		if _, err := c.upgradeTLS(certs.ClientConfig()); err != nil {
			t.Fatalf("TLS upgrade: %v", err)
		}
		c.upgradeSnappy()
		c.roundTrip("neg_tls_snappy", "tls+snappy")
	})

	t.Run("tls and deflate", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		_, r := c.identify(map[string]any{"tls_v1": true, "deflate": true, "deflate_level": 1})
		if !r.TLSv1 || !r.Deflate || r.DeflateLevel != 1 {
			t.Fatalf("IDENTIFY response %+v, want tls_v1 and deflate level 1", r)
		}
		if _, err := c.upgradeTLS(certs.ClientConfig()); err != nil {
			t.Fatalf("TLS upgrade: %v", err)
		}
		c.upgradeDeflate(1)
		c.roundTrip("neg_tls_deflate", "tls+deflate")
	})

	t.Run("snappy and deflate", func(t *testing.T) {
		c := dialRaw(t, n.TCPAddr)
		c.command("IDENTIFY", []byte(`{"feature_negotiation":true,"snappy":true,"deflate":true}`))
		c.expect(nsqtest.FrameTypeError, "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression")
		c.expectClosed()
	})

	// An nsqd without a certificate, with compression off and other limits.
	plain := nsqtest.StartNSQD(t, "--snappy=false", "--deflate=false", "--max-deflate-level=3",
		"--max-rdy-count=100", "--max-msg-timeout=120s", "--msg-timeout=30s", "--output-buffer-timeout=100ms")

	t.Run("features off", func(t *testing.T) {
		c := dialRaw(t, plain.TCPAddr)
		_, r := c.identify(map[string]any{"tls_v1": true, "snappy": true, "deflate": true, "deflate_level": 9})
		want := identifyResponse{MaxRdyCount: 100, Version: "1.3.0", MaxMsgTimeout: 120000, MsgTimeout: 30000,
			DeflateLevel: 3, MaxDeflateLevel: 3, OutputBufferSize: 16384, OutputBufferTimeout: 100}
		if r != want {
			t.Errorf("IDENTIFY response\n got %+v\nwant %+v", r, want)
		}
		c.roundTrip("neg_off", "no upgrades")
	})

	t.Run("AUTH disabled", func(t *testing.T) {
		c := dialRaw(t, plain.TCPAddr)
		c.command("AUTH", []byte("secret"))
		c.expect(nsqtest.FrameTypeError, "E_AUTH_DISABLED AUTH disabled")
		c.expectClosed()
	})
}

// ---------------------------------------------------------------------------
// Done when 7: out-of-range IDENTIFY values.

func TestFeatureIdentifyOutOfRange(t *testing.T) {
	defaults := nsqtest.StartNSQD(t)
	limited := nsqtest.StartNSQD(t, "--max-heartbeat-interval=10s", "--max-output-buffer-size=4096",
		"--min-output-buffer-timeout=50ms", "--max-output-buffer-timeout=1s", "--max-msg-timeout=30s")

	bad := func(field string, v int) (string, string) {
		name := map[string]string{
			"heartbeat_interval":    "heartbeat interval",
			"output_buffer_timeout": "output buffer timeout",
			"output_buffer_size":    "output buffer size",
			"sample_rate":           "sample rate",
			"msg_timeout":           "msg timeout",
		}[field]
		return fmt.Sprintf(`{"%s":%d}`, field, v), fmt.Sprintf("E_BAD_BODY IDENTIFY %s (%d) is invalid", name, v)
	}
	type tcase struct {
		name, body, want string // want "" means a JSON response
		limited          bool
	}
	var cases []tcase
	for _, c := range []struct {
		field string
		v     int
		lim   bool
	}{
		{"heartbeat_interval", 999, false}, {"heartbeat_interval", 60001, false}, {"heartbeat_interval", -2, false},
		{"heartbeat_interval", 10001, true},
		{"output_buffer_timeout", 24, false}, {"output_buffer_timeout", 30001, false}, {"output_buffer_timeout", -2, false},
		{"output_buffer_timeout", 49, true}, {"output_buffer_timeout", 1001, true},
		{"output_buffer_size", 63, false}, {"output_buffer_size", 65537, false}, {"output_buffer_size", -2, false},
		{"output_buffer_size", 4097, true},
		{"sample_rate", 100, false}, {"sample_rate", -1, false},
		{"msg_timeout", 999, false}, {"msg_timeout", 900001, false}, {"msg_timeout", -1, false},
		{"msg_timeout", 30001, true},
	} {
		body, want := bad(c.field, c.v)
		cases = append(cases, tcase{fmt.Sprintf("%s=%d", c.field, c.v), body, want, c.lim})
	}
	for _, c := range []struct {
		field string
		v     int
		lim   bool
	}{
		{"heartbeat_interval", -1, false}, {"heartbeat_interval", 1000, false}, {"heartbeat_interval", 60000, false},
		{"heartbeat_interval", 10000, true},
		{"output_buffer_timeout", 25, false}, {"output_buffer_timeout", 30000, false},
		{"output_buffer_timeout", 50, true}, {"output_buffer_timeout", 1000, true},
		{"output_buffer_size", 64, false}, {"output_buffer_size", 65536, false}, {"output_buffer_size", 4096, true},
		{"sample_rate", 99, false},
		{"msg_timeout", 1000, false}, {"msg_timeout", 900000, false}, {"msg_timeout", 30000, true},
	} {
		cases = append(cases, tcase{fmt.Sprintf("%s=%d accepted", c.field, c.v), fmt.Sprintf(`{"%s":%d}`, c.field, c.v), "", c.lim})
	}
	cases = append(cases,
		// Validation order: heartbeat, output buffer timeout, size, sample rate, msg timeout.
		tcase{"order heartbeat first", `{"msg_timeout":1,"sample_rate":1000,"output_buffer_size":1,"output_buffer_timeout":1,"heartbeat_interval":1}`,
			"E_BAD_BODY IDENTIFY heartbeat interval (1) is invalid", false},
		tcase{"order timeout before size", `{"msg_timeout":1,"sample_rate":1000,"output_buffer_size":1,"output_buffer_timeout":1}`,
			"E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid", false},
		tcase{"order size before sample rate", `{"msg_timeout":1,"sample_rate":1000,"output_buffer_size":1}`,
			"E_BAD_BODY IDENTIFY output buffer size (1) is invalid", false},
		tcase{"order sample rate before msg timeout", `{"msg_timeout":1,"sample_rate":1000}`,
			"E_BAD_BODY IDENTIFY sample rate (1000) is invalid", false},
		tcase{"wrong type", `{"heartbeat_interval":"x"}`, "E_BAD_BODY IDENTIFY failed to decode JSON body", false},
		tcase{"not JSON", `heartbeat`, "E_BAD_BODY IDENTIFY failed to decode JSON body", false},
	)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := defaults.TCPAddr
			if tc.limited {
				addr = limited.TCPAddr
			}
			c := dialRaw(t, addr)
			body := tc.body
			if strings.HasPrefix(body, "{") {
				body = `{"feature_negotiation":true,` + body[1:]
			}
			c.command("IDENTIFY", []byte(body))
			ft, data := c.next()
			if tc.want == "" {
				if ft != nsqtest.FrameTypeResponse || !bytes.HasPrefix(data, []byte("{")) {
					t.Fatalf("IDENTIFY %s: got frame type %d %q, want the JSON response", body, ft, data)
				}
				return
			}
			if ft != nsqtest.FrameTypeError || string(data) != tc.want {
				t.Fatalf("IDENTIFY %s: got frame type %d %q, want error %q", body, ft, data, tc.want)
			}
			c.expectClosed()
		})
	}

	t.Run("invalid body size 0", func(t *testing.T) {
		c := dialRaw(t, defaults.TCPAddr)
		c.write([]byte("IDENTIFY\n\x00\x00\x00\x00"))
		c.expect(nsqtest.FrameTypeError, "E_BAD_BODY IDENTIFY invalid body size 0")
		c.expectClosed()
	})

	t.Run("limited deflate level", func(t *testing.T) {
		ln := nsqtest.StartNSQD(t, "--max-deflate-level=2")
		c := dialRaw(t, ln.TCPAddr)
		_, r := c.identify(map[string]any{"deflate": true, "deflate_level": 9})
		if !r.Deflate || r.DeflateLevel != 2 || r.MaxDeflateLevel != 2 {
			t.Fatalf("deflate_level 9 with --max-deflate-level=2: response %+v, want deflate level 2 of 2", r)
		}
		c.upgradeDeflate(2)
		c.roundTrip("oor_deflate", "capped")
	})
}

// ---------------------------------------------------------------------------
// Done when 2: TLS policies.

// checkTLSRequiredHTTP checks the plain HTTP port's 403 under
// --tls-required=true (https://nsq.io/components/nsqd.html).
func checkTLSRequiredHTTP(t *testing.T, n *tlsNSQD) {
	t.Helper()
	for _, req := range []struct{ method, path string }{{http.MethodGet, "/ping"}, {http.MethodPost, "/pub?topic=plain_http"}} {
		status, hdr, body := httpDo(t, nil, req.method, "http://"+n.HTTPAddr+req.path, []byte("x"))
		want := fmt.Sprintf(`{"message": "TLS_REQUIRED", "https_port": %s}`, portOf(t, n.HTTPSAddr))
		if status != http.StatusForbidden || body != want {
			t.Errorf("%s http://…%s: status %d body %q, want 403 %q", req.method, req.path, status, body, want)
		}
		if ct, x := hdr.Get("Content-Type"), hdr.Get("X-Nsq-Content-Type"); ct != "application/json; charset=utf-8" || x != "nsq; version=1.0" {
			t.Errorf("%s http://…%s: Content-Type %q X-Nsq-Content-Type %q, want application/json; charset=utf-8 and nsq; version=1.0",
				req.method, req.path, ct, x)
		}
	}
}

// checkPlaintextRefused checks that TCP commands other than IDENTIFY are
// refused before TLS, as NSQ 1.3 does.
func checkPlaintextRefused(t *testing.T, addr string) {
	t.Helper()
	c := dialRaw(t, addr)
	c.command("PUB tls_required", []byte("plaintext"))
	c.expect(nsqtest.FrameTypeError, "E_INVALID cannot PUB in current state (TLS required)")
	c.expectClosed()

	c = dialRaw(t, addr)
	c.command("IDENTIFY", []byte(`{"client_id":"plain"}`))
	c.expect(nsqtest.FrameTypeResponse, "OK")
	c.command("NOP")
	c.expect(nsqtest.FrameTypeError, "E_INVALID cannot NOP in current state (TLS required)")
	c.expectClosed()

	c = dialRaw(t, addr)
	c.command("SUB tls_required ch")
	c.expect(nsqtest.FrameTypeError, "E_INVALID cannot SUB in current state (TLS required)")
	c.expectClosed()
}

// checkHTTPSWorks publishes over HTTPS and reads it back in /stats.
func checkHTTPSWorks(t *testing.T, n *tlsNSQD, topic string) {
	t.Helper()
	if status, _, body := httpDo(t, n.HTTPS, http.MethodGet, n.httpsURL("/ping"), nil); status != http.StatusOK || body != "OK" {
		t.Errorf("GET https://…/ping: %d %q, want 200 OK", status, body)
	}
	if status, _, body := httpDo(t, n.HTTPS, http.MethodPost, n.httpsURL("/pub?topic="+topic), []byte("over https")); status != http.StatusOK || body != "OK" {
		t.Errorf("POST https://…/pub: %d %q, want 200 OK", status, body)
	}
	if tp := getStats(t, n.HTTPS, "https://"+n.HTTPSAddr).topic(topic); tp == nil || tp.MessageCount != 1 {
		t.Errorf("/stats over HTTPS: topic %s = %+v, want message_count 1", topic, tp)
	}
}

// checkGoNSQTLS checks that a go-nsq producer without TLS is refused and
// that producer and consumer with tlsCfg exchange a message.
func checkGoNSQTLS(t *testing.T, n *tlsNSQD, topic string, tlsCfg *tls.Config) {
	t.Helper()
	plainCfg := nsq.NewConfig()
	pp, _ := newProducerCfg(t, n.TCPAddr, plainCfg)
	err := pp.Publish(topic, []byte("plaintext"))
	if err == nil || !strings.Contains(err.Error(), "E_INVALID cannot PUB in current state (TLS required)") {
		t.Errorf("go-nsq plaintext Publish: error %v, want E_INVALID cannot PUB in current state (TLS required)", err)
	}

	cfg := nsq.NewConfig()
	cfg.TlsV1, cfg.TlsConfig = true, tlsCfg
	p, _ := newProducerCfg(t, n.TCPAddr, cfg)
	got := make(chan string, 1)
	c := newConsumer(t, topic, "ch", cfg, func(m *nsq.Message) error { got <- string(m.Body); return nil })
	connect(t, c, n.TCPAddr)
	if err := p.Publish(topic, []byte("over tls")); err != nil {
		t.Fatalf("go-nsq TLS Publish: %v", err)
	}
	expectBody(t, got, "over tls")
}

func TestFeatureTLSRequired(t *testing.T) {
	certs := newTestCerts(t)

	t.Run("true", func(t *testing.T) {
		n := startTLSNSQD(t, certs, "--tls-required=true")
		checkPlaintextRefused(t, n.TCPAddr)
		c := dialRaw(t, n.TCPAddr)
		if _, r := c.identify(map[string]any{"tls_v1": true}); !r.TLSv1 {
			t.Fatalf("IDENTIFY response %+v, want tls_v1 true", r)
		}
		if _, err := c.upgradeTLS(certs.ClientConfig()); err != nil {
			t.Fatalf("TLS upgrade: %v", err)
		}
		c.command("PUB tls_required", []byte("over tls"))
		c.expect(nsqtest.FrameTypeResponse, "OK")
		checkGoNSQTLS(t, n, "tls_true_gonsq", certs.ClientConfig())
		checkTLSRequiredHTTP(t, n)
		checkHTTPSWorks(t, n, "tls_true_https")
	})

	t.Run("tcp-https", func(t *testing.T) {
		n := startTLSNSQD(t, certs, "--tls-required=tcp-https")
		checkPlaintextRefused(t, n.TCPAddr)
		checkGoNSQTLS(t, n, "tcp_https_gonsq", certs.ClientConfig())
		// Plain HTTP works normally.
		if status, _, body := httpDo(t, nil, http.MethodGet, "http://"+n.HTTPAddr+"/ping", nil); status != http.StatusOK || body != "OK" {
			t.Errorf("GET http://…/ping: %d %q, want 200 OK", status, body)
		}
		if status, _, body := httpDo(t, nil, http.MethodPost, "http://"+n.HTTPAddr+"/pub?topic=tcp_https_plain", []byte("x")); status != http.StatusOK || body != "OK" {
			t.Errorf("POST http://…/pub: %d %q, want 200 OK", status, body)
		}
		checkHTTPSWorks(t, n, "tcp_https_https")
	})

	t.Run("require-verify", func(t *testing.T) {
		// A client-auth policy alone turns --tls-required on.
		n := startTLSNSQD(t, certs, "--tls-root-ca-file="+certs.CAFile, "--tls-client-auth-policy=require-verify")
		for _, tc := range []struct {
			name string
			cfg  *tls.Config
		}{{"no certificate", certs.ClientConfig()}, {"certificate of another CA", certs.ForcingConfig(certs.RogueClient)}} {
			c := dialRaw(t, n.TCPAddr)
			if _, r := c.identify(map[string]any{"tls_v1": true}); !r.TLSv1 {
				t.Fatalf("IDENTIFY response %+v, want tls_v1 true", r)
			}
			if _, err := c.upgradeTLS(tc.cfg); err == nil {
				c.command("PUB rv", []byte("x"))
				ft, data, err := c.readFrame()
				t.Errorf("%s: TLS upgrade succeeded and PUB got %d %q %v, want the handshake refused", tc.name, ft, data, err)
			} else {
				t.Logf("%s: refused as expected: %v", tc.name, err)
			}
		}

		c := dialRaw(t, n.TCPAddr)
		if _, r := c.identify(map[string]any{"tls_v1": true, "client_id": "rv_good"}); !r.TLSv1 {
			t.Fatalf("IDENTIFY response %+v, want tls_v1 true", r)
		}
		if _, err := c.upgradeTLS(certs.ClientConfig(certs.Client)); err != nil {
			t.Fatalf("TLS upgrade with a certificate signed by --tls-root-ca-file: %v", err)
		}
		c.command("PUB rv", []byte("verified"))
		c.expect(nsqtest.FrameTypeResponse, "OK")
		if cs := getStats(t, n.HTTPS, "https://"+n.HTTPSAddr).client("rv_good"); cs == nil || !cs.TLS {
			t.Errorf("/stats client rv_good = %+v, want tls true", cs)
		}

		// go-nsq without a certificate fails; with one it works.
		cfg := nsq.NewConfig()
		cfg.TlsV1, cfg.TlsConfig = true, certs.ClientConfig()
		p, _ := newProducerCfg(t, n.TCPAddr, cfg)
		if err := p.Publish("rv_gonsq", []byte("no cert")); err == nil {
			t.Errorf("go-nsq Publish without a client certificate succeeded, want it refused")
		}
		checkGoNSQTLS(t, n, "rv_gonsq", certs.ClientConfig(certs.Client))
		checkPlaintextRefused(t, n.TCPAddr)
		checkTLSRequiredHTTP(t, n)
	})

	t.Run("require", func(t *testing.T) {
		n := startTLSNSQD(t, certs, "--tls-client-auth-policy=require")
		c := dialRaw(t, n.TCPAddr)
		c.identify(map[string]any{"tls_v1": true})
		if _, err := c.upgradeTLS(certs.ClientConfig()); err == nil {
			t.Errorf("TLS upgrade without a client certificate succeeded, want it refused")
		}
		// Any certificate will do: it is not verified.
		c = dialRaw(t, n.TCPAddr)
		c.identify(map[string]any{"tls_v1": true})
		if _, err := c.upgradeTLS(certs.ForcingConfig(certs.RogueClient)); err != nil {
			t.Fatalf("TLS upgrade with an unverified certificate: %v", err)
		}
		c.command("PUB require", []byte("x"))
		c.expect(nsqtest.FrameTypeResponse, "OK")
	})
}

// ---------------------------------------------------------------------------
// Done when 3: AUTH (https://nsq.io/components/nsqd.html#auth).

func TestFeatureAuth(t *testing.T) {
	auth := newAuthServer(t)
	n := nsqtest.StartNSQD(t, "--auth-http-address="+auth.addr())

	// fatal sends a command on a new connection (after AUTH secret unless
	// secret is "") and expects the error and the connection closed.
	fatal := func(t *testing.T, secret, want string, line string, body ...[]byte) {
		t.Helper()
		c := dialRaw(t, n.TCPAddr)
		if secret != "" {
			c.command("AUTH", []byte(secret))
			if ft, data := c.next(); ft != nsqtest.FrameTypeResponse {
				t.Fatalf("AUTH %s: got frame type %d %q, want the JSON response", secret, ft, data)
			}
		}
		c.command(line, body...)
		c.expect(nsqtest.FrameTypeError, want)
		c.expectClosed()
	}

	t.Run("auth_required", func(t *testing.T) {
		if _, r := dialRaw(t, n.TCPAddr).identify(nil); !r.AuthRequired {
			t.Errorf("IDENTIFY response %+v, want auth_required true", r)
		}
	})

	t.Run("no AUTH", func(t *testing.T) {
		fatal(t, "", "E_AUTH_FIRST AUTH required before PUB", "PUB auth_ok", []byte("x"))
		fatal(t, "", "E_AUTH_FIRST AUTH required before MPUB", "MPUB auth_ok", mpubBody("a", "b"))
		fatal(t, "", "E_AUTH_FIRST AUTH required before DPUB", "DPUB auth_ok 1000", []byte("x"))
		fatal(t, "", "E_AUTH_FIRST AUTH required before SUB", "SUB auth_ok ch")
	})

	t.Run("refused secrets", func(t *testing.T) {
		for _, tc := range []struct{ secret, want string }{
			{"bad", "E_AUTH_FAILED AUTH failed"},     // 403 from the auth server
			{"badperm", "E_AUTH_FAILED AUTH failed"}, // unknown permission
			{"ttl0", "E_AUTH_FAILED AUTH failed"},    // ttl ≤ 0
			{"empty", "E_UNAUTHORIZED AUTH no authorizations found"},
		} {
			fatal(t, "", tc.want, "AUTH", []byte(tc.secret))
			if hits := auth.count(tc.secret); hits != 1 {
				t.Errorf("AUTH %s: auth server asked %d times, want 1", tc.secret, hits)
			}
		}
	})

	t.Run("outside the grant", func(t *testing.T) {
		fatal(t, "good", `E_UNAUTHORIZED AUTH failed for PUB on "other" ""`, "PUB other", []byte("x"))
		fatal(t, "good", `E_UNAUTHORIZED AUTH failed for MPUB on "other" ""`, "MPUB other", mpubBody("a"))
		fatal(t, "good", `E_UNAUTHORIZED AUTH failed for SUB on "other" "ch"`, "SUB other ch")
		fatal(t, "good", "E_INVALID AUTH already set", "AUTH", []byte("good"))
	})

	t.Run("permitted", func(t *testing.T) {
		before := auth.count("good")
		c := dialRaw(t, n.TCPAddr)
		c.command("AUTH", []byte("good"))
		c.expect(nsqtest.FrameTypeResponse, `{"identity":"alice","identity_url":"http://id/alice","permission_count":1}`)
		c.command("MPUB auth_ok_raw", mpubBody("a", "b"))
		c.expect(nsqtest.FrameTypeResponse, "OK")
		c.command("DPUB auth_ok_raw 10", []byte("c"))
		c.expect(nsqtest.FrameTypeResponse, "OK")
		c.roundTrip("auth_ok_raw2", "permitted")
		if hits := auth.count("good") - before; hits != 1 {
			t.Errorf("auth server asked %d times for one connection within the ttl, want 1", hits)
		}
		r, q := auth.lastRequest("good")
		if want := "common_name=&remote_ip=127.0.0.1&secret=good&tls=false"; q != want {
			t.Errorf("auth request query %q, want %q", q, want)
		}
		if a := r.Header.Get("Accept"); a != "application/vnd.nsq; version=1.0" {
			t.Errorf("auth request Accept %q, want %q", a, "application/vnd.nsq; version=1.0")
		}
	})

	t.Run("go-nsq AuthSecret", func(t *testing.T) {
		res := exchange(t, n.TCPAddr, "http://"+n.HTTPAddr, "auth_ok_go", 10, func(c *nsq.Config) { c.AuthSecret = "good" })
		if cs := res.consumer; !cs.Authed || cs.AuthIdentity != "alice" {
			t.Errorf("consumer /stats authed=%v identity=%q, want true alice", cs.Authed, cs.AuthIdentity)
		}
		for secret, want := range map[string]string{"bad": "E_AUTH_FAILED AUTH failed", "": "Auth Required"} {
			cfg := nsq.NewConfig()
			cfg.AuthSecret = secret
			p, _ := newProducerCfg(t, n.TCPAddr, cfg)
			if err := p.Publish("auth_ok_go", []byte("x")); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("go-nsq Publish with AuthSecret %q: error %v, want one with %q", secret, err, want)
			}
		}
	})

	// Authorizations expire after their ttl: the next PUB asks again, and
	// fails the connection if the auth server now refuses.
	t.Run("ttl", func(t *testing.T) {
		short, once := dialRaw(t, n.TCPAddr), dialRaw(t, n.TCPAddr)
		short.command("AUTH", []byte("short"))
		short.expect(nsqtest.FrameTypeResponse, `{"identity":"bob","identity_url":"","permission_count":1}`)
		once.command("AUTH", []byte("once"))
		once.expect(nsqtest.FrameTypeResponse, `{"identity":"carol","identity_url":"","permission_count":1}`)
		short.command("PUB auth_ok_ttl", []byte("fresh"))
		short.expect(nsqtest.FrameTypeResponse, "OK")
		if hits := auth.count("short"); hits != 1 {
			t.Errorf("a PUB within the ttl: auth server asked %d times, want 1", hits)
		}
		start := time.Now()
		nsqtest.Eventually(t, 10*time.Second, func() bool {
			short.command("PUB auth_ok_ttl", []byte("again"))
			short.expect(nsqtest.FrameTypeResponse, "OK")
			return auth.count("short") >= 2
		}, "nsqd to ask the auth server again after the 1s ttl")
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Errorf("asked again %v after AUTH, want after the 1s ttl", d)
		}
		nsqtest.Eventually(t, 10*time.Second, func() bool {
			once.command("PUB auth_ok_ttl", []byte("until refused"))
			ft, data := once.next()
			if ft == nsqtest.FrameTypeResponse && string(data) == "OK" {
				return false
			}
			if ft != nsqtest.FrameTypeError || string(data) != "E_AUTH_FAILED AUTH failed" {
				t.Fatalf("PUB after the ttl with the auth server refusing: got frame type %d %q, want E_AUTH_FAILED AUTH failed", ft, data)
			}
			return true
		}, "E_AUTH_FAILED once the 1s authorization expired")
		once.expectClosed()
		if hits := auth.count("once"); hits != 2 {
			t.Errorf("auth server asked %d times for secret once, want 2", hits)
		}
	})
}

// ---------------------------------------------------------------------------
// Done when 4: statsd (--statsd-* in https://nsq.io/components/nsqd.html).

func TestFeatureStatsd(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	n := nsqtest.StartNSQD(t, "--statsd-address="+pc.LocalAddr().String(), "--statsd-interval=1s",
		"--broadcast-address=127.0.0.1", "--e2e-processing-latency-percentile=0.99,0.5")
	prefix := "nsq.127_0_0_1_" + portOf(t, n.HTTPAddr) + "."

	const topic, total = "st", 3
	createChannel(t, n, topic, "c")
	in := newInbox(total)
	connect(t, newConsumer(t, topic, "c", nil, in.handle), n.TCPAddr)
	publishBodies(t, newProducer(t, n.TCPAddr), topic, numberedBodies("m", total), total)
	in.wait(t, 10*time.Second, "statsd topic")

	want := map[string]string{ // name without prefix → type
		"topic.st.message_count": "c", "topic.st.message_bytes": "c", "topic.st.depth": "g", "topic.st.backend_depth": "g",
		"topic.st.e2e_processing_latency_99": "g", "topic.st.e2e_processing_latency_50": "g",
		"topic.st.channel.c.message_count": "c", "topic.st.channel.c.depth": "g", "topic.st.channel.c.backend_depth": "g",
		"topic.st.channel.c.in_flight_count": "g", "topic.st.channel.c.deferred_count": "g",
		"topic.st.channel.c.requeue_count": "c", "topic.st.channel.c.timeout_count": "c", "topic.st.channel.c.clients": "g",
		"topic.st.channel.c.e2e_processing_latency_99": "g", "topic.st.channel.c.e2e_processing_latency_50": "g",
		"mem.heap_objects": "g", "mem.heap_idle_bytes": "g", "mem.heap_in_use_bytes": "g", "mem.heap_released_bytes": "g",
		"mem.gc_pause_usec_100": "g", "mem.gc_pause_usec_99": "g", "mem.gc_pause_usec_95": "g", "mem.next_gc_bytes": "g",
		"mem.gc_runs": "c",
	}
	line := regexp.MustCompile(`^(\S+):(-?[0-9]+)\|(c|g)$`)
	seen := map[string]string{}
	sums := map[string]int64{} // counters summed over pushes
	last := map[string]int64{} // latest gauge values
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(15 * time.Second)
	done := func() bool {
		for name := range want {
			if _, ok := seen[name]; !ok {
				return false
			}
		}
		return sums["topic.st.message_count"] == total && sums["topic.st.channel.c.message_count"] == total &&
			last["topic.st.channel.c.clients"] == 1
	}
	for !done() {
		if time.Now().After(deadline) {
			var missing []string
			for name := range want {
				if _, ok := seen[name]; !ok {
					missing = append(missing, name)
				}
			}
			slices.Sort(missing)
			t.Fatalf("after 15s of statsd pushes: missing %v; message_count sums topic %d channel %d, want %d; clients %d, want 1",
				missing, sums["topic.st.message_count"], sums["topic.st.channel.c.message_count"], total, last["topic.st.channel.c.clients"])
		}
		pc.SetReadDeadline(time.Now().Add(time.Second))
		nr, _, err := pc.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			t.Fatalf("read statsd datagram: %v", err)
		}
		if nr > 508 {
			t.Errorf("statsd datagram of %d bytes, want at most --statsd-udp-packet-size 508", nr)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(buf[:nr]), "\n"), "\n") {
			m := line.FindStringSubmatch(l)
			if m == nil || !strings.HasPrefix(m[1], prefix) {
				t.Errorf("statsd line %q, want %s<name>:<int>|c or |g", l, prefix)
				continue
			}
			name := strings.TrimPrefix(m[1], prefix)
			v, _ := strconv.ParseInt(m[2], 10, 64)
			seen[name] = m[3]
			if m[3] == "c" {
				sums[name] += v
			} else {
				last[name] = v
			}
		}
	}
	for name, typ := range want {
		if seen[name] != typ {
			t.Errorf("statsd %s%s has type %q, want %q", prefix, name, seen[name], typ)
		}
	}
	if sums["topic.st.message_bytes"] != 7*total {
		t.Errorf("statsd topic.st.message_bytes summed %d, want %d", sums["topic.st.message_bytes"], 7*total)
	}
}

// ---------------------------------------------------------------------------
// Done when 5: e2e processing latency percentiles
// (--e2e-processing-latency-percentile in https://nsq.io/components/nsqd.html).

func TestFeatureE2ELatencyPercentiles(t *testing.T) {
	n := nsqtest.StartNSQD(t, "--e2e-processing-latency-percentile=1.0,0.99,0.5")
	const topic, total = "lat", 50
	createChannel(t, n, topic, "c")
	post(t, n, "/topic/create?topic=lat_idle")
	in := newInbox(total)
	connect(t, newConsumer(t, topic, "c", nil, in.handle), n.TCPAddr)
	publishBodies(t, newProducer(t, n.TCPAddr), topic, numberedBodies("l", total), 10)
	in.wait(t, 10*time.Second, "latency topic")

	wantQ := []float64{1, 0.99, 0.5}
	check := func(what string, l fLatency) bool {
		if l.Count <= 0 || l.Count > total || len(l.Percentiles) != len(wantQ) {
			return false
		}
		for i, p := range l.Percentiles {
			if p.Quantile != wantQ[i] || p.Value <= 0 || p.Value > float64(time.Minute) {
				return false
			}
		}
		return true
	}
	var s *fStats
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		s = getStats(t, nil, "http://"+n.HTTPAddr)
		ch := s.channel(topic, "c")
		return ch != nil && ch.InFlightCount == 0 && check("channel", ch.Latency) && check("topic", s.topic(topic).Latency)
	}, "channel and topic e2e_processing_latency with quantiles 1, 0.99, 0.5, values > 0 and 0 < count ≤ 50")
	t.Logf("channel latency %+v, topic latency %+v", s.channel(topic, "c").Latency, s.topic(topic).Latency)

	if idle := s.topic("lat_idle"); idle == nil || idle.Latency.Count != 0 || idle.Latency.Percentiles != nil {
		t.Errorf("topic without channels: %+v, want e2e_processing_latency {count 0, percentiles null}", idle)
	}

	// The text format lists the three values on the topic and channel lines.
	_, _, text := httpDo(t, nil, http.MethodGet, "http://"+n.HTTPAddr+"/stats", nil)
	for _, re := range []string{
		`(?m)^   \[lat\s+\] depth: .* e2e%: [0-9.]+(ns|us|ms|s), [0-9.]+(ns|us|ms|s), [0-9.]+(ns|us|ms|s)$`,
		`(?m)^      \[c\s+\] depth: .* e2e%: [0-9.]+(ns|us|ms|s), [0-9.]+(ns|us|ms|s), [0-9.]+(ns|us|ms|s)$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("GET /stats text has no line matching %s:\n%s", re, text)
		}
	}

	// Without the flag: {"count":0,"percentiles":null}.
	off := nsqtest.StartNSQD(t)
	createChannel(t, off, "lat", "c")
	if ch := getStats(t, nil, "http://"+off.HTTPAddr).channel("lat", "c"); ch == nil || ch.Latency.Count != 0 || ch.Latency.Percentiles != nil {
		t.Errorf("without --e2e-processing-latency-percentile: channel %+v, want e2e_processing_latency {count 0, percentiles null}", ch)
	}
}

// ---------------------------------------------------------------------------
// Done when 6: GET /metrics agrees with /stats.

// scrape returns GET /metrics parsed by Prometheus' own text parser.
func scrape(t testing.TB, httpAddr string) map[string]*dto.MetricFamily {
	t.Helper()
	status, hdr, body := httpDo(t, nil, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: status %d %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET /metrics Content-Type %q, want text/plain…", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// metricValue returns the value of family name with exactly labels, and
// whether it exists.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, dto.MetricType, bool) {
	f := fams[name]
	if f == nil {
		return 0, 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), f.GetType(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), f.GetType(), true
		default:
			return m.GetUntyped().GetValue(), f.GetType(), true
		}
	}
	return 0, f.GetType(), false
}

func TestFeatureMetricsMatchStats(t *testing.T) {
	n := nsqtest.StartNSQD(t, "--e2e-processing-latency-percentile=0.99,0.5")
	const topic = "prom"
	createChannel(t, n, topic, "c1")
	createChannel(t, n, topic, "c2")
	// Known workload: 100 published; c1's consumer takes 40, finishes 30,
	// defers 5 with REQ and keeps 5 in flight; c2 has no consumer.
	p := newProducer(t, n.TCPAddr)
	publishBodies(t, p, topic, numberedBodies("p", 100), 25) // 7 bytes each
	c := dialRaw(t, n.TCPAddr)
	c.command("SUB " + topic + " c1")
	c.expect(nsqtest.FrameTypeResponse, "OK")
	c.command("RDY 40")
	var ids []string
	for range 40 {
		ids = append(ids, c.expectMessage().ID)
	}
	c.command("RDY 0")
	for _, id := range ids[:30] {
		c.command("FIN " + id)
	}
	for _, id := range ids[30:35] {
		c.command("REQ " + id + " 600000")
	}
	base := "http://" + n.HTTPAddr
	var s *fStats
	nsqtest.Eventually(t, 10*time.Second, func() bool {
		s = getStats(t, nil, base)
		ch := s.channel(topic, "c1")
		return ch != nil && ch.InFlightCount == 5 && ch.DeferredCount == 5 && ch.RequeueCount == 5 && ch.Latency.Count > 0
	}, "c1 with 5 in flight, 5 deferred, 5 requeued")

	tp, c1, c2 := s.topic(topic), s.channel(topic, "c1"), s.channel(topic, "c2")
	if tp.MessageCount != 100 || tp.MessageBytes != 700 || tp.Depth != 0 {
		t.Errorf("/stats topic %+v, want message_count 100, message_bytes 700, depth 0", tp)
	}
	if c1.Depth != 60 || c1.MessageCount != 100 || c1.ClientCount != 1 || c2.Depth != 100 || c2.ClientCount != 0 {
		t.Errorf("/stats c1 depth %d msgs %d clients %d, c2 depth %d clients %d; want 60 100 1, 100 0",
			c1.Depth, c1.MessageCount, c1.ClientCount, c2.Depth, c2.ClientCount)
	}

	fams := scrape(t, n.HTTPAddr)
	gauge, counter := dto.MetricType_GAUGE, dto.MetricType_COUNTER
	expect := func(name string, typ dto.MetricType, labels map[string]string, want float64) {
		t.Helper()
		got, gotType, ok := metricValue(fams, name, labels)
		switch {
		case !ok:
			t.Errorf("/metrics has no %s%v", name, labels)
		case gotType != typ:
			t.Errorf("/metrics %s is a %v, want a %v", name, gotType, typ)
		case math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)):
			t.Errorf("/metrics %s%v = %v, want %v as in /stats", name, labels, got, want)
		}
	}
	tl := map[string]string{"topic": topic}
	expect("nsq_topic_depth", gauge, tl, float64(tp.Depth))
	expect("nsq_topic_backend_depth", gauge, tl, float64(tp.BackendDepth))
	expect("nsq_topic_messages_total", counter, tl, float64(tp.MessageCount))
	expect("nsq_topic_message_bytes_total", counter, tl, float64(tp.MessageBytes))
	for _, p := range tp.Latency.Percentiles {
		expect("nsq_topic_e2e_processing_latency_seconds", gauge,
			map[string]string{"topic": topic, "quantile": strconv.FormatFloat(p.Quantile, 'g', -1, 64)}, p.Value/1e9)
	}
	for _, ch := range []*fChannel{c1, c2} {
		cl := map[string]string{"topic": topic, "channel": ch.Name}
		expect("nsq_channel_depth", gauge, cl, float64(ch.Depth))
		expect("nsq_channel_backend_depth", gauge, cl, float64(ch.BackendDepth))
		expect("nsq_channel_in_flight", gauge, cl, float64(ch.InFlightCount))
		expect("nsq_channel_deferred", gauge, cl, float64(ch.DeferredCount))
		expect("nsq_channel_messages_total", counter, cl, float64(ch.MessageCount))
		expect("nsq_channel_requeued_total", counter, cl, float64(ch.RequeueCount))
		expect("nsq_channel_timed_out_total", counter, cl, float64(ch.TimeoutCount))
		expect("nsq_channel_clients", gauge, cl, float64(ch.ClientCount))
		for _, p := range ch.Latency.Percentiles {
			expect("nsq_channel_e2e_processing_latency_seconds", gauge,
				map[string]string{"topic": topic, "channel": ch.Name, "quantile": strconv.FormatFloat(p.Quantile, 'g', -1, 64)}, p.Value/1e9)
		}
	}
	// The workload's numbers, to be sure /stats itself was right.
	expect("nsq_channel_depth", gauge, map[string]string{"topic": topic, "channel": "c1"}, 60)
	expect("nsq_channel_in_flight", gauge, map[string]string{"topic": topic, "channel": "c1"}, 5)
	expect("nsq_channel_messages_total", counter, map[string]string{"topic": topic, "channel": "c2"}, 100)
	expect("nsq_producers", gauge, nil, float64(len(s.Producers)))
	expect("nsq_health", gauge, nil, 1)
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("/metrics has no %s (Go and process collectors)", name)
		}
	}
	// Counters are named …_total, everything is nsq_/go_/process_/promhttp_.
	for name, f := range fams {
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("/metrics counter %s does not end in _total", name)
		}
		if !strings.HasPrefix(name, "nsq_") && !strings.HasPrefix(name, "go_") &&
			!strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("/metrics family %s outside the nsq_, go_ and process_ namespaces", name)
		}
	}
}

// BenchmarkPublishWhileScraping compares publish throughput with and without
// a GET /metrics every 100 ms (issue 3: scraping must not slow message
// flow). Each iteration runs both phases; both rates are reported.
func BenchmarkPublishWhileScraping(b *testing.B) {
	n := nsqtest.StartNSQD(b)
	// Some topics and channels for the scrapes to walk.
	for i := range 20 {
		for _, path := range []string{"/topic/create?topic=bench_%d", "/channel/create?topic=bench_%d&channel=a", "/channel/create?topic=bench_%d&channel=b"} {
			status, body := nsqtest.HTTP(b, http.MethodPost, n.URL(fmt.Sprintf(path, i)), nil)
			if status != http.StatusOK {
				b.Fatalf("POST %s: %d %s", fmt.Sprintf(path, i), status, body)
			}
		}
	}
	const producers, phase = 4, 500 * time.Millisecond
	const topic = "bench_pub#ephemeral" // no channels, no disk: overflow is dropped
	body := bytes.Repeat([]byte("x"), 100)
	ps := make([]*nsq.Producer, producers)
	for i := range ps {
		p, err := nsq.NewProducer(n.TCPAddr, nsq.NewConfig())
		if err != nil {
			b.Fatal(err)
		}
		p.SetLogger(nsqtest.ClientLogger(b), nsq.LogLevelWarning)
		b.Cleanup(p.Stop)
		if err := p.Publish(topic, body); err != nil { // connect
			b.Fatal(err)
		}
		ps[i] = p
	}

	// run publishes from every producer for one phase and returns the count.
	run := func(scrapeEvery time.Duration) (msgs int64, elapsed time.Duration, scrapes int) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		if scrapeEvery > 0 {
			wg.Go(func() {
				client := &http.Client{Timeout: featureIOTimeout}
				tick := time.NewTicker(scrapeEvery)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					resp, err := client.Get(n.URL("/metrics"))
					if err != nil {
						b.Errorf("GET /metrics: %v", err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("GET /metrics: status %d", resp.StatusCode)
					}
					scrapes++
				}
			})
		}
		var count atomic.Int64
		var pubs sync.WaitGroup
		start := time.Now()
		deadline := start.Add(phase)
		for _, p := range ps {
			pubs.Go(func() {
				for time.Now().Before(deadline) {
					if err := p.Publish(topic, body); err != nil {
						b.Errorf("Publish: %v", err)
						return
					}
					count.Add(1)
				}
			})
		}
		pubs.Wait()
		elapsed = time.Since(start)
		close(stop)
		wg.Wait()
		return count.Load(), elapsed, scrapes
	}

	var plainMsgs, scrapedMsgs int64
	var plainTime, scrapedTime time.Duration
	var scrapes int
	b.ReportAllocs()
	for b.Loop() {
		m, d, _ := run(0)
		plainMsgs, plainTime = plainMsgs+m, plainTime+d
		m, d, s := run(100 * time.Millisecond)
		scrapedMsgs, scrapedTime, scrapes = scrapedMsgs+m, scrapedTime+d, scrapes+s
	}
	plain := float64(plainMsgs) / plainTime.Seconds()
	scraped := float64(scrapedMsgs) / scrapedTime.Seconds()
	b.ReportMetric(plain, "msgs/s-no-scrape")
	b.ReportMetric(scraped, "msgs/s-scrape-100ms")
	b.ReportMetric(float64(scrapes)/float64(b.N), "scrapes/op")
	b.Logf("publish: %.0f msgs/s without scraping, %.0f msgs/s with /metrics every 100ms (%+.1f%%, %d scrapes)",
		plain, scraped, 100*(scraped-plain)/plain, scrapes)
}

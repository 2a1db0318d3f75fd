package nsqd

import (
	"bufio"
	"compress/flate"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/golang/snappy"
	"github.com/nsqclone/nsq/internal/protocol"
)

// buildTLSConfig turns the --tls-* options into a server config; nil when no
// certificate is configured.
func buildTLSConfig(o *Options) (*tls.Config, error) {
	if o.TLSCert == "" && o.TLSKey == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   o.TLSMinVersion,
	}
	switch o.TLSClientAuthPolicy {
	case "require":
		cfg.ClientAuth = tls.RequireAnyClientCert
	case "require-verify":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case "":
	default:
		return nil, fmt.Errorf("unknown --tls-client-auth-policy %q", o.TLSClientAuthPolicy)
	}
	if o.TLSRootCAFile != "" {
		pem, err := os.ReadFile(o.TLSRootCAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("failed to append certificates from --tls-root-ca-file")
		}
		cfg.ClientCAs = pool
	}
	return cfg, nil
}

// readerConn is the client's connection as seen through its buffered reader,
// so bytes already buffered are not lost when TLS takes over.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// flushingWriter sync-flushes deflate after every write, so each flush of
// the client's buffer reaches the peer as a complete block.
type flushingWriter struct{ fw *flate.Writer }

func (w flushingWriter) Write(p []byte) (int, error) {
	n, err := w.fw.Write(p)
	if err == nil {
		err = w.fw.Flush()
	}
	return n, err
}

// upgrade performs the negotiated upgrades in NSQ's order (TLS, snappy,
// deflate), each confirmed by an OK frame in the new encoding. The IDENTIFY
// response has already been flushed in plain form.
func (c *client) upgrade(tlsOn, snappyOn, deflateOn bool, level int) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	size := c.wSize
	var wr io.Writer = c.conn
	var rd io.Reader = c.r
	if tlsOn {
		tc := tls.Server(readerConn{Conn: c.conn, r: c.r}, c.nsqd.tlsConfig)
		// The handshake's 5 s deadline holds: reads do not move it.
		dc := c.conn.(*deadlineConn)
		dc.readHold = true
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		err := tc.Handshake()
		dc.readHold, dc.readNext = false, 0
		if err != nil {
			return err
		}
		tc.SetDeadline(time.Time{})
		state := tc.ConnectionState()
		c.mu.Lock()
		c.tlsState = &state
		c.mu.Unlock()
		wr, rd = tc, tc
		if err := c.sendOKLocked(wr, size); err != nil {
			return err
		}
		c.r, c.rsrc = bufio.NewReaderSize(rd, readBufferSize), rd
		rd = c.r
	}
	if snappyOn {
		wr = snappy.NewWriter(wr) //nolint:staticcheck // our bufio.Writer batches the writes
		rd = snappy.NewReader(rd)
		c.snappy.Store(true)
		if err := c.sendOKLocked(wr, size); err != nil {
			return err
		}
		c.r, c.rsrc = bufio.NewReaderSize(rd, readBufferSize), rd
	}
	if deflateOn {
		fw, _ := flate.NewWriter(wr, level)
		wr = flushingWriter{fw}
		rd = flate.NewReader(rd)
		c.deflate.Store(true)
		if err := c.sendOKLocked(wr, size); err != nil {
			return err
		}
		c.r, c.rsrc = bufio.NewReaderSize(rd, readBufferSize), rd
	}
	return nil
}

// sendOKLocked switches the output to w and sends OK through it.
func (c *client) sendOKLocked(w io.Writer, size int) error {
	if err := c.setOutput(w, size); err != nil {
		return err
	}
	return c.writeDirect(protocol.FrameTypeResponse, protocol.OK)
}

// tlsVersionName is how /stats names a TLS version.
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLS1.0"
	case tls.VersionTLS11:
		return "TLS1.1"
	case tls.VersionTLS12:
		return "TLS1.2"
	case tls.VersionTLS13:
		return "TLS1.3"
	}
	return fmt.Sprintf("Unknown %d", v)
}

// cipherSuiteName names the classic suites as NSQ does and reports others
// (the TLS 1.3 ones) as "Unknown <n>".
func cipherSuiteName(id uint16) string {
	for _, cs := range tls.CipherSuites() {
		if cs.ID == id && !slicesContainsVersion(cs.SupportedVersions, tls.VersionTLS13) {
			return cs.Name
		}
	}
	for _, cs := range tls.InsecureCipherSuites() {
		if cs.ID == id {
			return cs.Name
		}
	}
	return fmt.Sprintf("Unknown %d", id)
}

func slicesContainsVersion(vs []uint16, v uint16) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

package nsqlookupd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/nsqclone/nsq/internal/protocol"
)

// serveTCP accepts V1 connections until the listener is closed, then waits
// for the connections' goroutines (closeTCP closes them) and returns nil.
// Any other accept error that is not temporary is returned.
func (l *NSQLookupd) serveTCP(ctx context.Context) error {
	var conns sync.WaitGroup
	defer conns.Wait()
	var backoff time.Duration
	for {
		conn, err := l.tcpListener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if te, ok := errors.AsType[interface {
				error
				Temporary() bool
			}](err); ok && te.Temporary() {
				// Out of file descriptors, say: wait for some to be freed.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.logger.Warn("TCP: temporary accept error", "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				continue
			}
			return fmt.Errorf("tcp accept: %w", err)
		}
		backoff = 0
		if !l.trackConn(conn) {
			conn.Close()
			continue
		}
		conns.Go(func() {
			defer l.untrackConn(conn)
			l.handleConn(conn)
		})
	}
}

// trackConn records an open connection; false once closeTCP has run.
func (l *NSQLookupd) trackConn(conn net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	l.conns[conn] = struct{}{}
	return true
}

func (l *NSQLookupd) untrackConn(conn net.Conn) {
	l.mu.Lock()
	delete(l.conns, conn)
	l.mu.Unlock()
}

// closeTCP closes the listener, then every connection; their goroutines end
// on the next read and serveTCP returns once they have.
func (l *NSQLookupd) closeTCP() {
	l.tcpListener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing = true
	for conn := range l.conns {
		conn.Close() // unblocks the read; nothing else done under mu
	}
}

// handleConn checks the protocol magic and runs the V1 protocol.
func (l *NSQLookupd) handleConn(conn net.Conn) {
	defer conn.Close()
	id := conn.RemoteAddr().String()
	log := l.logger.With("client", id)
	log.Info("TCP: new client")
	var magic [4]byte
	if _, err := io.ReadFull(conn, magic[:]); err != nil {
		log.Info("TCP: client closed before sending the protocol magic", "err", err)
		return
	}
	if string(magic[:]) != protocol.MagicV1 {
		log.Warn("TCP: bad protocol magic", "magic", fmt.Sprintf("%q", magic[:]))
		conn.Write(appendResponse(nil, []byte("E_BAD_PROTOCOL")))
		return
	}
	err := l.newLookupConn(id, conn, conn).serve()
	if _, sent := errors.AsType[*protocol.Error](err); !sent && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)) {
		log.Info("PROTOCOL(V1): client exiting")
		return
	}
	log.Info("PROTOCOL(V1): client exiting", "err", err)
}

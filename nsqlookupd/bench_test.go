package nsqlookupd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkCommands runs REGISTER, PING and UNREGISTER lines through one
// identified V1 connection.
func BenchmarkCommands(b *testing.B) {
	l := &NSQLookupd{db: newRegistrationDB(time.Minute, time.Minute), logger: slog.New(slog.DiscardHandler)}
	c := l.newLookupConn("127.0.0.1:1", nil, io.Discard)
	c.peer = testPeer("127.0.0.1:1", 4151)
	l.db.addPeer(c.peer)
	lines := [][]byte{[]byte("REGISTER orders billing\n"), []byte("PING\n"), []byte("UNREGISTER orders billing\n")}
	b.ReportAllocs()
	for b.Loop() {
		for _, line := range lines {
			resp, err := c.exec(line)
			if err != nil {
				b.Fatal(err)
			}
			c.write(resp)
		}
	}
}

// BenchmarkReadLine measures line reading from a stream of PINGs.
func BenchmarkReadLine(b *testing.B) {
	stream := bytes.Repeat([]byte("PING\n"), 1000)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	c := &lookupConn{}
	for b.Loop() {
		c.r = bufio.NewReaderSize(bytes.NewReader(stream), maxLineLength)
		for {
			if _, err := c.readLine(); err != nil {
				break
			}
		}
	}
}

// BenchmarkLookup answers /lookup for a topic with many producers among many
// topics.
func BenchmarkLookup(b *testing.B) {
	for _, producers := range []int{1, 100} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			db := newRegistrationDB(time.Minute, time.Minute)
			for i := range producers {
				p := testPeer(fmt.Sprintf("10.0.0.%d:1", i), 4151+i)
				db.addPeer(p)
				for j := range 1000 {
					db.register(p, fmt.Sprintf("t%d", j), "c")
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, ps, ok := db.lookup("t500", time.Now()); !ok || len(ps) != producers {
					b.Fatal("lookup failed")
				}
			}
		})
	}
}

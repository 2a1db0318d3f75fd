package nsqd

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
)

// An address that is not host:port is a unix socket, for TCP and HTTP; /info
// then reports the ports as -1.
func TestUnixSocketListeners(t *testing.T) {
	o := testOptions(t)
	dir := t.TempDir()
	o.TCPAddress, o.HTTPAddress = filepath.Join(dir, "tcp.sock"), filepath.Join(dir, "http.sock")
	n := startNSQD(t, o)
	c, err := net.Dial("unix", o.TCPAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc := &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
	c.Write([]byte("  V2"))
	rc.send("PUB u", []byte("hello"))
	rc.expect(0, "OK")

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", o.HTTPAddress)
	}}}
	resp, err := hc.Get("http://nsqd/info")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var info struct {
		TCPPort  int `json:"tcp_port"`
		HTTPPort int `json:"http_port"`
	}
	if err := json.Unmarshal(body, &info); err != nil || info.TCPPort != -1 || info.HTTPPort != -1 {
		t.Errorf("/info = %s, want ports -1", body)
	}
	if st := n.Stats("u", "", false); len(st.Topics) != 1 || st.Topics[0].MessageCount != 1 {
		t.Errorf("stats = %+v", st.Topics)
	}
}
